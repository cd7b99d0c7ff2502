// kernels/idot.cpp — the exact integer row-block dots of the integer GEMM (contract: idot.h).
// Scalar, AVX2, AVX-512BW and AVX-512 VNNI versions; the SIMD ones carry per-function target
// attributes, so this file needs no -m flags and the binary runs on CPUs without them
// (igemm.cpp only calls what the CPU supports).
//
// Which multiply is exact for which codes:
//   vpdpbusd (VNNI)   u8 × s8, 4 products into an int32 lane, no saturation: any u8 code.
//   vpmaddubsw        u8 × s8 pairs saturate to int16: exact only while 2·code·|x| ≤ 32767,
//                     i.e. codes ≤ 127 (bits ≤ 7); 8-bit codes are widened to int16 instead.
//   vpmaddwd/vpdpwssd s16 × s16 pairs into int32: 16-bit codes re-centred (code ^ 0x8000).
// Reductions: each 128-bit lane of an accumulator covers one "segment" of a step's columns
// (16 u8 / 8 u16 columns; the 8-bit widening unpacks within lanes to keep this true). A flush
// reduces four accumulators at once into per-segment sums (reduce4: three unpack+add pairs,
// not four full horizontal sums) and adds each group's segments into out, group-major, one
// vector per group. A "run" is one group (accumulating its steps, flushed at its end or every
// kChunk8 / kChunk16 columns), or — for groups of whole segments shorter than a step ("small":
// 16, 32, 48 u8 columns) — the whole row, flushed every step. Other groups (5, 7, 100
// columns...) are runs of masked (AVX-512) or zero-padded (AVX2) steps.
// GCC 12's AVX-512 headers build some results from _mm512_undefined_*(), which trips
// -Wuninitialized in every caller; the values are fully overwritten.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "kernels/idot.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/quant.h"  // round_half_away

#define QT_AVX2 __attribute__((target("avx2,fma")))
#define QT_AVX512BW __attribute__((target("avx512f,avx512bw")))
#define QT_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace qtune::kernels::idot {

namespace {

// kNib* = 4-bit codes read packed (two per byte) and unpacked in registers; the run starts
// (hence every step) are then at even columns.
enum Mode { kMaddubs, kNibMaddubs, kWiden, kMadd16, kDpbusd, kNibDpbusd, kDpwssd };
constexpr bool nibble_mode(int m) { return m == kNibMaddubs || m == kNibDpbusd; }

inline int32_t centred16(const uint8_t* w, int64_t c) {
  return static_cast<int32_t>(w[2 * c] | (w[2 * c + 1] << 8)) - 32768;
}

// AVX2 flush, scalar part: t[h][4·s + k] = segment s (columns c + s·seg ...) of accumulator
// a = 4h + k (a = i·nt + j) → out[g·A + a], A = 4·NT. Run mode (!small): every segment belongs
// to group g; small mode: segment s to the group holding its first column (g holds column c).
template <int NT, int kSegs>
inline void add_segments(const int32_t (*t)[16], int64_t* out, bool small, int64_t c, int64_t seg, int64_t g,
                         int64_t gs, int64_t in) {
  constexpr int A = 4 * NT;
  int64_t gg = g, end = (g + 1) * gs;
  for (int s = 0; s < kSegs; ++s) {
    if (small) {
      if (c + s * seg >= in) break;  // padded: zeros
      if (c + s * seg >= end) ++gg, end += gs;  // seg ≤ gs: at most one group per segment
    }
    for (int a = 0; a < A; ++a) out[gg * A + a] += t[a / 4][4 * s + a % 4];
  }
}

// ---------------------------------------------------------------------------------------------
// AVX2: 32 u8 columns (16 for 16-bit codes) a step; 2 segments; tails zero-padded.

// per 128-bit lane: [Σa, Σb, Σc, Σd] over that lane's four int32s
QT_AVX2 inline __m256i reduce4_256(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
  const __m256i cd = _mm256_add_epi32(_mm256_unpacklo_epi32(c, d), _mm256_unpackhi_epi32(c, d));
  return _mm256_add_epi32(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
}

// 32 u8 codes of columns [c, c + 32): stored one per byte, or (nibble modes) packed: 16 bytes
// zero-extended to u16 lo | hi << 8, where (v | v << 4) & 0x0F0F puts each nibble in its byte.
template <int M>
QT_AVX2 inline __m256i codes_avx2(const uint8_t* w, int64_t c) {
  if constexpr (nibble_mode(M)) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + c / 2)));
    return _mm256_and_si256(_mm256_or_si256(v, _mm256_slli_epi16(v, 4)), _mm256_set1_epi16(0x0F0F));
  }
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + c));
}

