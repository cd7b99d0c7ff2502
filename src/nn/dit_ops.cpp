// nn/dit_ops.cpp — LayerNorm (no affine), GELU-tanh, SiLU, adaLN modulate and gated residual,
// bias, patchify/unpatchify, and DiT's fixed sinusoidal embeddings (nn/dit_ops.h).
#include "nn/dit_ops.h"

#include <cmath>

#include "nn/parallel.h"

namespace qtune::nn {

template <class T>
void layernorm_forward(const T* x, T* y, T* mean, T* rstd, int64_t N, int64_t C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    T m = 0;
    for (int64_t c = 0; c < C; ++c) m += xr[c];
    m /= T(C);
    T var = 0;  // two passes: x − mean before squaring keeps var exact for large means
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - m) * (xr[c] - m);
    const T r = T(1) / std::sqrt(var / T(C) + T(eps));
    mean[n] = m;
    rstd[n] = r;
    T* yr = y + n * C;
    for (int64_t c = 0; c < C; ++c) yr[c] = (xr[c] - m) * r;
  }
}

template <class T>
void layernorm_backward(const T* dy, const T* x, const T* mean, const T* rstd, T* dx, int64_t N, int64_t C) {
#pragma omp parallel for schedule(static) if (N * C >= kMinParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * C;
    const T* dyr = dy + n * C;
    const T m = mean[n], r = rstd[n];
    T sdy = 0, sdyy = 0;
    for (int64_t c = 0; c < C; ++c) {
      sdy += dyr[c];
      sdyy += dyr[c] * (xr[c] - m) * r;
    }
    sdy /= T(C);
    sdyy /= T(C);
    T* dxr = dx + n * C;
    for (int64_t c = 0; c < C; ++c) dxr[c] += r * (dyr[c] - sdy - (xr[c] - m) * r * sdyy);
  }
}

// With u = √(2/π)(x + 0.044715x³):  y' = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)
template <class T>
void gelu_tanh_forward(const T* x, T* y, int64_t N) {
  const T k = T(0.7978845608028654);  // √(2/π)
#pragma omp parallel for schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; ++i) {
    const T v = x[i];
    y[i] = T(0.5) * v * (T(1) + std::tanh(k * (v + T(0.044715) * v * v * v)));
  }
}

template <class T>
void gelu_tanh_backward(const T* dy, const T* x, T* dx, int64_t N) {
  const T k = T(0.7978845608028654);
#pragma omp parallel for schedule(static) if (N >= kMinParallelWork)
  for (int64_t i = 0; i < N; ++i) {
    const T v = x[i];
    const T th = std::tanh(k * (v + T(0.044715) * v * v * v));
    const T d = T(0.5) * (T(1) + th) + T(0.5) * v * (T(1) - th * th) * k * (T(1) + T(3 * 0.044715) * v * v);
    dx[i] += dy[i] * d;
  }
}

template <class T>
void silu_forward(const T* x, T* y, int64_t N) {
  for (int64_t i = 0; i < N; ++i) y[i] = x[i] / (T(1) + std::exp(-x[i]));
}

// d silu/dx = σ(x)·(1 + x·(1 − σ(x)))
template <class T>
void silu_backward(const T* dy, const T* x, T* dx, int64_t N) {
  for (int64_t i = 0; i < N; ++i) {
    const T s = T(1) / (T(1) + std::exp(-x[i]));
    dx[i] += dy[i] * s * (T(1) + x[i] * (T(1) - s));
  }
}

template <class T>
void modulate_forward(const T* x, const T* shift, const T* scale, T* y, int64_t B, int64_t Tn, int64_t C, int64_t ld) {
#pragma omp parallel for collapse(2) schedule(static) if (B * Tn * C >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      const T* xr = x + (b * Tn + t) * C;
      const T* sh = shift + b * ld;
      const T* sc = scale + b * ld;
      T* yr = y + (b * Tn + t) * C;
      for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] * (T(1) + sc[c]) + sh[c];
    }
}

// dshift/dscale reduce over the tokens of an image: one thread per image keeps them race-free.
template <class T>
void modulate_backward(const T* dy, const T* x, const T* scale, T* dx, T* dshift, T* dscale, int64_t B, int64_t Tn,
                       int64_t C, int64_t ld) {
#pragma omp parallel for schedule(static) if (B * Tn * C >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const T* sc = scale + b * ld;
    for (int64_t t = 0; t < Tn; ++t) {
      const T* dyr = dy + (b * Tn + t) * C;
      const T* xr = x + (b * Tn + t) * C;
      for (int64_t c = 0; c < C; ++c) {
        if (dx) dx[(b * Tn + t) * C + c] += dyr[c] * (T(1) + sc[c]);
        dshift[b * ld + c] += dyr[c];
        dscale[b * ld + c] += dyr[c] * xr[c];
      }
    }
  }
}

template <class T>
void gated_add_forward(const T* y, const T* gate, T* out, int64_t B, int64_t Tn, int64_t C, int64_t ld) {
#pragma omp parallel for collapse(2) schedule(static) if (B * Tn * C >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tn; ++t) {
      const T* g = gate + b * ld;
      const T* yr = y + (b * Tn + t) * C;
      T* o = out + (b * Tn + t) * C;
      for (int64_t c = 0; c < C; ++c) o[c] += g[c] * yr[c];
    }
}

