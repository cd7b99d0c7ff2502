// fuzz/fuzz_gguf_vocab.cpp — the SentencePiece vocabulary in a GGUF file's tokenizer.ggml.* keys
// (io/gguf_tokenizer.h): loading, then encoding and decoding with whatever vocabulary it holds.
#include "fuzz/tokenizer_check.h"
#include "io/gguf_tokenizer.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("vocab.gguf", data, size);
  std::unique_ptr<Tokenizer> t;
  if (!fuzz::expect_error([&] { t = load_gguf_tokenizer(path); })) return 0;
  QT_FUZZ_CHECK(t->vocab_size() > 0 && t->bos_id() >= 0 && t->bos_id() < t->vocab_size());
  for (const auto& text : fuzz::probe_texts()) fuzz::check_round(*t, text);
  fuzz::check_decode_all(*t);
  QT_FUZZ_CHECK(t->vocab().has_value());
  return 0;
}
