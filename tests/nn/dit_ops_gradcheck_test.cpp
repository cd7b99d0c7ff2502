// Finite-difference gradient checks (double precision) for the DiT ops (nn/dit_ops.h) and the
// non-causal attention, with forward spot checks against the definitions. Same method as
// ops_gradcheck_test.cpp: L = Σ G ⊙ op(inputs), backward must accumulate.
#include <cmath>
#include <vector>

#include "nn/dit_ops.h"
#include "nn/grad_util.h"
#include "nn/ops.h"
#include "test_util.h"

using namespace qtune;
using namespace qtune::test::nngrad;

TEST(DitOpsGrad, LayerNormNoAffine) {
  Rng rng(11);
  const int64_t N = 4, C = 7;
  Vec x = randn(N * C, rng, 2.0), G = randn(N * C, rng), y(N * C), mean(N), rstd(N);
  for (int64_t c = 0; c < C; ++c) x[C + c] += 5.0;  // a row with a large mean
  auto f = [&] {
    nn::layernorm_forward(x.data(), y.data(), mean.data(), rstd.data(), N, C, 1e-6f);
    return dot(y, G);
  };
  f();
  double m = 0, v = 0;
  for (int64_t c = 0; c < C; ++c) m += x[C + c] / C;
  for (int64_t c = 0; c < C; ++c) v += (x[C + c] - m) * (x[C + c] - m) / C;
  EXPECT_NEAR(y[C + 2], (x[C + 2] - m) / std::sqrt(v + 1e-6), 1e-12);
  Vec sx = randn(N * C, rng), dx = sx;
  nn::layernorm_backward(G.data(), x.data(), mean.data(), rstd.data(), dx.data(), N, C);
  expect_grad(dx, sx, numeric_grad(x, f), "dx");
}

TEST(DitOpsGrad, GeluTanh) {
  Rng rng(12);
  const int64_t N = 25;
  Vec x = randn(N, rng, 2.5), G = randn(N, rng), y(N);
  auto f = [&] {
    nn::gelu_tanh_forward(x.data(), y.data(), N);
    return dot(y, G);
  };
  f();
  const double v = x[3];
  EXPECT_NEAR(y[3], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))), 1e-14);
  // the tanh form, not erf: they differ by ~1e-4 near |x| = 2
  const double erf_gelu = 0.5 * 2.0 * (1 + std::erf(2.0 / std::sqrt(2.0)));
  Vec two{2.0}, out2(1);
  nn::gelu_tanh_forward(two.data(), out2.data(), 1);
  EXPECT_GT(std::fabs(out2[0] - erf_gelu), 1e-5);
  Vec sx = randn(N, rng), dx = sx;
  nn::gelu_tanh_backward(G.data(), x.data(), dx.data(), N);
  expect_grad(dx, sx, numeric_grad(x, f), "dx");
}

TEST(DitOpsGrad, Silu) {
  Rng rng(13);
  const int64_t N = 20;
  Vec x = randn(N, rng, 2.0), G = randn(N, rng), y(N);
  auto f = [&] {
    nn::silu_forward(x.data(), y.data(), N);
    return dot(y, G);
  };
  f();
  EXPECT_NEAR(y[5], x[5] / (1 + std::exp(-x[5])), 1e-14);
  Vec sx = randn(N, rng), dx = sx;
  nn::silu_backward(G.data(), x.data(), dx.data(), N);
  expect_grad(dx, sx, numeric_grad(x, f), "dx");
}

