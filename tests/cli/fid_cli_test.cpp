// qtune classifier-train and qtune fid: a short classifier run learns (accuracy far above
// chance) and `info` describes its file; fid on the tiny DiT (tests/data/dit_tiny.gguf) writes a
// report with every field, finite values, the same figures for the same seed; bad input is one
// error line with exit 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "cli_util.h"

using namespace qtune::test;

namespace {

#define QT_REQUIRE_FASHION() QT_REQUIRE_DATASET(fashion_mnist_dir() + "/train-images-idx3-ubyte.gz")

// A quick classifier: 120 steps of 64 on the first 6000 training images, one thread (~2 s).
std::vector<std::string> quick_classifier(const std::string& out) {
  return {"classifier-train", "--data", fashion_mnist_dir(), "--train-images", "6000", "--steps", "120",
          "--batch", "64", "--seed", "2", "--threads", "1", "-q", "--out", out, "--report", out + ".json"};
}

std::vector<std::string> fid_args(const std::string& clf, const std::string& report, const std::string& seed) {
  return {"fid", "--model", test_data("dit_tiny.gguf"), "--classifier", clf, "--data", fashion_mnist_dir(),
          "--classes", "8-9", "--n", "20", "--steps", "4", "--cfg", "2", "--eta", "0", "--seed", seed,
          "--threads", "1", "-q", "--report", report};
}

}  // namespace

TEST(ClassifierCli, QuickTrainingLearnsAndInfoDescribesIt) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), out = dir + "/clf.gguf";
  const RunResult r = run_qtune(quick_classifier(out));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("test accuracy"), std::string::npos) << r.out;
  const nlohmann::json rep = read_json(out + ".json");
  EXPECT_EQ(rep["command"], "classifier-train");
  EXPECT_EQ(rep["test_images"].get<int>(), 10000);
  EXPECT_EQ(rep["train_images"].get<int>(), 6000);
  const double acc = rep["test_accuracy"].get<double>();
  EXPECT_GT(acc, 0.6) << "chance is 0.1";
  ASSERT_EQ(rep["per_class"].size(), 10u);
  double mean = 0;
  for (const auto& c : rep["per_class"]) mean += c["accuracy"].get<double>() * c["images"].get<double>() / 10000;
  EXPECT_NEAR(mean, acc, 1e-9);
  const nlohmann::json info = info_json(out);
  EXPECT_EQ(info["architecture"], "fmnist-classifier");
  EXPECT_EQ(info["config"]["hidden2"].get<int>(), 128);
  EXPECT_NEAR(info["test_accuracy"].get<double>(), acc, 1e-6);
  EXPECT_EQ(info["parameters"].get<int64_t>(), rep["parameters"].get<int64_t>());
}

