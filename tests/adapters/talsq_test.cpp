// TALSQ (adapters/talsq.h): its STE gradients against finite differences with the rounding and
// clamp decisions frozen (SteProbed), the per-sample choice of the step's entry, and the table
// index that serves fewer sampling steps (every (K/K')-th entry).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "adapters/methods.h"
#include "adapters/qalora.h"
#include "adapters/ste_probe.h"
#include "adapters/talsq.h"
#include "core/rng.h"
#include "kernels/igemm.h"

using namespace qtune;

namespace {

constexpr int64_t kIn = 12, kOut = 6, kPer = 3;     // rows per sample
const std::vector<int> kTimesteps = {0, 20, 41};  // entries 0, 2, 4 of a stride-10 table

Tensor random_weight(Rng& rng, int64_t out = kOut, int64_t in = kIn) {
  Tensor w({out, in});
  for (auto& v : w.data) v = float(0.3 * rng.normal());
  return w;
}

std::vector<double> randn(int64_t n, Rng& rng, double s = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = s * rng.normal();
  return v;
}

Context step_context() {
  Context c;
  c.timesteps = kTimesteps.data();
  c.samples = int64_t(kTimesteps.size());
  return c;
}

double loss(Linear<double>& lin, const std::vector<double>& x, const std::vector<double>& r) {
  Context ctx = step_context();
  const int64_t n = int64_t(x.size()) / lin.in();
  std::vector<double> y(size_t(n * lin.out()));
  lin.forward(x.data(), y.data(), n, ctx);
  double L = 0;
  for (size_t i = 0; i < y.size(); ++i) L += y[i] * r[i];
  return L;
}

double numeric(Linear<double>& lin, double* v, const std::vector<double>& x, const std::vector<double>& r) {
  const double keep = *v, eps = 1e-6;
  *v = keep + eps;
  const double lp = loss(lin, x, r);
  *v = keep - eps;
  const double lm = loss(lin, x, r);
  *v = keep;
  return (lp - lm) / (2 * eps);
}

}  // namespace

// dx, the QALoRA factors and weight scale, and the per-step activation scale and zero point,
// with the STE's roundings and clamp sides frozen: the replayed forward is smooth and its true
// derivative is what backward computes. Calibrated on inputs half as wide as the test's, so
// both clamp sides and the zero point's gradient are exercised.
TEST(Talsq, GradientsMatchFiniteDifferencesWithTheSteProbe) {
  for (int bits : {4, 8}) {
    SCOPED_TRACE(bits);
    Rng rng(7);
    const Tensor w = random_weight(rng);
    QuantSpec spec;
    spec.bits = 4;
    auto inner = make_qalora<double>("blk.0.attn_q", w, spec, 3, rng);
    auto* inner_probe = dynamic_cast<SteProbed*>(inner.get());
    auto lin = make_talsq<double>("blk.0.attn_q", std::move(inner), bits, 5, 10, 1.0f);
    auto* q = dynamic_cast<StepActQuantizer*>(lin.get());
    auto* probe = dynamic_cast<SteProbed*>(lin.get());
    ASSERT_TRUE(q && probe && inner_probe);
    const int64_t n = kPer * int64_t(kTimesteps.size());
    auto x = randn(n * kIn, rng), r = randn(n * kOut, rng);
    std::vector<double> xc(x);
    for (auto& v : xc) v *= 0.5;
    q->begin_calibration();
    loss(*lin, xc, r);
    q->end_calibration();
    ASSERT_TRUE(q->calibrated());
    for (auto& p : lin->trainable())
      for (int64_t i = 0; i < p.numel; ++i) {
        if (p.name.ends_with("lora_b")) p.value[i] = 0.3 * rng.normal();
        if (p.name.ends_with("act_zero")) p.value[i] += 0.3;  // off the integer: round(z) is STE'd
        if (p.name.ends_with("act_scale")) p.value[i] *= 1.0 + 0.05 * rng.normal();
      }
    probe->set_ste_mode(SteMode::record);
    inner_probe->set_ste_mode(SteMode::record);
    const double l0 = loss(*lin, x, r);
    probe->set_ste_mode(SteMode::replay);
    inner_probe->set_ste_mode(SteMode::replay);
    EXPECT_NEAR(loss(*lin, x, r), l0, 1e-12 * (1 + std::fabs(l0)));

    for (auto& p : lin->trainable()) std::fill(p.grad, p.grad + p.numel, 0.0);
    std::vector<double> dx(x.size(), 0.0);
    Context ctx = step_context();
    lin->backward(x.data(), r.data(), dx.data(), n, ctx);
    auto near = [](double a, double b) { return std::fabs(a - b) <= 2e-6 * (1 + std::fabs(b)); };
    for (size_t i = 0; i < x.size(); ++i) {
      const double num = numeric(*lin, &x[i], x, r);
      EXPECT_TRUE(near(dx[i], num)) << "dx[" << i << "] " << dx[i] << " vs " << num;
    }
    int act_scale_nonzero = 0, act_zero_nonzero = 0;
    for (auto& p : lin->trainable())
      for (int64_t i = 0; i < p.numel; ++i) {
        const double num = numeric(*lin, &p.value[i], x, r);
        EXPECT_TRUE(near(p.grad[i], num)) << p.name << "[" << i << "] " << p.grad[i] << " vs " << num;
        act_scale_nonzero += p.name.ends_with("act_scale") && p.grad[i] != 0;
        act_zero_nonzero += p.name.ends_with("act_zero") && p.grad[i] != 0;
      }
    EXPECT_EQ(act_scale_nonzero, 3);  // the three visited entries, no other
    EXPECT_GT(act_zero_nonzero, 0);   // something was clipped
  }
}

