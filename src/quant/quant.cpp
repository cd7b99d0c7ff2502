// quant/quant.cpp — the uniform b-bit quantizer of docs/METHODS.md §1.
//
// Range: mn = min(min(w), 0), mx = max(max(w), 0) so that 0 is always representable and the
// zero point z = round(−mn/Δ) lies in [0, L−1]. MSE search shrinks both ends by (1 − 0.01 i),
// i = 0..79, and keeps the candidate with the lowest Σ|ŵ − w|^2.4 (i = 0 is the min/max range,
// so the search is never worse than min/max on that objective).
#include "quant/quant.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qtune {

namespace {

// Below this range the group is treated as all zero (Δ = 1, z = 0): no division by ~0.
constexpr float kTinyRange = 1e-30f;

int qmax_signed(int bits) { return (1 << (bits - 1)) - 1; }
int levels(int bits) { return 1 << bits; }

// Δ and z for the range [mn, mx] (mn <= 0 <= mx), asymmetric.
void asym_params(float mn, float mx, int bits, float* scale, float* zero) {
  if (!(mx - mn > kTinyRange)) {
    *scale = 1.0f;
    *zero = 0.0f;
    return;
  }
  const float L1 = static_cast<float>(levels(bits) - 1);
  *scale = (mx - mn) / L1;
  *zero = std::clamp(round_half_away(-mn / *scale), 0.0f, L1);
}

// Δ for max|w| = amax, symmetric (z = 0).
void sym_params(float amax, int bits, float* scale, float* zero) {
  *zero = 0.0f;
  *scale = amax > kTinyRange ? amax / static_cast<float>(qmax_signed(bits)) : 1.0f;
}

// Zero-free grid: Δ for max|w| = amax, zero = (L−1)/2.
void zero_free_params(float amax, int bits, float* scale, float* zero) {
  const float L1 = static_cast<float>(levels(bits) - 1);
  *zero = 0.5f * L1;
  *scale = amax > kTinyRange ? 2.0f * amax / L1 : 1.0f;
}

// The stored code of w on the zero-free grid: the nearest level, clamped.
inline int32_t zero_free_code(float w, float scale, float zero, int bits) {
  const float L1 = static_cast<float>(levels(bits) - 1);
  return static_cast<int32_t>(std::clamp(round_half_away(w / scale + zero), 0.0f, L1));
}

// Signed integer value (q − z) of w under (Δ, z): the clamp of docs/METHODS.md §1.2.
inline int32_t quant_int(float w, float scale, float zero, const QuantSpec& spec) {
  if (spec.symmetric) {
    const float qm = static_cast<float>(qmax_signed(spec.bits));
    return static_cast<int32_t>(std::clamp(round_half_away(w / scale), -qm, qm));
  }
  const float L1 = static_cast<float>(levels(spec.bits) - 1);
  const float q = std::clamp(round_half_away(w / scale) + zero, 0.0f, L1);
  return static_cast<int32_t>(q - zero);
}

// Σ |ŵ − w|^2.4 over x[n]; stops early once it exceeds `bound` (the best so far).
double lp_error(const float* x, int64_t n, float scale, float zero, const QuantSpec& spec, double bound) {
  double err = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float q = spec.zero_free ? static_cast<float>(zero_free_code(x[i], scale, zero, spec.bits)) - zero
                                   : static_cast<float>(quant_int(x[i], scale, zero, spec));
    const float e = scale * q - x[i];
    const float a = std::fabs(e);
    if (a > 0) err += static_cast<double>(a * a * std::pow(a, 0.4f));
    if (err > bound) return err;
  }
  return err;
}

void check_spec(const QuantSpec& spec) {
  QT_CHECK(quant_bits_supported(spec.bits), "quantizer: bits = {} is not supported (valid: 2..8, 16)", spec.bits);
  QT_CHECK(spec.group >= 0, "quantizer: group = {} is invalid (0 = per row, or a positive group size)",
           spec.group);
  QT_CHECK(!(spec.zero_free && spec.symmetric), "quantizer: the zero-free grid is already symmetric (drop --symmetric)");
}

}  // namespace

void choose_range(const float* x, int64_t n, const QuantSpec& spec, float* scale, float* zero) {
  float mn = 0.0f, mx = 0.0f;  // the range always includes 0
  for (int64_t i = 0; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  const float amax = std::max(-mn, mx);
  auto params = [&](float shrink, float* s, float* z) {
    if (spec.zero_free) zero_free_params(amax * shrink, spec.bits, s, z);
    else if (spec.symmetric) sym_params(amax * shrink, spec.bits, s, z);
    else asym_params(mn * shrink, mx * shrink, spec.bits, s, z);
  };
  params(1.0f, scale, zero);
  if (!spec.mse_search || n == 0) return;
  double best = lp_error(x, n, *scale, *zero, spec, HUGE_VAL);
  for (int i = 1; i < 80; ++i) {
    float s, z;
    params(1.0f - 0.01f * static_cast<float>(i), &s, &z);
    const double err = lp_error(x, n, s, z, spec, best);
    if (err < best) {  // strict: ties keep the wider (earlier) range
      best = err;
      *scale = s;
      *zero = z;
    }
  }
}

QuantMatrix quantize(const float* w, int64_t rows, int64_t cols, const QuantSpec& spec) {
  check_spec(spec);
  QT_CHECK(rows >= 0 && cols >= 0, "quantizer: invalid shape [{}, {}]", rows, cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    QT_CHECK(std::isfinite(w[i]), "quantizer: non-finite weight {} at row {}, column {}", w[i], i / cols, i % cols);
  QuantMatrix m = empty_quant_matrix(rows, cols, spec);  // every scale and zero is set below
  const int64_t gs = m.group_size(), ng = m.groups_per_row();
  // offset that turns the signed value q − z back into the stored unsigned code
  const int32_t sym_offset = spec.symmetric ? (1 << (spec.bits - 1)) : 0;
  // rows are independent: parallel, and deterministic whatever the thread count
#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      const float* x = w + r * cols;
      float s, z;
      choose_range(x + c0, c1 - c0, spec, &s, &z);
      m.scale[r * ng + g] = s;
      m.zero[r * ng + g] = z;
      for (int64_t c = c0; c < c1; ++c) {
        const int32_t v = spec.zero_free ? zero_free_code(x[c], s, z, spec.bits)
                                         : quant_int(x[c], s, z, spec) + (spec.symmetric ? sym_offset : static_cast<int32_t>(z));
        m.set_code(r, c, static_cast<uint32_t>(v));
      }
    }
  }
  return m;
}

