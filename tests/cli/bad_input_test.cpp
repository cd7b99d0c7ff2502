// The bad-input contract: exit code 2 and exactly one stderr line "error: ..." naming the file
// (or the flag). Fixtures are derived at test time from the shared files: truncated copies,
// copies with one header field corrupted, and small hand-made files.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "cli_util.h"

using namespace qtune::test;

namespace {

std::string gguf_vocab() { return shared_dir() + "/models/gguf-vocab/ggml-vocab-llama-spm.gguf"; }

// Copy of src with its first n bytes only.
std::string truncated(const std::string& src, size_t n, const std::string& dst) {
  write_file(dst, read_file(src).substr(0, n));
  return dst;
}

// Copy of src with a 32- or 64-bit little-endian field at `offset` overwritten.
template <class T>
std::string patched(const std::string& src, size_t offset, T value, const std::string& dst) {
  std::string bytes = read_file(src);
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
  write_file(dst, bytes);
  return dst;
}

RunResult info(const std::string& model) { return run_qtune({"info", model}); }

RunResult generate_with_tokenizer(const std::string& tok) {
  return run_qtune({"generate", "--model", stories_bin(), "--tokenizer", tok, "--prompt", "hi", "--max-tokens", "2"});
}

RunResult eval_on(const std::string& data) {
  return run_qtune({"eval", "--model", stories_bin(), "--tokenizer", tok512(), "--data", data, "--seq", "16"});
}

}  // namespace

// ---- llama2.c checkpoints ----

TEST(CliBadInput, Llama2cV0Truncated) {
  QT_REQUIRE_STORIES();
  std::string f = truncated(stories_bin(), 5000, scratch_dir() + "/trunc_v0.bin");
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, Llama2cV0HeaderCorrupted) {
  QT_REQUIRE_STORIES();
  std::string f = patched<int32_t>(stories_bin(), 12, 0, scratch_dir() + "/heads0_v0.bin");  // n_heads = 0
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, Llama2cV0ShapeMismatch) {
  QT_REQUIRE_STORIES();
  // dim 64 → 128: the header no longer agrees with the file size.
  std::string f = patched<int32_t>(stories_bin(), 0, 128, scratch_dir() + "/dim128_v0.bin");
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, Llama2cV1Truncated) {
  QT_REQUIRE_SHARED(stories_v1_bin());
  std::string f = truncated(stories_v1_bin(), 1000, scratch_dir() + "/trunc_v1.bin");
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, Llama2cV1UnknownVersion) {
  QT_REQUIRE_SHARED(stories_v1_bin());
  std::string f = patched<int32_t>(stories_v1_bin(), 4, 7, scratch_dir() + "/version7_v1.bin");
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, WrongMagic) {
  std::string f = scratch_dir() + "/wrong_magic.gguf";
  write_file(f, std::string("GGUX\x03\0\0\0", 8) + std::string(200, '\x7f'));
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, MissingModelPath) {
  std::string f = scratch_dir() + "/does_not_exist.bin";
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, OutOfRangeNumbersSayWhatIsAllowed) {
  EXPECT_TRUE(IsBadInput(run_qtune({"finetune", "--model", "m", "--data", "d", "--lr", "0"}), "--lr: must be a number > 0, got 0"));
  EXPECT_TRUE(IsBadInput(run_qtune({"finetune", "--model", "m", "--data", "d", "--warmup", "-3"}), "--warmup: must be a number >= 0"));
  EXPECT_TRUE(IsBadInput(run_qtune({"eval", "--model", "m", "--data", "d", "--max-batches", "x"}), "must be a number >= 0, got x"));
}

// ---- tokenizers ----

TEST(CliBadInput, TokenizerTruncated) {
  QT_REQUIRE_STORIES();
  std::string f = truncated(tok512(), 600, scratch_dir() + "/trunc_tok.bin");
  EXPECT_TRUE(IsBadInput(generate_with_tokenizer(f), f));
}

