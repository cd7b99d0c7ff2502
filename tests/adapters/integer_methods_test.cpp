// The integer methods (qalora, intlora-mul, intlora-shift): STE gradient checks in double
// precision, the exact integer merge against the training forward, and their invariants.
//
// Gradient checks: the forward rounds, so a finite difference of it is meaningless; the STE
// probe (adapters/ste_probe.h) records every rounding offset and clamp/sign decision at the
// evaluation point and replays them frozen — a smooth function whose derivative is exactly what
// the backward claims (round = identity, masks respected). Checked: dx and every parameter.
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "adapters/intlora.h"
#include "adapters/methods.h"
#include "adapters/qalora.h"
#include "adapters/ste_probe.h"
#include "adapters/wrapped_linear.h"
#include "fd_util.h"
#include "test_util.h"

using namespace qtune;

namespace {

constexpr int64_t kN = 4, kIn = 13, kOut = 6;

Tensor random_weight(Rng& rng, int64_t out = kOut, int64_t in = kIn) {
  Tensor w({out, in});
  for (auto& v : w.data) v = static_cast<float>(rng.normal() * 0.5);
  return w;
}

template <class T>
std::vector<T> randn(int64_t n, Rng& rng, double scale = 1.0) {
  const std::vector<double> v = test::randn_double(n, rng, scale);
  return std::vector<T>(v.begin(), v.end());
}

double loss(Linear<double>& lin, const std::vector<double>& x, const std::vector<double>& r) {
  return test::weighted_output(lin, x, r, kN);
}

double numeric(Linear<double>& lin, double* v, const std::vector<double>& x, const std::vector<double>& r) {
  return test::central_difference(lin, v, x, r, kN, 1e-6);
}

MethodOptions opts(const std::string& method) {
  MethodOptions o;
  o.method = method;
  o.rank = 3;
  o.bits = 4;
  return o;
}

// B (and A) random so that dA is not zero; a learned scale stays positive.
void randomize_params(Linear<double>& lin, Rng& rng, double b_scale) {
  for (auto& p : lin.trainable())
    for (int64_t i = 0; i < p.numel; ++i) {
      if (p.name.find("qalora_scale") != std::string::npos) p.value[i] *= 1.0 + 0.1 * rng.normal();
      else if (p.name.find("lora_b") != std::string::npos) p.value[i] = rng.normal() * b_scale;
      else if (p.name.find("qat_delta") != std::string::npos) p.value[i] = rng.normal() * b_scale;
      else if (p.name.find("loldu_z") != std::string::npos) p.value[i] += rng.normal() * b_scale;
      else if (p.name.find("loldu_scale") != std::string::npos) p.value[i] *= 1.0 + 0.1 * rng.normal();
    }
}

void check_ste_gradients_of(std::unique_ptr<Linear<double>> lin, Rng& rng, double b_scale, size_t expect_params);

void check_ste_gradients(const MethodOptions& o, double b_scale, size_t expect_params) {
  SCOPED_TRACE(o.method + (o.zero_free ? " zero-free" : "") + " bits " + std::to_string(o.bits) + " group " +
               std::to_string(o.group));
  Rng rng(42);
  Tensor w = random_weight(rng);
  check_ste_gradients_of(make_linear<double>(o, "blk.0.attn_q", w, true, rng), rng, b_scale, expect_params);
}

void check_ste_gradients_of(std::unique_ptr<Linear<double>> lin, Rng& rng, double b_scale, size_t expect_params) {
  ASSERT_EQ(lin->trainable().size(), expect_params);
  randomize_params(*lin, rng, b_scale);
  auto x = randn<double>(kN * kIn, rng), r = randn<double>(kN * kOut, rng);
  // the method's slot, under any wrapper (adapters/exact_grad.cpp sums its gradients per sample)
  Linear<double>* slot = lin.get();
  while (!dynamic_cast<SteProbed*>(slot))
    if (auto* w = dynamic_cast<WrappedLinear<double>*>(slot)) slot = &w->inner();
    else break;
  auto* probe = dynamic_cast<SteProbed*>(slot);
  ASSERT_NE(probe, nullptr);
  probe->set_ste_mode(SteMode::record);
  const double l0 = loss(*lin, x, r);
  probe->set_ste_mode(SteMode::replay);
  EXPECT_NEAR(loss(*lin, x, r), l0, 1e-12 * (1 + std::fabs(l0)));  // replay reproduces the forward

  std::vector<double> dx(kN * kIn, 0.0);
  Context ctx;
  lin->backward(x.data(), r.data(), dx.data(), kN, ctx);
  auto near = [](double a, double n) { return std::fabs(a - n) <= 2e-6 * (1 + std::fabs(n)); };
  for (int64_t i = 0; i < kN * kIn; ++i) {
    const double n = numeric(*lin, &x[i], x, r);
    EXPECT_TRUE(near(dx[i], n)) << "dx[" << i << "] " << dx[i] << " vs " << n;
  }
  int nonzero = 0;
  for (auto& p : lin->trainable())
    for (int64_t i = 0; i < p.numel; ++i) {
      const double n = numeric(*lin, &p.value[i], x, r);
      EXPECT_TRUE(near(p.grad[i], n)) << p.name << "[" << i << "] " << p.grad[i] << " vs " << n;
      nonzero += p.grad[i] != 0;
    }
  EXPECT_GT(nonzero, 0);
}

}  // namespace

