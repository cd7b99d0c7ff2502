// io/text.h — checks on user-supplied text (training data).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace qtune {

// Offset of the first byte that is not part of well-formed UTF-8 (overlongs, surrogates and
// code points above U+10FFFF are rejected), or npos when all of s is valid.
size_t find_invalid_utf8(std::string_view s);

// Throws Error "<where>: ..." if s holds a NUL byte (binary data) or invalid UTF-8, giving the
// column (1-based byte offset) of the problem.
void check_text(std::string_view s, const std::string& where);

}  // namespace qtune
