// models/dit_backward.cpp — the exact reverse of dit_forward.cpp. Activation gradients live in
// one Buffer reused by every layer; parameter gradients ACCUMULATE (the caller zeroes).
#include <cstring>

#include "core/error.h"
#include "models/dit.h"
#include "models/dit_impl.h"
#include "nn/dit_ops.h"
#include "nn/ops.h"

namespace qtune {

namespace {

// xn = (x − mean)·rstd: the LayerNorm output, which forward modulated in place.
template <class T>
void normalized(const T* x, const T* mean, const T* rstd, T* xn, int64_t n, int64_t D) {
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < D; ++i) xn[r * D + i] = (x[r * D + i] - mean[r]) * rstd[r];
}

template <class T>
void zero(T* p, int64_t n) {
  std::memset(p, 0, n * sizeof(T));
}

}  // namespace

template <class T>
void Dit<T>::Impl::carve_grads() {
  if (!grad_mem.empty()) return;
  const int64_t n = N(), D = cfg.dim, H = cfg.hidden(), P = cfg.patch_dim(), img = B * cfg.image_numel();
  carve(grad_mem, {{&d.dres, n * D}, {&d.xn, n * D},      {&d.dxn, n * D},     {&d.dxm, n * D},
                   {&d.dq, n * D},   {&d.dk, n * D},      {&d.dv, n * D},      {&d.dattn_y, n * D},
                   {&d.dbr, n * D},  {&d.dh, n * H},      {&d.dhg, n * H},     {&d.dmod, B * 6 * D},
                   {&d.dfmod, B * 2 * D}, {&d.dcs, B * D}, {&d.dc, B * D},     {&d.dths, B * D},
                   {&d.dth, B * D},  {&d.dotok, n * P},   {&d.dtok, n * P},    {&d.dpred, img},
                   {&d.dx, img}});
}

// On entry d.dres = ∂loss/∂res[l+1]; on exit ∂loss/∂res[l]; adds this block's adaLN input
// gradient into d.dcs.
template <class T>
void Dit<T>::Impl::backward_layer(int l) {
  const int64_t n = N(), Tk = cfg.tokens(), D = cfg.dim, H = cfg.hidden(), D6 = 6 * D;
  DitLayer<T>& ly = layers[l];
  const T* x = a.res + l * n * D;
  const T* mod = a.mod + l * B * D6;
  const T* xm1 = a.xm1 + l * n * D;
  const T* q = a.q + l * n * D;
  const T* k = a.k + l * n * D;
  const T* v = a.v + l * n * D;
  const T* lse = a.lse + int64_t(l) * B * cfg.heads * Tk;
  const T* attn_y = a.attn_y + l * n * D;
  const T* ao = a.ao + l * n * D;
  const T* mid = a.mid + l * n * D;
  const T* xm2 = a.xm2 + l * n * D;
  const T* h = a.h + l * n * H;
  const T* hg = a.hg + l * n * H;
  const T* fo = a.fo + l * n * D;
  auto bias_grad = [&](T* gb, int64_t len) { return gb ? gb + l * len : nullptr; };
  zero(d.dmod, B * D6);

  // MLP branch: res[l+1] = mid + gate2 ⊙ fo. dres flows to mid unchanged; LN2's backward adds
  // the branch's path into it below.
  zero(d.dbr, n * D);
  nn::gated_add_backward(d.dres, fo, mod + 5 * D, d.dbr, d.dmod + 5 * D, B, Tk, D, D6);
  if (T* gb = bias_grad(g.down_b, D)) nn::add_bias_backward(d.dbr, gb, n, D);
  zero(d.dhg, n * H);
  ly.down->backward(hg, d.dbr, d.dhg, n, ctx);
  zero(d.dh, n * H);
  nn::gelu_tanh_backward(d.dhg, h, d.dh, n * H);
  if (T* gb = bias_grad(g.up_b, H)) nn::add_bias_backward(d.dh, gb, n, H);
  zero(d.dxm, n * D);
  ly.up->backward(xm2, d.dh, d.dxm, n, ctx);
  normalized(mid, a.mean2 + l * n, a.rstd2 + l * n, d.xn, n, D);
  zero(d.dxn, n * D);
  nn::modulate_backward(d.dxm, d.xn, mod + 4 * D, d.dxn, d.dmod + 3 * D, d.dmod + 4 * D, B, Tk, D, D6);
  nn::layernorm_backward(d.dxn, mid, a.mean2 + l * n, a.rstd2 + l * n, d.dres, n, D);
  // now d.dres = ∂loss/∂mid

  // attention branch: mid = x + gate1 ⊙ ao
  zero(d.dbr, n * D);
  nn::gated_add_backward(d.dres, ao, mod + 2 * D, d.dbr, d.dmod + 2 * D, B, Tk, D, D6);
  if (T* gb = bias_grad(g.o_b, D)) nn::add_bias_backward(d.dbr, gb, n, D);
  zero(d.dattn_y, n * D);
  ly.o->backward(attn_y, d.dbr, d.dattn_y, n, ctx);
  zero(d.dq, n * D);
  zero(d.dk, n * D);
  zero(d.dv, n * D);
  nn::attention_backward(d.dattn_y, q, k, v, attn_y, lse, d.dq, d.dk, d.dv, B, Tk, cfg.heads, cfg.heads,
                         cfg.head_dim(), /*causal=*/false);
  if (T* gb = bias_grad(g.q_b, D)) nn::add_bias_backward(d.dq, gb, n, D);
  if (T* gb = bias_grad(g.k_b, D)) nn::add_bias_backward(d.dk, gb, n, D);
  if (T* gb = bias_grad(g.v_b, D)) nn::add_bias_backward(d.dv, gb, n, D);
  zero(d.dxm, n * D);
  ly.q->backward(xm1, d.dq, d.dxm, n, ctx);
  ly.k->backward(xm1, d.dk, d.dxm, n, ctx);
  ly.v->backward(xm1, d.dv, d.dxm, n, ctx);
  normalized(x, a.mean1 + l * n, a.rstd1 + l * n, d.xn, n, D);
  zero(d.dxn, n * D);
  nn::modulate_backward(d.dxm, d.xn, mod + D, d.dxn, d.dmod, d.dmod + D, B, Tk, D, D6);
  nn::layernorm_backward(d.dxn, x, a.mean1 + l * n, a.rstd1 + l * n, d.dres, n, D);

  // adaLN: mod = ada(cs) + bias
  if (T* gb = bias_grad(g.ada_b, D6)) nn::add_bias_backward(d.dmod, gb, B, D6);
  ly.ada->backward(a.cs, d.dmod, d.dcs, B, ctx);
}

