// cli/adapter_file.h — an adapter file (io/adapter_file.h) seen as a trained method: the
// options and seed it was trained with, written from and loaded into a Llama.
//
// The run settings of an adapter are the method's options (settings_of) plus "seed": `merge`
// needs them to rebuild the frozen base exactly (IntLoRA's auxiliary matrix comes from the
// seed). A llama.cpp LoRA made elsewhere has none: it is read as method lora, with rank and
// targets from its tensors and alpha from adapter.lora.alpha.
//
// An adapter also records the base model it was trained on (run settings "model-file", the file's
// name, and "model-fingerprint", core/hash.h of its bytes, as checkpoints record it): a qlora
// adapter only applies as trained to that model quantized the way the run quantized it
// (`qtune quantize --like`), and export-lora / info say so.
#pragma once
#include <cstdint>
#include <string>

#include "adapters/linear.h"
#include "io/adapter_file.h"
#include "models/llama.h"

namespace qtune::cli {

// The model a run trained on. Empty fields: not recorded (a llama.cpp LoRA made elsewhere, an
// adapter from before qtune recorded it; a checkpoint records the fingerprint only).
struct BaseModelId {
  std::string file;         // its file name, without the folder
  std::string fingerprint;  // fingerprint_hex(fingerprint_file(path))
};
// The id of the model file at `path` (reads the whole file).
BaseModelId base_model_id(const std::string& path);

struct TrainedAdapter : AdapterFile {
  MethodOptions method;  // how the slots were built when it was trained
  uint64_t seed = 0;     // the training seed (slot construction, e.g. IntLoRA's R)
  BaseModelId base;      // the model it was trained on
};

// Writes the adapter in its method's format (lora/qlora on a llama: llama.cpp LoRA; everything
// else: a qtune adapter), atomically; `architecture` is the adapted model's ("llama" or "dit").
void write_trained_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                           const MethodOptions& method, uint64_t seed, const BaseModelId& base,
                           const std::string& architecture = "llama");

// Reads an adapter file or a training checkpoint; throws Error naming the file.
TrainedAdapter read_trained_adapter(const std::string& path);

// Copies the adapter and state tensors into the model's params of the same name. Throws Error
// (naming `where`) for a missing tensor, a shape mismatch, or a tensor the model has no slot for.
void load_adapter_into(Llama& model, const TrainedAdapter& a, const std::string& where);

// As load_adapter_into, for any model's params (the DiT's).
void load_adapter_params(const std::vector<Param<float>>& trainable, const std::vector<Param<float>>& state,
                         const TrainedAdapter& a, const std::string& where);

// What base the adapter needs, in words, for export-lora and info: "trained on stories260K.bin
// (fingerprint …) quantized to 4-bit asymmetric, per row, min/max range; llama.cpp --lora applies
// it to whatever base it is given: give it the base written by `qtune quantize --model
// stories260K.bin --out BASE.gguf --like …`" for the methods whose base is the model's weights
// quantized (quantize --like writes it), else that it applies to the float base. `adapter` is the
// adapter's path, for the command line it suggests.
std::string base_needed(const TrainedAdapter& a, const std::string& adapter);

// True when the frozen base of `method` is the model's projections quantized with
// base_quant_spec (qlora, qalora, qloldu, qaloldu): `quantize --like` can write it. Not IntLoRA,
// whose targeted slots quantize W − R (docs/METHODS.md §4.2), nor the float-base methods.
bool base_is_quantized_model(const std::string& method);

// "4-bit asymmetric, per row, min/max range" — a base quantizer in words.
std::string quantizer_str(const QuantSpec& spec);

// The model's non-trained slot state as a map (what write_trained_adapter takes).
TensorMap state_tensors(Llama& model);

}  // namespace qtune::cli
