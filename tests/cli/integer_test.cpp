// The integer workflow through the binary on stories260K: finetune with qalora / intlora-mul /
// intlora-shift (W4 and W8A8), merge exactly into integers, eval the deployed GGUF (integer
// inference) and compare with the in-process validation of the training forward; resume with
// state; the bad-input paths of the new flags.
#include <gtest/gtest.h>

#include <cmath>

#include "cli_util.h"
#include "io/gguf.h"
#include "io/gguf_rules.h"

using namespace qtune::test;

namespace {

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& extra) {
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Trains, merges, and returns {in-process val ppl, deployed eval ppl}; checks the GGUF rules.
std::pair<double, double> train_merge_eval(const Corpus& c, const std::string& method,
                                           const std::vector<std::string>& extra, const std::string& tag) {
  const std::string ad = c.dir + "/" + tag + ".gguf", merged = c.dir + "/" + tag + ".merged.gguf";
  auto r = run_qtune(with(finetune(c, method, ad, 6), extra));
  EXPECT_EQ(r.code, 0) << r.err;
  auto m = run_qtune({"merge", "-m", stories_bin(), "-t", tok512(), "--adapter", ad, "--out", merged});
  EXPECT_EQ(m.code, 0) << m.err;
  EXPECT_NE(m.out.find("exact"), std::string::npos) << m.out;
  EXPECT_EQ(qtune::check_llamacpp_model_rules(qtune::GgufFile(merged)), std::vector<std::string>{}) << tag;
  const double want = read_json(ad + ".json")["val_perplexity"];
  return {want, eval_ppl(merged, c.val, merged + ".eval.json")};
}

}  // namespace

// Weight-only (float activations): the deployed model evaluates exactly as it trained (the same
// integers; only the GEMM's float summation order differs).
TEST(CliInteger, W4MergesExactlyAndEvaluatesAsItTrained) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  for (const char* m : {"qalora", "intlora-mul", "intlora-shift"}) {
    auto [want, got] = train_merge_eval(c, m, {"--bits", "4"}, std::string(m) + "4");
    EXPECT_NEAR(got, want, 1e-5 * want) << m;
  }
  // layouts: QA-LoRA W4 → Q4_1, IntLoRA-MUL W4 → Q8_0 (P fits int8); ffn_down rows (172) are not
  // a multiple of 32 → the exact I8 layout
  auto qi = info_json(c.dir + "/qalora4.merged.gguf");
  EXPECT_EQ(qi["params_by_type"].value("Q4_1", 0), 5 * (64 * 64 * 2 + 64 * 32 * 2 + 172 * 64 * 2)) << qi.dump();
  EXPECT_EQ(qi["params_by_type"].value("I8", 0), 5 * 64 * 172) << qi.dump();
  auto mi = info_json(c.dir + "/intlora-mul4.merged.gguf");
  EXPECT_EQ(mi["params_by_type"].value("Q8_0", 0), 5 * (64 * 64 * 2 + 64 * 32 * 2 + 172 * 64 * 2)) << mi.dump();
}

// W8A8: training fake-quantizes activations with calibrated static scales; the merged model
// records them and eval runs real int8 activations through the integer GEMM by default.
TEST(CliInteger, W8A8RecordsTheActivationScalesAndRunsInt8) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  for (const char* m : {"qalora", "intlora-mul"}) {
    const std::string tag = std::string(m) + "8a8";
    auto [want, got] = train_merge_eval(c, m, {"--bits", "8", "--act-bits", "8", "--act-calib", "2"}, tag);
    EXPECT_NEAR(got, want, 2e-3 * want) << m;
    const std::string merged = c.dir + "/" + tag + ".merged.gguf";
    auto j = read_json(merged + ".eval.json");
    EXPECT_EQ(j["act_bits"].get<int>(), 8);
    EXPECT_NE(j["inference"].get<std::string>().find("static"), std::string::npos) << j.dump();
    // forcing float activations, or per-token int8, gives other (valid) numbers
    const double f = eval_ppl(merged, c.val, merged + ".f.json", {"--act-bits", "0"});
    const double d = eval_ppl(merged, c.val, merged + ".d.json", {"--act-dynamic"});
    EXPECT_NE(f, got);
    EXPECT_NE(d, got);
    EXPECT_NEAR(f, got, 0.05 * got);
    EXPECT_NEAR(d, got, 0.05 * got);
  }
}

