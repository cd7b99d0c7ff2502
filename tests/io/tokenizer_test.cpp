// tests/io/tokenizer_test.cpp — llama2.c tokenizer.bin (tok512, Llama 2 32k), SentencePiece
// .model, load_tokenizer sniffing, and bad input.
#include <chrono>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "core/rng.h"
#include "io/tokenizer.h"
#include "io/tokenizer_llama2c.h"
#include "io/tokenizer_spm.h"
#include "test_util.h"

namespace qtune {
namespace {

std::string tok512() { return test::shared_dir() + "/models/stories260K/tok512.bin"; }
std::string llama_bin() { return test::shared_dir() + "/models/llama2-tokenizer/tokenizer.bin"; }
std::string llama_model() { return test::shared_dir() + "/models/llama2-tokenizer/tokenizer.model"; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::string decode_all(const Tokenizer& t, const std::vector<int>& ids, int prev) {
  std::string s;
  for (int id : ids) {
    s += t.decode(prev, id);
    prev = id;
  }
  return s;
}

// run.c's quadratic merge loop, written independently as the reference for the heap version:
// scan all adjacent pairs, take the strictly best score (so the leftmost of equals), merge, repeat.
std::vector<int> reference_encode(const Llama2cTokenizer& t, const std::string& text) {
  std::vector<int> ids;
  auto find = [&](const std::string& s) {
    for (int i = 0; i < t.vocab_size(); ++i)
      if (t.piece(i) == s) return i;
    return -1;
  };
  if (!text.empty() && find(" ") >= 0) ids.push_back(find(" "));
  std::string cp;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((uint8_t(text[i]) & 0xC0) != 0x80) cp.clear();
    cp += text[i];
    if (i + 1 < text.size() && (uint8_t(text[i + 1]) & 0xC0) == 0x80 && cp.size() < 4) continue;
    int id = find(cp);
    if (id >= 0) ids.push_back(id);
    else
      for (char c : cp) ids.push_back(int(uint8_t(c)) + 3);
    cp.clear();
  }
  for (;;) {
    float best = -1e10f;
    int best_i = -1, best_id = -1;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      int id = find(t.piece(ids[i]) + t.piece(ids[i + 1]));
      if (id >= 0 && t.score(id) > best) best = t.score(id), best_i = int(i), best_id = id;
    }
    if (best_i < 0) break;
    ids[size_t(best_i)] = best_id;
    ids.erase(ids.begin() + best_i + 1);
  }
  return ids;
}

const std::vector<int> kGreedy = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                  315, 421, 395, 317, 426, 338, 401, 396, 267, 337};

TEST(Tokenizer, Tok512DecodesTheGreedyStory) {
  QT_REQUIRE_SHARED(tok512());
  auto t = load_tokenizer(tok512());
  EXPECT_EQ(t->vocab_size(), 512);
  std::string s = decode_all(*t, kGreedy, t->bos_id());
  EXPECT_EQ(s.rfind("Once upon a time, there was a little girl named Lily.", 0), 0u) << s;
}

TEST(Tokenizer, Tok512EncodeAgreesWithGreedyIds) {
  QT_REQUIRE_SHARED(tok512());
  auto t = load_tokenizer(tok512());
  std::vector<int> ids = t->encode("Once upon a time, there was a little girl named Lily.", true, false);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids[0], 1);
  // the model's greedy continuation spells the same sentence with the same tokens
  std::vector<int> want(kGreedy.begin(), kGreedy.begin() + long(ids.size() - 1));
  EXPECT_EQ(std::vector<int>(ids.begin() + 1, ids.end()), want);
  std::vector<int> e = t->encode("Lily", false, true);
  EXPECT_EQ(e.back(), 2);
  EXPECT_TRUE(t->encode("", false, false).empty());
  EXPECT_EQ(t->encode("", true, true), (std::vector<int>{1, 2}));
}

