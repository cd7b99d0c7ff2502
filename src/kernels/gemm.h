// kernels/gemm.h — the GEMMs of forward and backward. Float calls go to the fastest path
// (BLAS; the quantized ones' SIMD loops by kernels/cpu_features.h); double calls use the scalar
// reference (tests).
//
//   matmul_nt:  y[n, out]  (+)= x[n, in] · W[out, in]ᵀ      forward
//   matmul_nn:  dx[n, in]  +=   dy[n, out] · W[out, in]     backward to the input
//   matmul_tn:  dW[out, in] +=  dy[n, out]ᵀ · x[n, in]      backward to the weight
// `accumulate` = false overwrites the output.
#pragma once
#include <cstdint>

#include "quant/quant.h"

namespace qtune::kernels {
struct PackedBlocks;
}

namespace qtune::kernels {

template <class T>
void matmul_nt(const T* x, const T* W, T* y, int64_t n, int64_t in, int64_t out, bool accumulate);
template <class T>
void matmul_nn(const T* dy, const T* W, T* dx, int64_t n, int64_t in, int64_t out, bool accumulate);
template <class T>
void matmul_tn(const T* dy, const T* x, T* dW, int64_t n, int64_t in, int64_t out, bool accumulate);

// Same products with a quantized W: dequantizes a tile of rows at a time into a small
// scratch buffer (never the whole matrix in float).
template <class T>
void qmatmul_nt(const T* x, const QuantMatrix& W, T* y, int64_t n, bool accumulate);
template <class T>
void qmatmul_nn(const T* dy, const QuantMatrix& W, T* dx, int64_t n, bool accumulate);
// y (+)= x · deq(W)ᵀ with W packed for decoding (kernels/qblocks_packed.h): prefill's product,
// the same floats as qmatmul_nt on the unpacked matrix (for n != 1 and n > 0).
void qmatmul_nt(const float* x, const PackedBlocks& W, float* y, int64_t n, bool accumulate);

// Scalar references (the ground truth the fast paths are tested against).
namespace ref {
template <class T>
void matmul_nt(const T* x, const T* W, T* y, int64_t n, int64_t in, int64_t out, bool accumulate);
template <class T>
void matmul_nn(const T* dy, const T* W, T* dx, int64_t n, int64_t in, int64_t out, bool accumulate);
template <class T>
void matmul_tn(const T* dy, const T* x, T* dW, int64_t n, int64_t in, int64_t out, bool accumulate);
}  // namespace ref

// Sets the thread count of OpenMP (core/system.h) and of OpenBLAS together; n <= 0: all cores.
// Also reads QTUNE_CPU (kernels/cpu_features.h): an unknown value throws qtune::Error here.
void set_num_threads(int n);

}  // namespace qtune::kernels
