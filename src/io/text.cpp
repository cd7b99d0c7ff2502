// io/text.cpp — UTF-8 validation (RFC 3629 well-formed sequences).
#include "io/text.h"

#include <cstdint>

#include "core/error.h"

namespace qtune {

size_t find_invalid_utf8(std::string_view s) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    // sequence length and the allowed range of the second byte (excludes overlongs,
    // UTF-16 surrogates D800..DFFF and code points above 10FFFF)
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (i + len > n) return i;
    const uint8_t c1 = uint8_t(s[i + 1]);
    if (c1 < lo || c1 > hi) return i;
    for (size_t k = 2; k < len; ++k)
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

void check_text(std::string_view s, const std::string& where) {
  const size_t nul = s.find('\0');
  if (nul != std::string_view::npos) fail("{}: column {}: NUL byte (binary data, not text)", where, nul + 1);
  const size_t bad = find_invalid_utf8(s);
  if (bad != std::string_view::npos)
    fail("{}: column {}: invalid UTF-8 (byte 0x{:02x})", where, bad + 1, uint8_t(s[bad]));
}

}  // namespace qtune
