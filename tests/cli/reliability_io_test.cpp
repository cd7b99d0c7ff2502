// End-to-end: issue 9 (reliability), the file-reading items. Non-regular inputs (a FIFO must not
// block any flag that reads a file), NaN/Inf in models and adapters, GGUF semantics, data files
// (byte order mark, extension case, .json) and messages (directories, outputs, quoted content).
// Every run here is bounded: a qtune that blocks dies of SIGALRM and the test fails, not hangs.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "cli_util.h"
#include "io/adapter_file.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/model_file.h"

using namespace qtune::test;

namespace {

constexpr unsigned kLimitSeconds = 60;  // generous on a loaded machine; a FIFO would block forever

// A qtune that blocks, e.g. in open() of a FIFO without a writer, is killed (run_qtune's alarm).
RunResult run_bounded(const std::vector<std::string>& args) { return run_qtune(args, kLimitSeconds); }

::testing::AssertionResult IsBadInputInTime(const RunResult& r, const std::string& needle) {
  if (r.code == 128 + SIGALRM)
    return ::testing::AssertionFailure() << "qtune blocked for " << kLimitSeconds << " s (killed by SIGALRM)";
  return IsBadInput(r, needle);
}

std::string make_fifo(const std::string& dir) {
  const std::string f = dir + "/fifo";
  EXPECT_EQ(::mkfifo(f.c_str(), 0600), 0);
  return f;
}

std::vector<std::string> eval_args(const std::string& model, const std::string& tok, const std::string& data) {
  return {"eval", "-m", model, "-t", tok, "--data", data, "--seq", "32", "--batch", "2"};
}

// stories260K as a GGUF (F32) with `edit` applied to the writer before it is written.
template <class Edit>
std::string stories_gguf(const std::string& path, Edit&& edit) {
  const std::string plain = path + ".plain.gguf";
  qtune::save_model_gguf(qtune::load_model(stories_bin()), plain, qtune::GgufSaveOptions{});
  qtune::GgufWriter w;
  {
    qtune::GgufFile f(plain);
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (const auto& t : f.tensors())
      w.add_raw_tensor(t.name, t.ne, t.type, std::vector<uint8_t>(t.data, t.data + t.nbytes));
  }
  edit(w);
  w.write(path);
  return path;
}

// A LoRA adapter on attn_q of stories260K's 5 blocks (dim 64, rank 2), without qtune keys (as
// llama.cpp tools write it); blk.0's lora_b [2, 1] is b_value.
std::string lora_adapter(const std::string& path, float b_value) {
  qtune::TensorMap ad;
  for (int l = 0; l < 5; ++l) {
    const std::string stem = "blk." + std::to_string(l) + ".attn_q";
    ad.emplace(stem + ".lora_a", qtune::Tensor({2, 64}));
    ad.emplace(stem + ".lora_b", qtune::Tensor({64, 2}));
    for (auto& x : ad.at(stem + ".lora_a").data) x = 0.01f;
  }
  ad.at("blk.0.attn_q.lora_b").data[5] = b_value;
  qtune::write_lora_adapter(path, ad, {}, {}, 2.0f);
  return path;
}

}  // namespace

// ---- 2. a FIFO (no writer) as every input flag ------------------------------------------------

TEST(CliReliabilityIo, FifoInputsAreRefusedNotWaitedOn) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string f = make_fifo(c.dir);
  const std::string want = f + ": not a regular file (a FIFO)";
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"info", f}), want));
  EXPECT_TRUE(IsBadInputInTime(run_bounded(eval_args(f, tok512(), c.val)), want));
  EXPECT_TRUE(IsBadInputInTime(run_bounded(eval_args(stories_bin(), f, c.val)), want));
  EXPECT_TRUE(IsBadInputInTime(run_bounded(eval_args(stories_bin(), tok512(), f)), want));
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"merge", "-m", stories_bin(), "-a", f, "--out", c.dir + "/m.gguf"}), want));
  EXPECT_FALSE(exists(c.dir + "/m.gguf"));
  auto ft = finetune(c, "lora", c.dir + "/o.gguf", 1);
  auto resume = ft;
  resume.insert(resume.end(), {"--resume", f});
  EXPECT_TRUE(IsBadInputInTime(run_bounded(resume), want));
  for (size_t i = 0; i + 1 < ft.size(); ++i)
    if (ft[i] == "--val-file") ft[i + 1] = f;
  EXPECT_TRUE(IsBadInputInTime(run_bounded(ft), want));
  for (size_t i = 0; i + 1 < ft.size(); ++i)
    if (ft[i] == "--data") ft[i + 1] = f;
  EXPECT_TRUE(IsBadInputInTime(run_bounded(ft), want));
}

