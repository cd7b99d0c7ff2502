// The integer GEMM: every path bit-identical to ref::igemm, ref::igemm against float64,
// exactness at the extremes, thread-count independence, and activation quantization.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/igemm.h"
#include "test_util.h"

using namespace qtune;
using kernels::Isa;

namespace {

// Every level (kernels/cpu_features.h): avx512f runs igemm's AVX2 loops, avx512bw and
// avx512vnni their own.
constexpr Isa kAllLevels[] = {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni};

enum class Offsets { integral, fractional };

// Random codes over the whole range [0, 2^b − 1], random scales, and zero points that are
// integral or (like a Q4_1 block from another tool) not; symmetric matrices ignore them.
QuantMatrix random_matrix(int64_t rows, int64_t cols, int bits, int group, bool sym, Offsets offs, Rng& rng) {
  QuantMatrix W = empty_quant_matrix(rows, cols, {bits, group, sym, false});
  const uint64_t levels = uint64_t(1) << bits;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) W.set_code(r, c, static_cast<uint32_t>(rng.below(levels)));
  for (auto& s : W.scale) s = rng.uniform(0.001f, 0.1f);
  for (auto& z : W.zero)
    z = offs == Offsets::integral ? static_cast<float>(rng.below(levels))
                                  : rng.uniform(-2.0f, static_cast<float>(levels) + 2.0f);
  return W;
}

std::vector<int8_t> random_xq(int64_t n, Rng& rng) {
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(static_cast<int>(rng.below(255)) - 127);
  return v;
}

std::vector<float> random_scales(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& s : v) s = rng.uniform(0.001f, 0.05f);
  return v;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs every supported level and the dispatcher on one problem and expects y bit-identical to
// ref::igemm. Returns how many non-scalar runs it made.
int expect_all_paths_equal_ref(const std::vector<int8_t>& xq, const std::vector<float>& a, const QuantMatrix& W,
                               int64_t n, bool acc, Rng& rng, const std::string& what) {
  std::vector<float> y0(static_cast<size_t>(n * W.rows));
  for (auto& v : y0) v = rng.uniform(-1.0f, 1.0f);
  auto yr = y0;
  kernels::ref::igemm(xq.data(), a.data(), W, yr.data(), n, acc);
  int simd = 0;
  for (auto k : kAllLevels) {
    if (!kernels::isa_supported(k)) continue;
    auto y = y0;
    kernels::igemm(xq.data(), a.data(), W, y.data(), n, acc, k);
    EXPECT_TRUE(same_bytes(y, yr)) << what << " level " << kernels::isa_name(k);
    simd += k != Isa::scalar;
  }
  auto y = y0;
  kernels::igemm(xq.data(), a.data(), W, y.data(), n, acc);
  EXPECT_TRUE(same_bytes(y, yr)) << what << " dispatcher";
  return simd;
}

std::string describe(int64_t n, int64_t in, int64_t out, int bits, int group, bool sym, Offsets offs, bool acc) {
  return fmt::format("n {} in {} out {} bits {} group {} {} {} acc {}", n, in, out, bits, group,
                     sym ? "sym" : "asym", offs == Offsets::integral ? "int-off" : "frac-off", acc);
}

constexpr int kBits[] = {2, 3, 4, 5, 6, 7, 8, 16};
constexpr int kGroups[] = {0, 5, 7, 16, 24, 32, 48, 64, 96};
constexpr int64_t kNs[] = {1, 2, 3, 7, 17, 33};
constexpr int64_t kIns[] = {1, 3, 17, 31, 32, 33, 63, 64, 100, 172, 257};
constexpr int64_t kOuts[] = {1, 5, 16, 65};

}  // namespace

// Random shapes for every (bits, group, symmetric, offsets) combination.
TEST(IGemm, EveryPathEqualsReferenceExactly) {
  Rng rng(101);
  int simd = 0;
  for (int bits : kBits)
    for (int group : kGroups)
      for (bool sym : {false, true})
        for (Offsets offs : {Offsets::integral, Offsets::fractional}) {
          if (sym && offs == Offsets::fractional) continue;  // symmetric: the offset is 2^(b−1)
          for (int rep = 0; rep < 4; ++rep) {
            const int64_t n = kNs[rng.below(std::size(kNs))], in = kIns[rng.below(std::size(kIns))],
                          out = kOuts[rng.below(std::size(kOuts))];
            const bool acc = rng.below(2);
            QuantMatrix W = random_matrix(out, in, bits, group, sym, offs, rng);
            auto xq = random_xq(n * in, rng);
            auto a = random_scales(n, rng);
            const std::string what = describe(n, in, out, bits, group, sym, offs, acc);
            simd += expect_all_paths_equal_ref(xq, a, W, n, acc, rng, what);
          }
        }
  if (kernels::isa_supported(Isa::avx2)) {
    EXPECT_GT(simd, 0);
  }
}

