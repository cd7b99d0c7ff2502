// io/adapter_file.h — adapter files (what `finetune` writes for the adapter methods, what
// `merge`, `export-lora` and `info` read) and the encoding of run settings and slot state that
// adapter files and training checkpoints (train/checkpoint.h) share.
//
// Shared encoding (the same in adapters and checkpoints):
//   run settings   string keys "qtune.run.<name>" = value (method options, seed, ...: what is
//                  needed to rebuild the frozen base exactly, e.g. IntLoRA's R from the seed)
//   slot state     f32 array keys "qtune.state.<param name>" (calibrated activation ranges,
//                  IntLoRA-MUL's frozen second quantizer). Metadata, not tensors: llama.cpp's
//                  LoRA loader rejects every tensor that is not a lora_a / lora_b.
// Adapter files:
//   "lora"   additive adapters (lora, qlora): the llama.cpp-loadable LoRA GGUF of
//            io/lora_gguf.h plus the keys above, which llama.cpp ignores;
//   "qtune"  the integer methods: general.type = "adapter", adapter.type = "qtune" (so llama.cpp
//            refuses it: these adapters are not additive), every trainable tensor F32 under its
//            qtune name ("blk.N.attn_q.lora_a" [r, in], "...lora_b" [out, r], "...qalora_scale").
// read_adapter() also reads a training checkpoint (kind "checkpoint": its params are the
// adapter) and a plain llama.cpp LoRA GGUF without qtune keys (run settings empty).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "io/model_file.h"

namespace qtune {

class GgufFile;
class GgufWriter;

// (name, value) pairs, e.g. {"method", "qalora"}, {"rank", "8"}, {"seed", "1"}.
using RunSettings = std::vector<std::pair<std::string, std::string>>;
// The value of `name`, or nullptr.
const std::string* find_setting(const RunSettings& s, const std::string& name);

void put_run_settings(GgufWriter& w, const RunSettings& s);
RunSettings get_run_settings(const GgufFile& f);  // every qtune.run.* key, in file order
void put_state(GgufWriter& w, const TensorMap& state);
TensorMap get_state(const GgufFile& f);  // 1-D tensors (the slots check only the element count)

struct AdapterFile {
  std::string kind;     // "lora" | "qtune" | "checkpoint"
  TensorMap adapters;   // trainable tensors by qtune name
  TensorMap state;      // slot state by param name
  RunSettings run;      // empty for a llama.cpp LoRA made elsewhere
  float lora_alpha = 0; // adapter.lora.alpha ("lora" files)
  // general.architecture of the model it adapts: "llama", or "dit" (dit-train's adapters; a
  // checkpoint does not say, and reads as "llama")
  std::string architecture = "llama";
};

void write_lora_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                        const RunSettings& run, float alpha, const std::string& architecture = "llama");
void write_qtune_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                         const RunSettings& run, const std::string& architecture = "llama");
// Throws Error naming the file for anything that is not one of the three kinds, or is malformed.
AdapterFile read_adapter(const std::string& path);

}  // namespace qtune
