// bench/bench_util.h — inputs shared by the micro-benchmarks.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace qtune::bench {

// n standard-normal floats from a fixed seed, so every run times the same data.
inline std::vector<float> randn(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

}  // namespace qtune::bench
