// fuzz/fuzz_lora.cpp — llama.cpp LoRA adapters (io/lora_gguf.h): load_lora_gguf, and the
// llama.cpp rules checked against a fixed base model (what `qtune export-lora` runs).
#include "fuzz/fuzz_util.h"
#include "fuzz/seed_data.h"
#include "io/gguf.h"
#include "io/lora_gguf.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ModelFile base = fuzz::tiny_model(8, 16, 24, true);
  const std::string path = fuzz::write_input("lora.gguf", data, size);
  std::unique_ptr<GgufFile> f;
  if (!fuzz::expect_error([&] { f = std::make_unique<GgufFile>(path); })) return 0;
  std::vector<std::string> with_base, without;
  fuzz::expect_error([&] { with_base = check_llamacpp_lora_rules(*f, &base); });
  fuzz::expect_error([&] { without = check_llamacpp_lora_rules(*f, nullptr); });
  LoraGguf lora;
  if (!fuzz::expect_error([&] { lora = load_lora_gguf(path); })) return 0;
  QT_FUZZ_CHECK(without.empty());  // load_lora_gguf accepts exactly what the rules accept
  for (const auto& [name, t] : lora.adapters) QT_FUZZ_CHECK(t.shape.size() == 2);
  return 0;
}