// shift/scale/gate live as chunks of a [B, ld] row (adaLN's output), so the checks use ld > C.
TEST(DitOpsGrad, ModulateWithStride) {
  Rng rng(14);
  const int64_t B = 2, T = 3, C = 4, ld = 3 * C;
  Vec x = randn(B * T * C, rng), mod = randn(B * ld, rng), G = randn(B * T * C, rng), y(B * T * C);
  const int64_t shift = C, scale = 2 * C;  // chunks 1 and 2 of each row
  auto f = [&] {
    nn::modulate_forward(x.data(), mod.data() + shift, mod.data() + scale, y.data(), B, T, C, ld);
    return dot(y, G);
  };
  f();
  const int64_t b = 1, t = 2, c = 3;
  EXPECT_NEAR(y[(b * T + t) * C + c], x[(b * T + t) * C + c] * (1 + mod[b * ld + scale + c]) + mod[b * ld + shift + c],
              1e-14);
  Vec sx = randn(x.size(), rng), smod = randn(mod.size(), rng), dx = sx, dmod = smod;
  nn::modulate_backward(G.data(), x.data(), mod.data() + scale, dx.data(), dmod.data() + shift, dmod.data() + scale,
                        B, T, C, ld);
  expect_grad(dx, sx, numeric_grad(x, f), "dx");
  expect_grad(dmod, smod, numeric_grad(mod, f), "dshift, dscale");
  for (int64_t i = 0; i < C; ++i) EXPECT_EQ(dmod[ld + i], smod[ld + i]) << "chunk 0 is not modulate's";
}

TEST(DitOpsGrad, GatedAddWithStride) {
  Rng rng(15);
  const int64_t B = 2, T = 3, C = 4, ld = 2 * C;
  Vec y = randn(B * T * C, rng), mod = randn(B * ld, rng), base = randn(B * T * C, rng), G = randn(B * T * C, rng);
  auto f = [&] {
    Vec out = base;
    nn::gated_add_forward(y.data(), mod.data() + C, out.data(), B, T, C, ld);
    return dot(out, G);
  };
  Vec out = base;
  nn::gated_add_forward(y.data(), mod.data() + C, out.data(), B, T, C, ld);
  EXPECT_NEAR(out[(1 * T + 1) * C + 2], base[(T + 1) * C + 2] + mod[ld + C + 2] * y[(T + 1) * C + 2], 1e-14);
  Vec sy = randn(y.size(), rng), smod = randn(mod.size(), rng), dy = sy, dmod = smod;
  nn::gated_add_backward(G.data(), y.data(), mod.data() + C, dy.data(), dmod.data() + C, B, T, C, ld);
  expect_grad(dy, sy, numeric_grad(y, f), "dy");
  expect_grad(dmod, smod, numeric_grad(mod, f), "dgate");
}

TEST(DitOpsGrad, Bias) {
  Rng rng(16);
  const int64_t N = 5, C = 3;
  Vec bias = randn(C, rng), base = randn(N * C, rng), G = randn(N * C, rng);
  auto f = [&] {
    Vec y = base;
    nn::add_bias_forward(y.data(), bias.data(), N, C);
    return dot(y, G);
  };
  Vec sb = randn(C, rng), db = sb;
  nn::add_bias_backward(G.data(), db.data(), N, C);
  expect_grad(db, sb, numeric_grad(bias, f), "dbias");
}

TEST(DitOpsGrad, PatchifyUnpatchify) {
  Rng rng(17);
  const int64_t B = 2, Ch = 2, H = 4, W = 6, p = 2, P = Ch * p * p, Tn = (H / p) * (W / p);
  Vec img = randn(B * Ch * H * W, rng), tok(B * Tn * P), back(img.size());
  nn::patchify(img.data(), tok.data(), B, Ch, H, W, p);
  // image 1, channel 1, pixel (y=3, x=4): token (1, 2) = 1·3 + 2 = 5, vector (ch=1, pi=1, pj=0)
  EXPECT_EQ(tok[(1 * Tn + 5) * P + (1 * p + 1) * p + 0], img[((1 * Ch + 1) * H + 3) * W + 4]);
  nn::unpatchify(tok.data(), back.data(), B, Ch, H, W, p);
  EXPECT_EQ(back, img);
  // backward of patchify is unpatchify (accumulating), and vice versa
  Vec G = randn(tok.size(), rng);
  auto f = [&] {
    nn::patchify(img.data(), tok.data(), B, Ch, H, W, p);
    return dot(tok, G);
  };
  Vec s = randn(img.size(), rng), dimg = s;
  nn::unpatchify(G.data(), dimg.data(), B, Ch, H, W, p, true);
  expect_grad(dimg, s, numeric_grad(img, f), "patchify dimg");
  Vec Gi = randn(img.size(), rng);
  auto g = [&] {
    nn::unpatchify(tok.data(), back.data(), B, Ch, H, W, p);
    return dot(back, Gi);
  };
  Vec st = randn(tok.size(), rng), dtok = st;
  nn::patchify(Gi.data(), dtok.data(), B, Ch, H, W, p, true);
  expect_grad(dtok, st, numeric_grad(tok, g), "unpatchify dtok");
}