// Every input width with every code width (the head/tail logic of every loop).
TEST(IGemm, EveryInputWidthEveryCodeWidth) {
  Rng rng(102);
  for (int64_t in : kIns)
    for (int bits : kBits)
      for (int64_t n : {int64_t(1), int64_t(2), int64_t(3)}) {
        const int group = kGroups[rng.below(std::size(kGroups))];
        const bool sym = rng.below(2);
        QuantMatrix W = random_matrix(5, in, bits, group, sym, Offsets::integral, rng);
        auto xq = random_xq(n * in, rng);
        auto a = random_scales(n, rng);
        expect_all_paths_equal_ref(xq, a, W, n, false, rng,
                                   describe(n, in, 5, bits, group, sym, Offsets::integral, false));
      }
}

// ref::igemm against the float64 product of the dequantized weights and activations.
TEST(IGemm, ReferenceMatchesFloat64) {
  Rng rng(103);
  for (int bits : kBits)
    for (int group : {0, 7, 32}) {
      for (bool sym : {false, true}) {
        const int64_t n = 7, in = 172, out = 65;
        QuantMatrix W = random_matrix(out, in, bits, group, sym, sym ? Offsets::integral : Offsets::fractional, rng);
        auto xq = random_xq(n * in, rng);
        auto a = random_scales(n, rng);
        std::vector<float> y(n * out);
        kernels::ref::igemm(xq.data(), a.data(), W, y.data(), n, false);
        std::vector<double> want(n * out);
        const int64_t gs = W.group_size(), ng = W.groups_per_row();
        for (int64_t t = 0; t < n; ++t)
          for (int64_t o = 0; o < out; ++o) {
            double s = 0;
            for (int64_t c = 0; c < in; ++c) {
              const int64_t g = c / gs;
              const double w = double(W.scale[o * ng + g]) * (double(W.code(o, c)) - double(W.offset(o, g)));
              s += w * (double(xq[t * in + c]) * double(a[t]));
            }
            want[t * out + o] = s;
          }
        EXPECT_LE(test::rel_err(y.data(), want.data(), y.size()), 1e-6) << bits << " " << group << " " << sym;
      }
    }
}

// All codes at their maximum and |xq| = 127 everywhere, on rows long enough that a plain
// int32 accumulator would overflow (16-bit: 4096·65535·127 ≈ 3.4e10; 8-bit: 70000·255·127).
TEST(IGemm, ExtremeValuesStayExact) {
  struct Case {
    int bits;
    int64_t in;
    int group;
  };
  for (const Case& cs : {Case{16, 4096, 0}, Case{16, 4099, 1000}, Case{8, 70000, 0}, Case{4, 70001, 0},
                         Case{7, 40000, 0}}) {
    const int64_t n = 3, out = 5, in = cs.in;
    QuantMatrix W = empty_quant_matrix(out, in, {cs.bits, cs.group, false, false});
    const uint32_t qmax = (1u << cs.bits) - 1;
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < in; ++c) W.set_code(o, c, qmax);
    for (size_t i = 0; i < W.scale.size(); ++i) W.scale[i] = 0.5f + 0.25f * static_cast<float>(i % 3);
    for (size_t i = 0; i < W.zero.size(); ++i) W.zero[i] = (i % 2) ? 0.0f : 0.5f;  // 0: no cancellation
    // token 0: +127, token 1: −127, token 2: +127 / −127 alternating by column
    std::vector<int8_t> xq(n * in);
    for (int64_t c = 0; c < in; ++c) {
      xq[c] = 127;
      xq[in + c] = -127;
      xq[2 * in + c] = (c & 1) ? -127 : 127;
    }
    const std::vector<float> a = {1e-3f, 2e-3f, 3e-3f};
    // the exact sums, by hand
    const int64_t gs = W.group_size(), ng = W.groups_per_row();
    std::vector<float> want(n * out);
    for (int64_t t = 0; t < n; ++t) {
      std::vector<int64_t> dots(ng), xsums(ng);
      for (int64_t g = 0; g < ng; ++g) {
        for (int64_t c = g * gs; c < std::min(in, (g + 1) * gs); ++c) xsums[g] += xq[t * in + c];
        dots[g] = xsums[g] * int64_t(qmax);
      }
      for (int64_t o = 0; o < out; ++o) {
        std::vector<float> off(ng);
        for (int64_t g = 0; g < ng; ++g) off[g] = W.offset(o, g);
        want[t * out + o] =
            kernels::igemm_combine(dots.data(), xsums.data(), W.scale.data() + o * ng, off.data(), ng, a[t]);
      }
    }
    std::vector<float> yr(n * out);
    kernels::ref::igemm(xq.data(), a.data(), W, yr.data(), n, false);
    EXPECT_TRUE(same_bytes(yr, want)) << cs.bits << " " << in;
    for (auto k : kAllLevels) {
      if (!kernels::isa_supported(k)) continue;
      std::vector<float> y(n * out);
      kernels::igemm(xq.data(), a.data(), W, y.data(), n, false, k);
      EXPECT_TRUE(same_bytes(y, want)) << cs.bits << " " << in << " " << kernels::isa_name(k);
    }
  }
}

