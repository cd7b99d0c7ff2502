// qtune dit-train on Fashion-MNIST: a tiny pretraining run learns (its held-out loss falls),
// a resume from a checkpoint writes the same file as an uninterrupted run, bad input is one
// error line with exit 2, a LoRA fine-tune of the pretrained DiT on other classes writes an
// adapter that `merge` folds into the DiT, and `info` describes a DiT GGUF.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_util.h"

using namespace qtune::test;

namespace {

// A DiT of ~27K parameters (16 tokens of 7×7 patches): a few hundred ms per run on one thread.
std::vector<std::string> pretrain_args(const std::string& out, int steps) {
  return {"dit-train", "--data", fashion_mnist_dir(), "--init-config", "patch=7,dim=32,depth=1,heads=2,freq_dim=32",
          "--method", "full", "--classes", "0-1", "--steps", std::to_string(steps), "--batch", "8", "--lr", "3e-3",
          "--seed", "3", "--threads", "1", "--val-images", "32", "--schedule", "constant", "--out", out,
          "--report", out + ".json", "-q"};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& extra) {
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

#define QT_REQUIRE_FASHION() QT_REQUIRE_DATASET(fashion_mnist_dir() + "/train-images-idx3-ubyte.gz")

}  // namespace

TEST(DitTrainCli, PretrainingLowersTheHeldOutLoss) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), out = dir + "/dit.gguf";
  RunResult r = run_qtune(with(pretrain_args(out, 40), {"--eval-every", "10", "--eval-batches", "0"}));
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json rep = read_json(out + ".json");
  EXPECT_EQ(rep["command"], "dit-train");
  EXPECT_EQ(rep["heldout"]["images"].get<int>(), 32);
  const auto& val = rep["val_curve"];
  ASSERT_EQ(val.size(), 4u);
  // adaLN-Zero starts at ε̂ = 0, a loss of E ε² ≈ 1; 40 steps learn a good part of it
  EXPECT_LT(val[3]["loss"].get<double>(), val[0]["loss"].get<double>());
  EXPECT_LT(rep["val_loss"].get<double>(), 0.85);
  EXPECT_LT(rep["loss_curve"][39]["loss"].get<double>(), rep["loss_curve"][0]["loss"].get<double>());
  const nlohmann::json info = info_json(out);
  EXPECT_EQ(info["architecture"], "dit");
  EXPECT_EQ(info["config"]["patch"].get<int>(), 7);
  EXPECT_EQ(info["parameters"].get<int64_t>(), rep["trainable_params"].get<int64_t>());
}

// The held-out loss is a function of the model alone: the same (t, ε) per image whatever
// --seed and --batch, so two runs' figures are comparable.
TEST(DitTrainCli, HeldOutLossIsFixedAcrossSeedsAndBatches) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), out = dir + "/dit.gguf";
  ASSERT_EQ(run_qtune(pretrain_args(out, 5)).code, 0);
  auto heldout = [&](const std::string& seed, const std::string& batch) {
    RunResult r = run_qtune({"dit-train", "--data", fashion_mnist_dir(), "--model", out, "--method", "lora",
                             "--classes", "0-1", "--steps", "1", "--lr", "1e-12", "--seed", seed, "--batch", batch,
                             "--threads", "1", "--val-images", "32", "--out", dir + "/a.gguf", "--report",
                             dir + "/a.json", "-q"});
    EXPECT_EQ(r.code, 0) << r.err;
    return read_json(dir + "/a.json")["val_loss"].get<double>();
  };
  const double a = heldout("1", "8"), b = heldout("2", "5");
  EXPECT_NEAR(a, b, 1e-5 * a);
}

