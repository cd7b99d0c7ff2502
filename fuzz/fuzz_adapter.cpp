// fuzz/fuzz_adapter.cpp — what `qtune merge` / `export-lora` / `info` read: qtune adapter GGUFs,
// llama.cpp LoRA files with or without qtune keys, and training checkpoints (io/adapter_file.h),
// then the method options recorded in them (options_from_settings).
#include "adapters/method_options.h"
#include "fuzz/fuzz_util.h"
#include "io/adapter_file.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("adapter.gguf", data, size);
  AdapterFile a;
  if (!fuzz::expect_error([&] { a = read_adapter(path); })) return 0;
  QT_FUZZ_CHECK(a.kind == "lora" || a.kind == "qtune" || a.kind == "checkpoint");
  if (!a.run.empty()) fuzz::expect_error([&] { options_from_settings(a.run, path); });
  return 0;
}
