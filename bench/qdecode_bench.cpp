// bench/qdecode_bench.cpp — one decoding token's weight products on a stories110M-shaped model
// (12 layers × q, k, v, o [768, 768], gate, up [2048, 768], down [768, 2048], classifier
// [32000, 768]), Q8_0 or Q4_0: as loaded (qgemv_blocks) against repacked (qgemv_packed). The
// weights (117 / 62 MB) do not fit any cache, as in generation: this times the weight stream.
//   OMP_NUM_THREADS=1 ./qtune_bench --benchmark_filter=DecodeToken --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "kernels/qblocks_packed.h"
#include "kernels/qdot_blocks.h"

using namespace qtune;

namespace {

struct Shape {
  int64_t out, in;
};

std::vector<Shape> token_shapes() {
  std::vector<Shape> s;
  for (int l = 0; l < 12; ++l) {
    for (int i = 0; i < 4; ++i) s.push_back({768, 768});
    s.push_back({2048, 768});
    s.push_back({2048, 768});
    s.push_back({768, 2048});
  }
  s.push_back({32000, 768});
  return s;
}

// Random Q8_0 / Q4_0 codes and scales (the values do not matter to the speed).
QuantMatrix random_blocks(Shape sh, int bits, uint64_t seed) {
  const auto w = bench::randn(sh.out * sh.in, seed);
  return quantize(w.data(), sh.out, sh.in, {bits, 32, true, false});
}

// range: bits, packed (0 / 1), kernels::Isa
void BM_DecodeToken(benchmark::State& st) {
  const int bits = int(st.range(0));
  const bool packed = st.range(1) != 0;
  const auto isa = static_cast<kernels::Isa>(st.range(2));
  if (!kernels::isa_supported(isa)) {
    st.SkipWithError("kernel not supported on this CPU");
    return;
  }
  std::vector<QuantMatrix> loaded;
  std::vector<kernels::PackedBlocks> repacked;
  const auto shapes = token_shapes();
  for (size_t i = 0; i < shapes.size(); ++i) {
    QuantMatrix W = random_blocks(shapes[i], bits, i + 1);
    if (packed)
      repacked.push_back(kernels::pack_blocks(std::move(W)));
    else
      loaded.push_back(std::move(W));
  }
  const auto x = bench::randn(2048, 99);
  std::vector<float> y(32000);
  for (auto _ : st)
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (packed)
        kernels::qgemv_packed(x.data(), repacked[i], y.data(), 1, false, isa);
      else
        kernels::qgemv_blocks(x.data(), loaded[i], y.data(), 1, false, isa);
    }
  st.SetLabel(std::string(packed ? "packed " : "loaded ") + kernels::isa_name(isa));
}

void DecodeArgs(benchmark::internal::Benchmark* b) {
  for (int bits : {8, 4})
    for (int packed : {0, 1})
      for (auto isa : {kernels::Isa::avx2, kernels::Isa::avx512vnni}) b->Args({bits, packed, int(isa)});
}

}  // namespace

BENCHMARK(BM_DecodeToken)->Apply(DecodeArgs)->Unit(benchmark::kMillisecond)->MinTime(1.0);
