// bench/igemm_bench.cpp — the integer inference GEMM (int8 activations × integer codes,
// kernels/igemm.h) per inner-loop set, against the float path (qmatmul_nt: tile dequantize +
// BLAS / fused 4-bit GEMV) on the same QuantMatrix, at the stories15M / stories110M linear
// shapes; n = 1 (generation) and 256 (prefill / a batch of tokens). GFLOP/s counts 2·n·in·out
// (multiply-adds of the equivalent float product).
//   ./qtune_bench --benchmark_filter=Igemm
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/igemm.h"

using namespace qtune;
using qtune::bench::randn;

namespace {

void set_flops(benchmark::State& st, int64_t n, int64_t in, int64_t out) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * n * in * out, benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

QuantMatrix weights(int64_t out, int64_t in, int bits, int group) {
  auto W = randn(out * in, 2);
  return quantize(W.data(), out, in, {bits, group, false, false});
}

// range: n, in, out, bits, group, kernels::Isa. The activations are quantized outside the loop
// (BM_IgemmQuantizeActivations times that step).
void BM_Igemm(benchmark::State& st) {
  const int64_t n = st.range(0), in = st.range(1), out = st.range(2);
  const auto k = static_cast<kernels::Isa>(st.range(5));
  if (!kernels::isa_supported(k)) {
    st.SkipWithError("kernel not supported on this CPU");
    return;
  }
  QuantMatrix q = weights(out, in, int(st.range(3)), int(st.range(4)));
  auto x = randn(n * in, 1);
  std::vector<int8_t> xq(n * in);
  std::vector<float> s(n), y(n * out);
  kernels::quantize_activations(x.data(), n, in, 0.0f, xq.data(), s.data());
  for (auto _ : st) kernels::igemm(xq.data(), s.data(), q, y.data(), n, false, k);
  set_flops(st, n, in, out);
  st.SetLabel(kernels::isa_name(k));
}

// The float path on the same quantized weight (range: n, in, out, bits, group).
void BM_IgemmFloatPath(benchmark::State& st) {
  const int64_t n = st.range(0), in = st.range(1), out = st.range(2);
  QuantMatrix q = weights(out, in, int(st.range(3)), int(st.range(4)));
  auto x = randn(n * in, 1);
  std::vector<float> y(n * out);
  for (auto _ : st) kernels::qmatmul_nt(x.data(), q, y.data(), n, false);
  set_flops(st, n, in, out);
  st.SetLabel("float");
}

void BM_IgemmQuantizeActivations(benchmark::State& st) {
  const int64_t n = st.range(0), in = st.range(1);
  auto x = randn(n * in, 1);
  std::vector<int8_t> xq(n * in);
  std::vector<float> s(n);
  for (auto _ : st) kernels::quantize_activations(x.data(), n, in, 0.0f, xq.data(), s.data());
  st.SetBytesProcessed(st.iterations() * n * in * 4);
}

constexpr std::pair<int64_t, int64_t> kShapes[] = {{288, 768}, {768, 2048}, {2048, 768}};  // {in, out}

void IntShapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 256})
    for (auto s : kShapes)
      for (int64_t bits : {4, 8})
        for (int64_t g : {0, 32})
          for (auto k : {kernels::Isa::scalar, kernels::Isa::avx2, kernels::Isa::avx512bw, kernels::Isa::avx512vnni})
            b->Args({n, s.first, s.second, bits, g, int64_t(k)});
}

void FloatShapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {1, 256})
    for (auto s : kShapes)
      for (int64_t bits : {4, 8})
        for (int64_t g : {0, 32}) b->Args({n, s.first, s.second, bits, g});
}

}  // namespace

BENCHMARK(BM_Igemm)->Apply(IntShapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_IgemmFloatPath)->Apply(FloatShapes)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_IgemmQuantizeActivations)->Args({1, 2048})->Args({256, 768})->Args({256, 2048})
    ->Unit(benchmark::kMicrosecond);
