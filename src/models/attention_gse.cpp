// models/attention_gse.cpp — attention's products in GSE (contract: attention_gse.h).
//
// Layouts: q, out [B, T, nh, hd], k, v [B, T, nkv, hd] (a head's rows are strided), att
// [B, nh, T, T]. Each head gathers its rows into contiguous float scratch, encodes them along
// the reduction axis of the product they enter, and scatters the results back. Everything a
// thread touches is its own (thread_local scratch), and in backward one thread owns a kv head
// and every query head that reads it, so dk/dv accumulate without races (as nn/attention.cpp).
#include "models/attention_gse.h"

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/gse_gemm.h"

namespace qtune {

namespace {

// One thread's float scratch and GSE operands, grown on demand.
struct HeadScratch {
  std::vector<float> a, b, c, r, s, t;  // [T, hd] or [T, T]
  GseMatrix qa, qb;
  float* get(std::vector<float>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
  }
};

HeadScratch& head_scratch() {
  static thread_local HeadScratch h;
  return h;
}

// dst [T, hd] = the rows of head `h` of x [B, T, heads, hd] for batch row b.
void gather(const float* x, int64_t b, int64_t h, int64_t T, int64_t heads, int64_t hd, float* dst) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < hd; ++i) dst[t * hd + i] = x[((b * T + t) * heads + h) * hd + i];
}

// x [B, T, heads, hd] (+)= src [T, hd] into head h of batch row b.
void scatter(const float* src, int64_t b, int64_t h, int64_t T, int64_t heads, int64_t hd, float* x, bool add) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < hd; ++i) {
      float& d = x[((b * T + t) * heads + h) * hd + i];
      d = add ? d + src[t * hd + i] : src[t * hd + i];
    }
}

// y [cols, rows] = xᵀ
void transpose(const float* x, int64_t rows, int64_t cols, float* y) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[c * rows + r] = x[r * cols + c];
}

// C [n, m] = A·Bᵀ with A [n, k], B [m, k] float, each encoded along k with its spec.
void product(const float* A, int64_t n, const float* B, int64_t m, int64_t k, const GseSpec& sa, const GseSpec& sb,
             float* C, HeadScratch& hs) {
  gse_encode(A, n, k, sa, hs.qa);
  gse_encode(B, m, k, sb, hs.qb);
  kernels::gse_gemm(hs.qa, hs.qb, C, false);
}

// A gradient operand's spec: the step's key (GseArith::grad) mixed with the layer, row and head.
GseSpec grad_spec(const GseArith& ar, const Context& ctx, kernels::GseRole role, uint64_t where) {
  GseSpec s = ar.grad(ctx, role);
  if (s.rounding == GseRounding::stochastic) s.seed = Rng::hash(s.seed, where);
  return s;
}

}  // namespace

void attention_forward_gse(const float* q, const float* k, const float* v, float* out, float* att, int64_t B,
                           int64_t T, int64_t nh, int64_t nkv, int64_t hd, const GseArith& ar) {
  const int64_t group = nh / nkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const GseSpec near = ar.nearest();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < nh; ++h) {
      HeadScratch& hs = head_scratch();
      const int64_t kh = h / group;
      float* qh = hs.get(hs.a, T * hd);
      float* kv = hs.get(hs.b, T * hd);
      float* vt = hs.get(hs.c, T * hd);
      float* p = att + (b * nh + h) * T * T;  // [T, T]
      gather(q, b, h, T, nh, hd, qh);
      gather(k, b, kh, T, nkv, hd, kv);
      product(qh, T, kv, T, hd, near, near, p, hs);  // S = q·kᵀ
      for (int64_t t = 0; t < T; ++t) {  // causal softmax of scale·S, in place
        float* a = p + t * T;
        float mx = -INFINITY, sum = 0;
        for (int64_t s = 0; s <= t; ++s) mx = std::max(mx, a[s] * scale);
        for (int64_t s = 0; s <= t; ++s) sum += a[s] = std::exp(a[s] * scale - mx);
        for (int64_t s = 0; s <= t; ++s) a[s] /= sum;
        for (int64_t s = t + 1; s < T; ++s) a[s] = 0;
      }
      gather(v, b, kh, T, nkv, hd, kv);
      transpose(kv, T, hd, vt);                     // vᵀ [hd, T]
      product(p, T, vt, hd, T, near, near, qh, hs);  // O = P·v
      scatter(qh, b, h, T, nh, hd, out, false);
    }
}

void attention_backward_gse(const float* dout, const float* q, const float* k, const float* v, const float* att,
                            float* dq, float* dk, float* dv, int64_t B, int64_t T, int64_t nh, int64_t nkv, int64_t hd,
                            const GseArith& ar, const Context& ctx, int layer) {
  using kernels::GseRole;
  const int64_t group = nh / nkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const GseSpec near = ar.nearest();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t kh = 0; kh < nkv; ++kh) {
      HeadScratch& hs = head_scratch();
      float* rows = hs.get(hs.a, T * hd);  // a head's gathered rows [T, hd]
      float* tr = hs.get(hs.b, T * hd);    // their transpose [hd, T]
      float* go = hs.get(hs.c, T * hd);    // dO_h [T, hd]
      float* res = hs.get(hs.r, T * hd);   // a product's result [T, hd]
      float* dz = hs.get(hs.s, T * T);     // dP, then dZ [T, T]
      float* tt = hs.get(hs.t, T * T);     // Pᵀ, then dZᵀ [T, T]
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
        const float* p = att + (b * nh + h) * T * T;
        const uint64_t where = (static_cast<uint64_t>(layer) * B + b) * nh + h;
        const GseSpec gs = grad_spec(ar, ctx, GseRole::dp, where);  // dO, dZ as they are
        const GseSpec gt = grad_spec(ar, ctx, GseRole::p, where);   // and transposed
        gather(dout, b, h, T, nh, hd, go);
        gather(v, b, kh, T, nkv, hd, rows);
        product(go, T, rows, T, hd, gs, near, dz, hs);  // dP = dO·vᵀ
        for (int64_t t = 0; t < T; ++t) {  // dZ = scale·P ⊙ (dP − Σ_s P·dP), causal part
          const float* pt = p + t * T;
          float* d = dz + t * T;
          float pdp = 0;
          for (int64_t s = 0; s <= t; ++s) pdp += pt[s] * d[s];
          for (int64_t s = 0; s <= t; ++s) d[s] = scale * pt[s] * (d[s] - pdp);
          for (int64_t s = t + 1; s < T; ++s) d[s] = 0;
        }
        // dv_h [s, hd] += Pᵀ·dO:  Pᵀ [s, t] · dOᵀ [hd, t]
        transpose(p, T, T, tt);
        transpose(go, T, hd, tr);
        product(tt, T, tr, hd, T, near, gt, res, hs);
        scatter(res, b, kh, T, nkv, hd, dv, true);
        // dq_h [t, hd] += dZ·k:  dZ [t, s] · kᵀ [hd, s]
        gather(k, b, kh, T, nkv, hd, rows);
        transpose(rows, T, hd, tr);
        product(dz, T, tr, hd, T, gs, near, res, hs);
        scatter(res, b, h, T, nh, hd, dq, true);
        // dk_h [s, hd] += dZᵀ·q:  dZᵀ [s, t] · qᵀ [hd, t]
        transpose(dz, T, T, tt);
        gather(q, b, h, T, nh, hd, rows);
        transpose(rows, T, hd, tr);
        product(tt, T, tr, hd, T, gt, near, res, hs);
        scatter(res, b, kh, T, nkv, hd, dk, true);
      }
    }
}

}  // namespace qtune
