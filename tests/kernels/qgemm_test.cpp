// Quantized-weight GEMMs and the fused 4-bit GEMV against dequantize + reference GEMM.
#include <vector>

#include "core/rng.h"
#include "core/system.h"
#include "kernels/gemm.h"
#include "kernels/igemm.h"
#include "kernels/qgemv.h"
#include "test_util.h"

using namespace qtune;

namespace {

std::vector<float> randn(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

std::vector<float> dequantized(const QuantMatrix& q) {
  std::vector<float> w(static_cast<size_t>(q.rows * q.cols));
  q.dequantize_rows(0, q.rows, w.data());
  return w;
}

struct Case {
  int64_t n, in, out;
  QuantSpec spec;
};

std::vector<Case> cases() {
  std::vector<Case> c;
  const int64_t shapes[][3] = {{1, 1, 1},  {1, 17, 3},   {1, 63, 65},  {1, 100, 129}, {3, 33, 65},
                               {7, 65, 17}, {8, 64, 100}, {17, 100, 63}, {33, 3, 130}};
  const QuantSpec specs[] = {{4, 0, false, false}, {4, 16, false, false}, {4, 7, true, false},
                             {2, 0, false, false}, {3, 5, false, false},  {8, 0, true, false},
                             {6, 32, false, false}};
  int i = 0;
  for (auto& s : shapes)
    for (auto& sp : specs) c.push_back({s[0], s[1], s[2], sp}), ++i;
  return c;
}

}  // namespace

TEST(QGemm, NtMatchesDequantizedReference) {
  Rng rng(10);
  for (const auto& c : cases()) {
    auto w = randn(c.out * c.in, rng);
    QuantMatrix q = quantize(w.data(), c.out, c.in, c.spec);
    auto wd = dequantized(q);
    for (bool acc : {false, true}) {
      auto x = randn(c.n * c.in, rng), y0 = randn(c.n * c.out, rng);
      auto y = y0, yr = y0;
      kernels::qmatmul_nt(x.data(), q, y.data(), c.n, acc);
      kernels::ref::matmul_nt(x.data(), wd.data(), yr.data(), c.n, c.in, c.out, acc);
      EXPECT_LT(test::rel_err(y.data(), yr.data(), y.size()), 1e-5)
          << c.n << "x" << c.in << "x" << c.out << " bits " << c.spec.bits << " group " << c.spec.group;
    }
  }
}

TEST(QGemm, NnMatchesDequantizedReference) {
  Rng rng(11);
  for (const auto& c : cases()) {
    auto w = randn(c.out * c.in, rng);
    QuantMatrix q = quantize(w.data(), c.out, c.in, c.spec);
    auto wd = dequantized(q);
    for (bool acc : {false, true}) {
      auto dy = randn(c.n * c.out, rng), dx0 = randn(c.n * c.in, rng);
      auto dx = dx0, dxr = dx0;
      kernels::qmatmul_nn(dy.data(), q, dx.data(), c.n, acc);
      kernels::ref::matmul_nn(dy.data(), wd.data(), dxr.data(), c.n, c.in, c.out, acc);
      EXPECT_LT(test::rel_err(dx.data(), dxr.data(), dx.size()), 1e-5)
          << c.n << "x" << c.in << "x" << c.out << " bits " << c.spec.bits << " group " << c.spec.group;
    }
  }
}

TEST(QGemm, DoubleMatchesDequantizedReference) {
  Rng rng(12);
  const int64_t n = 5, in = 37, out = 70;
  auto w = randn(out * in, rng);
  QuantMatrix q = quantize(w.data(), out, in, {3, 8, false, false});
  std::vector<double> wd(static_cast<size_t>(out * in)), x(n * in), dy(n * out);
  q.dequantize_rows(0, out, wd.data());
  for (auto& v : x) v = rng.normal();
  for (auto& v : dy) v = rng.normal();
  std::vector<double> y(n * out), yr(n * out), dx(n * in), dxr(n * in);
  kernels::qmatmul_nt(x.data(), q, y.data(), n, false);
  kernels::ref::matmul_nt(x.data(), wd.data(), yr.data(), n, in, out, false);
  kernels::qmatmul_nn(dy.data(), q, dx.data(), n, false);
  kernels::ref::matmul_nn(dy.data(), wd.data(), dxr.data(), n, in, out, false);
  EXPECT_LT(test::rel_err(y.data(), yr.data(), y.size()), 1e-13);
  EXPECT_LT(test::rel_err(dx.data(), dxr.data(), dx.size()), 1e-13);
}

// Every SIMD path this CPU supports equals the scalar path (and the dequantized reference).
TEST(QGemv, EveryPathMatchesScalar) {
  Rng rng(13);
  const kernels::Isa paths[] = {kernels::Isa::scalar, kernels::Isa::avx2, kernels::Isa::avx512f,
                                kernels::Isa::avx512bw, kernels::Isa::avx512vnni};
  int tested = 0;
  for (const auto& c : cases()) {
    if (c.spec.bits > 4) continue;
    auto w = randn(c.out * c.in, rng), x = randn(c.in, rng);
    QuantMatrix q = quantize(w.data(), c.out, c.in, c.spec);
    auto wd = dequantized(q);
    std::vector<float> yr(c.out);
    kernels::ref::matmul_nt(x.data(), wd.data(), yr.data(), 1, c.in, c.out, false);
    for (auto p : paths) {
      if (!kernels::isa_supported(p)) continue;
      std::vector<float> y(c.out, 1.0f);
      kernels::qgemv4(x.data(), q, y.data(), false, p);
      EXPECT_LT(test::rel_err(y.data(), yr.data(), y.size()), 1e-5)
          << "path " << kernels::isa_name(p) << " in " << c.in << " out " << c.out << " group " << c.spec.group;
      ++tested;
    }
  }
  EXPECT_GT(tested, 0);
}

// The dot kernels alone, on every start/end alignment (the head/tail logic of the SIMD loops).
TEST(QGemv, DotKernelsAllAlignments) {
  Rng rng(14);
  const int64_t n = 80;
  std::vector<uint8_t> codes(n / 2);
  for (auto& b : codes) b = static_cast<uint8_t>(rng.below(256));
  auto x = randn(n, rng);
  for (int64_t c0 = 0; c0 < 20; ++c0) {
    for (int64_t c1 = c0; c1 <= n; c1 += 3) {
      double want = 0;
      for (int64_t c = c0; c < c1; ++c) want += double((codes[c / 2] >> ((c & 1) * 4)) & 0xF) * x[c];
      EXPECT_NEAR(kernels::qdot4_scalar(codes.data(), x.data(), c0, c1), want, 1e-4);
      if (kernels::isa_supported(kernels::Isa::avx2)) {
        EXPECT_NEAR(kernels::qdot4_avx2(codes.data(), x.data(), c0, c1), want, 1e-4) << c0 << " " << c1;
      }
      if (kernels::isa_supported(kernels::Isa::avx512f)) {
        EXPECT_NEAR(kernels::qdot4_avx512(codes.data(), x.data(), c0, c1), want, 1e-4) << c0 << " " << c1;
      }
    }
  }
}

// The whole-row kernels: Σ_g Δ_g·Σ q·x with groups on vector boundaries and a ragged last group.
TEST(QGemv, RowKernelsMatchScalar) {
  Rng rng(16);
  const int64_t n = 100;
  std::vector<uint8_t> codes(n / 2);
  for (auto& b : codes) b = static_cast<uint8_t>(rng.below(256));
  auto x = randn(n, rng), scale = randn(n, rng);
  for (int64_t in : {16, 37, 64, 80, 100}) {
    for (int64_t gs : {16, 32, 48, 96}) {
      double want = 0;
      for (int64_t c = 0; c < in; ++c) want += double(scale[c / gs]) * ((codes[c / 2] >> ((c & 1) * 4)) & 0xF) * x[c];
      if (kernels::isa_supported(kernels::Isa::avx2)) {
        EXPECT_NEAR(kernels::qrow4_avx2(codes.data(), x.data(), scale.data(), in, gs), want, 1e-3) << in << " " << gs;
      }
      if (kernels::isa_supported(kernels::Isa::avx512f)) {
        EXPECT_NEAR(kernels::qrow4_avx512(codes.data(), x.data(), scale.data(), in, gs), want, 1e-3) << in << " " << gs;
      }
    }
  }
}

TEST(QGemm, DeterministicAcrossCalls) {
  Rng rng(15);
  const int64_t n = 3, in = 200, out = 300;
  auto w = randn(out * in, rng), x = randn(n * in, rng);
  QuantMatrix q = quantize(w.data(), out, in, {4, 32, false, false});
  std::vector<float> y1(n * out), y2(n * out);
  kernels::qmatmul_nt(x.data(), q, y1.data(), n, false);
  kernels::qmatmul_nt(x.data(), q, y2.data(), n, false);
  EXPECT_EQ(y1, y2);
}

// The tiled (small n) and GEMV paths sum every output in one thread in a fixed order, so
// they are bitwise identical for any thread count.
TEST(QGemm, SameResultForAnyThreadCount) {
  Rng rng(17);
  const int64_t in = 130, out = 300;
  auto w = randn(out * in, rng), x = randn(4 * in, rng);
  QuantMatrix q = quantize(w.data(), out, in, {4, 32, false, false});
  for (int64_t n : {1, 4}) {
    std::vector<float> y1(n * out), y2(n * out);
    kernels::set_num_threads(1);
    EXPECT_EQ(qtune::num_threads(), 1);
    kernels::qmatmul_nt(x.data(), q, y1.data(), n, false);
    kernels::set_num_threads(3);
    EXPECT_EQ(qtune::num_threads(), 3);
    kernels::qmatmul_nt(x.data(), q, y2.data(), n, false);
    EXPECT_EQ(y1, y2) << n;
  }
  kernels::set_num_threads(0);
}

TEST(Kernels, CpuFeaturesNamesTheLevel) {
  const std::string f = kernels::cpu_features();
  EXPECT_EQ(f, kernels::isa_name(kernels::cpu_isa()));
  EXPECT_TRUE(f == "avx512-vnni" || f == "avx512bw" || f == "avx512f" || f == "avx2" || f == "scalar") << f;
  EXPECT_TRUE(kernels::isa_supported(kernels::Isa::scalar));
  EXPECT_TRUE(kernels::isa_supported(kernels::cpu_isa()));
}

// QTUNE_CPU caps the detected level by name; it never raises it, and a wrong name is an error.
TEST(Kernels, QtuneCpuCapsTheLevel) {
  using kernels::Isa;
  EXPECT_EQ(kernels::capped_isa(Isa::avx512vnni, nullptr), Isa::avx512vnni);
  EXPECT_EQ(kernels::capped_isa(Isa::avx512vnni, ""), Isa::avx512vnni);
  EXPECT_EQ(kernels::capped_isa(Isa::avx512vnni, "scalar"), Isa::scalar);
  EXPECT_EQ(kernels::capped_isa(Isa::avx512vnni, "avx2"), Isa::avx2);
  EXPECT_EQ(kernels::capped_isa(Isa::avx512vnni, "avx512bw"), Isa::avx512bw);
  EXPECT_EQ(kernels::capped_isa(Isa::avx2, "avx512-vnni"), Isa::avx2);
  EXPECT_EQ(kernels::capped_isa(Isa::scalar, "avx512f"), Isa::scalar);
  for (auto i : {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni})
    EXPECT_EQ(kernels::capped_isa(Isa::avx512vnni, kernels::isa_name(i)), i);
  EXPECT_THROW(kernels::capped_isa(Isa::avx2, "sse4"), Error);
  EXPECT_THROW(kernels::capped_isa(Isa::avx2, "AVX2"), Error);
}
