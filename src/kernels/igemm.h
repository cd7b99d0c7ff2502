// kernels/igemm.h — integer inference: int8 activations × integer weights, int32 accumulation.
//
//   y[t, o] (+)= a_scale[t] · Σ_g w_scale[o, g] · ( Σ_{c∈g} xq[t, c]·code[o, c] − off[o, g]·Σ_{c∈g} xq[t, c] )
//
//   xq       int8 [n, in], values in [−127, 127] (quantize_activations makes them; igemm_zp
//            below also takes −128, with a per-token zero point)
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
// Σ_{c∈g} xq·code and `xsums[g]` = Σ_{c∈g} xq for the row's groups g = 0..ng−1. With an
// activation zero point (igemm_zp), `wsum[g]` = Σ_{c∈g} code − off[g]·len_g (igemm_wsum) and
// the token's `a_zero` add the term −a_zero·wsum[g]; wsum == nullptr: no term (igemm).
// Every path and the reference call this one function, so the order of the double operations
// — and y — are the same everywhere. With integral offsets every term is an integer < 2^53,
// exact in double; fractional offsets (Q4_1-like) are rounded, but identically in every path.
inline float igemm_combine(const int64_t* dots, const int64_t* xsums, const float* w_scale, const float* off,
                           int64_t ng, float a_scale, const double* wsum = nullptr, int32_t a_zero = 0) {
  double acc = 0.0;
  for (int64_t g = 0; g < ng; ++g) {
    double v = static_cast<double>(dots[g]) - static_cast<double>(off[g]) * static_cast<double>(xsums[g]);
    if (wsum) v -= static_cast<double>(a_zero) * wsum[g];
    acc += static_cast<double>(w_scale[g]) * v;
  }
  return static_cast<float>(acc * static_cast<double>(a_scale));
}

// wsum of one (row, group) from its exact code sum Σ_{c∈g} code over len_g columns: the one
// formula igemm_zp's paths and ref::igemm_zp use.
inline double igemm_wsum(int64_t code_sum, float off, int64_t len) {
  return static_cast<double>(code_sum) - static_cast<double>(off) * static_cast<double>(len);
}

// y[n, out] (+)= the formula above; OpenMP over rows of W; the loops of cpu_isa().
void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate);
// Same at an explicit level, isa_supported(isa): avx512vnni runs the VNNI loops (vpdpbusd),
// avx512bw the AVX-512BW ones, avx512f and avx2 the AVX2 ones. Tests and benchmarks force each
// level, e.g. the AVX-512BW loops on a VNNI CPU. All give bit-identical y.
void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate,
           Isa isa);

// Asymmetric b-bit activations (b = 2..8) carried in int8, per-token scale and zero point — the
// temporal activation LSQ quantizer of EfficientDM, x̂ = s·(clamp(round(x/s) + z, 0, 2^b − 1) − z):
//   u[t, c]         = clamp(round_half_away(x[t, c] / scale[t]) + zero[t], 0, 2^b − 1)
//   xq[t, c]        = u − 2^(b−1)  ∈ [−2^(b−1), 2^(b−1) − 1]   (int8; for b = 8 that is −128..127)
//   zero_carried[t] = zero[t] − 2^(b−1)        so x̂ = scale·(u − zero) = scale·(xq − zero_carried)
// x / scale is a true float division and std::round of it (as adapters/act_quant.cpp with
// T = float), so a float fake-quant of the same x gives the same integers. x [n, in],
// scale [n] (finite, > 0), zero [n] in [0, 2^b − 1], xq [n, in], zero_carried [n]. Non-finite x,
// a bad scale or zero, or bits outside 2..8 throw qtune::Error. Scalar; OpenMP over tokens.
void quantize_activations_asym(const float* x, int64_t n, int64_t in, const float* scale, const int32_t* zero,
                               int bits, int8_t* xq, int32_t* zero_carried);

// igemm with a per-token activation zero point a_zero [n] (zero_carried above; any int32):
//   y[t, o] (+)= a_scale[t] · Σ_g w_scale[o, g] · ( Σ_{c∈g} xq·code − off[o, g]·Σ_{c∈g} xq
//                                                   − a_zero[t]·Σ_{c∈g} (code − off[o, g]) )
//             = a_scale[t] · Σ_g w_scale[o, g] · Σ_{c∈g} (xq[t, c] − a_zero[t])·(code[o, c] − off[o, g])
// xq may be −128 (the loops assume |xq| ≤ 128). Same loops as igemm plus one pass of the code
// sums per tile; bit-identical on every path and to ref::igemm_zp. a_zero == nullptr is igemm.
void igemm_zp(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y,
              int64_t n, bool accumulate);
// Same at an explicit level, isa_supported(isa), as igemm.
void igemm_zp(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y,
              int64_t n, bool accumulate, Isa isa);

namespace ref {
// The scalar reference: plain loops, int64 sums, igemm_combine.
void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate);
// Same with the activation zero point (igemm_zp); wsum from igemm_wsum.
void igemm_zp(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y,
              int64_t n, bool accumulate);
}  // namespace ref

}  // namespace qtune::kernels