TEST(DitTrainCli, ResumeWritesTheSameFile) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir();
  ASSERT_EQ(run_qtune(with(pretrain_args(dir + "/full.gguf", 20), {"--save-every", "10"})).code, 0);
  ASSERT_EQ(run_qtune(with(pretrain_args(dir + "/half.gguf", 10), {"--save-every", "10"})).code, 0);
  std::filesystem::copy_file(dir + "/half.gguf.ckpt.gguf", dir + "/step10.ckpt.gguf");
  const nlohmann::json ck = info_json(dir + "/step10.ckpt.gguf");  // a full checkpoint: no adapter, but info
  EXPECT_EQ(ck["kind"], "checkpoint");
  EXPECT_EQ(ck["method"]["method"], "full");
  EXPECT_EQ(ck["step"].get<int>(), 10);
  EXPECT_EQ(ck["parameters"].get<int64_t>(), read_json(dir + "/half.gguf.json")["trainable_params"].get<int64_t>());
  RunResult r = run_qtune(with(pretrain_args(dir + "/resumed.gguf", 20), {"--resume", dir + "/step10.ckpt.gguf"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("resumed from step 10"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(dir + "/full.gguf"), read_file(dir + "/resumed.gguf"));
  EXPECT_EQ(read_json(dir + "/full.gguf.json")["loss_curve"], read_json(dir + "/resumed.gguf.json")["loss_curve"]);
}

TEST(DitTrainCli, BadInputIsOneLine) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), out = dir + "/o.gguf";
  auto base = [&](const std::string& classes, const std::string& batch, const std::string& data) {
    return std::vector<std::string>{"dit-train", "--data", data, "--init-config", "patch=7,dim=32,depth=1,heads=2",
                                    "--method", "full", "--classes", classes, "--batch", batch, "--steps", "1", "--out", out};
  };
  const std::string fm = fashion_mnist_dir();
  EXPECT_TRUE(IsBadInput(run_qtune(base("0-12", "8", fm)), "class 12"));
  EXPECT_TRUE(IsBadInput(run_qtune(base("0-1", "0", fm)), "--batch"));
  EXPECT_TRUE(IsBadInput(run_qtune(base("0-1", "8", dir + "/nowhere")), "apt-get install dataset-fashion-mnist"));
  // a copy of the dataset whose training images stop a tenth of the way in
  const std::string cut = dir + "/cut";
  std::filesystem::create_directories(cut);
  for (const char* f : {"train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    std::filesystem::copy_file(fm + "/" + f, cut + "/" + f);
  const std::string images = read_file(fm + "/train-images-idx3-ubyte.gz");
  write_file(cut + "/train-images-idx3-ubyte.gz", images.substr(0, images.size() / 10));
  EXPECT_TRUE(IsBadInput(run_qtune(base("0-1", "8", cut)), "train-images-idx3-ubyte.gz"));
  EXPECT_TRUE(IsBadInput(run_qtune({"dit-train", "--data", fm, "--init-config", "patch=7,dim=32,depth=1,heads=2",
                                    "--method", "lora", "--out", out}),
                         "--method full"));
  EXPECT_TRUE(IsBadInput(run_qtune({"dit-train", "--data", fm, "--init-config", "patch=5,dim=32,depth=1,heads=2",
                                    "--method", "full", "--out", out}),
                         "patch"));
  EXPECT_FALSE(std::filesystem::exists(out));
}

TEST(DitTrainCli, LoraFineTuneOnNewClassesWritesAnAdapter) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), base = dir + "/base.gguf", out = dir + "/lora.gguf";
  ASSERT_EQ(run_qtune(pretrain_args(base, 20)).code, 0);
  RunResult r = run_qtune({"dit-train", "--data", fashion_mnist_dir(), "--model", base, "--method", "lora", "--rank",
                           "4", "--classes", "8-9", "--steps", "10", "--batch", "8", "--seed", "3", "--threads", "1",
                           "--val-images", "32", "--out", out, "--report", out + ".json", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json rep = read_json(out + ".json");
  EXPECT_EQ(rep["method"]["method"], "lora");
  EXPECT_EQ(rep["classes"], nlohmann::json({8, 9}));
  // rank 4 on q, k, v, o, up, down of one block: 4·(32+32)·4 + 4·(32+128)·2, and the class
  // embedding (11 rows of 32; --class-embedding train, the default)
  EXPECT_EQ(rep["trainable_params"].get<int64_t>(), 4 * 64 * 4 + 4 * 160 * 2 + 11 * 32);
  EXPECT_EQ(rep["class_embedding"], "train");
  const nlohmann::json info = info_json(out);
  EXPECT_EQ(info["kind"], "qtune adapter");  // a DiT adapter is never llama.cpp's
  EXPECT_EQ(info["architecture"], "dit");
  EXPECT_FALSE(info["llama_cpp_applies"].get<bool>());
  EXPECT_EQ(info["method"]["method"], "lora");
  // merged into the base: a DiT GGUF whose held-out loss (a 1-step lr≈0 LoRA run on it) is the
  // adapter run's own
  RunResult m = run_qtune({"merge", "--model", base, "--adapter", out, "--out", dir + "/merged.gguf"});
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_EQ(info_json(dir + "/merged.gguf")["architecture"], "dit");
  RunResult e = run_qtune({"dit-train", "--data", fashion_mnist_dir(), "--model", dir + "/merged.gguf", "--method",
                           "lora", "--classes", "8-9", "--steps", "1", "--lr", "1e-12", "--batch", "8", "--threads",
                           "1", "--val-images", "32", "--out", dir + "/e.gguf", "--report", dir + "/e.json", "-q"});
  ASSERT_EQ(e.code, 0) << e.err;
  EXPECT_NEAR(read_json(dir + "/e.json")["val_loss"].get<double>(), rep["val_loss"].get<double>(),
              1e-4 * rep["val_loss"].get<double>());
}