TEST(IntegerMethodsGrad, QaLora) { check_ste_gradients(opts("qalora"), 0.3, 3); }

// QAT (EfficientDM's baseline): QA-LoRA's re-quantizer over a full trainable delta.
TEST(IntegerMethodsGrad, Qat) {
  Rng rng(42);
  Tensor w = random_weight(rng);
  QuantSpec spec;
  spec.bits = 4;
  check_ste_gradients_of(make_qat<double>("blk.0.attn_q", w, spec), rng, 0.05, 2);
}

TEST(IntegerMethodsGrad, QaLoldu) {
  for (int bits : {4, 8})
    for (bool train_scale : {false, true})
      for (const char* init : {"uniform", "lu"}) {
        auto o = opts("qaloldu");
        o.bits = bits;
        o.loldu_train_scale = train_scale;
        o.loldu_init = init;
        check_ste_gradients(o, 0.05, train_scale ? 2 : 1);
      }
}

TEST(IntegerMethodsGrad, QaLoraGroupedSymmetric3Bit) {
  auto o = opts("qalora");
  o.bits = 3;
  o.group = 5;
  o.symmetric = true;
  check_ste_gradients(o, 0.3, 3);
}

// --lsq-grad-scale multiplies the scale's gradient by 1/√(N·Qp) (N = weights per scale) and
// leaves every other gradient alone: a deliberate departure from the true derivative.
TEST(IntegerMethodsGrad, QaLoraLsqGradScaleIsExactlyTheFactor) {
  Rng data(5);
  Tensor w = random_weight(data);
  auto x = randn<double>(kN * kIn, data), r = randn<double>(kN * kOut, data);
  std::vector<std::vector<double>> grads[2];
  for (int lsq = 0; lsq < 2; ++lsq) {
    auto o = opts("qalora");
    o.bits = 3;
    o.group = 5;
    o.lsq_grad_scale = lsq;
    Rng rng(9);
    auto lin = make_linear<double>(o, "blk.0.attn_q", w, true, rng);
    Rng prm(10);
    randomize_params(*lin, prm, 0.3);
    Context ctx;
    lin->backward(x.data(), r.data(), nullptr, kN, ctx);
    for (auto& p : lin->trainable()) grads[lsq].emplace_back(p.grad, p.grad + p.numel);
  }
  ASSERT_EQ(grads[0].size(), 3u);
  for (int k = 0; k < 2; ++k) EXPECT_EQ(grads[0][k], grads[1][k]);  // lora_a, lora_b unchanged
  const double qp = 7;  // 2^3 − 1 (asymmetric)
  for (size_t i = 0; i < grads[0][2].size(); ++i) {
    const int64_t n = (i % 3) == 2 ? 3 : 5;  // 13 columns in groups of 5: 5, 5, 3
    EXPECT_NEAR(grads[1][2][i], grads[0][2][i] / std::sqrt(n * qp), 1e-12) << i;
  }
}

TEST(IntegerMethodsGrad, IntLoraMul) {
  for (int bits : {4, 8}) {
    auto o = opts("intlora-mul");
    o.bits = bits;
    check_ste_gradients(o, 0.05, 2);
  }
}

