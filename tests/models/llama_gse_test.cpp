// A whole model in GSE arithmetic (--gemm gse, --gemm-attention, --save-act gse; docs/METHODS.md
// §9) against the same model in float: loss, logits and every gradient close, closer with more
// bits. (The float default is what the golden tests check; the per-slot bound is tests/adapters/gse_linear_test.)
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/rng.h"
#include "models/llama.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace qtune;

namespace {

// dim 64, hidden 96, 2 layers, 4/2 heads (GQA), vocab 40, seq 24: rows longer than a group.
ModelFile small_model(uint64_t seed = 3) {
  LlamaConfig c;
  c.dim = 64, c.hidden_dim = 96, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 40, c.seq_len = 24;
  return test::random_llama(c, "small", seed, 0.3, [](int64_t in) { return 0.5 / std::sqrt(double(in)); });
}

constexpr int kB = 2, kT = 24;

struct Result {
  float loss;
  std::vector<float> logits;
  std::map<std::string, std::vector<float>> grads;
};

Result run(const std::string& method, const std::string& gemm, bool attention = false,
           const std::string& save_act = "f32", int batch = kB) {
  MethodOptions o;
  o.method = method;
  o.rank = 4;
  o.gemm = gemm;
  o.gemm_attention = attention;
  o.save_act = save_act;
  Llama model(small_model(), o, 5);
  Rng rng(8);
  for (auto& p : model.trainable())  // B = 0 would hide dA: give every adapter tensor a value
    if (p.name.ends_with(".lora_b"))
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] = float(rng.normal() * 0.05);
  std::vector<int> tokens(batch * kT), targets(batch * kT);
  for (int i = 0; i < batch * kT; ++i) tokens[i] = int(rng.below(40)), targets[i] = int(rng.below(40));
  targets[5] = -1;  // an uncounted position
  Result r;
  model.set_step(2);
  if (save_act == "f32") {  // logits come from a forward without targets (--save-act gse keeps none)
    model.forward(tokens.data(), nullptr, batch, kT);
    r.logits.assign(model.logits(), model.logits() + batch * kT * 40);
  }
  r.loss = model.forward(tokens.data(), targets.data(), batch, kT);
  model.zero_grad();
  model.backward();
  for (auto& p : model.trainable()) r.grads[p.name].assign(p.grad, p.grad + p.numel);
  return r;
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += std::pow(double(a[i]) - b[i], 2);
    n += double(b[i]) * b[i];
  }
  return std::sqrt(e / n);
}

// The largest relative error over the gradient tensors.
double worst_grad(const Result& a, const Result& f) {
  double w = 0;
  for (const auto& [name, g] : f.grads) w = std::max(w, rel(a.grads.at(name), g));
  return w;
}

}  // namespace

TEST(LlamaGse, LoraModelNearFloatAndCloserWithMoreBits) {
  const Result f = run("lora", "f32");
  const Result q8 = run("lora", "gse:b=8"), q5 = run("lora", "gse:b=5");
  EXPECT_NEAR(q8.loss, f.loss, 0.01 * f.loss);
  EXPECT_GT(rel(q8.logits, f.logits), 0.0);
  EXPECT_LT(rel(q8.logits, f.logits), 0.03);
  EXPECT_LT(worst_grad(q8, f), 0.08);
  EXPECT_GT(rel(q5.logits, f.logits), 3 * rel(q8.logits, f.logits));
  EXPECT_GT(worst_grad(q5, f), 3 * worst_grad(q8, f));
}

// Method full: the classifier (tied to the embedding here) and every weight train through GSE
// products, each encoded per pass.
TEST(LlamaGse, FullModelNearFloat) {
  const Result f = run("full", "f32"), q8 = run("full", "gse:b=8,round=stochastic");
  EXPECT_NEAR(q8.loss, f.loss, 0.01 * f.loss);
  EXPECT_LT(rel(q8.logits, f.logits), 0.03);
  EXPECT_LT(rel(q8.grads.at("token_embd.weight"), f.grads.at("token_embd.weight")), 0.08);
  EXPECT_LT(worst_grad(q8, f), 0.08);
}

// --gemm-attention: attention's four products in GSE as well.
TEST(LlamaGse, AttentionInGseNearFloat) {
  const Result f = run("lora", "f32");
  const Result q8 = run("lora", "gse:b=8", true), q8s = run("lora", "gse:b=8,round=stochastic", true);
  const Result q8no = run("lora", "gse:b=8", false), q5 = run("lora", "gse:b=5", true);
  EXPECT_NE(q8.logits, q8no.logits);  // the flag changes the forward
  for (const Result* r : {&q8, &q8s}) {
    EXPECT_NEAR(r->loss, f.loss, 0.01 * f.loss);
    EXPECT_LT(rel(r->logits, f.logits), 0.03);
    EXPECT_LT(worst_grad(*r, f), 0.08);
  }
  EXPECT_GT(worst_grad(q5, f), 3 * worst_grad(q8, f));
}

// --save-act gse: the forward is the float one (saving is a copy; the classifier runs in blocks
// of rows), backward reads the GSE-INT8 copies — gradients within the 8-bit error; with --gemm
// gse too, both errors. No [N, V] logits are kept.
TEST(LlamaGse, SavedActivationsInGse) {
  for (const char* method : {"lora", "full"}) {
    SCOPED_TRACE(method);
    const Result f = run(method, "f32"), s = run(method, "f32", false, "gse");
    EXPECT_NEAR(s.loss, f.loss, 1e-6 * f.loss);
    EXPECT_GT(worst_grad(s, f), 0.0);
    EXPECT_LT(worst_grad(s, f), 0.05);
    const Result both = run(method, "gse:b=8", true, "gse");
    EXPECT_LT(worst_grad(both, f), 0.1);
  }
  // 12 × 24 = 288 rows: the classifier's blocks of 256 rows and a short one
  for (const char* method : {"lora", "full"}) {
    SCOPED_TRACE(method);
    const Result f = run(method, "f32", false, "f32", 12), s = run(method, "f32", false, "gse", 12);
    EXPECT_NEAR(s.loss, f.loss, 1e-6 * f.loss);
    EXPECT_LT(worst_grad(s, f), 0.05);
    EXPECT_LT(worst_grad(run(method, "gse:b=8,round=stochastic", false, "gse", 12), f), 0.1);
  }
  MethodOptions o;
  o.save_act = "gse";
  Llama model(small_model(), o, 5);
  std::vector<int> tokens(kB * kT, 1);
  EXPECT_NE(test::error_of([&] { model.forward(tokens.data(), nullptr, kB, kT); }).find("give targets"),
            std::string::npos);
  model.forward(tokens.data(), tokens.data(), kB, kT);
  EXPECT_NE(test::error_of([&] { model.logits(); }).find("keeps no [N, V] logits"), std::string::npos);
}
