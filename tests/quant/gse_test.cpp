// The GSE-INT codec of docs/METHODS.md §8 (quant/gse.h): exponent rules, per-element error
// bounds for every (b, G, rule), OCP MXINT8 equivalence on hand-computed blocks, stochastic
// rounding (unbiased, reproducible, thread-count independent), odd shapes, extremes, bad input
// and spec strings.
#include <omp.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"
#include "quant/gse.h"
#include "test_util.h"

using namespace qtune;

namespace {

GseSpec spec_of(int bits, int group, GseRule rule, GseRounding rounding = GseRounding::nearest, int exp_bits = 8) {
  GseSpec s;
  s.bits = bits;
  s.group = group;
  s.exp_bits = exp_bits;
  s.rule = rule;
  s.rounding = rounding;
  return s;
}

// Gaussian values whose groups (of 16, the smallest G) span magnitudes 2^−40 .. 2^40, so every
// group size sees groups of very different scale; some groups all zero.
std::vector<float> wild(int64_t rows, int64_t cols, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int k = static_cast<int>(rng.below(81)) - 40;
      const bool zero = rng.below(10) == 0;
      for (int64_t c = c0; c < std::min(cols, c0 + 16); ++c)
        x[r * cols + c] = zero ? 0.0f : static_cast<float>(std::ldexp(rng.normal(), k));
    }
  return x;
}

float group_amax(const float* row, int64_t c0, int64_t c1) {
  float a = 0;
  for (int64_t c = c0; c < c1; ++c) a = std::max(a, std::fabs(row[c]));
  return a;
}

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

// The exponent rules by their defining inequalities, at and around powers of two.
TEST(GseCodec, ExponentRules) {
  for (int b = 4; b <= 8; ++b) {
    const GseSpec ceil16 = spec_of(b, 32, GseRule::ceil, GseRounding::nearest, 16);
    const GseSpec mx16 = spec_of(b, 32, GseRule::mx, GseRounding::nearest, 16);
    const double qmax = ceil16.qmax();
    Rng rng(b);
    for (int i = 0; i < 20000; ++i) {
      // random floats over the whole range, plus exact Qmax·2^k and powers of two
      float a = static_cast<float>(std::ldexp(1.0 + rng.uniform_double(), static_cast<int>(rng.below(250)) - 125));
      if (i % 3 == 1) a = static_cast<float>(std::ldexp(qmax, static_cast<int>(rng.below(200)) - 100));
      if (i % 3 == 2) a = static_cast<float>(std::ldexp(1.0, static_cast<int>(rng.below(200)) - 100));
      const int ec = gse_exponent(a, ceil16), em = gse_exponent(a, mx16);
      // ceil: the least e with a ≤ Qmax·2^e
      EXPECT_LE(a, std::ldexp(qmax, ec)) << a;
      EXPECT_GT(a, std::ldexp(qmax, ec - 1)) << a;
      // mx: 2^(e + b − 2) ≤ a < 2^(e + b − 1)
      EXPECT_LE(std::ldexp(1.0, em + b - 2), a) << a;
      EXPECT_GT(std::ldexp(1.0, em + b - 1), a) << a;
    }
  }
  const GseSpec c8 = spec_of(8, 32, GseRule::ceil), m8 = spec_of(8, 32, GseRule::mx);
  EXPECT_EQ(gse_exponent(127.0f, c8), 0);
  EXPECT_EQ(gse_exponent(std::nextafter(127.0f, 200.0f), c8), 1);
  EXPECT_EQ(gse_exponent(63.5f, c8), -1);
  EXPECT_EQ(gse_exponent(1.0f, m8), -6);
  EXPECT_EQ(gse_exponent(std::nextafter(2.0f, 0.0f), m8), -6);
  EXPECT_EQ(gse_exponent(2.0f, m8), -5);
  EXPECT_EQ(gse_exponent(0.0f, c8), -127);  // all-zero group: emin
  // subnormal input: exact exponent with E = 16, clamped to emin = −127 with E = 8
  const float tiny = std::numeric_limits<float>::denorm_min();  // 2^−149
  EXPECT_EQ(gse_exponent(tiny, spec_of(8, 32, GseRule::ceil, GseRounding::nearest, 16)), -155);
  EXPECT_EQ(gse_exponent(tiny, spec_of(8, 32, GseRule::mx, GseRounding::nearest, 16)), -155);
  EXPECT_EQ(gse_exponent(tiny, c8), -127);
  EXPECT_EQ(gse_exponent(FLT_MAX, c8), 122);
  EXPECT_EQ(gse_exponent(FLT_MAX, m8), 121);
  // E = 4: [−7, 7]; a large group saturates at emax
  EXPECT_EQ(gse_exponent(1e6f, spec_of(8, 32, GseRule::ceil, GseRounding::nearest, 4)), 7);
}

