// The decode product on block-quantized weights: every path bit-identical to scalar, scalar
// against float64 of the same quantized activations, the activation-rounding bound against the
// float product, and what it does not accept.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/igemm.h"
#include "kernels/qdot_blocks.h"
#include "test_util.h"

using namespace qtune;
using kernels::Isa;
using kernels::kQBlock;

namespace {

constexpr Isa kAllLevels[] = {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni};

// Random codes over the whole range, random scales, zero points fractional (Q4_1 loads so).
QuantMatrix random_matrix(int64_t rows, int64_t cols, int bits, int group, bool sym, Rng& rng) {
  QuantMatrix W = empty_quant_matrix(rows, cols, {bits, group, sym, false});
  const uint64_t levels = uint64_t(1) << bits;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) W.set_code(r, c, static_cast<uint32_t>(rng.below(levels)));
  for (auto& s : W.scale) s = rng.uniform(0.001f, 0.1f);
  for (auto& z : W.zero) z = rng.uniform(-1.0f, static_cast<float>(levels));
  return W;
}

std::vector<float> random_x(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(-3.0f, 3.0f);
  return v;
}

struct Case {
  int bits, group;
  bool sym;
};
// Q8_0, Q4_0, Q4_1 as loaded (group 32), wider groups, per row, 3 and 6 bits
constexpr Case kCases[] = {{8, 32, true}, {4, 32, true}, {4, 32, false}, {4, 64, false}, {8, 0, true},
                           {3, 32, false}, {6, 64, true}, {8, 32, false}};

}  // namespace

TEST(QdotBlocks, EveryPathBitIdenticalToScalar) {
  Rng rng(1);
  int compared = 0;
  for (const Case& k : kCases)
    for (int64_t in : {64, 96, 288}) {
      if (k.group > in || in % (k.group ? k.group : in)) continue;
      for (int64_t out : {1, 5, 16, 37}) {
        const QuantMatrix W = random_matrix(out, in, k.bits, k.group, k.sym, rng);
        for (int64_t n : {1, 3}) {
          const auto x = random_x(n * in, rng);
          for (bool acc : {false, true}) {
            std::vector<float> y0(static_cast<size_t>(n * out), 0.5f);
            kernels::qgemv_blocks(x.data(), W, y0.data(), n, acc, Isa::scalar);
            for (Isa isa : kAllLevels) {
              if (isa == Isa::scalar || !kernels::isa_supported(isa)) continue;
              std::vector<float> y(static_cast<size_t>(n * out), 0.5f);
              kernels::qgemv_blocks(x.data(), W, y.data(), n, acc, isa);
              ASSERT_EQ(std::memcmp(y.data(), y0.data(), y.size() * sizeof(float)), 0)
                  << kernels::isa_name(isa) << " bits " << k.bits << " group " << k.group << " in " << in << " out "
                  << out << " n " << n;
              ++compared;
            }
          }
        }
      }
    }
  if (!kernels::isa_supported(Isa::avx2)) GTEST_SKIP() << "scalar only on this CPU";
  EXPECT_GT(compared, 0);
}

// Scalar against the same quantized activations in float64, and against the float product
// within the activation-rounding bound Σ_c (d_b/2)·|w_oc|.
TEST(QdotBlocks, MatchesReferenceAndFloatProduct) {
  Rng rng(2);
  for (const Case& k : kCases) {
    const int64_t in = 192, out = 23, n = 2, nb = in / kQBlock;
    const QuantMatrix W = random_matrix(out, in, k.bits, k.group, k.sym, rng);
    const auto x = random_x(n * in, rng);
    std::vector<float> y(static_cast<size_t>(n * out));
    kernels::qgemv_blocks(x.data(), W, y.data(), n, false, Isa::scalar);
    std::vector<int8_t> xq(static_cast<size_t>(in));
    std::vector<float> d(static_cast<size_t>(nb));
    std::vector<int32_t> isum(static_cast<size_t>(nb));
    for (int64_t t = 0; t < n; ++t) {
      ASSERT_TRUE(kernels::quantize_blocks(x.data() + t * in, in, xq.data(), d.data(), isum.data()));
      for (int64_t o = 0; o < out; ++o) {
        double ref = 0, mag = 0, fl = 0, bound = 0;
        for (int64_t c = 0; c < in; ++c) {
          const double w = double(W.scale[o * W.groups_per_row() + c / W.group_size()]) *
                           (double(W.code(o, c)) - double(W.offset(o, c / W.group_size())));
          const double xv = double(d[c / kQBlock]) * xq[c];
          ref += xv * w;
          mag += std::fabs(xv * w);
          fl += double(x[t * in + c]) * w;
          bound += 0.5 * d[c / kQBlock] * std::fabs(w);
          EXPECT_LE(std::fabs(xv - x[t * in + c]), 0.5 * d[c / kQBlock] * (1 + 1e-6));
        }
        const double got = y[t * out + o];
        EXPECT_NEAR(got, ref, 1e-5 * mag + 1e-30) << "bits " << k.bits << " o " << o;
        EXPECT_NEAR(got, fl, bound + 1e-5 * mag) << "bits " << k.bits << " o " << o;
      }
    }
  }
}

