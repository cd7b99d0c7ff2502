// nn/ops.h — transformer ops with hand-written forward AND backward, templated on the
// scalar type (float for models, double for finite-difference checks).
//
// Conventions: forward overwrites its outputs; backward ACCUMULATES (+=) into every
// gradient it produces (dx, dweight). Shapes in comments, N = B·T rows.
#pragma once
#include <cstdint>

namespace qtune::nn {

// out[N, C] = table[tokens[i], :]
template <class T> void embedding_forward(const int* tokens, const T* table, T* out, int64_t N, int64_t C);
// dtable[tokens[i], :] += dout[i, :]
template <class T> void embedding_backward(const int* tokens, const T* dout, T* dtable, int64_t N, int64_t C);

// y = x / rms(x) * w ;  rstd[N] saved for backward
template <class T> void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int64_t N, int64_t C, float eps);
template <class T> void rmsnorm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw,
                                         int64_t N, int64_t C);

// RoPE on adjacent pairs (i, i+1) of each head, θ_i = theta^(−i/head_dim), position = t.
// x: [B, T, n_heads, head_dim] in place; backward applies the inverse rotation to dx in place.
template <class T> void rope_forward(T* x, int64_t B, int64_t Tn, int64_t n_heads, int64_t head_dim, float theta, int64_t pos0 = 0);
template <class T> void rope_backward(T* dx, int64_t B, int64_t Tn, int64_t n_heads, int64_t head_dim, float theta, int64_t pos0 = 0);

// Grouped-query attention, causal (LLaMA) or not (DiT: every patch sees every patch), tiled
// as FlashAttention-2 (nn/attention.cpp): no [T, T] score matrix is ever held, only a tile per thread.
// q: [B, T, nh, hd]  k, v: [B, T, nkv, hd]  out: [B, T, nh, hd]; query head h reads kv head
// h / (nh / nkv). lse: [B, nh, T] log Σ_s exp(q·k_s/√hd) per query row, saved for backward.
template <class T> void attention_forward(const T* q, const T* k, const T* v, T* out, T* lse,
                                          int64_t B, int64_t Tn, int64_t nh, int64_t nkv, int64_t hd,
                                          bool causal = true);
// Recomputes each tile's probabilities from lse; `out` is the forward's output (for D = rowsum(dout ⊙ out)).
template <class T> void attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* out,
                                           const T* lse, T* dq, T* dk, T* dv, int64_t B, int64_t Tn, int64_t nh,
                                           int64_t nkv, int64_t hd, bool causal = true);

namespace ref {
// The naive attention (nn/attention_ref.cpp): same shapes, but saves the softmax probabilities
// att: [B, nh, T, T] (causal: zeros above the diagonal) and backward reads them.
template <class T> void attention_forward(const T* q, const T* k, const T* v, T* out, T* att,
                                          int64_t B, int64_t Tn, int64_t nh, int64_t nkv, int64_t hd,
                                          bool causal = true);
template <class T> void attention_backward(const T* dout, const T* q, const T* k, const T* v, const T* att,
                                           T* dq, T* dk, T* dv, int64_t B, int64_t Tn, int64_t nh, int64_t nkv, int64_t hd,
                                           bool causal = true);
}  // namespace ref

// out = silu(a) ⊙ b   (a = gate, b = up), all [N, H]
template <class T> void swiglu_forward(const T* a, const T* b, T* out, int64_t N);
template <class T> void swiglu_backward(const T* dout, const T* a, const T* b, T* da, T* db, int64_t N);

// The counted targets (>= 0) among N; the losses below are means over them.
int64_t count_targets(const int* targets, int64_t N);
// Mean cross-entropy over rows with target >= 0 (targets < 0 are ignored).
// logits: [N, V]; probs[N, V] saved (softmax). Returns the mean loss (0 if no target counts).
template <class T> double cross_entropy_forward(const T* logits, const int* targets, T* probs, int64_t N, int64_t V);
// dlogits += (probs − onehot) / count   (rows with ignored targets get nothing)
template <class T> void cross_entropy_backward(const T* probs, const int* targets, T* dlogits, int64_t N, int64_t V);

}  // namespace qtune::nn
