#include "core/utf8.h"

#include <cstdint>

namespace qtune {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, surrogates or code
// points above U+10FFFF), or 0 when s[i] does not start one.
size_t utf8_seq_len(std::string_view s, size_t i) {
  const uint8_t c = uint8_t(s[i]);
  size_t len;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  const uint8_t c1 = uint8_t(s[i + 1]);
  if (c1 < lo || c1 > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return 0;
  return len;
}

}  // namespace qtune
