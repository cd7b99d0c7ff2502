// quant/gse.cpp — the GSE-INT codec and its spec strings (contract: gse.h).
//
// Exactness: every step is exact integer or power-of-two arithmetic. The exponent comes from
// ilogb / ldexp comparisons (log2 of a float rounds, and a ceil or floor of a rounded log2 is
// off by one at powers of two); x / 2^e is x · ldexp(1, −e) in double (a float times a power of
// two in [2^−127, 2^155] never leaves double's normal range); rounding is std::round (half away
// from zero) or the stochastic rule below, both exact on doubles. The hot path (nearest rounding,
// 2^−e a normal float) does the same in float SIMD lanes, exactly (round_group_nearest); decode
// multiplies m by the float 2^e, exact wherever 2^e is a float.
#include "quant/gse.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace qtune {

namespace {

constexpr int kGroups[] = {16, 32, 64, 128};

// Stochastic rounding of v ≠ ±0: sign(v)·floor(|v| + u), u = (hash >> 11)·2^−53 ∈ [0, 1).
// floor(|v| + u) is evaluated as fl + (u < frac) with fl = floor(|v|), frac = |v| − fl (both
// exact): the same as floor(|v| + u) with the sum taken exactly — a rounded double sum could
// round up across an integer (|v| = 3 + 2^−50, u = 1 − 2^−53). P(round up) = frac up to u's
// 2^−53 granularity, so E[result] = v (unbiased) wherever no clamp applies.
inline double stochastic_round(double v, uint64_t seed, uint64_t index) {
  const double u = static_cast<double>(Rng::hash(seed, index) >> 11) * 0x1p-53;
  const double a = std::fabs(v), fl = std::floor(a), frac = a - fl;
  const double r = fl + (u < frac ? 1.0 : 0.0);
  return v < 0 ? -r : r;
}

// Nearest rounding of one group in float, for exponents whose 2^−e is a normal float
// (e ∈ [−126, 126]): v = x·2^−e is then exact (a float times a normal power of two; a product
// that falls below 2^−126 is ≪ ½ and rounds to 0 either way), and half away from zero is
// t + (f ≥ ½) − (f ≤ −½) with t = v truncated (conversion to int32: |v| ≤ Qmax + 1) and f = v − t
// (exact). The same integer as std::round of the exact double v, with no libm call, so the loop
// is SIMD.
void round_group_nearest(const float* x, int64_t n, int e, int qmax, int8_t* m) {
  const float inv = std::bit_cast<float>(static_cast<uint32_t>(127 - e) << 23);  // 2^−e, a normal float
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) {
    const float v = x[c] * inv;
    const int32_t t = static_cast<int32_t>(v);
    const float f = v - static_cast<float>(t);
    int32_t r = t + (f >= 0.5f ? 1 : 0) - (f <= -0.5f ? 1 : 0);
    r = r > qmax ? qmax : (r < -qmax ? -qmax : r);
    m[c] = static_cast<int8_t>(r);
  }
}

// max |x[c0..c1)|, or −1 when an element is not finite.
float group_amax(const float* x, int64_t c0, int64_t c1) {
  float amax = 0.0f;
  bool finite = true;
#pragma omp simd reduction(max : amax) reduction(&& : finite)
  for (int64_t c = c0; c < c1; ++c) {
    const float a = std::fabs(x[c]);
    amax = std::max(amax, a);
    finite = finite && a <= FLT_MAX;  // false for inf and NaN
  }
  return finite ? amax : -1.0f;
}

// One row x[cols] → mantissas m[stride] (the padding stays as it is: zero) and exps[ng].
// Returns the first column holding a non-finite value, or −1.
int64_t encode_row(const float* x, int64_t cols, int64_t row, const GseSpec& spec, int8_t* m, int16_t* exps) {
  const int64_t G = spec.group;
  const double qmax = spec.qmax();
  const bool stochastic = spec.rounding == GseRounding::stochastic;
  for (int64_t c0 = 0, g = 0; c0 < cols; c0 += G, ++g) {
    const int64_t c1 = std::min(cols, c0 + G);
    const float amax = group_amax(x, c0, c1);
    if (amax < 0.0f)
      for (int64_t c = c0; c < c1; ++c)
        if (!std::isfinite(x[c])) return c;
    if (amax == 0.0f) {  // all zero: e = emin, m = 0 (and no 2^−emin, which may overflow for E = 16)
      exps[g] = static_cast<int16_t>(spec.emin());
      std::fill(m + c0, m + c1, int8_t(0));
      continue;
    }
    const int e = gse_exponent(amax, spec);
    exps[g] = static_cast<int16_t>(e);
    if (!stochastic && e >= -126 && e <= 126) {
      round_group_nearest(x + c0, c1 - c0, e, spec.qmax(), m + c0);
      continue;
    }
    const double inv = std::ldexp(1.0, -e);  // exact: e ∈ [−155, 127] for a nonzero float group
    for (int64_t c = c0; c < c1; ++c) {
      const double v = static_cast<double>(x[c]) * inv;
      const double r = stochastic ? stochastic_round(v, spec.seed, static_cast<uint64_t>(row * cols + c))
                                  : std::round(v);
      m[c] = static_cast<int8_t>(std::clamp(r, -qmax, qmax));
    }
  }
  return -1;
}

