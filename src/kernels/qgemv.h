// kernels/qgemv.h — the single-token product with a ≤4-bit packed weight (generation):
//   y[out] (+)= deq(W)[out, in] · x[in]
// fused: nibbles are unpacked and multiplied in registers, never written out as floats.
//   y[o] = Σ_g Δ_og·(Σ_{c∈g} q_oc·x_c − off_og·Σ_{c∈g} x_c)      off = z (asym) or 2^(b−1) (sym)
// The SIMD variant is picked at run time from the CPU (the binary runs on any x86-64).
#pragma once
#include <cstdint>

#include "quant/quant.h"

namespace qtune::kernels {

enum class SimdPath { scalar, avx2, avx512 };

// The best path this CPU supports (checked once).
SimdPath best_simd_path();
bool simd_path_supported(SimdPath p);

// W.spec.bits <= 4. Uses best_simd_path().
void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate);
// Same with an explicit path (tests compare every supported path to the scalar one).
void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate, SimdPath path);

// Σ_{c ∈ [c0, c1)} q_c·x_c over one packed row (low nibble = even column); one per path.
float qdot4_scalar(const uint8_t* codes, const float* x, int64_t c0, int64_t c1);
float qdot4_avx2(const uint8_t* codes, const float* x, int64_t c0, int64_t c1);
float qdot4_avx512(const uint8_t* codes, const float* x, int64_t c0, int64_t c1);

// Σ_g Δ_g·Σ_{c∈g} q_c·x_c over one packed row of `in` columns in groups of gs (scale: the
// row's Δ per group), one reduction per row; needs gs % 8 == 0 (avx2) / gs % 16 == 0 (avx512).
float qrow4_avx2(const uint8_t* codes, const float* x, const float* scale, int64_t in, int64_t gs);
float qrow4_avx512(const uint8_t* codes, const float* x, const float* scale, int64_t in, int64_t gs);

}  // namespace qtune::kernels