// acc[i][j] += columns [c, c + step) of row i · token j
template <int NT, int M>
QT_AVX2 inline void step_avx2(__m256i (&acc)[kRows][NT], const uint8_t* const* w, const int8_t* const* x, int64_t c) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (M == kMaddubs || M == kNibMaddubs) {
    __m256i xv[NT];
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j) xv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j] + c));
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m256i wv = codes_avx2<M>(w[i], c);
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j)
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv[j]), ones));
    }
  } else if constexpr (M == kWiden) {
    // int16 halves by unpacking within 128-bit lanes (bytes 0..7 and 8..15 of each lane), so
    // every 128-bit lane of acc still holds the same 16 consecutive columns (one segment)
    const __m256i zero = _mm256_setzero_si256();
    __m256i xl[NT], xh[NT];
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[j] + c));
      xl[j] = _mm256_srai_epi16(_mm256_unpacklo_epi8(v, v), 8);  // sign-extended
      xh[j] = _mm256_srai_epi16(_mm256_unpackhi_epi8(v, v), 8);
    }
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i] + c));
      const __m256i wl = _mm256_unpacklo_epi8(v, zero), wh = _mm256_unpackhi_epi8(v, zero);  // zero-extended
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j)
        acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_add_epi32(_mm256_madd_epi16(wl, xl[j]),
                                                                  _mm256_madd_epi16(wh, xh[j])));
    }
  } else {  // kMadd16: 16 columns
    const __m256i flip = _mm256_set1_epi16(static_cast<int16_t>(0x8000));
    __m256i xv[NT];
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j)
      xv[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[j] + c)));
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i] + 2 * c)), flip);
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(wv, xv[j]));
    }
  }
}

// The last, partial step of a run: the remaining n < step columns copied into zeroed buffers
// (zero codes · zero activations add nothing, also for the re-centred 16-bit codes).
template <int NT, int M>
QT_AVX2 void padded_step_avx2(__m256i (&acc)[kRows][NT], const uint8_t* const* w, const int8_t* const* x, int64_t c,
                              int64_t n) {
  // code bytes of columns [c, c + n): 2n (16-bit), ⌈n/2⌉ (packed nibbles, c even), n
  const int64_t first = M == kMadd16 ? 2 * c : nibble_mode(M) ? c / 2 : c;
  const int64_t bytes = M == kMadd16 ? 2 * n : nibble_mode(M) ? (n + 1) / 2 : n;
  alignas(32) uint8_t wt[kRows][32] = {};
  alignas(32) int8_t xt[kTokens][32] = {};
  const uint8_t* wp[kRows];
  const int8_t* xp[kTokens];
  for (int i = 0; i < kRows; ++i) std::memcpy(wt[i], w[i] + first, static_cast<size_t>(bytes)), wp[i] = wt[i];
  for (int j = 0; j < NT; ++j) std::memcpy(xt[j], x[j] + c, static_cast<size_t>(n)), xp[j] = xt[j];
  step_avx2<NT, M>(acc, wp, xp, 0);
}

