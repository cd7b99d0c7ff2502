// models/llama_backward.cpp — the exact reverse of llama_forward.cpp. Activation gradients
// live in one Buffer reused by every layer; parameter gradients ACCUMULATE (the caller zeroes).
#include <cstring>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "kernels/gse_gemm.h"
#include "kernels/gse_ops.h"
#include "kernels/sgemm_parallel.h"
#include "models/attention_gse.h"
#include "models/llama.h"
#include "models/llama_impl.h"
#include "nn/ops.h"

namespace qtune {

// One layer's activation gradients for the current (B, T) (shapes in llama_impl.h), carved on
// the first backward after a shape change.
void Llama::Impl::carve_grads() {
  if (!grad_mem.empty()) return;
  const int64_t n = N(), C = cfg.dim, H = cfg.hidden_dim, V = cfg.vocab_size;
  const int64_t Q = int64_t(cfg.n_heads) * cfg.head_dim(), KV = cfg.kv_dim();
  carve(grad_mem, {{&d.dres, n * C},       // [N, C]
                   {&d.dxn, n * C},        // [N, C]
                   {&d.dq, n * Q},         // [N, Q]
                   {&d.dk, n * KV},        // [N, KV]
                   {&d.dv, n * KV},        // [N, KV]
                   {&d.dattn_y, n * Q},    // [N, Q]
                   {&d.dh1, n * H},        // [N, H]
                   {&d.dh3, n * H},        // [N, H]
                   {&d.dswi, n * H},       // [N, H]
                   {&d.dlogits, fused_ce() || save_gse ? 0 : n * V}});  // [N, V]; else a chunk in a.logits
  if (fused_ce() || save_gse) d.dlogits = nullptr;
}

// On entry d.dres = ∂loss/∂res[l+1]; on exit d.dres = ∂loss/∂res[l].
void Llama::Impl::backward_layer(int l) {
  const int64_t n = N(), C = cfg.dim, H = cfg.hidden_dim;
  const int64_t Q = int64_t(cfg.n_heads) * cfg.head_dim(), KV = cfg.kv_dim();
  LlamaLayer& ly = layers[l];
  if (save_gse) restore_layer(l);
  const kernels::GseReuse reuse;  // the layer's saved inputs are read-only from here on
  const int64_t i = li(l);
  const float* x = res_at(l);
  const float* xn1 = a.xn1 + i * n * C;
  const float* q = a.q + i * n * Q;
  const float* k = a.k + i * n * KV;
  const float* v = a.v + i * n * KV;
  const float* attn_y = a.attn_y + i * n * Q;
  const float* mid = a.res_mid + i * n * C;
  const float* xn2 = a.xn2 + i * n * C;
  const float* h1 = a.h1 + i * n * H;
  const float* h3 = a.h3 + i * n * H;
  const float* swi = a.swi + i * n * H;
  float* dattn_norm = g.attn_norm ? g.attn_norm + l * C : nullptr;  // null: base frozen
  float* dffn_norm = g.ffn_norm ? g.ffn_norm + l * C : nullptr;

  // feed-forward block. res[l+1] = mid + down(swi): dres flows to mid unchanged, and
  // ffn_norm's backward adds the FFN path into it below.
  std::memset(d.dswi, 0, n * H * sizeof(float));
  ly.down->backward(swi, d.dres, d.dswi, n, ctx);
  std::memset(d.dh1, 0, n * H * sizeof(float));
  std::memset(d.dh3, 0, n * H * sizeof(float));
  nn::swiglu_backward(d.dswi, h1, h3, d.dh1, d.dh3, n * H);
  std::memset(d.dxn, 0, n * C * sizeof(float));
  ly.gate->backward(xn2, d.dh1, d.dxn, n, ctx);
  ly.up->backward(xn2, d.dh3, d.dxn, n, ctx);
  nn::rmsnorm_backward(d.dxn, mid, p.ffn_norm + l * C, a.rstd2 + l * n, d.dres, dffn_norm, n, C);
  // now d.dres = ∂loss/∂mid

  // attention block. mid = x + o(attn_y)
  std::memset(d.dattn_y, 0, n * Q * sizeof(float));
  ly.o->backward(attn_y, d.dres, d.dattn_y, n, ctx);
  std::memset(d.dq, 0, n * Q * sizeof(float));
  std::memset(d.dk, 0, n * KV * sizeof(float));
  std::memset(d.dv, 0, n * KV * sizeof(float));
  if (gse_attention)
    attention_backward_gse(d.dattn_y, q, k, v, a.att + i * B * cfg.n_heads * T * T, d.dq, d.dk, d.dv, B, T, cfg.n_heads, cfg.n_kv_heads,
                           cfg.head_dim(), *gse, ctx, l);
  else
    nn::attention_backward(d.dattn_y, q, k, v, attn_y, a.lse + l * B * cfg.n_heads * T, d.dq, d.dk, d.dv, B, T,
                           cfg.n_heads, cfg.n_kv_heads, cfg.head_dim());
  nn::rope_backward(d.dq, B, T, cfg.n_heads, cfg.head_dim(), cfg.rope_theta);
  nn::rope_backward(d.dk, B, T, cfg.n_kv_heads, cfg.head_dim(), cfg.rope_theta);
  std::memset(d.dxn, 0, n * C * sizeof(float));
  ly.q->backward(xn1, d.dq, d.dxn, n, ctx);
  ly.k->backward(xn1, d.dk, d.dxn, n, ctx);
  ly.v->backward(xn1, d.dv, d.dxn, n, ctx);
  nn::rmsnorm_backward(d.dxn, x, p.attn_norm + l * C, a.rstd1 + l * n, d.dres, dattn_norm, n, C);
}

// logits = xf·Wᵀ → dxf = dl·W (into d.dxn), dW += dlᵀ·xf, for rows [r0, r1) (dl: their rows of
// dlogits). GSE: dl [n, V] · Wᵀ [C, V] reduces over V; dlᵀ [V, n] · xfᵀ [C, n] over the tokens
// (a block's stochastic key is mixed with r0, so blocks round independently).
void Llama::Impl::classifier_backward(int64_t r0, int64_t r1, const float* dl) {
  const int64_t n = r1 - r0, C = cfg.dim, V = cfg.vocab_size;
  const float* xf = a.xf + r0 * C;
  if (!gse) {
    kernels::matmul_nn(dl, p.output, d.dxn + r0 * C, n, C, V, false);
    if (g.output) kernels::matmul_tn(dl, xf, g.output, n, C, V, true);
    return;
  }
  using kernels::GseRole;
  auto grad = [&](GseRole role) {
    GseSpec s = gse->grad(ctx, role);
    s.seed = Rng::hash(s.seed, static_cast<uint64_t>(r0));
    return s;
  };
  const GseMatrix& dq = kernels::gse_operand(GseRole::dy, dl, n, V, grad(GseRole::dy));
  const GseMatrix& wt =
      output_gse ? output_gse->wt : kernels::gse_operand_t(GseRole::wt, p.output, V, C, gse->nearest());
  kernels::gse_gemm(dq, wt, d.dxn + r0 * C, false);
  if (g.output)
    kernels::gse_gemm(kernels::gse_operand_t(GseRole::dyt, dl, n, V, grad(GseRole::dyt)),
                      kernels::gse_operand_t(GseRole::xt, xf, n, C, gse->nearest()), g.output, true);
}

void Llama::backward() {
  Impl& m = *impl_;
  QT_CHECK(m.B > 0 && m.has_targets, "backward() needs a preceding forward() with targets");
  m.carve_grads();
  const int64_t N = m.N(), C = cfg_.dim, V = cfg_.vocab_size;
  const kernels::RowsPerSample per_sequence(opts_.exact_sums ? m.T : 0);  // as the forward (llama_forward.cpp)

  // loss → logits [N, V] → dxf (into d.dxn)
  if (m.save_gse) {
    m.classifier_backward_from_saved(m.targets.data());
  } else if (m.fused_ce()) {
    if (!m.ce_ready) m.classifier_ce(m.targets.data(), true);  // forward was not told: recompute
    m.ce_ready = false;
  } else {
    std::memset(m.d.dlogits, 0, N * V * sizeof(float));
    nn::cross_entropy_backward(m.a.probs, m.targets.data(), m.d.dlogits, N, V);
    if (m.loss_count > 0) {  // the mean over loss_count targets, not this batch's own
      const float f = float(double(nn::count_targets(m.targets.data(), N)) / double(m.loss_count));
      for (int64_t i = 0; i < N * V; ++i) m.d.dlogits[i] *= f;
    }
    m.classifier_backward(0, N, m.d.dlogits);
  }
  // final norm → d res[L]
  std::memset(m.d.dres, 0, N * C * sizeof(float));
  const float* xL = m.res_at(cfg_.n_layers);
  nn::rmsnorm_backward(m.d.dxn, xL, m.p.output_norm, m.a.rstdf, m.d.dres, m.g.output_norm, N, C);

  for (int l = cfg_.n_layers - 1; l >= 0; --l) {
    // --recompute: layer l's activations again from res[l], by the same kernels on the same
    // inputs, hence the same values (forward_layer also rewrites res[l+1] with what it held,
    // which nothing reads any more). The last layer's are still there from the forward.
    if (m.recompute && m.ws_layer != l) m.forward_layer(l);
    m.backward_layer(l);
  }

  // res[0] = embedding(tokens). With a tied classifier g.output == g.token_embd, so both
  // uses accumulate into the same gradient, as they must.
  if (m.g.token_embd) nn::embedding_backward(m.tokens.data(), m.d.dres, m.g.token_embd, N, C);
}

}  // namespace qtune
