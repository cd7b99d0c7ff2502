// kernels/igemm.h — integer inference: int8 activations × integer weights, int32 accumulation.
//
//   y[t, o] (+)= a_scale[t] · Σ_g w_scale[o, g] · ( Σ_{c∈g} xq[t, c]·code[o, c] − off[o, g]·Σ_{c∈g} xq[t, c] )
//
//   xq       int8 [n, in], values in [−127, 127] (quantize_activations makes them)
//   a_scale  [n]: one scale per token (dynamic), or the same value for every token (static)
//   W        QuantMatrix [out, in] (quant/quant.h): codes of 2..8 bits (≤4 packed two per byte)
//            or 16 bits; off = W.offset(o, g) (zero point, or 2^(b−1) when symmetric)
//
// Exactness: every integer sum (Σ xq·code and Σ xq per group) is exact — int32 accumulation
// in chunks short enough that they cannot overflow (|xq·code| ≤ 127·65535 for 16-bit codes),
// chunks added in int64. The float combination of the exact integers is ONE function
// (igemm_combine below) shared by every path, so the AVX-512 VNNI, AVX2 and scalar paths give
// bit-identical y for the same inputs, whatever the thread count.
#pragma once
#include <cstdint>

#include "kernels/cpu_features.h"
#include "quant/quant.h"

namespace qtune::kernels {

// x [n, in] → xq int8 [n, in], scale [n]:
//   static_scale > 0: scale[t] = static_scale for every token (a calibrated per-tensor scale);
//   static_scale == 0: per-token dynamic, scale[t] = max_c |x[t, c]| / 127 (1 when the row is 0).
//   xq[t, c] = clamp(round_half_away(x[t, c] / scale[t]), −127, 127)   (a true division, so the
// training fake-quant x̂ = s·clamp(round(x / s)) of the same x produces the same integers).
void quantize_activations(const float* x, int64_t n, int64_t in, float static_scale, int8_t* xq, float* scale);
// Same at an explicit level, isa_supported(isa) (all give the same integers; tests compare
// them). Non-finite x or a negative / non-finite static_scale throw qtune::Error.
void quantize_activations(const float* x, int64_t n, int64_t in, float static_scale, int8_t* xq, float* scale,
                          Isa isa);

// Combines the exact integer sums of one (token, row) into the output value. `dots[g]` =
// Σ_{c∈g} xq·code and `xsums[g]` = Σ_{c∈g} xq for the row's groups g = 0..ng−1.
inline float igemm_combine(const int64_t* dots, const int64_t* xsums, const float* w_scale, const float* off,
                           int64_t ng, float a_scale) {
  double acc = 0.0;
  for (int64_t g = 0; g < ng; ++g)
    acc += static_cast<double>(w_scale[g]) *
           (static_cast<double>(dots[g]) - static_cast<double>(off[g]) * static_cast<double>(xsums[g]));
  return static_cast<float>(acc * static_cast<double>(a_scale));
}

// y[n, out] (+)= the formula above; OpenMP over rows of W; the loops of cpu_isa().
void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate);
// Same at an explicit level, isa_supported(isa): avx512vnni runs the VNNI loops (vpdpbusd),
// avx512bw the AVX-512BW ones, avx512f and avx2 the AVX2 ones. Tests and benchmarks force each
// level, e.g. the AVX-512BW loops on a VNNI CPU. All give bit-identical y.
void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate,
           Isa isa);

namespace ref {
// The scalar reference: plain loops, int64 sums, igemm_combine.
void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate);
}  // namespace ref

}  // namespace qtune::kernels