TEST(QdotBlocks, ActivationRounding) {
  std::vector<float> x(64, 0.0f);
  x[0] = 1.27f;
  x[1] = -0.005f;  // rounds to −0.5 → −1 (half away from zero)
  x[2] = 0.6f;
  std::vector<int8_t> xq(64);
  float d[2];
  int32_t isum[2];
  ASSERT_TRUE(kernels::quantize_blocks(x.data(), 64, xq.data(), d, isum));
  EXPECT_FLOAT_EQ(d[0], 1.27f / 127.0f);
  EXPECT_EQ(xq[0], 127);
  EXPECT_EQ(xq[1], -1);
  EXPECT_EQ(xq[2], 60);
  EXPECT_EQ(isum[0], 127 - 1 + 60);
  EXPECT_EQ(d[1], 0.0f);  // an all-zero block
  EXPECT_EQ(isum[1], 0);
  x[40] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(kernels::quantize_blocks(x.data(), 64, xq.data(), d, isum));
}

TEST(QdotBlocks, RejectsWhatItCannotRun) {
  Rng rng(3);
  // a row not a multiple of the group, a group not a multiple of 32, 16-bit codes
  EXPECT_FALSE(kernels::qblocks_supported(random_matrix(4, 48, 8, 32, true, rng)));
  EXPECT_FALSE(kernels::qblocks_supported(random_matrix(4, 96, 4, 48, false, rng)));
  EXPECT_FALSE(kernels::qblocks_supported(random_matrix(4, 64, 16, 32, true, rng)));
  EXPECT_FALSE(kernels::qblocks_supported(random_matrix(4, 40, 8, 0, true, rng)));
  EXPECT_TRUE(kernels::qblocks_supported(random_matrix(4, 64, 8, 0, true, rng)));
  const QuantMatrix W = random_matrix(4, 48, 8, 32, true, rng);
  std::vector<float> x(48, 1.0f), y(4);
  EXPECT_THROW(kernels::qgemv_blocks(x.data(), W, y.data(), 1, false), Error);
  const QuantMatrix V = random_matrix(4, 64, 4, 32, true, rng);
  std::vector<float> xv(64, 1.0f), yv(4);
  xv[5] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(kernels::qgemv_blocks(xv.data(), V, yv.data(), 1, false), Error);
}

// W·A8 decode: igemm's exact integers combined in float — every path bit-identical, and equal
// to ref::igemm (double combine) to float rounding.
TEST(QdotBlocks, Int8EntryMatchesIgemm) {
  Rng rng(4);
  for (const Case& k : kCases) {
    const int64_t in = 256, out = 21, n = 3;
    const QuantMatrix W = random_matrix(out, in, k.bits, k.group, k.sym, rng);
    const auto x = random_x(n * in, rng);
    std::vector<int8_t> xq(static_cast<size_t>(n * in));
    std::vector<float> s(static_cast<size_t>(n)), want(static_cast<size_t>(n * out)), y0(want.size());
    kernels::quantize_activations(x.data(), n, in, 0.0f, xq.data(), s.data());
    kernels::ref::igemm(xq.data(), s.data(), W, want.data(), n, false);
    kernels::qgemv_blocks_int8(xq.data(), s.data(), W, y0.data(), n, false, Isa::scalar);
    EXPECT_LT(test::rel_err(y0.data(), want.data(), want.size()), 1e-6) << "bits " << k.bits;
    for (Isa isa : kAllLevels) {
      if (!kernels::isa_supported(isa)) continue;
      std::vector<float> y(want.size());
      kernels::qgemv_blocks_int8(xq.data(), s.data(), W, y.data(), n, false, isa);
      EXPECT_EQ(std::memcmp(y.data(), y0.data(), y.size() * sizeof(float)), 0) << kernels::isa_name(isa);
    }
  }
}
