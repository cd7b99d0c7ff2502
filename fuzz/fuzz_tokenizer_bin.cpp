// fuzz/fuzz_tokenizer_bin.cpp — llama2.c tokenizer.bin (io/tokenizer_llama2c.h) through
// load_tokenizer's sniffing, then encoding and decoding with the loaded vocabulary.
#include "fuzz/tokenizer_check.h"
#include "io/tokenizer.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("tokenizer.bin", data, size);
  std::unique_ptr<Tokenizer> t;
  if (!fuzz::expect_error([&] { t = load_tokenizer(path); })) return 0;
  for (const auto& text : fuzz::probe_texts()) fuzz::check_round(*t, text);
  fuzz::check_decode_all(*t);
  t->vocab();
  return 0;
}
