// Method semantics: initial output, merge = forward, naming, memory, validation.
#include <cmath>
#include <memory>
#include <vector>

#include "adapters/linear.h"
#include "kernels/gemm.h"
#include "test_util.h"

using namespace qtune;

namespace {

Tensor random_weight(int64_t out, int64_t in, Rng& rng) {
  Tensor w({out, in});
  for (auto& v : w.data) v = static_cast<float>(rng.normal() * 0.1);
  return w;
}

std::vector<float> randn(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

MethodOptions opts(const std::string& method, int rank = 4) {
  MethodOptions o;
  o.method = method;
  o.rank = rank;
  o.alpha = 8.0f;
  return o;
}

// forward of a slot vs x·Wᵀ with the given float W
void expect_forward_equals(Linear<float>& lin, const Tensor& W, int64_t n, Rng& rng, double tol) {
  auto x = randn(n * lin.in(), rng);
  std::vector<float> y(n * lin.out()), yr(n * lin.out());
  Context ctx;
  lin.forward(x.data(), y.data(), n, ctx);
  kernels::ref::matmul_nt(x.data(), W.ptr(), yr.data(), n, lin.in(), lin.out(), false);
  EXPECT_LT(test::rel_err(y.data(), yr.data(), y.size()), tol) << lin.method();
}

void randomize(Linear<float>& lin, Rng& rng) {
  for (auto& p : lin.trainable())
    for (int64_t i = 0; i < p.numel; ++i) p.value[i] = static_cast<float>(rng.normal() * 0.05);
}

}  // namespace

TEST(Lora, InitialisationAndNames) {
  Rng rng(1);
  const int64_t in = 100, out = 30;
  Tensor w = random_weight(out, in, rng);
  auto lin = make_linear<float>(opts("lora", 4), "blk.2.attn_v", w, true, rng);
  auto p = lin->trainable();
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].name, "blk.2.attn_v.lora_a");
  EXPECT_EQ(p[1].name, "blk.2.attn_v.lora_b");
  EXPECT_EQ(p[0].shape, (Shape{4, in}));
  EXPECT_EQ(p[1].shape, (Shape{out, 4}));
  // A ~ U(−1/√in, 1/√in): inside the bound, and spread over it (not all tiny)
  const float bound = 1.0f / std::sqrt(float(in));
  float amax = 0;
  for (int64_t i = 0; i < p[0].numel; ++i) amax = std::max(amax, std::fabs(p[0].value[i]));
  EXPECT_LE(amax, bound);
  EXPECT_GT(amax, 0.9f * bound);
  for (int64_t i = 0; i < p[1].numel; ++i) EXPECT_EQ(p[1].value[i], 0.0f);
  // B = 0: the adapted layer starts as the base
  expect_forward_equals(*lin, w, 5, rng, 1e-6);
}

TEST(Lora, MergedWeightGivesSameOutput) {
  Rng rng(2);
  Tensor w = random_weight(37, 65, rng);
  auto lin = make_linear<float>(opts("lora", 5), "blk.0.ffn_down", w, true, rng);
  randomize(*lin, rng);
  Deployed d = lin->merge();
  ASSERT_TRUE(d.weight.has_value());
  ASSERT_TRUE(d.planes.empty());
  expect_forward_equals(*lin, *d.weight, 9, rng, 1e-5);
  // and the merge did change W (the adapter is not zero)
  EXPECT_GT(test::rel_err(d.weight->ptr(), w.ptr(), w.data.size()), 1e-3);
}

TEST(QLora, MergedFloatEqualsForward) {
  Rng rng(3);
  Tensor w = random_weight(70, 33, rng);
  auto o = opts("qlora", 3);
  o.group = 16;
  auto lin = make_linear<float>(o, "blk.0.attn_o", w, true, rng);
  randomize(*lin, rng);
  Deployed d = lin->merge();
  ASSERT_TRUE(d.weight.has_value());
  for (int64_t n : {1, 4, 20}) expect_forward_equals(*lin, *d.weight, n, rng, 1e-5);
  // base_weight is the dequantized base: close to w (4-bit) but not equal
  Tensor b = lin->base_weight();
  const double e = test::rel_err(b.ptr(), w.ptr(), w.data.size());
  EXPECT_GT(e, 1e-4);
  EXPECT_LT(e, 0.2);
}

