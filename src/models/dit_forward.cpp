// models/dit_forward.cpp — the DiT forward over a batch of B images (llm.c style): every
// activation backward needs is saved in one Buffer carved per B.
#include <cstring>

#include "core/error.h"
#include "models/dit.h"
#include "models/dit_impl.h"
#include "nn/dit_ops.h"
#include "nn/ops.h"

namespace qtune {

// Carves the activations for batch B (shapes in dit_impl.h); only when B changes.
template <class T>
void Dit<T>::Impl::carve_acts(int newB) {
  if (newB == B && !act_mem.empty()) return;
  B = newB;
  const DitConfig& c = cfg;
  const int64_t Tk = c.tokens(), N = int64_t(B) * Tk, D = c.dim, L = c.depth, H = c.hidden(), P = c.patch_dim();
  const int64_t lse = L * B * c.heads * Tk, img = B * c.image_numel();
  carve(act_mem, {{&a.pos, Tk * D},          {&a.tok, N * P},        {&a.tval, B},
                  {&a.tfreq, B * c.freq_dim}, {&a.th, B * D},         {&a.ths, B * D},
                  {&a.c, B * D},             {&a.cs, B * D},         {&a.res, (L + 1) * N * D},
                  {&a.mod, L * B * 6 * D},   {&a.mean1, L * N},      {&a.rstd1, L * N},
                  {&a.xm1, L * N * D},       {&a.q, L * N * D},      {&a.k, L * N * D},
                  {&a.v, L * N * D},         {&a.lse, lse},          {&a.attn_y, L * N * D},
                  {&a.ao, L * N * D},        {&a.mid, L * N * D},    {&a.mean2, L * N},
                  {&a.rstd2, L * N},         {&a.xm2, L * N * D},    {&a.h, L * N * H},
                  {&a.hg, L * N * H},        {&a.fo, L * N * D},     {&a.fmod, B * 2 * D},
                  {&a.meanf, N},             {&a.rstdf, N},          {&a.xmf, N * D},
                  {&a.otok, N * P},          {&a.pred, img}});
  nn::pos_embed_2d(a.pos, c.grid(), D);
  grad_mem.resize(0);  // re-carved lazily for the new batch
}

// c = t_embd.fc2(SiLU(t_embd.fc1(sinusoidal(t)))) + y_embd[y];  cs = SiLU(c)
template <class T>
void Dit<T>::Impl::forward_cond(const int* t) {
  const int64_t D = cfg.dim;
  for (int b = 0; b < B; ++b) a.tval[b] = T(t[b]);
  nn::timestep_embedding(a.tval, a.tfreq, B, cfg.freq_dim);
  t1->forward(a.tfreq, a.th, B, ctx);
  nn::add_bias_forward(a.th, p.t1_b, B, D);
  nn::silu_forward(a.th, a.ths, B * D);
  t2->forward(a.ths, a.c, B, ctx);
  nn::add_bias_forward(a.c, p.t2_b, B, D);
  for (int b = 0; b < B; ++b)
    for (int64_t i = 0; i < D; ++i) a.c[b * D + i] += p.y_embd[int64_t(y[b]) * D + i];
  nn::silu_forward(a.c, a.cs, B * D);
}

// One block: res[l] → res[l+1].
template <class T>
void Dit<T>::Impl::forward_layer(int l) {
  const int64_t n = N(), Tk = cfg.tokens(), D = cfg.dim, H = cfg.hidden(), D6 = 6 * D;
  DitLayer<T>& ly = layers[l];
  const T* x = a.res + l * n * D;  // x: [B, Tk, D]
  T* mod = a.mod + l * B * D6;     // mod: [B, 6D] = shift1 scale1 gate1 shift2 scale2 gate2
  T* xm1 = a.xm1 + l * n * D;
  T* q = a.q + l * n * D;          // q, k, v: [B, Tk, nh, hd]
  T* k = a.k + l * n * D;
  T* v = a.v + l * n * D;
  T* attn_y = a.attn_y + l * n * D;
  T* ao = a.ao + l * n * D;
  T* mid = a.mid + l * n * D;
  T* xm2 = a.xm2 + l * n * D;
  T* h = a.h + l * n * H;          // h, hg: [N, H]
  T* hg = a.hg + l * n * H;
  T* fo = a.fo + l * n * D;
  T* out = a.res + (l + 1) * n * D;

  ly.ada->forward(a.cs, mod, B, ctx);
  nn::add_bias_forward(mod, p.ada_b + l * D6, B, D6);

  // attention branch; the LN output is written to xm1 and modulated in place
  nn::layernorm_forward(x, xm1, a.mean1 + l * n, a.rstd1 + l * n, n, D, cfg.norm_eps);
  nn::modulate_forward(xm1, mod, mod + D, xm1, B, Tk, D, D6);
  ly.q->forward(xm1, q, n, ctx);
  ly.k->forward(xm1, k, n, ctx);
  ly.v->forward(xm1, v, n, ctx);
  nn::add_bias_forward(q, p.q_b + l * D, n, D);
  nn::add_bias_forward(k, p.k_b + l * D, n, D);
  nn::add_bias_forward(v, p.v_b + l * D, n, D);
  T* lse = a.lse + int64_t(l) * B * cfg.heads * Tk;
  nn::attention_forward(q, k, v, attn_y, lse, B, Tk, cfg.heads, cfg.heads, cfg.head_dim(), /*causal=*/false);
  ly.o->forward(attn_y, ao, n, ctx);
  nn::add_bias_forward(ao, p.o_b + l * D, n, D);
  std::memcpy(mid, x, n * D * sizeof(T));
  nn::gated_add_forward(ao, mod + 2 * D, mid, B, Tk, D, D6);

  // MLP branch
  nn::layernorm_forward(mid, xm2, a.mean2 + l * n, a.rstd2 + l * n, n, D, cfg.norm_eps);
  nn::modulate_forward(xm2, mod + 3 * D, mod + 4 * D, xm2, B, Tk, D, D6);
  ly.up->forward(xm2, h, n, ctx);
  nn::add_bias_forward(h, p.up_b + l * H, n, H);
  nn::gelu_tanh_forward(h, hg, n * H);
  ly.down->forward(hg, fo, n, ctx);
  nn::add_bias_forward(fo, p.down_b + l * D, n, D);
  std::memcpy(out, mid, n * D * sizeof(T));
  nn::gated_add_forward(fo, mod + 5 * D, out, B, Tk, D, D6);
}

template <class T>
double Dit<T>::forward(const T* x, const int* t, const int* y, const T* eps, int B, int64_t loss_images) {
  Impl& m = *impl_;
  const DitConfig& c = cfg_;
  QT_CHECK(B > 0, "dit forward: batch size must be positive, got {}", B);
  for (int b = 0; b < B; ++b) {
    QT_CHECK(y[b] >= 0 && y[b] <= c.num_classes, "dit forward: class {} of image {} is outside 0..{} ({} = null)",
             y[b], b, c.num_classes, c.num_classes);
    QT_CHECK(t[b] >= 0, "dit forward: timestep {} of image {} is negative", t[b], b);
  }
  m.carve_acts(B);
  const int64_t Tk = c.tokens(), N = m.N(), D = c.dim, P = c.patch_dim(), img = B * c.image_numel();
  m.y.assign(y, y + B);
  m.tsteps.assign(t, t + B);  // per-step quantizers (TALSQ) read them, in forward and backward
  m.ctx.timesteps = m.tsteps.data();
  m.ctx.samples = B;
  m.has_eps = eps != nullptr;
  m.loss_images = loss_images;
  if (eps) m.eps.assign(eps, eps + img);

  m.forward_cond(t);
  // tokens: patch_embd(patchify(x)) + bias + pos
  nn::patchify(x, m.a.tok, B, c.channels, c.image, c.image, c.patch);
  m.patch->forward(m.a.tok, m.a.res, N, m.ctx);
  nn::add_bias_forward(m.a.res, m.p.patch_b, N, D);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Tk * D; ++i) m.a.res[b * Tk * D + i] += m.a.pos[i];

