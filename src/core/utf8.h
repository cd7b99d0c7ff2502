// core/utf8.h — well-formed UTF-8 (RFC 3629): shared by the text reader (io/text.h) and the
// escaping of error messages (core/error.h).
#pragma once
#include <cstddef>
#include <string_view>

namespace qtune {

// Length (2..4) of the well-formed multi-byte UTF-8 sequence at s[i] (no overlongs, surrogates
// or code points above U+10FFFF), or 0 when s[i] does not start one (ASCII included).
size_t utf8_seq_len(std::string_view s, size_t i);

}  // namespace qtune
