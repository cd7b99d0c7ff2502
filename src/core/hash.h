// core/hash.h — a fast 64-bit fingerprint of bytes (not cryptographic): what a checkpoint
// records of its model file and training data, so that --resume with other inputs is refused.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace qtune {

// Word-at-a-time multiply-xorshift (several GB/s: hashing a model file costs less than loading
// it). Chain calls by passing the previous result as h.
inline uint64_t fingerprint(const void* data, size_t n, uint64_t h = 0x9e3779b97f4a7c15ULL) {
  const auto* p = static_cast<const uint8_t*>(data);
  auto mix = [&h](uint64_t w) {
    h = (h ^ w) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    mix(w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p + i, n - i);
  mix(tail ^ (uint64_t{n} << 56));
  return h;
}

inline std::string fingerprint_hex(uint64_t h) { return fmt::format("{:016x}", h); }

}  // namespace qtune
