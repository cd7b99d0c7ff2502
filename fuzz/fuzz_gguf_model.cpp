// fuzz/fuzz_gguf_model.cpp — a LLaMA model in GGUF through load_model (io/model_file.h): config
// keys, float / block / integer weights (io/gguf_int.h), activation keys, validation.
#include "fuzz/fuzz_util.h"
#include "io/model_file.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("model.gguf", data, size);
  ModelFile m;
  if (!fuzz::expect_error([&] { m = load_model(path); })) return 0;
  // A loaded model is valid, and every weight reads back as float with its required shape.
  validate_model(m);
  for (const auto& [name, planes] : m.quantized) {
    Tensor w = weight_as_float(m, name);
    QT_FUZZ_CHECK(w.shape.size() == 2 && w.shape[0] == planes[0].rows && w.shape[1] == planes[0].cols);
  }
  return 0;
}
