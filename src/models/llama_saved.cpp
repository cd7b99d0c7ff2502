// models/llama_saved.cpp — --save-act gse (docs/METHODS.md §9): the activations a forward keeps
// for backward, stored per layer in GSE-INT8 (groups of 32 along each tensor's rows) and decoded
// into a one-layer float working set when backward reaches that layer; the softmax of the
// logits likewise, the classifier running a block of rows at a time so that no [N, V] float is
// held. And the model's memory breakdown (Llama::memory).
//
// What is saved per layer (shapes in llama_impl.h): res[l], res_mid, xn1, q, k, v, att (only with
// --gemm-attention), attn_y, xn2, h1, h3, swi — everything backward_layer reads except rstd1/rstd2
// and attention's lse, which stay float (one number per token, or per token and head). The stored form is 1 + 2/32 bytes per value instead of 4.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>

#include "io/projections.h"
#include "kernels/gse_ops.h"
#include "models/llama.h"
#include "models/llama_impl.h"
#include "nn/ops.h"

namespace qtune {

namespace {

// GSE-INT8, groups of 32, ceil rule (never saturates), nearest rounding: what --save-act gse stores.
GseSpec saved_spec() { return GseSpec{}; }

}  // namespace

// Layer l's saved tensors in the working set, in the order of saved.
std::array<SavedView, kSavedPerLayer> Llama::Impl::saved_views(int l) const {
  const int64_t n = N(), C = cfg.dim, H = cfg.hidden_dim, i = li(l);
  const int64_t Q = int64_t(cfg.n_heads) * cfg.head_dim(), KV = cfg.kv_dim();
  return {{{res_at(l), n, C},
           {a.res_mid + i * n * C, n, C},
           {a.xn1 + i * n * C, n, C},
           {a.q + i * n * Q, n, Q},
           {a.k + i * n * KV, n, KV},
           {a.v + i * n * KV, n, KV},
           {a.att ? a.att + i * B * cfg.n_heads * T * T : nullptr, int64_t(B) * cfg.n_heads * T, T},  // [B·nh·T, T]
           {a.attn_y + i * n * Q, n, Q},
           {a.xn2 + i * n * C, n, C},
           {a.h1 + i * n * H, n, H},
           {a.h3 + i * n * H, n, H},
           {a.swi + i * n * H, n, H}}};
}

void Llama::Impl::carve_saved() {
  saved.clear();
  for (int l = 0; l < cfg.n_layers; ++l)
    for (const SavedView& v : saved_views(l))  // an absent tensor (p null) keeps an empty slot
      saved.push_back(v.p ? gse_zeros(v.rows, v.cols, saved_spec()) : GseMatrix{});
  saved_probs = gse_zeros(N(), cfg.vocab_size, saved_spec());
}

void Llama::Impl::save_layer(int l) {
  const auto views = saved_views(l);
  for (int t = 0; t < kSavedPerLayer; ++t)
    if (views[t].p) gse_encode(views[t].p, views[t].rows, views[t].cols, saved_spec(), saved[l * kSavedPerLayer + t]);
}

void Llama::Impl::restore_layer(int l) {
  const auto views = saved_views(l);
  for (int t = 0; t < kSavedPerLayer; ++t)
    if (views[t].p) gse_decode(saved[l * kSavedPerLayer + t], views[t].p);
}

namespace {

// Cross-entropy of rows z [rows, V] in place: returns Σ over counted targets of −log softmax
// and leaves the softmax in z — nn::cross_entropy_forward's arithmetic, without a second buffer.
double cross_entropy_in_place(float* z, const int* targets, int64_t rows, int64_t V) {
  double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int64_t r = 0; r < rows; ++r) {
    float* p = z + r * V;
    float mx = p[0];
    for (int64_t j = 1; j < V; ++j) mx = p[j] > mx ? p[j] : mx;
    const float zt = targets[r] >= 0 ? p[targets[r]] : 0.0f;
    float sum = 0;
    for (int64_t j = 0; j < V; ++j) {
      p[j] = std::exp(p[j] - mx);
      sum += p[j];
    }
    for (int64_t j = 0; j < V; ++j) p[j] /= sum;
    if (targets[r] >= 0) total += std::log(double(sum)) - double(zt - mx);
  }
  return total;
}

}  // namespace

// The mean over counted targets, as nn::cross_entropy_forward; the classifier and the softmax
// run a block of kLogitRows rows at a time in a.logits, and each block's softmax is encoded
// into saved_probs.
double Llama::Impl::loss_saving_probs(const int* targets) {
  const int64_t n = N(), V = cfg.vocab_size;
  for (int64_t r = 0; r < n; ++r)
    QT_CHECK(targets[r] < V, "cross-entropy: target {} at row {} is outside the vocabulary ({} tokens)", targets[r],
             r, V);
  double total = 0;
  for (int64_t r0 = 0; r0 < n; r0 += kLogitRows) {
    const int64_t r1 = std::min(n, r0 + kLogitRows);
    classifier_forward(r0, r1, a.logits);
    total += cross_entropy_in_place(a.logits, targets + r0, r1 - r0, V);
    gse_encode_rows(a.logits, r0, r1, saved_spec(), saved_probs);
  }
  const int64_t counted = loss_denominator(targets);
  return counted ? total / counted : 0.0;
}

