// bench/peak_bench.cpp — the arithmetic peak of one core: how many multiply-adds per second the
// CPU can retire at all, with no memory traffic. The training and inference figures of
// bench/peers are judged against it (table.py: attained GFLOP/s and the highest speed-up over the
// peer that any implementation doing the same arithmetic could reach on this machine).
//   ./qtune_bench --benchmark_filter=Peak --benchmark_format=json
// Each loop keeps 12 independent accumulators (more than FMA latency × issue width), so the
// time is the throughput of the instruction. Counted per multiply-add: 2 operations.
//   PeakFp32Avx2     vfmadd ymm:    8 lanes × 2
//   PeakFp32Avx512   vfmadd zmm:   16 lanes × 2
//   PeakBf16Avx512   vdpbf16ps:    16 lanes × 2 pairs × 2   (AVX512-BF16)
//   PeakInt8Vnni     vpdpbusd:     16 lanes × 4 bytes × 2   (AVX-512 VNNI)
// A CPU without the instruction skips its benchmark (the same binary runs on any x86-64).
#include <benchmark/benchmark.h>

#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu_features.h"
#include "kernels/gemm_bf16.h"

using namespace qtune;

namespace {

constexpr int kAccumulators = 12;
constexpr int64_t kIterations = 1 << 20;  // per benchmark iteration: 12 Mi instructions

#define PEAK_LOOP(VEC, INIT, OP, SINK)                                         \
  VEC acc[kAccumulators];                                                      \
  for (int i = 0; i < kAccumulators; ++i) acc[i] = INIT;                       \
  for (int64_t k = 0; k < kIterations; ++k) {                                  \
    _Pragma("GCC unroll 12") for (int i = 0; i < kAccumulators; ++i) OP;       \
  }                                                                            \
  for (int i = 1; i < kAccumulators; ++i) acc[0] = SINK;                       \
  benchmark::DoNotOptimize(acc[0]);

__attribute__((target("avx2,fma"))) void fp32_avx2() {
  const __m256 b = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-4f);
  PEAK_LOOP(__m256, _mm256_set1_ps(i * 1e-3f), acc[i] = _mm256_fmadd_ps(acc[i], b, c), _mm256_add_ps(acc[0], acc[i]))
}

__attribute__((target("avx512f"))) void fp32_avx512() {
  const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-4f);
  PEAK_LOOP(__m512, _mm512_set1_ps(i * 1e-3f), acc[i] = _mm512_fmadd_ps(acc[i], b, c), _mm512_add_ps(acc[0], acc[i]))
}

__attribute__((target("avx512f,avx512bf16"))) void bf16_avx512() {
  const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3800);
  PEAK_LOOP(__m512, _mm512_set1_ps(i * 1e-3f), acc[i] = _mm512_dpbf16_ps(acc[i], b, c), _mm512_add_ps(acc[0], acc[i]))
}

__attribute__((target("avx512f,avx512vnni"))) void int8_vnni() {
  const __m512i b = _mm512_set1_epi8(3), c = _mm512_set1_epi8(5);
  PEAK_LOOP(__m512i, _mm512_set1_epi32(i), acc[i] = _mm512_dpbusd_epi32(acc[i], b, c),
            _mm512_add_epi32(acc[0], acc[i]))
}

void run(benchmark::State& st, bool supported, const char* missing, void (*loop)(), double ops_per_instruction) {
  if (!supported) {
    st.SkipWithError(missing);
    return;
  }
  for (auto _ : st) loop();
  st.counters["GOP/s"] = benchmark::Counter(ops_per_instruction * kAccumulators * kIterations,
                                            benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

bool has(kernels::Isa isa) { return kernels::isa_supported(isa); }

void BM_PeakFp32Avx2(benchmark::State& st) { run(st, has(kernels::Isa::avx2), "no AVX2", fp32_avx2, 8 * 2); }
void BM_PeakFp32Avx512(benchmark::State& st) {
  run(st, has(kernels::Isa::avx512f), "no AVX-512F", fp32_avx512, 16 * 2);
}
void BM_PeakBf16Avx512(benchmark::State& st) {
  run(st, kernels::bf16_gemm_supported(), "no AVX512-BF16", bf16_avx512, 16 * 2 * 2);
}
void BM_PeakInt8Vnni(benchmark::State& st) {
  run(st, has(kernels::Isa::avx512vnni), "no AVX-512 VNNI", int8_vnni, 16 * 4 * 2);
}

// One thread: the per-core peak (the machine's is this × cores, as nothing here touches memory).
BENCHMARK(BM_PeakFp32Avx2)->Unit(benchmark::kMillisecond)->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_PeakFp32Avx512)->Unit(benchmark::kMillisecond)->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_PeakBf16Avx512)->Unit(benchmark::kMillisecond)->Repetitions(3)->ReportAggregatesOnly(true);
BENCHMARK(BM_PeakInt8Vnni)->Unit(benchmark::kMillisecond)->Repetitions(3)->ReportAggregatesOnly(true);

}  // namespace
