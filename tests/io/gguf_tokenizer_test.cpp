// GGUF SPM tokenizer against llama.cpp's own test vectors (test-tokenizer-0 conventions:
// inputs split on "\n__ggml_vocab_test__\n", expected ids without BOS, one line per input).
#include <sstream>

#include "core/file.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "test_util.h"

namespace qtune {
namespace {

std::string vocab_path() { return test::shared_dir() + "/models/gguf-vocab/ggml-vocab-llama-spm.gguf"; }

std::vector<std::string> split_inputs(const std::string& raw) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  for (size_t pos = 0; pos < raw.size();) {
    size_t next = raw.find(sep, pos);
    if (next == std::string::npos) {
      out.push_back(raw.substr(pos));
      break;
    }
    out.push_back(raw.substr(pos, next - pos));
    pos = next + sep.size();
  }
  return out;
}

TEST(GgufTokenizer, LlamaSpmVectorsExact) {
  QT_REQUIRE_SHARED(vocab_path());
  auto tok = load_gguf_tokenizer(vocab_path());
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  auto inputs = split_inputs(read_text_file(vocab_path() + ".inp"));
  std::istringstream out(read_text_file(vocab_path() + ".out"));
  std::vector<std::vector<int>> expected;
  for (std::string line; std::getline(out, line);) {
    std::istringstream ls(line);
    std::vector<int> ids;
    for (int id; ls >> id;) ids.push_back(id);
    expected.push_back(ids);
  }
  ASSERT_EQ(inputs.size(), expected.size());
  ASSERT_GE(inputs.size(), 40u);
  int failures = 0;
  for (size_t i = 0; i < inputs.size(); i++) {
    auto got = tok->encode(inputs[i], false, false);
    if (got != expected[i]) failures++;
    EXPECT_EQ(got, expected[i]) << "input #" << i << ": '" << inputs[i] << "'";
  }
  EXPECT_EQ(failures, 0);
}

TEST(GgufTokenizer, BosEosAndDecodeRoundTrip) {
  QT_REQUIRE_SHARED(vocab_path());
  auto tok = load_gguf_tokenizer(vocab_path());
  auto ids = tok->encode("Hello world", true, true);
  ASSERT_EQ(ids, (std::vector<int>{1, 15043, 3186, 2}));
  // Byte fallback and multi-byte UTF-8 decode back to the original text.
  std::string text = "Hello, y'all! 🦙 нещо 我想";
  auto t = tok->encode(text, true, false);
  std::string back;
  for (size_t i = 1; i < t.size(); i++) back += tok->decode(t[i - 1], t[i]);
  EXPECT_EQ(back, text);
  EXPECT_THROW(tok->decode(1, 32000), Error);
}

}  // namespace
}  // namespace qtune