// From d.dcs (every adaLN's input) down to the timestep MLP and the class embedding.
template <class T>
void Dit<T>::Impl::backward_cond() {
  const int64_t D = cfg.dim;
  zero(d.dc, B * D);
  nn::silu_backward(d.dcs, a.c, d.dc, B * D);
  if (g.y_embd) nn::embedding_backward(y.data(), d.dc, g.y_embd, B, D);
  if (g.t2_b) nn::add_bias_backward(d.dc, g.t2_b, B, D);
  zero(d.dths, B * D);
  t2->backward(a.ths, d.dc, d.dths, B, ctx);
  zero(d.dth, B * D);
  nn::silu_backward(d.dths, a.th, d.dth, B * D);
  if (g.t1_b) nn::add_bias_backward(d.dth, g.t1_b, B, D);
  t1->backward(a.tfreq, d.dth, nullptr, B, ctx);
}

template <class T>
void Dit<T>::backward() {
  Impl& m = *impl_;
  QT_CHECK(m.B > 0 && m.has_eps, "dit backward() needs a preceding forward() with a noise target");
  m.carve_grads();
  const int64_t img = int64_t(m.B) * cfg_.image_numel();
  const T denom = T(m.loss_numel(cfg_.image_numel()));
  // loss = mean (pred − eps)²
  for (int64_t i = 0; i < img; ++i) m.d.dpred[i] = T(2) * (m.a.pred[i] - m.eps[i]) / denom;
  m.backward_from_pred();
}

template <class T>
void Dit<T>::backward(const T* dpred) {
  Impl& m = *impl_;
  QT_CHECK(m.B > 0, "dit backward() needs a preceding forward()");
  m.carve_grads();
  std::copy(dpred, dpred + int64_t(m.B) * cfg_.image_numel(), m.d.dpred);
  m.backward_from_pred();
}

// Everything below the loss: d.dpred → every gradient.
template <class T>
void Dit<T>::Impl::backward_from_pred() {
  Impl& m = *this;
  const DitConfig& c = cfg;
  const int64_t Tk = c.tokens(), N = m.N(), D = c.dim, P = c.patch_dim();
  nn::patchify(m.d.dpred, m.d.dotok, B, c.channels, c.image, c.image, c.patch);
  if (m.g.out_b) nn::add_bias_backward(m.d.dotok, m.g.out_b, N, P);
  zero(m.d.dxm, N * D);
  m.out->backward(m.a.xmf, m.d.dotok, m.d.dxm, N, m.ctx);
  const T* xL = m.a.res + c.depth * N * D;
  normalized(xL, m.a.meanf, m.a.rstdf, m.d.xn, N, D);
  zero(m.d.dxn, N * D);
  zero(m.d.dfmod, B * 2 * D);
  nn::modulate_backward(m.d.dxm, m.d.xn, m.a.fmod + D, m.d.dxn, m.d.dfmod, m.d.dfmod + D, B, Tk, D, 2 * D);
  zero(m.d.dres, N * D);
  nn::layernorm_backward(m.d.dxn, xL, m.a.meanf, m.a.rstdf, m.d.dres, N, D);
  if (m.g.fada_b) nn::add_bias_backward(m.d.dfmod, m.g.fada_b, B, 2 * D);
  zero(m.d.dcs, B * D);
  m.fada->backward(m.a.cs, m.d.dfmod, m.d.dcs, B, m.ctx);

  for (int l = c.depth - 1; l >= 0; --l) m.backward_layer(l);

  // res[0] = patch_embd(tok) + bias + pos (pos is fixed)
  if (m.g.patch_b) nn::add_bias_backward(m.d.dres, m.g.patch_b, N, D);
  zero(m.d.dtok, N * P);
  m.patch->backward(m.a.tok, m.d.dres, m.d.dtok, N, m.ctx);
  nn::unpatchify(m.d.dtok, m.d.dx, B, c.channels, c.image, c.image, c.patch);
  m.backward_cond();
}

template <class T>
const T* Dit<T>::input_grad() const {
  QT_CHECK(!impl_->grad_mem.empty(), "dit: input_grad() called before any backward()");
  return impl_->d.dx;
}

template class Dit<float>;
template class Dit<double>;

}  // namespace qtune
