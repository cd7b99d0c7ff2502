// The integer GEMM with asymmetric b-bit activations carried in int8 (igemm_zp): every path
// bit-identical to ref::igemm_zp, the reference against float64 of the fake-quantized product,
// the carried codes against the float fake quantizer, a_zero = 0 against igemm, bad input.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/igemm.h"
#include "test_util.h"

using namespace qtune;
using kernels::Isa;

namespace {

constexpr Isa kAllLevels[] = {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni};

// Random codes over [0, 2^b − 1], random scales; zero points integral or (Q4_1-like) fractional.
QuantMatrix random_matrix(int64_t rows, int64_t cols, int bits, int group, bool sym, bool frac_off, Rng& rng) {
  QuantMatrix W = empty_quant_matrix(rows, cols, {bits, group, sym, false});
  const uint64_t levels = uint64_t(1) << bits;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) W.set_code(r, c, static_cast<uint32_t>(rng.below(levels)));
  for (auto& s : W.scale) s = rng.uniform(0.001f, 0.1f);
  for (auto& z : W.zero)
    z = frac_off ? rng.uniform(-2.0f, static_cast<float>(levels) + 2.0f) : static_cast<float>(rng.below(levels));
  return W;
}

// Carried b-bit activations as quantize_activations_asym makes them: xq = u − 2^(b−1) for
// u ∈ [0, 2^b − 1] (the first entries of each token at the extremes), and per-token carried zero
// points z − 2^(b−1), z ∈ [0, 2^b − 1], token 0 at z = 0 and token 1 at z = 2^b − 1.
struct Acts {
  std::vector<int8_t> xq;
  std::vector<float> scale;
  std::vector<int32_t> zero;  // carried
};
Acts random_acts(int64_t n, int64_t in, int abits, Rng& rng) {
  const int32_t levels = 1 << abits, mid = 1 << (abits - 1);
  Acts a;
  a.xq.resize(n * in);
  a.scale.resize(n);
  a.zero.resize(n);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t c = 0; c < in; ++c) {
      const int32_t u = c == 0 ? 0 : c == 1 ? levels - 1 : static_cast<int32_t>(rng.below(levels));
      a.xq[t * in + c] = static_cast<int8_t>(u - mid);
    }
    a.scale[t] = rng.uniform(0.001f, 0.05f);
    const int32_t z = t == 0 ? 0 : t == 1 ? levels - 1 : static_cast<int32_t>(rng.below(levels));
    a.zero[t] = z - mid;
  }
  return a;
}

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST(IgemmZp, EveryPathEqualsReferenceExactly) {
  Rng rng(201);
  int simd = 0;
  for (int bits : {2, 4, 8, 16})
    for (int group : {0, 32})
      for (bool sym : {false, true})
        for (int abits : {4, 8})
          for (int64_t n : {1, 2, 3, 17})
            for (int64_t in : {33, 100, 64, 256})
              for (bool acc : {false, true}) {
                const int64_t out = 1 + static_cast<int64_t>(rng.below(21));
                const bool frac = !sym && rng.below(4) == 0;
                QuantMatrix W = random_matrix(out, in, bits, group, sym, frac, rng);
                const Acts a = random_acts(n, in, abits, rng);
                std::vector<float> y0(n * out);
                for (auto& v : y0) v = rng.uniform(-1.0f, 1.0f);
                auto yr = y0;
                kernels::ref::igemm_zp(a.xq.data(), a.scale.data(), a.zero.data(), W, yr.data(), n, acc);
                const std::string what = fmt::format("bits {} group {} {} abits {} n {} in {} out {} acc {}", bits,
                                                     group, sym ? "sym" : frac ? "frac-off" : "asym", abits, n, in,
                                                     out, acc);
                for (auto k : kAllLevels) {
                  if (!kernels::isa_supported(k)) continue;
                  auto y = y0;
                  kernels::igemm_zp(a.xq.data(), a.scale.data(), a.zero.data(), W, y.data(), n, acc, k);
                  EXPECT_TRUE(same_bytes(y, yr)) << what << " level " << kernels::isa_name(k);
                  simd += k != Isa::scalar;
                }
                auto y = y0;
                kernels::igemm_zp(a.xq.data(), a.scale.data(), a.zero.data(), W, y.data(), n, acc);
                EXPECT_TRUE(same_bytes(y, yr)) << what << " dispatcher";
              }
  if (kernels::isa_supported(Isa::avx2)) {
    EXPECT_GT(simd, 0);
  }
}

