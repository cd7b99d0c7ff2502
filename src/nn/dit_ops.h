// nn/dit_ops.h — the ops a diffusion transformer (DiT, Peebles & Xie 2023) adds to nn/ops.h,
// with hand-written forward AND backward, templated on the scalar type.
//
// Conventions as in nn/ops.h: forward overwrites its outputs; backward ACCUMULATES (+=) into
// every gradient it produces. "Per-sample" vectors (shift, scale, gate: one row per image,
// applied to every token of it) are read with a row stride `ld`, because adaLN produces them
// as chunks of one [B, 6·C] row.
#pragma once
#include <cstdint>

namespace qtune::nn {

// LayerNorm without affine parameters (DiT's norm1/norm2/norm_final):
//   y = (x − mean) · rstd,  rstd = 1/√(var + eps), var biased.   x, y: [N, C]  mean, rstd: [N]
template <class T> void layernorm_forward(const T* x, T* y, T* mean, T* rstd, int64_t N, int64_t C, float eps);
// dx += rstd · (dy − mean(dy) − ŷ · mean(dy ⊙ ŷ)),  ŷ = (x − mean)·rstd recomputed from x
template <class T> void layernorm_backward(const T* dy, const T* x, const T* mean, const T* rstd, T* dx,
                                           int64_t N, int64_t C);

// GELU, tanh approximation (PyTorch approximate="tanh", DiT's MLP):
//   y = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))       x, y: [N]
template <class T> void gelu_tanh_forward(const T* x, T* y, int64_t N);
template <class T> void gelu_tanh_backward(const T* dy, const T* x, T* dx, int64_t N);

// SiLU y = x·σ(x) (the timestep MLP and the input of every adaLN).   x, y: [N]
template <class T> void silu_forward(const T* x, T* y, int64_t N);
template <class T> void silu_backward(const T* dy, const T* x, T* dx, int64_t N);

// adaLN modulation per image b: y[b, t, :] = x[b, t, :] ⊙ (1 + scale[b]) + shift[b]
// x, y: [B, T, C]; shift, scale: rows of length C at stride ld (shift + b·ld).
template <class T> void modulate_forward(const T* x, const T* shift, const T* scale, T* y,
                                         int64_t B, int64_t Tn, int64_t C, int64_t ld);
// dx += dy ⊙ (1 + scale);  dshift[b] += Σ_t dy;  dscale[b] += Σ_t dy ⊙ x   (dx may be null)
template <class T> void modulate_backward(const T* dy, const T* x, const T* scale, T* dx, T* dshift, T* dscale,
                                          int64_t B, int64_t Tn, int64_t C, int64_t ld);

// adaLN-Zero gated residual: out[b, t, :] += gate[b] ⊙ y[b, t, :]   (gate at stride ld)
template <class T> void gated_add_forward(const T* y, const T* gate, T* out, int64_t B, int64_t Tn, int64_t C,
                                          int64_t ld);
// dy += dout ⊙ gate[b];  dgate[b] += Σ_t dout ⊙ y
template <class T> void gated_add_backward(const T* dout, const T* y, const T* gate, T* dy, T* dgate,
                                           int64_t B, int64_t Tn, int64_t C, int64_t ld);

// Bias of a Linear slot (slots have none): y[n, :] += bias;  dbias += Σ_n dy[n, :].   y: [N, C]
template <class T> void add_bias_forward(T* y, const T* bias, int64_t N, int64_t C);
template <class T> void add_bias_backward(const T* dy, T* dbias, int64_t N, int64_t C);

// Patchify: images [B, Ch, H, W] → tokens [B, (H/p)·(W/p), Ch·p·p], token (i, j) row-major,
// its vector ordered (ch, pi, pj) — the flattening of DiT's Conv2d(kernel = stride = p) weight
// [D, Ch, p, p], so the patch embedding is a Linear [D, Ch·p·p] slot. unpatchify is the inverse
// with the same order. Each is a permutation, so the backward of one is the other (accumulating).
template <class T> void patchify(const T* img, T* tok, int64_t B, int64_t Ch, int64_t H, int64_t W, int64_t p,
                                 bool accumulate = false);
template <class T> void unpatchify(const T* tok, T* img, int64_t B, int64_t Ch, int64_t H, int64_t W, int64_t p,
                                   bool accumulate = false);

// DiT's sinusoidal timestep embedding (no gradient): out[b] = [cos(t·f_0..f_{h−1}),
// sin(t·f_0..f_{h−1})], f_i = max_period^(−i/h), h = F/2.   t: [B]  out: [B, F], F even.
template <class T> void timestep_embedding(const T* t, T* out, int64_t B, int64_t F, double max_period = 10000.0);

// DiT's fixed 2-D sin-cos position embedding for a gs×gs grid (no gradient): token
// (i, j) = i·gs + j gets [sin(j·ω), cos(j·ω), sin(i·ω), cos(i·ω)], ω_k = 10000^(−k/(D/4)),
// k < D/4 (the column coordinate first, as get_2d_sincos_pos_embed's meshgrid(w, h)).
// out: [gs·gs, D], D a multiple of 4.
template <class T> void pos_embed_2d(T* out, int64_t gs, int64_t D);

}  // namespace qtune::nn
