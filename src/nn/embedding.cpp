// nn/embedding.cpp — token embedding lookup and its backward (scatter-add).
#include <cstring>

#include "nn/ops.h"
#include "nn/parallel.h"

namespace qtune::nn {

// out: [N, C] = table[tokens[i], :]   table: [V, C]
template <class T>
void embedding_forward(const int* tokens, const T* table, T* out, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t i = 0; i < N; ++i) std::memcpy(out + i * C, table + int64_t(tokens[i]) * C, C * sizeof(T));
}

// dtable[tokens[i], :] += dout[i, :]. Serial over rows: two rows may share a token, and
// N·C is tiny next to any GEMM, so a race-free loop beats atomics here.
template <class T>
void embedding_backward(const int* tokens, const T* dout, T* dtable, int64_t N, int64_t C) {
  for (int64_t i = 0; i < N; ++i) {
    T* d = dtable + int64_t(tokens[i]) * C;
    const T* g = dout + i * C;
    for (int64_t c = 0; c < C; ++c) d[c] += g[c];
  }
}

template void embedding_forward<float>(const int*, const float*, float*, int64_t, int64_t);
template void embedding_forward<double>(const int*, const double*, double*, int64_t, int64_t);
template void embedding_backward<float>(const int*, const float*, float*, int64_t, int64_t);
template void embedding_backward<double>(const int*, const double*, double*, int64_t, int64_t);

}  // namespace qtune::nn
