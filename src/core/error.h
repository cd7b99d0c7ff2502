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

namespace qtune {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... A>
[[noreturn]] void fail(fmt::format_string<A...> f, A&&... args) {
  throw Error(fmt::format(f, std::forward<A>(args)...));
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
