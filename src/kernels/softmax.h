// kernels/softmax.h — the row loops of a numerically stable softmax over a large vocabulary
// (the fused classifier + cross-entropy, models/llama_loss.cpp, and the tiles of nn/attention.cpp), SIMD by kernels/cpu_features.h.
//
//   row_max(z, n)            = max_j z[j]
//   exp_shift_sum(z, n, s):    z[j] ← exp(z[j] − s) for every j; returns Σ_j z[j]
//
// The SIMD exp is a degree-6 polynomial after range reduction (x = k·ln2 + r, |r| ≤ ln2/2; the
// Cephes expf coefficients): within 2 ulp of std::exp for x ≤ 0, the only inputs a stable softmax
// gives it (x below −87 returns exp(−87) ≈ 1.6e-38 instead of a denormal: nothing next to the
// row's maximum, which contributes 1). The scalar path is std::exp. Sums are in float lanes, so
// the levels differ by rounding (tests/kernels compares each with the scalar loop).
#pragma once
#include <cstdint>

#include "kernels/cpu_features.h"

namespace qtune::kernels {

float row_max(const float* z, int64_t n);
float exp_shift_sum(float* z, int64_t n, float shift);
// The same at an explicit level (isa_supported(isa) must hold): for tests and benchmarks.
float row_max(const float* z, int64_t n, Isa isa);
float exp_shift_sum(float* z, int64_t n, float shift, Isa isa);

}  // namespace qtune::kernels
