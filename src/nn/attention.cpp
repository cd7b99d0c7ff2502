// nn/attention.cpp — grouped-query self-attention, causal or not, tiled as FlashAttention-2
// (Dao 2023): forward walks a tile of kTq query rows against tiles of kTk keys with an online
// softmax (running max m and sum l per row) and saves only lse = m + log l per row; backward
// recomputes each tile's P = exp(S − lse) and uses D = rowsum(dO ⊙ O):
//   dV += Pᵀ·dO    dP = dO·Vᵀ    dS = P ⊙ (dP − D)    dQ += scale·dS·K    dK += scale·dSᵀ·Q
// So a thread holds at most one [kTq, kTk] tile of scores (and its gradient), never [T, T]: the
// saved state drops from B·nh·T² to B·nh·T numbers per layer. The tile products are GEMMs on the
// strided head rows (float: one-threaded OpenBLAS on the calling thread; double, for the finite-
// difference tests: plain loops — the same tiling, so those tests check this algorithm).
//
// Threads: forward over (b, head, query tile), each writing its own rows; backward over (b, kv
// head), which owns every dk/dv row of that head and every dq row of the query heads that read
// it, accumulated in a fixed order — race-free, and deterministic for any thread count.
#include <algorithm>
#include <cmath>

#include "core/buffer.h"
#include "kernels/sgemm_parallel.h"
#include "kernels/softmax.h"
#include "nn/ops.h"
#include "nn/parallel.h"

namespace qtune::nn {

namespace {

struct AttentionScratch {};            // scratch<> owner tag
constexpr int64_t kTq = 64, kTk = 64;  // query rows × keys per tile: 16 KB of float scores

// C[M, N] = alpha·op(A)·op(B) + beta·C, row-major with leading dimensions (as cblas_sgemm).
template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T s = 0;
      for (int64_t p = 0; p < K; ++p)
        s += (ta ? A[p * lda + i] : A[i * lda + p]) * (tb ? B[j * ldb + p] : B[p * ldb + j]);
      C[i * ldc + j] = alpha * s + (beta == T(0) ? T(0) : beta * C[i * ldc + j]);
    }
}
template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  kernels::sgemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// x[i] = exp(x[i] − shift), returning Σ x[i]; float: the SIMD loop of kernels/softmax.h.
template <class T>
T exp_row(T* x, int64_t n, T shift) {
  T sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}
template <>
float exp_row<float>(float* x, int64_t n, float shift) {
  return kernels::exp_shift_sum(x, n, shift);
}

// Keys of the tile starting at s0 (nc of them) that query row t sees: all, or (causal) those ≤ t.
inline int64_t visible(bool causal, int64_t t, int64_t s0, int64_t nc) {
  return causal ? std::clamp<int64_t>(t - s0 + 1, 0, nc) : nc;
}

// One query tile: rows t0..t0+nr of head h (q, o, lse already offset to (b, t0, h); k, v to (b, 0, kv head)).
// qs, ks: row strides of q/o and k/v.
template <class T>
void forward_tile(const T* q, const T* k, const T* v, T* o, T* lse, int64_t t0, int64_t nr, int64_t Tn,
                  int64_t qs, int64_t ks, int64_t hd, bool causal) {
  T* S = scratch<T, AttentionScratch>(0, kTq * kTk);  // S, then P: [nr, nc] with stride kTk
  T* acc = scratch<T, AttentionScratch>(1, kTq * hd);  // acc: [nr, hd] Σ P·V, unnormalized
  T m[kTq], l[kTq];
  std::fill(m, m + nr, T(-INFINITY));
  std::fill(l, l + nr, T(0));
  std::fill(acc, acc + nr * hd, T(0));
  const T scale = T(1) / std::sqrt(T(hd));
  const int64_t kend = causal ? t0 + nr : Tn;  // tiles wholly above the diagonal are skipped
  for (int64_t s0 = 0; s0 < kend; s0 += kTk) {
    const int64_t nc = std::min(kTk, kend - s0);
    gemm<T>(false, true, nr, nc, hd, scale, q, qs, k + s0 * ks, ks, T(0), S, kTk);  // S = scale·Q·Kᵀ
    for (int64_t r = 0; r < nr; ++r) {
      T* s = S + r * kTk;
      const int64_t cnt = visible(causal, t0 + r, s0, nc);
      T mx = m[r];
      for (int64_t c = 0; c < cnt; ++c) mx = std::max(mx, s[c]);
      const T sum = exp_row(s, cnt, mx);
      std::fill(s + cnt, s + nc, T(0));  // the masked part of the diagonal tile
      const T alpha = std::exp(m[r] - mx);  // rescales what earlier tiles summed (0 on the first)
      l[r] = l[r] * alpha + sum;
      m[r] = mx;
      if (alpha != T(1))
        for (int64_t i = 0; i < hd; ++i) acc[r * hd + i] *= alpha;
    }
    gemm<T>(false, false, nr, hd, nc, T(1), S, kTk, v + s0 * ks, ks, T(1), acc, hd);  // acc += P·V
  }
  for (int64_t r = 0; r < nr; ++r) {
    const T inv = T(1) / l[r];
    for (int64_t i = 0; i < hd; ++i) o[r * qs + i] = acc[r * hd + i] * inv;
    lse[r] = m[r] + std::log(l[r]);
  }
}

}  // namespace

