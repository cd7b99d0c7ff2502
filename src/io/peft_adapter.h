// io/peft_adapter.h — Hugging Face PEFT LoRA adapters: the folder PEFT's save_pretrained writes
// and PeftModel.from_pretrained reads, for a LlamaForCausalLM base.
//
//   <dir>/adapter_config.json        peft_type "LORA", task_type "CAUSAL_LM", r, lora_alpha,
//                                    target_modules (["q_proj", ..., "down_proj"]), lora_dropout 0,
//                                    bias "none", fan_in_fan_out false, use_rslora false, use_dora
//                                    false, base_model_name_or_path, inference_mode true
//   <dir>/adapter_model.safetensors  base_model.model.model.layers.N.<module>.lora_A.weight [r, in]
//                                    base_model.model.model.layers.N.<module>.lora_B.weight [out, r]
//                                    (F32; <module> = self_attn.q_proj, ..., mlp.down_proj)
// PEFT applies W + (lora_alpha / r)·B·A (use_rslora: lora_alpha / √r), qtune's lora/qlora
// W0 + (alpha / rank)·B·A (docs/METHODS.md §2): qtune's alpha is lora_alpha, use_rslora false.
//
// Layout: PEFT's B multiplies into the Hugging Face q_proj/k_proj, whose output rows are
// permuted within each head (io/hf_layout.h). lora_B of q and k is therefore written with
// meta_to_hf_rows and read back with hf_to_meta_rows (head_dim = dim / n_heads for both); every
// lora_A (its rows are the rank, its columns inputs) and every other B is stored as qtune holds
// it. The permutation only moves values: write then read gives the tensors back bit for bit.
//
// In memory (PeftLora::adapters) the tensors have qtune's names and layout:
// "blk.N.attn_q.lora_a" [r, in], "blk.N.attn_q.lora_b" [out, r].
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/model_file.h"

namespace qtune {

struct PeftLora {
  int rank = 0;
  // qtune's alpha: the branch is scaled by alpha / rank. A use_rslora adapter reads as
  // lora_alpha·√r (the same scale); written as lora_alpha with use_rslora false.
  float alpha = 0;
  bool rslora = false;               // read: the file had use_rslora true (alpha converted)
  std::vector<std::string> targets;  // qtune --target names ("q", ..., "down"), slot order
  std::string base_model;            // base_model_name_or_path
  TensorMap adapters;                // qtune names and layout (above)
};

// Throws Error naming `where` unless `a` is a complete adapter of `base`: rank >= 1, alpha > 0,
// targets known, and exactly one lora_a [rank, in] and lora_b [out, rank] per layer and target.
void check_peft_lora(const PeftLora& a, const LlamaConfig& base, const std::string& where);

// Writes the folder `dir` (created, or its two files replaced): both files are written into
// "<dir>.tmp.<pid>" first, which then becomes `dir` (or whose files are renamed into an existing
// `dir`), so a failed export leaves no half folder and no half file. Throws Error naming dir.
void write_peft_adapter(const std::string& dir, const PeftLora& a, const LlamaConfig& base);

// The adapter_config.json of `path`: path itself when it names a file, else path/adapter_config.json.
std::string peft_config_path(const std::string& path);

// Reads the folder (or its adapter_config.json) and checks it against `base` (check_peft_lora).
// Throws Error naming the file for a missing file, malformed JSON, a PEFT option qtune cannot
// apply (use_dora, rank_pattern/alpha_pattern, bias, modules_to_save, fan_in_fan_out, lora_bias,
// layers_to_transform, a target_modules regex or module qtune has no slot for), and for
// missing, extra, misnamed or misshaped tensors. lora_dropout and init_lora_weights are ignored.
PeftLora read_peft_adapter(const std::string& path, const LlamaConfig& base);

}  // namespace qtune
