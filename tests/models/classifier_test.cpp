// The Fashion-MNIST classifier (models/classifier.h): every gradient against central finite
// differences in double, the float model against the double one, features/predictions in
// batches, and the GGUF round trip with its validation (io/classifier_file.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/classifier_file.h"
#include "io/gguf.h"
#include "models/classifier.h"
#include "test_util.h"

using namespace qtune;

namespace {

ClassifierConfig small_config() {
  ClassifierConfig c;
  c.image = 4, c.hidden1 = 7, c.hidden2 = 5, c.num_classes = 3;
  return c;
}

template <class T>
std::vector<T> random_images(int B, int64_t I, uint64_t seed) {
  Rng rng(seed);
  std::vector<T> x(size_t(B) * I);
  for (T& v : x) v = T(rng.uniform_double() * 2 - 1);
  return x;
}

TEST(Classifier, GradientsMatchFiniteDifferences) {
  MlpClassifier<double> m(small_config(), 3);
  const int B = 4;
  const std::vector<double> x = random_images<double>(B, m.config().input(), 9);
  const std::vector<int> y = {0, 2, 1, 2};
  m.zero_grad();
  m.forward(x.data(), y.data(), B);
  m.backward();
  const double h = 1e-6;
  int checked = 0;
  for (const Param<double>& p : m.trainable()) {
    double norm = 0;
    for (int64_t i = 0; i < p.numel; ++i) {
      const double keep = p.value[i];
      p.value[i] = keep + h;
      const double lp = m.forward(x.data(), y.data(), B);
      p.value[i] = keep - h;
      const double lm = m.forward(x.data(), y.data(), B);
      p.value[i] = keep;
      const double num = (lp - lm) / (2 * h);
      EXPECT_NEAR(p.grad[i], num, 1e-7 + 1e-6 * std::fabs(num)) << p.name << "[" << i << "]";
      norm += num * num;
    }
    EXPECT_GT(norm, 1e-10) << p.name << ": a zero gradient would make the check vacuous";
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

TEST(Classifier, GradientsAccumulateAndZero) {
  MlpClassifier<double> m(small_config(), 4);
  const std::vector<double> x = random_images<double>(2, m.config().input(), 1);
  const std::vector<int> y = {1, 0};
  m.zero_grad();
  m.forward(x.data(), y.data(), 2);
  m.backward();
  const std::vector<Param<double>> ps = m.trainable();
  const double g0 = ps[0].grad[3];
  m.forward(x.data(), y.data(), 2);
  m.backward();
  EXPECT_NEAR(ps[0].grad[3], 2 * g0, 1e-15);
  m.zero_grad();
  EXPECT_EQ(ps[0].grad[3], 0.0);
}

TEST(Classifier, FloatMatchesDoubleAndBatchesDoNotMatter) {
  const ClassifierConfig c = small_config();
  MlpClassifier<double> md(c, 5);
  MlpClassifier<float> mf(md.to_file());
  const int n = 300;  // more than one batch of classifier_features
  const std::vector<float> xf = random_images<float>(n, c.input(), 2);
  const std::vector<double> xd(xf.begin(), xf.end());
  std::vector<float> feats(size_t(n) * c.hidden2);
  std::vector<int> pred(n);
  classifier_features(mf, xf.data(), n, feats.data(), pred.data());
  md.forward(xd.data(), nullptr, n);
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < c.hidden2; ++k) EXPECT_NEAR(feats[i * c.hidden2 + k], md.features()[i * c.hidden2 + k], 1e-5);
    const double* l = md.logits() + i * c.num_classes;
    EXPECT_EQ(pred[i], int(std::max_element(l, l + c.num_classes) - l)) << i;
  }
}

TEST(Classifier, FileRoundTripAndValidation) {
  const std::string dir = test::scratch_dir(), path = dir + "/clf.gguf";
  MlpClassifier<float> m(ClassifierConfig{}, 1);  // the real 784 → 256 → 128 → 10
  EXPECT_EQ(m.num_params(), 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  ClassifierFile f = m.to_file();
  f.test_accuracy = 0.875f;
  f.train_steps = 123;
  save_classifier(path, f);
  const ClassifierFile g = load_classifier(path);
  EXPECT_EQ(g.config.hidden1, 256);
  EXPECT_EQ(g.config.hidden2, 128);
  EXPECT_FLOAT_EQ(*g.test_accuracy, 0.875f);
  EXPECT_EQ(*g.train_steps, 123);
  for (const auto& [name, t] : f.tensors)
    EXPECT_EQ(std::memcmp(t.ptr(), g.tensors.at(name).ptr(), t.numel() * sizeof(float)), 0) << name;

  // Truncated: the GGUF reader refuses it, naming the file.
  const auto size = std::filesystem::file_size(path);
  std::filesystem::copy_file(path, dir + "/cut.gguf");
  std::filesystem::resize_file(dir + "/cut.gguf", size / 2);
  EXPECT_THROW(load_classifier(dir + "/cut.gguf"), Error);
  // Another architecture.
  GgufWriter w;
  w.set_str("general.architecture", "dit");
  w.write(dir + "/other.gguf");
  try {
    load_classifier(dir + "/other.gguf");
    ADD_FAILURE() << "an architecture other than fmnist-classifier was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected 'fmnist-classifier'"), std::string::npos) << e.what();
  }
  // A tensor missing.
  f.tensors.erase("fc2.bias");
  EXPECT_THROW(save_classifier(dir + "/bad.gguf", f), Error);
}

}  // namespace
