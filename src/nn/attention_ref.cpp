// nn/attention_ref.cpp — the naive attention (nn::ref): every query row's full softmax saved in att
// [B, nh, T, T]. The ground truth the tiled nn/attention.cpp is tested against, and the contract
// the GSE attention (models/attention_gse.cpp) follows.
#include <cmath>
#include <vector>

#include "nn/ops.h"
#include "nn/parallel.h"

namespace qtune::nn::ref {

// q, out: [B, T, nh, hd]   k, v: [B, T, nkv, hd]   att: [B, nh, T, T] (causal: zeros above the diagonal)
template <class T>
void attention_forward(const T* q, const T* k, const T* v, T* out, T* att, int64_t B, int64_t Tn, int64_t nh,
                       int64_t nkv, int64_t hd, bool causal) {
  const int64_t group = nh / nkv;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for collapse(3) schedule(static) if (B * nh * Tn * Tn * hd >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < nh; ++h)
      for (int64_t t = 0; t < Tn; ++t) {
        const int64_t kh = h / group;
        const T* qt = q + ((b * Tn + t) * nh + h) * hd;
        T* a = att + ((b * nh + h) * Tn + t) * Tn;  // a: [T]
        const int64_t last = causal ? t : Tn - 1;   // the keys this query sees: 0..last
        // pass 1: scores and max (for a stable softmax)
        T mx = -INFINITY;
        for (int64_t s = 0; s <= last; ++s) {
          const T* ks = k + ((b * Tn + s) * nkv + kh) * hd;
          T dot = 0;
          for (int64_t i = 0; i < hd; ++i) dot += qt[i] * ks[i];
          a[s] = dot * scale;
          if (a[s] > mx) mx = a[s];
        }
        // pass 2: softmax over the visible keys
        T sum = 0;
        for (int64_t s = 0; s <= last; ++s) {
          a[s] = std::exp(a[s] - mx);
          sum += a[s];
        }
        for (int64_t s = 0; s <= last; ++s) a[s] /= sum;
        for (int64_t s = last + 1; s < Tn; ++s) a[s] = 0;
        // pass 3: weighted sum of values
        T* o = out + ((b * Tn + t) * nh + h) * hd;
        for (int64_t i = 0; i < hd; ++i) o[i] = 0;
        for (int64_t s = 0; s <= last; ++s) {
          const T* vs = v + ((b * Tn + s) * nkv + kh) * hd;
          for (int64_t i = 0; i < hd; ++i) o[i] += a[s] * vs[i];
        }
      }
}

// Per (t, s ≤ last) with p = att (last = t when causal, else T − 1):
//   dv[s] += p[t,s]·dout[t]        dp[t,s] = dout[t]·v[s]
//   dz[t,s] = p[t,s]·(dp[t,s] − Σ_s' p[t,s']·dp[t,s'])       (softmax backward)
//   dq[t] += scale·dz[t,s]·k[s]    dk[s] += scale·dz[t,s]·q[t]
// Threads split over (b, kv head): every query head that writes a given dk/dv row is then
// handled by the same thread, so accumulation is race-free without atomics.
template <class T>
void attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* att, T* dq, T* dk, T* dv,
                        int64_t B, int64_t Tn, int64_t nh, int64_t nkv, int64_t hd, bool causal) {
  const int64_t group = nh / nkv;
  const T scale = T(1) / std::sqrt(T(hd));
#pragma omp parallel for collapse(2) schedule(static) if (B * Tn * Tn * nh * hd >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t kh = 0; kh < nkv; ++kh) {
      std::vector<T> dz(Tn);  // dz: [T] for one query row
      for (int64_t h = kh * group; h < (kh + 1) * group; ++h)
        for (int64_t t = 0; t < Tn; ++t) {
          const T* p = att + ((b * nh + h) * Tn + t) * Tn;
          const T* go = dout + ((b * Tn + t) * nh + h) * hd;
          const T* qt = q + ((b * Tn + t) * nh + h) * hd;
          T* dqt = dq + ((b * Tn + t) * nh + h) * hd;
          const int64_t last = causal ? t : Tn - 1;
          T pdp = 0;
          for (int64_t s = 0; s <= last; ++s) {
            const T* vs = v + ((b * Tn + s) * nkv + kh) * hd;
            T* dvs = dv + ((b * Tn + s) * nkv + kh) * hd;
            T dp = 0;
            for (int64_t i = 0; i < hd; ++i) {
              dp += go[i] * vs[i];
              dvs[i] += p[s] * go[i];
            }
            dz[s] = dp;
            pdp += p[s] * dp;
          }
          for (int64_t s = 0; s <= last; ++s) {
            T g = scale * p[s] * (dz[s] - pdp);
            const T* ks = k + ((b * Tn + s) * nkv + kh) * hd;
            T* dks = dk + ((b * Tn + s) * nkv + kh) * hd;
            for (int64_t i = 0; i < hd; ++i) {
              dqt[i] += g * ks[i];
              dks[i] += g * qt[i];
            }
          }
        }
    }
}

template void attention_forward<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, bool);
template void attention_forward<double>(const double*, const double*, const double*, double*, double*, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, bool);
template void attention_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        float*, float*, float*, int64_t, int64_t, int64_t, int64_t, int64_t, bool);
template void attention_backward<double>(const double*, const double*, const double*, const double*,
                                         const double*, double*, double*, double*, int64_t, int64_t, int64_t,
                                         int64_t, int64_t, bool);

}  // namespace qtune::nn::ref