TEST(IntegerMethodsGrad, IntLoraShift) {
  for (int bits : {4, 8}) {
    auto o = opts("intlora-shift");
    o.bits = bits;
    check_ste_gradients(o, 0.05, 2);
  }
}

TEST(IntegerMethodsGrad, IntLoraZeroFreeGroupedStdVmc) {
  for (const char* m : {"intlora-mul", "intlora-shift"}) {
    auto o = opts(m);
    o.zero_free = true;
    o.group = 4;
    o.vmc = "std";
    o.vmc_alpha = 1.0f;
    check_ste_gradients(o, 0.05, 2);
  }
}

// The zero-weight defect: a weight whose integer is 0 deploys as 0 whatever the adapter learned
// (W' = s̄·U_int·0), so the merged model has at least as many zeros as W_int has.
TEST(IntegerMethodsGrad, IntLoraWeightsWithZeroIntegerStayZero) {
  Rng rng(3);
  Tensor w = random_weight(rng, 16, 40);
  auto lin = make_linear<float>(opts("intlora-mul"), "blk.0.attn_q", w, true, rng);
  for (auto& p : lin->trainable())
    for (int64_t i = 0; i < p.numel; ++i) p.value[i] = static_cast<float>(rng.normal() * 0.1);
  Deployed d = lin->merge();
  ASSERT_EQ(d.planes.size(), 1u);
  int zeros = 0;
  for (int64_t r = 0; r < 16; ++r)
    for (int64_t c = 0; c < 40; ++c) zeros += d.planes[0].int_value(r, c) == 0;
  auto stats = lin->stats();
  ASSERT_EQ(stats.size(), 4u);
  EXPECT_GT(stats[0].second, 0);                        // some W_int are 0 at 4 bits ...
  EXPECT_GE(zeros, static_cast<int>(stats[0].second));  // ... and each of them deploys as 0
  EXPECT_EQ(stats[1].second, 16 * 40);
  // the part of the learned update that lands on them is lost: Σ (B·A)² there, and everywhere
  EXPECT_EQ(stats[2].first, "update_sq_on_zero_weights");
  EXPECT_GT(stats[2].second, 0);
  EXPECT_LT(stats[2].second, stats[3].second);
  double all = 0;
  const auto p = lin->trainable();  // A [r, in], B [out, r]
  for (int64_t o = 0; o < 16; ++o)
    for (int64_t c = 0; c < 40; ++c) {
      double ba = 0;
      for (int j = 0; j < 3; ++j) ba += double(p[1].value[o * 3 + j]) * double(p[0].value[j * 40 + c]);
      all += ba * ba;
    }
  EXPECT_NEAR(stats[3].second, all, 1e-4 * all);
}

TEST(IntegerMethodsGrad, ZeroFreeGridHasNoZeroWeights) {
  Rng rng(3);
  Tensor w = random_weight(rng, 16, 40);
  for (int bits : {4, 8}) {
    auto o = opts("intlora-mul");
    o.bits = bits;
    o.zero_free = true;
    auto lin = make_linear<float>(o, "blk.0.attn_q", w, true, rng);
    EXPECT_EQ(lin->stats()[0].second, 0) << bits;
    EXPECT_EQ(lin->stats()[2].second, 0) << bits;  // no update is lost
  }
}

namespace {

// Training forward with x = I gives y[i, o] = W'[o, i] exactly (one product by 1, sums of zeros),
// so the effective weight is compared bit for bit with the merged integers.
Tensor effective_weight(Linear<float>& lin) {
  const int64_t in = lin.in(), out = lin.out();
  std::vector<float> eye(static_cast<size_t>(in * in), 0.0f), y(static_cast<size_t>(in * out));
  for (int64_t i = 0; i < in; ++i) eye[i * in + i] = 1.0f;
  Context ctx;
  lin.forward(eye.data(), y.data(), in, ctx);
  Tensor w({out, in});
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) w.data[o * in + i] = y[i * out + o];
  return w;
}

Tensor dequantized(const Deployed& d, int64_t out, int64_t in) {
  Tensor w({out, in}), p({out, in});
  for (size_t k = 0; k < d.planes.size(); ++k) {
    d.planes[k].dequantize_rows(0, out, k == 0 ? w.ptr() : p.ptr());
    if (k > 0)
      for (int64_t i = 0; i < w.numel(); ++i) w.data[i] += p.data[i];
  }
  return w;
}