// Nearest rounding, every (b, G, rule), odd widths: the per-element bounds gse.h states, the
// exponent of every group, |m| ≤ Qmax, decode = m·2^e, and the zero padding.
TEST(GseCodec, RoundTripBoundsEveryFormat) {
  Rng rng(11);
  const int64_t rows = 7, cols = 300;  // 300 = 2·128 + 44: a short last group for every G
  const auto x = wild(rows, cols, rng);
  int64_t clipped = 0;
  for (int b = 4; b <= 8; ++b)
    for (int G : {16, 32, 64, 128})
      for (auto rule : {GseRule::ceil, GseRule::mx}) {
        const GseSpec spec = spec_of(b, G, rule, GseRounding::nearest, 16);  // E = 16: no exponent clamp
        const GseMatrix q = gse_encode(x.data(), rows, cols, spec);
        ASSERT_EQ(q.groups(), (cols + G - 1) / G);
        std::vector<float> xd(x.size());
        gse_decode(q, xd.data());
        const double qmax = spec.qmax();
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t g = 0; g < q.groups(); ++g) {
            const int64_t c0 = g * G, c1 = std::min(cols, c0 + G);
            const float amax = group_amax(x.data() + r * cols, c0, c1);
            const int e = q.e(r, g);
            ASSERT_EQ(e, gse_exponent(amax, spec));
            if (amax == 0.0f) {  // e = emin: 2^e underflows double for E = 16; m = 0 is all to check
              for (int64_t c = c0; c < c1; ++c) ASSERT_EQ(q.m(r, c), 0);
              continue;
            }
            for (int64_t c = c0; c < c1; ++c) {
              const double xv = x[r * cols + c], xh = q.value(r, c), step = std::ldexp(1.0, e);
              ASSERT_LE(std::abs(q.m(r, c)), qmax);
              ASSERT_EQ(xd[r * cols + c], static_cast<float>(xh));  // decode: m·2^e, exact
              if (rule == GseRule::ceil || std::fabs(xv) <= (qmax + 0.5) * step) {
                ASSERT_LE(std::fabs(xh - xv), 0.5 * step) << "b " << b << " G " << G << " r " << r << " c " << c;
                if (rule == GseRule::ceil) {
                  ASSERT_LE(std::fabs(xv) / step, qmax);  // no saturation
                }
              } else {  // mx: only the top half step clips, to ±Qmax, with error < 2^e
                ++clipped;
                ASSERT_EQ(std::abs(q.m(r, c)), qmax);
                ASSERT_LT(std::fabs(xh - xv), step);
              }
            }
          }
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = cols; c < q.stride(); ++c) ASSERT_EQ(q.m(r, c), 0);
      }
  EXPECT_GT(clipped, 0);  // the mx rule's clip did happen in this data
}

