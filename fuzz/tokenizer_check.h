// fuzz/tokenizer_check.h — what every loaded tokenizer must do with any text: ids in range, and
// every id decodes (after any previous id) without throwing.
#pragma once
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "io/tokenizer.h"

namespace qtune::fuzz {

// Encodes text (with BOS and EOS) and decodes the ids one by one; returns the decoded text
// (BOS and EOS decode to "" or their piece, depending on the tokenizer).
inline std::string check_round(const Tokenizer& t, const std::string& text) {
  const int n = t.vocab_size();
  QT_FUZZ_CHECK(n > 0);
  std::vector<int> ids = t.encode(text, true, true);
  QT_FUZZ_CHECK(ids.size() >= 2);
  for (int id : ids) QT_FUZZ_CHECK(id >= 0 && id < n);
  std::string out;
  for (size_t i = 1; i + 1 < ids.size(); ++i) out += t.decode(ids[i - 1], ids[i]);
  return out;
}

// Texts every loaded tokenizer is run on.
inline const std::vector<std::string>& probe_texts() {
  static const std::vector<std::string> texts = {
      "", " ", "the cat ab bc", "  two  spaces\tand\nnewline", "caf\xc3\xa9 \xe6\x97\xa5", "\xff\xfe\xc3 \xe2\x96",
      "<s></s><unk><0x41>", std::string("nul\0byte", 8)};
  return texts;
}

// Every id decodes after BOS and after id 0; an id outside the vocabulary is an Error.
inline void check_decode_all(const Tokenizer& t) {
  const int n = t.vocab_size();
  for (int id = 0; id < n && id < 4096; ++id) {
    t.decode(t.bos_id(), id);
    t.decode(0, id);
  }
  QT_FUZZ_CHECK(!expect_error([&] { t.decode(0, n); }));
  QT_FUZZ_CHECK(!expect_error([&] { t.decode(0, -1); }));
}

}  // namespace qtune::fuzz
