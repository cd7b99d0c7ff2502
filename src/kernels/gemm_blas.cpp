// kernels/gemm_blas.cpp — the fast float GEMMs: OpenBLAS sgemm (row-major), split across
// OpenMP threads by sgemm_parallel. Double calls go to the scalar reference (they only occur in
// gradient checks). Also the thread-count knob.
#include <cblas.h>

#include <algorithm>
#include <type_traits>

#include "core/system.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/sgemm_parallel.h"

namespace qtune::kernels {

void set_num_threads(int n) {
  qtune::set_num_threads(n);  // OpenMP; n <= 0 means all cores
  openblas_set_num_threads(1);  // one thread pool: sgemm_parallel splits the work itself
  cpu_isa();  // reads QTUNE_CPU now, so a bad value fails before any work rather than midway
}

// A GEMM with an empty inner dimension still defines the output (zero when overwriting);
// BLAS is never called with a zero dimension (its leading-dimension checks reject it).
static bool handle_empty(float* c, int64_t m, int64_t nc, int64_t k, bool accumulate) {
  if (m > 0 && nc > 0 && k > 0) return false;
  if (!accumulate && m > 0 && nc > 0) std::fill(c, c + m * nc, 0.0f);
  return true;
}

// y[n, out] (+)= x[n, in] · W[out, in]ᵀ
template <class T>
void matmul_nt(const T* x, const T* W, T* y, int64_t n, int64_t in, int64_t out, bool accumulate) {
  if constexpr (std::is_same_v<T, float>) {
    if (handle_empty(y, n, out, in, accumulate)) return;
    sgemm_parallel(false, true, n, out, in, 1.0f, x, in, W, in, accumulate ? 1.0f : 0.0f, y, out);
  } else {
    ref::matmul_nt(x, W, y, n, in, out, accumulate);
  }
}

// dx[n, in] (+)= dy[n, out] · W[out, in]
template <class T>
void matmul_nn(const T* dy, const T* W, T* dx, int64_t n, int64_t in, int64_t out, bool accumulate) {
  if constexpr (std::is_same_v<T, float>) {
    if (handle_empty(dx, n, in, out, accumulate)) return;
    sgemm_parallel(false, false, n, in, out, 1.0f, dy, out, W, in, accumulate ? 1.0f : 0.0f, dx, in);
  } else {
    ref::matmul_nn(dy, W, dx, n, in, out, accumulate);
  }
}

// dW[out, in] (+)= dy[n, out]ᵀ · x[n, in]
template <class T>
void matmul_tn(const T* dy, const T* x, T* dW, int64_t n, int64_t in, int64_t out, bool accumulate) {
  if constexpr (std::is_same_v<T, float>) {
    if (handle_empty(dW, out, in, n, accumulate)) return;
    sgemm_parallel(true, false, out, in, n, 1.0f, dy, out, x, in, accumulate ? 1.0f : 0.0f, dW, in);
  } else {
    ref::matmul_tn(dy, x, dW, n, in, out, accumulate);
  }
}

#define QT_INSTANTIATE(T)                                                             \
  template void matmul_nt<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool); \
  template void matmul_nn<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool); \
  template void matmul_tn<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool);
QT_INSTANTIATE(float)
QT_INSTANTIATE(double)
#undef QT_INSTANTIATE

}  // namespace qtune::kernels
