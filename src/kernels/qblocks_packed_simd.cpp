// kernels/qblocks_packed_simd.cpp — the group loops of qblocks_packed.cpp (contract:
// qblocks_packed_loops.h), AVX2 and AVX-512 VNNI, per-function target attributes (no -m flags).
//
// A record chunk holds 4 columns of 16 rows, row i in int32 lane i; the token's matching 4
// activation bytes are broadcast to every lane, so one multiply-add gives all 16 rows' partial
// sums in place and a block needs no horizontal reduction.
//   vpdpbusd (VNNI)  u8 code × s8 xq, 4 products into an int32 lane: any code, exact.
//   vpmaddubsw       pairs saturate to int16: 4-bit codes are exact (2·15·127, and eight such
//                    sums fit int16 too, so the block widens once); 8-bit codes are re-centred to
//                    q = code − 128 and multiplied as |q| × sign(xq, q) (2·128·127 ≤ 32767),
//                    which yields Σ code·xq − 128·Σ xq, the combination's integer, directly.
// This file is compiled with -ffp-contract=off (CMakeLists.txt): the float combination must be
// two roundings (mul, add) like the scalar loop's, not one FMA.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 on _mm512_undefined_* inside the intrinsics
#include <immintrin.h>

#include <cstring>

#include "kernels/qblocks_packed_loops.h"

#define QT_AVX2 __attribute__((target("avx2,fma")))
#define QT_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace qtune::kernels::qpack {

namespace {

constexpr int64_t kRec8 = 64 + 512, kRec4 = 64 + 256;  // record bytes (qblocks_packed.h)

inline int32_t load4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// acc (+)= (scale·d)·float(u): the combination's two roundings, per lane
QT_VNNI inline __m512 combine_512(__m512 acc, const uint8_t* rec, float d, __m512i u) {
  const __m512 sd = _mm512_mul_ps(_mm512_load_ps(reinterpret_cast<const float*>(rec)), _mm512_set1_ps(d));
  return _mm512_add_ps(acc, _mm512_mul_ps(sd, _mm512_cvtepi32_ps(u)));
}

QT_AVX2 inline __m256 combine_256(__m256 acc, const float* scale, float d, __m256i u) {
  const __m256 sd = _mm256_mul_ps(_mm256_load_ps(scale), _mm256_set1_ps(d));
  return _mm256_add_ps(acc, _mm256_mul_ps(sd, _mm256_cvtepi32_ps(u)));
}

QT_AVX2 inline __m256i load_256(const uint8_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }

}  // namespace

QT_AVX2 void group8_avx2(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum,
                         float* acc) {
  const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* r = rec + b * kRec8;
    const int8_t* x = xq + b * 32;
    __m256i u0 = _mm256_setzero_si256(), u1 = _mm256_setzero_si256();  // rows 0..7, 8..15
    for (int k = 0; k < 8; ++k) {
      const __m256i xv = _mm256_set1_epi32(load4(x + 4 * k));
      const __m256i q0 = _mm256_xor_si256(load_256(r + 64 + 64 * k), flip);
      const __m256i q1 = _mm256_xor_si256(load_256(r + 96 + 64 * k), flip);
      u0 = _mm256_add_epi32(u0, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q0), _mm256_sign_epi8(xv, q0)), ones));
      u1 = _mm256_add_epi32(u1, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_abs_epi8(q1), _mm256_sign_epi8(xv, q1)), ones));
    }
    const float* sc = reinterpret_cast<const float*>(r);
    a0 = combine_256(a0, sc, d[b], u0);  // u is already Σ code·xq − 128·Σ xq
    a1 = combine_256(a1, sc + 8, d[b], u1);
  }
  _mm256_storeu_ps(acc, a0);
  _mm256_storeu_ps(acc + 8, a1);
}

