#include "core/error.h"

#include "core/utf8.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace qtune {

void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
  std::abort();
}

namespace {

// Appends the character at s[i] as it should be shown; returns the bytes consumed.
size_t put_char(std::string_view s, size_t i, std::string& out) {
  const uint8_t c = uint8_t(s[i]);
  if (c >= 0x20 && c < 0x7f) {
    out += char(c);
    return 1;
  }
  const size_t len = c >= 0x80 ? utf8_seq_len(s, i) : 0;
  const bool c1_control = len == 2 && c == 0xC2 && uint8_t(s[i + 1]) < 0xA0;  // U+0080..U+009F
  if (len == 0 || c1_control) {
    out += fmt::format("\\x{:02x}", c);
    return 1;
  }
  out.append(s.substr(i, len));
  return len;
}

}  // namespace

std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) i += put_char(s, i, out);
  return out;
}

std::string excerpt(std::string_view s, size_t max_chars) {
  std::string out;
  size_t i = 0;
  for (size_t n = 0; i < s.size() && n < max_chars; ++n) i += put_char(s, i, out);
  if (i < s.size()) out += "\xe2\x80\xa6";  // "…"
  return out;
}

std::string error_line(std::string_view message) {
  constexpr size_t kMax = 2000, kHead = 1000, kTail = 200;
  std::string s = printable(message);
  // Count characters, not bytes, so the cuts never split a UTF-8 sequence.
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); ++i)
    if ((uint8_t(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  if (starts.size() <= kMax) return s;
  return s.substr(0, starts[kHead]) + "\xe2\x80\xa6" + s.substr(starts[starts.size() - kTail]);
}

}  // namespace qtune