template <class T>
void gated_add_backward(const T* dout, const T* y, const T* gate, T* dy, T* dgate, int64_t B, int64_t Tn, int64_t C,
                        int64_t ld) {
#pragma omp parallel for schedule(static) if (B * Tn * C >= kMinParallelWork)
  for (int64_t b = 0; b < B; ++b) {
    const T* g = gate + b * ld;
    for (int64_t t = 0; t < Tn; ++t) {
      const int64_t row = (b * Tn + t) * C;
      for (int64_t c = 0; c < C; ++c) {
        dy[row + c] += dout[row + c] * g[c];
        dgate[b * ld + c] += dout[row + c] * y[row + c];
      }
    }
  }
}

template <class T>
void add_bias_forward(T* y, const T* bias, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) y[n * C + c] += bias[c];
}

template <class T>
void add_bias_backward(const T* dy, T* dbias, int64_t N, int64_t C) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) dbias[c] += dy[n * C + c];
}

// Calls f(image index, token index) for every pixel of [B, Ch, H, W] with its token offset.
template <class F>
void for_each_patch_pixel(int64_t B, int64_t Ch, int64_t H, int64_t W, int64_t p, F&& f) {
  const int64_t gh = H / p, gw = W / p, P = Ch * p * p;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ch = 0; ch < Ch; ++ch)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          const int64_t tok = (y / p) * gw + x / p;
          const int64_t k = (ch * p + y % p) * p + x % p;  // (ch, pi, pj)
          f(((b * Ch + ch) * H + y) * W + x, (b * gh * gw + tok) * P + k);
        }
}

template <class T>
void patchify(const T* img, T* tok, int64_t B, int64_t Ch, int64_t H, int64_t W, int64_t p, bool accumulate) {
  for_each_patch_pixel(B, Ch, H, W, p, [&](int64_t i, int64_t o) { tok[o] = accumulate ? tok[o] + img[i] : img[i]; });
}

template <class T>
void unpatchify(const T* tok, T* img, int64_t B, int64_t Ch, int64_t H, int64_t W, int64_t p, bool accumulate) {
  for_each_patch_pixel(B, Ch, H, W, p, [&](int64_t i, int64_t o) { img[i] = accumulate ? img[i] + tok[o] : tok[o]; });
}

// Frequencies and angles in double, then T: the float model gets the correctly rounded value.
template <class T>
void timestep_embedding(const T* t, T* out, int64_t B, int64_t F, double max_period) {
  const int64_t h = F / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < h; ++i) {
      const double a = double(t[b]) * std::exp(-std::log(max_period) * double(i) / double(h));
      out[b * F + i] = T(std::cos(a));
      out[b * F + h + i] = T(std::sin(a));
    }
}

template <class T>
void pos_embed_2d(T* out, int64_t gs, int64_t D) {
  const int64_t q = D / 4;
  for (int64_t i = 0; i < gs; ++i)
    for (int64_t j = 0; j < gs; ++j) {
      T* o = out + (i * gs + j) * D;
      for (int64_t k = 0; k < q; ++k) {
        const double w = 1.0 / std::pow(10000.0, double(k) / double(q));
        o[k] = T(std::sin(double(j) * w));
        o[q + k] = T(std::cos(double(j) * w));
        o[2 * q + k] = T(std::sin(double(i) * w));
        o[3 * q + k] = T(std::cos(double(i) * w));
      }
    }
}

#define QT_DIT_OPS(T)                                                                                          \
  template void layernorm_forward<T>(const T*, T*, T*, T*, int64_t, int64_t, float);                           \
  template void layernorm_backward<T>(const T*, const T*, const T*, const T*, T*, int64_t, int64_t);           \
  template void gelu_tanh_forward<T>(const T*, T*, int64_t);                                                   \
  template void gelu_tanh_backward<T>(const T*, const T*, T*, int64_t);                                        \
  template void silu_forward<T>(const T*, T*, int64_t);                                                        \
  template void silu_backward<T>(const T*, const T*, T*, int64_t);                                             \
  template void modulate_forward<T>(const T*, const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t);     \
  template void modulate_backward<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, int64_t,      \
                                     int64_t);                                                                 \
  template void gated_add_forward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, int64_t);              \
  template void gated_add_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t,         \
                                      int64_t);                                                                \
  template void add_bias_forward<T>(T*, const T*, int64_t, int64_t);                                           \
  template void add_bias_backward<T>(const T*, T*, int64_t, int64_t);                                          \
  template void patchify<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, bool);                  \
  template void unpatchify<T>(const T*, T*, int64_t, int64_t, int64_t, int64_t, int64_t, bool);                \
  template void timestep_embedding<T>(const T*, T*, int64_t, int64_t, double);                                 \
  template void pos_embed_2d<T>(T*, int64_t, int64_t);
QT_DIT_OPS(float)
QT_DIT_OPS(double)
#undef QT_DIT_OPS

}  // namespace qtune::nn
