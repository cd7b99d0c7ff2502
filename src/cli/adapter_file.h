// cli/adapter_file.h — what `qtune finetune` writes for the adapter methods and what `merge`
// and `export-lora` read back.
//
// lora / qlora: the llama.cpp-loadable LoRA GGUF of io/lora_gguf.h (save_lora_gguf).
// qalora / intlora-*: a qtune adapter GGUF — general.type = "adapter", adapter.type = "qtune"
//   (so llama.cpp refuses it: these adapters are not additive LoRA), general.architecture, and
//   every trainable tensor F32 under its qtune name ("blk.N.attn_q.lora_a" [r, in],
//   "...lora_b" [out, r], "...qalora_scale" [out, groups]).
// Both carry string keys "qtune.run.<flag>" (method, rank, alpha, bits, group, symmetric,
// scale-search, target, act-bits, act-calib, seed, and the method's own: lsq-grad-scale; vmc,
// vmc-alpha, zero-free) — `qtune merge` needs them to rebuild the frozen base exactly (IntLoRA's
// auxiliary matrix comes from the seed) — and the slots' non-trained state as f32 array keys
// "qtune.state.<name>" (activation ranges, IntLoRA-MUL's frozen second quantizer); llama.cpp
// ignores both kinds of key.
// read_adapter() also accepts a training checkpoint (train/checkpoint.h), whose qtune.run.*
// keys, param and qtune.state.* tensors carry the same information, and a plain llama.cpp LoRA
// GGUF (method lora; rank, targets and alpha from its tensors and adapter.lora.alpha).
#pragma once
#include <cstdint>
#include <string>

#include "adapters/linear.h"
#include "core/tensor.h"
#include "models/llama.h"

namespace qtune::cli {

struct AdapterFile {
  TensorMap adapters;     // trainable tensors by name: "blk.N.attn_q.lora_a" [r, in], ...
  TensorMap state;        // the slots' state tensors by name ("blk.N.attn_q.act_amax", ...)
  MethodOptions method;   // how the slots were built when it was trained
  uint64_t seed = 0;      // the training seed (slot construction, e.g. IntLoRA's R)
  std::string kind;       // "adapter" | "checkpoint"
};

// Writes adapters + state + method atomically to path (nothing appears at path until complete).
void write_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                   const MethodOptions& method, uint64_t seed);

// Reads an adapter file or a training checkpoint; throws Error naming the file.
AdapterFile read_adapter(const std::string& path);

// Copies the adapter and state tensors into the model's params of the same name. Throws Error
// (naming `where`) for a missing tensor, a shape mismatch, or a tensor the model has no slot for.
void load_adapter_into(Llama& model, const AdapterFile& a, const std::string& where);

// The model's trainable tensors and state as maps (what write_adapter takes).
TensorMap state_tensors(Llama& model);

}  // namespace qtune::cli