TEST(QLora, HoldsNoFloatCopyOfW) {
  Rng rng(4);
  const int64_t in = 256, out = 128;
  Tensor w = random_weight(out, in, rng);
  auto o = opts("qlora", 8);
  auto lin = make_linear<float>(o, "blk.0.attn_q", w, true, rng);
  const int64_t packed = out * in / 2 + 2 * 4 * out;  // 4-bit codes + per-row scale and zero
  const int64_t lora = 8 * (in + out) * 4;
  EXPECT_EQ(lin->weight_bytes(), packed + lora);
  EXPECT_LT(lin->weight_bytes(), out * in * 4 / 4);  // far below one float copy
  auto frozen = make_linear<float>(o, "blk.0.ffn_up", w, false, rng);
  EXPECT_EQ(frozen->weight_bytes(), packed);
  EXPECT_STREQ(frozen->method(), "frozen-quant");
  // and dense/lora slots report their float weight honestly
  EXPECT_EQ(make_linear<float>(opts("full"), "x", w, true, rng)->weight_bytes(), out * in * 4);
}

TEST(Full, TrainsTheWeightItself) {
  Rng rng(5);
  Tensor w = random_weight(8, 9, rng);
  auto lin = make_linear<float>(opts("full"), "blk.1.ffn_gate", w, true, rng);
  auto p = lin->trainable();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].name, "blk.1.ffn_gate.weight");
  EXPECT_EQ(p[0].numel, 72);
  p[0].value[0] += 1.0f;  // the parameter is the live weight
  Tensor m = *lin->merge().weight;
  EXPECT_EQ(m.data[0], w.data[0] + 1.0f);
}

TEST(Factory, ValidateRejectsBadOptions) {
  auto expect_error = [](MethodOptions o, const std::string& needle) {
    try {
      validate(o);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  auto o = opts("lora");
  o.method = "dora";
  expect_error(o, "valid: full, lora, qlora");
  o = opts("lora", 0);
  expect_error(o, "--rank 0");
  o = opts("qlora");
  o.bits = 1;
  expect_error(o, "valid: 2..8");
  o.bits = 9;
  expect_error(o, "valid: 2..8");
  o = opts("qlora");
  o.scale_search = "max";
  expect_error(o, "minmax, mse");
  o = opts("lora");
  o.targets = {"q", "output"};  // the classifier is not a slot: not offered
  expect_error(o, "'output'");
  o = opts("lora");
  o.targets = {"q", "attn"};
  expect_error(o, "'attn'");
  EXPECT_NO_THROW(validate(opts("qlora")));
}

TEST(Factory, BadWeightShapeThrows) {
  Rng rng(6);
  Tensor w({10});
  EXPECT_THROW(make_linear<float>(opts("lora"), "blk.0.attn_q", w, true, rng), Error);
}

TEST(Factory, TargetOf) {
  EXPECT_EQ(target_of("blk.3.ffn_gate"), "gate");
  EXPECT_EQ(target_of("blk.0.attn_q.weight"), "q");
  EXPECT_EQ(target_of("blk.11.attn_output"), "o");
  EXPECT_EQ(target_of("blk.1.ffn_down"), "down");
  EXPECT_EQ(target_of("output.weight"), "");
  EXPECT_EQ(target_of("token_embd.weight"), "");
  EXPECT_EQ(target_of("blk.0.attn_norm.weight"), "");
  EXPECT_EQ(target_of("output_norm"), "");
}

TEST(Factory, NonTargetedSlots) {
  Rng rng(8);
  Tensor w = random_weight(4, 6, rng);
  EXPECT_STREQ(make_linear<float>(opts("lora"), "a", w, false, rng)->method(), "frozen");
  EXPECT_STREQ(make_linear<float>(opts("full"), "a", w, false, rng)->method(), "frozen");
  EXPECT_STREQ(make_linear<float>(opts("lora"), "a", w, true, rng)->method(), "lora");
  EXPECT_STREQ(make_linear<float>(opts("qlora"), "a", w, true, rng)->method(), "qlora");
}