template <int NT>
QT_AVX2 inline void flush_avx2(__m256i (&acc)[kRows][NT], int64_t* out, bool small, int64_t c,
                               int64_t seg, int64_t g, int64_t gs, int64_t in) {
  alignas(32) int32_t t[2][16];
  if constexpr (NT == 2) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(t[0]), reduce4_256(acc[0][0], acc[0][1], acc[1][0], acc[1][1]));
    _mm256_store_si256(reinterpret_cast<__m256i*>(t[1]), reduce4_256(acc[2][0], acc[2][1], acc[3][0], acc[3][1]));
  } else {
    _mm256_store_si256(reinterpret_cast<__m256i*>(t[0]), reduce4_256(acc[0][0], acc[1][0], acc[2][0], acc[3][0]));
  }
  add_segments<NT, 2>(t, out, small, c, seg, g, gs, in);
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_si256();
}

// The run loop shared (in shape) by the three SIMD versions: a run is one group, or the whole
// row when groups are small (several per step); steps accumulate until the run ends, a chunk
// is full, or (small) every step.
template <int NT, int M>
QT_AVX2 void rows_avx2(const uint8_t* const* w, const int8_t* const* x, int64_t in, int64_t gs, int64_t* out) {
  constexpr int64_t step = M == kMadd16 ? 16 : 32, seg = step / 2;
  constexpr int64_t chunk = M == kMadd16 ? kChunk16 : kChunk8;  // a multiple of step
  const int64_t ng = (in + gs - 1) / gs;
  const bool small = gs < step && gs % seg == 0;
  std::fill(out, out + kRows * NT * ng, int64_t(0));
  __m256i acc[kRows][NT];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm256_setzero_si256();
  int64_t g = 0;
  for (int64_t r0 = 0; r0 < in; r0 += small ? in : gs, g += !small) {
    const int64_t r1 = small ? in : std::min(in, r0 + gs);
    int64_t since = 0;
    for (int64_t c = r0; c < r1; c += step) {
      if (c + step <= r1) step_avx2<NT, M>(acc, w, x, c);
      else padded_step_avx2<NT, M>(acc, w, x, c, r1 - c);
      since += step;
      if (small || c + step >= r1 || since == chunk) {
        while (small && (g + 1) * gs <= c) ++g;
        flush_avx2<NT>(acc, out, small, c, seg, g, gs, in);
        since = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AVX-512BW: 64 u8 columns (32 for 16-bit codes) a step, 4 segments; tails are masked steps.

QT_AVX512BW inline __mmask64 tail_mask(int64_t r) { return r >= 64 ? ~__mmask64(0) : (__mmask64(1) << r) - 1; }

// per 128-bit lane: [Σa, Σb, Σc, Σd] over that lane's four int32s
QT_AVX512BW inline __m512i reduce4_512(__m512i a, __m512i b, __m512i c, __m512i d) {
  const __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
  const __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
}

// The accumulators' segment sums as int64 vectors: seg[s] lane a = segment s of accumulator a
// (a = i·NT + j; lanes ≥ 4·NT unused).
template <int NT>
QT_AVX512BW inline void segments_512(const __m512i (&acc)[kRows][NT], __m512i (&seg)[4]) {
  if constexpr (NT == 2) {
    const __m512i lo = reduce4_512(acc[0][0], acc[0][1], acc[1][0], acc[1][1]);  // a = 0..3
    const __m512i hi = reduce4_512(acc[2][0], acc[2][1], acc[3][0], acc[3][1]);  // a = 4..7
    const __m512i u01 = _mm512_shuffle_i32x4(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));   // lo.0 lo.1 hi.0 hi.1
    const __m512i u23 = _mm512_shuffle_i32x4(lo, hi, _MM_SHUFFLE(3, 2, 3, 2));
    const __m512i s01 = _mm512_shuffle_i32x4(u01, u01, _MM_SHUFFLE(3, 1, 2, 0));  // lo.0 hi.0 | lo.1 hi.1
    const __m512i s23 = _mm512_shuffle_i32x4(u23, u23, _MM_SHUFFLE(3, 1, 2, 0));
    seg[0] = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(s01));
    seg[1] = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(s01, 1));
    seg[2] = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(s23));
    seg[3] = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(s23, 1));
  } else {
    const __m512i r = reduce4_512(acc[0][0], acc[1][0], acc[2][0], acc[3][0]);
    seg[0] = _mm512_cvtepi32_epi64(_mm256_castsi128_si256(_mm512_castsi512_si128(r)));
    seg[1] = _mm512_cvtepi32_epi64(_mm256_castsi128_si256(_mm512_extracti32x4_epi32(r, 1)));
    seg[2] = _mm512_cvtepi32_epi64(_mm256_castsi128_si256(_mm512_extracti32x4_epi32(r, 2)));
    seg[3] = _mm512_cvtepi32_epi64(_mm256_castsi128_si256(_mm512_extracti32x4_epi32(r, 3)));
  }
}

