// --gemm bf16: oneDNN's bf16 matmul against a double reference on the bf16-rounded operands,
// every transposition, alpha/beta, leading dimensions; the switch and the pins. Skipped (visibly)
// on a CPU without AVX512-BF16, where `--gemm bf16` is refused (tests/cli).
#include "kernels/gemm_bf16.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "kernels/gemm.h"
#include "test_util.h"

using namespace qtune;

namespace {

#define QT_NEED_BF16()                                                                                    \
  if (!kernels::bf16_gemm_supported()) GTEST_SKIP() << "this CPU has no AVX512-BF16: --gemm bf16 is refused"

// bf16 by its definition: the upper 16 bits after adding half an ulp, ties to even.
float bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<float> randn(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// C = alpha·op(A)·op(B) + beta·C in double on bf16-rounded A and B.
void reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, std::vector<double>& C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += double(bf16_round(ta ? A[k * lda + i] : A[i * lda + k])) *
             double(bf16_round(tb ? B[j * ldb + k] : B[k * ldb + j]));
      C[size_t(i * ldc + j)] = alpha * s + beta * C[size_t(i * ldc + j)];
    }
}

}  // namespace

TEST(GemmBf16, RoundingIsNearestEven) {
  QT_NEED_BF16();
  Rng rng(3);
  std::vector<float> x = randn(1000, rng);
  x.push_back(1.0f + std::ldexp(1.0f, -8));      // a tie: to 1.0
  x.push_back(1.0f + 3 * std::ldexp(1.0f, -8));  // a tie: to 1 + 2^-6
  std::vector<uint16_t> h(x.size());
  kernels::round_to_bf16(x.data(), 1, int64_t(x.size()), int64_t(x.size()), h.data());
  for (size_t i = 0; i < x.size(); ++i) {
    uint32_t u = uint32_t(h[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    ASSERT_EQ(f, bf16_round(x[i])) << i;
  }
}

TEST(GemmBf16, EveryTranspositionMatchesTheReferenceOnRoundedOperands) {
  QT_NEED_BF16();
  Rng rng(7);
  struct Case {
    int64_t M, N, K;
    float alpha, beta;
  };
  for (const Case& c : {Case{33, 65, 100, 1.0f, 0.0f}, Case{64, 17, 129, 0.5f, 1.0f}, Case{5, 300, 31, 1.0f, 0.25f}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const int64_t lda = (ta ? c.M : c.K) + 3, ldb = (tb ? c.K : c.N) + 1, ldc = c.N + 2;
        std::vector<float> A = randn((ta ? c.K : c.M) * lda, rng), B = randn((tb ? c.N : c.K) * ldb, rng);
        std::vector<float> C = randn(c.M * ldc, rng);
        std::vector<double> want(C.begin(), C.end());
        reference(ta, tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, want, ldc);
        kernels::sgemm_bf16(ta, tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
        double worst = 0;
        for (int64_t i = 0; i < c.M; ++i)
          for (int64_t j = 0; j < c.N; ++j)  // float sums of K exact products: ~K·2^-24 relative to Σ|a·b|
            worst = std::max(worst, std::fabs(C[size_t(i * ldc + j)] - want[size_t(i * ldc + j)]) / std::sqrt(double(c.K)));
        EXPECT_LT(worst, 1e-4) << "ta " << ta << " tb " << tb << " M " << c.M;
        for (int64_t i = 0; i < c.M; ++i)  // the padding of C is never written
          for (int64_t j = c.N; j < ldc; ++j) ASSERT_EQ(C[size_t(i * ldc + j)], float(want[size_t(i * ldc + j)]));
      }
}

TEST(GemmBf16, TheSwitchRoutesFloatGemmsAndTheScopeRestoresIt) {
  QT_NEED_BF16();
  Rng rng(11);
  const int64_t n = 64, in = 96, out = 80;
  std::vector<float> x = randn(n * in, rng), W = randn(out * in, rng), y32(n * out), y16(n * out), pinned(n * out);
  kernels::matmul_nt(x.data(), W.data(), y32.data(), n, in, out, false);
  {
    const kernels::Bf16GemmScope on(true);
    EXPECT_TRUE(kernels::bf16_gemm());
    kernels::matmul_nt(x.data(), W.data(), y16.data(), n, in, out, false);
    const kernels::Bf16Pin pin(W.data(), out, in);
    kernels::matmul_nt(x.data(), W.data(), pinned.data(), n, in, out, false);
  }
  EXPECT_FALSE(kernels::bf16_gemm());
  std::vector<double> want(size_t(n * out), 0.0);
  reference(false, true, n, out, in, 1.0f, x.data(), in, W.data(), in, 0.0f, want, out);
  double d32 = 0, d16 = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    d32 = std::max(d32, std::fabs(y32[i] - want[i]));
    d16 = std::max(d16, std::fabs(y16[i] - want[i]));
  }
  EXPECT_LT(d16, 1e-4);  // the bf16 product of the rounded operands ...
  EXPECT_GT(d32, 1e-3);  // ... which the fp32 product is not
  EXPECT_EQ(pinned, y16);  // a pinned operand is the same rounding, converted once
}
