#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace qtune {

void assert_failed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace qtune
