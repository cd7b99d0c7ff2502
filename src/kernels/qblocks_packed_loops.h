// kernels/qblocks_packed_loops.h — private to qblocks_packed.cpp: one row group of a
// PackedBlocks (qblocks_packed.h) against one token, the SIMD paths (qblocks_packed_simd.cpp).
//
//   acc[i] = Σ_b (scale[i, b]·d[b])·float(Σ_{c∈b} code[i, c]·xq[c] − off·isum[b])   i < 16
// b in order, no FMA (every path does the same float operations per row as the scalar loop in
// qblocks_packed.cpp); off = 2^(bits−1), isum[b] = Σ_{c∈b} xq[c].
#pragma once
#include <cstdint>

namespace qtune::kernels::qpack {

using GroupFn = void (*)(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum,
                         float* acc);

void group8_avx2(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc);
void group4_avx2(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc);
void group8_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc);
void group4_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc);

// kTokens tokens at once (xq [kTokens, ldx], d and isum [kTokens, ldb], acc [kTokens, 16]), each
// token's acc bit-identical to a group call on it alone: prefill's loop (VNNI only; the other
// levels call their group loop per token).
constexpr int kTokens = 8;
using TokensFn = void (*)(const uint8_t* rec, int64_t nb, const int8_t* xq, int64_t ldx, const float* d,
                          const int32_t* isum, int64_t ldb, float* acc);
void tokens8_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, int64_t ldx, const float* d, const int32_t* isum,
                  int64_t ldb, float* acc);
void tokens4_vnni(const uint8_t* rec, int64_t nb, const int8_t* xq, int64_t ldx, const float* d, const int32_t* isum,
                  int64_t ldb, float* acc);

}  // namespace qtune::kernels::qpack
