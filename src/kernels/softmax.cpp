// kernels/softmax.cpp — row max and exp-and-sum (contract: softmax.h). Scalar, AVX2+FMA and
// AVX-512F versions; the SIMD ones carry per-function target attributes (no -m flags).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/softmax.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#define QT_AVX2 __attribute__((target("avx2,fma")))
#define QT_AVX512 __attribute__((target("avx512f")))

namespace qtune::kernels {

namespace {

// expf by Cephes: exp(x) = 2^k · exp(r), k = round(x·log2 e), r = x − k·ln2 in two parts (C1 is
// exact in float, so k·C1 is exact), exp(r) = 1 + r + r²·P(r).
constexpr float kLog2e = 1.44269504088896341f, kC1 = 0.693359375f, kC2 = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f, kP1 = 1.3981999507e-3f, kP2 = 8.3334519073e-3f, kP3 = 4.1665795894e-2f,
                kP4 = 1.6666665459e-1f, kP5 = 5.0000001201e-1f;
// Below this the result would be denormal: 2^k needs k ≥ −126.
constexpr float kMinX = -87.0f;

float row_max_scalar(const float* z, int64_t n) {
  float m = z[0];
  for (int64_t j = 1; j < n; ++j) m = z[j] > m ? z[j] : m;
  return m;
}

float exp_shift_sum_scalar(float* z, int64_t n, float shift) {
  float s = 0;
  for (int64_t j = 0; j < n; ++j) {
    z[j] = std::exp(z[j] - shift);
    s += z[j];
  }
  return s;
}

// ---- AVX2 + FMA: 8 lanes ----

QT_AVX2 inline __m256 exp_avx2(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(kMinX));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(kC1), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(kC2), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

QT_AVX2 inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

QT_AVX2 float row_max_avx2(const float* z, int64_t n) {
  if (n < 8) return row_max_scalar(z, n);
  __m256 m = _mm256_loadu_ps(z);
  int64_t j = 8;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(z + j));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; j < n; ++j) r = z[j] > r ? z[j] : r;
  return r;
}

QT_AVX2 float exp_shift_sum_avx2(float* z, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m256 a = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(z + j), s));
    const __m256 b = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(z + j + 8), s));
    _mm256_storeu_ps(z + j, a);
    _mm256_storeu_ps(z + j + 8, b);
    acc0 = _mm256_add_ps(acc0, a);
    acc1 = _mm256_add_ps(acc1, b);
  }
  for (; j + 8 <= n; j += 8) {
    const __m256 a = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(z + j), s));
    _mm256_storeu_ps(z + j, a);
    acc0 = _mm256_add_ps(acc0, a);
  }
  float sum = hsum_avx2(_mm256_add_ps(acc0, acc1));
  if (j < n) {  // the tail through one padded vector, so every element takes the same exp
    alignas(32) float t[8] = {};
    for (int64_t i = j; i < n; ++i) t[i - j] = z[i];
    const __m256 a = exp_avx2(_mm256_sub_ps(_mm256_load_ps(t), s));
    _mm256_store_ps(t, a);
    for (int64_t i = j; i < n; ++i) z[i] = t[i - j], sum += t[i - j];
  }
  return sum;
}

// ---- AVX-512F: 16 lanes, masked tails ----

QT_AVX512 inline __m512 exp_avx512(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(kMinX));
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kC1), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(kC2), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

QT_AVX512 float row_max_avx512(const float* z, int64_t n) {
  if (n < 16) return row_max_scalar(z, n);
  __m512 m = _mm512_loadu_ps(z);
  int64_t j = 16;
  for (; j + 16 <= n; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(z + j));
  if (j < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(m, static_cast<__mmask16>((1u << (n - j)) - 1), z + j));
  return _mm512_reduce_max_ps(m);
}

QT_AVX512 float exp_shift_sum_avx512(float* z, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const __m512 a = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(z + j), s));
    const __m512 b = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(z + j + 16), s));
    _mm512_storeu_ps(z + j, a);
    _mm512_storeu_ps(z + j + 16, b);
    acc0 = _mm512_add_ps(acc0, a);
    acc1 = _mm512_add_ps(acc1, b);
  }
  for (; j < n; j += 16) {
    const __mmask16 k = n - j >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512 a = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, z + j), s));
    _mm512_mask_storeu_ps(z + j, k, a);
    acc0 = _mm512_add_ps(acc0, _mm512_maskz_mov_ps(k, a));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

}  // namespace

float row_max(const float* z, int64_t n, Isa isa) {
  if (isa >= Isa::avx512f) return row_max_avx512(z, n);
  if (isa == Isa::avx2) return row_max_avx2(z, n);
  return row_max_scalar(z, n);
}

float exp_shift_sum(float* z, int64_t n, float shift, Isa isa) {
  if (isa >= Isa::avx512f) return exp_shift_sum_avx512(z, n, shift);
  if (isa == Isa::avx2) return exp_shift_sum_avx2(z, n, shift);
  return exp_shift_sum_scalar(z, n, shift);
}

float row_max(const float* z, int64_t n) { return row_max(z, n, cpu_isa()); }
float exp_shift_sum(float* z, int64_t n, float shift) { return exp_shift_sum(z, n, shift, cpu_isa()); }

}  // namespace qtune::kernels
