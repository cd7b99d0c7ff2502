// io/lora_gguf.h — LoRA adapters as llama.cpp-loadable GGUF files (llama-adapter.cpp rules).
//
// In qtune a LoRA pair for base weight W [out, in] (torch order) is
//   "blk.N.attn_q.lora_a" A: [r, in]    "blk.N.attn_q.lora_b" B: [out, r]   W' = W + (alpha/r)·B·A
// In the file they are "blk.N.attn_q.weight.lora_a" (ne = {in, r}) and ".weight.lora_b"
// (ne = {r, out}), F32, with general.architecture, general.type = "adapter",
// adapter.type = "lora", adapter.lora.alpha (float32).
#pragma once
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/model_file.h"

namespace qtune {

class GgufFile;
class GgufWriter;

// Puts the LoRA keys and tensors into w (the caller may add keys, then writes). Throws Error
// (naming `where`) for unpaired names, a rank mismatch between A and B, or a name without
// .lora_a / .lora_b.
void add_lora_gguf(GgufWriter& w, const TensorMap& adapters, float alpha, const std::string& where,
                   const std::string& arch = "llama");
// add_lora_gguf into a fresh writer, written atomically to path.
void save_lora_gguf(const std::string& path, const TensorMap& adapters, float alpha, const std::string& arch = "llama");

struct LoraGguf {
  TensorMap adapters;  // qtune names and torch shapes, as given to save_lora_gguf
  float alpha = 0;
  std::string arch;
};
// Throws Error naming the file for anything check_llamacpp_lora_rules(file, nullptr) reports.
LoraGguf load_lora_gguf(const std::string& path);
LoraGguf load_lora_gguf(const GgufFile& f);

// Every way `adapter` would be rejected (or silently misread) by llama.cpp's adapter loader,
// one message per violation; empty when it loads. With a base model, also checks that each
// target tensor exists with A.ne[0] == W.ne[0] (in) and B.ne[1] == W.ne[1] (out).
std::vector<std::string> check_llamacpp_lora_rules(const GgufFile& adapter, const ModelFile* base);

}  // namespace qtune
