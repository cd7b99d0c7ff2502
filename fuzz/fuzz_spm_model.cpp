// fuzz/fuzz_spm_model.cpp — a SentencePiece .model through libsentencepiece (io/tokenizer_spm.h):
// loading, then encoding and decoding with the loaded model. libsentencepiece itself is not
// instrumented (Debian's build), so coverage guides only qtune's side; crashes inside it still
// count.
#include "fuzz/tokenizer_check.h"
#include "io/tokenizer.h"

using namespace qtune;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::write_input("tokenizer.model", data, size);
  std::unique_ptr<Tokenizer> t;
  if (!fuzz::expect_error([&] { t = load_tokenizer(path); })) return 0;
  for (const auto& text : fuzz::probe_texts()) fuzz::expect_error([&] { fuzz::check_round(*t, text); });
  fuzz::check_decode_all(*t);
  t->vocab();
  return 0;
}
