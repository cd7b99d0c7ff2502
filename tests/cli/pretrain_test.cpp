// `qtune finetune --init-config`: pretraining a new model from random init.
#include "cli/cli_util.h"

using namespace qtune::test;

TEST(Pretrain, TrainsANewModelThatTheOtherCommandsLoad) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir();
  std::string data = small_corpus(dir, "train.txt", 300);
  std::string out = dir + "/new.gguf";
  RunResult r = run_qtune({"finetune", "--init-config", "dim=32,hidden=64,layers=2,heads=4,kv_heads=2,seq=64",
                           "--tokenizer", tok512(), "--method", "full", "--data", data, "--val-every", "10",
                           "--steps", "30", "--batch", "4", "--seq", "32", "--lr", "3e-3", "--eval-batches", "0",
                           "--threads", "1", "--out", out, "--report", dir + "/r.json"});
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json rep = read_json(dir + "/r.json");
  const auto& curve = rep["loss_curve"];
  ASSERT_EQ(curve.size(), 30u);
  // A fresh model starts near ln(512) = 6.24 and must learn something in 30 steps.
  EXPECT_NEAR(curve[0]["loss"].get<double>(), 6.24, 0.3);
  EXPECT_LT(curve[29]["loss"].get<double>(), curve[0]["loss"].get<double>() - 0.5);
  RunResult info = run_qtune({"info", out});
  ASSERT_EQ(info.code, 0) << info.err;
  EXPECT_NE(info.out.find("32"), std::string::npos);
  RunResult ev = run_qtune({"eval", "--model", out, "--tokenizer", tok512(), "--data", data, "--val-every", "10",
                            "--seq", "32", "--report", dir + "/e.json"});
  ASSERT_EQ(ev.code, 0) << ev.err;
  EXPECT_NEAR(read_json(dir + "/e.json")["perplexity"].get<double>(), rep["val_perplexity"].get<double>(),
              1e-3 * rep["val_perplexity"].get<double>());
}

TEST(Pretrain, BadFlags) {
  QT_REQUIRE_STORIES();
  std::string dir = scratch_dir();
  std::string data = small_corpus(dir, "train.txt", 20);
  std::vector<std::string> base = {"finetune", "--data", data, "--out", dir + "/o.gguf", "--steps", "1"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return run_qtune(a);
  };
  const std::string cfg = "dim=32,hidden=64,layers=2,heads=4,seq=64";
  EXPECT_TRUE(IsBadInput(with({"--init-config", cfg, "--method", "full"}), "--tokenizer"));
  EXPECT_TRUE(IsBadInput(with({"--init-config", cfg, "--tokenizer", tok512(), "--method", "lora"}), "--method full"));
  EXPECT_TRUE(IsBadInput(with({"--init-config", cfg, "--model", stories_bin(), "--tokenizer", tok512()}), "--init-config"));
  EXPECT_TRUE(IsBadInput(with({"--init-config", "dim=30,hidden=64,layers=2,heads=4,seq=64", "--tokenizer", tok512(),
                               "--method", "full"}),
                         "dim 30"));
  EXPECT_TRUE(IsBadInput(with({"--tokenizer", tok512()}), "--model"));
}