// The mx rule clips; the ceil rule does not (one group, b = 8: max 127.75).
TEST(GseCodec, MxRuleClipsCeilRuleDoesNot) {
  std::vector<float> x(32, 0.0f);
  x[0] = 127.75f;
  x[1] = -1.25f;
  const GseMatrix mx = gse_encode(x.data(), 1, 32, spec_of(8, 32, GseRule::mx));
  EXPECT_EQ(mx.e(0, 0), 0);         // floor(log2 127.75) − 6 = 0
  EXPECT_EQ(mx.m(0, 0), 127);       // 127.75 → 128 clipped: error 0.75 > step/2
  EXPECT_EQ(mx.m(0, 1), -1);        // −1.25 → −1 (half away from zero applies to ties only)
  const GseMatrix ce = gse_encode(x.data(), 1, 32, spec_of(8, 32, GseRule::ceil));
  EXPECT_EQ(ce.e(0, 0), 1);         // ceil(log2(127.75 / 127)) = 1
  EXPECT_EQ(ce.m(0, 0), 64);        // 63.875 → 64: error 0.25 ≤ step/2 = 1
  EXPECT_EQ(ce.m(0, 1), -1);        // −0.625 → −1
}

// GSE-INT(8, 32, 8), mx rule, nearest = OCP MXINT8, on blocks computed by hand from the MX
// definition (gse.h): X = 2^s, s = floor(log2 amax) (emax_elem = 0), P = round_half_away(V / X ·
// 2^6) saturated to ±127, value X·P·2^−6; so m = P and e = s − 6 (E8M0 byte s + 127 = e + 133).
TEST(GseCodec, EqualsMxint8OnHandComputedBlocks) {
  const GseSpec spec = spec_of(8, 32, GseRule::mx);
  std::vector<float> x(5 * 32, 0.0f);
  std::vector<int> want_m(5 * 32, 0);
  auto set = [&](int blk, int i, float v, int p) { x[blk * 32 + i] = v, want_m[blk * 32 + i] = p; };
  // block 0: amax 3 → s = 1, X = 2, V/X·64 = 32·V
  set(0, 0, 3.0f, 96);           // 96
  set(0, 1, 0.015625f, 1);       // 0.5 → 1 (tie, away from zero)
  set(0, 2, -0.015625f, -1);     // −0.5 → −1
  set(0, 3, 1.0f, 32);
  set(0, 4, -2.96875f, -95);     // −95 exactly
  set(0, 5, 0.046875f, 2);       // 1.5 → 2
  set(0, 6, -0.046875f, -2);
  set(0, 7, 0.04f, 1);           // 1.28 → 1
  set(0, 31, -0.0078125f, 0);    // −0.25 → 0
  // block 1: amax 1.999 → s = 0, X = 1, 64·V; saturation at ±127 (never −128)
  set(1, 0, 1.999f, 127);        // 127.936 → 128 → 127
  set(1, 1, -1.999f, -127);      // → −127, not −128
  set(1, 2, 0.5f, 32);
  set(1, 3, 0.0234375f, 2);      // 1.5 → 2
  set(1, 4, 1.984375f, 127);     // 127 exactly (the MX max_norm 127/64)
  // block 2: amax 2^−121 (the smallest s where the ranges overlap) → s = −121, e = −127
  set(2, 0, std::ldexp(1.0f, -121), 64);
  set(2, 1, std::ldexp(1.0f, -127), 1);
  set(2, 2, -std::ldexp(3.0f, -128), -2);  // 1.5 → −2
  // block 3: amax 100 → s = 6, X = 64: P = V
  set(3, 0, 100.0f, 100);
  set(3, 1, -0.5f, -1);          // tie
  set(3, 2, 7.49f, 7);
  // block 4: all zero → m = 0, value 0 (our e = emin = −127; the MX scale of a zero block is
  // not defined by the spec — microxcaling records s = −126 — so only the values are compared)
  const int want_s[5] = {1, 0, -121, 6, -121};
  const GseMatrix q = gse_encode(x.data(), 1, 5 * 32, spec);
  for (int blk = 0; blk < 5; ++blk) {
    EXPECT_EQ(q.e(0, blk), want_s[blk] - 6) << "block " << blk;  // block 4: −127 = emin
    EXPECT_EQ(q.e(0, blk) + 133, want_s[blk] + 127) << "E8M0 byte, block " << blk;
    for (int i = 0; i < 32; ++i) {
      const int64_t c = blk * 32 + i;
      EXPECT_EQ(q.m(0, c), want_m[c]) << "block " << blk << " element " << i;
      // and the value X·P·2^−6
      EXPECT_EQ(q.value(0, c), std::ldexp(double(want_m[c]), want_s[blk]) / 64.0) << "block " << blk << " " << i;
    }
  }
}