// Accumulators → out[g·A + a] (A = 4·NT), then zeroed. Run mode (!small): all four segments
// belong to group g. Small mode (g holds column c): groups of one or two segments are whole
// in this step and stored once; other sizes (48 columns in 64-column steps) straddle steps.
template <int NT>
QT_AVX512BW inline void flush_512(__m512i (&acc)[kRows][NT], int64_t* out, bool small, int64_t c, int64_t seg_cols,
                                  int64_t g, int64_t gs, int64_t in) {
  constexpr int A = 4 * NT;
  constexpr __mmask8 k = NT == 2 ? 0xFF : 0x0F;
  __m512i seg[4];
  segments_512<NT>(acc, seg);
  if (!small) {
    const __m512i v = _mm512_add_epi64(_mm512_add_epi64(seg[0], seg[1]), _mm512_add_epi64(seg[2], seg[3]));
    _mm512_mask_storeu_epi64(out + g * A, k, _mm512_add_epi64(_mm512_maskz_loadu_epi64(k, out + g * A), v));
  } else if (gs == seg_cols) {
    for (int q = 0; q < 4 && c + q * gs < in; ++q) _mm512_mask_storeu_epi64(out + (g + q) * A, k, seg[q]);
  } else if (gs == 2 * seg_cols) {
    for (int q = 0; q < 2 && c + q * gs < in; ++q)
      _mm512_mask_storeu_epi64(out + (g + q) * A, k, _mm512_add_epi64(seg[2 * q], seg[2 * q + 1]));
  } else {
    int64_t gg = g, end = (g + 1) * gs;
    for (int s = 0; s < 4 && c + s * seg_cols < in; ++s) {
      if (c + s * seg_cols >= end) ++gg, end += gs;  // seg ≤ gs: at most one group per segment
      int64_t* o = out + gg * A;
      _mm512_mask_storeu_epi64(o, k, _mm512_add_epi64(_mm512_maskz_loadu_epi64(k, o), seg[s]));
    }
  }
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_si512();
}

// 64 u8 codes of columns [c, c + 64) under column mask m (nibble modes: byte mask mb of the
// packed bytes; codes of masked columns may be garbage — their activations are 0).
template <int M>
QT_AVX512BW inline __m512i codes_512(const uint8_t* w, int64_t c, __mmask64 m, __mmask64 mb) {
  if constexpr (nibble_mode(M)) {
    const __m512i v = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(_mm512_maskz_loadu_epi8(mb, w + c / 2)));
    return _mm512_ternarylogic_epi32(v, _mm512_slli_epi16(v, 4), _mm512_set1_epi16(0x0F0F), 0xA8);  // (a|b)&c
  }
  return _mm512_maskz_loadu_epi8(m, w + c);
}

