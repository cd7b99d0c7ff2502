// kernels/qgemv.h — the single-token product with a ≤4-bit packed weight (generation):
//   y[out] (+)= deq(W)[out, in] · x[in]
// fused: nibbles are unpacked and multiplied in registers, never written out as floats.
//   y[o] = Σ_g Δ_og·(Σ_{c∈g} q_oc·x_c − off_og·Σ_{c∈g} x_c)      off = z (asym) or 2^(b−1) (sym)
// The SIMD variant is picked at run time from the CPU (kernels/cpu_features.h).
#pragma once
#include <cstdint>

#include "kernels/cpu_features.h"
#include "quant/quant.h"

namespace qtune::kernels {

// W.spec.bits <= 4. Uses cpu_isa().
void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate);
// Same at an explicit level, isa_supported(isa) (tests compare every supported level to scalar).
void qgemv4(const float* x, const QuantMatrix& W, float* y, bool accumulate, Isa isa);

// Σ_{c ∈ [c0, c1)} q_c·x_c over one packed row (low nibble = even column); one per path.
float qdot4_scalar(const uint8_t* codes, const float* x, int64_t c0, int64_t c1);
float qdot4_avx2(const uint8_t* codes, const float* x, int64_t c0, int64_t c1);
float qdot4_avx512(const uint8_t* codes, const float* x, int64_t c0, int64_t c1);

// Σ_g Δ_g·Σ_{c∈g} q_c·x_c over one packed row of `in` columns in groups of gs (scale: the
// row's Δ per group), one reduction per row; needs gs % 8 == 0 (avx2) / gs % 16 == 0 (avx512).
float qrow4_avx2(const uint8_t* codes, const float* x, const float* scale, int64_t in, int64_t gs);
float qrow4_avx512(const uint8_t* codes, const float* x, const float* scale, int64_t in, int64_t gs);

}  // namespace qtune::kernels
