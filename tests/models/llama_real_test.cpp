// Acceptance tests on the real pretrained stories260K (../shared/models/stories260K):
// greedy tokens and NLL against the values in shared/models/README.md (an independent numpy
// decoder, confirmed by PyTorch).
#include <cstdio>
#include <vector>

#include "io/model_file.h"
#include "models/llama.h"
#include "test_util.h"

using namespace qtune;

namespace {
std::string model_path() { return test::shared_dir() + "/models/stories260K/stories260K.bin"; }

// Default LoRA: B starts at zero, so the model computes exactly the pretrained function.
MethodOptions frozen() { return MethodOptions{}; }
}  // namespace

TEST(LlamaReal, GreedyFromBosMatchesReference) {
  QT_REQUIRE_SHARED(model_path());
  Llama model(load_model(model_path()), frozen(), 1);
  std::vector<int> got = generate(model, {1}, 20, SamplerOptions{});
  std::vector<int> want = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                           315, 421, 395, 317, 426, 338, 401, 396, 267, 337};
  EXPECT_EQ(got, want);
}

TEST(LlamaReal, NllOnGreedyContinuation) {
  QT_REQUIRE_SHARED(model_path());
  Llama model(load_model(model_path()), frozen(), 1);
  std::vector<int> seq = {1};
  for (int t : generate(model, {1}, 64, SamplerOptions{})) seq.push_back(t);
  ASSERT_EQ(seq.size(), 65u) << "greedy decoding stopped early (EOS)";
  // full-sequence forward: inputs seq[0..63], targets seq[1..64]
  std::vector<int> in(seq.begin(), seq.end() - 1), tgt(seq.begin() + 1, seq.end());
  float loss = model.forward(in.data(), tgt.data(), 1, 64);
  std::printf("stories260K NLL on BOS + 64 greedy tokens: %.5f (reference 0.3973)\n", loss);
  EXPECT_NEAR(loss, 0.3973, 1e-3);
}

TEST(LlamaReal, KvCacheStepEqualsFullForward) {
  QT_REQUIRE_SHARED(model_path());
  Llama model(load_model(model_path()), frozen(), 1);
  std::vector<int> seq = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315};
  const int T = int(seq.size()), V = model.config().vocab_size;
  model.forward(seq.data(), nullptr, 1, T);
  std::vector<float> full(model.logits(), model.logits() + int64_t(T) * V);
  model.reset_cache();
  for (int t = 0; t < T; ++t) {
    const float* lg = model.step(seq[t], t);
    EXPECT_LT(test::rel_err(lg, full.data() + int64_t(t) * V, V), 1e-5) << "position " << t;
  }
}