TEST(DitOps, TimestepEmbedding) {
  const int64_t B = 2, F = 8;
  Vec t{0.0, 999.0}, out(B * F);
  nn::timestep_embedding(t.data(), out.data(), B, F);
  for (int64_t i = 0; i < 4; ++i) {
    EXPECT_EQ(out[i], 1.0);      // cos 0
    EXPECT_EQ(out[4 + i], 0.0);  // sin 0
  }
  const double f2 = std::exp(-std::log(10000.0) * 2 / 4);  // freq i = 2 of h = 4
  EXPECT_NEAR(out[F + 2], std::cos(999.0 * f2), 1e-15);
  EXPECT_NEAR(out[F + 4 + 2], std::sin(999.0 * f2), 1e-15);
}

TEST(DitOps, PosEmbed2d) {
  const int64_t gs = 3, D = 8;
  Vec out(gs * gs * D);
  nn::pos_embed_2d(out.data(), gs, D);
  // token (i=2, j=1) = 7: [sin(j ω), cos(j ω), sin(i ω), cos(i ω)], ω_k = 10000^(−k/2)
  const double* o = out.data() + 7 * D;
  EXPECT_NEAR(o[0], std::sin(1.0), 1e-15);
  EXPECT_NEAR(o[1], std::sin(1.0 / 100.0), 1e-15);
  EXPECT_NEAR(o[2], std::cos(1.0), 1e-15);
  EXPECT_NEAR(o[4], std::sin(2.0), 1e-15);
  EXPECT_NEAR(o[7], std::cos(2.0 / 100.0), 1e-15);
}

TEST(DitOpsGrad, AttentionNonCausal) {
  Rng rng(18);
  const int64_t B = 2, T = 4, nh = 2, nkv = 2, hd = 3;
  Vec q = randn(B * T * nh * hd, rng), k = randn(q.size(), rng), v = randn(q.size(), rng);
  Vec G = randn(q.size(), rng), out(q.size()), lse(B * nh * T);
  auto f = [&] {
    nn::attention_forward(q.data(), k.data(), v.data(), out.data(), lse.data(), B, T, nh, nkv, hd, false);
    return dot(out, G);
  };
  f();
  // query 0 (b 0, head 0) sees every key: lse is the log of the sum over all of them
  double sum = 0;
  for (int64_t s = 0; s < T; ++s) {
    double dotqk = 0;
    for (int64_t i = 0; i < hd; ++i) dotqk += q[i] * k[s * nkv * hd + i];
    sum += std::exp(dotqk / std::sqrt(double(hd)));
  }
  EXPECT_NEAR(lse[0], std::log(sum), 1e-12);
  Vec sq = randn(q.size(), rng), sk = randn(k.size(), rng), sv = randn(v.size(), rng);
  Vec dq = sq, dk = sk, dv = sv;
  nn::attention_backward(G.data(), q.data(), k.data(), v.data(), out.data(), lse.data(), dq.data(), dk.data(),
                         dv.data(), B, T, nh, nkv, hd, false);
  expect_grad(dq, sq, numeric_grad(q, f), "dq");
  expect_grad(dk, sk, numeric_grad(k, f), "dk");
  expect_grad(dv, sv, numeric_grad(v, f), "dv");
}