TEST(FidCli, TinyDitReportIsCompleteFiniteAndDeterministic) {
  QT_REQUIRE_FASHION();
  const std::string dir = scratch_dir(), clf = dir + "/clf.gguf";
  ASSERT_EQ(run_qtune(quick_classifier(clf)).code, 0);
  const RunResult r = run_qtune(fid_args(clf, dir + "/a.json", "5"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("FID"), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  const nlohmann::json a = read_json(dir + "/a.json");
  for (const char* k : {"model", "classifier", "classes", "n", "steps", "cfg", "eta", "seed", "sample_seconds", "fid",
                        "fid_train_reference", "conditional_accuracy", "per_class", "classifier_test_accuracy",
                        "test_images", "generated_images"})
    EXPECT_TRUE(a.contains(k)) << k;
  EXPECT_EQ(a["classes"], nlohmann::json({8, 9}));
  EXPECT_EQ(a["generated_images"].get<int>(), 40);
  EXPECT_EQ(a["test_images"].get<int>(), 2000);  // all t10k images of classes 8 and 9
  EXPECT_EQ(a["steps"].get<int>(), 4);
  EXPECT_DOUBLE_EQ(a["cfg"].get<double>(), 2.0);
  for (const char* k : {"fid", "fid_train_reference", "conditional_accuracy", "sample_seconds"}) {
    EXPECT_TRUE(std::isfinite(a[k].get<double>())) << k;
    EXPECT_GE(a[k].get<double>(), 0.0) << k;
  }
  EXPECT_LE(a["conditional_accuracy"].get<double>(), 1.0);
  ASSERT_EQ(a["per_class"].size(), 2u);
  for (const auto& c : a["per_class"]) {
    EXPECT_TRUE(std::isfinite(c["fid"].get<double>()));
    EXPECT_TRUE(std::isfinite(c["fid_train_reference"].get<double>()));
  }
  // The tiny DiT is untrained noise: its images are far from real ones, real training images are close.
  EXPECT_GT(a["fid"].get<double>(), a["fid_train_reference"].get<double>());

  // Same seed → the same figures; another seed → other generated images.
  ASSERT_EQ(run_qtune(fid_args(clf, dir + "/b.json", "5")).code, 0);
  const nlohmann::json b = read_json(dir + "/b.json");
  EXPECT_EQ(a["fid"].get<double>(), b["fid"].get<double>());
  EXPECT_EQ(a["conditional_accuracy"].get<double>(), b["conditional_accuracy"].get<double>());
  EXPECT_EQ(a["per_class"], b["per_class"]);
  ASSERT_EQ(run_qtune(fid_args(clf, dir + "/c.json", "6")).code, 0);
  const nlohmann::json c = read_json(dir + "/c.json");
  EXPECT_NE(a["fid"].get<double>(), c["fid"].get<double>());
  EXPECT_EQ(a["fid_train_reference"].get<double>(), c["fid_train_reference"].get<double>());
}

TEST(FidCli, BadInputIsOneLine) {
  const std::string dir = scratch_dir(), clf = dir + "/clf.gguf", fm = fashion_mnist_dir();
  // A file that only starts like a GGUF: what a copy cut short leaves.
  write_file(clf, read_file(test_data("dit_tiny.gguf")).substr(0, 200));
  // The valid flags with `over` = {flag, value, ...} replacing or adding some (CLI11 refuses a repeated flag).
  auto args = [&](std::vector<std::string> over) {
    std::vector<std::string> a = {"fid", "--model", test_data("dit_tiny.gguf"), "--classifier", clf, "--data", fm,
                                  "--classes", "8-9", "--n", "4", "--steps", "2", "-q"};
    for (size_t i = 0; i + 1 < over.size(); i += 2) {
      auto it = std::find(a.begin(), a.end(), over[i]);
      if (it != a.end())
        *(it + 1) = over[i + 1];
      else
        a.insert(a.end(), {over[i], over[i + 1]});
    }
    return a;
  };
  EXPECT_TRUE(IsBadInput(run_qtune(args({"--n", "0"})), "--n 0"));
  EXPECT_TRUE(IsBadInput(run_qtune(args({"--classes", "3,10"})), "class 10"));
  EXPECT_TRUE(IsBadInput(run_qtune(args({"--data", dir + "/nowhere"})), "apt-get install dataset-fashion-mnist"));
  EXPECT_TRUE(IsBadInput(run_qtune(args({"--model", dir + "/missing.gguf"})), "--model"));
  EXPECT_TRUE(IsBadInput(run_qtune(args({"--report", test_data("dit_tiny.gguf")})), "--report"));
  EXPECT_TRUE(IsBadInput(run_qtune(args({"--report", clf})), "--report"));
  EXPECT_TRUE(IsBadInput(run_qtune({"classifier-train", "--data", fm, "--out", clf, "--report", clf}), "--report"));
  EXPECT_TRUE(IsBadInput(run_qtune({"classifier-train", "--data", dir + "/nowhere", "--out", dir + "/x.gguf"}),
                         "apt-get install dataset-fashion-mnist"));
  if (!std::filesystem::exists(fm + "/train-images-idx3-ubyte.gz")) return;  // the rest passes the dataset check
  EXPECT_TRUE(IsBadInput(run_qtune(args({})), clf));  // truncated classifier
  // A DiT given as the classifier.
  EXPECT_TRUE(IsBadInput(run_qtune(args({"--classifier", test_data("dit_tiny.gguf")})), "fmnist-classifier"));
}