// Each row is quantized with the entry of its own sample's timestep.
TEST(Talsq, EachRowUsesTheEntryOfItsSamplesTimestep) {
  StepActTable t;
  t.bits = 4;
  t.stride = 20;
  for (int j = 0; j < 50; ++j) {
    t.scale.push_back(0.05f + 0.01f * j);
    t.zero.push_back(j % 16);
  }
  Tensor eye({kIn, kIn});
  for (int64_t i = 0; i < kIn; ++i) eye.ptr()[i * kIn + i] = 1.0f;
  auto lin = make_talsq_frozen<double>("x", make_dense<double>("x", eye, false), t);
  EXPECT_TRUE(lin->trainable().empty());
  const std::vector<int> ts = {0, 40, 989, 999, 31};  // entries 0, 2, 49, 49 (clamped), 2 (31/20 rounds up)
  const std::vector<int> want = {0, 2, 49, 49, 2};
  Context ctx;
  ctx.timesteps = ts.data();
  ctx.samples = int64_t(ts.size());
  Rng rng(3);
  const int64_t n = 2 * int64_t(ts.size());
  auto x = randn(n * kIn, rng, 0.5);
  std::vector<double> y(x.size());
  lin->forward(x.data(), y.data(), n, ctx);
  for (int64_t r = 0; r < n; ++r) {
    const int j = want[size_t(r / 2)];
    ASSERT_EQ(t.index(ts[size_t(r / 2)]), j);
    const double s = t.scale[j], z = t.zero[j];
    for (int64_t c = 0; c < kIn; ++c) {
      const double u = std::clamp(std::round(x[r * kIn + c] / s) + z, 0.0, 15.0);
      EXPECT_DOUBLE_EQ(y[r * kIn + c], s * (u - z)) << "row " << r << " col " << c;
    }
  }
}

// models/diffusion.h's ddim_timesteps (this test binary does not link the models): (n−1)·k, …, k, 0.
std::vector<int> ddim_timesteps(int steps, int n) {
  std::vector<int> t;
  for (int i = n - 1; i >= 0; --i) t.push_back(i * (steps / n));
  return t;
}

// A table of K entries for the K-step DDIM schedule serves K' steps with every (K/K')-th entry.
TEST(StepActTable, FewerSamplingStepsReadEveryKthEntry) {
  StepActTable t;
  t.bits = 4;
  t.stride = 1000 / 50;
  t.scale.assign(50, 1.0f);
  t.zero.assign(50, 0);
  const std::vector<int> full = ddim_timesteps(1000, 50);
  for (size_t i = 0; i < full.size(); ++i) EXPECT_EQ(t.index(full[i]), int(full.size() - 1 - i));
  for (int k2 : {25, 10, 5, 2, 1}) {
    SCOPED_TRACE(k2);
    const std::vector<int> ts = ddim_timesteps(1000, k2);
    for (size_t i = 0; i < ts.size(); ++i) EXPECT_EQ(t.index(ts[i]), int(ts.size() - 1 - i) * (50 / k2));
  }
  StepActTable one = t;  // the ablation without TALSQ: one entry for every step
  one.stride = 1000;
  one.scale.assign(1, 1.0f);
  one.zero.assign(1, 0);
  for (int s : {0, 499, 500, 999}) EXPECT_EQ(one.index(s), 0);
}