// ---- 5. NaN / Inf ------------------------------------------------------------------------------

TEST(CliReliabilityIo, NanModelIsAnErrorNotPerplexityNan) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  std::string bytes = read_file(stories_bin());
  const float nan = std::nanf("");
  std::memcpy(bytes.data() + 28 + 4 * 100, &nan, 4);  // token_embd [1, 36]
  const std::string m = c.dir + "/nan.bin";
  write_file(m, bytes);
  const std::string want = m + ": tensor 'token_embd.weight': element [1, 36] is nan (weights must be finite)";
  EXPECT_TRUE(IsBadInputInTime(run_bounded(eval_args(m, tok512(), c.val)), want));
  const std::string ok_adapter = lora_adapter(c.dir + "/ok.gguf", 0.5f);
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"merge", "-m", m, "-a", ok_adapter, "--out", c.dir + "/m.gguf"}), want));
  EXPECT_FALSE(exists(c.dir + "/m.gguf"));
  // An Inf in a GGUF model: output_norm.weight [9].
  const std::string g = stories_gguf(c.dir + "/inf.gguf", [](qtune::GgufWriter&) {});
  size_t pos;
  {
    qtune::GgufFile f(g);
    pos = f.data_offset() + f.find_tensor("output_norm.weight")->offset + 9 * 4;
  }
  bytes = read_file(g);
  const float inf = INFINITY;
  std::memcpy(bytes.data() + pos, &inf, 4);
  write_file(g, bytes);
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"info", g}),
                               g + ": tensor 'output_norm.weight': element [9] is inf (weights must be finite)"));
}

TEST(CliReliabilityIo, NanAdapterIsRefusedByMerge) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir();
  const std::string ok = lora_adapter(dir + "/ok.gguf", 0.5f);
  auto r = run_bounded({"merge", "-m", stories_bin(), "-a", ok, "--out", dir + "/ok_merged.gguf"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string bad = lora_adapter(dir + "/nan.gguf", std::nanf(""));
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"merge", "-m", stories_bin(), "-a", bad, "--out", dir + "/m.gguf"}),
                               bad + ": tensor 'blk.0.attn_q.lora_b': element [2, 1] is nan (weights must be finite)"));
  EXPECT_FALSE(exists(dir + "/m.gguf"));
}

// ---- 6. GGUF semantics ---------------------------------------------------------------------

TEST(CliReliabilityIo, GgufExtraTensorsOverlapAndEmptyTokens) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::vector<uint8_t> v64(64 * 4, 0);
  const std::string blk = stories_gguf(c.dir + "/blk5.gguf", [&](qtune::GgufWriter& w) {
    w.add_raw_tensor("blk.5.ffn_norm.weight", {64}, qtune::GgmlType::F32, std::vector<uint8_t>(v64));
  });
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"info", blk}),
                               blk + ": tensor 'blk.5.ffn_norm.weight': there is no block 5 (llama.block_count is 5)"));
  const std::string unk = stories_gguf(c.dir + "/unk.gguf", [&](qtune::GgufWriter& w) {
    w.add_raw_tensor("rope_freqs.weight", {64}, qtune::GgmlType::F32, std::vector<uint8_t>(v64));
  });
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"info", unk}),
                               unk + ": tensor 'rope_freqs.weight' is not a tensor of a llama model"));

  // Overlap: the second tensor's offset set to the first's (0).
  const std::string ov = stories_gguf(c.dir + "/ov.gguf", [](qtune::GgufWriter&) {});
  std::string bytes = read_file(ov);
  const std::string name = "output_norm.weight";
  const size_t at = bytes.find(std::string("\x12\0\0\0\0\0\0\0", 8) + name);
  ASSERT_NE(at, std::string::npos);
  std::memset(bytes.data() + at + 8 + name.size() + 4 + 8 + 4, 0, 8);  // n_dims, ne[0], type, offset
  write_file(ov, bytes);
  EXPECT_TRUE(
      IsBadInputInTime(run_bounded({"info", ov}), ov + ": tensor 'output_norm.weight': data at offset 0 overlaps"));

  // A vocabulary of empty tokens as the tokenizer.
  const std::string tok = stories_gguf(c.dir + "/tok.gguf", [](qtune::GgufWriter& w) {
    w.set_str("tokenizer.ggml.model", "llama");
    w.set_arr_str("tokenizer.ggml.tokens", std::vector<std::string>(512));
  });
  EXPECT_TRUE(IsBadInputInTime(run_bounded(eval_args(stories_bin(), tok, c.val)),
                               tok + ": key 'tokenizer.ggml.tokens': token 0 is empty (type 1)"));
}

