// bench/ce_bench.cpp — the fused classifier + cross-entropy (models/llama_loss.cpp) and its exp.
//   ./qtune_bench --benchmark_filter=Ce
// BM_CeStep: forward + backward of a one-layer stories15M-shaped LoRA model (dim 288, vocab
// 32000, B8×256 = 2048 rows), where the classifier is most of the work; range(0) = rows per
// chunk, range(1) = whether the forward is told a backward follows (1: the gradient is made in
// the forward; 0: backward recomputes the logits). BM_CeExp: exp_shift_sum over a 32000 row at
// each level the CPU has (0 = scalar std::exp).
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "kernels/cpu_features.h"
#include "kernels/softmax.h"
#include "models/init.h"
#include "models/llama.h"

using namespace qtune;

namespace {

void BM_CeStep(benchmark::State& st) {
  LlamaConfig c = parse_config_spec("dim=288,hidden=768,layers=1,heads=6,kv_heads=6,seq=256");
  c.vocab_size = 32000;
  MethodOptions o;
  o.targets = {"q", "k", "v", "o"};
  Llama model(random_model(c, 1), o, 1);
  model.set_loss_chunk(st.range(0));
  const int B = 8, T = 256;
  std::vector<int> tokens(B * T), targets(B * T);
  for (int i = 0; i < B * T; ++i) tokens[i] = (i * 7919) % 32000, targets[i] = (i * 104729 + 3) % 32000;
  for (auto _ : st) {
    model.zero_grad();
    benchmark::DoNotOptimize(model.forward(tokens.data(), targets.data(), B, T, st.range(1) != 0));
    model.backward();
  }
  st.counters["tok/s"] = benchmark::Counter(B * T, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CeStep)
    ->ArgsProduct({{64, 128, 256, 512, 2048}, {1}})
    ->Args({256, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_CeExp(benchmark::State& st) {
  const auto isa = static_cast<kernels::Isa>(st.range(0));
  if (!kernels::isa_supported(isa)) return st.SkipWithError("level not supported by this CPU");
  const int64_t V = 32000;
  const std::vector<float> z0 = bench::randn(V, 1);
  std::vector<float> z = z0;
  for (auto _ : st) {
    z = z0;
    benchmark::DoNotOptimize(kernels::exp_shift_sum(z.data(), V, 4.0f, isa));
  }
  st.counters["elem/s"] = benchmark::Counter(V, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CeExp)->DenseRange(0, 2)->Unit(benchmark::kMicrosecond);

}  // namespace