// The masks of a step with r columns left: columns (and, nibble modes, the ⌈r/2⌉ packed bytes)
QT_AVX512BW inline __mmask64 nib_mask(int64_t r) { return tail_mask((r + 1) / 2) & 0xFFFFFFFFu; }

template <int NT, int M>
QT_AVX512BW inline void step_bw(__m512i (&acc)[kRows][NT], const uint8_t* const* w, const int8_t* const* x, int64_t c,
                                __mmask64 m, __mmask64 mb) {
  const __m512i ones = _mm512_set1_epi16(1);
  if constexpr (M == kMaddubs || M == kNibMaddubs) {
    __m512i xv[NT];
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j) xv[j] = _mm512_maskz_loadu_epi8(m, x[j] + c);
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m512i wv = codes_512<M>(w[i], c, m, mb);
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j)
        acc[i][j] = _mm512_add_epi32(acc[i][j], _mm512_madd_epi16(_mm512_maddubs_epi16(wv, xv[j]), ones));
    }
  } else if constexpr (M == kWiden) {  // int16 halves unpacked within 128-bit lanes (see AVX2)
    const __m512i zero = _mm512_setzero_si512();
    __m512i xl[NT], xh[NT];
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j) {
      const __m512i v = _mm512_maskz_loadu_epi8(m, x[j] + c);
      xl[j] = _mm512_srai_epi16(_mm512_unpacklo_epi8(v, v), 8);
      xh[j] = _mm512_srai_epi16(_mm512_unpackhi_epi8(v, v), 8);
    }
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m512i v = _mm512_maskz_loadu_epi8(m, w[i] + c);
      const __m512i wl = _mm512_unpacklo_epi8(v, zero), wh = _mm512_unpackhi_epi8(v, zero);
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j)
        acc[i][j] = _mm512_add_epi32(acc[i][j], _mm512_add_epi32(_mm512_madd_epi16(wl, xl[j]),
                                                                  _mm512_madd_epi16(wh, xh[j])));
    }
  } else {  // kMadd16: 32 columns (low 32 bits of m); masked-off lanes: x = 0
    const __m512i flip = _mm512_set1_epi16(static_cast<int16_t>(0x8000));
    __m512i xv[NT];
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j)  // 32 bytes of x only: the mask's high half would read past them
      xv[j] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(_mm512_maskz_loadu_epi8(m & 0xFFFFFFFFu, x[j] + c)));
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi16(static_cast<__mmask32>(m), w[i] + 2 * c), flip);
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_add_epi32(acc[i][j], _mm512_madd_epi16(wv, xv[j]));
    }
  }
}