// Calibration: the MSE search keeps the zero exact and fits an 8-bit grid over the observed
// range (uniform data on [-1, 3]: s ≈ 4/255, z ≈ 64), per step.
TEST(Talsq, CalibrationFitsEachStepsRange) {
  Rng rng(11);
  Tensor eye({4, 4});
  for (int64_t i = 0; i < 4; ++i) eye.ptr()[i * 4 + i] = 1.0f;
  auto lin = make_talsq<double>("x", make_dense<double>("x", eye, false), 8, 2, 500, 1.0f);
  auto* q = dynamic_cast<StepActQuantizer*>(lin.get());
  q->begin_calibration();
  const std::vector<int> ts = {0, 999};  // entry 0 sees [-1, 3], entry 1 sees [-10, 10]
  Context ctx;
  ctx.timesteps = ts.data();
  ctx.samples = 2;
  for (int rep = 0; rep < 50; ++rep) {
    std::vector<double> x(2 * 4 * 4), y(x.size());
    for (int64_t i = 0; i < 16; ++i) x[i] = -1.0 + 4.0 * rng.uniform_double();
    for (int64_t i = 16; i < 32; ++i) x[i] = -10.0 + 20.0 * rng.uniform_double();
    lin->forward(x.data(), y.data(), 8, ctx);
  }
  q->end_calibration();
  const StepActTable t = q->table();
  ASSERT_EQ(t.steps(), 2);
  EXPECT_NEAR(t.scale[0], 4.0 / 255, 0.1 * 4.0 / 255);
  EXPECT_NEAR(t.zero[0], 64, 4);
  EXPECT_NEAR(t.scale[1], 20.0 / 255, 0.1 * 20.0 / 255);
  EXPECT_NEAR(t.zero[1], 128, 4);
  Context none;  // a model that does not give timesteps is refused
  std::vector<double> x(16), y(16);
  EXPECT_THROW(lin->forward(x.data(), y.data(), 4, none), Error);
}

// A deployed slot (the table over an integer weight) runs the integer kernel: its float
// forward equals quantize_activations_asym + ref::igemm_zp on the same codes, bit for bit.
TEST(Talsq, DeployedForwardIsTheIntegerKernel) {
  Rng rng(21);
  const int64_t in = 40, out = 9;
  const Tensor w = random_weight(rng, out, in);
  for (int wbits : {4, 8}) {
    SCOPED_TRACE(wbits);
    QuantSpec spec;
    spec.bits = wbits;
    const QuantMatrix W = quantize(w.ptr(), out, in, spec);
    StepActTable t;
    t.bits = 4;
    t.stride = 100;
    for (int j = 0; j < 10; ++j) {
      t.scale.push_back(0.2f + 0.03f * j);
      t.zero.push_back(3 + j);
    }
    auto lin = make_talsq_frozen<float>("x", make_int_linear<float>("x", {W}, 0, 0.0f), t);
    const std::vector<int> ts = {0, 500, 900};
    Context ctx;
    ctx.timesteps = ts.data();
    ctx.samples = 3;
    const int64_t n = 6;
    std::vector<float> x(size_t(n * in)), y(size_t(n * out)), want(y.size());
    for (auto& v : x) v = float(rng.normal());
    lin->forward(x.data(), y.data(), n, ctx);
    std::vector<float> sc(n);
    std::vector<int32_t> z(n), zc(n);
    for (int64_t r = 0; r < n; ++r) {
      const int j = t.index(ts[size_t(r / 2)]);
      sc[r] = t.scale[j];
      z[r] = t.zero[j];
    }
    std::vector<int8_t> xq(x.size());
    kernels::quantize_activations_asym(x.data(), n, in, sc.data(), z.data(), 4, xq.data(), zc.data());
    kernels::ref::igemm_zp(xq.data(), sc.data(), zc.data(), W, want.data(), n, false);
    EXPECT_EQ(std::memcmp(y.data(), want.data(), y.size() * sizeof(float)), 0);
  }
}
