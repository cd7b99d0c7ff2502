// The float path's fused, chunked classifier + cross-entropy (models/llama_loss.cpp) and
// --recompute (activation checkpointing) on tiny random LLaMAs: the chunked loss and gradients
// equal the unchunked ones and the old [N, V] cross-entropy; recomputing each block in backward
// gives bit-identical losses, gradients and slot state for every method; what cannot be
// combined is refused.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "models/llama.h"
#include "nn/ops.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace qtune;

namespace {

// N = 5·7 = 35 rows: not a multiple of the chunks below; a few targets are < 0 (not counted).
constexpr int kB = 5, kT = 7;

using Batch = test::TokenBatch;

Batch batch(uint64_t seed, int V) { return test::random_token_batch(kB, kT, V, seed, 6, 4); }

MethodOptions method(const std::string& m) {
  MethodOptions o;
  o.method = m;
  o.rank = 2;
  o.alpha = 4;
  return o;
}

struct Result {
  std::vector<float> losses;
  std::map<std::string, std::vector<float>> grads, state;
};

// `steps` training micro-batches as the trainer runs them (zero_grad, forward told that a
// backward follows, backward); the loss of each, and the gradients and state after the last.
Result train(const ModelFile& mf, const MethodOptions& o, int steps, int64_t chunk = 0, bool told = true) {
  Llama model(mf, o, 1);
  if (chunk) model.set_loss_chunk(chunk);
  Rng rng(5);
  for (auto& p : model.trainable())  // B = 0 would hide dA
    if (p.name.ends_with(".lora_b") || p.name.ends_with(".b"))
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] = float(0.2 * rng.normal());
  Result r;
  for (int s = 0; s < steps; ++s) {
    const Batch b = batch(11 + s, model.config().vocab_size);
    model.set_step(s);
    model.zero_grad();
    r.losses.push_back(model.forward(b.tokens.data(), b.targets.data(), kB, kT, told));
    model.backward();
  }
  for (auto& p : model.trainable()) r.grads[p.name].assign(p.grad, p.grad + p.numel);
  for (auto& p : model.state()) r.state[p.name].assign(p.value, p.value + p.numel);
  return r;
}

void expect_close(const Result& a, const Result& b, double tol, const std::string& what) {
  ASSERT_EQ(a.losses.size(), b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i) EXPECT_NEAR(a.losses[i], b.losses[i], tol * std::fabs(b.losses[i])) << what;
  ASSERT_EQ(a.grads.size(), b.grads.size()) << what;
  for (const auto& [name, g] : b.grads)
    EXPECT_LT(test::rel_err(a.grads.at(name).data(), g.data(), g.size()), tol) << what << " " << name;
}

}  // namespace

// Chunks of 1, 4 (35 = 8·4 + 3) and the default 256 rows against one chunk of all 35 rows,
// and the loss against nn::cross_entropy_forward on the [N, V] logits of a forward without
// targets (the old, unfused cross-entropy).
TEST(LlamaCe, ChunkedEqualsUnchunkedAndTheOldCrossEntropy) {
  for (bool tied : {false, true})
    for (const char* m : {"full", "lora"}) {
      const std::string what = std::string(m) + (tied ? " tied" : " untied");
      const ModelFile mf = test::tiny_model(tied);
      const Result whole = train(mf, method(m), 1, kB * kT);
      for (int64_t chunk : {1, 4, 0}) expect_close(train(mf, method(m), 1, chunk), whole, 2e-6, what);

      Llama model(mf, method(m), 1);
      const int V = model.config().vocab_size;
      const Batch b = batch(11, V);
      model.forward(b.tokens.data(), nullptr, kB, kT);
      std::vector<float> probs(kB * kT * V);
      const double old = nn::cross_entropy_forward(model.logits(), b.targets.data(), probs.data(), kB * kT, V);
      EXPECT_NEAR(model.forward(b.tokens.data(), b.targets.data(), kB, kT), old, 1e-6 * old) << what;
    }
}