template <int NT, int M>
QT_AVX512BW void rows_bw(const uint8_t* const* w, const int8_t* const* x, int64_t in, int64_t gs, int64_t* out) {
  constexpr int64_t step = M == kMadd16 ? 32 : 64, seg = step / 4;
  constexpr int64_t chunk = M == kMadd16 ? kChunk16 : kChunk8;  // a multiple of step
  const int64_t ng = (in + gs - 1) / gs;
  const bool small = gs < step && gs % seg == 0;
  std::fill(out, out + kRows * NT * ng, int64_t(0));
  __m512i acc[kRows][NT];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_si512();
  int64_t g = 0;
  for (int64_t r0 = 0; r0 < in; r0 += small ? in : gs, g += !small) {
    const int64_t r1 = small ? in : std::min(in, r0 + gs);
    int64_t since = 0;
    for (int64_t c = r0; c < r1; c += step) {
      if (c + step <= r1) step_bw<NT, M>(acc, w, x, c, ~__mmask64(0), 0xFFFFFFFFu);
      else step_bw<NT, M>(acc, w, x, c, tail_mask(r1 - c), nib_mask(r1 - c));
      since += step;
      if (small || c + step >= r1 || since == chunk) {
        while (small && (g + 1) * gs <= c) ++g;
        flush_512<NT>(acc, out, small, c, seg, g, gs, in);
        since = 0;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI: the same loop with one vpdpbusd / vpdpwssd per (row, token) and step.
// (A copy, not rows_bw compiled with VNNI on: the BW path must not be compiled with an
// instruction set its CPUs may lack.)

template <int NT, int M>
QT_VNNI inline void step_vnni(__m512i (&acc)[kRows][NT], const uint8_t* const* w, const int8_t* const* x, int64_t c,
                              __mmask64 m, __mmask64 mb) {
  __m512i xv[NT];
  if constexpr (M == kDpbusd || M == kNibDpbusd) {
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j) xv[j] = _mm512_maskz_loadu_epi8(m, x[j] + c);
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m512i wv = codes_512<M>(w[i], c, m, mb);  // codes: the unsigned operand
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], wv, xv[j]);
    }
  } else {  // kDpwssd: 32 columns
    const __m512i flip = _mm512_set1_epi16(static_cast<int16_t>(0x8000));
#pragma GCC unroll 2
    for (int j = 0; j < NT; ++j)
      xv[j] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(_mm512_maskz_loadu_epi8(m & 0xFFFFFFFFu, x[j] + c)));
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
      const __m512i wv = _mm512_xor_si512(_mm512_maskz_loadu_epi16(static_cast<__mmask32>(m), w[i] + 2 * c), flip);
#pragma GCC unroll 2
      for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_dpwssd_epi32(acc[i][j], wv, xv[j]);
    }
  }
}

template <int NT, int M>
QT_VNNI void rows_vnni(const uint8_t* const* w, const int8_t* const* x, int64_t in, int64_t gs, int64_t* out) {
  constexpr int64_t step = M == kDpwssd ? 32 : 64, seg = step / 4;
  constexpr int64_t chunk = M == kDpwssd ? kChunk16 : kChunk8;
  const int64_t ng = (in + gs - 1) / gs;
  const bool small = gs < step && gs % seg == 0;
  std::fill(out, out + kRows * NT * ng, int64_t(0));
  __m512i acc[kRows][NT];
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_si512();
  int64_t g = 0;
  for (int64_t r0 = 0; r0 < in; r0 += small ? in : gs, g += !small) {
    const int64_t r1 = small ? in : std::min(in, r0 + gs);
    int64_t since = 0;
    for (int64_t c = r0; c < r1; c += step) {
      if (c + step <= r1) step_vnni<NT, M>(acc, w, x, c, ~__mmask64(0), 0xFFFFFFFFu);
      else step_vnni<NT, M>(acc, w, x, c, tail_mask(r1 - c), nib_mask(r1 - c));
      since += step;
      if (small || c + step >= r1 || since == chunk) {
        while (small && (g + 1) * gs <= c) ++g;
        flush_512<NT>(acc, out, small, c, seg, g, gs, in);
        since = 0;
      }
    }
  }
}

