#include "core/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace qtune {

std::string shape_str(const Shape& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

int64_t first_non_finite(const float* p, int64_t n) {
  // Exponent bits all ones ⇔ NaN or Inf. OR-reduce a chunk branch-free, look closer only when
  // it has one.
  constexpr int64_t kChunk = 4096;
  for (int64_t i0 = 0; i0 < n; i0 += kChunk) {
    const int64_t i1 = std::min(n, i0 + kChunk);
    uint32_t bad = 0;
    for (int64_t i = i0; i < i1; ++i) {
      uint32_t u;
      std::memcpy(&u, p + i, sizeof u);
      bad |= uint32_t((u & 0x7f800000u) == 0x7f800000u);
    }
    if (bad)
      for (int64_t i = i0; i < i1; ++i)
        if (!std::isfinite(p[i])) return i;
  }
  return -1;
}

std::string index_str(const Shape& s, int64_t i) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = s[d] > 0 ? i % s[d] : 0;
    i = s[d] > 0 ? i / s[d] : 0;
  }
  return fmt::format("[{}]", fmt::join(idx, ", "));
}

}  // namespace qtune
