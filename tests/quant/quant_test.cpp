// The uniform quantizer of docs/METHODS.md §1: hand-computed cases, error bounds, packing,
// MSE search, groups, degenerate rows, bad input.
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "quant/quant.h"
#include "test_util.h"

using namespace qtune;

namespace {

std::vector<float> dequant(const QuantMatrix& q) {
  std::vector<float> w(static_cast<size_t>(q.rows * q.cols));
  q.dequantize_rows(0, q.rows, w.data());
  return w;
}

std::vector<float> laplace(int64_t n, Rng& rng, double b = 1.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.laplace(b));
  return v;
}

// Σ |ŵ − w|^2.4 over one group (the MSE-search objective), in double.
double lp24(const float* w, const float* wq, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::pow(std::fabs(double(wq[i]) - double(w[i])), 2.4);
  return s;
}

}  // namespace

TEST(Quant, RoundHalfAwayFromZero) {
  EXPECT_EQ(round_half_away(0.5f), 1.0f);
  EXPECT_EQ(round_half_away(-0.5f), -1.0f);
  EXPECT_EQ(round_half_away(1.5f), 2.0f);
  EXPECT_EQ(round_half_away(2.5f), 3.0f);  // not banker's rounding
  EXPECT_EQ(round_half_away(-2.4f), -2.0f);
  EXPECT_EQ(round_half_away(0.0f), 0.0f);
}

// 3-bit asymmetric, range [−1.75, 1.75]: Δ = 3.5/7 = 0.5, z = round(3.5) = 4.
TEST(Quant, HandComputedAsymmetric3Bit) {
  const float w[] = {-1.75f, -0.3f, 0.25f, 1.75f, 0.8f};
  QuantMatrix q = quantize(w, 1, 5, {3, 0, false, false});
  EXPECT_FLOAT_EQ(q.scale[0], 0.5f);
  EXPECT_EQ(q.zero[0], 4.0f);
  // w/Δ = −3.5 → −4 (half away), −0.6 → −1, 0.5 → 1 (half away), 3.5 → 4 then clamped to 7 − 4 = 3, 1.6 → 2
  const int32_t want[] = {-4, -1, 1, 3, 2};
  for (int c = 0; c < 5; ++c) {
    EXPECT_EQ(q.int_value(0, c), want[c]) << c;
    EXPECT_FLOAT_EQ(q.value(0, c), 0.5f * want[c]) << c;
  }
  EXPECT_EQ(q.row_bytes(), 3);              // 3-bit codes are packed two per byte
  EXPECT_EQ(q.codes[0], 0 | (3 << 4));      // q = int + z: 0, 3
  EXPECT_EQ(q.codes[1], 5 | (7 << 4));      // 5, 7
  EXPECT_EQ(q.codes[2], 6);                 // 6, padding nibble 0
}

// 4-bit symmetric: amax = 3.5, Δ = 3.5/7 = 0.5, z = 0, stored code = q + 8.
TEST(Quant, HandComputedSymmetric4Bit) {
  const float w[] = {-3.5f, 1.0f, 0.24f, -0.25f, 2.0f, 3.4f};
  QuantMatrix q = quantize(w, 1, 6, {4, 0, true, false});
  EXPECT_FLOAT_EQ(q.scale[0], 0.5f);
  EXPECT_EQ(q.zero[0], 0.0f);
  const int32_t want[] = {-7, 2, 0, -1, 4, 7};  // −0.5 → −1 (half away), 6.8 → 7
  for (int c = 0; c < 6; ++c) EXPECT_EQ(q.int_value(0, c), want[c]) << c;
  EXPECT_EQ(q.codes[0], (-7 + 8) | ((2 + 8) << 4));
  EXPECT_EQ(q.codes[1], (0 + 8) | ((-1 + 8) << 4));
}

TEST(Quant, EightBitOneCodePerByte) {
  Rng rng(1);
  auto w = laplace(3 * 11, rng);
  for (int bits : {5, 8}) {
    QuantMatrix q = quantize(w.data(), 3, 11, {bits, 0, false, false});
    EXPECT_EQ(q.row_bytes(), 11);
    EXPECT_EQ(q.codes.size(), 33u);
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t c = 0; c < 11; ++c)
        EXPECT_EQ(int32_t(q.codes[r * 11 + c]) - int32_t(q.zero[r]), q.int_value(r, c));
  }
}

// Min/max ranges: every value lies within Δ/2 of its dequantized value, for all bits,
// symmetric or not, per row or per group (also groups that don't divide cols).
TEST(Quant, RoundTripErrorWithinHalfStep) {
  Rng rng(2);
  const int64_t rows = 7, cols = 37;
  auto w = laplace(rows * cols, rng);
  for (int bits = 2; bits <= 8; ++bits) {
    for (int group : {0, 8, 5, 37, 64}) {
      for (bool sym : {false, true}) {
        QuantMatrix q = quantize(w.data(), rows, cols, {bits, group, sym, false});
        auto wq = dequant(q);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < cols; ++c) {
            const float step = q.scale[r * q.groups_per_row() + c / q.group_size()];
            EXPECT_LE(std::fabs(wq[r * cols + c] - w[r * cols + c]), 0.5f * step * (1 + 1e-5f) + 1e-7f)
                << "bits " << bits << " group " << group << " sym " << sym;
            EXPECT_EQ(wq[r * cols + c], q.value(r, c));
          }
        }
      }
    }
  }
}

