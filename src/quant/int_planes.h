// quant/int_planes.h — integer weights of any width as QuantMatrix planes the kernels can run.
//
// A deployed integer weight is W[r, c] = scale[r]·v[r, c] with an int32 v per element and one
// scale per row (IntLoRA-MUL: v = U_int ⊙ W_int, scale s̄; IntLoRA-SHIFT: v = sign·W_int·2^(k−kbase),
// scale 2^kbase). QuantMatrix codes are at most 16 bits wide, so v becomes:
//   |v| ≤ 127          one 8-bit symmetric plane   (code = v + 128)
//   |v| ≤ 32767        one 16-bit symmetric plane  (code = v + 32768)
//   |v| < 2^29         two 16-bit planes: lo ∈ [−2^14, 2^14) with v ≡ lo (mod 2^15), scale s, and
//                      hi = (v − lo) / 2^15 with scale s·2^15 (a power of two: exact)
// lo is centred, not v mod 2^15 ∈ [0, 2^15): a small negative v then stays in lo alone instead of
// becoming 2^15·s − (2^15 − |v|)·s, whose float evaluation cancels 15 bits. The integer sums
// of each plane are exact (kernels/igemm.h); adding the two planes' float results rounds once
// more.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/quant.h"

namespace qtune {

// v: [rows, cols] int32, row_scale: [rows]. Throws Error if some |v| ≥ 2^29.
std::vector<QuantMatrix> planes_from_integers(const int32_t* v, const float* row_scale, int64_t rows, int64_t cols);

// The exact integers of planes made by planes_from_integers (or any planes with integral
// offsets, per-row scales whose ratios to plane 0's are powers of two ≥ 1): v [rows, cols] and
// plane 0's row scales. Returns false (v, scale untouched) when the planes are not of that form
// or a value does not fit int32.
bool integers_from_planes(const std::vector<QuantMatrix>& planes, std::vector<int32_t>& v, std::vector<float>& scale);

// Rows [r0, r0 + n) of the weight Σ_p plane_p, dequantized: out [n, cols]. tmp holds n·cols
// floats when there is more than one plane (else it may be null).
void sum_planes(const std::vector<QuantMatrix>& planes, int64_t r0, int64_t n, float* out, float* tmp);

// The same weight in the narrowest codes: per group, code = v − min(v) with zero = −min(v), and
// the fewest bits (2..8, then 16) that hold every group's max − min. A reader of a wide integer
// layout (I8/I16) uses it so a 4-bit model stays 4-bit in memory. Returns m unchanged when an
// offset is not integral or no narrower width fits.
QuantMatrix narrowest_codes(const QuantMatrix& m);

}  // namespace qtune
