// kernels/qdot_blocks_loops.h — private to qdot_blocks.cpp: the exact block dots of its SIMD
// paths (qdot_blocks_simd.cpp, per-function target attributes).
//
// One call: 4 weight rows w[i] (codes as stored: ≤4-bit packed two per byte, low nibble = even
// column; else one byte per code) against one token's xq [nb·32], block by block:
//   u[b·kTileRows + i] = Σ_{c∈b} code[i, c]·xq[c]     (exact int32: |·| ≤ 255·127·32)
// isum[b] = Σ_{c∈b} xq[c] (the AVX2 8-bit loops multiply re-centred codes and add 128·isum back).
#pragma once
#include <cstdint>

namespace qtune::kernels::qblk {

constexpr int kRows = 4;       // weight rows per call
constexpr int kTileRows = 16;  // rows per tile (the stride of u)

using DotsFn = void (*)(const uint8_t* const* w, const int8_t* x, const int32_t* isum, int64_t nb, int32_t* u);

void dots4_avx2(const uint8_t* const* w, const int8_t* x, const int32_t* isum, int64_t nb, int32_t* u);
void dots8_avx2(const uint8_t* const* w, const int8_t* x, const int32_t* isum, int64_t nb, int32_t* u);
void dots4_vnni(const uint8_t* const* w, const int8_t* x, const int32_t* isum, int64_t nb, int32_t* u);
void dots8_vnni(const uint8_t* const* w, const int8_t* x, const int32_t* isum, int64_t nb, int32_t* u);

// A tile's weight scales (and zero points, when zero != nullptr) by block, rows as lanes:
//   sc[b·kTileRows + i] = scale[row_i·ng + b / bpg],  of[...] = zero[...],  row_i = min(i, nr − 1)
// with scale, zero pointing at the tile's first row. Data movement only: every version (the
// scalar loops in qdot_blocks.cpp, AVX2 and AVX-512 gathers) writes the same floats.
using GatherFn = void (*)(const float* scale, const float* zero, int64_t ng, int64_t bpg, int64_t nb, int64_t nr,
                          float* sc, float* of);
void gather_avx2(const float* scale, const float* zero, int64_t ng, int64_t bpg, int64_t nb, int64_t nr, float* sc,
                 float* of);
void gather_avx512(const float* scale, const float* zero, int64_t ng, int64_t bpg, int64_t nb, int64_t nr, float* sc,
                   float* of);

// quantize_blocks (qdot_blocks.h) for one row, AVX-512F: the same bytes as the scalar loop.
bool quantize_blocks_avx512(const float* x, int64_t in, int8_t* xq, float* d, int32_t* isum);

}  // namespace qtune::kernels::qblk