QT_AVX2 void group4_avx2(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum,
                         float* acc) {
  const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(0x0F);
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* r = rec + b * kRec4;
    const int8_t* x = xq + b * 32;
    __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();  // int16 pair sums, rows 0..7, 8..15
    for (int k = 0; k < 4; ++k) {
      const __m256i xl = _mm256_set1_epi32(load4(x + 4 * k)), xh = _mm256_set1_epi32(load4(x + 16 + 4 * k));
      const __m256i v0 = load_256(r + 64 + 64 * k), v1 = load_256(r + 96 + 64 * k);
      s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(_mm256_and_si256(v0, low), xl));
      s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), low), xh));
      s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(_mm256_and_si256(v1, low), xl));
      s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), low), xh));
    }
    const __m256i oi = _mm256_set1_epi32(8 * isum[b]);
    const __m256i u0 = _mm256_sub_epi32(_mm256_madd_epi16(s0, ones), oi);
    const __m256i u1 = _mm256_sub_epi32(_mm256_madd_epi16(s1, ones), oi);
    const float* sc = reinterpret_cast<const float*>(r);
    a0 = combine_256(a0, sc, d[b], u0);
    a1 = combine_256(a1, sc + 8, d[b], u1);
  }
  _mm256_storeu_ps(acc, a0);
  _mm256_storeu_ps(acc + 8, a1);
}

// NT tokens against one row group: each weight chunk is loaded once and multiplied into every
// token's lanes (prefill: NT = kTokens; decode: NT = 1). Per token the integers and the float
// operations do not depend on NT, so a prompt's rows come out as they do one token at a time.
// xq [NT, ldx], d and isum [NT, ldb].
template <int NT, int Bits>
QT_VNNI void tokens_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, int64_t ldx, const float* d,
                         const int32_t* isum, int64_t ldb, float* acc) {
  constexpr int64_t rb = Bits == 8 ? kRec8 : kRec4;
  constexpr int32_t off = 1 << (Bits - 1);
  const __m512i low = _mm512_set1_epi8(0x0F);
  __m512 a[NT];
  for (int t = 0; t < NT; ++t) a[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* r = rec + b * rb;
    const int8_t* x = xq + b * 32;
    __m512i u[NT];
    for (int t = 0; t < NT; ++t) u[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      __m512i w0, w1;  // columns 4k.. and 16 + 4k.. (8-bit: chunks k and k + 4)
      if constexpr (Bits == 8) {
        w0 = _mm512_load_si512(r + 64 + 64 * k);
        w1 = _mm512_load_si512(r + 64 + 64 * (k + 4));
      } else {
        const __m512i v = _mm512_load_si512(r + 64 + 64 * k);
        w0 = _mm512_and_si512(v, low);
        w1 = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
      }
      for (int t = 0; t < NT; ++t) {
        u[t] = _mm512_dpbusd_epi32(u[t], w0, _mm512_set1_epi32(load4(x + t * ldx + 4 * k)));
        u[t] = _mm512_dpbusd_epi32(u[t], w1, _mm512_set1_epi32(load4(x + t * ldx + 16 + 4 * k)));
      }
    }
    for (int t = 0; t < NT; ++t)
      a[t] = combine_512(a[t], r, d[t * ldb + b], _mm512_sub_epi32(u[t], _mm512_set1_epi32(off * isum[t * ldb + b])));
  }
  for (int t = 0; t < NT; ++t) _mm512_storeu_ps(acc + 16 * t, a[t]);
}

// One token (decode): the same loop with one set of lanes; the OOO window overlaps the blocks.
void group8_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc) {
  tokens_vnni<1, 8>(rec, nb, xq, 0, d, isum, 0, acc);
}
void group4_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc) {
  tokens_vnni<1, 4>(rec, nb, xq, 0, d, isum, 0, acc);
}

void tokens8_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, int64_t ldx, const float* d, const int32_t* isum,
                  int64_t ldb, float* acc) {
  tokens_vnni<kTokens, 8>(rec, nb, xq, ldx, d, isum, ldb, acc);
}
void tokens4_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, int64_t ldx, const float* d, const int32_t* isum,
                  int64_t ldb, float* acc) {
  tokens_vnni<kTokens, 4>(rec, nb, xq, ldx, d, isum, ldb, acc);
}

}  // namespace qtune::kernels::qpack