// Scalar: group by group, int32 within a chunk.
template <bool kWide>
void rows_scalar(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out) {
  constexpr int64_t chunk = kWide ? kChunk16 : kChunk8;
  const int64_t ng = (in + gs - 1) / gs;
  for (int i = 0; i < kRows; ++i)
    for (int j = 0; j < nt; ++j)
      for (int64_t g = 0; g < ng; ++g) {
        int64_t s = 0;
        for (int64_t cs = g * gs; cs < std::min(in, (g + 1) * gs); cs += chunk) {
          const int64_t ce = std::min({in, (g + 1) * gs, cs + chunk});
          int32_t acc = 0;  // ≤ chunk · 255 · 128 (u8) or chunk · 32768 · 128 (u16) < 2^31
          for (int64_t c = cs; c < ce; ++c) acc += (kWide ? centred16(w[i], c) : w[i][c]) * x[j][c];
          s += acc;
        }
        out[g * (kRows * nt) + i * nt + j] = s;
      }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Exported entry points: nt picks the instantiation.

void dot8_scalar(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out) {
  rows_scalar<false>(w, x, nt, in, gs, out);
}
void dot16_scalar(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out) {
  rows_scalar<true>(w, x, nt, in, gs, out);
}

void unpack4_scalar(const uint8_t* packed, int64_t nbytes, uint8_t* out) {
  for (int64_t b = 0; b < nbytes; ++b) {
    out[2 * b] = packed[b] & 0xF;
    out[2 * b + 1] = packed[b] >> 4;
  }
}

#define QT_ROWS(NAME, TARGET, LOOP, MODE)                                                                   \
  TARGET void NAME(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out) { \
    nt == 2 ? LOOP<2, MODE>(w, x, in, gs, out) : LOOP<1, MODE>(w, x, in, gs, out);                          \
  }
QT_ROWS(dot4_avx2, QT_AVX2, rows_avx2, kNibMaddubs)
QT_ROWS(dot7_avx2, QT_AVX2, rows_avx2, kMaddubs)
QT_ROWS(dot8_avx2, QT_AVX2, rows_avx2, kWiden)
QT_ROWS(dot16_avx2, QT_AVX2, rows_avx2, kMadd16)
QT_ROWS(dot4_avx512bw, QT_AVX512BW, rows_bw, kNibMaddubs)
QT_ROWS(dot7_avx512bw, QT_AVX512BW, rows_bw, kMaddubs)
QT_ROWS(dot8_avx512bw, QT_AVX512BW, rows_bw, kWiden)
QT_ROWS(dot16_avx512bw, QT_AVX512BW, rows_bw, kMadd16)
QT_ROWS(dot4_vnni, QT_VNNI, rows_vnni, kNibDpbusd)
QT_ROWS(dot8_vnni, QT_VNNI, rows_vnni, kDpbusd)
QT_ROWS(dot16_vnni, QT_VNNI, rows_vnni, kDpwssd)
#undef QT_ROWS

// One packed byte b = (hi << 4) | lo → the int16 lo | (hi << 8), i.e. the bytes lo, hi in
// column order (little-endian): zero-extend, then move the high nibble up a byte.
QT_AVX2 void unpack4_avx2(const uint8_t* packed, int64_t nbytes, uint8_t* out) {
  const __m256i lo = _mm256_set1_epi16(0x000F), hi = _mm256_set1_epi16(0x0F00);
  int64_t b = 0;
  for (; b + 16 <= nbytes; b += 16) {
    const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(packed + b)));
    const __m256i r = _mm256_or_si256(_mm256_and_si256(v, lo), _mm256_and_si256(_mm256_slli_epi16(v, 4), hi));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 2 * b), r);
  }
  unpack4_scalar(packed + b, nbytes - b, out + 2 * b);
}

QT_AVX512BW void unpack4_avx512bw(const uint8_t* packed, int64_t nbytes, uint8_t* out) {
  const __m512i lo = _mm512_set1_epi16(0x000F), hi = _mm512_set1_epi16(0x0F00);
  int64_t b = 0;
  for (; b + 32 <= nbytes; b += 32) {
    const __m512i v = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(packed + b)));
    const __m512i r = _mm512_or_si512(_mm512_and_si512(v, lo), _mm512_and_si512(_mm512_slli_epi16(v, 4), hi));
    _mm512_storeu_si512(out + 2 * b, r);
  }
  unpack4_scalar(packed + b, nbytes - b, out + 2 * b);
}

// ---------------------------------------------------------------------------------------------
// Activation quantization. The SIMD versions do the scalar's float operations in the same
// order: v = clamp(x / s) (clamping first is the same as after rounding: integral bounds,
// monotone rounding), then round_half_away(v) = sign(v)·(t + (|v| − t >= 0.5)), t = trunc(|v|).
// Not trunc(|v| + 0.5f): that rounds 0.49999997f up (the sum rounds to 1.0f in float), unlike
// std::round, which the scalar path and the training fake-quant use.

