// cli/adapter_file.h — what `qtune finetune` writes for lora/qlora and what `merge` and
// `export-lora` read back.
//
// The adapter file is the llama.cpp-loadable LoRA GGUF of io/lora_gguf.h (save_lora_gguf),
// plus string keys "qtune.run.<flag>" (method, rank, alpha, bits, group, symmetric,
// scale-search, target) — llama.cpp ignores them; `qtune merge` needs them to rebuild the
// frozen base exactly (qlora merges onto the quantized base, not the float one).
// read_adapter() also accepts a training checkpoint (train/checkpoint.h), whose qtune.run.*
// keys and param tensors carry the same information, and a plain llama.cpp LoRA GGUF (method
// lora; rank, targets and alpha from its tensors and adapter.lora.alpha).
#pragma once
#include <string>

#include "adapters/linear.h"
#include "core/tensor.h"
#include "models/llama.h"

namespace qtune::cli {

struct AdapterFile {
  TensorMap adapters;     // "blk.N.attn_q.lora_a" [r, in], "...lora_b" [out, r]
  MethodOptions method;   // how the slots were built when it was trained
  std::string kind;       // "adapter" | "checkpoint"
};

// Writes adapters + method atomically to path (nothing appears at path until it is complete).
void write_adapter(const std::string& path, const TensorMap& adapters, const MethodOptions& method);

// Reads an adapter file or a training checkpoint; throws Error naming the file.
AdapterFile read_adapter(const std::string& path);

// Copies the adapter tensors into the model's trainable params of the same name. Throws Error
// (naming `where`) for a missing tensor, a shape mismatch, or a tensor the model has no slot for.
void load_adapter_into(Llama& model, const TensorMap& adapters, const std::string& where);

}  // namespace qtune::cli
