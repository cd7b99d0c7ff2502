// A Llama built from a merged integer model: the integer methods' merge reproduces the training
// logits, and the deployed model's KV-cache decoding (generate) equals its batched forward (eval)
// on every activation path.
#include <cmath>
#include <vector>

#include "io/model_file.h"
#include "models/llama.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace qtune;
using qtune::test::tiny_model;

namespace {

const std::vector<int> kTokens = {1, 4, 7, 2, 9, 3, 0, 10, 5, 5, 6, 8, 2, 1, 3, 4};  // [2, 8]
const std::vector<int> kTargets = {4, 7, 2, 9, 3, 0, 10, 5, 5, 6, 8, 2, 1, 3, 4, 7};

MethodOptions method(const std::string& m, int act_bits) {
  MethodOptions o;
  o.method = m;
  o.rank = 2;
  o.bits = 4;
  o.act_bits = act_bits;
  o.act_calib = 1;
  return o;
}

MethodOptions deployed(int act_bits, bool dynamic = false) {
  MethodOptions o;
  o.frozen = true;
  o.act_bits = act_bits;
  o.act_dynamic = dynamic;
  return o;
}

// A trained-looking model: B of the size of a few quantization steps, one calibration step.
void train_a_little(Llama& model) {
  Rng rng(21);
  for (auto& p : model.trainable())
    if (p.name.find("lora_b") != std::string::npos)
      for (int64_t i = 0; i < p.numel; ++i) p.value[i] = float(0.05 * rng.normal());
  model.forward(kTokens.data(), kTargets.data(), 2, 8);
  model.zero_grad();
  model.backward();  // commits the activation calibration
}

std::vector<float> logits(Llama& model) {
  model.forward(kTokens.data(), nullptr, 2, 8);
  return std::vector<float>(model.logits(), model.logits() + 16 * model.config().vocab_size);
}

}  // namespace

TEST(LlamaInteger, MergedIntegerModelReproducesTheTrainingLogits) {
  for (const char* m : {"qalora", "intlora-mul", "intlora-shift"})
    for (int act : {0, 8}) {
      SCOPED_TRACE(std::string(m) + " act " + std::to_string(act));
      Llama model(tiny_model(true), method(m, act), 1);
      train_a_little(model);
      std::vector<float> want = logits(model);
      int64_t inexact = -1;
      ModelFile mf = model.merged(&inexact);
      EXPECT_EQ(inexact, 0);
      EXPECT_EQ(mf.quantized.size(), 14u);  // every projection is integer
      EXPECT_EQ(mf.act_bits, act);
      EXPECT_EQ(mf.act_scales.size(), act ? 14u : 0u);
      validate_model(mf);
      Llama dep(mf, deployed(act), 0);
      EXPECT_TRUE(dep.trainable().empty());
      // float activations: the same integers, only float summation order differs; int8: the same
      // integers again, but an activation that lands within rounding of a .5 step may flip
      EXPECT_LT(test::rel_err(logits(dep).data(), want.data(), want.size()), act ? 1e-3 : 1e-5);
    }
}

TEST(LlamaInteger, KvCacheStepEqualsForwardOnEveryActivationPath) {
  Llama model(tiny_model(false), method("intlora-mul", 8), 1);
  train_a_little(model);
  ModelFile mf = model.merged();
  const int V = mf.config.vocab_size;
  for (auto [act, dyn] : {std::pair{0, false}, {8, false}, {8, true}}) {
    Llama dep(mf, deployed(act, dyn), 0);
    std::vector<float> full = logits(dep);
    dep.reset_cache();
    for (int t = 0; t < 8; ++t)
      EXPECT_LT(test::rel_err(dep.step(kTokens[t], t), full.data() + t * V, V), 1e-5)
          << "act " << act << " dynamic " << dyn << " t " << t;
  }
}
