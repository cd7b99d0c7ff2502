// io/text.cpp — UTF-8 validation (RFC 3629 well-formed sequences).
#include "io/text.h"

#include <cstdint>

#include "core/error.h"
#include "core/utf8.h"

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
    const size_t len = utf8_seq_len(s, i);
    if (len == 0) return i;
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
