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
// fingerprint = fingerprint_words over the whole 8-byte words, then fingerprint_tail over the
// 0..7 bytes left and the total length: split so a file can be hashed in pieces
// (fingerprint_file, core/file.h) with the same result.
inline uint64_t fingerprint_mix(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0xff51afd7ed558ccdULL;
  return h ^ (h >> 32);
}

inline uint64_t fingerprint_words(const void* data, size_t n_words, uint64_t h) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n_words; ++i) {
    uint64_t w;
    std::memcpy(&w, p + 8 * i, 8);
    h = fingerprint_mix(h, w);
  }
  return h;
}

inline uint64_t fingerprint_tail(const void* tail, size_t k, uint64_t total, uint64_t h) {
  uint64_t w = 0;
  if (k > 0) std::memcpy(&w, tail, k);  // an empty input may come with a null pointer
  return fingerprint_mix(h, w ^ (total << 56));
}

inline uint64_t fingerprint(const void* data, size_t n, uint64_t h = 0x9e3779b97f4a7c15ULL) {
  const auto* p = static_cast<const uint8_t*>(data);
  h = fingerprint_words(p, n / 8, h);
  return fingerprint_tail(p + n / 8 * 8, n % 8, n, h);
}

inline std::string fingerprint_hex(uint64_t h) { return fmt::format("{:016x}", h); }

}  // namespace qtune
