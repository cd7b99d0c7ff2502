// Fast float GEMMs (BLAS) against the scalar reference, on random shapes with odd sizes.
#include <vector>

#include "core/rng.h"
#include "kernels/gemm.h"
#include "test_util.h"

using namespace qtune;

namespace {

std::vector<float> randn(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

struct Shape3 {
  int64_t n, in, out;
};
const Shape3 kShapes[] = {{1, 1, 1},   {1, 17, 3},  {3, 33, 65}, {17, 63, 1}, {65, 100, 33},
                          {2, 1, 100}, {100, 65, 17}, {33, 128, 64}, {7, 3, 129}};

// Errors of a float GEMM of length-k dots are ~k·eps relative.
constexpr double kTol = 1e-5;

}  // namespace

TEST(Gemm, NtMatchesReference) {
  Rng rng(1);
  for (auto s : kShapes) {
    for (bool acc : {false, true}) {
      auto x = randn(s.n * s.in, rng), W = randn(s.out * s.in, rng), y0 = randn(s.n * s.out, rng);
      auto y = y0, yr = y0;
      kernels::matmul_nt(x.data(), W.data(), y.data(), s.n, s.in, s.out, acc);
      kernels::ref::matmul_nt(x.data(), W.data(), yr.data(), s.n, s.in, s.out, acc);
      EXPECT_LT(test::rel_err(y.data(), yr.data(), y.size()), kTol) << s.n << "x" << s.in << "x" << s.out;
    }
  }
}

TEST(Gemm, NnMatchesReference) {
  Rng rng(2);
  for (auto s : kShapes) {
    for (bool acc : {false, true}) {
      auto dy = randn(s.n * s.out, rng), W = randn(s.out * s.in, rng), dx0 = randn(s.n * s.in, rng);
      auto dx = dx0, dxr = dx0;
      kernels::matmul_nn(dy.data(), W.data(), dx.data(), s.n, s.in, s.out, acc);
      kernels::ref::matmul_nn(dy.data(), W.data(), dxr.data(), s.n, s.in, s.out, acc);
      EXPECT_LT(test::rel_err(dx.data(), dxr.data(), dx.size()), kTol) << s.n << "x" << s.in << "x" << s.out;
    }
  }
}

TEST(Gemm, TnMatchesReference) {
  Rng rng(3);
  for (auto s : kShapes) {
    for (bool acc : {false, true}) {
      auto dy = randn(s.n * s.out, rng), x = randn(s.n * s.in, rng), dW0 = randn(s.out * s.in, rng);
      auto dW = dW0, dWr = dW0;
      kernels::matmul_tn(dy.data(), x.data(), dW.data(), s.n, s.in, s.out, acc);
      kernels::ref::matmul_tn(dy.data(), x.data(), dWr.data(), s.n, s.in, s.out, acc);
      EXPECT_LT(test::rel_err(dW.data(), dWr.data(), dW.size()), kTol) << s.n << "x" << s.in << "x" << s.out;
    }
  }
}

// The reference itself against a hand-computed product.
TEST(Gemm, ReferenceByHand) {
  // x = [[1, 2], [3, 4]], W = [[1, 0], [1, 1], [2, -1]]  →  x·Wᵀ = [[1, 3, 0], [3, 7, 2]]
  const double x[] = {1, 2, 3, 4}, W[] = {1, 0, 1, 1, 2, -1};
  double y[6] = {10, 10, 10, 10, 10, 10};
  kernels::ref::matmul_nt(x, W, y, 2, 2, 3, false);
  const double want[] = {1, 3, 0, 3, 7, 2};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], want[i]);
  kernels::ref::matmul_nt(x, W, y, 2, 2, 3, true);  // accumulate doubles it
  for (int i = 0; i < 6; ++i) EXPECT_EQ(y[i], 2 * want[i]);
  // dyᵀ·x with dy = y: dW[o, k] = Σ_i y[i, o]·x[i, k]
  double dW[6] = {};
  kernels::ref::matmul_tn(want, x, dW, 2, 2, 3, false);
  const double wantW[] = {1 * 1 + 3 * 3, 1 * 2 + 3 * 4, 3 * 1 + 7 * 3, 3 * 2 + 7 * 4, 0 + 2 * 3, 0 + 2 * 4};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(dW[i], wantW[i]);
}

TEST(Gemm, EmptyInnerDimensionZeroesOutput) {
  std::vector<float> y(6, 5.0f), x(1), W(1);
  kernels::matmul_nt(x.data(), W.data(), y.data(), 2, 0, 3, false);
  for (float v : y) EXPECT_EQ(v, 0.0f);
}
