// cli/adapter_file.h — an adapter file (io/adapter_file.h) seen as a trained method: the
// options and seed it was trained with, written from and loaded into a Llama.
//
// The run settings of an adapter are the method's options (settings_of) plus "seed": `merge`
// needs them to rebuild the frozen base exactly (IntLoRA's auxiliary matrix comes from the
// seed). A llama.cpp LoRA made elsewhere has none: it is read as method lora, with rank and
// targets from its tensors and alpha from adapter.lora.alpha.
#pragma once
#include <cstdint>
#include <string>

#include "adapters/linear.h"
#include "io/adapter_file.h"
#include "models/llama.h"

namespace qtune::cli {

struct TrainedAdapter : AdapterFile {
  MethodOptions method;  // how the slots were built when it was trained
  uint64_t seed = 0;     // the training seed (slot construction, e.g. IntLoRA's R)
};

// Writes the adapter in its method's format (lora/qlora on a llama: llama.cpp LoRA; everything
// else: a qtune adapter), atomically; `architecture` is the adapted model's ("llama" or "dit").
void write_trained_adapter(const std::string& path, const TensorMap& adapters, const TensorMap& state,
                           const MethodOptions& method, uint64_t seed, const std::string& architecture = "llama");

// Reads an adapter file or a training checkpoint; throws Error naming the file.
TrainedAdapter read_trained_adapter(const std::string& path);

// Copies the adapter and state tensors into the model's params of the same name. Throws Error
// (naming `where`) for a missing tensor, a shape mismatch, or a tensor the model has no slot for.
void load_adapter_into(Llama& model, const TrainedAdapter& a, const std::string& where);

// As load_adapter_into, for any model's params (the DiT's).
void load_adapter_params(const std::vector<Param<float>>& trainable, const std::vector<Param<float>>& state,
                         const TrainedAdapter& a, const std::string& where);

// The model's non-trained slot state as a map (what write_trained_adapter takes).
TensorMap state_tensors(Llama& model);

}  // namespace qtune::cli
