// bench/bench_main.cpp — the one main() of qtune_bench (every bench/*.cpp registers benchmarks).
#include <benchmark/benchmark.h>

BENCHMARK_MAIN();