// A forward not told that a backward follows leaves the classifier's gradient to backward, which
// recomputes the logits: the same arithmetic, so the same bits.
TEST(LlamaCe, GradientMadeInForwardOrInBackwardIsTheSame) {
  for (const char* m : {"full", "lora"}) {
    const ModelFile mf = test::tiny_model(false);
    const Result told = train(mf, method(m), 2, 4, true), untold = train(mf, method(m), 2, 4, false);
    EXPECT_EQ(told.losses, untold.losses) << m;
    EXPECT_EQ(told.grads, untold.grads) << m;
  }
}

TEST(LlamaCe, LogitsAreKeptOnlyByAForwardWithoutTargets) {
  Llama model(test::tiny_model(false), method("lora"), 1);
  const Batch b = batch(3, model.config().vocab_size);
  model.forward(b.tokens.data(), b.targets.data(), kB, kT);
  EXPECT_NE(test::error_of([&] { model.logits(); }).find("keeps no [N, V] logits"), std::string::npos);
  model.forward(b.tokens.data(), nullptr, kB, kT);
  EXPECT_NO_THROW(model.logits());
  EXPECT_THROW(model.forward(b.tokens.data(), nullptr, kB, kT, true), Error);  // a backward needs targets
  std::vector<int> bad = b.targets;
  bad[3] = model.config().vocab_size;
  EXPECT_NE(test::error_of([&] { model.forward(b.tokens.data(), bad.data(), kB, kT); }).find("outside the vocabulary"),
            std::string::npos);
  // the default chunk holds at most 256 rows of logits, never [N, V] for a large batch
  EXPECT_LE(model.memory().logits, 256 * model.config().vocab_size * int64_t(sizeof(float)) + kB * kT * 11 * 4);
}

// --recompute: the same losses, gradients and slot state (activation calibration included) to
// the bit, over two micro-batches, for every method the LLaMA trains.
TEST(LlamaCe, RecomputeIsBitIdenticalForEveryMethod) {
  std::vector<std::pair<std::string, MethodOptions>> cases;
  for (const std::string& m : method_names()) cases.emplace_back(m, method(m));
  MethodOptions act = method("lora");
  act.act_bits = 8;
  cases.emplace_back("lora --act-bits 8", act);
  act.method = "qalora";
  cases.emplace_back("qalora --act-bits 8", act);
  MethodOptions gse = method("qlora");
  gse.gemm = "gse:b=6,round=stochastic";
  gse.gemm_attention = true;
  cases.emplace_back("qlora --gemm gse stochastic --gemm-attention", gse);
  for (auto& [name, o] : cases) {
    SCOPED_TRACE(name);
    const ModelFile mf = test::tiny_model(name == "full");
    const Result plain = train(mf, o, 2);
    o.recompute = true;
    const Result rec = train(mf, o, 2);
    EXPECT_EQ(rec.losses, plain.losses);
    EXPECT_EQ(rec.grads, plain.grads);
    EXPECT_EQ(rec.state, plain.state);
    EXPECT_FALSE(plain.grads.empty());
  }
}

TEST(LlamaCe, RecomputeHoldsOneLayerAndIsRefusedWithSaveActGse) {
  LlamaConfig c;
  c.dim = 16, c.hidden_dim = 24, c.n_layers = 6, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 11, c.seq_len = 8;
  const ModelFile mf = test::random_llama(c, "six", 2, 1.0, [](int64_t) { return 0.3; });
  MethodOptions o = method("lora");
  Llama plain(mf, o, 1);
  o.recompute = true;
  Llama rec(mf, o, 1);
  const Batch b = batch(3, c.vocab_size);
  for (Llama* m : {&plain, &rec}) {
    m->forward(b.tokens.data(), b.targets.data(), kB, kT, true);
    m->backward();
  }
  const MemoryBreakdown p = plain.memory(), r = rec.memory();
  // every block's input [N, C] and rstd instead of 6 layers of [N, ~8C + H + att]
  EXPECT_LT(r.saved_activations, p.saved_activations / 3);
  EXPECT_GT(r.workspace, p.workspace);  // the one-layer working set
  EXPECT_LT(r.saved_activations + r.workspace, p.saved_activations + p.workspace);
  EXPECT_EQ(r.logits, p.logits);

  o.save_act = "gse";
  EXPECT_NE(test::error_of([&] { Llama(mf, o, 1); }).find("--recompute and --save-act gse"), std::string::npos);
}
