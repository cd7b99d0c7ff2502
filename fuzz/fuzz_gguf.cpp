// fuzz/fuzz_gguf.cpp — the GGUF container (io/gguf.h): parse, every typed getter on every key,
// every tensor dequantized, and llama.cpp's layout/model rules (what `qtune info` runs).
#include "fuzz/fuzz_util.h"
#include "io/gguf.h"
#include "io/gguf_rules.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("input.gguf", data, size);
  std::unique_ptr<GgufFile> f;
  if (!fuzz::expect_error([&] { f = std::make_unique<GgufFile>(path); })) return 0;
  for (const auto& kv : f->metadata()) {
    const std::string& key = kv.first;  // (clang 14 cannot capture structured bindings)
    // Each getter either returns a value or throws Error for a type/range mismatch.
    fuzz::expect_error([&] { f->get_u32(key); });
    fuzz::expect_error([&] { f->get_i32(key); });
    fuzz::expect_error([&] { f->get_u64(key); });
    fuzz::expect_error([&] { f->get_f32(key); });
    fuzz::expect_error([&] { f->get_bool(key); });
    fuzz::expect_error([&] { f->get_str(key); });
    fuzz::expect_error([&] { f->get_arr_str(key); });
    fuzz::expect_error([&] { f->get_arr_f32(key); });
    fuzz::expect_error([&] { f->get_arr_i32(key); });
    QT_FUZZ_CHECK(f->find(key) == &kv.second);
  }
  for (const auto& t : f->tensors()) {
    QT_FUZZ_CHECK(f->find_tensor(t.name) == &t);
    // The reader guarantees the data lies inside the file.
    QT_FUZZ_CHECK(f->data_offset() + t.offset + t.nbytes <= f->file_size());
    Tensor x = f->to_float(t);
    QT_FUZZ_CHECK(x.numel() == t.numel());
  }
  fuzz::expect_error([&] { check_llamacpp_model_rules(*f); });
  fuzz::expect_error([&] { llamacpp_unsupported(*f); });
  return 0;
}
