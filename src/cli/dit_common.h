// cli/dit_common.h — what the DiT subcommands share: the Fashion-MNIST location and its
// one-line "not installed" error, and loading a DiT GGUF to run (not train).
#pragma once
#include <memory>
#include <string>

#include "io/dit_file.h"
#include "models/dit.h"

namespace qtune::cli {

// Where Debian's dataset-fashion-mnist puts the IDX files.
constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Throws Error in one line naming the missing file and how to install the package.
void check_dataset_dir(const std::string& dir);

// A DiT GGUF loaded for inference: every slot frozen, integer weights (an exactly merged
// adapter) on the integer path, activations as the model was fine-tuned (--act-bits recorded
// by merge).
struct InferenceDit {
  DitConfig config;
  MethodOptions method;
  std::unique_ptr<Dit<float>> model;
  std::string describe;  // "float weights" / "integer weights (…), int8 activations"
};
InferenceDit load_inference_dit(const std::string& path);

}  // namespace qtune::cli