// Where the equivalence ends (gse.h): amax < 2^−121. MXINT8 would take s = −125 (X = 2^−125,
// P = 64 for V = 2^−125); GSE clamps e to −127 and stores m = 4 — the same value, 3 fewer bits.
TEST(GseCodec, Mxint8DivergesBelowOverlap) {
  std::vector<float> x(32, 0.0f);
  x[0] = std::ldexp(1.0f, -125);
  x[1] = std::ldexp(1.0f, -131);  // MX: P = 1; GSE: 2^−4 of a step → 0
  const GseMatrix q = gse_encode(x.data(), 1, 32, spec_of(8, 32, GseRule::mx));
  EXPECT_EQ(q.e(0, 0), -127);
  EXPECT_EQ(q.m(0, 0), 4);
  EXPECT_EQ(q.m(0, 1), 0);
}

// Stochastic rounding is unbiased: values at a fixed fraction 0.3 of a step (nearest rounds all
// of them down: mean error −0.3 step) round up in a share 0.3 of the draws. With N = 2^20 draws
// the share's standard deviation is √(0.21/N) ≈ 4.5e−4; the bound 5e−3 is 11σ — and the draws
// are a fixed function of the seed, so the test is deterministic.
TEST(GseCodec, StochasticRoundingUnbiased) {
  const int64_t rows = 256, cols = 4096;  // N = 2^20 elements, G = 32
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i)
    x[i] = i % 32 == 0 ? 127.0f : (i % 2 ? -1.0f : 1.0f) * (static_cast<float>(i % 100) + 0.3f);  // e = 0
  GseSpec spec = spec_of(8, 32, GseRule::ceil, GseRounding::stochastic);
  spec.seed = 1234;
  const GseMatrix q = gse_encode(x.data(), rows, cols, spec);
  double err = 0, err_nearest = 0;
  int64_t n = 0, up = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      if (c % 32 == 0) continue;
      ASSERT_EQ(q.e(r, c / 32), 0);
      const double d = (q.value(r, c) - x[i]) * (x[i] < 0 ? -1 : 1);  // error in the magnitude
      ASSERT_TRUE(std::fabs(d - 0.7) < 1e-5 || std::fabs(d + 0.3) < 1e-5) << d;  // floor or ceil only
      up += d > 0;
      err += d;
      err_nearest += std::round(std::fabs(double(x[i]))) - std::fabs(double(x[i]));
      ++n;
    }
  EXPECT_NEAR(double(up) / n, 0.3, 5e-3);
  EXPECT_NEAR(err / n, 0.0, 5e-3);
  EXPECT_NEAR(err_nearest / n, -0.3, 1e-4);  // what stochastic rounding removes
}

// Same seed → same bytes, whatever the thread count; another seed → other draws.
TEST(GseCodec, StochasticReproducibleAndThreadIndependent) {
  Rng rng(5);
  const int64_t rows = 64, cols = 2000;  // > 65536 elements: the encoder runs in parallel
  const auto x = wild(rows, cols, rng);
  GseSpec spec = spec_of(6, 64, GseRule::mx, GseRounding::stochastic);
  spec.seed = 99;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const GseMatrix a = gse_encode(x.data(), rows, cols, spec);
  omp_set_num_threads(std::max(2, threads));
  const GseMatrix b = gse_encode(x.data(), rows, cols, spec);
  omp_set_num_threads(threads);
  ASSERT_EQ(a.mant.size(), b.mant.size());
  EXPECT_EQ(std::memcmp(a.mant.data(), b.mant.data(), a.mant.size()), 0);
  EXPECT_EQ(std::memcmp(a.exps.data(), b.exps.data(), a.exps.size() * 2), 0);
  spec.seed = 100;
  const GseMatrix c = gse_encode(x.data(), rows, cols, spec);
  EXPECT_NE(std::memcmp(a.mant.data(), c.mant.data(), a.mant.size()), 0);
  // re-encoding into a used matrix gives the same bytes as a fresh one
  GseMatrix d = c;
  spec.seed = 99;
  gse_encode(x.data(), rows, cols, spec, d);
  EXPECT_EQ(std::memcmp(a.mant.data(), d.mant.data(), a.mant.size()), 0);
}

