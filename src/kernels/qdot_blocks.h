// kernels/qdot_blocks.h — the decode product on block-quantized weights (llama.cpp's scheme):
//   y[t, o] (+)= Σ_b (w_scale[o, g(b)]·d[t, b]) · (Σ_{c∈b} code[o, c]·xq[t, c] − off[o, g(b)]·Σ_{c∈b} xq[t, c])
// b runs over blocks of 32 input columns, g(b) is the weight group holding block b.
//
//   activations  x[t] is quantized per block of 32 (as llama.cpp's Q8_0 activations):
//                d[t, b] = max_{c∈b} |x[t, c]| / 127,  xq = round_half_away(x / d) ∈ [−127, 127]
//                (an all-zero block: d = 0, xq = 0)
//   W            QuantMatrix [out, in] (quant/quant.h) with 2..8-bit codes, group a multiple of
//                32 (or per row), in a multiple of the group: Q8_0 (8-bit symmetric), Q4_0
//                (4-bit symmetric), Q4_1 (4-bit asymmetric) as io/gguf_int.h loads them.
//
// Exactness: each block's Σ code·xq and Σ xq is an exact integer on every path (scalar, AVX2
// maddubs, AVX-512 VNNI vpdpbusd); the float combination of the exact integers is ONE function
// shared by every path, so all paths give bit-identical y for the same x, whatever the thread
// count. The only approximation against the float product x·deq(W)ᵀ is the activation rounding
// (|x − d·xq| ≤ d/2 per element).
#pragma once
#include <cstdint>

#include "kernels/cpu_features.h"
#include "quant/quant.h"

namespace qtune::kernels {

constexpr int64_t kQBlock = 32;  // activation block (columns)

// True when W can run on qgemv_blocks (the conditions above).
bool qblocks_supported(const QuantMatrix& W);

// y[n, out] (+)= x[n, in] · deq(W)ᵀ with x quantized per block as above; for few rows n
// (decode). qblocks_supported(W) must hold. Non-finite x throws qtune::Error. OpenMP over
// rows of W; the loops of cpu_isa().
void qgemv_blocks(const float* x, const QuantMatrix& W, float* y, int64_t n, bool accumulate);
// Same at an explicit level, isa_supported(isa): avx512vnni runs vpdpbusd loops, avx2 /
// avx512f / avx512bw the AVX2 ones. All give bit-identical y.
void qgemv_blocks(const float* x, const QuantMatrix& W, float* y, int64_t n, bool accumulate, Isa isa);

// The same product for activations already in int8 with one scale per token (igemm's
// quantize_activations: W·A8 inference), d[t, b] = a_scale[t]: the exact integers of
// kernels::igemm, combined in float here (igemm: in double), so y agrees with igemm to float
// rounding. xq in [−127, 127].
void qgemv_blocks_int8(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n,
                       bool accumulate);
void qgemv_blocks_int8(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n,
                       bool accumulate, Isa isa);

// The activation rounding above for one row x[in] (in a multiple of 32): xq [in], d [in/32],
// isum [in/32] = Σ_{c∈b} xq. Returns false when some x is not finite.
bool quantize_blocks(const float* x, int64_t in, int8_t* xq, float* d, int32_t* isum);
// Same at an explicit level (avx512f and up: AVX-512 loops; below: the scalar ones), the same
// bytes on every level (tests compare them).
bool quantize_blocks(const float* x, int64_t in, int8_t* xq, float* d, int32_t* isum, Isa isa);

}  // namespace qtune::kernels