template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse, int64_t B, int64_t Tn, int64_t nh,
                       int64_t nkv, int64_t hd, bool causal) {
  QT_ASSERT(nkv > 0 && nh % nkv == 0 && hd > 0);
  const int64_t group = nh / nkv, qs = nh * hd, ks = nkv * hd, ntiles = (Tn + kTq - 1) / kTq;
  // Causal query tiles differ in work (tile i sees i + 1 key tiles): dynamic balances them, and
  // results do not depend on the schedule (every tile's arithmetic is its own).
#pragma omp parallel for collapse(3) schedule(dynamic) if (B * nh * Tn * Tn * hd >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t it = 0; it < ntiles; ++it) {
        const int64_t t0 = it * kTq, nr = std::min(kTq, Tn - t0);
        const int64_t qo = (b * Tn + t0) * qs + h * hd, ko = b * Tn * ks + (h / group) * hd;
        forward_tile(q + qo, k + ko, v + ko, out + qo, lse + (b * nh + h) * Tn + t0, t0, nr, Tn, qs, ks, hd,
                     causal);
      }
}

namespace {

// Query head h's part of backward (every pointer offset to (b, row 0, its head); lse to (b, h)).
template <class T>
void backward_head(const T* dout, const T* q, const T* k, const T* v, const T* out, const T* lse, T* dq, T* dk,
                   T* dv, int64_t Tn, int64_t qs, int64_t ks, int64_t hd, bool causal) {
  T* P = scratch<T, AttentionScratch>(0, kTq * kTk);   // S, then P: [nr, nc] stride kTk
  T* dS = scratch<T, AttentionScratch>(1, kTq * kTk);  // dP, then dS
  T* D = scratch<T, AttentionScratch>(2, Tn);          // D: [T] rowsum(dout ⊙ out)
  const T scale = T(1) / std::sqrt(T(hd));
  for (int64_t t = 0; t < Tn; ++t) {
    T s = 0;
    for (int64_t i = 0; i < hd; ++i) s += dout[t * qs + i] * out[t * qs + i];
    D[t] = s;
  }
  for (int64_t t0 = 0; t0 < Tn; t0 += kTq) {
    const int64_t nr = std::min(kTq, Tn - t0), kend = causal ? t0 + nr : Tn;
    const T *qt = q + t0 * qs, *dot = dout + t0 * qs;
    for (int64_t s0 = 0; s0 < kend; s0 += kTk) {
      const int64_t nc = std::min(kTk, kend - s0);
      const T *kt = k + s0 * ks, *vt = v + s0 * ks;
      gemm<T>(false, true, nr, nc, hd, scale, qt, qs, kt, ks, T(0), P, kTk);  // S = scale·Q·Kᵀ
      gemm<T>(false, true, nr, nc, hd, T(1), dot, qs, vt, ks, T(0), dS, kTk);  // dP = dO·Vᵀ
      for (int64_t r = 0; r < nr; ++r) {
        T *p = P + r * kTk, *ds = dS + r * kTk;
        const int64_t cnt = visible(causal, t0 + r, s0, nc);
        const T ls = lse[t0 + r], d = D[t0 + r];
        exp_row(p, cnt, ls);
        for (int64_t c = 0; c < cnt; ++c) ds[c] = p[c] * (ds[c] - d);
        std::fill(p + cnt, p + nc, T(0));
        std::fill(ds + cnt, ds + nc, T(0));
      }
      gemm<T>(true, false, nc, hd, nr, T(1), P, kTk, dot, qs, T(1), dv + s0 * ks, ks);      // dV += Pᵀ·dO
      gemm<T>(false, false, nr, hd, nc, scale, dS, kTk, kt, ks, T(1), dq + t0 * qs, qs);    // dQ += scale·dS·K
      gemm<T>(true, false, nc, hd, nr, scale, dS, kTk, qt, qs, T(1), dk + s0 * ks, ks);     // dK += scale·dSᵀ·Q
    }
  }
}

}  // namespace

template <class T>
void attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* out, const T* lse, T* dq,
                        T* dk, T* dv, int64_t B, int64_t Tn, int64_t nh, int64_t nkv, int64_t hd, bool causal) {
  QT_ASSERT(nkv > 0 && nh % nkv == 0 && hd > 0);
  const int64_t group = nh / nkv, qs = nh * hd, ks = nkv * hd;
#pragma omp parallel for collapse(2) schedule(static) if (B * nh * Tn * Tn * hd >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t kh = 0; kh < nkv; ++kh) {
      const int64_t ko = b * Tn * ks + kh * hd;
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const int64_t qo = b * Tn * qs + h * hd;
        backward_head(dout + qo, q + qo, k + ko, v + ko, out + qo, lse + (b * nh + h) * Tn, dq + qo, dk + ko,
                      dv + ko, Tn, qs, ks, hd, causal);
      }
    }
}

template void attention_forward<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, bool);
template void attention_forward<double>(const double*, const double*, const double*, double*, double*, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, bool);
template void attention_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, float*, int64_t, int64_t, int64_t, int64_t,
                                        int64_t, bool);
template void attention_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                         const double*, double*, double*, double*, int64_t, int64_t, int64_t,
                                         int64_t, int64_t, bool);

}  // namespace qtune::nn
