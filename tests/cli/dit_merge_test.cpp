// A fine-tuned DiT deploys as it trained: for every method, the merged model (the integer
// methods exactly into integers, with int8 activations when trained with them; the float
// methods into F32) scores on `dit-eval` the held-out loss the training run reported after its
// last step — the DiT twin of CliFinalValidation for the LLaMA. Also: --bits PTQ of a float
// adapter, `dit-eval`'s bad input, and `info` on a deployed DiT.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_util.h"

using namespace qtune::test;

namespace {

#define QT_REQUIRE_FASHION() QT_REQUIRE_DATASET(fashion_mnist_dir() + "/train-images-idx3-ubyte.gz")

// A ~27K-parameter DiT pretrained for a few steps on classes 0-1 (shared by the tests of this file).
const std::string& tiny_base() {
  static const std::string path = [] {
    const std::string p = scratch_dir() + "/base.gguf";
    RunResult r = run_qtune({"dit-train", "--data", fashion_mnist_dir(), "--init-config",
                             "patch=7,dim=32,depth=1,heads=2,freq_dim=32", "--method", "full", "--classes", "0-1",
                             "--steps", "15", "--batch", "8", "--lr", "3e-3", "--seed", "3", "--threads", "1",
                             "--val-images", "8", "--out", p, "-q"});
    EXPECT_EQ(r.code, 0) << r.err;
    return p;
  }();
  return path;
}

constexpr const char* kVal = "24";  // held-out images of classes 8-9

double dit_eval(const std::string& model) {
  const std::string rep = model + ".eval.json";
  RunResult r = run_qtune({"dit-eval", "--model", model, "--data", fashion_mnist_dir(), "--classes", "8-9",
                           "--val-images", kVal, "--batch", "5", "--threads", "1", "--report", rep});
  EXPECT_EQ(r.code, 0) << r.err;
  return r.code == 0 ? read_json(rep)["val_loss"].get<double>() : -1.0;
}

struct Case {
  std::vector<std::string> flags;
  bool integer;
};

}  // namespace

TEST(DitMergeCli, EveryMethodsMergedModelScoresItsTrainingRunsHeldOutLoss) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), base = tiny_base();
  const double base_loss = dit_eval(base);
  const std::vector<Case> cases = {
      {{"--method", "lora", "--rank", "4"}, false},
      {{"--method", "qlora", "--rank", "4", "--bits", "4"}, false},
      {{"--method", "loldu", "--rank", "4"}, false},
      {{"--method", "qloldu", "--rank", "4", "--bits", "4"}, false},
      {{"--method", "qalora", "--rank", "4", "--bits", "4"}, true},
      {{"--method", "qalora", "--rank", "4", "--bits", "8", "--act-bits", "8", "--act-calib", "2"}, true},
      {{"--method", "intlora-mul", "--rank", "4", "--bits", "4", "--act-bits", "8", "--act-calib", "2"}, true},
      {{"--method", "intlora-mul", "--rank", "4", "--bits", "8"}, true},
      {{"--method", "intlora-shift", "--rank", "4", "--bits", "4"}, true},
      {{"--method", "qaloldu", "--rank", "4", "--bits", "4"}, true},
  };
  int k = 0;
  for (const Case& c : cases) {
    const std::string tag = std::to_string(k++), ad = dir + "/a" + tag + ".gguf", merged = dir + "/m" + tag + ".gguf";
    std::vector<std::string> args = {"dit-train", "--data", fashion_mnist_dir(), "--model", base, "--classes", "8-9",
                                     "--steps", "6", "--batch", "8", "--seed", "5", "--threads", "1", "--val-images",
                                     kVal, "--out", ad, "--report", ad + ".json", "-q"};
    args.insert(args.end(), c.flags.begin(), c.flags.end());
    RunResult t = run_qtune(args);
    ASSERT_EQ(t.code, 0) << c.flags[1] << ": " << t.err;
    RunResult m = run_qtune({"merge", "--model", base, "--adapter", ad, "--out", merged, "--report", merged + ".json"});
    ASSERT_EQ(m.code, 0) << c.flags[1] << ": " << m.err;
    const nlohmann::json mr = read_json(merged + ".json");
    EXPECT_EQ(mr["integer_slots"].get<int>() > 0, c.integer) << c.flags[1];
    const double trained = read_json(ad + ".json")["val_loss"].get<double>(), deployed = dit_eval(merged);
    EXPECT_NEAR(deployed, trained, 1e-5 * trained) << c.flags[1] << " " << c.flags.back();
    EXPECT_NE(deployed, base_loss) << c.flags[1] << ": the adapter changed nothing";
    if (c.integer) {
      const nlohmann::json info = info_json(merged);
      EXPECT_EQ(info["architecture"], "dit");
      EXPECT_GT(info["integer_slots"].get<int>(), 0) << info.dump();
    }
  }
}

