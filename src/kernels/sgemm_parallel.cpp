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

thread_local int64_t g_rows_per_sample = 0;

// Below this many multiply-adds a parallel region costs more than it saves.
constexpr int64_t kParallelWork = 1 << 16;
constexpr int64_t kBf16MinSide = 32;

// bf16 pays for its operand conversion only when every side is long: a LoRA product of rank 8
// (N or K = 8) stays fp32, and so does a one-row product.
bool use_bf16(int64_t M, int64_t N, int64_t K) {
  return bf16_gemm() && std::min({M, N, K}) >= kBf16MinSide && M * N * K >= kParallelWork;
}

}  // namespace

void sgemm_serial(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static const bool blas_single_threaded = (openblas_set_num_threads(1), true);  // as sgemm_parallel
  (void)blas_single_threaded;
  sgemm_block(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// C's rows as samples of P rows: every sample is computed by the same BLAS calls whatever else
// is in the batch — one call per (sample, block of columns), with M = P and the columns split
// in as many blocks as threads (multiples of 16), these calls shared among the threads.
static void sgemm_per_sample(bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                             const float* B, int64_t ldb, float beta, float* C, int64_t ldc, int64_t P) {
  const int64_t samples = M / P;
  if (use_bf16(P, N, K)) {
    for (int64_t s = 0; s < samples; ++s)  // oneDNN splits each product itself
      sgemm_bf16(false, tb, P, N, K, alpha, A + s * P * lda, lda, B, ldb, beta, C + s * P * ldc, ldc);
    return;
  }
  const int64_t nt = omp_get_max_threads();
  const int64_t chunk = ((N + nt - 1) / nt + 15) / 16 * 16, blocks = (N + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (M * N * K >= kParallelWork && nt > 1)
  for (int64_t i = 0; i < samples * blocks; ++i) {
    const int64_t s = i / blocks, c0 = (i % blocks) * chunk, c1 = std::min(N, c0 + chunk);
    const float* Bs = tb ? B + c0 * ldb : B + c0;
    sgemm_block(false, tb, P, c1 - c0, K, alpha, A + s * P * lda, lda, Bs, ldb, beta, C + s * P * ldc + c0, ldc);
  }
}

int64_t rows_per_sample() { return g_rows_per_sample; }
RowsPerSample::RowsPerSample(int64_t rows) : saved_(g_rows_per_sample) { g_rows_per_sample = rows; }
RowsPerSample::~RowsPerSample() { g_rows_per_sample = saved_; }

void sgemm_parallel(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  static const bool blas_single_threaded = (openblas_set_num_threads(1), true);  // once, whoever calls first
  (void)blas_single_threaded;
  const int64_t P = g_rows_per_sample;
  if (!ta && P > 0 && M % P == 0) return sgemm_per_sample(tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, P);
  if (use_bf16(M, N, K)) return sgemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
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
