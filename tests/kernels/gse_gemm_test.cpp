// The GSE GEMM (kernels/gse_gemm.h): every level and the dispatcher bit-identical to
// ref::gse_gemm on random and odd shapes (k not a multiple of G, zero groups, n or m = 1,
// extreme exponents, the largest dots), ref::gse_gemm against float64, thread-count
// independence, bad shapes.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/gse_gemm.h"
#include "test_util.h"

using namespace qtune;
using kernels::Isa;

namespace {

constexpr Isa kAllLevels[] = {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni};

GseSpec spec_of(int bits, int group, GseRule rule = GseRule::ceil, int exp_bits = 8) {
  GseSpec s;
  s.bits = bits;
  s.group = group;
  s.rule = rule;
  s.exp_bits = exp_bits;
  return s;
}

// Encoded Gaussian data: groups of 16 at magnitudes 2^−20 .. 2^20, one in 8 all zero.
GseMatrix random_encoded(int64_t rows, int64_t cols, const GseSpec& spec, Rng& rng) {
  std::vector<float> x(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int k = static_cast<int>(rng.below(41)) - 20;
      const bool zero = rng.below(8) == 0;
      for (int64_t c = c0; c < std::min(cols, c0 + 16); ++c)
        x[r * cols + c] = zero ? 0.0f : static_cast<float>(std::ldexp(rng.normal(), k));
    }
  return gse_encode(x.data(), rows, cols, spec);
}

// Hand-built: uniform mantissas over [−Qmax, Qmax] and exponents over the whole E-bit range.
GseMatrix random_raw(int64_t rows, int64_t cols, const GseSpec& spec, Rng& rng) {
  GseMatrix q = gse_zeros(rows, cols, spec);
  const int qmax = spec.qmax();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      q.mant[r * q.stride() + c] = static_cast<int8_t>(static_cast<int>(rng.below(2 * qmax + 1)) - qmax);
    for (int64_t g = 0; g < q.groups(); ++g)
      q.exps[r * q.groups() + g] = static_cast<int16_t>(static_cast<int>(rng.below(2 * spec.emax() + 1)) - spec.emax());
  }
  return q;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Every supported level and the dispatcher against ref::gse_gemm, bit for bit, starting from the
// same random C (so accumulate is checked too). Returns how many SIMD levels ran.
int expect_all_paths_equal_ref(const GseMatrix& A, const GseMatrix& B, bool acc, Rng& rng, const std::string& what) {
  std::vector<float> c0(static_cast<size_t>(A.rows * B.rows));
  for (auto& v : c0) v = rng.uniform(-1.0f, 1.0f);
  auto cr = c0;
  kernels::ref::gse_gemm(A, B, cr.data(), acc);
  int simd = 0;
  for (Isa isa : kAllLevels) {
    if (!kernels::isa_supported(isa)) continue;
    auto c = c0;
    kernels::gse_gemm(A, B, c.data(), acc, isa);
    EXPECT_TRUE(same_bytes(c, cr)) << what << " level " << kernels::isa_name(isa);
    simd += isa != Isa::scalar;
  }
  auto c = c0;
  kernels::gse_gemm(A, B, c.data(), acc);
  EXPECT_TRUE(same_bytes(c, cr)) << what << " dispatcher";
  return simd;
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

// Random and odd shapes, every G, mixed mantissa widths, both rules, accumulate or not.
TEST(GseGemm, EveryPathEqualsReferenceExactly) {
  Rng rng(201);
  constexpr int64_t kNs[] = {1, 2, 5, 8, 9, 33, 70};
  constexpr int64_t kMs[] = {1, 3, 16, 17, 31, 32, 33, 65};
  constexpr int64_t kKs[] = {1, 4, 15, 16, 17, 33, 100, 128, 129, 300};
  int simd = 0;
  for (int G : {16, 32, 64, 128})
    for (int rep = 0; rep < 12; ++rep) {
      const int64_t n = kNs[rng.below(std::size(kNs))], m = kMs[rng.below(std::size(kMs))],
                    k = kKs[rng.below(std::size(kKs))];
      const int ba = 4 + static_cast<int>(rng.below(5)), bb = 4 + static_cast<int>(rng.below(5));
      const GseRule rule = rng.below(2) ? GseRule::mx : GseRule::ceil;
      const bool acc = rng.below(2);
      const GseMatrix A = random_encoded(n, k, spec_of(ba, G, rule), rng);
      const GseMatrix B = random_encoded(m, k, spec_of(bb, G, rule), rng);
      simd += expect_all_paths_equal_ref(
          A, B, acc, rng, fmt::format("n {} m {} k {} G {} bA {} bB {} acc {}", n, m, k, G, ba, bb, acc));
    }
  if (kernels::isa_supported(Isa::avx2)) {
    EXPECT_GT(simd, 0);
  }
}

// Exponents over the whole E = 8 range (2^(eA+eB) from 2^−254 to 2^254: C holds zeros, infs and
// everything between), and E = 16 with exponents up to ±500 (still exact terms in double).
TEST(GseGemm, ExtremeExponentsEqualReference) {
  Rng rng(202);
  for (int E : {8, 16})
    for (int G : {16, 32, 64, 128}) {
      GseSpec spec = spec_of(8, G, GseRule::ceil, E);
      GseMatrix A = random_raw(19, 2 * G + 5, spec, rng), B = random_raw(37, 2 * G + 5, spec, rng);
      if (E == 16)
        for (auto* q : {&A, &B})
          for (auto& e : q->exps) e = static_cast<int16_t>(e % 500);
      expect_all_paths_equal_ref(A, B, false, rng, fmt::format("E {} G {}", E, G));
    }
  // one exact case: eA = 127, eB = −127 → 2^0; eA = eB = 127 → 2^254 = inf in float
  GseMatrix A = gse_zeros(1, 32, spec_of(8, 16)), B = gse_zeros(2, 32, spec_of(8, 16));
  for (int c = 0; c < 32; ++c) A.mant[c] = 1, B.mant[c] = 1, B.mant[32 + c] = -1;
  A.exps[0] = A.exps[1] = 127;
  B.exps[0] = B.exps[1] = -127;  // row 0
  B.exps[2] = 127;               // row 1, group 0: −16 · 2^254
  B.exps[3] = -127;              // row 1, group 1: −16
  for (Isa isa : kAllLevels) {
    if (!kernels::isa_supported(isa)) continue;
    float c[2];
    kernels::gse_gemm(A, B, c, false, isa);
    EXPECT_EQ(c[0], 32.0f) << kernels::isa_name(isa);
    EXPECT_EQ(c[1], -std::numeric_limits<float>::infinity()) << kernels::isa_name(isa);
  }
}

// The largest dots: every mantissa ±127 over G = 128 (|dot| = 128·127² = 2064512), all-zero
// groups (e = emin), n = 1 and m = 1.
TEST(GseGemm, LargestDotsZeroGroupsAndVectors) {
  Rng rng(203);
  const int64_t k = 128 * 3 + 7;
  GseMatrix A = gse_zeros(9, k, spec_of(8, 128)), B = gse_zeros(40, k, spec_of(8, 128));
  for (int64_t r = 0; r < A.rows; ++r)
    for (int64_t c = 0; c < k; ++c) A.mant[r * A.stride() + c] = 127;
  for (int64_t r = 0; r < B.rows; ++r)
    for (int64_t c = 0; c < k; ++c) B.mant[r * B.stride() + c] = (r % 2 || c >= 128) ? -127 : 127;
  for (auto& e : A.exps) e = 0;
  for (auto& e : B.exps) e = 0;
  std::vector<float> c(9 * 40);
  kernels::gse_gemm(A, B, c.data(), false);
  EXPECT_EQ(c[0], float(127 * 127 * (128 - 128 * 2 - 7)));  // +128 products, −(128·2 + 7)
  EXPECT_EQ(c[1], float(-127 * 127 * k));
  expect_all_paths_equal_ref(A, B, true, rng, "all ±127");
  // zero groups in both (e = emin)
  for (int64_t c0 = 0; c0 < 128; ++c0) A.mant[c0] = 0, B.mant[B.stride() + c0] = 0;
  A.exps[0] = B.exps[4] = -127;  // A row 0 and B row 1, group 0
  expect_all_paths_equal_ref(A, B, false, rng, "zero groups");
  // n = 1, m = 1, and both
  for (auto [n, m] : {std::pair<int64_t, int64_t>{1, 50}, {50, 1}, {1, 1}}) {
    const GseSpec s = spec_of(6, 32, GseRule::mx);
    expect_all_paths_equal_ref(random_encoded(n, 77, s, rng), random_encoded(m, 77, s, rng), false, rng,
                               fmt::format("n {} m {}", n, m));
  }
}

// ref::gse_gemm is the GSE product: against Σ_c x̂A·x̂B in float64 of the decoded values.
TEST(GseGemm, ReferenceMatchesFloat64OfDecoded) {
  Rng rng(204);
  for (int G : {16, 128}) {
    const int64_t n = 6, m = 11, k = 300;
    const GseMatrix A = random_encoded(n, k, spec_of(8, G), rng), B = random_encoded(m, k, spec_of(5, G), rng);
    std::vector<float> c(n * m);
    kernels::ref::gse_gemm(A, B, c.data(), false);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        double s = 0, mag = 0;
        for (int64_t t = 0; t < k; ++t) {
          s += A.value(i, t) * B.value(j, t);
          mag += std::fabs(A.value(i, t) * B.value(j, t));
        }
        EXPECT_NEAR(c[i * m + j], s, 1e-6 * mag + 1e-30) << i << " " << j;
      }
  }
}

// One thread or several (the tiles run in parallel above ~1M products): the same bytes.
TEST(GseGemm, ThreadCountIndependent) {
  Rng rng(205);
  const GseSpec s = spec_of(8, 32);
  const GseMatrix A = random_encoded(100, 333, s, rng), B = random_encoded(90, 333, s, rng);
  const int threads = omp_get_max_threads();
  std::vector<float> c1(100 * 90), c2(100 * 90);
  omp_set_num_threads(1);
  kernels::gse_gemm(A, B, c1.data(), false);
  omp_set_num_threads(std::max(2, threads));
  kernels::gse_gemm(A, B, c2.data(), false);
  omp_set_num_threads(threads);
  EXPECT_TRUE(same_bytes(c1, c2));
}

TEST(GseGemm, BadShapesThrow) {
  Rng rng(206);
  const GseMatrix A = random_encoded(3, 40, spec_of(8, 32), rng);
  const GseMatrix B = random_encoded(4, 41, spec_of(8, 32), rng);
  const GseMatrix B16 = random_encoded(4, 40, spec_of(8, 16), rng);
  std::vector<float> c(12);
  EXPECT_NE(error_of([&] { kernels::gse_gemm(A, B, c.data(), false); }).find("A [3, 40] and B [4, 41] differ in k"),
            std::string::npos);
  EXPECT_NE(error_of([&] { kernels::ref::gse_gemm(A, B16, c.data(), false); })
                .find("grouped differently (G = 32 and 16)"),
            std::string::npos);
  GseMatrix broken = A;
  broken.exps.resize(1);
  EXPECT_NE(error_of([&] { kernels::gse_gemm(broken, A, c.data(), false); }).find("(inconsistent)"), std::string::npos);
  // k = 0: an empty sum; n = 0: nothing
  const GseMatrix E0 = gse_zeros(3, 0, spec_of(8, 32)), E1 = gse_zeros(4, 0, spec_of(8, 32));
  std::vector<float> z(12, 5.0f);
  kernels::gse_gemm(E0, E1, z.data(), false);
  for (float v : z) EXPECT_EQ(v, 0.0f);
  kernels::gse_gemm(gse_zeros(0, 40, spec_of(8, 32)), A, nullptr, false);
}
