// quant/quant.h — number formats; pure functions, no model knowledge. Spec: docs/METHODS.md §1.
//
// Uniform b-bit quantizer (b = 2..8, or 16), one scale per row or per group of `group` consecutive
// input elements of a row; asymmetric (unsigned q ∈ [0, 2^b−1], zero point z) or symmetric
// (signed q ∈ [−(2^(b−1)−1), 2^(b−1)−1], z = 0); range by min/max or MSE search
// (|ŵ−w|^2.4 over 80 shrink candidates). round = half away from zero.
//
// 16-bit codes exist for deployed integer weights whose values are products (IntLoRA-MUL at
// 8 bits: P = U_int ⊙ W_int needs up to 16 bits) — the same layout and value rule, wider codes.
#pragma once
#include <cmath>
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
  // A grid without 0 (mid-rise): levels Δ·(q − (L−1)/2), q ∈ [0, L−1], symmetric about 0,
  // Δ = 2·amax/(L−1); stored asymmetric with zero = (L−1)/2 (a half-integer). For IntLoRA,
  // whose multiplicative update can never move a weight whose integer is 0 (docs/METHODS.md §4.6).
  bool zero_free = false;
};

// True for the code widths QuantMatrix stores: 2..8 and 16.
inline bool quant_bits_supported(int bits) { return (bits >= 2 && bits <= 8) || bits == 16; }

// A quantized [rows, cols] matrix. Codes are stored as unsigned offsets (q for asymmetric,
// q + 2^(b−1) for symmetric) so one layout serves both; for bits <= 4 two codes are packed
// per byte (low nibble = even column), rows padded to whole bytes; bits 5..8 one byte per code;
// bits 16 two bytes per code (little-endian uint16).
//   value(r, c) = scale[r, g]·(code(r, c) − offset(r, g))      offset = zero (asym) or 2^(b−1) (sym)
struct QuantMatrix {
  QuantSpec spec;
  int64_t rows = 0, cols = 0;
  Buffer<uint8_t> codes;     // rows * row_bytes()
  Buffer<float> scale;       // rows * groups_per_row()   (Δ)
  Buffer<float> zero;        // rows * groups_per_row()   (z, integral; 0 for symmetric)

  int64_t group_size() const { return spec.group > 0 ? spec.group : cols; }
  int64_t groups_per_row() const { return cols > 0 ? (cols + group_size() - 1) / group_size() : 0; }
  int64_t row_bytes() const { return spec.bits <= 4 ? (cols + 1) / 2 : spec.bits <= 8 ? cols : 2 * cols; }
  // The stored unsigned code at (r, c), and writing one (the byte/nibble must not be shared
  // with another thread's column: rows are the unit of parallel writes).
  uint32_t code(int64_t r, int64_t c) const;
  void set_code(int64_t r, int64_t c, uint32_t code);
  // What is subtracted from a code of group (r, g): zero[r, g] (asymmetric) or 2^(b−1) (symmetric).
  float offset(int64_t r, int64_t g) const {
    return spec.symmetric ? static_cast<float>(1 << (spec.bits - 1)) : zero[r * groups_per_row() + g];
  }
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

// An all-zero-code matrix of the given format, scale 1 and zero 0 everywhere, for writers that
// fill codes, scales and zeros themselves (exact integer merges).
QuantMatrix empty_quant_matrix(int64_t rows, int64_t cols, const QuantSpec& spec);

// Fake-quantizes one row/group in place semantics: returns scale and zero for values x[n].
void choose_range(const float* x, int64_t n, const QuantSpec& spec, float* scale, float* zero);

// round half away from zero (docs/METHODS.md §0). std::round is exact; the classic
// (int)(v + 0.5) is not (0.49999997f + 0.5f rounds up to 1 in float).
inline float round_half_away(float v) { return std::round(v); }

}  // namespace qtune