// Nearest rounding against the plain double rule (x·2^−e in double, std::round, clamp) on
// Gaussian, wild-range and tie values (k + ½)·2^e and their float neighbours, every width and
// rule: the encoder's float SIMD path is exact.
TEST(GseCodec, NearestEqualsTheDoubleReference) {
  Rng rng(8);
  const int64_t rows = 40, cols = 96;
  std::vector<float> x = wild(rows, cols, rng);
  for (int64_t r = 0; r < 20; ++r)  // ties: the group max fixes e, the rest are (k + ½)·2^e ± 1 ulp
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int k = static_cast<int>(rng.below(60)) - 30;
      x[r * cols + c0] = std::ldexp(7.0f, k);
      for (int64_t c = c0 + 1; c < c0 + 16; ++c) {
        float v = std::ldexp(static_cast<float>(rng.below(8)) + 0.5f, k - 4);
        if (rng.below(3) == 0) v = std::nextafter(v, rng.below(2) ? 0.0f : 1e30f);
        x[r * cols + c] = rng.below(2) ? -v : v;
      }
    }
  for (int bits : {4, 5, 8})
    for (int group : {16, 32})
      for (GseRule rule : {GseRule::ceil, GseRule::mx}) {
        const GseSpec spec = spec_of(bits, group, rule);
        const GseMatrix q = gse_encode(x.data(), rows, cols, spec);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c0 = 0; c0 < cols; c0 += group) {
            const float* row = x.data() + r * cols;
            const int e = gse_exponent(group_amax(row, c0, std::min(cols, c0 + group)), spec);
            ASSERT_EQ(q.e(r, c0 / group), e);
            for (int64_t c = c0; c < std::min(cols, c0 + group); ++c) {
              const double v = std::round(static_cast<double>(row[c]) * std::ldexp(1.0, -e));
              ASSERT_EQ(q.m(r, c), static_cast<int8_t>(std::clamp(v, -1.0 * spec.qmax(), 1.0 * spec.qmax())))
                  << "b " << bits << " G " << group << " x " << row[c] << " e " << e;
            }
          }
        std::vector<float> back(rows * cols);
        gse_decode(q, back.data());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < cols; ++c) ASSERT_EQ(back[r * cols + c], static_cast<float>(q.value(r, c)));
      }
}

// Encoding and decoding a block of rows at a time gives the whole-matrix bytes and values.
TEST(GseCodec, RowBlocksEqualTheWholeMatrix) {
  Rng rng(6);
  const int64_t rows = 37, cols = 75;
  const auto x = wild(rows, cols, rng);
  for (GseRounding rnd : {GseRounding::nearest, GseRounding::stochastic}) {
    GseSpec spec = spec_of(7, 32, GseRule::ceil, rnd);
    spec.seed = 3;
    const GseMatrix whole = gse_encode(x.data(), rows, cols, spec);
    GseMatrix blocks = gse_zeros(rows, cols, spec);
    for (int64_t r0 = 0; r0 < rows; r0 += 10)
      gse_encode_rows(x.data() + r0 * cols, r0, std::min(rows, r0 + 10), spec, blocks);
    EXPECT_EQ(std::memcmp(whole.mant.data(), blocks.mant.data(), whole.mant.size()), 0);
    EXPECT_EQ(std::memcmp(whole.exps.data(), blocks.exps.data(), whole.exps.size() * 2), 0);
    std::vector<float> all(rows * cols), part(rows * cols);
    gse_decode(whole, all.data());
    for (int64_t r0 = 0; r0 < rows; r0 += 8) gse_decode_rows(blocks, r0, std::min(rows, r0 + 8), part.data() + r0 * cols);
    EXPECT_EQ(all, part);
  }
  GseMatrix small = gse_zeros(4, cols, spec_of(8, 32, GseRule::ceil));
  EXPECT_NE(error_of([&] { gse_encode_rows(x.data(), 2, 5, spec_of(8, 32, GseRule::ceil), small); }).find("do not fit"),
            std::string::npos);
}

