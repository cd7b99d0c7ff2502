// bench/attention_bench.cpp — causal attention forward + backward, tiled (nn::attention_*) vs
// the naive one that saves [T, T] probabilities (nn::ref), one batch row at the stories15M
// (6 heads × 48) and stories110M (12 × 64) shapes, T = 256 and 1024. Threads: OMP_NUM_THREADS.
//   ./qtune_bench --benchmark_filter=Attention
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "nn/ops.h"

using namespace qtune;
using qtune::bench::randn;

namespace {

void Shapes(benchmark::internal::Benchmark* b) {
  for (int64_t T : {256, 1024}) b->Args({T, 6, 48})->Args({T, 12, 64});
}

// causal multiply-adds of forward (2 products) and backward (5), counted once each
void set_flops(benchmark::State& st, int64_t T, int64_t nh, int64_t hd) {
  st.counters["GFLOP/s"] = benchmark::Counter(7.0 * T * (T + 1) / 2 * nh * hd * 2,
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

void BM_AttentionTiled(benchmark::State& st) {
  const int64_t T = st.range(0), nh = st.range(1), hd = st.range(2), n = T * nh * hd;
  auto q = randn(n, 1), k = randn(n, 2), v = randn(n, 3), dout = randn(n, 4);
  std::vector<float> out(n), lse(nh * T), dq(n), dk(n), dv(n);
  for (auto _ : st) {
    nn::attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), 1, T, nh, nh, hd);
    nn::attention_backward(dout.data(), q.data(), k.data(), v.data(), out.data(), lse.data(), dq.data(), dk.data(),
                           dv.data(), 1, T, nh, nh, hd);
  }
  set_flops(st, T, nh, hd);
}

void BM_AttentionNaive(benchmark::State& st) {
  const int64_t T = st.range(0), nh = st.range(1), hd = st.range(2), n = T * nh * hd;
  auto q = randn(n, 1), k = randn(n, 2), v = randn(n, 3), dout = randn(n, 4);
  std::vector<float> out(n), att(nh * T * T), dq(n), dk(n), dv(n);
  for (auto _ : st) {
    nn::ref::attention_forward(q.data(), k.data(), v.data(), out.data(), att.data(), 1, T, nh, nh, hd);
    nn::ref::attention_backward(dout.data(), q.data(), k.data(), v.data(), att.data(), dq.data(), dk.data(),
                                dv.data(), 1, T, nh, nh, hd);
  }
  set_flops(st, T, nh, hd);
}

BENCHMARK(BM_AttentionTiled)->Apply(Shapes)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionNaive)->Apply(Shapes)->Unit(benchmark::kMillisecond);

}  // namespace