TEST(Tokenizer, Tok512MatchesQuadraticReferenceAndRoundTrips) {
  QT_REQUIRE_SHARED(tok512());
  Llama2cTokenizer t(tok512());
  const char* texts[] = {
      "Once upon a time, there was a little girl named Lily.",
      "In the beginning God created the heaven and the earth.",
      "  two  spaces,\ttabs\tand\nnewlines\n",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "The café served crème brûlée — naïve 日本語 🙂 emoji.",
      "x",
      "\xff\xfe broken utf-8 \xc3",
      "!!!???...,,,;;;",
  };
  for (const char* text : texts) {
    std::vector<int> ids = t.encode(text, true, false);
    EXPECT_EQ(std::vector<int>(ids.begin() + 1, ids.end()), reference_encode(t, text)) << text;
    EXPECT_EQ(decode_all(t, std::vector<int>(ids.begin() + 1, ids.end()), t.bos_id()), text) << text;
  }
}

TEST(Tokenizer, ByteTokensAndDecodeRules) {
  QT_REQUIRE_SHARED(tok512());
  Llama2cTokenizer t(tok512());
  EXPECT_EQ(t.piece(3 + 0x41), "<0x41>");
  EXPECT_EQ(t.decode(5, 3 + 0x41), "A");
  EXPECT_EQ(t.decode(5, 3 + 0x0A), "\n");
  int sp_lily = t.encode("Lily", false, false)[0];  // " L..." with the dummy-prefix space
  ASSERT_EQ(t.piece(sp_lily)[0], ' ');
  EXPECT_EQ(t.decode(1, sp_lily), t.piece(sp_lily).substr(1));  // space dropped after BOS
  EXPECT_EQ(t.decode(5, sp_lily), t.piece(sp_lily));
  EXPECT_THROW(t.decode(1, 512), Error);
  EXPECT_THROW(t.decode(1, -1), Error);
}

TEST(Tokenizer, SentencePieceModel) {
  QT_REQUIRE_SHARED(llama_model());
  auto t = load_tokenizer(llama_model());
  EXPECT_EQ(t->vocab_size(), 32000);
  EXPECT_EQ(t->encode("Hello world", false, false), (std::vector<int>{15043, 3186}));
  EXPECT_EQ(t->encode("Hello world", true, true), (std::vector<int>{1, 15043, 3186, 2}));
  std::vector<int> ids = t->encode("Hello world", true, false);
  EXPECT_EQ(decode_all(*t, std::vector<int>(ids.begin() + 1, ids.end()), 1), "Hello world");
  EXPECT_EQ(t->decode(1, 2), "");  // control token
}

TEST(Tokenizer, Llama2BinAgreesWithSentencePiece) {
  QT_REQUIRE_SHARED(llama_bin());
  QT_REQUIRE_SHARED(llama_model());
  auto bin = load_tokenizer(llama_bin());
  auto spm = load_tokenizer(llama_model());
  EXPECT_EQ(bin->vocab_size(), 32000);
  for (const char* s : {"Hello world", "Once upon a time, there was a little girl named Lily.",
                        "In the beginning God created the heaven and the earth.", "The café — naïve",
                        "1234 + 5678 = 6912", "Ünïcödé and 日本語"}) {
    std::vector<int> a = bin->encode(s, true, true), b = spm->encode(s, true, true);
    EXPECT_EQ(a, b) << s;
    EXPECT_EQ(decode_all(*bin, std::vector<int>(a.begin() + 1, a.end() - 1), 1), s);
  }
}

TEST(Tokenizer, GgufVocabAgreesWithSentencePiece) {
  std::string gguf = test::shared_dir() + "/models/gguf-vocab/ggml-vocab-llama-spm.gguf";
  QT_REQUIRE_SHARED(gguf);
  QT_REQUIRE_SHARED(llama_model());
  auto g = load_tokenizer(gguf);  // sniffed by the "GGUF" magic
  auto spm = load_tokenizer(llama_model());
  EXPECT_EQ(g->vocab_size(), 32000);
  for (const char* s : {"Hello world", "Once upon a time, there was a little girl named Lily."})
    EXPECT_EQ(g->encode(s, true, false), spm->encode(s, true, false)) << s;
}