// Zero groups, short last groups, one column, subnormals and the float extremes.
TEST(GseCodec, OddShapesAndExtremes) {
  const float tiny = std::numeric_limits<float>::denorm_min();
  std::vector<float> x = {0, 0, 0, 0, 0, tiny, -3 * tiny, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // group 0
                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,              // group 1: zero
                          FLT_MAX, -1.0f, 0.5f};                                      // group 2: 3 columns
  for (int E : {8, 16}) {
    const GseSpec spec = spec_of(8, 16, GseRule::ceil, GseRounding::nearest, E);
    const GseMatrix q = gse_encode(x.data(), 1, 35, spec);
    ASSERT_EQ(q.groups(), 3);
    ASSERT_EQ(q.stride(), 48);
    EXPECT_EQ(q.e(0, 1), spec.emin());
    EXPECT_EQ(q.e(0, 2), 122);
    EXPECT_EQ(q.m(0, 32), 64);  // FLT_MAX / 2^122 = 63.99999... → 64: m·2^e = 2^128
    EXPECT_EQ(q.m(0, 33), 0);
    std::vector<float> xd(35);
    gse_decode(q, xd.data());
    EXPECT_TRUE(std::isinf(xd[32]));  // the documented float overflow of decode
    if (E == 16) {  // subnormals exactly: e = ceil(log2(3·2^−149 / 127)) = −154
      EXPECT_EQ(q.e(0, 0), -154);
      EXPECT_EQ(xd[5], tiny);
      EXPECT_EQ(xd[6], -3 * tiny);
    } else {  // clamped to e = −127: flushed to 0
      EXPECT_EQ(q.e(0, 0), -127);
      EXPECT_EQ(xd[5], 0.0f);
    }
    for (int c : {0, 16, 31}) EXPECT_EQ(xd[c], 0.0f);
  }
  // one column, zero rows
  const float one = -0.75f;
  const GseMatrix q1 = gse_encode(&one, 1, 1, spec_of(4, 128, GseRule::mx));
  EXPECT_EQ(q1.e(0, 0), -3);  // floor(log2 0.75) − 2
  EXPECT_EQ(q1.m(0, 0), -6);
  EXPECT_EQ(gse_encode(nullptr, 0, 10, GseSpec{}).mant.size(), 0u);
  // the mx rule cannot overflow decode at FLT_MAX: 127·2^121 < FLT_MAX
  const float big = FLT_MAX;
  const GseMatrix qm = gse_encode(&big, 1, 1, spec_of(8, 16, GseRule::mx));
  EXPECT_EQ(qm.m(0, 0), 127);
  EXPECT_EQ(qm.value(0, 0), std::ldexp(127.0, 121));
}

// NaN and inf are refused with their position, in the serial and the parallel encoder.
TEST(GseCodec, NonFiniteInputThrows) {
  for (int64_t cols : {40, 3000}) {
    const int64_t rows = 30;
    std::vector<float> x(static_cast<size_t>(rows * cols), 1.0f);
    x[2 * cols + 5] = std::numeric_limits<float>::quiet_NaN();
    x[20 * cols + 1] = std::numeric_limits<float>::infinity();
    const std::string msg = error_of([&] { gse_encode(x.data(), rows, cols, GseSpec{}); });
    EXPECT_NE(msg.find("row 2, col 5"), std::string::npos) << msg;
    x[2 * cols + 5] = 0;
    const std::string msg2 = error_of([&] { gse_encode(x.data(), rows, cols, GseSpec{}); });
    EXPECT_NE(msg2.find("row 20, col 1"), std::string::npos) << msg2;
    EXPECT_NE(msg2.find("inf"), std::string::npos) << msg2;
  }
}

