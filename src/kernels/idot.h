// kernels/idot.h — private to igemm.cpp: the exact integer inner loops of the integer GEMM,
// one set per instruction set (idot.cpp, per-function target attributes).
//
// A row block is 4 weight rows × nt ≤ 2 tokens over a whole row of `in` columns, split into
// groups of gs columns (the last one may be shorter), ng = ⌈in/gs⌉:
//   u8 codes  (unpacked ≤4-bit, or 5..8-bit):  out[g·4nt + i·nt + j] = Σ_{c∈g} w_i[c]·x_j[c]
//   u16 codes (little-endian byte pairs):       out[g·4nt + i·nt + j] = Σ_{c∈g} (w_i[c] − 32768)·x_j[c]
// (group-major: the SIMD loops store the 4·nt sums of a group as one vector)
// (the u16 loops work on the code re-centred to a signed int16; the caller adds 32768·Σx).
// Results are exact int64: int32 lanes are reduced at least every kChunk8 / kChunk16 columns,
// before they can overflow (|x| ≤ 128 assumed, so even −128 is safe).
// Rows a caller does not have may repeat a real row pointer; tokens j ≥ nt are not read.
#pragma once
#include <cstdint>

namespace qtune::kernels::idot {

constexpr int kRows = 4;    // weight rows per block
constexpr int kTokens = 2;  // tokens per block (at most)

// 32768 · 255 · 128 < 2^31: a chunk of u8 products cannot overflow int32, whatever the lanes.
constexpr int64_t kChunk8 = 32768;
// 256 · 32768 · 128 = 2^30: same for re-centred 16-bit codes.
constexpr int64_t kChunk16 = 256;

using RowFn = void (*)(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs,
                       int64_t* out);
// packed nibbles [nbytes] → one code per byte [2·nbytes] (low nibble = even column first)
using UnpackFn = void (*)(const uint8_t* packed, int64_t nbytes, uint8_t* out);

void dot8_scalar(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot16_scalar(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void unpack4_scalar(const uint8_t* packed, int64_t nbytes, uint8_t* out);

// dot4_*: ≤4-bit codes read packed (row stride = the packed row), unpacked in registers — for
// few tokens, where unpacking a tile once would not pay off. Needs gs even or gs ≥ in (every
// run of columns starts at an even column).
// AVX2: `7` = codes ≤ 127 (maddubs cannot saturate: 2·127·127 < 32767), `8` = any u8 (widened).
void dot4_avx2(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot7_avx2(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot8_avx2(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot16_avx2(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void unpack4_avx2(const uint8_t* packed, int64_t nbytes, uint8_t* out);

// AVX-512BW without VNNI: same split as AVX2, 64 columns a step, masked tails.
void dot4_avx512bw(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot7_avx512bw(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot8_avx512bw(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot16_avx512bw(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void unpack4_avx512bw(const uint8_t* packed, int64_t nbytes, uint8_t* out);

// AVX-512 VNNI: vpdpbusd (codes unsigned, activations signed) and vpdpwssd for 16-bit codes.
void dot4_vnni(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot8_vnni(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);
void dot16_vnni(const uint8_t* const* w, const int8_t* const* x, int nt, int64_t in, int64_t gs, int64_t* out);

// Activation quantization of one token (igemm.h), exact in every version:
//   absmax: *amax = max_c |x[c]|; false when some x[c] is not finite (then *amax is undefined)
//   quantize_row: q[c] = clamp(round_half_away(x[c] / s), −127, 127)   (true division)
using AbsMaxFn = bool (*)(const float* x, int64_t n, float* amax);
using QuantRowFn = void (*)(const float* x, int64_t n, float s, int8_t* q);
bool absmax_scalar(const float* x, int64_t n, float* amax);
bool absmax_avx2(const float* x, int64_t n, float* amax);
bool absmax_avx512(const float* x, int64_t n, float* amax);
void quantize_row_scalar(const float* x, int64_t n, float s, int8_t* q);
void quantize_row_avx2(const float* x, int64_t n, float s, int8_t* q);
void quantize_row_avx512(const float* x, int64_t n, float s, int8_t* q);

}  // namespace qtune::kernels::idot
