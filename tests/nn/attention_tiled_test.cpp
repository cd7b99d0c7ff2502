// The tiled attention (nn/attention.cpp) against the naive one (nn::ref, nn/attention_ref.cpp):
// outputs, lse and the three gradients, causal and not, nh ≠ nkv, T = 1, T a multiple of the
// 64-row tile and not, head sizes 8, 48, 64. Double runs the same tiling with plain loops, so
// it must agree to rounding; float (BLAS tiles) to float rounding. And the float threads: the
// result must not depend on the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <ostream>
#include <vector>

#include "core/rng.h"
#include "nn/ops.h"
#include "test_util.h"

using namespace qtune;

namespace {

struct Shape {
  int64_t B, T, nh, nkv, hd;
  bool causal;
};
void PrintTo(const Shape& s, std::ostream* os) {
  *os << "B " << s.B << " T " << s.T << " nh " << s.nh << " nkv " << s.nkv << " hd " << s.hd
      << (s.causal ? " causal" : " full");
}

template <class T>
std::vector<T> randn(size_t n, Rng& rng) {
  std::vector<T> v(n);
  for (auto& x : v) x = T(rng.normal());
  return v;
}

template <class T>
struct Result {
  std::vector<T> out, lse, dq, dk, dv;
};

// Inputs from a fixed seed; gradients start from a random G and accumulate onto a start of 0.5.
template <class T>
Result<T> tiled(const Shape& s) {
  Rng rng(11);
  const size_t nq = s.B * s.T * s.nh * s.hd, nk = s.B * s.T * s.nkv * s.hd;
  const auto q = randn<T>(nq, rng), k = randn<T>(nk, rng), v = randn<T>(nk, rng), G = randn<T>(nq, rng);
  Result<T> r{std::vector<T>(nq), std::vector<T>(s.B * s.nh * s.T), std::vector<T>(nq, T(0.5)),
              std::vector<T>(nk, T(0.5)), std::vector<T>(nk, T(0.5))};
  nn::attention_forward(q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), s.B, s.T, s.nh, s.nkv, s.hd,
                        s.causal);
  nn::attention_backward(G.data(), q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), r.dq.data(),
                         r.dk.data(), r.dv.data(), s.B, s.T, s.nh, s.nkv, s.hd, s.causal);
  return r;
}

// The naive algorithm in double on the same inputs (drawn as T, then widened); lse from its
// probabilities' normalizer, recomputed here from the definition.
template <class T>
Result<double> naive(const Shape& s) {
  Rng rng(11);
  const size_t nq = s.B * s.T * s.nh * s.hd, nk = s.B * s.T * s.nkv * s.hd;
  auto widen = [](const std::vector<T>& x) { return std::vector<double>(x.begin(), x.end()); };
  const auto q = widen(randn<T>(nq, rng)), k = widen(randn<T>(nk, rng)), v = widen(randn<T>(nk, rng)),
             G = widen(randn<T>(nq, rng));
  Result<double> r{std::vector<double>(nq), std::vector<double>(s.B * s.nh * s.T), std::vector<double>(nq, 0.5),
                   std::vector<double>(nk, 0.5), std::vector<double>(nk, 0.5)};
  std::vector<double> att(s.B * s.nh * s.T * s.T);
  nn::ref::attention_forward(q.data(), k.data(), v.data(), r.out.data(), att.data(), s.B, s.T, s.nh, s.nkv, s.hd,
                             s.causal);
  nn::ref::attention_backward(G.data(), q.data(), k.data(), v.data(), att.data(), r.dq.data(), r.dk.data(),
                              r.dv.data(), s.B, s.T, s.nh, s.nkv, s.hd, s.causal);
  const int64_t group = s.nh / s.nkv;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.nh; ++h)
      for (int64_t t = 0; t < s.T; ++t) {
        double sum = 0;
        for (int64_t u = 0; u <= (s.causal ? t : s.T - 1); ++u) {
          double d = 0;
          for (int64_t i = 0; i < s.hd; ++i)
            d += q[((b * s.T + t) * s.nh + h) * s.hd + i] * k[((b * s.T + u) * s.nkv + h / group) * s.hd + i];
          sum += std::exp(d / std::sqrt(double(s.hd)));
        }
        r.lse[(b * s.nh + h) * s.T + t] = std::log(sum);
      }
  return r;
}