// A trained-looking slot: B·A of the size of a few quantization steps.
std::unique_ptr<Linear<float>> trained_slot(const MethodOptions& o, const Tensor& w, Rng& rng, double b_scale) {
  auto lin = make_linear<float>(o, "blk.0.attn_q", w, true, rng);
  for (auto& p : lin->trainable())
    if (p.name.find("lora_b") != std::string::npos)
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] = static_cast<float>(rng.normal() * b_scale);
    else if (p.name.find("qalora_scale") != std::string::npos)
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] *= static_cast<float>(1.0 + 0.05 * rng.normal());
    else if (p.name.find("loldu_z") != std::string::npos)
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] += static_cast<float>(rng.normal() * b_scale);
  return lin;
}

}  // namespace

TEST(IntegerMerge, MergedIntegersEqualTheTrainingForwardExactly) {
  Rng rng(11);
  for (int64_t in : {64, 172}) {
    Tensor w = random_weight(rng, 40, in);
    for (const char* m : {"qalora", "intlora-mul", "intlora-shift", "qaloldu"})
      for (int bits : {4, 8})
        for (bool zf : {false, true}) {
          if (zf && (std::string(m) == "qalora" || std::string(m) == "qaloldu")) continue;
          auto o = opts(m);
          o.bits = bits;
          o.zero_free = zf;
          SCOPED_TRACE(std::string(m) + " bits " + std::to_string(bits) + (zf ? " zero-free" : "") + " in " +
                       std::to_string(in));
          auto lin = trained_slot(o, w, rng, 0.05);
          Tensor train = effective_weight(*lin);
          Deployed d = lin->merge();
          ASSERT_FALSE(d.weight.has_value());
          ASSERT_FALSE(d.planes.empty());
          EXPECT_EQ(d.inexact, 0);
          Tensor merged = dequantized(d, 40, in);
          EXPECT_EQ(0, std::memcmp(train.ptr(), merged.ptr(), train.numel() * sizeof(float)))
              << "max diff " << test::rel_err(merged.ptr(), train.ptr(), train.numel());
          // QA-LoRA deploys in the base's own b-bit format; MUL at 4 bits fits int8 (Q8_0-able)
          if (std::string(m) == "qalora" || std::string(m) == "qaloldu") EXPECT_EQ(d.planes[0].spec.bits, bits);
          if (std::string(m) == "qaloldu") {  // the update moved integers: the merge is not the base
            Tensor base = lin->base_weight();
            EXPECT_NE(0, std::memcmp(base.ptr(), merged.ptr(), base.numel() * sizeof(float)));
          }
          if (std::string(m) == "intlora-mul" && bits == 4 && !zf) EXPECT_EQ(d.planes[0].spec.bits, 8);
        }
  }
}

TEST(IntegerMerge, MergedForwardMatchesTrainingForwardOnRandomInputs) {
  Rng rng(12);
  Tensor w = random_weight(rng, 65, 100);
  for (const char* m : {"qalora", "intlora-mul", "intlora-shift", "qaloldu"}) {
    auto o = opts(m);
    auto lin = trained_slot(o, w, rng, 0.05);
    auto x = randn<float>(7 * 100, rng);
    std::vector<float> y_train(7 * 65), y_dep(7 * 65);
    Context ctx;
    lin->forward(x.data(), y_train.data(), 7, ctx);
    const std::vector<QuantMatrix> planes = lin->merge().planes;
    auto dep = make_inference_linear<float>("blk.0.attn_q", nullptr, &planes, 0, 0.0f);
    dep->forward(x.data(), y_dep.data(), 7, ctx);
    EXPECT_LT(test::rel_err(y_dep.data(), y_train.data(), y_train.size()), 1e-6) << m;
  }
}

