// kernels/vexp.h — the exponentials of a softmax row (attention's tiles, nn/attention.cpp):
//   x[i] = exp(x[i] − shift) for i < n, returning Σ x[i].
// Scalar: std::exp. AVX2 (every level from avx2 up, kernels/cpu_features.h): 8 lanes of the
// Cephes polynomial (range reduction by ln 2 in two parts, degree 5 + 1 + r; about 2 ulp), and
// x − shift below −87.3 gives 0 (std::exp: a subnormal or 0) and above 88 saturates at e^88 (a
// softmax shifts by the max, so its arguments are ≤ 0); the sum is taken
// in 8 lanes, so it differs from the scalar order by rounding only.
#pragma once
#include <cstdint>

#include "kernels/cpu_features.h"

namespace qtune::kernels {

float exp_shift_sum(float* x, int64_t n, float shift);            // the level of cpu_isa()
float exp_shift_sum(float* x, int64_t n, float shift, Isa isa);   // an explicit level (tests)

}  // namespace qtune::kernels
