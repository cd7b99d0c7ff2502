// Happy paths on stories260K with tiny step counts: finetune, eval, quantize, merge,
// export-lora, info, pretrain — each run through the binary and checked via its outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "cli_util.h"
#include "io/gguf.h"
#include "io/gguf_rules.h"
#include "io/lora_gguf.h"
#include "io/model_file.h"

using namespace qtune::test;


TEST(CliEval, ReportsPerplexityOfTheBaseModel) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  auto r = run_qtune({"eval", "-m", stories_bin(), "-t", tok512(), "--data", c.val, "--seq", "64", "--report",
                      c.dir + "/e.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = read_json(c.dir + "/e.json");
  double loss = j["mean_loss"], ppl = j["perplexity"];
  EXPECT_GT(j["tokens"].get<int64_t>(), 100);
  EXPECT_NEAR(ppl, std::exp(loss), 1e-6 * ppl);
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, 512.0);  // better than uniform over the vocabulary
  // --max-batches limits the work; --val-every evaluates only every K-th document.
  auto j1 = read_json(c.dir + "/e.json");
  eval_ppl(stories_bin(), c.val, c.dir + "/e1.json", {"--max-batches", "1"});
  EXPECT_LT(read_json(c.dir + "/e1.json")["tokens"].get<int64_t>(), j1["tokens"].get<int64_t>());
  eval_ppl(stories_bin(), c.val, c.dir + "/e2.json", {"--val-every", "4"});
  EXPECT_LT(read_json(c.dir + "/e2.json")["tokens"].get<int64_t>(), j1["tokens"].get<int64_t>());
}

TEST(CliFinetune, LoraReportAndMergeIsExact) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  std::string ad = c.dir + "/lora.gguf";
  auto r = run_qtune(finetune(c, "lora", ad, 8));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("loss"), std::string::npos) << "no progress on stderr: " << r.err;
  auto j = read_json(ad + ".json");
  ASSERT_EQ(j["loss_curve"].size(), 8u);
  EXPECT_GT(j["tokens_per_second"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 1 << 20);
  // rank 4 on all 7 projections of 5 layers: (in + out) * 4 per projection
  int64_t per_layer = (64 + 64) * 4 * 2 + (64 + 32) * 4 * 2 + (64 + 172) * 4 * 3;
  EXPECT_EQ(j["trainable_params"].get<int64_t>(), 5 * per_layer);
  double first = j["loss_curve"][0]["loss"], last = j["loss_curve"][7]["loss"];
  EXPECT_LT(last, first) << "loss did not go down";

  // the adapter and its export load in llama.cpp against the base (io's rule checker, in-process)
  auto base_model = qtune::load_model(stories_bin());
  EXPECT_EQ(qtune::check_llamacpp_lora_rules(qtune::GgufFile(ad), &base_model), std::vector<std::string>{});
  std::string exported = c.dir + "/exported.gguf";
  auto ex = run_qtune({"export-lora", "--adapter", ad + ".ckpt.gguf", "--out", exported, "--model", stories_bin()});
  ASSERT_EQ(ex.code, 0) << ex.err;
  EXPECT_EQ(qtune::check_llamacpp_lora_rules(qtune::GgufFile(exported), &base_model), std::vector<std::string>{});
  auto lora = qtune::load_lora_gguf(exported);
  EXPECT_EQ(lora.adapters.size(), 2u * 7u * 5u);
  EXPECT_FLOAT_EQ(lora.alpha, 16.0f);
  auto trained = qtune::load_lora_gguf(ad);  // the checkpoint's final state is the adapter itself
  for (const auto& [name, t] : trained.adapters) {
    ASSERT_TRUE(lora.adapters.count(name)) << name;
    EXPECT_EQ(0, std::memcmp(t.ptr(), lora.adapters.at(name).ptr(), t.numel() * sizeof(float))) << name;
  }

  // float merge, then eval on the same validation file: same perplexity as in-process.
  std::string merged = c.dir + "/merged.gguf";
  auto m = run_qtune({"merge", "-m", stories_bin(), "-t", tok512(), "--adapter", ad, "--out", merged});
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_EQ(qtune::check_llamacpp_model_rules(qtune::GgufFile(merged)), std::vector<std::string>{});
  EXPECT_EQ(qtune::llamacpp_unsupported(qtune::GgufFile(merged)), std::vector<std::string>{});  // all float
  double ppl = eval_ppl(merged, c.val, c.dir + "/merged_eval.json");
  double want = j["val_perplexity"];
  EXPECT_NEAR(ppl, want, 1e-4) << "merged " << ppl << " vs in-process " << want;
  double base = eval_ppl(stories_bin(), c.val, c.dir + "/base_eval.json");
  EXPECT_NE(ppl, base) << "the merge changed nothing";

  // merge --bits 8: per-row symmetric PTQ of the projections, exact Q8_0 where rows are a
  // multiple of 32 (ffn_down's 172-wide rows take the exact I8 layout), close to the float merge
  std::string q = c.dir + "/merged_q8.gguf";
  auto mq = run_qtune({"merge", "-m", stories_bin(), "-t", tok512(), "--adapter", ad, "--out", q, "--bits", "8"});
  ASSERT_EQ(mq.code, 0) << mq.err;
  EXPECT_EQ(qtune::check_llamacpp_model_rules(qtune::GgufFile(q)), std::vector<std::string>{});
  auto qi = info_json(q);
  EXPECT_EQ(qi["params_by_type"].value("Q8_0", 0), 5 * (64 * 64 * 2 + 64 * 32 * 2 + 172 * 64 * 2)) << qi.dump();
  EXPECT_EQ(qi["params_by_type"].value("I8", 0), 5 * (64 * 172)) << qi.dump();
  EXPECT_NEAR(eval_ppl(q, c.val, c.dir + "/q8_eval.json"), ppl, 0.02 * ppl);
}

