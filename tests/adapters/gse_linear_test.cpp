// GSE slots (--gemm gse:..., docs/METHODS.md §9): a GSE LoRA / QLoRA / dense linear's output and
// gradients against the same slot in float, within the error its bit width implies.
//
// The bound. Every product is C = Â·B̂ᵀ with Â, B̂ the GSE encodings of its operands, each along
// the reduction axis k (kernels/gse_ops.h). An encoded element is x̂ = x + δ with, for a group of
// exponent e (quant/gse.h), |δ| ≤ 2^(e−1) (nearest) or < 2^e (stochastic), and 2^e ≤ 2·amax/Qmax,
// Qmax = 2^(b−1) − 1: the step halves with each bit. Rounding errors of different elements are
// modelled as independent and zero-mean, with variance q ≤ step²/12 (nearest: uniform on ±step/2)
// or ≤ step²/4 (stochastic: f(1 − f)·step²). Then each element of the product error
//   ΔC_ij = Σ_c δA_ic·B_jc + A_ic·δB_jc + δA_ic·δB_jc
// has variance V_ij = Σ_c qA_ic·B_jc² + A_ic²·qB_jc + qA_ic·qB_jc, where an operand that is
// itself a GSE product (h = s·x·Aᵀ, g = s·dy·B) adds its own V to q. Two error terms that share a
// rounding (dx = dy·W0 + g·A both carry dy's) are added as (√V1 + √V2)², their worst correlation.
// In relative terms √V/|C| ~ 2^−(b−1)·amax/rms: every bit halves it. The test asserts
//   ||Ĉ − C||_F ≤ 2·√(Σ V)
// with C the float slot's result. ||Ĉ − C||²_F sums hundreds of independent terms, so it stays
// near its expectation (≤ ΣV): a factor 2 (4 in the sum) is far outside its spread, while a wrong
// orientation, group axis or scale gives errors of the size of C itself — which the test also
// checks is far above the bound. The model computes the steps from the float operands' group
// maxima (raised by 3σ of their upstream noise, so never below the encoded operand's step).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "adapters/linear.h"
#include "adapters/methods.h"
#include "kernels/gemm.h"
#include "test_util.h"

using namespace qtune;

namespace {

constexpr int64_t kN = 64, kIn = 96, kOut = 80;
constexpr int kRank = 8;
constexpr float kAlpha = 16.0f;  // s = 2

// A row-major matrix in double with a per-element noise variance (0: exact input).
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<double> v, var;
  Mat(int64_t r, int64_t c) : rows(r), cols(c), v(r * c), var(r * c) {}
  double& operator()(int64_t i, int64_t j) { return v[i * cols + j]; }
  double operator()(int64_t i, int64_t j) const { return v[i * cols + j]; }
  Mat t() const {
    Mat m(cols, rows);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        m.v[j * rows + i] = v[i * cols + j];
        m.var[j * rows + i] = var[i * cols + j];
      }
    return m;
  }
};

Mat mat(const float* p, int64_t r, int64_t c) {
  Mat m(r, c);
  for (int64_t i = 0; i < r * c; ++i) m.v[i] = p[i];
  return m;
}

// The variance q + upstream noise of each element of operand X encoded along its rows (k = cols).
std::vector<double> operand_var(const Mat& X, const GseSpec& spec, bool stochastic) {
  std::vector<double> q(X.v.size());
  const int64_t G = spec.group;
  for (int64_t i = 0; i < X.rows; ++i)
    for (int64_t c0 = 0; c0 < X.cols; c0 += G) {
      const int64_t c1 = std::min(X.cols, c0 + G);
      double amax = 0;
      for (int64_t c = c0; c < c1; ++c)
        amax = std::max(amax, std::fabs(X(i, c)) + 3 * std::sqrt(X.var[i * X.cols + c]));
      const double step = std::ldexp(1.0, gse_exponent(static_cast<float>(amax * (1 + 1e-6)), spec));
      for (int64_t c = c0; c < c1; ++c)
        q[i * X.cols + c] = X.var[i * X.cols + c] + step * step / (stochastic ? 4.0 : 12.0);
    }
  return q;
}