// Σ_c (s_a·(xq − z'))·(w_s·(code − off)) in double.
TEST(IgemmZp, ReferenceEqualsFloat64OfTheFakeQuantizedProduct) {
  Rng rng(202);
  for (int bits : {2, 4, 8, 16})
    for (int group : {0, 7, 32})
      for (bool sym : {false, true})
        for (int abits : {2, 4, 8}) {
          const int64_t n = 5, in = 172, out = 33;
          QuantMatrix W = random_matrix(out, in, bits, group, sym, !sym, rng);
          const Acts a = random_acts(n, in, abits, rng);
          std::vector<float> y(n * out);
          kernels::ref::igemm_zp(a.xq.data(), a.scale.data(), a.zero.data(), W, y.data(), n, false);
          std::vector<double> want(n * out);
          const int64_t gs = W.group_size(), ng = W.groups_per_row();
          for (int64_t t = 0; t < n; ++t)
            for (int64_t o = 0; o < out; ++o) {
              double s = 0;
              for (int64_t c = 0; c < in; ++c) {
                const int64_t g = c / gs;
                const double w = double(W.scale[o * ng + g]) * (double(W.code(o, c)) - double(W.offset(o, g)));
                s += (double(a.scale[t]) * (double(a.xq[t * in + c]) - double(a.zero[t]))) * w;
              }
              want[t * out + o] = s;
            }
          EXPECT_LE(test::rel_err(y.data(), want.data(), y.size()), 1e-6)
              << bits << " " << group << " " << sym << " " << abits;
        }
}

// scale·(xq − zero_carried) == s·(clamp(round(x/s) + z, 0, 2^b − 1) − z) in float, exactly.
TEST(IgemmZp, CarriedCodesEqualTheFakeQuantizer) {
  Rng rng(203);
  for (int bits = 2; bits <= 8; ++bits) {
    const int32_t qmax = (1 << bits) - 1, mid = 1 << (bits - 1);
    for (int64_t in : {1, 7, 33, 100}) {
      const int64_t n = 6;
      std::vector<float> x(n * in), scale(n);
      std::vector<int32_t> zero(n);
      for (int64_t t = 0; t < n; ++t) {
        scale[t] = t == 1 ? 0.25f : rng.uniform(0.01f, 0.5f);
        zero[t] = t == 2 ? 0 : t == 3 ? qmax : static_cast<int32_t>(rng.below(qmax + 1));
      }
      for (auto& v : x) v = static_cast<float>(rng.normal() * 2);
      // token 1 (s = 0.25): x / s exactly at halves (round away from zero), ±0, far past both clips,
      // the float just below 0.5 (std::round keeps it at 0)
      const float specials[] = {0.5f,  -0.5f, 1.5f,  -2.5f, 0.0f,  -0.0f, 1e30f, -1e30f,
                                126.5f, -126.5f, 3.5f, -3.5f, 0.49999997f, -0.49999997f, 255.5f, -255.5f};
      for (int64_t c = 0; c < in; ++c) x[in + c] = specials[c % std::size(specials)] * 0.25f;
      // token 4: clipped low and high whatever z
      for (int64_t c = 0; c < in; ++c) x[4 * in + c] = (c % 2 ? 1 : -1) * scale[4] * 300.0f;
      std::vector<int8_t> xq(n * in);
      std::vector<int32_t> zc(n);
      kernels::quantize_activations_asym(x.data(), n, in, scale.data(), zero.data(), bits, xq.data(), zc.data());
      for (int64_t t = 0; t < n; ++t) {
        EXPECT_EQ(zc[t], zero[t] - mid);
        for (int64_t c = 0; c < in; ++c) {
          const float s = scale[t], xv = x[t * in + c];
          const float u = std::clamp(std::round(xv / s) + static_cast<float>(zero[t]), 0.0f, static_cast<float>(qmax));
          const float want = s * (u - static_cast<float>(zero[t]));
          const int q = xq[t * in + c];
          ASSERT_GE(q, -mid);
          ASSERT_LE(q, mid - 1);
          ASSERT_EQ(q + mid, static_cast<int>(u)) << "bits " << bits << " t " << t << " c " << c << " x " << xv;
          ASSERT_EQ(s * static_cast<float>(q - zc[t]), want) << "bits " << bits << " t " << t << " c " << c;
        }
      }
    }
  }
}

