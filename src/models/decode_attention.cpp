// models/decode_attention.cpp — decoding's attention (contract: decode_attention.h): scores, softmax
// and the weighted sum of values per head, heads over the threads on a long context.
#include "models/decode_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/softmax.h"

namespace qtune {

namespace {

// Σ a[i]·b[i] in eight independent sums (vectorisable without -ffast-math; decoding's attention
// over a long cache spent most of its time in one serial float chain).
inline float dot8(const float* a, const float* b, int n) {
  float acc[8] = {};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  for (; i < n; ++i) acc[0] += a[i] * b[i];
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// o[i] = Σ_{s<np} (a[s]·inv)·v[s·ld + i], i < n, s in order: the weighted sum of values. It ran
// one float at a time (-O2 does not vectorise a loop of unknown trip count), then with o reloaded
// and stored for every s; here a strip of o's columns stays in registers over all s. Each o[i]
// is its own chain, so vectors change no result as long as each level keeps the rounding its
// attend_head clone had: one fused multiply-add on AVX-512 (that clone contracted it), a multiply
// and an add on AVX2 (no FMA in that clone) and on plain x86-64.
__attribute__((target("avx512f"))) void weighted_sum_fma(const float* a, float inv, const float* v, int64_t ld, int np,
                                                       int n, float* o) {
  for (int c0 = 0; c0 < n; c0 += 64) {  // 4 registers of columns
    __mmask16 m[4];
    for (int j = 0; j < 4; ++j) {
      const int left = std::clamp(n - c0 - 16 * j, 0, 16);
      m[j] = static_cast<__mmask16>((1u << left) - 1);
    }
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int s = 0; s < np; ++s) {
      const __m512 w = _mm512_set1_ps(a[s] * inv);
      const float* vs = v + s * ld + c0;
      for (int j = 0; j < 4; ++j) acc[j] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m[j], vs + 16 * j), acc[j]);
    }
    for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(o + c0 + 16 * j, m[j], acc[j]);
  }
}

__attribute__((target("avx2"))) void weighted_sum_avx2(const float* a, float inv, const float* v, int64_t ld, int np,
                                                     int n, float* o) {
  int c0 = 0;
  for (; c0 + 32 <= n; c0 += 32) {  // 4 registers of columns
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int s = 0; s < np; ++s) {
      const __m256 w = _mm256_set1_ps(a[s] * inv);
      const float* vs = v + s * ld + c0;
      for (int j = 0; j < 4; ++j) acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(w, _mm256_loadu_ps(vs + 8 * j)));
    }
    for (int j = 0; j < 4; ++j) _mm256_storeu_ps(o + c0 + 8 * j, acc[j]);
  }
  std::fill(o + c0, o + n, 0.0f);
  for (int s = 0; s < np; ++s) {
    const float w = a[s] * inv;
    for (int i = c0; i < n; ++i) o[i] += w * v[s * ld + i];
  }
}

void weighted_sum(const float* a, float inv, const float* v, int64_t ld, int np, int n, float* o) {
  static const int level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
  if (level == 2) return weighted_sum_fma(a, inv, v, ld, np, n, o);
  if (level == 1) return weighted_sum_avx2(a, inv, v, ld, np, n, o);
  std::fill(o, o + n, 0.0f);
  for (int s = 0; s < np; ++s) {
    const float w = a[s] * inv;
    for (int i = 0; i < n; ++i) o[i] += w * v[s * ld + i];
  }
}

// One head of one query position over cached keys/values 0..pos: k, v point at the head's
// position 0 (position stride KV); a [pos + 1] scratch; o [hd]. Compiled for AVX-512 and AVX2
// too (the build's baseline is plain x86-64), picked by the loader from the CPU.
__attribute__((target_clones("avx512f", "avx2", "default"))) void attend_head(const float* qh, const float* k,
                                                                             const float* v, int64_t KV, int hd,
                                                                             int pos, float scale, float* a,
                                                                             float* o) {
  float mx = -INFINITY;
  for (int s = 0; s <= pos; ++s) {
    a[s] = dot8(qh, k + s * KV, hd) * scale;
    mx = std::max(mx, a[s]);
  }
  const float inv = 1.0f / kernels::exp_shift_sum(a, pos + 1, mx);  // a = exp(a − mx)
  weighted_sum(a, inv, v, KV, pos + 1, hd, o);
}

}  // namespace

void store_kv(const LlamaConfig& c, const float* rows, int64_t ld, int64_t n, int64_t pos, float* cache) {
  const int64_t hd = c.head_dim(), S = c.seq_len;
  for (int64_t h = 0; h < c.n_kv_heads; ++h)
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(cache + (h * S + pos + t) * hd, rows + t * ld + h * hd, hd * sizeof(float));
}

void decode_attention(const LlamaConfig& c, const float* q, const float* key, const float* value, float* att,
                      float* attn_y, int pos) {
  const int hd = c.head_dim(), group = c.n_heads / c.n_kv_heads;
  const int64_t head_stride = int64_t(c.seq_len) * hd;
  const float scale = 1.0f / std::sqrt(float(hd));
  // heads are independent (each has its own row of att): split them over the threads once the
  // context is long enough to pay for the fork
#pragma omp parallel for schedule(static) if (int64_t(pos + 1) * c.n_heads * hd >= 16384)
  for (int h = 0; h < c.n_heads; ++h) {
    const int kh = h / group;
    attend_head(q + h * hd, key + kh * head_stride, value + kh * head_stride, hd, hd, pos, scale,
                att + int64_t(h) * c.seq_len, attn_y + h * hd);
  }
}


}  // namespace qtune
