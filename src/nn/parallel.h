// nn/parallel.h — when an op is worth an OpenMP fork.
#pragma once
#include <cstdint>

namespace qtune::nn {
// Below this many scalar operations a parallel region costs more than it saves (fork/join
// is microseconds; on a busy 2-core machine spinning threads make it much worse), e.g. in
// single-token generation and in finite-difference tests.
inline constexpr int64_t kMinParallelWork = int64_t(1) << 15;
}  // namespace qtune::nn
