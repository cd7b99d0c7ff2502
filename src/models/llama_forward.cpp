// models/llama_forward.cpp — the training/eval forward over a [B, T] batch (llm.c style):
// every activation that backward needs is saved in one Buffer carved per (B, T).
#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/gse_gemm.h"
#include "kernels/gse_ops.h"
#include "kernels/sgemm_parallel.h"
#include "models/attention_gse.h"
#include "models/llama.h"
#include "models/llama_impl.h"
#include "nn/ops.h"

namespace qtune {

// Carves the activations for shape (B, T) out of act_mem (shapes in llama_impl.h); only
// when (B, T) changes. Under --save-act gse and --recompute the per-layer tensors hold one layer
// (Ls = 1).
void Llama::Impl::carve_acts(int newB, int newT) {
  if (newB == B && newT == T && !act_mem.empty()) return;
  B = newB;
  T = newT;
  const LlamaConfig& c = cfg;
  const int64_t N = int64_t(B) * T, C = c.dim, L = c.n_layers, H = c.hidden_dim, V = c.vocab_size;
  const int64_t Ls = save_gse || recompute ? 1 : L, R = save_gse ? 2 : L + 1;
  const int64_t logit_rows = save_gse ? std::min(N, kLogitRows) : gse ? N : std::min(N, ce_rows);
  const int64_t Q = int64_t(c.n_heads) * c.head_dim(), KV = c.kv_dim();
  // nn::attention keeps lse [L, B, nh, T] (every layer, also under --recompute: forward_layer
  // rewrites it); --gemm-attention its probabilities [Ls, B, nh, T, T] instead
  const int64_t att = gse_attention ? Ls * B * c.n_heads * T * T : 0, lse = gse_attention ? 0 : L * B * c.n_heads * T;
  carve(act_mem, {{&a.res, R * N * C},         // [L+1, N, C]
                  {&a.res_mid, Ls * N * C},    // [L, N, C]
                  {&a.xn1, Ls * N * C},        // [L, N, C]
                  {&a.rstd1, L * N},           // [L, N]
                  {&a.q, Ls * N * Q},          // [L, N, Q]
                  {&a.k, Ls * N * KV},         // [L, N, KV]
                  {&a.v, Ls * N * KV},         // [L, N, KV]
                  {&a.lse, lse},               // [L, B, nh, T]
                  {&a.att, att},               // [L, B, nh, T, T] (--gemm-attention)
                  {&a.attn_y, Ls * N * Q},     // [L, N, Q]
                  {&a.xn2, Ls * N * C},        // [L, N, C]
                  {&a.rstd2, L * N},           // [L, N]
                  {&a.h1, Ls * N * H},         // [L, N, H]
                  {&a.h3, Ls * N * H},         // [L, N, H]
                  {&a.swi, Ls * N * H},        // [L, N, H]
                  {&a.xf, N * C},              // [N, C]
                  {&a.rstdf, N},               // [N]
                  {&a.logits, logit_rows * V},  // [N, V] or a chunk of its rows
                  {&a.probs, gse && !save_gse ? N * V : 0}});  // [N, V]
  (gse_attention ? a.lse : a.att) = nullptr;
  if (!gse || save_gse) a.probs = nullptr;
  if (save_gse) carve_saved();
  grad_mem.resize(0);  // gradients are re-carved lazily for the new shape
  full_logits.resize(0);
  ws_layer = -1;
}

// One transformer block: res[l] → res[l+1].
void Llama::Impl::forward_layer(int l) {
  const int64_t n = N(), C = cfg.dim, H = cfg.hidden_dim;
  const int64_t Q = int64_t(cfg.n_heads) * cfg.head_dim(), KV = cfg.kv_dim();
  LlamaLayer& ly = layers[l];
  const int64_t i = li(l);
  // q, k, v (and gate, up) encode their shared input once: nothing below rewrites an input
  // after a slot has read it (kernels/gse_ops.h)
  const kernels::GseReuse reuse;
  const float* x = res_at(l);  // x: [N, C]
  float* xn1 = a.xn1 + i * n * C;
  float* q = a.q + i * n * Q;    // q: [B, T, nh, hd]
  float* k = a.k + i * n * KV;   // k, v: [B, T, nkv, hd]
  float* v = a.v + i * n * KV;
  float* attn_y = a.attn_y + i * n * Q;
  float* mid = a.res_mid + i * n * C;
  float* xn2 = a.xn2 + i * n * C;
  float* h1 = a.h1 + i * n * H;  // h1, h3, swi: [N, H]
  float* h3 = a.h3 + i * n * H;
  float* swi = a.swi + i * n * H;
  float* out = res_at(l + 1);

  // attention block
  nn::rmsnorm_forward(x, p.attn_norm + l * C, xn1, a.rstd1 + l * n, n, C, cfg.norm_eps);
  ly.q->forward(xn1, q, n, ctx);
  ly.k->forward(xn1, k, n, ctx);
  ly.v->forward(xn1, v, n, ctx);
  nn::rope_forward(q, B, T, cfg.n_heads, cfg.head_dim(), cfg.rope_theta);
  nn::rope_forward(k, B, T, cfg.n_kv_heads, cfg.head_dim(), cfg.rope_theta);
  if (gse_attention)
    attention_forward_gse(q, k, v, attn_y, a.att + i * B * cfg.n_heads * T * T, B, T, cfg.n_heads, cfg.n_kv_heads,
                          cfg.head_dim(), *gse);
  else
    nn::attention_forward(q, k, v, attn_y, a.lse + l * B * cfg.n_heads * T, B, T, cfg.n_heads, cfg.n_kv_heads,
                          cfg.head_dim());
  ly.o->forward(attn_y, mid, n, ctx);
  for (int64_t i = 0; i < n * C; ++i) mid[i] += x[i];  // residual

  // feed-forward block: down(silu(gate(x)) ⊙ up(x))
  nn::rmsnorm_forward(mid, p.ffn_norm + l * C, xn2, a.rstd2 + l * n, n, C, cfg.norm_eps);
  ly.gate->forward(xn2, h1, n, ctx);
  ly.up->forward(xn2, h3, n, ctx);
  nn::swiglu_forward(h1, h3, swi, n * H);
  ly.down->forward(swi, out, n, ctx);
  for (int64_t i = 0; i < n * C; ++i) out[i] += mid[i];  // residual
  ws_layer = l;
}

// out [r1 − r0, V] = xf[r0:r1] · Wᵀ, W = output [V, C]; GSE: reduce over C (adapters/gse_slot.h).
void Llama::Impl::classifier_forward(int64_t r0, int64_t r1, float* out) {
  const int64_t C = cfg.dim, V = cfg.vocab_size;
  if (!gse) {
    kernels::matmul_nt(a.xf + r0 * C, p.output, out, r1 - r0, C, V, false);
    return;
  }
  using kernels::GseRole;
  const GseMatrix& xq = kernels::gse_operand(GseRole::x, a.xf + r0 * C, r1 - r0, C, gse->nearest());
  kernels::gse_gemm(xq, output_gse ? output_gse->w : kernels::gse_operand(GseRole::w, p.output, V, C, gse->nearest()),
                    out, false);
}

float Llama::forward(const int* tokens, const int* targets, int B, int T, bool will_backward, int64_t loss_count) {
  Impl& m = *impl_;
  QT_CHECK(B > 0 && T > 0, "forward: batch shape must be positive, got B={} T={}", B, T);
  QT_CHECK(T <= cfg_.seq_len, "forward: sequence length {} exceeds the model's seq_len {}", T, cfg_.seq_len);
  QT_CHECK(targets || !will_backward, "forward: a forward that a backward follows needs targets");
  const int64_t N = int64_t(B) * T, C = cfg_.dim, V = cfg_.vocab_size;
  for (int64_t i = 0; i < N; ++i)
    QT_CHECK(tokens[i] >= 0 && tokens[i] < V, "forward: token id {} at position {} is outside the vocabulary (0..{})",
             tokens[i], i, V - 1);
  m.carve_acts(B, T);
  m.tokens.assign(tokens, tokens + N);
  m.has_targets = targets != nullptr;
  if (targets) m.targets.assign(targets, targets + N);
  m.ce_ready = false;
  m.last_logits = nullptr;
  m.loss_count = loss_count;
  // --exact-sums: the rows are B sequences of T, each sequence's products computed as if it were
  // alone and an adapter's gradients summed per sequence (adapters/exact_grad.cpp), so the result
  // does not depend on the batch it came in.
  const kernels::RowsPerSample per_sequence(opts_.exact_sums ? T : 0);

  nn::embedding_forward(tokens, m.p.token_embd, m.a.res, N, C);  // res[0]: [N, C]
  for (int l = 0; l < cfg_.n_layers; ++l) {
    m.forward_layer(l);
    if (m.save_gse) m.save_layer(l);
  }
  const float* x = m.res_at(cfg_.n_layers);
  nn::rmsnorm_forward(x, m.p.output_norm, m.a.xf, m.a.rstdf, N, C, cfg_.norm_eps);
  if (m.save_gse) {  // the classifier a block at a time, straight into the saved softmax
    QT_CHECK(targets, "forward: --save-act gse keeps no logits, only their softmax: give targets");
    return float(m.loss_saving_probs(targets));
  }
  if (m.fused_ce()) {
    if (!targets) {  // inference: the whole [N, V], which the caller reads
      if (m.full_logits.size() != size_t(N * V)) m.full_logits.resize(N * V);
      m.classifier_forward(0, N, m.full_logits.data());
      m.last_logits = m.full_logits.data();
      return 0.0f;
    }
    if (will_backward) m.carve_grads();
    const double loss = m.classifier_ce(targets, will_backward);
    m.ce_ready = will_backward;
    return float(loss);
  }
  m.classifier_forward(0, N, m.a.logits);  // --gemm gse: logits [N, V]
  m.last_logits = m.a.logits;
  if (!targets) return 0.0f;
  const double mean = nn::cross_entropy_forward(m.a.logits, targets, m.a.probs, N, V);
  return float(loss_count > 0 ? mean * double(nn::count_targets(targets, N)) / double(loss_count) : mean);
}

const float* Llama::logits() const {
  QT_CHECK(impl_->B > 0, "logits() called before any forward()");
  QT_CHECK(!impl_->save_gse, "logits(): --save-act gse keeps no [N, V] logits (the classifier runs a block of "
           "rows at a time)");
  QT_CHECK(impl_->last_logits, "logits(): a forward with targets keeps no [N, V] logits (the classifier and the "
           "loss run a chunk of rows at a time): run forward without targets to read them");
  return impl_->last_logits;
}

}  // namespace qtune
