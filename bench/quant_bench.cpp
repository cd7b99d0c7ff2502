// bench/quant_bench.cpp — quantizer throughput (min/max vs MSE search) at a stories110M FFN
// shape, and tile dequantization.
#include <benchmark/benchmark.h>

#include <vector>

#include "core/rng.h"
#include "quant/quant.h"

using namespace qtune;

namespace {

std::vector<float> randn(int64_t n) {
  Rng rng(3);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal() * 0.02);
  return v;
}

// range(0): bits, range(1): group, range(2): mse search
void BM_Quantize(benchmark::State& st) {
  const int64_t rows = 2048, cols = 768;
  auto w = randn(rows * cols);
  const QuantSpec spec{int(st.range(0)), int(st.range(1)), false, st.range(2) != 0};
  for (auto _ : st) benchmark::DoNotOptimize(quantize(w.data(), rows, cols, spec));
  st.SetItemsProcessed(st.iterations() * rows * cols);
}

void BM_DequantizeTile(benchmark::State& st) {
  const int64_t rows = 64, cols = 2048;
  auto w = randn(rows * cols);
  QuantMatrix q = quantize(w.data(), rows, cols, {int(st.range(0)), 32, false, false});
  std::vector<float> out(rows * cols);
  for (auto _ : st) q.dequantize_rows(0, rows, out.data());
  st.SetItemsProcessed(st.iterations() * rows * cols);
}

}  // namespace

BENCHMARK(BM_Quantize)->Args({4, 0, 0})->Args({4, 32, 0})->Args({4, 0, 1})->Args({4, 32, 1})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DequantizeTile)->Arg(4)->Arg(8)->Unit(benchmark::kMicrosecond);
