// The DiT model (models/dit.h): finite-difference gradient check of the whole model in double
// (every trainable tensor sampled, and the input), adaLN-Zero init, the GGUF round trip, every
// method on its slots, and bad input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "adapters/method_options.h"
#include "core/error.h"
#include "models/dit.h"
#include "models/tiny_dit.h"
#include "test_util.h"

using namespace qtune;

namespace {

// Central differences of the loss at up to `per_tensor` evenly spaced elements of every
// trainable tensor and of the input, against backward. Returns the number of tensors checked.
int fd_check(Dit<double>& m, test::DitBatch<double>& b, int per_tensor, double tol) {
  auto loss = [&] { return m.forward(b.x.data(), b.t.data(), b.y.data(), b.eps.data(), b.B); };
  loss();
  m.zero_grad();
  m.backward();
  const double h = 1e-6;
  auto central = [&](double* v) {
    const double keep = *v;
    *v = keep + h;
    const double lp = loss();
    *v = keep - h;
    const double lm = loss();
    *v = keep;
    return (lp - lm) / (2 * h);
  };
  int checked = 0;
  double worst = 0;
  std::string worst_name;
  auto check = [&](const std::string& name, double* value, const double* grad, int64_t n) {
    std::vector<double> an, num;
    if (name.ends_with("attn_k.bias")) {
      // q·b_k adds the same amount to every score of a query row, which softmax ignores:
      // the true gradient is exactly 0, so backward's must be 0 up to rounding.
      for (int64_t i = 0; i < n; ++i) EXPECT_LT(std::fabs(grad[i]), 1e-12) << name << "[" << i << "]";
      ++checked;
      return;
    }
    const int64_t step = std::max<int64_t>(1, n / per_tensor);
    for (int64_t i = 0; i < n; i += step) {
      an.push_back(grad[i]);
      num.push_back(central(value + i));
    }
    double norm = 0;
    for (double x : num) norm += x * x;
    EXPECT_GT(std::sqrt(norm), 1e-8) << name << ": sampled gradient is ~0, the check would be vacuous";
    const double e = test::rel_err(an.data(), num.data(), an.size());
    EXPECT_LT(e, tol) << name;
    if (e > worst) worst = e, worst_name = name;
    ++checked;
  };
  std::vector<double> dx(m.input_grad(), m.input_grad() + b.x.size());
  for (auto& p : m.trainable()) check(p.name, p.value, p.grad, p.numel);
  check("input x_t", b.x.data(), dx.data(), int64_t(b.x.size()));
  std::printf("%d tensors vs finite differences: worst relative error %.3g (%s)\n", checked, worst, worst_name.c_str());
  return checked;
}

}  // namespace

TEST(Dit, FullGradientsMatchFiniteDifferences) {
  const DitConfig c = test::tiny_dit_config();
  MethodOptions o;
  o.method = "full";
  Dit<double> m(test::random_dit(c), o, 1);
  auto b = test::dit_batch<double>(c, 4);  // classes 0, 1, 2 and the null class
  const int base_tensors = 4 + 7 * c.depth + 2;       // biases and the class embedding
  const int slots = 3 + 7 * c.depth + 2;
  EXPECT_EQ(fd_check(m, b, 6, 1e-6), base_tensors + slots + 1);
}

TEST(Dit, LoraGradientsMatchFiniteDifferences) {
  const DitConfig c = test::tiny_dit_config();
  MethodOptions o;
  o.method = "lora";
  o.rank = 2;
  Dit<double> m(test::random_dit(c), o, 1);
  auto params = m.trainable();
  ASSERT_EQ(params.size(), size_t(2 * 6 * c.depth)) << "A and B of q k v o up down per block, nothing else";
  Rng rng(3);
  for (auto& p : params)  // B starts at 0: make it nonzero so that dA is not 0
    for (int64_t i = 0; i < p.numel; ++i) p.value[i] += 0.3 * rng.normal();
  auto b = test::dit_batch<double>(c, 3);
  EXPECT_EQ(fd_check(m, b, 6, 1e-6), int(params.size()) + 1);
}

// dit-train --class-embedding train: an adapter method that also trains y_embd (the only way a
// frozen base learns new classes apart); its gradient, and only its, joins the adapter's.
TEST(Dit, LoraWithClassEmbeddingGradientsMatchFiniteDifferences) {
  const DitConfig c = test::tiny_dit_config();
  MethodOptions o;
  o.method = "lora";
  o.rank = 2;
  Dit<double> m(test::random_dit(c), o, 1, /*train_class_embedding=*/true);
  auto params = m.trainable();
  ASSERT_EQ(params.size(), size_t(2 * 6 * c.depth + 1));
  EXPECT_EQ(params[0].name, "y_embd.weight");
  Rng rng(3);
  for (auto& p : params)
    if (p.name != "y_embd.weight")
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] += 0.3 * rng.normal();
  auto b = test::dit_batch<double>(c, 4);  // classes 0, 1, 2 and the null class
  EXPECT_EQ(fd_check(m, b, 6, 1e-6), int(params.size()) + 1);
  // a frozen model never trains it
  o.frozen = true;
  Dit<double> frozen(test::random_dit(c), o, 1, true);
  EXPECT_TRUE(frozen.trainable().empty());
}