// The slots' state (activation calibration, IntLoRA-MUL's frozen second quantizer) goes through
// a checkpoint: 4 steps + resume to 8 equals 8 steps, with calibration spanning the resume
// (a constant schedule, so the 4-step run's learning rates are those of the 8-step one).
TEST(CliInteger, ResumeCarriesTheSlotState) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  const std::vector<std::string> extra = {"--bits", "4", "--act-bits", "8", "--act-calib", "6", "--schedule",
                                          "constant"};
  auto ref = run_qtune(with(finetune(c, "intlora-mul", c.dir + "/ref.gguf", 8), extra));
  ASSERT_EQ(ref.code, 0) << ref.err;
  auto part = run_qtune(with(finetune(c, "intlora-mul", c.dir + "/part.gguf", 4), extra));
  ASSERT_EQ(part.code, 0) << part.err;
  auto rest = run_qtune(with(finetune(c, "intlora-mul", c.dir + "/rest.gguf", 8),
                             with(extra, {"--resume", c.dir + "/part.gguf.ckpt.gguf"})));
  ASSERT_EQ(rest.code, 0) << rest.err;
  auto a = read_json(c.dir + "/ref.gguf.json")["loss_curve"], b = read_json(c.dir + "/rest.gguf.json")["loss_curve"];
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << i;
  // a different --act-bits is refused on resume, naming the setting
  auto bad = run_qtune(with(finetune(c, "intlora-mul", c.dir + "/bad.gguf", 8),
                            {"--bits", "4", "--resume", c.dir + "/part.gguf.ckpt.gguf"}));
  EXPECT_TRUE(IsBadInput(bad, "act-bits"));
}

TEST(CliInteger, BadFlagsAndMisuseAreOneLineErrors) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  const std::string ad = c.dir + "/qa.gguf";
  ASSERT_EQ(run_qtune(finetune(c, "qalora", ad, 2)).code, 0);
  EXPECT_TRUE(IsBadInput(run_qtune({"merge", "-m", stories_bin(), "--adapter", ad, "--out", c.dir + "/x.gguf",
                                    "--bits", "8"}),
                         "does not apply"));
  EXPECT_TRUE(IsBadInput(run_qtune({"export-lora", "--adapter", ad, "--out", c.dir + "/y.gguf"}), "not an additive"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "lora", c.dir + "/z.gguf", 2), {"--zero-free"})), "intlora-mul"));
  // one rule: a flag that does not apply to the method is refused, even at its default value
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "lora", c.dir + "/z.gguf", 2), {"--symmetric"})), "--symmetric"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "lora", c.dir + "/z.gguf", 2), {"--bits", "4"})), "--bits"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "qalora", c.dir + "/z.gguf", 2), {"--alpha", "16"})), "--alpha"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "qalora", c.dir + "/z.gguf", 2), {"--vmc", "std"})), "--vmc"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "lora", c.dir + "/z.gguf", 2), {"--target", "q,output"})),
                         "'output'"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "intlora-mul", c.dir + "/z.gguf", 2), {"--vmc", "l2"})), "vmc"));
  EXPECT_TRUE(IsBadInput(run_qtune(with(finetune(c, "qalora", c.dir + "/z.gguf", 2), {"--act-bits", "4"})),
                         "act-bits"));
  EXPECT_TRUE(IsBadInput(run_qtune({"eval", "-m", stories_bin(), "-t", tok512(), "--data", c.val, "--act-dynamic"}),
                         "act-dynamic"));
  // no half-written outputs were left behind by the refused merge
  EXPECT_FALSE(exists(c.dir + "/x.gguf"));
}

// The zero-free grid removes every zero integer from the IntLoRA base (reported in the JSON).
TEST(CliInteger, ZeroWeightShareIsReportedAndZeroFreeRemovesIt) {
  QT_REQUIRE_STORIES();
  auto c = corpus();
  ASSERT_EQ(run_qtune(with(finetune(c, "intlora-mul", c.dir + "/a.gguf", 2), {"--bits", "4"})).code, 0);
  ASSERT_EQ(run_qtune(with(finetune(c, "intlora-mul", c.dir + "/b.gguf", 2), {"--bits", "4", "--zero-free"})).code,
            0);
  const double share = read_json(c.dir + "/a.gguf.json")["intlora_zero_weight_share"];
  EXPECT_GT(share, 0.02);
  EXPECT_LT(share, 0.5);
  EXPECT_EQ(read_json(c.dir + "/b.gguf.json")["intlora_zero_weight_share"].get<double>(), 0.0);
  // and the share of the learned update that the merge drops on those weights
  const double lost = read_json(c.dir + "/a.gguf.json")["intlora_lost_update_share"];
  EXPECT_GT(lost, 0.0);
  EXPECT_LT(lost, 1.0);
  EXPECT_EQ(read_json(c.dir + "/b.gguf.json")["intlora_lost_update_share"].get<double>(), 0.0);
}