TEST(Tokenizer, SniffsTenByteMaxLengthAsTokenizerBin) {
  QT_REQUIRE_SHARED(tok512());
  auto b = read_bytes(tok512());
  int32_t ten = 10;  // max_token_length 10 starts with 0x0a like a protobuf
  std::memcpy(b.data(), &ten, 4);
  std::string p = test::scratch_dir() + "/tok.bin";
  write_bytes(p, b);
  auto t = load_tokenizer(p);
  EXPECT_EQ(t->vocab_size(), 512);
}

// Expects an Error naming `path`.
void expect_bad(const std::string& path) {
  try {
    load_tokenizer(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, BadInput) {
  QT_REQUIRE_SHARED(tok512());
  std::string dir = test::scratch_dir();
  expect_bad(dir + "/missing.bin");
  expect_bad(dir);
  write_bytes(dir + "/empty.bin", {});
  expect_bad(dir + "/empty.bin");
  auto b = read_bytes(tok512());
  // cut inside the header, inside a score, a length, a piece, and near the end
  for (size_t cut : {size_t(1), size_t(3), size_t(6), size_t(10), size_t(14), size_t(17), b.size() / 2 + 1,
                     b.size() - 1}) {
    std::string p = fmt::format("{}/cut{}.bin", dir, cut);
    write_bytes(p, std::vector<uint8_t>(b.begin(), b.begin() + long(cut)));
    expect_bad(p);
  }
  auto corrupt = [&](size_t off, int32_t v, const char* name) {
    auto c = b;
    std::memcpy(c.data() + off, &v, 4);
    write_bytes(dir + "/" + name, c);
    expect_bad(dir + "/" + name);
  };
  corrupt(0, 0, "maxlen0.bin");
  corrupt(0, -5, "maxlen_neg.bin");
  corrupt(0, 1 << 30, "maxlen_huge.bin");
  corrupt(8, -1, "len_neg.bin");         // first token's length
  corrupt(8, 1 << 30, "len_huge.bin");
  corrupt(8, 8, "len_over_max.bin");     // above max_token_length 7
  corrupt(4, 0x7fc00000, "nan_score.bin");
  // random bytes, a text file, a broken .model
  std::vector<uint8_t> junk(3000);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = uint8_t(i * 197 + 11);
  write_bytes(dir + "/junk.bin", junk);
  expect_bad(dir + "/junk.bin");
  std::string txt = "hello, this is not a tokenizer\n";
  write_bytes(dir + "/text.bin", std::vector<uint8_t>(txt.begin(), txt.end()));
  expect_bad(dir + "/text.bin");
  write_bytes(dir + "/junk.model", junk);
  expect_bad(dir + "/junk.model");
  // only unk + bos: too few tokens
  write_bytes(dir + "/two.bin", std::vector<uint8_t>(b.begin(), b.begin() + 4 + (8 + 5) + (8 + 5)));
  expect_bad(dir + "/two.bin");
}

// Random byte flips in the file and random byte strings to encode: an Error or a result, never a
// crash (this is what the ASan build checks); encodings still match the quadratic reference.
TEST(Tokenizer, RandomMutationsAndRandomText) {
  QT_REQUIRE_SHARED(tok512());
  auto b = read_bytes(tok512());
  std::string dir = test::scratch_dir();
  Rng rng(5);
  for (int i = 0; i < 50; ++i) {
    auto m = b;
    for (int k = 0; k < 4; ++k) m[rng.below(64)] = uint8_t(rng.next_u64());  // the header and first records
    std::string p = fmt::format("{}/m{}.bin", dir, i);
    write_bytes(p, m);
    try {
      load_tokenizer(p)->encode("Once upon a time", true, true);
    } catch (const Error&) {
    }
  }
  Llama2cTokenizer t(tok512());
  for (int i = 0; i < 30; ++i) {
    std::string text;
    const size_t len = rng.below(40);
    for (size_t k = 0; k < len; ++k) text += char(rng.below(3) ? 'a' + rng.below(6) : rng.next_u64());
    std::vector<int> ids = t.encode(text, false, false);
    EXPECT_EQ(ids, reference_encode(t, text));
    EXPECT_EQ(decode_all(t, ids, 0), text.empty() ? "" : " " + text);
  }
}

}  // namespace
}  // namespace qtune