// Each output is one thread's exact integers and one igemm_combine: any thread count gives
// the same bytes.
TEST(IGemm, SameBytesForAnyThreadCount) {
  Rng rng(104);
  const int64_t in = 300, out = 130;
  for (int bits : {4, 8, 16}) {
    QuantMatrix W = random_matrix(out, in, bits, 32, false, Offsets::fractional, rng);
    for (int64_t n : {1, 17}) {
      auto xq = random_xq(n * in, rng);
      auto a = random_scales(n, rng);
      std::vector<std::vector<float>> ys;
      for (int threads : {1, 2, 3}) {
        omp_set_num_threads(threads);
        ys.emplace_back(n * out);
        kernels::igemm(xq.data(), a.data(), W, ys.back().data(), n, false);
      }
      EXPECT_TRUE(same_bytes(ys[0], ys[1])) << bits << " " << n;
      EXPECT_TRUE(same_bytes(ys[0], ys[2])) << bits << " " << n;
    }
  }
  kernels::set_num_threads(0);
}

// A quantized model's weights and activations: igemm ≈ the float path on x̂ = s·xq.
TEST(IGemm, MatchesFloatPathOnFakeQuantActivations) {
  Rng rng(105);
  const int64_t n = 9, in = 96, out = 40;
  std::vector<float> w(out * in), x(n * in);
  for (auto& v : w) v = static_cast<float>(rng.normal());
  for (auto& v : x) v = static_cast<float>(rng.normal());
  for (QuantSpec spec : {QuantSpec{4, 32, false, false}, QuantSpec{8, 0, true, false}}) {
    QuantMatrix W = quantize(w.data(), out, in, spec);
    std::vector<int8_t> xq(n * in);
    std::vector<float> s(n), xhat(n * in), y(n * out), yf(n * out);
    kernels::quantize_activations(x.data(), n, in, 0.0f, xq.data(), s.data());
    for (int64_t i = 0; i < n * in; ++i) xhat[i] = s[i / in] * xq[i];
    kernels::igemm(xq.data(), s.data(), W, y.data(), n, false);
    kernels::qmatmul_nt(xhat.data(), W, yf.data(), n, false);
    EXPECT_LT(test::rel_err(y.data(), yf.data(), y.size()), 1e-5) << spec.bits;
  }
}

TEST(IGemm, EmptyShapes) {
  QuantMatrix W;  // [3, 0], built by hand (a zero-width row has no group to size)
  W.rows = 3;
  const float a[2] = {1, 1};
  std::vector<float> y(6, 5.0f);
  kernels::igemm(nullptr, a, W, y.data(), 2, true);
  EXPECT_EQ(y, std::vector<float>(6, 5.0f));
  kernels::igemm(nullptr, a, W, y.data(), 2, false);
  EXPECT_EQ(y, std::vector<float>(6, 0.0f));
  kernels::ref::igemm(nullptr, a, W, y.data(), 0, false);  // n = 0: nothing
}