TEST(GseSpec, ParsesAndPrints) {
  EXPECT_EQ(parse_gse_spec(""), GseSpec{});
  const GseSpec s = parse_gse_spec("b=6,g=64,rule=mx,round=stochastic,e=16");
  EXPECT_EQ(s.bits, 6);
  EXPECT_EQ(s.group, 64);
  EXPECT_EQ(s.exp_bits, 16);
  EXPECT_EQ(s.rule, GseRule::mx);
  EXPECT_EQ(s.rounding, GseRounding::stochastic);
  EXPECT_EQ(gse_spec_str(s), "b=6,g=64,e=16,rule=mx,round=stochastic");
  EXPECT_EQ(parse_gse_spec(gse_spec_str(s)), s);
  EXPECT_EQ(parse_gse_spec("g=128").group, 128);
  EXPECT_FALSE(parse_gemm_mode("f32").gse);
  const GemmMode m = parse_gemm_mode("gse:b=8,g=32,rule=mx");
  EXPECT_TRUE(m.gse);
  EXPECT_EQ(m.spec.rule, GseRule::mx);
  EXPECT_EQ(parse_gemm_mode("gse"), (GemmMode{true, GseSpec{}}));
  EXPECT_EQ(parse_gemm_mode("gse:"), (GemmMode{true, GseSpec{}}));
  EXPECT_EQ(gemm_mode_str(m), "gse:b=8,g=32,e=8,rule=mx,round=nearest");
  EXPECT_EQ(parse_gemm_mode(gemm_mode_str(m)), m);
  EXPECT_EQ(gemm_mode_str(parse_gemm_mode("f32")), "f32");
}

// Every bad string throws Error with one line that names the problem.
TEST(GseSpec, BadStringsNameTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"b=9", "b = 9 is out of range (mantissa bits, sign included: 4..8)"},
      {"b=3", "b = 3 is out of range"},
      {"g=48", "g = 48 is not a supported group size (16, 32, 64 or 128)"},
      {"g=0", "g = 0 is not a supported group size"},
      {"e=3", "e = 3 is out of range (exponent bits: 4..16)"},
      {"e=17", "e = 17 is out of range"},
      {"x=1", "unknown key 'x' (keys: b, g, e, rule, round)"},
      {"seed=3", "unknown key 'seed'"},
      {"b=eight", "b = 'eight' is not a positive integer"},
      {"b=-8", "b = '-8' is not a positive integer"},
      {"b= 8", "b = ' 8' is not a positive integer"},
      {"b=", "b = '' is not a positive integer"},
      {"g=99999999999", "g = '99999999999' is not a positive integer"},
      {"b=8,b=6", "key 'b' is given twice"},
      {"rule=floor", "rule = 'floor' is not an exponent rule (ceil or mx)"},
      {"round=even", "round = 'even' is not a rounding (nearest or stochastic)"},
      {"b", "item 'b' is not key=value"},
      {"b=8,", "an empty item"},
      {",b=8", "an empty item"},
      {"b=8,,g=32", "an empty item"},
  };
  for (const auto& [s, want] : cases) {
    const std::string msg = error_of([&] { parse_gse_spec(s); });
    EXPECT_NE(msg.find(want), std::string::npos) << s << " → " << msg;
    EXPECT_EQ(msg.rfind(std::string("GSE spec '") + s + "': ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  EXPECT_NE(error_of([] { parse_gemm_mode("fp16"); }).find("--gemm 'fp16': expected f32, bf16 or gse:<spec>"),
            std::string::npos);
  EXPECT_TRUE(parse_gemm_mode("bf16").bf16);
  EXPECT_EQ(gemm_mode_str(parse_gemm_mode("bf16")), "bf16");
  EXPECT_NE(error_of([] { parse_gemm_mode("gse:g=7"); }).find("g = 7 is not a supported group size"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_gemm_mode("gsex"); }).find("expected f32, bf16 or gse:"), std::string::npos);
  // and the codec itself refuses a bad spec
  GseSpec bad;
  bad.bits = 9;
  EXPECT_THROW(gse_encode(nullptr, 0, 0, bad), Error);
}