// C = s·A·Bᵀ (A [n, k], B [m, k]) with its error variance: the model of the header comment.
Mat product(const Mat& A, bool a_stoch, const Mat& B, bool b_stoch, const GseSpec& spec, double s = 1.0) {
  const std::vector<double> qa = operand_var(A, spec, a_stoch), qb = operand_var(B, spec, b_stoch);
  Mat C(A.rows, B.rows);
  for (int64_t i = 0; i < A.rows; ++i)
    for (int64_t j = 0; j < B.rows; ++j) {
      double c = 0, var = 0;
      for (int64_t k = 0; k < A.cols; ++k) {
        const double a = A(i, k), b = B(j, k), va = qa[i * A.cols + k], vb = qb[j * B.cols + k];
        c += a * b;
        var += va * b * b + a * a * vb + va * vb;
      }
      C(i, j) = s * c;
      C.var[i * C.cols + j] = s * s * var;
    }
  return C;
}

// Two error terms that may share a rounding: (√V1 + √V2)².
Mat sum_correlated(const Mat& X, const Mat& Y) {
  Mat Z = X;
  for (size_t i = 0; i < Z.v.size(); ++i) {
    Z.v[i] += Y.v[i];
    Z.var[i] = std::pow(std::sqrt(X.var[i]) + std::sqrt(Y.var[i]), 2);
  }
  return Z;
}

struct Gap {
  double err, bound, norm;  // ||Ĉ − C||_F, 2·√ΣV, ||C||_F
};

Gap gap(const std::vector<float>& gse, const std::vector<float>& ref, const Mat& model) {
  double e = 0, v = 0, n = 0;
  for (size_t i = 0; i < gse.size(); ++i) {
    e += std::pow(double(gse[i]) - ref[i], 2);
    n += double(ref[i]) * ref[i];
    v += model.var[i];
  }
  return {std::sqrt(e), 2 * std::sqrt(v), std::sqrt(n)};
}

void expect_within(const Gap& g, const char* what) {
  SCOPED_TRACE(what);
  if (std::getenv("QTUNE_PRINT_GSE_ERRORS"))  // the figures behind the bound, for docs
    std::printf("%-3s err %.3g bound %.3g rel %.3g ratio %.2f\n", what, g.err, g.bound, g.err / g.norm,
                g.err / g.bound);
  EXPECT_GT(g.err, 0.0) << "identical to float: the GSE path did not run";
  EXPECT_LE(g.err, g.bound) << "relative error " << g.err / g.norm << ", bound " << g.bound / g.norm;
  // A broken product (wrong orientation, group axis or scale) errs by about |C|: the bound is tight
  // enough to tell, at every width tested.
  EXPECT_LT(g.bound, 0.5 * g.norm);
}