template <class T>
void expect_close(const Result<T>& got, const Result<double>& want, double tol) {
  EXPECT_LT(test::rel_err(got.out.data(), want.out.data(), got.out.size()), tol) << "out";
  EXPECT_LT(test::rel_err(got.lse.data(), want.lse.data(), got.lse.size()), tol) << "lse";
  EXPECT_LT(test::rel_err(got.dq.data(), want.dq.data(), got.dq.size()), tol) << "dq";
  EXPECT_LT(test::rel_err(got.dk.data(), want.dk.data(), got.dk.size()), tol) << "dk";
  EXPECT_LT(test::rel_err(got.dv.data(), want.dv.data(), got.dv.size()), tol) << "dv";
}

class AttentionTiled : public ::testing::TestWithParam<Shape> {};

TEST_P(AttentionTiled, DoubleMatchesNaive) {
  expect_close(tiled<double>(GetParam()), naive<double>(GetParam()), 1e-12);
}

TEST_P(AttentionTiled, FloatMatchesNaive) { expect_close(tiled<float>(GetParam()), naive<float>(GetParam()), 2e-5); }

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionTiled,
                         ::testing::Values(Shape{2, 1, 2, 1, 8, true},      // T = 1
                                           Shape{2, 1, 3, 3, 8, false},
                                           Shape{1, 64, 4, 1, 8, true},     // exactly one tile
                                           Shape{2, 130, 4, 2, 48, true},   // 2 full tiles + 2 rows
                                           Shape{2, 130, 4, 2, 48, false},
                                           Shape{1, 97, 6, 3, 64, true},    // a partial last tile
                                           Shape{2, 70, 2, 2, 64, false},
                                           Shape{1, 200, 2, 1, 8, true}),
                         [](const auto& info) {
                           const Shape& s = info.param;
                           return "B" + std::to_string(s.B) + "T" + std::to_string(s.T) + "nh" + std::to_string(s.nh) +
                                  "kv" + std::to_string(s.nkv) + "hd" + std::to_string(s.hd) +
                                  (s.causal ? "causal" : "full");
                         });

TEST(AttentionTiledThreads, FloatSameForOneAndTwoThreads) {
  // big enough for the OpenMP paths; forward tiles and backward kv heads each have one owner
  for (bool causal : {true, false}) {
    const Shape s{2, 150, 4, 2, 48, causal};
    omp_set_num_threads(1);
    const Result<float> one = tiled<float>(s);
    omp_set_num_threads(2);
    const Result<float> two = tiled<float>(s);
    omp_set_num_threads(omp_get_num_procs());
    EXPECT_EQ(one.out, two.out);
    EXPECT_EQ(one.lse, two.lse);
    EXPECT_EQ(one.dq, two.dq);
    EXPECT_EQ(one.dk, two.dk);
    EXPECT_EQ(one.dv, two.dv);
  }
}

TEST(AttentionTiledStable, LargeScoresDoNotOverflow) {
  // scores of ±hundreds: the online softmax must rescale, not overflow exp
  const Shape s{1, 80, 1, 1, 8, true};
  Rng rng(3);
  auto q = randn<float>(80 * 8, rng), k = randn<float>(80 * 8, rng), v = randn<float>(80 * 8, rng);
  for (auto& x : q) x *= 40.0f;
  std::vector<float> out(q.size()), lse(80);
  nn::attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), s.B, s.T, s.nh, s.nkv, s.hd, true);
  for (float x : out) ASSERT_TRUE(std::isfinite(x));
  for (float x : lse) ASSERT_TRUE(std::isfinite(x));
}

}  // namespace