TEST(CliBadInput, TokenizerCorruptedLength) {
  QT_REQUIRE_STORIES();
  // token 0's length field (after max_token_length and its score) → 2^30
  std::string f = patched<int32_t>(tok512(), 8, 1 << 30, scratch_dir() + "/badlen_tok.bin");
  EXPECT_TRUE(IsBadInput(generate_with_tokenizer(f), f));
}

TEST(CliBadInput, TokenizerVocabLargerThanModel) {
  QT_REQUIRE_STORIES();
  std::string big = shared_dir() + "/models/llama2-tokenizer/tokenizer.bin";
  QT_REQUIRE_SHARED(big);
  EXPECT_TRUE(IsBadInput(generate_with_tokenizer(big), big));
}

TEST(CliBadInput, ModelWithoutEmbeddedVocabNeedsTokenizer) {
  QT_REQUIRE_STORIES();
  auto r = run_qtune({"generate", "--model", stories_bin(), "--prompt", "x", "--max-tokens", "2"});
  EXPECT_TRUE(IsBadInput(r, "--tokenizer"));
}

// ---- GGUF ----

TEST(CliBadInput, GgufTruncated) {
  QT_REQUIRE_SHARED(gguf_vocab());
  std::string f = truncated(gguf_vocab(), 300, scratch_dir() + "/trunc.gguf");
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, GgufCorruptedKeyCount) {
  QT_REQUIRE_SHARED(gguf_vocab());
  std::string f = patched<uint64_t>(gguf_vocab(), 16, uint64_t{1} << 40, scratch_dir() + "/nkv.gguf");
  EXPECT_TRUE(IsBadInput(info(f), f));
}

TEST(CliBadInput, GgufWithoutTensorsIsNotAModel) {
  QT_REQUIRE_SHARED(gguf_vocab());
  EXPECT_TRUE(IsBadInput(info(gguf_vocab()), gguf_vocab()));
}

TEST(CliBadInput, GgufModelTruncated) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir(), q = dir + "/q8.gguf";
  auto ok = run_qtune({"quantize", "--model", stories_bin(), "--bits", "8", "--out", q});
  ASSERT_EQ(ok.code, 0) << ok.err;
  std::string f = truncated(q, read_file(q).size() - 100, dir + "/q8_trunc.gguf");
  EXPECT_TRUE(IsBadInput(info(f), f));
}

// ---- data files ----

TEST(CliBadInput, EmptyDataFile) {
  QT_REQUIRE_STORIES();
  std::string f = scratch_dir() + "/empty.txt";
  write_file(f, "");
  EXPECT_TRUE(IsBadInput(eval_on(f), f));
}

TEST(CliBadInput, BinaryDataFile) {
  QT_REQUIRE_STORIES();
  std::string f = scratch_dir() + "/binary.txt";
  std::string bytes;
  for (int i = 0; i < 4096; ++i) bytes += static_cast<char>((i * 37) & 0xff);
  write_file(f, bytes);
  EXPECT_TRUE(IsBadInput(eval_on(f), f));
}

TEST(CliBadInput, NonUtf8DataFile) {
  QT_REQUIRE_STORIES();
  std::string f = scratch_dir() + "/latin1.txt";
  write_file(f, "a caf\xe9 by the sea\nand another line of text\n");
  EXPECT_TRUE(IsBadInput(eval_on(f), f));
}

TEST(CliBadInput, MissingDataFile) {
  QT_REQUIRE_STORIES();
  std::string f = scratch_dir() + "/nope.txt";
  EXPECT_TRUE(IsBadInput(eval_on(f), f));
}

// ---- flags ----

TEST(CliBadInput, UnknownMethod) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir();
  std::string data = small_corpus(dir, "d.txt", 20);
  auto r = run_qtune({"finetune", "--model", stories_bin(), "--tokenizer", tok512(), "--data", data, "--method",
                      "sparse-magic", "--out", dir + "/o.gguf"});
  EXPECT_TRUE(IsBadInput(r, "sparse-magic"));
  EXPECT_FALSE(exists(dir + "/o.gguf"));
}

