// kernels/qdot4.cpp — Σ q_c·x_c over a run of 4-bit packed codes: scalar, AVX2 and AVX-512
// versions. The SIMD ones are compiled with per-function target attributes, so this file
// needs no -mavx flags and the binary still runs on CPUs without them (qgemv.cpp only calls
// a variant the CPU supports).
// GCC 12's AVX-512 headers build some results from _mm512_undefined_*(), which trips
// -Wuninitialized in every caller; the values are fully overwritten.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/qgemv.h"

namespace qtune::kernels {

static inline int nibble(const uint8_t* codes, int64_t c) { return (codes[c >> 1] >> ((c & 1) * 4)) & 0xF; }

float qdot4_scalar(const uint8_t* codes, const float* x, int64_t c0, int64_t c1) {
  float s = 0;
  for (int64_t c = c0; c < c1; ++c) s += static_cast<float>(nibble(codes, c)) * x[c];
  return s;
}

// 8 columns (4 bytes, starting at an even column) → 8 int32 codes in column order.
__attribute__((target("avx2,fma"))) static inline __m256 unpack8(const uint8_t* p) {
  uint32_t b;
  std::memcpy(&b, p, 4);
  const __m128i v = _mm_cvtsi32_si128(static_cast<int>(b));
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(v, m);                     // even columns
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);  // odd columns
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
}

__attribute__((target("avx2,fma"))) float qdot4_avx2(const uint8_t* codes, const float* x, int64_t c0, int64_t c1) {
  float s = 0;
  int64_t c = c0;
  for (; c < c1 && (c & 7); ++c) s += static_cast<float>(nibble(codes, c)) * x[c];  // to a multiple of 8
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; c + 16 <= c1; c += 16) {
    acc0 = _mm256_fmadd_ps(unpack8(codes + c / 2), _mm256_loadu_ps(x + c), acc0);
    acc1 = _mm256_fmadd_ps(unpack8(codes + c / 2 + 4), _mm256_loadu_ps(x + c + 8), acc1);
  }
  for (; c + 8 <= c1; c += 8) acc0 = _mm256_fmadd_ps(unpack8(codes + c / 2), _mm256_loadu_ps(x + c), acc0);
  // horizontal sum of the 8 lanes
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  s += _mm_cvtss_f32(h);
  for (; c < c1; ++c) s += static_cast<float>(nibble(codes, c)) * x[c];
  return s;
}

// 16 columns (8 bytes, starting at an even column) → 16 float codes in column order.
__attribute__((target("avx512f"))) static inline __m512 unpack16(const uint8_t* p) {
  int64_t b;
  std::memcpy(&b, p, 8);
  const __m128i v = _mm_cvtsi64_si128(b);
  const __m128i m = _mm_set1_epi8(0x0F);
  const __m128i lo = _mm_and_si128(v, m);
  const __m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
}

__attribute__((target("avx512f"))) float qdot4_avx512(const uint8_t* codes, const float* x, int64_t c0,
                                                       int64_t c1) {
  float s = 0;
  int64_t c = c0;
  for (; c < c1 && (c & 15); ++c) s += static_cast<float>(nibble(codes, c)) * x[c];  // to a multiple of 16
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  for (; c + 32 <= c1; c += 32) {
    acc0 = _mm512_fmadd_ps(unpack16(codes + c / 2), _mm512_loadu_ps(x + c), acc0);
    acc1 = _mm512_fmadd_ps(unpack16(codes + c / 2 + 8), _mm512_loadu_ps(x + c + 16), acc1);
  }
  for (; c + 16 <= c1; c += 16) acc0 = _mm512_fmadd_ps(unpack16(codes + c / 2), _mm512_loadu_ps(x + c), acc0);
  s += _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  for (; c < c1; ++c) s += static_cast<float>(nibble(codes, c)) * x[c];
  return s;
}

// Σ_g Δ_g·Σ_{c∈g} q_c·x_c over a whole row whose groups start at multiples of 8 (gs % 8 == 0):
// the per-group sums stay in one vector accumulator (scaled by Δ_g), so there is a single
// horizontal reduction per row instead of one per group.
__attribute__((target("avx2,fma"))) float qrow4_avx2(const uint8_t* codes, const float* x, const float* scale,
                                                     int64_t in, int64_t gs) {
  __m256 acc = _mm256_setzero_ps();
  float tail = 0;
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += gs, ++g) {
    const int64_t c1 = std::min(in, c0 + gs);
    __m256 gsum = _mm256_setzero_ps();
    int64_t c = c0;
    for (; c + 8 <= c1; c += 8) gsum = _mm256_fmadd_ps(unpack8(codes + c / 2), _mm256_loadu_ps(x + c), gsum);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(scale[g]), gsum, acc);
    if (c < c1) tail += scale[g] * qdot4_scalar(codes, x, c, c1);  // only the row's last group
  }
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h) + tail;
}

// Same for AVX-512; groups start at multiples of 16 (gs % 16 == 0).
__attribute__((target("avx512f"))) float qrow4_avx512(const uint8_t* codes, const float* x, const float* scale,
                                                       int64_t in, int64_t gs) {
  __m512 acc = _mm512_setzero_ps();
  float tail = 0;
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += gs, ++g) {
    const int64_t c1 = std::min(in, c0 + gs);
    __m512 gsum = _mm512_setzero_ps();
    int64_t c = c0;
    for (; c + 16 <= c1; c += 16) gsum = _mm512_fmadd_ps(unpack16(codes + c / 2), _mm512_loadu_ps(x + c), gsum);
    acc = _mm512_fmadd_ps(_mm512_set1_ps(scale[g]), gsum, acc);
    if (c < c1) tail += scale[g] * qdot4_scalar(codes, x, c, c1);
  }
  return _mm512_reduce_add_ps(acc) + tail;
}

}  // namespace qtune::kernels
