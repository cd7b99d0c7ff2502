// The repacked Q8_0 / Q4_0 decode product: packing is lossless, every level gives exactly the
// integers of the weight·activation dot and y bit-identical to qgemv_blocks on the loaded layout
// (one token or a prompt's many, whose rows must equal decoding's),
// dequantized rows equal the loaded matrix's, and what packing does not take.
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/qblocks_packed.h"
#include "kernels/qdot_blocks.h"
#include "test_util.h"

using namespace qtune;
using kernels::Isa;

namespace {

constexpr Isa kAllLevels[] = {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni};

// Q8_0 / Q4_0 as loaded: symmetric, groups of 32; codes over the whole range (0 and 2^b − 1
// included: the AVX2 8-bit loop's re-centring meets −128 and 127).
QuantMatrix random_q(int64_t rows, int64_t cols, int bits, Rng& rng) {
  QuantMatrix W = empty_quant_matrix(rows, cols, {bits, 32, true, false});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) W.set_code(r, c, static_cast<uint32_t>(rng.below(uint64_t(1) << bits)));
  for (auto& s : W.scale) s = rng.uniform(0.001f, 0.1f);
  return W;
}

std::vector<float> random_x(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(-3.0f, 3.0f);
  return v;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(QblocksPacked, PackUnpackIsLossless) {
  Rng rng(3);
  for (int bits : {8, 4})
    for (int64_t rows : {1, 15, 16, 37}) {
      const QuantMatrix W = random_q(rows, 96, bits, rng);
      const kernels::PackedBlocks P = kernels::pack_blocks(QuantMatrix(W));
      EXPECT_EQ(P.row_groups(), (rows + 15) / 16);
      const QuantMatrix U = kernels::unpack_blocks(P);
      ASSERT_EQ(U.codes.size(), W.codes.size());
      EXPECT_EQ(std::memcmp(U.codes.data(), W.codes.data(), W.codes.size()), 0) << bits << " bits, rows " << rows;
      EXPECT_EQ(std::memcmp(U.scale.data(), W.scale.data(), W.scale.size() * 4), 0);
      EXPECT_EQ(U.spec.bits, bits);
      EXPECT_TRUE(U.spec.symmetric);
      // the same bytes as the loaded layout (codes and float scales), plus the last group's padding
      EXPECT_EQ(P.bytes(), P.row_groups() * 16 * 3 * (4 + 32 * bits / 8));
    }
}

// Integer activations with |x| = 127 in every block (so d = 1 and xq = x) and unit scales: y is
// the exact integer Σ (code − off)·x, far below 2^24, on every level.
TEST(QblocksPacked, ExactIntegerSumsAtEveryLevel) {
  Rng rng(4);
  for (int bits : {8, 4}) {
    const int64_t out = 37, in = 768;
    QuantMatrix W = random_q(out, in, bits, rng);
    for (auto& s : W.scale) s = 1.0f;
    std::vector<float> x(in);
    for (int64_t c = 0; c < in; ++c) x[c] = c % 32 == 5 ? (c % 64 ? 127.0f : -127.0f) : float(int(rng.below(255)) - 127);
    std::vector<double> want(out, 0.0);
    for (int64_t r = 0; r < out; ++r)
      for (int64_t c = 0; c < in; ++c) want[r] += double(W.int_value(r, c)) * x[c];
    const kernels::PackedBlocks P = kernels::pack_blocks(QuantMatrix(W));
    for (Isa isa : kAllLevels) {
      if (!kernels::isa_supported(isa)) continue;
      std::vector<float> y(out);
      kernels::qgemv_packed(x.data(), P, y.data(), 1, false, isa);
      for (int64_t r = 0; r < out; ++r) ASSERT_EQ(double(y[r]), want[r]) << kernels::isa_name(isa) << " row " << r;
    }
  }
}

TEST(QblocksPacked, EveryLevelBitIdenticalToLoadedLayout) {
  Rng rng(5);
  int compared = 0;
  for (int bits : {8, 4})
    for (int64_t in : {32, 96, 288})
      for (int64_t out : {1, 5, 16, 37}) {
        const QuantMatrix W = random_q(out, in, bits, rng);
        const kernels::PackedBlocks P = kernels::pack_blocks(QuantMatrix(W));
        for (int64_t n : {1, 3, 8, 19}) {  // 8, 19: prefill's token tiles, and a remainder
          const auto x = random_x(n * in, rng);
          for (bool acc : {false, true}) {
            std::vector<float> want(static_cast<size_t>(n * out), 0.5f);
            kernels::qgemv_blocks(x.data(), W, want.data(), n, acc, Isa::scalar);
            for (Isa isa : kAllLevels) {
              if (!kernels::isa_supported(isa)) continue;
              std::vector<float> y(static_cast<size_t>(n * out), 0.5f);
              kernels::qgemv_packed(x.data(), P, y.data(), n, acc, isa);
              ASSERT_TRUE(same_bytes(y, want)) << kernels::isa_name(isa) << " bits " << bits << " in " << in
                                               << " out " << out << " n " << n << " acc " << acc;
              ++compared;
            }
          }
        }
      }
  EXPECT_GT(compared, 0);
}

// Decode's fused q/k/v and gate/up: one loop over several matrices' row groups (mixed widths,
// partial last groups) gives each y the bytes of its own qgemv_packed call.
TEST(QblocksPacked, FusedEqualsOneCallPerMatrix) {
  Rng rng(8);
  const int64_t in = 96;
  const int64_t rows[] = {37, 16, 5, 48};
  const int bits[] = {4, 8, 4, 8};
  std::vector<kernels::PackedBlocks> P;
  for (int j = 0; j < 4; ++j) P.push_back(kernels::pack_blocks(random_q(rows[j], in, bits[j], rng)));
  for (int count : {1, 2, 3, 4})
    for (int64_t n : {1, 3, 9}) {
      const auto x = random_x(n * in, rng);
      for (Isa isa : kAllLevels) {
        if (!kernels::isa_supported(isa)) continue;
        std::vector<std::vector<float>> want(4), got(4);
        const kernels::PackedBlocks* ps[4];
        float* ys[4];
        for (int j = 0; j < count; ++j) {
          want[j].assign(static_cast<size_t>(n * rows[j]), 0.5f);
          got[j].assign(want[j].size(), 0.5f);
          kernels::qgemv_packed(x.data(), P[j], want[j].data(), n, false, isa);
          ps[j] = &P[j], ys[j] = got[j].data();
        }
        kernels::qgemv_packed_fused(x.data(), ps, ys, count, n, isa);
        for (int j = 0; j < count; ++j)
          ASSERT_TRUE(same_bytes(got[j], want[j])) << kernels::isa_name(isa) << " count " << count << " n " << n
                                                   << " matrix " << j;
      }
    }
}

TEST(QblocksPacked, DequantizedRowsEqualLoadedMatrix) {
  Rng rng(6);
  for (int bits : {8, 4}) {
    const QuantMatrix W = random_q(37, 96, bits, rng);
    const kernels::PackedBlocks P = kernels::pack_blocks(QuantMatrix(W));
    std::vector<float> want(20 * 96), got(20 * 96);
    W.dequantize_rows(13, 20, want.data());
    kernels::dequantize_packed_rows(P, 13, 20, got.data());
    EXPECT_TRUE(same_bytes(got, want)) << bits;
  }
}

TEST(QblocksPacked, PacksOnlyQ8_0AndQ4_0) {
  Rng rng(7);
  EXPECT_TRUE(kernels::packable(random_q(3, 64, 8, rng)));
  EXPECT_TRUE(kernels::packable(random_q(3, 64, 4, rng)));
  EXPECT_FALSE(kernels::packable(empty_quant_matrix(3, 64, {4, 32, false, false})));  // Q4_1
  EXPECT_FALSE(kernels::packable(empty_quant_matrix(3, 64, {8, 64, true, false})));   // wider groups
  EXPECT_FALSE(kernels::packable(empty_quant_matrix(3, 64, {6, 32, true, false})));
  EXPECT_FALSE(kernels::packable(empty_quant_matrix(3, 64, {8, 0, true, false})));    // per row
  EXPECT_THROW(kernels::pack_blocks(empty_quant_matrix(3, 64, {4, 32, false, false})), Error);
  const kernels::PackedBlocks P = kernels::pack_blocks(random_q(3, 64, 8, rng));
  std::vector<float> x(64, 1.0f), y(3);
  x[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(kernels::qgemv_packed(x.data(), P, y.data(), 1, false), Error);
}

// The per-block activation rounding every decode product starts with: the same bytes, scales
// and sums on every level; halves (x/d = k + 0.5 exactly), all-zero and tiny blocks included.
TEST(QblocksPacked, ActivationRoundingSameBytesAtEveryLevel) {
  Rng rng(8);
  const int64_t in = 32 * 7;
  std::vector<float> x(in);
  for (int64_t c = 0; c < in; ++c) x[c] = rng.uniform(-3.0f, 3.0f);
  for (int64_t c = 32; c < 64; ++c) x[c] = c == 33 ? 127.0f : float(int(rng.below(253)) - 126) + 0.5f;  // d = 1
  for (int64_t c = 64; c < 96; ++c) x[c] = 0.0f;
  for (int64_t c = 96; c < 128; ++c) x[c] = 1e-42f * float(c - 110);  // denormals: d underflows
  for (int64_t c = 128; c < 160; ++c) x[c] = c == 130 ? -254.0f : float(int(c) - 144);  // d = 2: halves again
  std::vector<int8_t> q0(in), q(in);
  std::vector<float> d0(7), d(7);
  std::vector<int32_t> s0(7), s(7);
  ASSERT_TRUE(kernels::quantize_blocks(x.data(), in, q0.data(), d0.data(), s0.data(), Isa::scalar));
  for (Isa isa : kAllLevels) {
    if (!kernels::isa_supported(isa)) continue;
    ASSERT_TRUE(kernels::quantize_blocks(x.data(), in, q.data(), d.data(), s.data(), isa));
    EXPECT_EQ(q, q0) << kernels::isa_name(isa);
    EXPECT_TRUE(std::memcmp(d.data(), d0.data(), 7 * sizeof(float)) == 0) << kernels::isa_name(isa);
    EXPECT_EQ(s, s0) << kernels::isa_name(isa);
    for (float bad : {std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
      std::vector<float> xb = x;
      xb[200] = bad;
      EXPECT_FALSE(kernels::quantize_blocks(xb.data(), in, q.data(), d.data(), s.data(), isa)) << kernels::isa_name(isa);
    }
  }
}