// "123" → 123; false for anything else (sign, spaces, overflow, empty).
bool parse_int(std::string_view v, int& out) {
  const char* end = v.data() + v.size();
  auto [p, ec] = std::from_chars(v.data(), end, out);
  return !v.empty() && v[0] != '-' && v[0] != '+' && ec == std::errc() && p == end;
}

// One "key=value" item into spec; `seen` records the keys already given.
void parse_item(std::string_view item, GseSpec& spec, std::vector<std::string_view>& seen) {
  const size_t eq = item.find('=');
  QT_CHECK(!item.empty(), "an empty item (two commas, or a comma at an end)");
  QT_CHECK(eq != std::string_view::npos, "item '{}' is not key=value", excerpt(item));
  const std::string_view key = item.substr(0, eq), val = item.substr(eq + 1);
  QT_CHECK(std::find(seen.begin(), seen.end(), key) == seen.end(), "key '{}' is given twice", excerpt(key));
  seen.push_back(key);
  if (key == "b" || key == "g" || key == "e") {
    int x = 0;
    QT_CHECK(parse_int(val, x), "{} = '{}' is not a positive integer", key, excerpt(val));
    (key == "b" ? spec.bits : key == "g" ? spec.group : spec.exp_bits) = x;
  } else if (key == "rule") {
    QT_CHECK(val == "ceil" || val == "mx", "rule = '{}' is not an exponent rule (ceil or mx)", excerpt(val));
    spec.rule = val == "mx" ? GseRule::mx : GseRule::ceil;
  } else if (key == "round") {
    QT_CHECK(val == "nearest" || val == "stochastic", "round = '{}' is not a rounding (nearest or stochastic)",
             excerpt(val));
    spec.rounding = val == "stochastic" ? GseRounding::stochastic : GseRounding::nearest;
  } else {
    fail("unknown key '{}' (keys: b, g, e, rule, round)", excerpt(key));
  }
}

}  // namespace

void validate(const GseSpec& spec) {
  QT_CHECK(spec.bits >= 4 && spec.bits <= 8, "b = {} is out of range (mantissa bits, sign included: 4..8)", spec.bits);
  QT_CHECK(std::find(std::begin(kGroups), std::end(kGroups), spec.group) != std::end(kGroups),
           "g = {} is not a supported group size (16, 32, 64 or 128)", spec.group);
  QT_CHECK(spec.exp_bits >= 4 && spec.exp_bits <= 16, "e = {} is out of range (exponent bits: 4..16)",
           spec.exp_bits);
}

GseSpec parse_gse_spec(std::string_view s) {
  GseSpec spec;
  try {
    std::vector<std::string_view> seen;
    size_t pos = 0;
    while (!s.empty()) {
      const size_t comma = s.find(',', pos);
      parse_item(s.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos), spec, seen);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
    validate(spec);
  } catch (const Error& e) {
    fail("GSE spec '{}': {}", excerpt(s), e.what());
  }
  return spec;
}

std::string gse_spec_str(const GseSpec& spec) {
  return fmt::format("b={},g={},e={},rule={},round={}", spec.bits, spec.group, spec.exp_bits,
                     spec.rule == GseRule::mx ? "mx" : "ceil",
                     spec.rounding == GseRounding::stochastic ? "stochastic" : "nearest");
}

GemmMode parse_gemm_mode(std::string_view s) {
  if (s == "f32") return {};
  if (s == "bf16") return {.bf16 = true};
  QT_CHECK(s == "gse" || s.starts_with("gse:"), "--gemm '{}': expected f32, bf16 or gse:<spec> (e.g. gse:b=8,g=32)",
           excerpt(s));
  return {true, parse_gse_spec(s.size() > 4 ? s.substr(4) : std::string_view())};
}

std::string gemm_mode_str(const GemmMode& m) {
  return m.gse ? "gse:" + gse_spec_str(m.spec) : m.bf16 ? "bf16" : "f32";
}

double GseMatrix::value(int64_t r, int64_t c) const {
  return std::ldexp(static_cast<double>(m(r, c)), e(r, c / spec.group));
}

GseMatrix gse_zeros(int64_t rows, int64_t cols, const GseSpec& spec) {
  validate(spec);
  QT_CHECK(rows >= 0 && cols >= 0, "GSE matrix: invalid shape [{}, {}]", rows, cols);
  GseMatrix q;
  q.spec = spec;
  q.rows = rows;
  q.cols = cols;
  q.mant.resize(static_cast<size_t>(rows * q.stride()));
  q.exps.resize(static_cast<size_t>(rows * q.groups()));
  std::fill(q.exps.begin(), q.exps.end(), static_cast<int16_t>(spec.emin()));
  return q;
}