TEST(QuantizeActivations, HandComputed) {
  // dynamic: max|x| = 15.875 → s = 0.125 (exact); x/s = 0.5 → 1, −0.5 → −1, 1.5 → 2, −2.5 → −3
  // (round half away from zero, not to even)
  {
    const float s = 0.125f;
    const float x[6] = {15.875f, -15.875f, 0.0625f, -0.0625f, 0.1875f, -0.3125f};
    int8_t q[6];
    float scale;
    kernels::quantize_activations(x, 1, 6, 0.0f, q, &scale);
    EXPECT_EQ(scale, s);
    const int8_t want[6] = {127, -127, 1, -1, 2, -3};
    for (int c = 0; c < 6; ++c) EXPECT_EQ(q[c], want[c]) << c;
  }
  // static 0.5: x/0.5 = 3.25 → 3, 3.75 → 4, 1000 → 127 (clamp), −1000 → −127, 0.25 → 1 (0.5 rounds up)
  // two tokens share the scale; a zero row keeps it
  {
    const float x[8] = {1.625f, 1.875f, 500.0f, -500.0f, 0.25f, -0.25f, 0.0f, 0.0f};
    int8_t q[8];
    float scale[2];
    kernels::quantize_activations(x, 2, 4, 0.5f, q, scale);
    EXPECT_EQ(scale[0], 0.5f);
    EXPECT_EQ(scale[1], 0.5f);
    const int8_t want[8] = {3, 4, 127, -127, 1, -1, 0, 0};
    for (int c = 0; c < 8; ++c) EXPECT_EQ(q[c], want[c]) << c;
  }
  // dynamic: a zero row gets scale 1 and zeros; a row's scale is its own max|x| / 127
  {
    const float x[6] = {0, 0, 0, 1.0f, -254.0f, 127.0f};
    int8_t q[6];
    float scale[2];
    kernels::quantize_activations(x, 2, 3, 0.0f, q, scale);
    EXPECT_EQ(scale[0], 1.0f);
    EXPECT_EQ(scale[1], 2.0f);
    const int8_t want[6] = {0, 0, 0, 1, -127, 64};  // 1/2 = 0.5 → 1; 127/2 = 63.5 → 64
    for (int c = 0; c < 6; ++c) EXPECT_EQ(q[c], want[c]) << c;
  }
}

// The same integers as the training fake-quant s·clamp(round_half_away(x / s)), on every
// SIMD path: random values, exact halves, ±0, values past the clamp, odd row lengths (tails).
TEST(QuantizeActivations, EveryPathMatchesFakeQuantFormula) {
  Rng rng(106);
  for (int64_t in : {1, 7, 16, 33, 64, 333}) {
    const int64_t n = 5;
    std::vector<float> x(n * in);
    for (auto& v : x) v = static_cast<float>(rng.normal() * 3);
    // token 1: with the static scale 0.25, x / s is exactly one of these (halves, ±0, clamped, tiny)
    // 0.49999997f (the float just below 0.5): trunc(v + 0.5f) would round it up, std::round not
    const float specials[] = {0.0f,    -0.0f,  0.5f,  -0.5f, 1.5f,        -2.5f,        126.5f,
                              -126.5f, 127.49f, 1e30f, -1e30f, 1e-30f, 0.49999997f, -0.49999997f};
    for (int64_t c = 0; c < in; ++c) x[in + c] = specials[c % std::size(specials)] * 0.25f;
    std::fill(x.begin() + 2 * in, x.begin() + 3 * in, 0.0f);  // token 2: all zero
    for (float st : {0.0f, 0.25f, 0.02f}) {
      for (auto p : kAllLevels) {
        if (!kernels::isa_supported(p)) continue;
        std::vector<int8_t> q(n * in);
        std::vector<float> s(n);
        kernels::quantize_activations(x.data(), n, in, st, q.data(), s.data(), p);
        for (int64_t t = 0; t < n; ++t) {
          float amax = 0;
          for (int64_t c = 0; c < in; ++c) amax = std::max(amax, std::fabs(x[t * in + c]));
          const float want_s = st > 0 ? st : amax > 0 ? amax / 127.0f : 1.0f;
          EXPECT_EQ(s[t], want_s) << t;
          for (int64_t c = 0; c < in; ++c) {
            const float r = std::clamp(std::round(x[t * in + c] / s[t]), -127.0f, 127.0f);
            ASSERT_EQ(q[t * in + c], static_cast<int8_t>(r)) << "path " << kernels::isa_name(p) << " in " << in << " t " << t
                                                             << " c " << c << " x " << x[t * in + c];
          }
        }
      }
    }
  }
}

TEST(QuantizeActivations, RejectsBadInput) {
  const float inf = std::numeric_limits<float>::infinity();
  const float x[4] = {1, 2, std::nanf(""), 4};
  int8_t q[4];
  float s[2];
  std::vector<float> longer(100, 1.0f);
  longer[77] = -inf;
  std::vector<int8_t> ql(100);
  for (auto p : kAllLevels) {
    if (!kernels::isa_supported(p)) continue;
    EXPECT_THROW(kernels::quantize_activations(x, 2, 2, 0.0f, q, s, p), Error);
    EXPECT_THROW(kernels::quantize_activations(longer.data(), 1, 100, 0.0f, ql.data(), s, p), Error);
    longer[77] = std::nanf("");
    EXPECT_THROW(kernels::quantize_activations(longer.data(), 1, 100, 0.0f, ql.data(), s, p), Error);
    longer[77] = -inf;
  }
  const float y[2] = {1, inf};
  EXPECT_THROW(kernels::quantize_activations(y, 1, 2, 0.5f, q, s), Error);
  EXPECT_THROW(kernels::quantize_activations(x, 1, 2, -1.0f, q, s), Error);
}