  for (int l = 0; l < c.depth; ++l) m.forward_layer(l);

  // final layer: output(modulate(LN(x), shift, scale)) → unpatchify
  const T* xL = m.a.res + c.depth * N * D;
  m.fada->forward(m.a.cs, m.a.fmod, B, m.ctx);
  nn::add_bias_forward(m.a.fmod, m.p.fada_b, B, 2 * D);
  nn::layernorm_forward(xL, m.a.xmf, m.a.meanf, m.a.rstdf, N, D, c.norm_eps);
  nn::modulate_forward(m.a.xmf, m.a.fmod, m.a.fmod + D, m.a.xmf, B, Tk, D, 2 * D);
  m.out->forward(m.a.xmf, m.a.otok, N, m.ctx);
  nn::add_bias_forward(m.a.otok, m.p.out_b, N, P);
  nn::unpatchify(m.a.otok, m.a.pred, B, c.channels, c.image, c.image, c.patch);
  if (!eps) return 0.0;
  double sum = 0;
  for (int64_t i = 0; i < img; ++i) sum += (double(m.a.pred[i]) - double(eps[i])) * (double(m.a.pred[i]) - double(eps[i]));
  return sum / double(m.loss_numel(c.image_numel()));
}

template <class T>
const T* Dit<T>::prediction() const {
  QT_CHECK(impl_->B > 0, "dit: prediction() called before any forward()");
  return impl_->a.pred;
}

template class Dit<float>;
template class Dit<double>;

}  // namespace qtune
