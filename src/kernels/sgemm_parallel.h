// kernels/sgemm_parallel.h — row-major sgemm with ONE thread pool: OpenMP splits C into
// blocks and each thread calls single-threaded OpenBLAS on its block.
//
// Why: OpenBLAS (Debian's pthread build) has its own thread pool; mixed with OpenMP regions
// in the model, the two pools spin against each other on a 2-core machine (measured: ~40% of
// training time in libgomp spin-waits). Splitting ourselves also makes every element of C the
// work of one thread in a fixed order, so results depend only on the thread count.
#pragma once
#include <cstdint>

namespace qtune::kernels {

// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C, row-major, as cblas_sgemm.
void sgemm_parallel(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                    int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Rows per sample of the products this thread runs (0: none set). While set, a call whose op(A)
// rows are several whole samples (M a multiple of it, op(A) not transposed) is computed as one
// call per sample, each exactly as a call with that sample alone: BLAS kernels round a row
// differently by its position in the call (OpenBLAS' Haswell sgemm: by row mod 12, and the last
// rows of a call), so without this a sequence's activations would depend on the batch it was in,
// and one process with batch 2b would not compute what two MPI ranks with b each do.
// Set by models around their training passes (RowsPerSample, below); adapters/exact_grad.cpp.
int64_t rows_per_sample();
class RowsPerSample {
 public:
  explicit RowsPerSample(int64_t rows);
  ~RowsPerSample();
  RowsPerSample(const RowsPerSample&) = delete;
  RowsPerSample& operator=(const RowsPerSample&) = delete;

 private:
  int64_t saved_;
};

// The same product on the calling thread only: for callers that split the work themselves and
// call this inside their own OpenMP loop (attention's tiles, nn/attention.cpp).
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                  int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace qtune::kernels
