// core/error.h — the one error type that reaches the user.
//
// Contract: anything caused by bad input (a file, a flag, a shape) throws qtune::Error with a
// message that names the file/field and the problem. The CLI catches it, prints
// "error: <message>" on one line and exits 2. Programming errors use QT_ASSERT (abort).
#pragma once
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <stdexcept>
#include <string>
#include <string_view>

namespace qtune {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// s with every byte that would not print as itself escaped as \xNN: C0 controls (NUL, newline,
// ESC, ...), DEL, the UTF-8 encodings of C1 controls and bytes that are not well-formed UTF-8.
// fail() applies it to every message, so file content quoted in one can neither cut it short
// (printf stops at a NUL) nor break the one-line contract nor drive the terminal.
std::string printable(std::string_view s);

// File content quoted in a message (a key, a token, a line of JSON): printable(s), cut after
// max_chars characters with "…" appended, so a 1 MB string makes a short message.
std::string excerpt(std::string_view s, size_t max_chars = 80);

// What fail() throws: printable(message), and a message of more than 2000 characters keeps its
// first 1000 and last 200 around "…" (a safety net for file content quoted without excerpt()).
std::string error_line(std::string_view message);

template <class... A>
[[noreturn]] void fail(fmt::format_string<A...> f, A&&... args) {
  throw Error(error_line(fmt::format(f, std::forward<A>(args)...)));
}

[[noreturn]] void assert_failed(const char* expr, const char* file, int line);

}  // namespace qtune

// Bad input: throws qtune::Error with the formatted message.
#define QT_CHECK(cond, ...)                 \
  do {                                      \
    if (!(cond)) ::qtune::fail(__VA_ARGS__); \
  } while (0)

// Internal invariant: a bug in qtune if it fires.
#define QT_ASSERT(cond) \
  do {                  \
    if (!(cond)) ::qtune::assert_failed(#cond, __FILE__, __LINE__); \
  } while (0)