std::vector<float> randn(int64_t n, Rng& rng, double scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

GemmMode gse_mode(const std::string& spec) { return parse_gemm_mode("gse:" + spec); }

// One forward + backward of a slot; y, dx and the parameters' gradients.
struct Pass {
  std::vector<float> y, dx;
  std::vector<std::vector<float>> grads;
};

Pass run(Linear<float>& lin, const std::vector<float>& x, const std::vector<float>& dy, uint64_t step = 0) {
  Context ctx;
  ctx.seed = 11;
  ctx.step = step;
  Pass r;
  r.y.resize(kN * lin.out());
  r.dx.assign(kN * lin.in(), 0.0f);
  lin.forward(x.data(), r.y.data(), kN, ctx);
  for (auto& p : lin.trainable()) std::fill(p.grad, p.grad + p.numel, 0.0f);
  lin.backward(x.data(), dy.data(), r.dx.data(), kN, ctx);
  for (auto& p : lin.trainable()) r.grads.emplace_back(p.grad, p.grad + p.numel);
  return r;
}

struct Inputs {
  Tensor w{{kOut, kIn}};
  std::vector<float> x, dy, B;
  explicit Inputs(uint64_t seed) {
    Rng rng(seed);
    for (auto& v : w.data) v = static_cast<float>(rng.normal() / std::sqrt(double(kIn)));
    x = randn(kN * kIn, rng, 1.0);
    dy = randn(kN * kOut, rng, 1e-3);  // gradients are small: the exponents must follow
    B = randn(kOut * kRank, rng, 0.05);
  }
};

// A LoRA-type slot (lora, or qlora with its deq(W0q) as W0), float against GSE.
void check_lora(const std::string& spec_str, bool quantized_base) {
  SCOPED_TRACE(spec_str + (quantized_base ? " qlora" : " lora"));
  const Inputs in(5);
  const GemmMode mode = gse_mode(spec_str);
  auto make = [&](const GemmMode& g) {
    Rng rng(9);  // the same A in both
    QuantSpec q;
    q.bits = 4;
    return quantized_base ? make_qlora<float>("blk.0.attn_q", in.w, q, true, kRank, kAlpha, rng, g)
                          : make_lora<float>("blk.0.attn_q", in.w, kRank, kAlpha, rng, g);
  };
  auto ref = make({}), gse = make(mode);
  for (auto* lin : {ref.get(), gse.get()}) {
    auto p = lin->trainable();
    std::copy(in.B.begin(), in.B.end(), p[1].value);
  }
  const Pass f = run(*ref, in.x, in.dy), q = run(*gse, in.x, in.dy);

  // The model of the GSE slot's products (lora_branch.cpp), on the float values.
  const GseSpec& sp = mode.spec;
  const bool st = sp.rounding == GseRounding::stochastic;  // gradients only
  const double s = kAlpha / kRank;
  const Tensor w0 = ref->base_weight();
  const Mat x = mat(in.x.data(), kN, kIn), W0 = mat(w0.ptr(), kOut, kIn), dy = mat(in.dy.data(), kN, kOut);
  const Mat A = mat(ref->trainable()[0].value, kRank, kIn), B = mat(in.B.data(), kOut, kRank);
  const Mat h = product(x, false, A, false, sp, s);                                 // [n, r]
  const Mat y = sum_correlated(product(x, false, W0, false, sp), product(h, false, B, false, sp));
  const Mat dB = product(dy.t(), st, h.t(), false, sp);                             // [out, r]
  const Mat g = product(dy, st, B.t(), false, sp, s);                               // [n, r]
  const Mat dA = product(g.t(), st, x.t(), false, sp);                              // [r, in]
  const Mat dx = sum_correlated(product(dy, st, W0.t(), false, sp), product(g, st, A.t(), false, sp));

  expect_within(gap(q.y, f.y, y), "y");
  expect_within(gap(q.dx, f.dx, dx), "dx");
  expect_within(gap(q.grads[0], f.grads[0], dA), "dA");
  expect_within(gap(q.grads[1], f.grads[1], dB), "dB");
}

}  // namespace

TEST(GseLinear, LoraGradientsWithinTheBoundOfTheirWidth) {
  for (const char* spec : {"b=8", "b=6", "b=5", "b=8,g=16", "b=6,g=64,rule=mx"}) check_lora(spec, false);
}

TEST(GseLinear, LoraStochasticGradientsWithinTheirBound) {
  for (const char* spec : {"b=8,round=stochastic", "b=5,round=stochastic"}) check_lora(spec, false);
}

TEST(GseLinear, QLoraGradientsWithinTheBoundOfTheirWidth) {
  for (const char* spec : {"b=8", "b=5"}) check_lora(spec, true);
}

