// `qtune eval --style llama-perplexity --ctx N` on stories260K: the figure it reports equals
// llama.cpp's rule computed here independently, through the library — the model's logits on each
// chunk (BOS in place of its first token), log-softmax in double, the NLL of positions
// ctx/2 .. ctx−2 summed — and bad uses give one error line.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli_util.h"
#include "io/model_file.h"
#include "io/tokenizer.h"
#include "models/llama.h"

using namespace qtune::test;

namespace {

struct Reference {
  double ppl = 0;
  int64_t stream = 0, chunks = 0, scored = 0;
};

// llama-perplexity on `text` with chunks of ctx, written out from its definition.
Reference reference_perplexity(std::string text, int ctx) {
  if (!text.empty() && text.back() == '\n') text.pop_back();  // llama.cpp's -f drops one trailing newline
  const auto tok = qtune::load_tokenizer(tok512());
  const std::vector<int> s = tok->encode(text, /*bos=*/true, /*eos=*/false);
  qtune::MethodOptions how;
  how.frozen = true;
  qtune::Llama model(qtune::load_model(stories_bin()), how, 0);
  const int V = model.config().vocab_size;
  Reference r;
  r.stream = static_cast<int64_t>(s.size());
  r.chunks = static_cast<int64_t>(s.size()) / ctx;
  double nll = 0;
  for (int64_t i = 0; i < r.chunks; ++i) {
    std::vector<int> in(s.begin() + i * ctx, s.begin() + (i + 1) * ctx);
    in[0] = tok->bos_id();
    model.forward(in.data(), nullptr, 1, ctx);
    const float* logits = model.logits();
    for (int j = ctx / 2; j < ctx - 1; ++j) {
      const float* l = logits + static_cast<int64_t>(j) * V;
      double mx = l[0], sum = 0;
      for (int v = 1; v < V; ++v) mx = std::max(mx, double(l[v]));
      for (int v = 0; v < V; ++v) sum += std::exp(double(l[v]) - mx);
      nll += std::log(sum) + mx - double(l[s[i * ctx + j + 1]]);
      ++r.scored;
    }
  }
  r.ppl = std::exp(nll / double(r.scored));
  return r;
}

}  // namespace

TEST(CliLlamaPerplexity, EqualsLlamaCppsRuleComputedIndependently) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir();
  const std::string data = small_corpus(dir, "text.txt", 30);  // lines are NOT documents here
  const int ctx = 64;
  const Reference want = reference_perplexity(read_file(data), ctx);
  ASSERT_GE(want.chunks, 4) << "the corpus should span several chunks";
  for (const std::string batch : {"1", "3"}) {  // chunks per forward: the figure does not depend on it
    const std::string report = dir + "/ppl." + batch + ".json";
    auto r = run_qtune({"eval", "-m", stories_bin(), "-t", tok512(), "--data", data, "--style", "llama-perplexity",
                        "--ctx", std::to_string(ctx), "--batch", batch, "--report", report});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("chunks of 64"), std::string::npos) << r.out;
    const auto j = read_json(report);
    EXPECT_EQ(j["style"], "llama-perplexity");
    EXPECT_EQ(j["ctx"].get<int>(), ctx);
    EXPECT_EQ(j["stream_tokens"].get<int64_t>(), want.stream);
    EXPECT_EQ(j["chunks"].get<int64_t>(), want.chunks);
    EXPECT_EQ(j["scored_tokens"].get<int64_t>(), want.scored);
    EXPECT_EQ(j["scored_tokens"].get<int64_t>(), want.chunks * (ctx - ctx / 2 - 1));
    EXPECT_NEAR(j["perplexity"].get<double>(), want.ppl, 2e-5 * want.ppl) << "batch " << batch;
  }
  // The default style scores something else (every line its own BOS-first document, every
  // position of a window): a different figure over more tokens.
  const std::string qreport = dir + "/qtune.json";
  const double q = eval_ppl(stories_bin(), data, qreport);
  EXPECT_EQ(read_json(qreport)["style"], "qtune");
  EXPECT_GT(std::abs(q - want.ppl), 1e-3 * want.ppl);
}

TEST(CliLlamaPerplexity, ChunksCapsTheChunksScored) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir();
  const std::string data = small_corpus(dir, "text.txt", 30);
  const std::string report = dir + "/ppl.json";
  auto r = run_qtune({"eval", "-m", stories_bin(), "-t", tok512(), "--data", data, "--style", "llama-perplexity",
                      "--ctx", "64", "--chunks", "2", "--report", report});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = read_json(report);
  EXPECT_EQ(j["chunks"].get<int64_t>(), 2);
  EXPECT_EQ(j["scored_tokens"].get<int64_t>(), 2 * 31);
  EXPECT_GT(j["stream_tokens"].get<int64_t>(), 4 * 64);
}

TEST(CliLlamaPerplexity, BadUsesGiveOneErrorLine) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir();
  const std::string data = small_corpus(dir, "text.txt", 30);
  const std::string tiny = small_corpus(dir, "tiny.txt", 1);
  const std::vector<std::string> base = {"eval", "-m", stories_bin(), "-t", tok512(), "--style", "llama-perplexity"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run_qtune(a);
  };
  EXPECT_TRUE(IsBadInput(with({"--data", tiny, "--ctx", "64"}), "needs at least 128"));
  EXPECT_TRUE(IsBadInput(with({"--data", data, "--ctx", "513"}), "--ctx 513 is longer than the context"));
  EXPECT_TRUE(IsBadInput(with({"--data", data}), "needs --ctx"));
  EXPECT_TRUE(IsBadInput(with({"--data", data, "--ctx", "64", "--seq", "32"}), "--seq does not apply"));
  const std::string jsonl = dir + "/t.jsonl";
  write_file(jsonl, "{\"text\": \"hello there\"}\n");
  EXPECT_TRUE(IsBadInput(with({"--data", jsonl, "--ctx", "64"}), "not JSON Lines"));
  EXPECT_TRUE(IsBadInput(run_qtune({"eval", "-m", stories_bin(), "-t", tok512(), "--data", data, "--ctx", "64"}),
                         "--ctx applies to --style llama-perplexity only"));
  EXPECT_TRUE(IsBadInput(run_qtune({"eval", "-m", stories_bin(), "-t", tok512(), "--data", data, "--style", "llama"}),
                         "--style"));
}
