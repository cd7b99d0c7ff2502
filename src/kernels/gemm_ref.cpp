// kernels/gemm_ref.cpp — the scalar reference GEMMs: the ground truth every fast path is
// tested against, and the double-precision path of gradient checks. Plain loops, sums in
// double so the reference itself adds no float rounding noise.
#include "kernels/gemm.h"

namespace qtune::kernels::ref {

// y[n, out] (+)= x[n, in] · W[out, in]ᵀ
template <class T>
void matmul_nt(const T* x, const T* W, T* y, int64_t n, int64_t in, int64_t out, bool accumulate) {
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * in;
    for (int64_t o = 0; o < out; ++o) {
      const T* wo = W + o * in;
      double sum = 0;
      for (int64_t k = 0; k < in; ++k) sum += double(xi[k]) * double(wo[k]);
      T* yo = y + i * out + o;
      *yo = accumulate ? T(double(*yo) + sum) : T(sum);
    }
  }
}

// dx[n, in] (+)= dy[n, out] · W[out, in]
template <class T>
void matmul_nn(const T* dy, const T* W, T* dx, int64_t n, int64_t in, int64_t out, bool accumulate) {
  for (int64_t i = 0; i < n; ++i) {
    const T* dyi = dy + i * out;
    for (int64_t k = 0; k < in; ++k) {
      double sum = 0;
      for (int64_t o = 0; o < out; ++o) sum += double(dyi[o]) * double(W[o * in + k]);
      T* d = dx + i * in + k;
      *d = accumulate ? T(double(*d) + sum) : T(sum);
    }
  }
}

// dW[out, in] (+)= dy[n, out]ᵀ · x[n, in]
template <class T>
void matmul_tn(const T* dy, const T* x, T* dW, int64_t n, int64_t in, int64_t out, bool accumulate) {
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < in; ++k) {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += double(dy[i * out + o]) * double(x[i * in + k]);
      T* d = dW + o * in + k;
      *d = accumulate ? T(double(*d) + sum) : T(sum);
    }
  }
}

#define QT_INSTANTIATE(T)                                                             \
  template void matmul_nt<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool); \
  template void matmul_nn<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool); \
  template void matmul_tn<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool);
QT_INSTANTIATE(float)
QT_INSTANTIATE(double)
#undef QT_INSTANTIATE

}  // namespace qtune::kernels::ref