bool absmax_scalar(const float* x, int64_t n, float* amax) {
  float m = 0.0f;
  bool finite = true;
  for (int64_t c = 0; c < n; ++c) {
    finite &= std::isfinite(x[c]);
    m = std::max(m, std::fabs(x[c]));
  }
  *amax = m;
  return finite;
}

void quantize_row_scalar(const float* x, int64_t n, float s, int8_t* q) {
  for (int64_t c = 0; c < n; ++c) q[c] = static_cast<int8_t>(round_half_away(std::clamp(x[c] / s, -127.0f, 127.0f)));
}

// x − x is NaN exactly when x is NaN or ±inf
QT_AVX2 bool absmax_avx2(const float* x, int64_t n, float* amax) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  int bad = 0;
  int64_t c = 0;
  for (; c + 8 <= n; c += 8) {
    const __m256 v = _mm256_loadu_ps(x + c);
    const __m256 d = _mm256_sub_ps(v, v);
    bad |= _mm256_movemask_ps(_mm256_cmp_ps(d, d, _CMP_UNORD_Q));
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v));
  }
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  float rest;
  const bool finite = absmax_scalar(x + c, n - c, &rest);
  *amax = std::max(_mm_cvtss_f32(h), rest);
  return finite && bad == 0;
}

QT_AVX2 void quantize_row_avx2(const float* x, int64_t n, float s, int8_t* q) {
  const __m256 sv = _mm256_set1_ps(s), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    __m256i t[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(_mm256_loadu_ps(x + c + 8 * k), sv), lo), hi);
      const __m256 a = _mm256_andnot_ps(sign, v);
      const __m256 t0 = _mm256_round_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
      const __m256 up = _mm256_and_ps(_mm256_cmp_ps(_mm256_sub_ps(a, t0), half, _CMP_GE_OQ), one);
      const __m256i r = _mm256_cvttps_epi32(_mm256_add_ps(t0, up));
      t[k] = _mm256_sign_epi32(r, _mm256_castps_si256(v));  // −r where v < 0 (r = 0 at ±0)
    }
    // int32 → int8 in order: the packs interleave 128-bit lanes, the permute undoes it
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(t[0], t[1]), _mm256_packs_epi32(t[2], t[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + c), _mm256_permutevar8x32_epi32(b, order));
  }
  quantize_row_scalar(x + c, n - c, s, q + c);
}

QT_AVX512BW bool absmax_avx512(const float* x, int64_t n, float* amax) {
  __m512 m = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 k = n - c >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - c)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + c);
    const __m512 d = _mm512_sub_ps(v, v);
    bad |= _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
    m = _mm512_max_ps(m, _mm512_abs_ps(v));
  }
  *amax = _mm512_reduce_max_ps(m);
  return bad == 0;
}

QT_AVX512BW void quantize_row_avx512(const float* x, int64_t n, float s, int8_t* q) {
  const __m512 sv = _mm512_set1_ps(s), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512 half = _mm512_set1_ps(0.5f), zero = _mm512_setzero_ps();
  for (int64_t c = 0; c < n; c += 16) {
    const __mmask16 k = n - c >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - c)) - 1);
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(k, x + c), sv), lo), hi);
    const __m512 a = _mm512_abs_ps(v);
    const __m512 t0 = _mm512_roundscale_ps(a, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __mmask16 up = _mm512_cmp_ps_mask(_mm512_sub_ps(a, t0), half, _CMP_GE_OQ);
    const __m512i r = _mm512_cvttps_epi32(_mm512_mask_add_ps(t0, up, t0, _mm512_set1_ps(1.0f)));
    const __m512i t = _mm512_mask_sub_epi32(r, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), _mm512_setzero_si512(), r);
    _mm512_mask_cvtepi32_storeu_epi8(q + c, k, t);
  }
}

}  // namespace qtune::kernels::idot
