// kernels/qdot_blocks_simd.cpp — the exact block dots of qdot_blocks.cpp (contract:
// qdot_blocks_loops.h), AVX2 and AVX-512 VNNI, per-function target attributes (no -m flags).
//
// Which multiply is exact:
//   vpdpbusd (VNNI)  u8 code × s8 xq, 4 products into an int32 lane: any code.
//   vpmaddubsw       pairs saturate to int16: exact for ≤4-bit codes (2·15·127); 8-bit codes are
//                    re-centred to q = code − 128 and multiplied as |q| × sign(xq, q)
//                    (2·128·127 ≤ 32767), then 128·Σxq is added back.
// Nibbles are unpacked in registers: a byte zero-extended to u16 v, (v | v << 4) & 0x0F0F holds
// the low nibble (even column) in its low byte, the high one in its high byte: natural order.
// A block's 32 columns are one 256-bit half (VNNI: two blocks per 512-bit step); four rows'
// accumulators are reduced together (three unpack+add pairs per 128-bit lane, then the lanes
// of a block added).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cfloat>

#include "kernels/qdot_blocks_loops.h"

#define QT_AVX2 __attribute__((target("avx2,fma")))
#define QT_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define QT_AVX512F __attribute__((target("avx512f")))

namespace qtune::kernels::qblk {

namespace {

// per 128-bit lane: [Σa, Σb, Σc, Σd] over that lane's four int32s
QT_AVX2 inline __m256i reduce4_256(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

QT_VNNI inline __m512i reduce4_512(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

// 16 packed bytes → 32 codes, natural column order
QT_AVX2 inline __m256i nibbles_256(const uint8_t* p) {
  const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_and_si256(_mm256_or_si256(v, _mm256_slli_epi16(v, 4)), _mm256_set1_epi16(0x0F0F));
}

QT_VNNI inline __m512i nibbles_512(__m256i bytes) {
  const __m512i v = _mm512_cvtepu8_epi16(bytes);
  return _mm512_and_si512(_mm512_or_si512(v, _mm512_slli_epi16(v, 4)), _mm512_set1_epi16(0x0F0F));
}

// the four rows' sums of one block (a reduce4_256 result: add its two 128-bit lanes), plus `add`
QT_AVX2 inline void store_block(__m256i r, int32_t* u, int32_t add = 0) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(u), _mm_add_epi32(s, _mm_set1_epi32(add)));
}

// the four rows' sums of blocks b and b + 1 (a reduce4_512 result: lanes 0+1 and 2+3)
QT_VNNI inline void store_pair(__m512i r, int32_t* u) {
  r = _mm512_add_epi32(r, _mm512_shuffle_i64x2(r, r, _MM_SHUFFLE(2, 3, 0, 1)));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(u), _mm512_castsi512_si128(r));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(u + kTileRows), _mm512_extracti32x4_epi32(r, 2));
}

}  // namespace

QT_AVX2 void dots4_avx2(const uint8_t* const* w, const int8_t* x, const int32_t*, int64_t nb, int32_t* u) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + b * 32));
    __m256i m[kRows];
    for (int i = 0; i < kRows; ++i)
      m[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(nibbles_256(w[i] + b * 16), xv), ones);
    store_block(reduce4_256(m[0], m[1], m[2], m[3]), u + b * kTileRows);
  }
}

QT_AVX2 void dots8_avx2(const uint8_t* const* w, const int8_t* x, const int32_t* isum, int64_t nb, int32_t* u) {
  const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + b * 32));
    __m256i m[kRows];
    for (int i = 0; i < kRows; ++i) {
      const __m256i q = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i] + b * 32)), flip);
      m[i] = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(xv, q)), ones);
    }
    store_block(reduce4_256(m[0], m[1], m[2], m[3]), u + b * kTileRows, 128 * isum[b]);
  }
}

QT_VNNI void dots4_vnni(const uint8_t* const* w, const int8_t* x, const int32_t*, int64_t nb, int32_t* u) {
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m512i xv = _mm512_loadu_si512(x + b * 32);
    __m512i m[kRows];
    for (int i = 0; i < kRows; ++i)
      m[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                 nibbles_512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i] + b * 16))), xv);
    store_pair(reduce4_512(m[0], m[1], m[2], m[3]), u + b * kTileRows);
  }
  if (b < nb) {  // an odd last block: the upper half loads zeros
    const __m512i xv = _mm512_maskz_loadu_epi8(0xFFFFFFFFull, x + b * 32);
    __m512i m[kRows];
    for (int i = 0; i < kRows; ++i)
      m[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                 nibbles_512(_mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i] + b * 16)))), xv);
    const __m512i r = reduce4_512(m[0], m[1], m[2], m[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(u + b * kTileRows),
                     _mm_add_epi32(_mm512_castsi512_si128(r), _mm512_extracti32x4_epi32(r, 1)));
  }
}

