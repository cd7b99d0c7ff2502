// --act-bits 8: the int8 fake quantization of a slot's input (adapters/act_quant.cpp).
#include <cmath>
#include <vector>

#include "adapters/methods.h"
#include "kernels/igemm.h"
#include "test_util.h"

using namespace qtune;

namespace {

Tensor random_weight(Rng& rng, int64_t out, int64_t in) {
  Tensor w({out, in});
  for (auto& v : w.data) v = static_cast<float>(rng.normal() * 0.3);
  return w;
}

std::vector<float> randn(int64_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

MethodOptions lora_a8(int calib) {
  MethodOptions o;
  o.method = "lora";
  o.rank = 2;
  o.act_bits = 8;
  o.act_calib = calib;
  return o;
}

}  // namespace

// Only training micro-batches (forward + backward) calibrate; forwards alone (validation) never
// move the scale; after `calib` micro-batches the scale is frozen.
TEST(ActQuant, CalibratesOnTrainingMicroBatchesOnly) {
  Rng rng(1);
  const int64_t in = 24, out = 10, n = 6;
  auto lin = make_linear<float>(lora_a8(2), "blk.0.attn_q", random_weight(rng, out, in), true, rng);
  Context ctx;
  std::vector<float> y(n * out), dy(n * out, 0.0f);
  EXPECT_EQ(lin->input_scale(), 0.0f);
  auto big = randn(n * in, rng, 10.0);
  lin->forward(big.data(), y.data(), n, ctx);  // a validation forward: no backward
  EXPECT_EQ(lin->input_scale(), 0.0f);
  auto x1 = randn(n * in, rng), x2 = randn(n * in, rng, 2.0), x3 = randn(n * in, rng, 5.0);
  for (auto* x : {&x1, &x2}) {
    lin->forward(x->data(), y.data(), n, ctx);
    lin->backward(x->data(), dy.data(), nullptr, n, ctx);
  }
  const float s = std::max(max_abs(x1), max_abs(x2)) / 127.0f;
  EXPECT_EQ(lin->input_scale(), s);
  lin->forward(x3.data(), y.data(), n, ctx);
  lin->backward(x3.data(), dy.data(), nullptr, n, ctx);
  EXPECT_EQ(lin->input_scale(), s);  // frozen after 2 micro-batches
  // the state is what a checkpoint carries
  auto st = lin->state();
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].name, "blk.0.attn_q.act_amax");
  EXPECT_EQ(st[1].name, "blk.0.attn_q.act_calib_left");
  EXPECT_EQ(st[1].value[0], 0.0f);
}

// Forward = inner(x̂) with x̂ = s·clamp(round(x/s)) — the integers of kernels::quantize_activations;
// backward = inner's backward at x̂, dx masked to the unclipped elements.
TEST(ActQuant, ForwardAndBackwardAreTheInnerSlotAtTheQuantizedInput) {
  Rng rng(2);
  const int64_t in = 31, out = 9, n = 5;
  Tensor w = random_weight(rng, out, in);
  Rng r1(7), r2(7);
  auto lin = make_linear<float>(lora_a8(1), "blk.0.attn_q", w, true, r1);
  MethodOptions plain = lora_a8(1);
  plain.act_bits = 0;
  auto ref = make_linear<float>(plain, "blk.0.attn_q", w, true, r2);
  for (auto* l : {lin.get(), ref.get()}) {  // identical nonzero adapters
    Rng p(3);
    for (auto& prm : l->trainable())
      for (int64_t i = 0; i < prm.numel; ++i) prm.value[i] = static_cast<float>(p.normal() * 0.2);
  }
  Context ctx;
  auto xc = randn(n * in, rng);
  std::vector<float> y(n * out), dy0(n * out, 0.0f);
  lin->forward(xc.data(), y.data(), n, ctx);
  lin->backward(xc.data(), dy0.data(), nullptr, n, ctx);  // calibrated on xc
  for (auto& p : lin->trainable()) std::fill(p.grad, p.grad + p.numel, 0.0f);
  const float s = lin->input_scale();

  auto x = randn(n * in, rng, 1.5);  // wider than the calibration: some elements clip
  std::vector<int8_t> xq(n * in);
  std::vector<float> xs(n), xh(n * in);
  kernels::quantize_activations(x.data(), n, in, s, xq.data(), xs.data());
  int clipped = 0;
  for (int64_t i = 0; i < n * in; ++i) {
    xh[i] = s * static_cast<float>(xq[i]);
    clipped += std::fabs(x[i] / s) > 127.5f;
  }
  EXPECT_GT(clipped, 0);
  std::vector<float> ya(n * out), yb(n * out);
  lin->forward(x.data(), ya.data(), n, ctx);
  ref->forward(xh.data(), yb.data(), n, ctx);
  EXPECT_EQ(ya, yb);

  auto dy = randn(n * out, rng);
  std::vector<float> dxa(n * in, 0.0f), dxb(n * in, 0.0f);
  lin->backward(x.data(), dy.data(), dxa.data(), n, ctx);
  ref->backward(xh.data(), dy.data(), dxb.data(), n, ctx);
  for (int64_t i = 0; i < n * in; ++i) {
    const bool inside = std::fabs(std::round(x[i] / s)) <= 127.0f;
    EXPECT_EQ(dxa[i], inside ? dxb[i] : 0.0f) << i;
  }
  auto pa = lin->trainable(), pb = ref->trainable();
  for (size_t k = 0; k < pa.size(); ++k)
    for (int64_t i = 0; i < pa[k].numel; ++i) EXPECT_EQ(pa[k].grad[i], pb[k].grad[i]) << pa[k].name << i;
}

// A deployed float slot with --act-bits 8: a recorded static scale, or per token.
TEST(ActQuant, InferenceSlotsUseRecordedOrPerTokenScales) {
  Rng rng(4);
  const int64_t in = 16, out = 4, n = 3;
  Tensor w = random_weight(rng, out, in);
  auto x = randn(n * in, rng);
  x[0] = 100.0f;  // token 0 has a huge outlier: per-token scales keep the other tokens precise
  auto dyn = make_inference_linear<float>("blk.0.attn_q", &w, nullptr, 8, 0.0f);
  auto fixed = make_inference_linear<float>("blk.0.attn_q", &w, nullptr, 8, 0.05f);
  auto flt = make_inference_linear<float>("blk.0.attn_q", &w, nullptr, 0, 0.0f);
  EXPECT_EQ(dyn->input_scale(), 0.0f);
  EXPECT_EQ(fixed->input_scale(), 0.05f);
  EXPECT_TRUE(dyn->trainable().empty() && dyn->state().empty());
  Context ctx;
  std::vector<float> yd(n * out), yf(n * out), y0(n * out);
  dyn->forward(x.data(), yd.data(), n, ctx);
  fixed->forward(x.data(), yf.data(), n, ctx);
  flt->forward(x.data(), y0.data(), n, ctx);
  // tokens 1, 2: per-token int8 is close to float
  EXPECT_LT(test::rel_err(yd.data() + out, y0.data() + out, 2 * out), 2e-2);
  EXPECT_NE(yd, yf);
}