// --bits on a float adapter is post-training quantization: integer slots that run, close to but
// not exactly the training forward.
TEST(DitMergeCli, FloatAdapterWithBitsIsPostTrainingQuantized) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), base = tiny_base(), ad = dir + "/q.gguf";
  ASSERT_EQ(run_qtune({"dit-train", "--data", fashion_mnist_dir(), "--model", base, "--classes", "8-9", "--method",
                       "qlora", "--bits", "4", "--rank", "4", "--steps", "4", "--batch", "8", "--threads", "1",
                       "--val-images", kVal, "--out", ad, "--report", ad + ".json", "-q"})
                .code,
            0);
  for (const char* bits : {"8", "4"}) {
    const std::string out = dir + "/ptq" + bits + ".gguf";
    RunResult m = run_qtune({"merge", "--model", base, "--adapter", ad, "--out", out, "--bits", bits, "--report",
                             out + ".json"});
    ASSERT_EQ(m.code, 0) << m.err;
    EXPECT_NE(m.out.find("post-training quantization"), std::string::npos) << m.out;
    const nlohmann::json mr = read_json(out + ".json");
    EXPECT_EQ(mr["integer_slots"].get<int>(), 3 + 7 + 2);  // every slot: embedders, the block's 7, final adaLN, output
    const double trained = read_json(ad + ".json")["val_loss"].get<double>(), deployed = dit_eval(out);
    EXPECT_NEAR(deployed, trained, 0.05 * trained) << bits;
  }
  // an integer adapter takes no --bits; a DiT takes no --tokenizer
  const std::string ia = dir + "/i.gguf";
  ASSERT_EQ(run_qtune({"dit-train", "--data", fashion_mnist_dir(), "--model", base, "--classes", "8-9", "--method",
                       "qalora", "--bits", "4", "--rank", "4", "--steps", "1", "--threads", "1", "--val-images", kVal,
                       "--out", ia, "-q"})
                .code,
            0);
  EXPECT_TRUE(IsBadInput(run_qtune({"merge", "--model", base, "--adapter", ia, "--out", dir + "/x.gguf", "--bits", "4"}),
                         "--bits"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

TEST(DitMergeCli, DitEvalBadInputIsOneLine) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), base = tiny_base();
  auto ev = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"dit-eval", "--data", fashion_mnist_dir()};
    a.insert(a.end(), extra.begin(), extra.end());
    return run_qtune(a);
  };
  EXPECT_TRUE(IsBadInput(ev({"--model", base, "--classes", "10"}), "class 10"));
  EXPECT_TRUE(IsBadInput(ev({"--model", base, "--val-images", "0"}), "--val-images"));
  EXPECT_TRUE(IsBadInput(ev({"--model", dir + "/none.gguf"}), "none.gguf"));
  const std::string cut = dir + "/cut.gguf", full = read_file(base);
  write_file(cut, full.substr(0, full.size() / 2));
  EXPECT_TRUE(IsBadInput(ev({"--model", cut}), "cut.gguf"));
  EXPECT_TRUE(IsBadInput(run_qtune({"dit-eval", "--model", base, "--data", dir + "/nowhere"}),
                         "apt-get install dataset-fashion-mnist"));
}
