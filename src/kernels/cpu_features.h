// kernels/cpu_features.h — the one CPU-feature dispatch of the SIMD kernels.
//
// The SIMD loops carry per-function target attributes (no -m flags), so the binary runs on any
// x86-64; which loops run is decided here, once per process, as one ordered level:
//   scalar < avx2 (+FMA) < avx512f < avx512bw < avx512vnni
// each level including the ones before it (every AVX-512 CPU has AVX2 and FMA). The
// environment variable QTUNE_CPU=<level name> caps it (e.g. QTUNE_CPU=scalar runs the portable
// loops everywhere: to compare or time the paths); a cap above what the CPU has is ignored.
// Each kernel maps the level to the variant it has (they need different instructions):
//   qgemv4                 avx512f and up: AVX-512F          avx2: AVX2
//   igemm                  avx512vnni: VNNI    avx512bw: BW  avx2, avx512f: AVX2
//   quantize_activations   avx512bw and up: AVX-512BW        avx2, avx512f: AVX2
//   gse_gemm               avx512vnni: VNNI    avx2, avx512f, avx512bw: AVX2
//   row_max, exp_shift_sum avx512f and up: AVX-512F          avx2: AVX2 + FMA   (kernels/softmax.h)
// igemm's, gse_gemm's and quantize_activations' variants return the scalar loops' bytes; qgemv4's float
// sums differ from the scalar order by rounding only (tests/kernels compare every level).
#pragma once

namespace qtune::kernels {

enum class Isa { scalar, avx2, avx512f, avx512bw, avx512vnni };

// The level this process uses: the CPU's, capped by QTUNE_CPU (detected and read once; an
// unknown QTUNE_CPU value throws qtune::Error).
Isa cpu_isa();
// isa <= cpu_isa(): the kernels' explicit-level overloads accept it (tests compare every one).
bool isa_supported(Isa isa);
// "scalar", "avx2", "avx512f", "avx512bw", "avx512-vnni" (the names QTUNE_CPU takes).
const char* isa_name(Isa isa);
// isa_name(cpu_isa()): what the CPU supports and the kernels use.
const char* cpu_features();

// The level for a CPU that has `detected` and a QTUNE_CPU value `cap` (nullptr or "": no cap).
Isa capped_isa(Isa detected, const char* cap);

}  // namespace qtune::kernels
