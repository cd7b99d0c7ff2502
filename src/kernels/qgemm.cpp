// kernels/qgemm.cpp — GEMMs with a quantized weight W (QuantMatrix [out, in]).
//
// The weight is never materialised in float: rows are dequantized kTile at a time into a
// thread-local scratch [kTile, in] and multiplied right away.
//   - float, many rows of x (training): tiles in order, each one sgemm (BLAS threads inside);
//   - float, few rows (generation): tiles in parallel (OpenMP), dot products per tile; the
//     single-row 4-bit case goes to the fused unpack+dot kernels (qgemv.cpp);
//   - double (gradient checks): tiles in parallel, sums in double.
// Every output element is computed by one thread in a fixed order, so results do not depend
// on scheduling (deterministic for a fixed thread count).
#include <cblas.h>

#include <algorithm>
#include <type_traits>

#include "core/buffer.h"
#include "kernels/gemm.h"
#include "kernels/qblocks_packed.h"
#include "kernels/sgemm_parallel.h"
#include "kernels/qgemv.h"

namespace qtune::kernels {

namespace {

constexpr int64_t kTile = 64;    // weight rows per dequantized tile (the parallel few-rows path)
// The BLAS paths dequantize as many rows as fit this many floats (4 MiB) at once: a 64-row tile
// made every sgemm thin (N or K = 64), and qtune's qlora step no faster than PyTorch's, which
// dequantizes the whole weight per forward.
constexpr int64_t kBlasTileElems = int64_t(1) << 20;
int64_t blas_tile_rows(int64_t in) { return std::max(kTile, kBlasTileElems / std::max<int64_t>(in, 1) / kTile * kTile); }
constexpr int64_t kSmallN = 8;   // below this many rows of x, parallelise over tiles instead of BLAS

// Owner of this file's thread-local scratch (slot 0: the dequantized tile), kept between calls:
// generation runs every product once per token per layer.
struct QgemmScratch;

// Σ a[k]·b[k], four independent float sums (lets the compiler vectorise without -ffast-math).
float dot(const float* a, const float* b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += a[k] * b[k];
    s1 += a[k + 1] * b[k + 1];
    s2 += a[k + 2] * b[k + 2];
    s3 += a[k + 3] * b[k + 3];
  }
  for (; k < n; ++k) s0 += a[k] * b[k];
  return (s0 + s1) + (s2 + s3);
}

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t k = 0; k < n; ++k) s += a[k] * b[k];
  return s;
}

// The two weight layouts the float products dequantize tile by tile: as loaded, and packed for
// decoding (both give the same floats).
template <class T>
void dequantize_rows(const QuantMatrix& W, int64_t r0, int64_t nr, T* out) {
  W.dequantize_rows(r0, nr, out);
}
void dequantize_rows(const PackedBlocks& W, int64_t r0, int64_t nr, float* out) {
  dequantize_packed_rows(W, r0, nr, out);
}

// y[n, out] (+)= x[n, in] · deq(W)ᵀ, tiles of W rows in parallel.
template <class T, class Weight>
void qmatmul_nt_tiles(const T* x, const Weight& W, T* y, int64_t n, bool accumulate) {
  const int64_t in = W.cols, out = W.rows, ntiles = (out + kTile - 1) / kTile;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < ntiles; ++t) {
    const int64_t r0 = t * kTile, nr = std::min(kTile, out - r0);
    T* tile = scratch<T, QgemmScratch>(0, kTile * in);  // [nr, in]
    dequantize_rows(W, r0, nr, tile);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < nr; ++j) {
        T v = dot(x + i * in, tile + j * in, in);
        T* yo = y + i * out + r0 + j;
        *yo = accumulate ? *yo + v : v;
      }
    }
  }
}

// y[n, out] (+)= x[n, in] · deq(W)ᵀ, tiles in order, one sgemm per tile into y's column slice.
template <class Weight>
void qmatmul_nt_blas(const float* x, const Weight& W, float* y, int64_t n, bool accumulate) {
  const int64_t in = W.cols, out = W.rows, rows = std::min(out, blas_tile_rows(in));
  float* tile = scratch<float, QgemmScratch>(0, rows * in);
  for (int64_t r0 = 0; r0 < out; r0 += rows) {
    const int64_t nr = std::min(rows, out - r0);
    dequantize_rows(W, r0, nr, tile);
    sgemm_parallel(false, true, n, nr, in, 1.0f, x, in, tile, in, accumulate ? 1.0f : 0.0f, y + r0, out);
  }
}

}  // namespace

template <class T>
void qmatmul_nt(const T* x, const QuantMatrix& W, T* y, int64_t n, bool accumulate) {
  const int64_t in = W.cols, out = W.rows;
  if (n <= 0 || out <= 0) return;
  if (in == 0) {
    if (!accumulate) std::fill(y, y + n * out, T(0));
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (n == 1 && W.spec.bits <= 4) return qgemv4(x, W, y, accumulate);
    if (n >= kSmallN) return qmatmul_nt_blas(x, W, y, n, accumulate);
  }
  qmatmul_nt_tiles(x, W, y, n, accumulate);
}

// dx[n, in] (+)= dy[n, out] · deq(W). Every tile adds into all of dx, so tiles go in order
// (no cross-thread reduction); the parallelism is inside each tile's product.
void qmatmul_nt(const float* x, const PackedBlocks& W, float* y, int64_t n, bool accumulate) {
  if (n <= 0) return;
  if (n >= kSmallN) return qmatmul_nt_blas(x, W, y, n, accumulate);
  qmatmul_nt_tiles(x, W, y, n, accumulate);
}

template <class T>
void qmatmul_nn(const T* dy, const QuantMatrix& W, T* dx, int64_t n, bool accumulate) {
  const int64_t in = W.cols, out = W.rows;
  if (n <= 0 || in <= 0) return;
  if (!accumulate) std::fill(dx, dx + n * in, T(0));
  const int64_t rows = std::is_same_v<T, float> ? std::min(out, blas_tile_rows(in)) : kTile;
  T* tile = scratch<T, QgemmScratch>(0, rows * in);  // [nr, in]
  for (int64_t r0 = 0; r0 < out; r0 += rows) {
    const int64_t nr = std::min(rows, out - r0);
    W.dequantize_rows(r0, nr, tile);
    if constexpr (std::is_same_v<T, float>) {
      // dx[n, in] += dy[:, r0:r0+nr] · tile[nr, in]
      sgemm_parallel(false, false, n, in, nr, 1.0f, dy + r0, out, tile, in, 1.0f, dx, in);
    } else {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < nr; ++j) {
          const T g = dy[i * out + r0 + j];
          for (int64_t k = 0; k < in; ++k) dx[i * in + k] += g * tile[j * in + k];
        }
      }
    }
  }
}

template void qmatmul_nt<float>(const float*, const QuantMatrix&, float*, int64_t, bool);
template void qmatmul_nt<double>(const double*, const QuantMatrix&, double*, int64_t, bool);
template void qmatmul_nn<float>(const float*, const QuantMatrix&, float*, int64_t, bool);
template void qmatmul_nn<double>(const double*, const QuantMatrix&, double*, int64_t, bool);

}  // namespace qtune::kernels