TEST(CliBadInput, BadFlagValues) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir();
  EXPECT_TRUE(IsBadInput(run_qtune({"generate", "-m", stories_bin(), "-t", tok512(), "--max-tokens", "-3"}),
                         "--max-tokens"));
  EXPECT_TRUE(IsBadInput(run_qtune({"generate", "-m", stories_bin(), "-t", tok512(), "--temperature", "warm"}),
                         "--temperature"));
  EXPECT_TRUE(IsBadInput(run_qtune({"generate", "-m", stories_bin(), "-t", tok512(), "--top-p", "1.5"}), "--top-p"));
  EXPECT_TRUE(IsBadInput(run_qtune({"quantize", "-m", stories_bin(), "--bits", "5", "--out", dir + "/q.gguf"}),
                         "--bits"));
  EXPECT_TRUE(IsBadInput(run_qtune({"info", stories_bin(), "--frobnicate"}), "--frobnicate"));
  EXPECT_TRUE(IsBadInput(run_qtune({"frobnicate"}), "frobnicate"));
  std::string data = small_corpus(dir, "d.txt", 20);
  EXPECT_TRUE(IsBadInput(run_qtune({"finetune", "-m", stories_bin(), "-t", tok512(), "--data", data, "--method",
                                    "lora", "--schedule", "zigzag", "--out", dir + "/o.gguf"}),
                         "zigzag"));
  EXPECT_TRUE(IsBadInput(run_qtune({"finetune", "-m", stories_bin(), "-t", tok512(), "--data", data, "--method",
                                    "lora", "--target", "q,nose", "--out", dir + "/o.gguf"}),
                         "nose"));
  EXPECT_FALSE(exists(dir + "/q.gguf"));
  EXPECT_FALSE(exists(dir + "/o.gguf"));
}

TEST(CliBadInput, ResumeWithDifferentRankNamesTheCheckpoint) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir();
  std::string data = small_corpus(dir, "d.txt", 60);
  std::vector<std::string> args = {"finetune", "-m", stories_bin(), "-t", tok512(), "--data", data, "--seq", "32",
                                   "--steps", "2", "--save-every", "1", "--quiet"};
  auto first_args = args;
  first_args.insert(first_args.end(), {"--out", dir + "/o.gguf"});
  auto first = run_qtune(first_args);
  ASSERT_EQ(first.code, 0) << first.err;
  args.insert(args.end(), {"--rank", "2", "--resume", dir + "/o.gguf.ckpt.gguf", "--out", dir + "/o2.gguf"});
  EXPECT_TRUE(IsBadInput(run_qtune(args), dir + "/o.gguf.ckpt.gguf"));
  EXPECT_FALSE(exists(dir + "/o2.gguf"));
}

TEST(CliBadInput, AdapterIsNotAModelAndModelIsNotAnAdapter) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir(), q = dir + "/q8.gguf";
  ASSERT_EQ(run_qtune({"quantize", "-m", stories_bin(), "--bits", "8", "--out", q}).code, 0);
  EXPECT_TRUE(IsBadInput(run_qtune({"merge", "-m", stories_bin(), "--adapter", q, "--out", dir + "/m.gguf"}), q));
  EXPECT_TRUE(IsBadInput(run_qtune({"export-lora", "--adapter", stories_bin(), "--out", dir + "/e.gguf"}),
                         stories_bin()));
  EXPECT_FALSE(exists(dir + "/m.gguf"));
  EXPECT_FALSE(exists(dir + "/e.gguf"));
}

TEST(CliBadInput, SeqLongerThanContext) {
  QT_REQUIRE_STORIES();
  std::string data = small_corpus(scratch_dir(), "d.txt", 20);
  auto r = run_qtune({"eval", "-m", stories_bin(), "-t", tok512(), "--data", data, "--seq", "4096"});
  EXPECT_TRUE(IsBadInput(r, "--seq"));
}
