// quant/int_planes.cpp — int32 weights ↔ QuantMatrix planes (see int_planes.h).
#include "quant/int_planes.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace qtune {

namespace {

constexpr int32_t kLoBits = 15;
constexpr int64_t kMaxAbs = int64_t{1} << 29;

QuantMatrix symmetric_plane(int64_t rows, int64_t cols, int bits, const float* row_scale, float factor) {
  QuantSpec spec;
  spec.bits = bits;
  spec.symmetric = true;
  QuantMatrix m = empty_quant_matrix(rows, cols, spec);
  for (int64_t r = 0; r < rows; ++r) m.scale[r] = row_scale[r] * factor;
  return m;
}

}  // namespace

std::vector<QuantMatrix> planes_from_integers(const int32_t* v, const float* row_scale, int64_t rows, int64_t cols) {
  int64_t amax = 0;
  for (int64_t i = 0; i < rows * cols; ++i) amax = std::max<int64_t>(amax, std::llabs(v[i]));
  QT_CHECK(amax < kMaxAbs, "integer weight: |value| {} does not fit 29 bits", amax);
  std::vector<QuantMatrix> planes;
  if (amax <= 32767) {
    const int bits = amax <= 127 ? 8 : 16;
    const int32_t off = 1 << (bits - 1);
    planes.push_back(symmetric_plane(rows, cols, bits, row_scale, 1.0f));
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) planes[0].set_code(r, c, static_cast<uint32_t>(v[r * cols + c] + off));
    return planes;
  }
  planes.push_back(symmetric_plane(rows, cols, 16, row_scale, 1.0f));
  planes.push_back(symmetric_plane(rows, cols, 16, row_scale, static_cast<float>(1 << kLoBits)));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int32_t x = v[r * cols + c];
      const int32_t half = 1 << (kLoBits - 1);
      const int32_t lo = ((x + half) & ((1 << kLoBits) - 1)) - half;  // ≡ x (mod 2^15), in [−2^14, 2^14)
      const int32_t hi = (x - lo) >> kLoBits;                         // exact: x − lo is a multiple of 2^15
      planes[0].set_code(r, c, static_cast<uint32_t>(lo + 32768));
      planes[1].set_code(r, c, static_cast<uint32_t>(hi + 32768));
    }
  return planes;
}

bool integers_from_planes(const std::vector<QuantMatrix>& planes, std::vector<int32_t>& v, std::vector<float>& scale) {
  if (planes.empty()) return false;
  const QuantMatrix& p0 = planes[0];
  const int64_t rows = p0.rows, cols = p0.cols;
  // shift[p][r]: log2 of plane p's scale over plane 0's, per row
  std::vector<std::vector<int>> shift(planes.size(), std::vector<int>(static_cast<size_t>(rows), 0));
  for (size_t p = 0; p < planes.size(); ++p) {
    const QuantMatrix& m = planes[p];
    if (m.rows != rows || m.cols != cols || m.groups_per_row() != 1) return false;
    for (int64_t r = 0; r < rows; ++r) {
      const float off = m.offset(r, 0);
      if (off != std::floor(off)) return false;
      if (p == 0) continue;
      const double ratio = static_cast<double>(m.scale[r]) / static_cast<double>(p0.scale[r]);
      int e = 0;
      if (!(ratio >= 1.0) || std::frexp(ratio, &e) != 0.5 || e - 1 > 30) return false;
      shift[p][r] = e - 1;
    }
  }
  std::vector<int32_t> out(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      int64_t x = 0;
      for (size_t p = 0; p < planes.size(); ++p) {
        const int64_t q = static_cast<int64_t>(planes[p].code(r, c)) - static_cast<int64_t>(planes[p].offset(r, 0));
        x += q * (int64_t{1} << shift[p][r]);
      }
      if (x < INT32_MIN || x > INT32_MAX) return false;
      out[r * cols + c] = static_cast<int32_t>(x);
    }
  v = std::move(out);
  scale.assign(p0.scale.begin(), p0.scale.end());
  return true;
}

QuantMatrix narrowest_codes(const QuantMatrix& m) {
  const int64_t ng = m.groups_per_row(), gs = m.group_size();
  std::vector<int32_t> lo(static_cast<size_t>(m.rows * ng), INT32_MAX), hi(lo.size(), INT32_MIN);
  int64_t span = 0;
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t g = 0; g < ng; ++g) {
      const float off = m.offset(r, g);
      if (off != std::floor(off)) return m;
      int32_t& a = lo[r * ng + g];
      int32_t& b = hi[r * ng + g];
      for (int64_t c = g * gs; c < std::min(m.cols, (g + 1) * gs); ++c) {
        const int32_t v = static_cast<int32_t>(m.code(r, c)) - static_cast<int32_t>(off);
        a = std::min(a, v);
        b = std::max(b, v);
      }
      span = std::max<int64_t>(span, int64_t{b} - a);
    }
  int bits = 2;
  while (bits < 8 && span > (int64_t{1} << bits) - 1) ++bits;
  if (span > 255) bits = 16;
  if (bits >= m.spec.bits) return m;
  QuantSpec spec = m.spec;
  spec.bits = bits;
  spec.symmetric = false;
  spec.zero_free = false;
  QuantMatrix n = empty_quant_matrix(m.rows, m.cols, spec);
  n.scale = m.scale;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t g = 0; g < ng; ++g) {
      const int32_t off = static_cast<int32_t>(m.offset(r, g)), mn = lo[r * ng + g];
      n.zero[r * ng + g] = static_cast<float>(-mn);
      for (int64_t c = g * gs; c < std::min(m.cols, (g + 1) * gs); ++c)
        n.set_code(r, c, static_cast<uint32_t>(static_cast<int32_t>(m.code(r, c)) - off - mn));
    }
  return n;
}

void sum_planes(const std::vector<QuantMatrix>& planes, int64_t r0, int64_t n, float* out, float* tmp) {
  QT_CHECK(!planes.empty(), "sum_planes: no planes");
  planes[0].dequantize_rows(r0, n, out);
  const int64_t m = n * planes[0].cols;
  for (size_t p = 1; p < planes.size(); ++p) {
    planes[p].dequantize_rows(r0, n, tmp);
    for (int64_t i = 0; i < m; ++i) out[i] += tmp[i];
  }
}

}  // namespace qtune
