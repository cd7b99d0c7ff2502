// The final validation of `finetune` scores the whole held-out set, so the perplexity it reports
// is the one `eval` gives for the merged (deployed) model — for every method, with default flags
// (periodic evaluations sample --eval-batches 8; the final one must not).
#include <gtest/gtest.h>

#include "adapters/method_options.h"
#include "cli_util.h"

using namespace qtune::test;

TEST(CliFinalValidation, EveryMethodReportsWhatEvalOfTheMergedModelGives) {
  QT_REQUIRE_STORIES();
  const std::string dir = scratch_dir();
  const std::string train = small_corpus(dir, "train.txt", 200);
  const std::string val = small_corpus(dir, "val.txt", 150, 200);  // > 8 batches of 4 × 64 tokens
  for (const std::string method : qtune::method_names()) {
    const std::string out = dir + "/" + method + ".gguf", merged = dir + "/" + method + ".merged.gguf";
    // Default flags except the sizes (no --eval-batches: the default samples 8 batches).
    std::vector<std::string> args = {"finetune", "-m", stories_bin(), "-t", tok512(), "--data", train,
                                     "--val-file", val, "--method", method, "--steps", "3", "--batch", "4",
                                     "--seq", "64", "--threads", "1", "--eval-every", "2", "--out", out,
                                     "--report", out + ".json", "--quiet"};
    auto r = run_qtune(args);
    ASSERT_EQ(r.code, 0) << method << ": " << r.err;
    auto j = read_json(out + ".json");
    EXPECT_FLOAT_EQ(j["lr"].get<float>(), qtune::method_info(method).default_lr) << method << ": default --lr";
    const int64_t windows = j["val_windows"];
    ASSERT_GT(windows, 8 * 4) << "the validation set must be larger than the periodic sample";
    EXPECT_EQ(j["val_perplexity_windows"].get<int64_t>(), windows) << method;
    EXPECT_EQ(j["val_curve"][0]["windows"].get<int64_t>(), 8 * 4) << method << ": step 2 samples 8 batches";
    std::string deployed = out;  // full fine-tuning writes the model itself
    if (method != "full") {
      auto m = run_qtune({"merge", "-m", stories_bin(), "-t", tok512(), "--adapter", out, "--out", merged});
      ASSERT_EQ(m.code, 0) << method << ": " << m.err;
      deployed = merged;
    }
    const double want = j["val_perplexity"], got = eval_ppl(deployed, val, deployed + ".eval.json");
    EXPECT_NEAR(got, want, 1e-5 * want) << method;
    EXPECT_EQ(read_json(deployed + ".eval.json")["windows"].get<int64_t>(), windows) << method;
  }
}
