// kernels/vexp.cpp — contract: vexp.h. The AVX2 loop carries a target attribute (no -m flags).
#include "kernels/vexp.h"

#include <immintrin.h>

#include <cmath>

#include "core/error.h"

#define QT_AVX2 __attribute__((target("avx2,fma")))

namespace qtune::kernels {

namespace {

float exp_shift_sum_scalar(float* x, int64_t n, float shift) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - shift);
    sum += x[i];
  }
  return sum;
}

// exp(x) = 2^k · e^r, k = round(x / ln 2), r = x − k·ln 2 (ln 2 = hi + lo, hi exact in few bits so
// k·hi is exact), e^r ≈ 1 + r + r²·P(r) on |r| ≤ ln 2 / 2 (Cephes expf).
QT_AVX2 inline __m256 exp8(__m256 x) {
  const __m256 lo_cut = _mm256_set1_ps(-87.33654f);  // below: the result is 0
  const __m256 zero_mask = _mm256_cmp_ps(x, lo_cut, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo_cut), _mm256_set1_ps(88.0f));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^k by the exponent bits: k ∈ [−126, 127] after the clamp, a normal exponent field
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  p = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(zero_mask, p);
}

QT_AVX2 float exp_shift_sum_avx2(float* x, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 y = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s));
    _mm256_storeu_ps(x + i, y);
    acc = _mm256_add_ps(acc, y);
  }
  if (i < n) {  // the tail through a zero-padded vector (padding lanes masked out of the sum)
    alignas(32) float t[8] = {};
    const int64_t m = n - i;
    for (int64_t j = 0; j < m; ++j) t[j] = x[i + j] - shift;
    __m256 y = exp8(_mm256_load_ps(t));
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    y = _mm256_and_ps(y, _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(int(m)), lane)));
    _mm256_store_ps(t, y);
    for (int64_t j = 0; j < m; ++j) x[i + j] = t[j];
    acc = _mm256_add_ps(acc, y);
  }
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

}  // namespace

float exp_shift_sum(float* x, int64_t n, float shift, Isa isa) {
  QT_CHECK(isa_supported(isa), "exp_shift_sum: this CPU does not support {}", isa_name(isa));
  return isa >= Isa::avx2 ? exp_shift_sum_avx2(x, n, shift) : exp_shift_sum_scalar(x, n, shift);
}

float exp_shift_sum(float* x, int64_t n, float shift) { return exp_shift_sum(x, n, shift, cpu_isa()); }

}  // namespace qtune::kernels