QT_VNNI void dots8_vnni(const uint8_t* const* w, const int8_t* x, const int32_t*, int64_t nb, int32_t* u) {
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    const __m512i xv = _mm512_loadu_si512(x + b * 32);
    __m512i m[kRows];
    for (int i = 0; i < kRows; ++i) m[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_loadu_si512(w[i] + b * 32), xv);
    store_pair(reduce4_512(m[0], m[1], m[2], m[3]), u + b * kTileRows);
  }
  if (b < nb) {
    const __m512i xv = _mm512_maskz_loadu_epi8(0xFFFFFFFFull, x + b * 32);
    __m512i m[kRows];
    for (int i = 0; i < kRows; ++i)
      m[i] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_maskz_loadu_epi8(0xFFFFFFFFull, w[i] + b * 32), xv);
    const __m512i r = reduce4_512(m[0], m[1], m[2], m[3]);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(u + b * kTileRows),
                     _mm_add_epi32(_mm512_castsi512_si128(r), _mm512_extracti32x4_epi32(r, 1)));
  }
}

QT_AVX2 void gather_avx2(const float* scale, const float* zero, int64_t ng, int64_t bpg, int64_t nb, int64_t nr,
                         float* sc, float* of) {
  static_assert(kTileRows == 16);
  alignas(32) int32_t idx[16];
  for (int i = 0; i < 16; ++i) idx[i] = static_cast<int32_t>(std::min<int64_t>(i, nr - 1) * ng);
  const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx));
  const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx + 8));
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / bpg;
    _mm256_storeu_ps(sc + b * 16, _mm256_i32gather_ps(scale + g, lo, 4));
    _mm256_storeu_ps(sc + b * 16 + 8, _mm256_i32gather_ps(scale + g, hi, 4));
    if (zero) {
      _mm256_storeu_ps(of + b * 16, _mm256_i32gather_ps(zero + g, lo, 4));
      _mm256_storeu_ps(of + b * 16 + 8, _mm256_i32gather_ps(zero + g, hi, 4));
    }
  }
}

QT_AVX512F void gather_avx512(const float* scale, const float* zero, int64_t ng, int64_t bpg, int64_t nb, int64_t nr,
                              float* sc, float* of) {
  alignas(64) int32_t idx[16];
  for (int i = 0; i < 16; ++i) idx[i] = static_cast<int32_t>(std::min<int64_t>(i, nr - 1) * ng);
  const __m512i vi = _mm512_load_si512(idx);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t g = b / bpg;
    _mm512_storeu_ps(sc + b * 16, _mm512_i32gather_ps(vi, scale + g, 4));
    if (zero) _mm512_storeu_ps(of + b * 16, _mm512_i32gather_ps(vi, zero + g, 4));
  }
}

// One block of 32 per iteration, as the scalar loop: amax (order-free: max is exact), d = amax /
// 127, q = x / d (a true division, as scalar) rounded half away from zero by truncating and
// correcting with the exact remainder, clamped; the int sum in integers.
QT_AVX512F bool quantize_blocks_avx512(const float* x, int64_t in, int8_t* xq, float* d, int32_t* isum) {
  const __m512 fmax = _mm512_set1_ps(FLT_MAX), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  for (int64_t b = 0; b < in / 32; ++b) {
    const __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
    const __m512 a0 = _mm512_abs_ps(x0), a1 = _mm512_abs_ps(x1);
    // not (|x| <= FLT_MAX): inf or NaN
    if ((_mm512_cmp_ps_mask(a0, fmax, _CMP_LE_OQ) & _mm512_cmp_ps_mask(a1, fmax, _CMP_LE_OQ)) != 0xFFFF) return false;
    const float db = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1)) / 127.0f;
    __m512i q[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    if (db > 0) {
      const __m512 dv = _mm512_set1_ps(db);
      const __m512 xs[2] = {x0, x1};
      for (int h = 0; h < 2; ++h) {
        const __m512 v = _mm512_div_ps(xs[h], dv);
        __m512 t = _mm512_cvtepi32_ps(_mm512_cvttps_epi32(v));
        const __m512 f = _mm512_sub_ps(v, t);
        t = _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(f, half, _CMP_GE_OQ), t, one);
        t = _mm512_mask_sub_ps(t, _mm512_cmp_ps_mask(f, _mm512_sub_ps(_mm512_setzero_ps(), half), _CMP_LE_OQ), t, one);
        q[h] = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(t, lo), hi));
      }
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + b * 32), _mm512_cvtsepi32_epi8(q[0]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(xq + b * 32 + 16), _mm512_cvtsepi32_epi8(q[1]));
    d[b] = db;
    isum[b] = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
  }
  return true;
}

}  // namespace qtune::kernels::qblk
