// AdamW against torch.optim.AdamW, grad-norm clipping, and the NaN/Inf guard.
#include <cmath>
#include <limits>
#include <vector>

#include "test_util.h"
#include "train/optimizer.h"

namespace qtune {
namespace {

Param<float> make_param(const char* name, std::vector<float>& value, std::vector<float>& grad) {
  grad.assign(value.size(), 0.0f);
  return Param<float>{name, value.data(), grad.data(), static_cast<int64_t>(value.size()),
                      {static_cast<int64_t>(value.size())}};
}

// Produced by tests/train/adamw_reference.py with Debian's /usr/bin/python3 and torch 1.13
// (torch.optim.AdamW, lr 0.01, betas (0.8, 0.95), eps 1e-6, weight_decay 0.1, float32):
// the params after each of 5 steps with the gradients the script sets (mirrored below).
const float kTorchP[5][6] = {
    {4.895001948e-01f, -1.258749962e+00f, 1.988000035e+00f, -9.999976493e-03f, -7.592498660e-01f, 3.486500025e+00f},
    {4.790205359e-01f, -1.267317772e+00f, 1.976715803e+00f, -8.819382638e-03f, -7.523592114e-01f, 3.473937750e+00f},
    {4.685675502e-01f, -1.275964737e+00f, 1.970349193e+00f, -8.041486144e-03f, -7.528951764e-01f, 3.464809418e+00f},
    {4.581478238e-01f, -1.282860756e+00f, 1.966021180e+00f, -1.143722422e-02f, -7.479836345e-01f, 3.453515053e+00f},
    {4.477678239e-01f, -1.283709288e+00f, 1.958902240e+00f, -1.033959631e-02f, -7.474676371e-01f, 3.444738150e+00f},
};
const float kTorchQ[5][4] = {
    {9.890000224e-01f, -2.007999897e+00f, 2.597499788e-01f, 1.348749995e-01f},
    {9.780099392e-01f, -2.012235641e+00f, 2.694601715e-01f, 1.340487450e-01f},
    {9.670288563e-01f, -2.010240316e+00f, 2.689442635e-01f, 1.374995261e-01f},
    {9.560561180e-01f, -2.006711721e+00f, 2.695650160e-01f, 1.368360072e-01f},
    {9.450910091e-01f, -2.007163048e+00f, 2.736861408e-01f, 1.389308870e-01f},
};

TEST(AdamW, MatchesTorch) {
  std::vector<float> p = {0.5f, -1.25f, 2.0f, 0.0f, -0.75f, 3.5f}, gp;
  std::vector<float> q = {1.0f, -2.0f, 0.25f, 0.125f}, gq;
  AdamWOptions o;
  o.beta1 = 0.8f;
  o.beta2 = 0.95f;
  o.eps = 1e-6f;
  o.weight_decay = 0.1f;
  AdamW opt({make_param("p", p, gp), make_param("q", q, gq)}, o);
  EXPECT_EQ(opt.size(), 10);
  for (int t = 1; t <= 5; ++t) {
    // The script's gradients: p.grad = 0.5 sin(0.7 k t) + 0.1 p,  q.grad = cos(k t) − 0.2 q.
    for (int k = 0; k < 6; ++k) gp[k] = std::sin(0.7f * k * t) * 0.5f + p[k] * 0.1f;
    for (int k = 0; k < 4; ++k) gq[k] = std::cos(static_cast<float>(k * t)) - q[k] * 0.2f;
    opt.step(0.01f);
    EXPECT_EQ(opt.t(), t);
    for (int k = 0; k < 6; ++k) EXPECT_NEAR(p[k], kTorchP[t - 1][k], 1e-6f) << "p[" << k << "] step " << t;
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(q[k], kTorchQ[t - 1][k], 1e-6f) << "q[" << k << "] step " << t;
  }
}

TEST(AdamW, StateIsOneBlockInParamOrder) {
  std::vector<float> a = {1.0f, 2.0f}, ga, b = {3.0f, 4.0f, 5.0f}, gb;
  AdamW opt({make_param("a", a, ga), make_param("b", b, gb)}, AdamWOptions{});
  EXPECT_EQ(opt.offset(0), 0);
  EXPECT_EQ(opt.offset(1), 2);
  EXPECT_EQ(opt.v(), opt.m() + 5);
  gb[2] = 2.0f;  // only b[2] has a gradient
  opt.step(0.1f);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(opt.m()[i], 0.0f);
  EXPECT_FLOAT_EQ(opt.m()[4], 0.1f * 2.0f);         // (1 − β1)·g
  EXPECT_NEAR(opt.v()[4], 0.001f * 4.0f, 1e-7f);     // (1 − β2)·g²
  EXPECT_NEAR(b[2], 5.0f - 0.1f, 1e-6f);            // first Adam step moves by lr·sign(g)
  EXPECT_EQ(a[0], 1.0f);                            // no gradient, no decay: untouched
}

TEST(ClipGradNorm, ScalesToMaxNorm) {
  std::vector<float> a = {0.0f}, ga, b = {0.0f, 0.0f}, gb;
  std::vector<Param<float>> ps = {make_param("a", a, ga), make_param("b", b, gb)};
  ga[0] = 3.0f;
  gb[0] = 0.0f;
  gb[1] = -4.0f;
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 0.0), 5.0);  // max_norm 0: measure only
  EXPECT_EQ(ga[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 10.0), 5.0);  // under the limit: unchanged
  EXPECT_EQ(gb[1], -4.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 1.0), 5.0);  // returns the norm before clipping
  EXPECT_NEAR(ga[0], 0.6f, 1e-6f);
  EXPECT_NEAR(gb[1], -0.8f, 1e-6f);
  EXPECT_NEAR(clip_grad_norm(ps, 0.0), 1.0, 1e-6);
}

TEST(CheckFinite, RefusesNaNLossAndNamesBadGradient) {
  std::vector<float> a = {1.0f, 2.0f}, ga;
  std::vector<Param<float>> ps = {make_param("blk.0.attn_q.lora_a", a, ga)};
  EXPECT_NO_THROW(check_finite(2.5, 1.0, ps, 3));
  try {
    check_finite(std::nan(""), 1.0, ps, 7);
    FAIL() << "NaN loss accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "loss became NaN at step 7; start again with a lower --lr (earlier checkpoints are intact)");
  }
  ga[1] = std::numeric_limits<float>::infinity();
  const double norm = clip_grad_norm(ps, 1.0);
  try {
    check_finite(2.5, norm, ps, 9);
    FAIL() << "Inf gradient accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "gradient of blk.0.attn_q.lora_a became Inf at step 9; lower --lr");
  }
}

}  // namespace
}  // namespace qtune
