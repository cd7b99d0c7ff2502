// quant/quant.h — number formats; pure functions, no model knowledge. Spec: METHODS.md §1.
//
// Uniform b-bit quantizer (b = 2..8), one scale per row or per group of `group` consecutive
// input elements of a row; asymmetric (unsigned q ∈ [0, 2^b−1], zero point z) or symmetric
// (signed q ∈ [−(2^(b−1)−1), 2^(b−1)−1], z = 0); range by min/max or MSE search
// (|ŵ−w|^2.4 over 80 shrink candidates). round = half away from zero.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/buffer.h"

namespace qtune {

struct QuantSpec {
  int bits = 4;
  int group = 0;             // 0 = per row
  bool symmetric = false;
  bool mse_search = false;   // false = min/max range
};

// A quantized [rows, cols] matrix. Codes are stored as unsigned offsets (q for asymmetric,
// q + 2^(b−1) for symmetric) so one layout serves both; for bits <= 4 two codes are packed
// per byte (low nibble = even column), rows padded to whole bytes.
struct QuantMatrix {
  QuantSpec spec;
  int64_t rows = 0, cols = 0;
  Buffer<uint8_t> codes;     // rows * row_bytes()
  Buffer<float> scale;       // rows * groups_per_row()   (Δ)
  Buffer<float> zero;        // rows * groups_per_row()   (z, integral; 0 for symmetric)

  int64_t group_size() const { return spec.group > 0 ? spec.group : cols; }
  int64_t groups_per_row() const { return (cols + group_size() - 1) / group_size(); }
  int64_t row_bytes() const { return spec.bits <= 4 ? (cols + 1) / 2 : cols; }
  // signed integer value (q − z) at (r, c)
  int32_t int_value(int64_t r, int64_t c) const;
  float value(int64_t r, int64_t c) const;  // Δ·(q − z)
  // Dequantize rows [r0, r0+nr) into out[nr, cols] (the tile-by-tile path of the GEMM).
  void dequantize_rows(int64_t r0, int64_t nr, float* out) const;
  void dequantize_rows(int64_t r0, int64_t nr, double* out) const;
  int64_t bytes() const { return static_cast<int64_t>(codes.size() + 4 * scale.size() + 4 * zero.size()); }
};

// Quantizes w[rows, cols] (row-major).
QuantMatrix quantize(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec);

// Fake-quantizes one row/group in place semantics: returns scale and zero for values x[n].
void choose_range(const float* x, int64_t n, const QuantSpec& spec, float* scale, float* zero);

// round half away from zero (METHODS.md convention)
inline float round_half_away(float v) { return v < 0 ? -static_cast<float>(static_cast<int64_t>(-v + 0.5f))
                                                     : static_cast<float>(static_cast<int64_t>(v + 0.5f)); }

}  // namespace qtune
