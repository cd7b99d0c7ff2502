// nn/rope.cpp — rotary position embedding on adjacent pairs (x[2j], x[2j+1]) of each head,
// as llama2.c run.c and model.py do: angle = pos · theta^(−2j/head_dim).
#include <cmath>
#include <vector>

#include "nn/ops.h"
#include "nn/parallel.h"

namespace qtune::nn {

namespace {

// cos/sin for positions [pos0, pos0+Tn) and pairs [0, hd/2): [Tn, hd/2] each. Computed in
// double and rounded once, so tables are correctly rounded at any position (llama2.c's
// float powf/cosf drift by an ulp of the angle, ~3e-5 at pos 500).
template <class T>
void rope_tables(int64_t Tn, int64_t hd, float theta, int64_t pos0, std::vector<T>& cs, std::vector<T>& sn) {
  const int64_t half = hd / 2;
  cs.resize(Tn * half);
  sn.resize(Tn * half);
  for (int64_t t = 0; t < Tn; ++t)
    for (int64_t j = 0; j < half; ++j) {
      double freq = 1.0 / std::pow(double(theta), double(2 * j) / double(hd));
      double ang = double(pos0 + t) * freq;
      cs[t * half + j] = T(std::cos(ang));
      sn[t * half + j] = T(std::sin(ang));
    }
}

// Rotates every pair by +angle (sign = +1) or by −angle (sign = −1, the transpose).
template <class T>
void rope_apply(T* x, int64_t B, int64_t Tn, int64_t nh, int64_t hd, float theta, int64_t pos0, T sign) {
  std::vector<T> cs, sn;
  rope_tables(Tn, hd, theta, pos0, cs, sn);
  const int64_t half = hd / 2;
#pragma omp parallel for collapse(2) schedule(static) if (B * Tn * nh * hd >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      const T* c = cs.data() + t * half;
      const T* s = sn.data() + t * half;
      for (int64_t h = 0; h < nh; ++h) {
        T* v = x + ((b * Tn + t) * nh + h) * hd;
        for (int64_t j = 0; j < half; ++j) {
          T v0 = v[2 * j], v1 = v[2 * j + 1], sj = sign * s[j];
          v[2 * j] = v0 * c[j] - v1 * sj;
          v[2 * j + 1] = v0 * sj + v1 * c[j];
        }
      }
    }
}

}  // namespace

// x: [B, T, nh, hd] in place
template <class T>
void rope_forward(T* x, int64_t B, int64_t Tn, int64_t nh, int64_t hd, float theta, int64_t pos0) {
  rope_apply(x, B, Tn, nh, hd, theta, pos0, T(1));
}

// RoPE is a rotation, so its backward is the inverse rotation of the upstream gradient.
template <class T>
void rope_backward(T* dx, int64_t B, int64_t Tn, int64_t nh, int64_t hd, float theta, int64_t pos0) {
  rope_apply(dx, B, Tn, nh, hd, theta, pos0, T(-1));
}

template void rope_forward<float>(float*, int64_t, int64_t, int64_t, int64_t, float, int64_t);
template void rope_forward<double>(double*, int64_t, int64_t, int64_t, int64_t, float, int64_t);
template void rope_backward<float>(float*, int64_t, int64_t, int64_t, int64_t, float, int64_t);
template void rope_backward<double>(double*, int64_t, int64_t, int64_t, int64_t, float, int64_t);

}  // namespace qtune::nn
