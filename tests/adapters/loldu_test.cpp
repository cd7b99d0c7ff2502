// LoLDU (docs/METHODS.md §7; adapters/ldu.h, loldu_branch.h, loldu.h): the LDU slice, the exact
// zeros of the permuted residual, zero pivots, the start at the base for every init, and the
// exact integer merge of qaloldu. Gradient checks: grad_check_test.cpp (loldu, qloldu) and
// integer_methods_test.cpp (qaloldu, through the STE probe).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "adapters/ldu.h"
#include "adapters/linear.h"
#include "adapters/methods.h"
#include "fd_util.h"
#include "test_util.h"

using namespace qtune;

namespace {

Tensor random_weight(Rng& rng, int64_t out, int64_t in) {
  Tensor w({out, in});
  for (auto& v : w.data) v = static_cast<float>(rng.normal() * 0.5);
  return w;
}

// P·(L_r·diag(d)·Ū_r + S_r), back in W's row order.
std::vector<double> reconstruct(const LduSlice& s) {
  std::vector<double> w(static_cast<size_t>(s.out * s.in));
  for (int64_t i = 0; i < s.out; ++i)
    for (int64_t c = 0; c < s.in; ++c) {
      double v = s.schur[i * s.in + c];
      for (int64_t j = 0; j < s.rank; ++j) v += s.l[i * s.rank + j] * s.d[j] * s.ubar[j * s.in + c];
      w[s.perm[i] * s.in + c] = v;
    }
  return w;
}

MethodOptions loldu_opts(const std::string& method, const std::string& init, int rank = 3) {
  MethodOptions o;
  o.method = method;
  o.rank = rank;
  o.loldu_init = init;
  return o;
}

}  // namespace

TEST(LolduSlice, ReconstructsTheWeightAtEveryRank) {
  Rng rng(1);
  for (auto [out, in] : {std::pair<int64_t, int64_t>{9, 7}, {7, 9}, {16, 16}}) {
    Tensor w = random_weight(rng, out, in);
    for (int64_t r : {int64_t(1), int64_t(3), std::min(out, in)}) {
      const LduSlice s = ldu_slice(w.ptr(), out, in, r, /*keep_schur=*/true);
      EXPECT_EQ(s.zero_pivots, 0);
      std::vector<int32_t> sorted = s.perm;
      std::sort(sorted.begin(), sorted.end());
      for (int64_t i = 0; i < out; ++i) ASSERT_EQ(sorted[i], i) << "perm is not a permutation";
      EXPECT_LT(test::rel_err(reconstruct(s).data(), w.ptr(), w.numel()), 1e-14) << out << "x" << in << " r" << r;
      for (int64_t j = 0; j < r; ++j) {
        EXPECT_EQ(s.l[j * r + j], 1.0);
        EXPECT_EQ(s.ubar[j * in + j], 1.0);
        for (int64_t i = 0; i < j; ++i) EXPECT_EQ(s.l[i * r + j], 0.0);        // L lower triangular
        for (int64_t c = 0; c < j; ++c) EXPECT_EQ(s.ubar[j * in + c], 0.0);    // Ū upper triangular
        for (int64_t i = j + 1; i < out; ++i) EXPECT_LE(std::fabs(s.l[i * r + j]), 1.0);  // partial pivoting
      }
    }
  }
}

// W_res = W − σ0·P·L_r·diag(z0)·Ū_r with σ0 = 1 and z0 = d_r: Pᵀ·W_res is the Schur complement,
// exactly 0 in the r eliminated rows and columns; with another z0 it is not.
TEST(LolduSlice, PermutedResidualHasExactZerosWhereThePaperSays) {
  Rng rng(2);
  Tensor w = random_weight(rng, 12, 10);
  for (int64_t r : {2, 5, 10}) {
    const LduSlice s = ldu_slice(w.ptr(), 12, 10, r, true);
    const std::vector<double> res = permuted_residual(s, 1.0, s.d);
    for (int64_t i = 0; i < 12; ++i)
      for (int64_t c = 0; c < 10; ++c)
        if (i < r || c < r) EXPECT_EQ(res[i * 10 + c], 0.0) << "r " << r << " [" << i << ", " << c << "]";
    int64_t nonzero = 0;
    for (int64_t i = r; i < 12; ++i)
      for (int64_t c = r; c < 10; ++c) nonzero += res[i * 10 + c] != 0.0;
    EXPECT_EQ(nonzero, (12 - r) * (10 - r)) << "the trailing block holds the rest of W";
    std::vector<double> z0 = s.d;
    z0[0] *= 0.5;
    EXPECT_NE(permuted_residual(s, 1.0, z0)[0], 0.0) << "the residual must use the z0 it is given";
  }
}