// Full fine-tuning's slot: y = x·Wᵀ, dx = dy·W, dW = dyᵀ·x, W encoded per pass.
TEST(GseLinear, DenseGradientsWithinTheBoundOfTheirWidth) {
  for (const char* spec : {"b=8", "b=6", "b=5,round=stochastic"}) {
    SCOPED_TRACE(spec);
    const Inputs in(6);
    const GemmMode mode = gse_mode(spec);
    auto ref = make_dense<float>("blk.0.ffn_up", in.w, true), gse = make_dense<float>("blk.0.ffn_up", in.w, true, mode);
    const Pass f = run(*ref, in.x, in.dy), q = run(*gse, in.x, in.dy);
    const bool st = mode.spec.rounding == GseRounding::stochastic;
    const Mat x = mat(in.x.data(), kN, kIn), W = mat(in.w.ptr(), kOut, kIn), dy = mat(in.dy.data(), kN, kOut);
    expect_within(gap(q.y, f.y, product(x, false, W, false, mode.spec)), "y");
    expect_within(gap(q.dx, f.dx, product(dy, st, W.t(), false, mode.spec)), "dx");
    expect_within(gap(q.grads[0], f.grads[0], product(dy.t(), st, x.t(), false, mode.spec)), "dW");
  }
}

// Each bit halves the error: the measured errors order by width.
TEST(GseLinear, ErrorShrinksWithWidth) {
  const Inputs in(7);
  std::vector<double> errs;
  for (const char* spec : {"b=4", "b=6", "b=8"}) {
    Rng r1(9), r2(9);
    auto ref = make_lora<float>("blk.0.attn_v", in.w, kRank, kAlpha, r1);
    auto gse = make_lora<float>("blk.0.attn_v", in.w, kRank, kAlpha, r2, gse_mode(spec));
    for (auto* lin : {ref.get(), gse.get()}) std::copy(in.B.begin(), in.B.end(), lin->trainable()[1].value);
    const Pass f = run(*ref, in.x, in.dy), q = run(*gse, in.x, in.dy);
    double e = 0, n = 0;
    for (size_t i = 0; i < f.dx.size(); ++i) {
      e += std::pow(double(q.dx[i]) - f.dx[i], 2);
      n += double(f.dx[i]) * f.dx[i];
    }
    errs.push_back(std::sqrt(e / n));
  }
  // 2 bits = 4x smaller steps; allow for the statistics of one draw
  EXPECT_GT(errs[0], 2.5 * errs[1]);
  EXPECT_GT(errs[1], 2.5 * errs[2]);
}

// Stochastic rounding is keyed by (seed, step, slot, operand): the same step gives the same bits
// (at any thread count), another step other roundings of the gradients; the forward is nearest.
TEST(GseLinear, StochasticRoundingIsKeyedByStep) {
  const Inputs in(8);
  Rng r1(9), r2(9);
  auto a = make_lora<float>("blk.1.ffn_down", in.w, kRank, kAlpha, r1, gse_mode("b=6,round=stochastic"));
  auto b = make_lora<float>("blk.1.ffn_down", in.w, kRank, kAlpha, r2, gse_mode("b=6,round=stochastic"));
  for (auto* lin : {a.get(), b.get()}) std::copy(in.B.begin(), in.B.end(), lin->trainable()[1].value);
  kernels::set_num_threads(1);
  const Pass one = run(*a, in.x, in.dy, 3);
  kernels::set_num_threads(2);
  const Pass two = run(*b, in.x, in.dy, 3), other = run(*b, in.x, in.dy, 4);
  kernels::set_num_threads(0);
  EXPECT_EQ(one.y, two.y);
  EXPECT_EQ(one.dx, two.dx);
  EXPECT_EQ(one.grads, two.grads);
  EXPECT_EQ(one.y, other.y);  // forward operands round to nearest
  EXPECT_NE(one.dx, other.dx);
  EXPECT_NE(one.grads[0], other.grads[0]);
}

TEST(GseLinear, DoubleSlotsRefuseGse) {
  const Inputs in(9);
  Rng rng(1);
  EXPECT_NE(test::error_of([&] { make_lora<double>("blk.0.attn_k", in.w, 4, 8.0f, rng, gse_mode("b=8")); })
                .find("--gemm gse runs in float"),
            std::string::npos);
}
