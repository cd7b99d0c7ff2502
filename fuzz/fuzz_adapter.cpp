// fuzz/fuzz_adapter.cpp — what `qtune merge` / `export-lora` read (read_adapter): qtune adapter
// GGUFs, llama.cpp LoRA files with or without qtune keys, and training checkpoints.
#include "fuzz/fuzz_util.h"
#if __has_include("io/adapter_file.h")  // the adapter reader is moving from cli/ to io/
#include "io/adapter_file.h"
namespace adapter_io = qtune;
#else
#include "cli/adapter_file.h"
namespace adapter_io = qtune::cli;
#endif

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("adapter.gguf", data, size);
  adapter_io::AdapterFile a;
  if (!fuzz::expect_error([&] { a = adapter_io::read_adapter(path); })) return 0;
  QT_FUZZ_CHECK(a.kind == "adapter" || a.kind == "checkpoint");
  return 0;
}