namespace {

// floor(log2 a) of a finite a > 0: the exponent field of a normal float (ilogb for subnormals).
inline int floor_log2(float a) {
  const int biased = static_cast<int>(std::bit_cast<uint32_t>(a) >> 23) & 0xff;
  return biased ? biased - 127 : std::ilogb(a);
}

// 2^e as a double, built from its bits (e ∈ [−1022, 1023]; encoded groups need [−155, 130]).
inline double pow2d(int e) { return std::bit_cast<double>(static_cast<uint64_t>(e + 1023) << 52); }

}  // namespace

int gse_exponent(float amax, const GseSpec& spec) {
  QT_ASSERT(std::isfinite(amax) && amax >= 0.0f);
  if (amax == 0.0f) return spec.emin();
  int e;
  if (spec.rule == GseRule::mx) {
    e = floor_log2(amax) - (spec.bits - 2);
  } else {
    // the least e with amax ≤ Qmax·2^e. With amax ∈ [2^a, 2^(a+1)) and Qmax ∈ [2^q, 2^(q+1))
    // (q = b − 2), e = a − q satisfies Qmax·2^(e−1) < 2^a ≤ amax, so the answer is a − q or
    // a − q + 1; Qmax·2^e is exact in double.
    e = floor_log2(amax) - (spec.bits - 2);
    if (static_cast<double>(spec.qmax()) * pow2d(e) < static_cast<double>(amax)) ++e;
  }
  return std::clamp(e, spec.emin(), spec.emax());
}

void gse_encode(const float* x, int64_t rows, int64_t cols, const GseSpec& spec, GseMatrix& q) {
  validate(spec);
  QT_CHECK(rows >= 0 && cols >= 0, "GSE encode: invalid shape [{}, {}]", rows, cols);
  if (q.rows != rows || q.cols != cols || q.spec.group != spec.group || q.mant.size() != size_t(rows * q.stride()))
    q = gse_zeros(rows, cols, spec);
  q.spec = spec;
  const int64_t stride = q.stride(), ng = q.groups();
  int64_t bad = -1;  // the first non-finite element (row-major index), reported after the loop
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = encode_row(x + r * cols, cols, r, spec, q.mant.data() + r * stride, q.exps.data() + r * ng);
    if (c >= 0) {
#pragma omp critical(qtune_gse_bad)
      bad = bad < 0 ? r * cols + c : std::min(bad, r * cols + c);
    }
  }
  QT_CHECK(bad < 0, "GSE encode: element (row {}, col {}) of a [{}, {}] matrix is not finite ({})", bad / cols,
           bad % cols, rows, cols, x[bad]);
}

GseMatrix gse_encode(const float* x, int64_t rows, int64_t cols, const GseSpec& spec) {
  GseMatrix q;
  gse_encode(x, rows, cols, spec, q);
  return q;
}

void gse_encode_rows(const float* x, int64_t r0, int64_t r1, const GseSpec& spec, GseMatrix& q) {
  validate(spec);
  QT_CHECK(0 <= r0 && r0 <= r1 && r1 <= q.rows && spec.group == q.spec.group &&
               q.mant.size() == static_cast<size_t>(q.rows * q.stride()),
           "GSE encode: rows [{}, {}) with G = {} do not fit a [{}, {}] matrix of G = {}", r0, r1, spec.group, q.rows,
           q.cols, q.spec.group);
  q.spec = spec;
  const int64_t cols = q.cols, stride = q.stride(), ng = q.groups();
  int64_t bad = -1;
#pragma omp parallel for schedule(static) if ((r1 - r0) * cols > 65536)
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t c = encode_row(x + (r - r0) * cols, cols, r, spec, q.mant.data() + r * stride, q.exps.data() + r * ng);
    if (c >= 0) {
#pragma omp critical(qtune_gse_bad)
      bad = bad < 0 ? r * cols + c : std::min(bad, r * cols + c);
    }
  }
  QT_CHECK(bad < 0, "GSE encode: element (row {}, col {}) of a [{}, {}] matrix is not finite ({})", bad / cols,
           bad % cols, q.rows, cols, x[bad - r0 * cols]);
}

void gse_decode_rows(const GseMatrix& q, int64_t r0, int64_t r1, float* x) {
  QT_ASSERT(0 <= r0 && r0 <= r1 && r1 <= q.rows);
  const int64_t cols = q.cols, G = q.spec.group;
#pragma omp parallel for schedule(static) if ((r1 - r0) * cols > 65536)
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += G) {
      const int e = q.e(r, c0 / G);
      const int8_t* m = q.mant.data() + r * q.stride();
      float* y = x + (r - r0) * cols;
      const int64_t c1 = std::min(cols, c0 + G);
      if (e < -149 || e > 127) {  // 2^e is not a float: through double (inf past the float range)
        for (int64_t c = c0; c < c1; ++c) y[c] = static_cast<float>(std::ldexp(static_cast<double>(m[c]), e));
        continue;
      }
      const float s = std::ldexp(1.0f, e);  // exact; m·2^e (|m| ≤ 127) is then a float exactly
#pragma omp simd
      for (int64_t c = c0; c < c1; ++c) y[c] = static_cast<float>(m[c]) * s;
    }
}

void gse_decode(const GseMatrix& q, float* x) { gse_decode_rows(q, 0, q.rows, x); }

}  // namespace qtune
