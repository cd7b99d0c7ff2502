// fuzz/fuzz_llama2c.cpp — llama2.c v0 / v1 checkpoints through load_model (format sniffing, the
// header checks and the exact-size rule of io/llama2c.h).
#include "fuzz/fuzz_util.h"
#include "io/model_file.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("model.bin", data, size);
  ModelFile m;
  if (!fuzz::expect_error([&] { m = load_model(path); })) return 0;
  validate_model(m);
  return 0;
}
