// nn/rmsnorm.cpp — RMSNorm as in llama2.c / PyTorch LLaMA: y = x · rsqrt(mean(x²) + eps) · w.
#include <cmath>

#include "nn/ops.h"
#include "nn/parallel.h"

namespace qtune::nn {

// x, y: [N, C]  w: [C]  rstd: [N]
template <class T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    T ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += xr[c] * xr[c];
    T r = T(1) / std::sqrt(ss / T(C) + T(eps));
    rstd[n] = r;
    T* yr = y + n * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * r * w[c];
  }
}

// With r = rstd and g_c = dy_c·w_c:
//   dx_c += r·g_c − r³/C · x_c · Σ_j g_j·x_j        dw_c += Σ_n dy_c·x_c·r
template <class T>
void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    const T* dyr = dy + n * C;
    T r = rstd[n];
    T dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += dyr[c] * w[c] * xr[c];
    T k = r * r * r * dot / T(C);
    T* dxr = dx + n * C;
    for (int64_t c = 0; c < C; ++c) dxr[c] += r * dyr[c] * w[c] - k * xr[c];
  }
  // dw reduces over rows: a column-parallel loop keeps it race-free.
  if (dw) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
    for (int64_t c = 0; c < C; ++c) {
      T s = 0;
      for (int64_t n = 0; n < N; ++n) s += dy[n * C + c] * x[n * C + c] * rstd[n];
      dw[c] += s;
    }
  }
}

template void rmsnorm_forward<float>(const float*, const float*, float*, float*, int64_t, int64_t, float);
template void rmsnorm_forward<double>(const double*, const double*, double*, double*, int64_t, int64_t, float);
template void rmsnorm_backward<float>(const float*, const float*, const float*, const float*, float*, float*,
                                      int64_t, int64_t);
template void rmsnorm_backward<double>(const double*, const double*, const double*, const double*, double*, double*,
                                       int64_t, int64_t);

}  // namespace qtune::nn