// With --act-bits 8 the training forward fake-quantizes the input with the calibrated static
// scale; the merged model runs real int8 activations through the integer GEMM with the same
// scale: the same integers on both sides, outputs equal to float rounding.
TEST(IntegerMerge, Int8ActivationPathMatchesTrainingFakeQuant) {
  Rng rng(13);
  Tensor w = random_weight(rng, 65, 100);
  for (const char* m : {"qalora", "intlora-mul", "intlora-shift", "qaloldu"}) {
    auto o = opts(m);
    o.act_bits = 8;
    o.act_calib = 2;
    auto lin = trained_slot(o, w, rng, 0.05);
    Context ctx;
    // calibrate: two training micro-batches (forward + backward)
    for (int b = 0; b < 2; ++b) {
      auto xc = randn<float>(5 * 100, rng, 1.5);
      std::vector<float> yc(5 * 65), dyc(5 * 65, 0.0f);
      lin->forward(xc.data(), yc.data(), 5, ctx);
      lin->backward(xc.data(), dyc.data(), nullptr, 5, ctx);
    }
    const float s = lin->input_scale();
    ASSERT_GT(s, 0.0f) << m;
    auto x = randn<float>(7 * 100, rng);  // some values beyond the calibrated range are clipped
    x[3] = 40.0f;
    std::vector<float> y_train(7 * 65), y_dep(7 * 65);
    lin->forward(x.data(), y_train.data(), 7, ctx);
    std::vector<QuantMatrix> planes = lin->merge().planes;
    auto dep = make_inference_linear<float>("blk.0.attn_q", nullptr, &planes, 8, s);
    dep->forward(x.data(), y_dep.data(), 7, ctx);
    EXPECT_LT(test::rel_err(y_dep.data(), y_train.data(), y_train.size()), 1e-5) << m;
  }
}

TEST(IntegerMerge, FrozenQuantSlotsMergeToTheirIntegers) {
  Rng rng(14);
  Tensor w = random_weight(rng, 33, 64);
  for (const char* m : {"qalora", "intlora-mul", "intlora-shift", "qlora"}) {
    auto lin = make_linear<float>(opts(m), "blk.0.ffn_up", w, /*targeted=*/false, rng);
    EXPECT_TRUE(lin->trainable().empty()) << m;
    Deployed d = lin->merge();
    ASSERT_EQ(d.planes.size(), 1u) << m;
    Tensor a = effective_weight(*lin), b = dequantized(d, 33, 64);
    EXPECT_EQ(0, std::memcmp(a.ptr(), b.ptr(), a.numel() * sizeof(float))) << m;
  }
}

// IntLoRA's auxiliary matrix is regenerated from the slot's key: the same seed rebuilds the same
// slot (what `qtune merge` relies on), another seed a different one.
TEST(IntegerMerge, IntLoraIsAFunctionOfTheSeed) {
  Tensor w;
  {
    Rng rng(1);
    w = random_weight(rng, 20, 48);
  }
  auto build = [&](uint64_t seed) {
    Rng rng(seed);
    return make_linear<float>(opts("intlora-mul"), "blk.0.attn_q", w, true, rng);
  };
  Tensor a = effective_weight(*build(5)), b = effective_weight(*build(5)), c = effective_weight(*build(6));
  EXPECT_EQ(0, std::memcmp(a.ptr(), b.ptr(), a.numel() * sizeof(float)));
  EXPECT_NE(0, std::memcmp(a.ptr(), c.ptr(), a.numel() * sizeof(float)));
  // At B·A = 0 the adapted weight approximates W (AQS: s·W_int + R ≈ W, then U is quantized)
  EXPECT_LT(test::rel_err(a.ptr(), w.ptr(), w.numel()), 0.5);
}

TEST(IntegerMerge, BadOptionsAreRejected) {
  Rng rng(1);
  Tensor w = random_weight(rng);
  auto o = opts("qalora");
  o.zero_free = true;
  EXPECT_THROW(make_linear<float>(o, "blk.0.attn_q", w, true, rng), Error);
  o = opts("intlora-mul");
  o.vmc = "bogus";
  EXPECT_THROW(make_linear<float>(o, "blk.0.attn_q", w, true, rng), Error);
  o = opts("intlora-mul");
  o.vmc_alpha = -1;
  EXPECT_THROW(make_linear<float>(o, "blk.0.attn_q", w, true, rng), Error);
  o = opts("lora");
  o.act_bits = 4;
  EXPECT_THROW(make_linear<float>(o, "blk.0.attn_q", w, true, rng), Error);
}