QuantMatrix empty_quant_matrix(int64_t rows, int64_t cols, const QuantSpec& spec) {
  check_spec(spec);
  QT_CHECK(rows >= 0 && cols >= 0, "quantizer: invalid shape [{}, {}]", rows, cols);
  QuantMatrix m;
  m.spec = spec;
  m.rows = rows;
  m.cols = cols;
  m.codes.resize(static_cast<size_t>(rows * m.row_bytes()));
  m.scale.resize(static_cast<size_t>(rows * m.groups_per_row()));
  m.zero.resize(m.scale.size());
  for (auto& s : m.scale) s = 1.0f;
  return m;
}

uint32_t QuantMatrix::code(int64_t r, int64_t c) const {
  const uint8_t* row = codes.data() + r * row_bytes();
  if (spec.bits <= 4) return (row[c / 2] >> ((c & 1) * 4)) & 0xF;
  if (spec.bits <= 8) return row[c];
  return static_cast<uint32_t>(row[2 * c]) | (static_cast<uint32_t>(row[2 * c + 1]) << 8);
}

void QuantMatrix::set_code(int64_t r, int64_t c, uint32_t v) {
  QT_ASSERT(v < (1u << spec.bits));
  uint8_t* row = codes.data() + r * row_bytes();
  if (spec.bits <= 4) {
    const int shift = (c & 1) * 4;  // low nibble = even column
    row[c / 2] = static_cast<uint8_t>((row[c / 2] & ~(0xF << shift)) | (v << shift));
  } else if (spec.bits <= 8) {
    row[c] = static_cast<uint8_t>(v);
  } else {
    row[2 * c] = static_cast<uint8_t>(v & 0xFF);
    row[2 * c + 1] = static_cast<uint8_t>(v >> 8);
  }
}

int32_t QuantMatrix::int_value(int64_t r, int64_t c) const {
  const int32_t q = static_cast<int32_t>(code(r, c));
  if (spec.symmetric) return q - (1 << (spec.bits - 1));
  return q - static_cast<int32_t>(zero[r * groups_per_row() + c / group_size()]);
}

float QuantMatrix::value(int64_t r, int64_t c) const {
  const int64_t g = c / group_size();
  return scale[r * groups_per_row() + g] * (static_cast<float>(code(r, c)) - offset(r, g));
}

// out[nr, cols] = Δ·(q − z) for rows [r0, r0 + nr); walks group by group so the scale and
// offset are read once per group and the codes once per byte. The offset is a float: zero
// points of qtune's own matrices are integral (then q − z is exact), but a Q4_1 block read
// from another tool's file has z = −m/d, not necessarily an integer.
template <class T>
static void dequantize_impl(const QuantMatrix& m, int64_t r0, int64_t nr, T* out) {
  QT_ASSERT(r0 >= 0 && nr >= 0 && r0 + nr <= m.rows);
  const int64_t gs = m.group_size(), ng = m.groups_per_row(), rb = m.row_bytes(), cols = m.cols;
  for (int64_t i = 0; i < nr; ++i) {
    const int64_t r = r0 + i;
    const uint8_t* code = m.codes.data() + r * rb;
    T* o = out + i * cols;
    for (int64_t g = 0; g < ng; ++g) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      const float s = m.scale[r * ng + g];
      const float off = m.offset(r, g);
      auto v = [&](uint32_t q) { return static_cast<T>(s * (static_cast<float>(q) - off)); };
      if (m.spec.bits <= 4) {
        int64_t c = c0;
        if (c & 1) o[c] = v(code[c / 2] >> 4), ++c;  // odd start
        for (; c + 2 <= c1; c += 2) {  // one byte = two columns
          const uint8_t b = code[c / 2];
          o[c] = v(b & 0xF);
          o[c + 1] = v(b >> 4);
        }
        if (c < c1) o[c] = v(code[c / 2] & 0xF);
      } else if (m.spec.bits <= 8) {
        for (int64_t c = c0; c < c1; ++c) o[c] = v(code[c]);
      } else {
        for (int64_t c = c0; c < c1; ++c) o[c] = v(static_cast<uint32_t>(code[2 * c]) | (uint32_t(code[2 * c + 1]) << 8));
      }
    }
  }
}

void QuantMatrix::dequantize_rows(int64_t r0, int64_t nr, float* out) const { dequantize_impl(*this, r0, nr, out); }
void QuantMatrix::dequantize_rows(int64_t r0, int64_t nr, double* out) const { dequantize_impl(*this, r0, nr, out); }

}  // namespace qtune
