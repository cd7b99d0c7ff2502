// bench/gemm_bench.cpp — float GEMM (OpenBLAS vs scalar reference) and quantized-weight GEMM
// (tiled dequant + GEMM; fused 4-bit GEMV per SIMD path) at the stories15M / stories110M
// linear shapes. n = rows of x: 1 (generation) or 256 (a training micro-batch of tokens).
//   ./qtune_bench --benchmark_filter=Gemm
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/qgemv.h"

using namespace qtune;
using qtune::bench::randn;

namespace {

// {n, in, out}: stories15M dim 288 / hidden 768, stories110M dim 768 / hidden 2048
void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 256}) {
    b->Args({n, 288, 288})->Args({n, 288, 768})->Args({n, 768, 288});
    b->Args({n, 768, 768})->Args({n, 768, 2048})->Args({n, 2048, 768});
  }
}

void set_flops(benchmark::State& st, int64_t n, int64_t in, int64_t out) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * in * out, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

void BM_GemmBlas(benchmark::State& st) {
  const int64_t n = st.range(0), in = st.range(1), out = st.range(2);
  auto x = randn(n * in, 1), W = randn(out * in, 2);
  std::vector<float> y(n * out);
  for (auto _ : st) kernels::matmul_nt(x.data(), W.data(), y.data(), n, in, out, false);
  set_flops(st, n, in, out);
}

void BM_GemmReference(benchmark::State& st) {
  const int64_t n = st.range(0), in = st.range(1), out = st.range(2);
  auto x = randn(n * in, 1), W = randn(out * in, 2);
  std::vector<float> y(n * out);
  for (auto _ : st) kernels::ref::matmul_nt(x.data(), W.data(), y.data(), n, in, out, false);
  set_flops(st, n, in, out);
}

// range(3): bits, range(4): group
void BM_QGemm(benchmark::State& st) {
  const int64_t n = st.range(0), in = st.range(1), out = st.range(2);
  auto x = randn(n * in, 1), W = randn(out * in, 2);
  QuantMatrix q = quantize(W.data(), out, in, {int(st.range(3)), int(st.range(4)), false, false});
  std::vector<float> y(n * out);
  for (auto _ : st) kernels::qmatmul_nt(x.data(), q, y.data(), n, false);
  set_flops(st, n, in, out);
}

void BM_QGemmBackward(benchmark::State& st) {
  const int64_t n = st.range(0), in = st.range(1), out = st.range(2);
  auto dy = randn(n * out, 1), W = randn(out * in, 2);
  QuantMatrix q = quantize(W.data(), out, in, {4, 32, false, false});
  std::vector<float> dx(n * in);
  for (auto _ : st) kernels::qmatmul_nn(dy.data(), q, dx.data(), n, false);
  set_flops(st, n, in, out);
}

// range(3): kernels::Isa (0 scalar, 1 avx2, 2 avx512f: qgemv4's three variants)
void BM_QGemv4Path(benchmark::State& st) {
  const int64_t in = st.range(1), out = st.range(2);
  const auto path = static_cast<kernels::Isa>(st.range(3));
  if (!kernels::isa_supported(path)) {
    st.SkipWithError("path not supported on this CPU");
    return;
  }
  auto x = randn(in, 1), W = randn(out * in, 2);
  QuantMatrix q = quantize(W.data(), out, in, {4, 32, false, false});
  std::vector<float> y(out);
  for (auto _ : st) kernels::qgemv4(x.data(), q, y.data(), false, path);
  set_flops(st, 1, in, out);
  st.SetLabel(kernels::isa_name(path));
}

void QShapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 256})
    for (auto s : {std::pair<int64_t, int64_t>{288, 768}, {768, 2048}, {2048, 768}})
      for (int64_t g : {0, 32}) b->Args({n, s.first, s.second, 4, g});
  b->Args({256, 768, 2048, 8, 0});
}

void PathShapes(benchmark::internal::Benchmark* b) {
  for (int64_t p : {0, 1, 2}) b->Args({1, 288, 768, p})->Args({1, 768, 2048, p})->Args({1, 2048, 768, p});
}

void BackShapes(benchmark::internal::Benchmark* b) { b->Args({256, 768, 2048})->Args({256, 2048, 768}); }

}  // namespace

BENCHMARK(BM_GemmBlas)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GemmReference)->Apply(Shapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QGemm)->Apply(QShapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QGemmBackward)->Apply(BackShapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QGemv4Path)->Apply(PathShapes)->Unit(benchmark::kMicrosecond);
