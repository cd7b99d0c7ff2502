// bench/gse_bench.cpp — the GSE GEMM (kernels/gse_gemm.h, GSQ-Tuning) per loop set against the
// float GEMM (BLAS sgemm, matmul_nt) of the same product, and the GSE encoding of the operands,
// at a training micro-batch (n = 256 tokens) of the stories110M linear shapes, on ONE thread.
// GFLOP/s counts 2·n·k·m.
//   ./qtune_bench --benchmark_filter=Gse
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "kernels/gemm.h"
#include "kernels/gse_gemm.h"

using namespace qtune;
using qtune::bench::randn;

namespace {

void set_flops(benchmark::State& st, int64_t n, int64_t k, int64_t m) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * k * m, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

GseSpec spec_of(int64_t group) {
  GseSpec s;
  s.group = static_cast<int>(group);
  return s;
}

// range: n, k, m, G, kernels::Isa
void BM_GseGemm(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1), m = st.range(2);
  const auto isa = static_cast<kernels::Isa>(st.range(4));
  if (!kernels::isa_supported(isa)) {
    st.SkipWithError("kernel not supported on this CPU");
    return;
  }
  kernels::set_num_threads(1);
  const auto x = randn(n * k, 1), w = randn(m * k, 2);
  const GseMatrix A = gse_encode(x.data(), n, k, spec_of(st.range(3)));
  const GseMatrix B = gse_encode(w.data(), m, k, spec_of(st.range(3)));
  std::vector<float> c(static_cast<size_t>(n * m));
  for (auto _ : st) kernels::gse_gemm(A, B, c.data(), false, isa);
  set_flops(st, n, k, m);
  st.SetLabel(kernels::isa_name(isa));
  kernels::set_num_threads(0);
}

// The float product it replaces (range: n, k, m).
void BM_GseGemmFloat(benchmark::State& st) {
  const int64_t n = st.range(0), k = st.range(1), m = st.range(2);
  kernels::set_num_threads(1);
  const auto x = randn(n * k, 1), w = randn(m * k, 2);
  std::vector<float> c(static_cast<size_t>(n * m));
  for (auto _ : st) kernels::matmul_nt(x.data(), w.data(), c.data(), n, k, m, false);
  set_flops(st, n, k, m);
  st.SetLabel("float sgemm");
  kernels::set_num_threads(0);
}

// Encoding one operand [rows, k] (range: rows, k, G), nearest rounding.
void BM_GseEncode(benchmark::State& st) {
  const int64_t rows = st.range(0), k = st.range(1);
  kernels::set_num_threads(1);
  const auto x = randn(rows * k, 1);
  GseMatrix q;
  for (auto _ : st) gse_encode(x.data(), rows, k, spec_of(st.range(2)), q);
  st.SetBytesProcessed(st.iterations() * rows * k * 4);
  kernels::set_num_threads(0);
}

constexpr std::pair<int64_t, int64_t> kShapes[] = {{768, 2048}, {2048, 768}};  // {k, m}

void GseShapes(benchmark::internal::Benchmark* b) {
  for (auto s : kShapes)
    for (int64_t g : {32, 128})
      for (auto isa : {kernels::Isa::avx2, kernels::Isa::avx512vnni})
        b->Args({256, s.first, s.second, g, int64_t(isa)});
}

void FloatShapes(benchmark::internal::Benchmark* b) {
  for (auto s : kShapes) b->Args({256, s.first, s.second});
}

}  // namespace

BENCHMARK(BM_GseGemm)->Apply(GseShapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GseGemmFloat)->Apply(FloatShapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GseEncode)->Args({256, 768, 32})->Args({2048, 768, 32})->Unit(benchmark::kMicrosecond);