// dlogits = (softmax − onehot) / count on rows with a target (nn::cross_entropy_backward's rule
// with the count of the whole batch), a block at a time in a.logits, each block straight into
// the classifier's backward.
void Llama::Impl::classifier_backward_from_saved(const int* targets) {
  const int64_t n = N(), V = cfg.vocab_size;
  const int64_t counted = loss_denominator(targets);
  const float inv = counted ? 1.0f / static_cast<float>(counted) : 0.0f;
  for (int64_t r0 = 0; r0 < n; r0 += kLogitRows) {
    const int64_t r1 = std::min(n, r0 + kLogitRows);
    gse_decode_rows(saved_probs, r0, r1, a.logits);
#pragma omp parallel for schedule(static)
    for (int64_t r = r0; r < r1; ++r) {
      float* d = a.logits + (r - r0) * V;
      if (targets[r] < 0) {
        std::fill(d, d + V, 0.0f);
        continue;
      }
      for (int64_t j = 0; j < V; ++j) d[j] *= inv;
      d[targets[r]] -= inv;
    }
    classifier_backward(r0, r1, a.logits);
  }
}

MemoryBreakdown Llama::memory() const {
  const Impl& m = *impl_;
  constexpr int64_t F = sizeof(float);
  const int64_t n = m.N(), C = cfg_.dim, L = cfg_.n_layers, V = cfg_.vocab_size;
  MemoryBreakdown b;
  b.weights = static_cast<int64_t>(m.params.size() + m.grads.size()) * F +
              (m.output_gse ? m.output_gse->bytes() : 0) + (m.output_blocks ? m.output_blocks->bytes() : 0) +
              (m.output_packed ? m.output_packed->bytes() : 0);
  for (auto& layer : m.layers)
    for (int i = 0; i < kNumProjections; ++i) {
      const Linear<float>& s = *slot_ref(const_cast<LlamaLayer&>(layer), i);
      b.weights += s.weight_bytes() - s.adapter_bytes();
      b.adapters += s.adapter_bytes();
      b.workspace += s.scratch_bytes();
    }
  // the slots' gradients: a trained base weight's ("<stem>.weight", full) or an adapter's, and
  // an adapter's exact sums (adapters/exact_grad.cpp)
  for (auto& layer : const_cast<Impl&>(m).layers)
    for (int i = 0; i < kNumProjections; ++i)
      for (const auto& p : slot_ref(layer, i)->trainable())
        (p.name.ends_with(".weight") ? b.weights : b.adapters) +=
            p.numel * (F + (p.sum ? int64_t{sizeof(double)} : 0));

  const int64_t acts = static_cast<int64_t>(m.act_mem.size()) * F, grads = static_cast<int64_t>(m.grad_mem.size()) * F;
  // the logits as held: the float path's chunk (and the [N, V] of an inference forward), --gemm
  // gse's [N, V] logits and softmax, --save-act gse's block
  const int64_t rows = m.save_gse ? std::min(n, kLogitRows) : m.gse ? 2 * n : std::min(n, m.ce_rows);
  const int64_t logits = m.act_mem.empty() ? 0 : rows * V * F;
  const int64_t dlogits = m.d.dlogits && !m.grad_mem.empty() ? n * V * F : 0;
  b.logits = logits + dlogits + static_cast<int64_t>(m.full_logits.size()) * F;
  if (m.save_gse || m.recompute) {
    // kept for backward: one number per token per layer (rstd1, rstd2, and lse per head unless
    // --gemm-attention), xf, rstdf, and under --recompute every block's input res [L+1, N, C];
    // the rest is the one-layer working set
    const int64_t lse = m.gse_attention ? 0 : int64_t(L) * n * cfg_.n_heads;  // [L, B, nh, T]
    const int64_t kept =
        m.act_mem.empty() ? 0 : (2 * L * n + lse + n * C + n + (m.recompute ? (L + 1) * n * C : 0)) * F;
    b.saved_activations = kept;
    for (const GseMatrix& q : m.saved) b.saved_activations += kernels::gse_bytes(q);
    if (m.save_gse) b.logits += kernels::gse_bytes(m.saved_probs);  // the saved softmax
    b.workspace += acts - logits - kept;
  } else {
    b.saved_activations = acts - logits;  // all but the logits (and their softmax)
  }
  b.workspace += grads - dlogits + kernels::gse_operand_bytes();
  return b;
}

}  // namespace qtune
