// QuantMatrix's 16-bit codes, the zero-free (mid-rise) grid, and wide integers as planes
// (quant/int_planes.h).
#include <cmath>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "quant/int_planes.h"
#include "quant/quant.h"
#include "test_util.h"

using namespace qtune;

namespace {

std::vector<float> randn(int64_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

std::vector<float> dequant(const std::vector<QuantMatrix>& planes) {
  const QuantMatrix& p0 = planes.at(0);
  std::vector<float> w(static_cast<size_t>(p0.rows * p0.cols)), t(w.size());
  for (size_t p = 0; p < planes.size(); ++p) {
    planes[p].dequantize_rows(0, p0.rows, p == 0 ? w.data() : t.data());
    if (p > 0)
      for (size_t i = 0; i < w.size(); ++i) w[i] += t[i];
  }
  return w;
}

}  // namespace

TEST(Quant16, CodesRoundTripAndBoundTheError) {
  Rng rng(1);
  auto w = randn(7 * 37, rng);
  for (bool sym : {false, true}) {
    QuantSpec spec{16, 0, sym, false};
    QuantMatrix q = quantize(w.data(), 7, 37, spec);
    EXPECT_EQ(q.row_bytes(), 2 * 37);
    EXPECT_EQ(q.bytes(), 7 * 74 + 8 * 7);
    auto d = dequant({q});
    for (int64_t r = 0; r < 7; ++r)
      for (int64_t c = 0; c < 37; ++c) {
        EXPECT_LE(std::fabs(d[r * 37 + c] - w[r * 37 + c]), 0.5f * q.scale[r] * 1.001f);
        EXPECT_EQ(q.value(r, c), d[r * 37 + c]);
        const uint32_t code = q.code(r, c);
        EXPECT_LT(code, 65536u);
        EXPECT_EQ(q.int_value(r, c), static_cast<int32_t>(code) - (sym ? 32768 : static_cast<int32_t>(q.zero[r])));
      }
  }
}

TEST(Quant16, SetCodeTouchesOneElementOfEveryWidth) {
  for (int bits : {3, 4, 8, 16}) {
    QuantMatrix q = empty_quant_matrix(3, 5, QuantSpec{bits, 0, false, false});
    const uint32_t top = (1u << bits) - 1;
    for (int64_t c = 0; c < 5; ++c) q.set_code(1, c, c % 2 ? top : 1);
    q.set_code(1, 2, top - 1);  // overwrite a nibble that shares its byte
    for (int64_t c = 0; c < 5; ++c) {
      EXPECT_EQ(q.code(0, c), 0u);
      EXPECT_EQ(q.code(2, c), 0u);
      EXPECT_EQ(q.code(1, c), c == 2 ? top - 1 : (c % 2 ? top : 1u)) << bits << " " << c;
    }
  }
  EXPECT_EQ(empty_quant_matrix(4, 0, QuantSpec{}).groups_per_row(), 0);
}

// Levels ±Δ/2, ±3Δ/2, …: no zero, symmetric, offset (L−1)/2, error within half a step.
TEST(ZeroFree, GridHasNoZeroAndIsSymmetric) {
  Rng rng(2);
  auto w = randn(9 * 50, rng);
  w[3] = 0.0f;  // an exact zero still lands on ±Δ/2
  for (int bits : {2, 4, 8})
    for (bool mse : {false, true}) {
      QuantSpec spec{bits, 0, false, mse};
      spec.zero_free = true;
      QuantMatrix q = quantize(w.data(), 9, 50, spec);
      const float half_levels = 0.5f * static_cast<float>((1 << bits) - 1);
      auto d = dequant({q});
      for (int64_t r = 0; r < 9; ++r) {
        EXPECT_EQ(q.zero[r], half_levels);
        float amax = 0;
        for (int64_t c = 0; c < 50; ++c) amax = std::max(amax, std::fabs(w[r * 50 + c]));
        for (int64_t c = 0; c < 50; ++c) {
          const float v = d[r * 50 + c];
          EXPECT_NE(v, 0.0f);
          // 2·(code − offset) is an odd integer
          const float twice = 2.0f * (static_cast<float>(q.code(r, c)) - q.zero[r]);
          EXPECT_EQ(std::fmod(std::fabs(twice), 2.0f), 1.0f);
          if (!mse) EXPECT_LE(std::fabs(v - w[r * 50 + c]), 0.5f * q.scale[r] * 1.001f);
        }
        if (!mse) EXPECT_NEAR(q.scale[r], 2 * amax / (2 * half_levels), 1e-6 * amax);
      }
    }
  QuantSpec bad{4, 0, true, false};
  bad.zero_free = true;
  EXPECT_THROW(quantize(w.data(), 9, 50, bad), Error);
}

TEST(IntPlanes, NarrowestPlanesAndExactValues) {
  Rng rng(3);
  const int64_t rows = 6, cols = 41;
  std::vector<float> scale(rows);
  for (auto& s : scale) s = static_cast<float>(std::ldexp(1.0 + rng.uniform(), -8));
  for (int32_t amax : {127, 32767, (1 << 29) - 1}) {
    std::vector<int32_t> v(rows * cols);
    for (auto& x : v) x = static_cast<int32_t>(rng.below(2 * static_cast<uint64_t>(amax) + 1)) - amax;
    v[5] = amax;
    v[6] = -amax;
    v[7] = -1;  // small negatives stay in the low plane (no cancellation between planes)
    auto planes = planes_from_integers(v.data(), scale.data(), rows, cols);
    const size_t want_planes = amax <= 32767 ? 1 : 2;
    ASSERT_EQ(planes.size(), want_planes) << amax;
    EXPECT_EQ(planes[0].spec.bits, amax <= 127 ? 8 : 16);
    auto d = dequant(planes);
    // one plane: s·v rounded once (float); two: each plane's product rounded, then the sum
    for (int64_t i = 0; i < rows * cols; ++i) {
      const double exact = static_cast<double>(scale[i / cols]) * v[i];
      if (want_planes == 1) EXPECT_EQ(d[i], static_cast<float>(exact)) << amax << " " << i;
      else EXPECT_NEAR(d[i], exact, 1.2e-7 * std::fabs(exact) + 1e-30) << amax << " " << i;
    }
    if (want_planes == 2) EXPECT_EQ(planes[1].int_value(0, 7), 0);
    std::vector<int32_t> back;
    std::vector<float> back_scale;
    ASSERT_TRUE(integers_from_planes(planes, back, back_scale));
    EXPECT_EQ(back, v);
    EXPECT_EQ(back_scale, scale);
  }
  std::vector<int32_t> too_wide(rows * cols, 1 << 29);
  EXPECT_THROW(planes_from_integers(too_wide.data(), scale.data(), rows, cols), Error);
  // planes that are not of that form are refused, not mis-read
  QuantMatrix grouped = empty_quant_matrix(rows, cols, QuantSpec{8, 5, true, false});
  std::vector<int32_t> out;
  std::vector<float> out_scale;
  EXPECT_FALSE(integers_from_planes({grouped}, out, out_scale));
}

// A wide layout holding narrow values (an I8 tensor of a 4-bit model) repacks to the fewest bits,
// asymmetric per group, with identical values.
TEST(IntPlanes, NarrowestCodesKeepTheValues) {
  Rng rng(4);
  auto w = randn(5 * 172, rng);
  for (int bits : {3, 4, 6}) {
    QuantMatrix q = quantize(w.data(), 5, 172, QuantSpec{bits, 0, false, false});
    // the same values as 8-bit symmetric codes (what an I8 tensor reloads as)
    QuantMatrix wide = empty_quant_matrix(5, 172, QuantSpec{8, 0, true, false});
    wide.scale = q.scale;
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t c = 0; c < 172; ++c) wide.set_code(r, c, static_cast<uint32_t>(q.int_value(r, c) + 128));
    QuantMatrix n = narrowest_codes(wide);
    EXPECT_EQ(n.spec.bits, bits);
    EXPECT_EQ(dequant({n}), dequant({q}));
    if (bits <= 4) EXPECT_LT(n.bytes(), wide.bytes());  // packed two per byte
  }
  // nothing narrower: unchanged
  QuantMatrix full = quantize(w.data(), 5, 172, QuantSpec{8, 0, true, false});
  EXPECT_EQ(narrowest_codes(full).spec.bits, 8);
}