TEST(Quant, GroupsThatDontDivideCols) {
  Rng rng(3);
  const int64_t rows = 4, cols = 37, group = 8;  // groups of 8, 8, 8, 8, 5
  auto w = laplace(rows * cols, rng);
  const QuantSpec spec{4, group, false, false};
  QuantMatrix q = quantize(w.data(), rows, cols, spec);
  ASSERT_EQ(q.groups_per_row(), 5);
  ASSERT_EQ(q.scale.size(), 20u);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < 5; ++g) {
      const int64_t n = g < 4 ? 8 : 5;
      float s, z;
      choose_range(w.data() + r * cols + g * group, n, spec, &s, &z);
      EXPECT_EQ(q.scale[r * 5 + g], s);
      EXPECT_EQ(q.zero[r * 5 + g], z);
      // the zero point is an integer in [0, 15]
      EXPECT_EQ(z, std::round(z));
      EXPECT_GE(z, 0.0f);
      EXPECT_LE(z, 15.0f);
    }
  }
  // per-group scales differ from each other (they adapt to each group's range)
  EXPECT_NE(q.scale[0], q.scale[1]);
}

// The search starts from the min/max range (candidate i = 0), so it can only improve the
// |.|^2.4 objective; on heavy-tailed rows it must strictly improve some of them.
TEST(Quant, MseSearchNeverWorseThanMinMax) {
  Rng rng(4);
  const int64_t rows = 16, cols = 64;
  auto w = laplace(rows * cols, rng);
  w[5] = 12.0f;  // an outlier: clipping it pays off
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {false, true}) {
      auto a = dequant(quantize(w.data(), rows, cols, {bits, 0, sym, false}));
      auto b = dequant(quantize(w.data(), rows, cols, {bits, 0, sym, true}));
      int better = 0;
      for (int64_t r = 0; r < rows; ++r) {
        const double ea = lp24(w.data() + r * cols, a.data() + r * cols, cols);
        const double eb = lp24(w.data() + r * cols, b.data() + r * cols, cols);
        EXPECT_LE(eb, ea * (1 + 1e-6)) << "bits " << bits << " row " << r;
        better += eb < ea * 0.999;
      }
      if (bits <= 4) EXPECT_GT(better, 0) << "bits " << bits << " sym " << sym;
    }
  }
}

TEST(Quant, MseSearchShrinksTheRange) {
  Rng rng(5);
  auto w = laplace(256, rng);
  w[0] = 20.0f;
  float s_mm, z_mm, s_mse, z_mse;
  choose_range(w.data(), 256, {3, 0, true, false}, &s_mm, &z_mm);
  choose_range(w.data(), 256, {3, 0, true, true}, &s_mse, &z_mse);
  EXPECT_FLOAT_EQ(s_mm, 20.0f / 3.0f);
  EXPECT_LT(s_mse, s_mm);                   // clipped the outlier
  EXPECT_GE(s_mse, s_mm * (1 - 0.79f) * 0.999f);  // at most 79 shrink steps of 1 %
}

TEST(Quant, DegenerateRowsAreExactAndFinite) {
  const int64_t cols = 9;
  std::vector<float> w(4 * cols);
  for (int64_t c = 0; c < cols; ++c) {
    w[0 * cols + c] = 0.0f;    // all zero
    w[1 * cols + c] = 0.3f;    // all equal, positive
    w[2 * cols + c] = -0.7f;   // all equal, negative
    w[3 * cols + c] = 1e-35f;  // all tiny
  }
  for (int bits : {2, 4, 8}) {
    for (bool sym : {false, true}) {
      for (bool mse : {false, true}) {
        QuantMatrix q = quantize(w.data(), 4, cols, {bits, 4, sym, mse});
        auto wq = dequant(q);
        for (size_t i = 0; i < q.scale.size(); ++i) {
          EXPECT_TRUE(std::isfinite(q.scale[i]) && q.scale[i] > 0);
          EXPECT_TRUE(std::isfinite(q.zero[i]));
        }
        for (int64_t i = 0; i < 4 * cols; ++i) {
          ASSERT_TRUE(std::isfinite(wq[i]));
          EXPECT_NEAR(wq[i], w[i], 1e-6f * std::fabs(w[i]) + 1e-30f) << "bits " << bits << " sym " << sym;
        }
      }
    }
  }
}

TEST(Quant, DequantizeRowsSubrangeAndDouble) {
  Rng rng(6);
  const int64_t rows = 9, cols = 21;
  auto w = laplace(rows * cols, rng);
  QuantMatrix q = quantize(w.data(), rows, cols, {4, 6, false, true});
  std::vector<float> f(3 * cols);
  std::vector<double> d(3 * cols);
  q.dequantize_rows(4, 3, f.data());
  q.dequantize_rows(4, 3, d.data());
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t c = 0; c < cols; ++c) {
      EXPECT_EQ(f[i * cols + c], q.value(4 + i, c));
      EXPECT_EQ(d[i * cols + c], double(q.value(4 + i, c)));
    }
}

TEST(Quant, BytesArePackedSize) {
  std::vector<float> w(64 * 128, 0.25f);
  QuantMatrix q = quantize(w.data(), 64, 128, {4, 32, false, false});
  EXPECT_EQ(q.bytes(), 64 * 64 + 2 * 4 * 64 * 4);  // codes + (scale, zero) per group
}

TEST(Quant, BadInputThrows) {
  const float w[] = {1, 2, 3, 4};
  EXPECT_THROW(quantize(w, 2, 2, {1, 0, false, false}), Error);
  EXPECT_THROW(quantize(w, 2, 2, {9, 0, false, false}), Error);
  EXPECT_THROW(quantize(w, 2, 2, {4, -1, false, false}), Error);
  const float bad[] = {1, NAN, 3, 4};
  try {
    quantize(bad, 2, 2, {4, 0, false, false});
    ADD_FAILURE() << "no error for NaN";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 0, column 1"), std::string::npos) << e.what();
  }
}