TEST(IgemmZp, ZeroPointZeroEqualsIgemm) {
  Rng rng(204);
  for (int bits : {2, 4, 8, 16})
    for (int group : {0, 32})
      for (bool sym : {false, true})
        for (int64_t n : {1, 3, 17}) {
          const int64_t in = 100, out = 19;
          QuantMatrix W = random_matrix(out, in, bits, group, sym, !sym, rng);
          std::vector<int8_t> xq(n * in);
          for (auto& v : xq) v = static_cast<int8_t>(static_cast<int>(rng.below(256)) - 128);
          std::vector<float> a(n);
          for (auto& s : a) s = rng.uniform(0.001f, 0.05f);
          const std::vector<int32_t> z(n, 0);
          for (auto k : kAllLevels) {
            if (!kernels::isa_supported(k)) continue;
            std::vector<float> y(n * out), yz(n * out);
            kernels::igemm(xq.data(), a.data(), W, y.data(), n, false, k);
            kernels::igemm_zp(xq.data(), a.data(), z.data(), W, yz.data(), n, false, k);
            EXPECT_TRUE(same_bytes(y, yz)) << bits << " " << group << " " << sym << " " << n << " "
                                           << kernels::isa_name(k);
          }
          std::vector<float> y(n * out), yz(n * out);
          kernels::ref::igemm(xq.data(), a.data(), W, y.data(), n, false);
          kernels::ref::igemm_zp(xq.data(), a.data(), z.data(), W, yz.data(), n, false);
          EXPECT_TRUE(same_bytes(y, yz)) << "ref " << bits << " " << group << " " << sym << " " << n;
        }
}

// xq = −128 everywhere (u = 0 of 8-bit activations) and codes at their maximum on rows long
// enough that int32 accumulation without chunking would overflow.
TEST(IgemmZp, ExtremeValuesStayExact) {
  struct Case {
    int bits;
    int64_t in;
  };
  for (const Case& cs : {Case{16, 4099}, Case{8, 70000}, Case{4, 70001}, Case{7, 40000}}) {
    const int64_t n = 3, out = 5, in = cs.in;
    QuantMatrix W = empty_quant_matrix(out, in, {cs.bits, 0, false, false});
    const uint32_t qmax = (1u << cs.bits) - 1;
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < in; ++c) W.set_code(o, c, qmax);
    for (size_t i = 0; i < W.scale.size(); ++i) W.scale[i] = 0.5f;
    for (size_t i = 0; i < W.zero.size(); ++i) W.zero[i] = float(i % 2);
    std::vector<int8_t> xq(n * in);
    for (int64_t c = 0; c < in; ++c) {
      xq[c] = -128;
      xq[in + c] = 127;
      xq[2 * in + c] = (c & 1) ? -128 : 127;
    }
    const std::vector<float> a = {1e-3f, 2e-3f, 3e-3f};
    const std::vector<int32_t> z = {127, -128, 5};
    std::vector<float> yr(n * out);
    kernels::ref::igemm_zp(xq.data(), a.data(), z.data(), W, yr.data(), n, false);
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < out; ++o) {
        double s = 0;
        for (int64_t c = 0; c < in; ++c) s += (double(xq[t * in + c]) - z[t]) * (double(qmax) - double(o % 2));
        EXPECT_NEAR(yr[t * out + o], float(s * 0.5 * a[t]), 1e-6 * std::fabs(s * 0.5 * a[t]) + 1e-6)
            << cs.bits << " " << t << " " << o;
      }
    for (auto k : kAllLevels) {
      if (!kernels::isa_supported(k)) continue;
      std::vector<float> y(n * out);
      kernels::igemm_zp(xq.data(), a.data(), z.data(), W, y.data(), n, false, k);
      EXPECT_TRUE(same_bytes(y, yr)) << cs.bits << " " << kernels::isa_name(k);
    }
  }
}

TEST(IgemmZp, BadInputThrows) {
  const float x[4] = {0.1f, -0.2f, 0.3f, 0.4f};
  const float s[2] = {0.1f, 0.1f};
  const int32_t z[2] = {3, 8};
  int8_t q[4];
  int32_t zc[2];
  EXPECT_NO_THROW(kernels::quantize_activations_asym(x, 2, 2, s, z, 4, q, zc));
  EXPECT_THROW(kernels::quantize_activations_asym(x, 2, 2, s, z, 9, q, zc), Error);  // bits 9
  EXPECT_THROW(kernels::quantize_activations_asym(x, 2, 2, s, z, 1, q, zc), Error);  // bits 1
  const int32_t z_hi[2] = {3, 16}, z_lo[2] = {-1, 0};
  EXPECT_THROW(kernels::quantize_activations_asym(x, 2, 2, s, z_hi, 4, q, zc), Error);  // 16 > 2^4 − 1
  EXPECT_THROW(kernels::quantize_activations_asym(x, 2, 2, s, z_lo, 4, q, zc), Error);
  for (float bad_s : {0.0f, -0.1f, std::nanf(""), std::numeric_limits<float>::infinity()}) {
    const float sb[2] = {0.1f, bad_s};
    EXPECT_THROW(kernels::quantize_activations_asym(x, 2, 2, sb, z, 4, q, zc), Error) << bad_s;
  }
  for (float bad_x : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    const float xb[4] = {0.1f, -0.2f, 0.3f, bad_x};
    EXPECT_THROW(kernels::quantize_activations_asym(xb, 2, 2, s, z, 4, q, zc), Error) << bad_x;
  }
}
