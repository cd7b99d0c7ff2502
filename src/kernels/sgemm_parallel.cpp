#include "kernels/sgemm_parallel.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "kernels/gemm_bf16.h"

namespace qtune::kernels {

namespace {

void sgemm_block(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // one row times Bᵀ (decoding's float products): sgemm would pack all of B for one use
  if (M == 1 && !ta && tb) return cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, alpha, B, ldb, A, 1, beta, C, 1);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
              lda, B, ldb, beta, C, ldc);
}

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 16;
constexpr int64_t kBf16MinSide = 32;

}  // namespace

void sgemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static const bool blas_single_threaded = (openblas_set_num_threads(1), true);  // as sgemm_parallel
  (void)blas_single_threaded;
  sgemm_block(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void sgemm_parallel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static const bool blas_single_threaded = (openblas_set_num_threads(1), true);  // once, whoever calls first
  (void)blas_single_threaded;
  // bf16 pays for its operand conversion only when every side is long: a LoRA product of rank
  // 8 (N or K = 8) stays fp32, and so does a one-row product.
  if (bf16_gemm() && std::min({M, N, K}) >= kBf16MinSide && M * N * K >= kParallelWork)
    return sgemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  const int nt = omp_get_max_threads();
  if (nt <= 1 || M * N * K < kParallelWork) return sgemm_block(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // Split the longer side of C into nt contiguous blocks (block size rounded to 16 for SIMD).
  const bool split_rows = M >= N;
  const int64_t len = split_rows ? M : N;
  const int64_t chunk = ((len + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel for schedule(static, 1)
  for (int t = 0; t < nt; ++t) {
    const int64_t s = t * chunk, e = std::min(len, s + chunk);
    if (s >= e) continue;
    if (split_rows) {  // rows s..e of C need rows s..e of op(A)
      const float* As = ta ? A + s : A + s * lda;
      sgemm_block(ta, tb, e - s, N, K, alpha, As, lda, B, ldb, beta, C + s * ldc, ldc);
    } else {  // columns s..e of C need columns s..e of op(B)
      const float* Bs = tb ? B + s * ldb : B + s;
      sgemm_block(ta, tb, M, e - s, K, alpha, A, lda, Bs, ldb, beta, C + s, ldc);
    }
  }
}

}  // namespace qtune::kernels
