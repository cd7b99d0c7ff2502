// Generation's batched prefill against token-by-token steps, and decoding on a block-quantized
// file (Q8_0 projections and classifier): prefill, steps and the batched forward agree within
// the decode kernel's int8 activation rounding.
#include <cmath>
#include <vector>

#include "io/gguf_model.h"
#include "io/model_file.h"
#include "models/llama.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace qtune;

namespace {

// Rows a multiple of 32, so Q8_0 / Q4_0 apply (tiny_model's dim 16 does not).
ModelFile small_model(bool tied) {
  LlamaConfig c;
  c.dim = 64, c.hidden_dim = 96, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.vocab_size = 40, c.seq_len = 16;
  c.tied_classifier = tied;
  return test::random_llama(c, "small", 5, 1.0, [](int64_t in) { return 1.0 / std::sqrt(double(in)); });
}

MethodOptions frozen() {
  MethodOptions o;
  o.frozen = true;
  return o;
}

const std::vector<int> kPrompt = {1, 7, 33, 2, 19, 5, 38, 11, 0, 26};

// prefill(prompt) then step(next) against step() over every token; returns the worst rel_err
// of the two compared logit vectors.
double prefill_vs_steps(Llama& model) {
  const int V = model.config().vocab_size, n = int(kPrompt.size());
  model.reset_cache();
  const float* l = model.prefill(kPrompt.data(), n);
  std::vector<float> a(l, l + V);
  l = model.step(3, n);  // reads the prefilled cache
  std::vector<float> a2(l, l + V);
  model.reset_cache();
  for (int t = 0; t < n; ++t) l = model.step(kPrompt[t], t);
  std::vector<float> b(l, l + V);
  l = model.step(3, n);
  std::vector<float> b2(l, l + V);
  return std::max(test::rel_err(a.data(), b.data(), V), test::rel_err(a2.data(), b2.data(), V));
}

}  // namespace

TEST(LlamaPrefill, FloatModelPrefillEqualsSteps) {
  for (bool tied : {true, false}) {
    Llama model(small_model(tied), frozen(), 0);
    EXPECT_LT(prefill_vs_steps(model), 1e-5) << "tied " << tied;
  }
}

TEST(LlamaPrefill, RejectsBadPrompts) {
  Llama model(small_model(true), frozen(), 0);
  const std::vector<int> bad = {1, 40};
  EXPECT_THROW(model.prefill(bad.data(), 2), Error);
  EXPECT_THROW(model.prefill(kPrompt.data(), 0), Error);
  std::vector<int> too_long(17, 1);
  EXPECT_THROW(model.prefill(too_long.data(), 17), Error);
}

// A Q8_0 file: the projections load as integer planes and the classifier keeps its blocks; the
// decode path (int8 activations per block) matches the batched float-activation forward and
// the prefill loosely, and differs from it at all (it is the block kernel that ran).
TEST(LlamaPrefill, BlockQuantizedFileDecodesOnItsBlocks) {
  for (bool tied : {true, false}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const std::string path = test::scratch_dir() + "/q8.gguf";
    GgufSaveOptions o;
    o.weight_type = GgmlType::Q8_0;
    save_model_gguf(small_model(tied), path, o);
    ModelFile mf = load_gguf_model(path);
    EXPECT_EQ(mf.quantized.size(), 14u);
    ASSERT_EQ(mf.classifier_blocks.size(), 1u);
    EXPECT_EQ(mf.classifier_blocks[0].spec.bits, 8);
    const int V = mf.config.vocab_size, n = int(kPrompt.size());
    Llama model(std::move(mf), frozen(), 0);
    EXPECT_LT(prefill_vs_steps(model), 2e-2);
    model.forward(kPrompt.data(), nullptr, 1, n);
    std::vector<float> full(model.logits(), model.logits() + n * V);
    model.reset_cache();
    double worst = 0, differs = 0;
    for (int t = 0; t < n; ++t) {
      const float* l = model.step(kPrompt[t], t);
      worst = std::max(worst, test::rel_err(l, full.data() + t * V, V));
      for (int v = 0; v < V; ++v) differs += l[v] != full[t * V + v];
    }
    EXPECT_LT(worst, 2e-2);
    EXPECT_GT(differs, 0);
  }
}

TEST(LlamaPrefill, FloatFileKeepsFloatClassifier) {
  const std::string path = test::scratch_dir() + "/f32.gguf";
  save_model_gguf(small_model(true), path, GgufSaveOptions{});
  EXPECT_TRUE(load_gguf_model(path).classifier_blocks.empty());
}
