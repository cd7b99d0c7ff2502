// nn/swiglu.cpp — the LLaMA FFN gate: out = silu(a) ⊙ b, silu(a) = a·σ(a).
#include <cmath>

#include "nn/ops.h"
#include "nn/parallel.h"

namespace qtune::nn {

// a, b, out: [N] (flattened [rows, hidden])
template <class T>
void swiglu_forward(const T* a, const T* b, T* out, int64_t N) {
#pragma omp parallel for schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; ++i) {
    T sig = T(1) / (T(1) + std::exp(-a[i]));
    out[i] = a[i] * sig * b[i];
  }
}

// d silu(a)/da = σ(a)·(1 + a·(1 − σ(a)))
template <class T>
void swiglu_backward(const T* dout, const T* a, const T* b, T* da, T* db, int64_t N) {
#pragma omp parallel for schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; ++i) {
    T sig = T(1) / (T(1) + std::exp(-a[i]));
    T silu = a[i] * sig;
    da[i] += dout[i] * b[i] * sig * (T(1) + a[i] * (T(1) - sig));
    db[i] += dout[i] * silu;
  }
}

template void swiglu_forward<float>(const float*, const float*, float*, int64_t);
template void swiglu_forward<double>(const double*, const double*, double*, int64_t);
template void swiglu_backward<float>(const float*, const float*, const float*, float*, float*, int64_t);
template void swiglu_backward<double>(const double*, const double*, const double*, double*, double*, int64_t);

}  // namespace qtune::nn