TEST(Dit, AdaLnZeroInitPredictsZeroAndStillLearns) {
  const DitConfig c = test::tiny_dit_config();
  DitFile f = dit_init(c, 1);
  for (const auto& [name, t] : f.tensors) {
    const bool zero = std::all_of(t.data.begin(), t.data.end(), [](float x) { return x == 0; });
    const bool should = name.ends_with(".bias") || name.find("adaln") != std::string::npos || name.starts_with("output");
    EXPECT_EQ(zero, should) << name;
  }
  MethodOptions o;
  o.method = "full";
  Dit<float> m(f, o, 1);
  auto b = test::dit_batch<float>(c, 3);
  const double loss = m.forward(b.x.data(), b.t.data(), b.y.data(), b.eps.data(), b.B);
  for (size_t i = 0; i < b.x.size(); ++i) ASSERT_EQ(m.prediction()[i], 0.0f);
  double ref = 0;
  for (float e : b.eps) ref += double(e) * e;
  EXPECT_NEAR(loss, ref / b.eps.size(), 1e-6);
  m.zero_grad();
  m.backward();
  // With the output layer at zero, the first gradients reach only the output layer itself:
  // nothing flows back through a zero weight (adaLN-Zero's "start as identity").
  for (auto& p : m.trainable()) {
    double s = 0;
    for (int64_t i = 0; i < p.numel; ++i) s += std::fabs(p.grad[i]);
    if (p.name == "output.weight" || p.name == "output.bias")
      EXPECT_GT(s, 0) << p.name;
    else
      EXPECT_EQ(s, 0) << p.name;
  }
}

TEST(Dit, GgufRoundTripAndMergedEqualsWeights) {
  const DitConfig c = test::tiny_dit_config();
  DitFile f = test::random_dit(c);
  const std::string path = test::scratch_dir() + "/tiny.dit.gguf";
  save_dit(path, f);
  DitFile g = load_dit(path);
  EXPECT_EQ(g.config.patch, c.patch);
  EXPECT_EQ(g.config.freq_dim, c.freq_dim);
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (const auto& [name, t] : f.tensors) {
    ASSERT_EQ(g.tensors.at(name).shape, t.shape) << name;
    EXPECT_TRUE(std::equal(t.data.begin(), t.data.end(), g.tensors.at(name).data.begin())) << name;
  }
  MethodOptions o;
  o.method = "full";
  Dit<float> m(g, o, 1);
  DitFile back = m.merged();
  for (const auto& [name, t] : f.tensors)
    EXPECT_TRUE(std::equal(t.data.begin(), t.data.end(), back.tensors.at(name).data.begin())) << name;
}

// Every method builds its slots on the DiT, trains one step's worth of gradients and merges.
TEST(Dit, EveryMethodRunsForwardBackwardAndMerges) {
  DitConfig c = test::tiny_dit_config();
  c.dim = 32;  // quantizer groups and LDU ranks need rows of some length
  DitFile f = test::random_dit(c, 5, 0.2);
  auto b = test::dit_batch<float>(c, 2);
  for (const MethodInfo& info : methods()) {
    MethodOptions o;
    o.method = info.name;
    o.rank = 4;
    Dit<float> m(f, o, 1);
    const double loss = m.forward(b.x.data(), b.t.data(), b.y.data(), b.eps.data(), b.B);
    EXPECT_TRUE(std::isfinite(loss)) << info.name;
    m.zero_grad();
    m.backward();
    double gs = 0;
    for (auto& p : m.trainable())
      for (int64_t i = 0; i < p.numel; ++i) gs += std::fabs(p.grad[i]);
    EXPECT_TRUE(std::isfinite(gs) && gs > 0) << info.name << ": no gradient reached the trainable tensors";
    EXPECT_GT(m.num_trainable(), 0) << info.name;
    DitFile merged = m.merged();
    EXPECT_NO_THROW(validate_dit(merged)) << info.name;
  }
}

TEST(Dit, BadInputIsAnErrorNamingIt) {
  const DitConfig c = test::tiny_dit_config();
  MethodOptions o;
  o.method = "full";
  Dit<float> m(test::random_dit(c), o, 1);
  auto b = test::dit_batch<float>(c, 2);
  b.y[1] = c.num_classes + 1;
  EXPECT_NE(test::error_of([&] { m.forward(b.x.data(), b.t.data(), b.y.data(), nullptr, 2); })
                .find("class 4 of image 1 is outside 0..3"),
            std::string::npos);
  DitConfig bad = c;
  bad.patch = 3;
  EXPECT_NE(test::error_of([&] { dit_init(bad, 1); }).find("patch 3 does not divide the image size 8"),
            std::string::npos);
  DitFile f = test::random_dit(c);
  f.tensors.erase("blk.1.adaln.bias");
  EXPECT_NE(test::error_of([&] { Dit<float> x(f, o, 1); }).find("tensor blk.1.adaln.bias is missing"),
            std::string::npos);
}
