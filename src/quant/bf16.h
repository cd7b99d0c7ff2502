// quant/bf16.h — bfloat16 <-> float: bf16 is the upper half of a float. The narrowing rounds to
// nearest even and keeps NaN a (quiet) NaN. One definition for the safetensors / GGUF BF16 readers
// and writers and the bf16 GEMM's operand rounding (kernels/gemm_bf16.h).
#pragma once
#include <cstdint>
#include <cstring>

namespace qtune {

inline uint16_t fp32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays a NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                         // round to nearest even
  return uint16_t(u >> 16);
}

inline float bf16_to_fp32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace qtune
