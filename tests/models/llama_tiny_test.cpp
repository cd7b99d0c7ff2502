// Model-level tests on a tiny random LLaMA (GQA, untied classifier): finite-difference
// gradients through the whole model, KV-cache decoding, batching, merge, sampling, bad input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "io/model_file.h"
#include "models/llama.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace qtune;
using qtune::test::tiny_model;

namespace {

MethodOptions method(const std::string& m) {
  MethodOptions o;
  o.method = m;
  o.rank = 2;
  o.alpha = 4;
  return o;
}

struct Batch {
  int B = 2, T = 6;
  std::vector<int> tokens = {1, 4, 7, 2, 9, 3, 1, 10, 0, 5, 5, 6};
  std::vector<int> targets = {4, 7, 2, -1, 3, 8, 10, 0, 5, 5, 6, -1};
};

// Every slot param of a LoRA model gets a nonzero value (B = 0 would make dA vanish).
void randomize_adapters(Llama& model, uint64_t seed) {
  Rng rng(seed);
  for (auto& prm : model.trainable())
    for (int64_t i = 0; i < prm.numel; ++i) prm.value[i] = float(0.3 * rng.normal());
}

// Central differences in float32 through the whole model for the 3 largest-gradient entries
// of each trainable tensor. Float32 loss evaluation has ~1e-7 relative noise, so with
// h = 1e-2 the FD estimate carries ~1e-5 noise and O(h²) curvature error; we accept
// |fd − analytic| ≤ 2e-2·|analytic| + 1e-4. The strict checks are the double-precision
// op-level tests (tests/nn) and the PyTorch golden test.
void fd_check_model(Llama& model, const Batch& b) {
  model.forward(b.tokens.data(), b.targets.data(), b.B, b.T);
  model.zero_grad();
  model.backward();
  int checked = 0;
  double worst = 0;
  for (auto& prm : model.trainable()) {
    std::vector<int64_t> idx(prm.numel);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + std::min<int64_t>(3, prm.numel), idx.end(),
                      [&](int64_t a, int64_t c) { return std::fabs(prm.grad[a]) > std::fabs(prm.grad[c]); });
    for (int j = 0; j < std::min<int64_t>(3, prm.numel); ++j) {
      const int64_t i = idx[j];
      const float h = 1e-2f, x0 = prm.value[i];
      prm.value[i] = x0 + h;
      double lp = model.forward(b.tokens.data(), b.targets.data(), b.B, b.T);
      prm.value[i] = x0 - h;
      double lm = model.forward(b.tokens.data(), b.targets.data(), b.B, b.T);
      prm.value[i] = x0;
      const double fd = (lp - lm) / (2.0 * h), g = prm.grad[i];
      EXPECT_NEAR(fd, g, 2e-2 * std::fabs(g) + 1e-4) << prm.name << "[" << i << "]";
      worst = std::max(worst, std::fabs(fd - g) / (std::fabs(g) + 1e-12));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  std::printf("%d entries checked by float finite differences, worst relative error %.3g\n", checked, worst);
}

}  // namespace

TEST(LlamaTiny, FullFineTuningGradientsByFiniteDifferences) {
  Llama model(tiny_model(false), method("full"), 1);
  auto params = model.trainable();
  // token_embd + output_norm + output + per layer (2 norms + 7 weights)
  EXPECT_EQ(params.size(), size_t(3 + 2 * 9));
  fd_check_model(model, Batch{});
}

TEST(LlamaTiny, LoraGradientsByFiniteDifferences) {
  Llama model(tiny_model(true), method("lora"), 1);
  randomize_adapters(model, 3);
  fd_check_model(model, Batch{});
}

TEST(LlamaTiny, KvCacheStepEqualsForward) {
  for (bool tied : {true, false}) {
    Llama model(tiny_model(tied), method("lora"), 1);
    randomize_adapters(model, 5);
    std::vector<int> seq = {1, 4, 7, 2, 9, 3, 0, 10};  // the full seq_len
    const int V = model.config().vocab_size;
    model.forward(seq.data(), nullptr, 1, 8);
    std::vector<float> full(model.logits(), model.logits() + 8 * V);
    model.reset_cache();
    for (int t = 0; t < 8; ++t)
      EXPECT_LT(test::rel_err(model.step(seq[t], t), full.data() + t * V, V), 1e-5) << "tied " << tied << " t " << t;
  }
}

TEST(LlamaTiny, BatchRowsAreIndependent) {
  Llama model(tiny_model(false), method("full"), 1);
  Batch b;
  const int V = model.config().vocab_size;
  model.forward(b.tokens.data(), nullptr, 2, 6);
  std::vector<float> both(model.logits(), model.logits() + 12 * V);
  model.forward(b.tokens.data() + 6, nullptr, 1, 6);  // row 1 alone (re-carves activations)
  EXPECT_LT(test::rel_err(model.logits(), both.data() + 6 * V, 6 * V), 1e-6);
}

TEST(LlamaTiny, MergedModelReproducesAdaptedLogits) {
  Llama model(tiny_model(true), method("lora"), 1);
  randomize_adapters(model, 9);
  Batch b;
  const int64_t n = 12 * model.config().vocab_size;
  model.forward(b.tokens.data(), nullptr, 2, 6);
  std::vector<float> adapted(model.logits(), model.logits() + n);

  ModelFile mf = model.merged();
  validate_model(mf);
  Llama plain(mf, method("lora"), 2);  // fresh adapters, B = 0: computes exactly the merged weights
  plain.forward(b.tokens.data(), nullptr, 2, 6);
  EXPECT_LT(test::rel_err(plain.logits(), adapted.data(), n), 1e-5);
  Llama base(tiny_model(true), method("lora"), 2);  // and the adapters did change something
  base.forward(b.tokens.data(), nullptr, 2, 6);
  EXPECT_GT(test::rel_err(base.logits(), adapted.data(), n), 1e-2);
}

TEST(LlamaTiny, AdapterTensorsAndCounts) {
  Llama model(tiny_model(true), method("lora"), 1);
  TensorMap ad = model.adapter_tensors();
  EXPECT_EQ(ad.size(), size_t(2 * 7 * 2));
  ASSERT_TRUE(ad.count("blk.1.ffn_down.lora_a"));
  EXPECT_EQ(ad["blk.1.ffn_down.lora_a"].shape, (Shape{2, 24}));  // [r, in]
  EXPECT_EQ(ad["blk.1.ffn_down.lora_b"].shape, (Shape{16, 2}));  // [out, r]
  // base: embd 11·16 + out_norm 16 + per layer (2·16 + 16·16·2 + 8·16·2 + 24·16·3)
  const int64_t base = 11 * 16 + 16 + 2 * (2 * 16 + 16 * 16 * 2 + 8 * 16 * 2 + 24 * 16 * 3);
  int64_t lora = 0;
  for (auto& [name, t] : ad) lora += t.numel();
  EXPECT_EQ(model.num_trainable(), lora);
  EXPECT_EQ(model.num_params(), base + lora);
  Llama full(tiny_model(true), method("full"), 1);
  EXPECT_EQ(full.num_params(), base);
  EXPECT_EQ(full.num_trainable(), base);
  EXPECT_TRUE(full.adapter_tensors().empty());
}

TEST(LlamaTiny, SamplingIsSeededAndTopPNarrowsToGreedy) {
  Llama model(tiny_model(false), method("lora"), 1);
  SamplerOptions greedy;
  auto g = generate(model, {1}, 7, greedy);
  SamplerOptions s;
  s.temperature = 1.0f;
  s.seed = 11;
  auto a = generate(model, {1}, 7, s), a2 = generate(model, {1}, 7, s);
  EXPECT_EQ(a, a2) << "same seed, same tokens";
  s.top_p = 1e-6f;  // the nucleus is just the most likely token
  EXPECT_EQ(generate(model, {1}, 7, s), g);
  // seq_len 8: a 1-token prompt leaves room for at most 7 new tokens
  EXPECT_LE(generate(model, {1}, 50, greedy).size(), 7u);
}

TEST(LlamaTiny, BadInputThrows) {
  Llama model(tiny_model(false), method("lora"), 1);
  std::vector<int> tok = {1, 11};
  EXPECT_THROW(model.forward(tok.data(), nullptr, 1, 2), Error);  // id 11 ≥ vocab
  std::vector<int> long_seq(9, 1);
  EXPECT_THROW(model.forward(long_seq.data(), nullptr, 1, 9), Error);  // T > seq_len
  tok = {1, 2};
  model.forward(tok.data(), nullptr, 1, 2);
  EXPECT_THROW(model.backward(), Error);  // no targets
  EXPECT_THROW(model.step(1, 8), Error);
  EXPECT_THROW(model.step(-1, 0), Error);
  EXPECT_THROW(model.slot(0, "qq"), Error);
  EXPECT_THROW(model.slot(2, "q"), Error);
  EXPECT_THROW(generate(model, {}, 3, SamplerOptions{}), Error);
  MethodOptions out_target = method("lora");
  out_target.targets = {"q", "output"};
  EXPECT_THROW(Llama(tiny_model(false), out_target, 1), Error);
  ModelFile broken = tiny_model(false);
  broken.tensors.erase("blk.1.ffn_up.weight");
  EXPECT_THROW(Llama(broken, method("lora"), 1), Error);
}

TEST(LlamaTiny, QloraTrainsAndMergesThroughQuantizedSlots) {
  MethodOptions o = method("qlora");
  o.bits = 4;
  Llama model(tiny_model(true), o, 1);
  Llama full(tiny_model(true), method("full"), 1);
  EXPECT_LT(model.weight_bytes(), full.weight_bytes());  // frozen base held packed
  randomize_adapters(model, 4);
  Batch b;
  float loss = model.forward(b.tokens.data(), b.targets.data(), b.B, b.T);
  EXPECT_TRUE(std::isfinite(loss));
  model.zero_grad();
  model.backward();
  double gsum = 0;
  for (auto& prm : model.trainable())
    for (int64_t i = 0; i < prm.numel; ++i) gsum += std::fabs(prm.grad[i]);
  EXPECT_GT(gsum, 0.0);
  ModelFile mf = model.merged();  // quantized slots are dequantized into float tensors
  validate_model(mf);
  // merged ≈ W0 + (α/r)·B·A up to 4-bit quantization error (docs/METHODS.md §2.3)
  const Tensor& w = mf.tensors.at("blk.0.attn_q.weight");  // [16, 16]
  Tensor want = tiny_model(true).tensors.at("blk.0.attn_q.weight");
  TensorMap ad = model.adapter_tensors();
  const Tensor &A = ad.at("blk.0.attn_q.lora_a"), &Bm = ad.at("blk.0.attn_q.lora_b");  // [2, 16], [16, 2]
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      for (int r = 0; r < 2; ++r) want.ptr()[i * 16 + j] += o.alpha / o.rank * Bm.ptr()[i * 2 + r] * A.ptr()[r * 16 + j];
  EXPECT_LT(test::rel_err(w.ptr(), want.ptr(), w.numel()), 0.15);
}
