// kernels/cpu_features.cpp — detecting the CPU's level once (contract: cpu_features.h).
#include "kernels/cpu_features.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "core/error.h"

namespace qtune::kernels {

namespace {

constexpr Isa kLevels[] = {Isa::scalar, Isa::avx2, Isa::avx512f, Isa::avx512bw, Isa::avx512vnni};

// The highest level whose instructions, and all those of the levels below, the CPU has.
Isa detect() {
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return Isa::scalar;
  if (!__builtin_cpu_supports("avx512f")) return Isa::avx2;
  if (!__builtin_cpu_supports("avx512bw")) return Isa::avx512f;
  if (!__builtin_cpu_supports("avx512vnni")) return Isa::avx512bw;
  return Isa::avx512vnni;
}

}  // namespace

Isa capped_isa(Isa detected, const char* cap) {
  if (!cap || !*cap) return detected;
  for (Isa i : kLevels)
    if (std::string_view(cap) == isa_name(i)) return std::min(i, detected);
  fail("QTUNE_CPU={}: unknown instruction set (use scalar, avx2, avx512f, avx512bw or avx512-vnni)", cap);
}

Isa cpu_isa() {
  static const Isa isa = capped_isa(detect(), std::getenv("QTUNE_CPU"));
  return isa;
}

bool isa_supported(Isa isa) { return isa <= cpu_isa(); }

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512f: return "avx512f";
    case Isa::avx512bw: return "avx512bw";
    case Isa::avx512vnni: return "avx512-vnni";
  }
  return "?";
}

const char* cpu_features() { return isa_name(cpu_isa()); }

}  // namespace qtune::kernels