TEST(LolduSlice, ZeroPivotsOfRankDeficientAndZeroWeightsAreGuarded) {
  Rng rng(3);
  // rank 2: W = a·bᵀ + c·dᵀ, [6, 5]
  Tensor w({6, 5});
  std::vector<double> a(6), b(5), c(6), d(5);
  for (auto* v : {&a, &b, &c, &d})
    for (auto& x : *v) x = rng.normal();
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t k = 0; k < 5; ++k) w.data[i * 5 + k] = static_cast<float>(a[i] * b[k] + c[i] * d[k]);
  const LduSlice s = ldu_slice(w.ptr(), 6, 5, 5, true);
  EXPECT_EQ(s.zero_pivots, 3);
  for (double x : s.ubar) ASSERT_TRUE(std::isfinite(x));
  for (double x : s.l) ASSERT_TRUE(std::isfinite(x));
  EXPECT_LT(test::rel_err(reconstruct(s).data(), w.ptr(), w.numel()), 1e-6);

  const Tensor zero({6, 5});
  const LduSlice z = ldu_slice(zero.ptr(), 6, 5, 5, true);
  EXPECT_EQ(z.zero_pivots, 5);
  // every method trains on an all-zero weight: finite outputs and a non-zero gradient of z
  for (const char* m : {"loldu", "qloldu", "qaloldu"})
    for (const std::string init : loldu_inits()) {
      SCOPED_TRACE(std::string(m) + " " + init);
      auto lin = make_linear<double>(loldu_opts(m, init, 5), "blk.0.attn_q", zero, true, rng);
      auto p = lin->trainable();
      ASSERT_EQ(p.size(), 1u);
      for (int64_t j = 0; j < p[0].numel; ++j) p[0].value[j] = 0.1 * (j + 1);  // z moved away from z0 = 0
      auto x = test::randn_double(3 * 5, rng), dy = test::randn_double(3 * 6, rng);
      std::vector<double> y(3 * 6), dx(3 * 5);
      Context ctx;
      lin->forward(x.data(), y.data(), 3, ctx);
      lin->backward(x.data(), dy.data(), dx.data(), 3, ctx);
      for (double v : y) ASSERT_TRUE(std::isfinite(v));
      double g = 0;
      for (int64_t j = 0; j < p[0].numel; ++j) g += std::fabs(p[0].grad[j]);
      if (std::string(m) != "qaloldu") EXPECT_GT(g, 0.0);  // qaloldu: the zero row's grid has no room
      for (double v : dx) ASSERT_TRUE(std::isfinite(v));
    }
}

TEST(LolduSlice, BadRanksAndInitsAreErrors) {
  Rng rng(4);
  Tensor w = random_weight(rng, 6, 4);
  EXPECT_NE(test::error_of([&] { ldu_slice(w.ptr(), 6, 4, 5); }).find("valid ranks: 1..4"), std::string::npos);
  EXPECT_NE(test::error_of([&] { ldu_slice(w.ptr(), 6, 4, 0); }).find("valid ranks"), std::string::npos);
  EXPECT_NE(test::error_of([&] { make_linear<float>(loldu_opts("loldu", "uniform", 5), "blk.0.attn_q", w, true, rng); })
                .find("--rank 5 is above min(out, in) = 4 of blk.0.attn_q"),
            std::string::npos);
  MethodOptions bad = loldu_opts("loldu", "bogus");
  EXPECT_NE(test::error_of([&] { validate(bad); }).find("--loldu-init 'bogus' is invalid"), std::string::npos);
  Tensor nan = w;
  nan.data[5] = NAN;
  EXPECT_NE(test::error_of([&] { ldu_slice(nan.ptr(), 6, 4, 2); }).find("non-finite value at [1, 1]"),
            std::string::npos);
}

// --rank full: min(out, in) per weight; all its pivots are used.
TEST(LolduSlice, FullRankTakesEveryPivot) {
  Rng rng(5);
  Tensor w = random_weight(rng, 8, 5);
  MethodOptions o = loldu_opts("loldu", "lu");
  o.rank = kFullRank;
  auto lin = make_linear<float>(o, "blk.0.attn_q", w, true, rng);
  EXPECT_EQ(lin->trainable()[0].numel, 5);
}

// The adapted slot starts as its base, for every init: exactly (c = σz − σ0·z0 = 0) on the float and
// the b-bit base; qaloldu's re-quantization of an unchanged integer gives the integer back.
TEST(LolduStart, EverySlotStartsAtItsBaseForEveryInit) {
  Rng rng(6);
  Tensor w = random_weight(rng, 40, 64);
  auto x = test::randn_double(5 * 64, rng);
  std::vector<float> xf(x.begin(), x.end());
  Context ctx;
  MethodOptions q = loldu_opts("qlora", "uniform");
  auto float_base = make_dense<float>("blk.0.attn_q", w, false);
  auto quant_base = make_qlora<float>("blk.0.attn_q", w, base_quant_spec(q), false, 1, 1.0f, rng);
  std::vector<float> want_f(5 * 40), want_q(5 * 40), got(5 * 40);
  float_base->forward(xf.data(), want_f.data(), 5, ctx);
  quant_base->forward(xf.data(), want_q.data(), 5, ctx);
  for (const char* m : {"loldu", "qloldu", "qaloldu"})
    for (const std::string init : loldu_inits())
      for (bool train_scale : {false, true}) {
        SCOPED_TRACE(std::string(m) + " " + init);
        MethodOptions o = loldu_opts(m, init, 8);
        o.loldu_train_scale = train_scale;
        auto lin = make_linear<float>(o, "blk.0.attn_q", w, true, rng);
        lin->forward(xf.data(), got.data(), 5, ctx);
        const std::vector<float>& want = std::string(m) == "loldu" ? want_f : want_q;
        EXPECT_LT(test::rel_err(got.data(), want.data(), got.size()), 1e-6);
        if (std::string(m) != "qaloldu") EXPECT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4));
      }
}