TEST(CliFinetune, FullAndQloraWriteUsableOutputs) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  std::string full = c.dir + "/full.gguf";
  auto r = run_qtune(finetune(c, "full", full, 4));
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = read_json(full + ".json");
  EXPECT_EQ(j["trainable_params"].get<int64_t>(), 260032);
  // the full fine-tune's output is a model: eval reproduces the in-process val perplexity
  EXPECT_NEAR(eval_ppl(full, c.val, c.dir + "/full_eval.json"), j["val_perplexity"].get<double>(), 1e-4);

  std::string ql = c.dir + "/qlora.gguf";
  auto q = run_qtune([&] {
    auto a = finetune(c, "qlora", ql, 4);
    a.insert(a.end(), {"--bits", "4", "--group", "32"});
    return a;
  }());
  ASSERT_EQ(q.code, 0) << q.err;
  EXPECT_TRUE(read_json(ql + ".json").contains("val_perplexity"));
  auto m = run_qtune({"merge", "-m", stories_bin(), "--adapter", ql, "--out", c.dir + "/qm.gguf"});
  EXPECT_EQ(m.code, 0) << m.err;
}

TEST(CliQuantize, Q8AndQ4KeepOddRowsFloatAndSayIt) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  double base = eval_ppl(stories_bin(), c.val, c.dir + "/b.json");
  double ppl[2];
  int i = 0;
  for (const char* bits : {"8", "4"}) {
    std::string q = c.dir + "/q" + bits + ".gguf";
    auto r = run_qtune({"quantize", "-m", stories_bin(), "-t", tok512(), "--bits", bits, "--out", q});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(qtune::check_llamacpp_model_rules(qtune::GgufFile(q)), std::vector<std::string>{});
    EXPECT_NE(r.out.find("llama.cpp: loadable"), std::string::npos) << r.out;  // F32 fallback rows run there
    // ffn_down rows have 172 elements (not a multiple of 32): the output must say what happened
    EXPECT_NE((r.out + r.err).find("ffn_down"), std::string::npos) << r.out << r.err;
    auto info = info_json(q);
    for (const auto& t : info["tensors"]) {
      std::string name = t["name"];
      if (name.find("ffn_down") != std::string::npos || name.find("norm") != std::string::npos)
        EXPECT_EQ(t["type"], "F32") << name;
      else
        EXPECT_EQ(t["type"], std::string(bits) == "8" ? "Q8_0" : "Q4_1") << name;
    }
    ppl[i++] = eval_ppl(q, c.val, c.dir + "/q" + bits + ".json");
  }
  EXPECT_NEAR(ppl[0], base, 0.02 * base);
  EXPECT_GT(ppl[1], ppl[0]);  // 4 bits lose more than 8
  // greedy decoding from the Q8 model still starts like the float model
  auto g = run_qtune({"generate", "-m", c.dir + "/q8.gguf", "-t", tok512(), "--prompt", "", "--max-tokens", "3",
                      "--temperature", "0", "--ids"});
  ASSERT_EQ(g.code, 0) << g.err;
  EXPECT_EQ(g.out, "403 407 261\n");
}