// ---- 9. data files --------------------------------------------------------------------------------

TEST(CliReliabilityIo, ByteOrderMarkAndExtensionCase) {
  QT_REQUIRE_STORIES();
  const Corpus c = corpus();
  const std::string text = read_file(c.val);
  const double plain = eval_ppl(stories_bin(), c.val, c.dir + "/plain.json");
  write_file(c.dir + "/bom.txt", "\xef\xbb\xbf" + text);
  EXPECT_DOUBLE_EQ(eval_ppl(stories_bin(), c.dir + "/bom.txt", c.dir + "/bom.json"), plain);

  std::string jsonl;
  for (size_t s = 0, e; s < text.size(); s = e + 1) {
    e = text.find('\n', s);
    if (e == std::string::npos) e = text.size();
    const std::string line = text.substr(s, e - s);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // .txt skips blank lines too
    nlohmann::json j;
    j["text"] = line;
    jsonl += j.dump() + "\n";
  }
  write_file(c.dir + "/a.jsonl", jsonl);
  write_file(c.dir + "/B.JSONL", "\xef\xbb\xbf" + jsonl);
  const double lower = eval_ppl(stories_bin(), c.dir + "/a.jsonl", c.dir + "/a.json");
  EXPECT_DOUBLE_EQ(eval_ppl(stories_bin(), c.dir + "/B.JSONL", c.dir + "/b.json"), lower);
  EXPECT_DOUBLE_EQ(lower, plain);  // one JSON document per line = one text document per line

  write_file(c.dir + "/good.json", jsonl);
  EXPECT_TRUE(IsBadInputInTime(run_bounded(eval_args(stories_bin(), tok512(), c.dir + "/good.json")),
                               c.dir + "/good.json: .json files are not read"));
}

// ---- 10. messages ------------------------------------------------------------------------------------

TEST(CliReliabilityIo, DirectoriesAndOutputsAreNamed) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir();
  EXPECT_TRUE(IsBadInputInTime(run_bounded({"info", dir}), dir + ": not a regular file (a directory)"));
  EXPECT_TRUE(IsBadInputInTime(run_bounded(eval_args(stories_bin(), tok512(), dir)),
                               dir + ": not a regular file (a directory)"));
  ::mkdir((dir + "/out.gguf").c_str(), 0700);
  auto r = run_bounded({"quantize", "-m", stories_bin(), "--bits", "8", "--out", dir + "/out.gguf"});
  EXPECT_TRUE(IsBadInputInTime(r, dir + "/out.gguf: cannot write: it is a directory, not a regular file"));
  EXPECT_EQ(r.err.find(".tmp."), std::string::npos) << r.err;
  r = run_bounded({"quantize", "-m", stories_bin(), "--bits", "8", "--out", dir + "/no/such/q.gguf"});
  EXPECT_TRUE(IsBadInputInTime(r, dir + "/no/such/q.gguf: cannot write"));
  EXPECT_EQ(r.err.find(".tmp."), std::string::npos) << r.err;
}

TEST(CliReliabilityIo, QuotedFileContentIsEscapedAndShort) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir();
  const std::string nul = stories_gguf(dir + "/nul.gguf", [](qtune::GgufWriter& w) {
    w.set_str("general.architecture", std::string("lla\0ma\x1b[2J", 10));
  });
  auto r = run_bounded({"info", nul});
  EXPECT_TRUE(IsBadInputInTime(r, "'lla\\x00ma\\x1b[2J' is not supported (only 'llama')"));
  EXPECT_EQ(r.err.find('\x1b'), std::string::npos);
  const std::string big = stories_gguf(dir + "/big.gguf", [](qtune::GgufWriter& w) {
    w.set_str("general.architecture", std::string(1 << 20, 'x'));
  });
  r = run_bounded({"info", big});
  EXPECT_TRUE(IsBadInputInTime(r, std::string(80, 'x') + "\xe2\x80\xa6' is not supported"));
  EXPECT_LT(r.err.size(), big.size() + 200);
}
