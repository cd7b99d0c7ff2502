// LoRA training on the real stories260K through the trainer: a few steps on one fixed batch
// lower its loss, and resume is bit-exact with the real model too.
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/error.h"
#include "io/model_file.h"
#include "io/tokenizer.h"
#include "models/llama.h"
#include "test_util.h"
#include "train/trainer.h"

namespace qtune {
namespace {

std::string model_path() { return test::shared_dir() + "/models/stories260K/stories260K.bin"; }
std::string tokenizer_path() { return test::shared_dir() + "/models/stories260K/tok512.bin"; }

// The same batch every step: B rows of consecutive text windows. throw_after >= 0 simulates
// a crash once that many batches were served.
struct FixedBatch : BatchSource {
  std::vector<int> tokens, targets;
  uint64_t drawn = 0;
  int64_t throw_after = -1;
  void next(int B, int T, int* tok, int* tgt, Rng&) override {
    QT_CHECK(static_cast<size_t>(B) * T == tokens.size(), "batch shape");
    if (throw_after >= 0 && drawn == static_cast<uint64_t>(throw_after)) throw std::runtime_error("simulated crash");
    std::copy(tokens.begin(), tokens.end(), tok);
    std::copy(targets.begin(), targets.end(), tgt);
    ++drawn;
  }
  std::vector<uint64_t> state() const override { return {drawn}; }
  void set_state(const std::vector<uint64_t>& s) override { drawn = s.at(0); }
};

FixedBatch story_batch(int B, int T) {
  auto tok = load_tokenizer(tokenizer_path());
  const std::vector<int> ids = tok->encode(
      "Once upon a time, there was a big red dog named Max. Max liked to dig holes in the garden. One day he found "
      "a shiny key under a tree. He took the key to his friend, a little cat named Tom, and they opened an old box.",
      true, false);
  EXPECT_GE(ids.size(), static_cast<size_t>(B * T + 1));
  FixedBatch fb;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      fb.tokens.push_back(ids[b * T + t]);
      fb.targets.push_back(ids[b * T + t + 1]);
    }
  return fb;
}

TrainOptions lora_options() {
  TrainOptions o;
  o.steps = 8;
  o.lr = 1e-2f;
  o.warmup = 0;
  o.schedule = ScheduleKind::constant;
  o.batch = 2;
  o.seq = 24;
  o.clip = 1.0f;
  o.progress = false;
  o.method.method = "lora";
  o.method.rank = 4;
  o.method.alpha = 8.0f;
  return o;
}

TEST(LlamaTrain, LoraLowersLossOnAFixedBatch) {
  QT_REQUIRE_SHARED(model_path());
  QT_REQUIRE_SHARED(tokenizer_path());
  const TrainOptions o = lora_options();
  FixedBatch data = story_batch(o.batch, o.seq);
  Llama model(load_model(model_path()), o.method, o.seed);
  ModelRef<Llama> ref(model);
  const float before = model.forward(data.tokens.data(), data.targets.data(), o.batch, o.seq);
  const TrainResult r = train(ref, data, nullptr, o);
  const float after = model.forward(data.tokens.data(), data.targets.data(), o.batch, o.seq);
  std::printf("stories260K LoRA r4 on a fixed batch: loss %.4f -> %.4f after %lld steps (%lld trainable)\n", before,
              after, static_cast<long long>(o.steps), static_cast<long long>(r.trainable_params));
  EXPECT_FLOAT_EQ(r.loss_curve[0].loss, before);  // LoRA B starts at zero: step 1 sees the base model
  EXPECT_LT(after, before - 0.05f);
  EXPECT_LT(r.loss_curve.back().loss, r.loss_curve.front().loss);
  EXPECT_EQ(r.trainable_params, model.num_trainable());
}

// 6 steps in one go == 3 steps, a crash in step 4, and a resume into a fresh model.
TEST(LlamaTrain, ResumeIsBitExact) {
  QT_REQUIRE_SHARED(model_path());
  QT_REQUIRE_SHARED(tokenizer_path());
  const std::string dir = test::scratch_dir();
  TrainOptions o = lora_options();
  o.schedule = ScheduleKind::cosine;
  o.warmup = 2;
  o.steps = 6;
  o.grad_accum = 2;
  const FixedBatch data = story_batch(o.batch, o.seq);
  const ModelFile mf = load_model(model_path());

  Llama a(mf, o.method, o.seed);
  ModelRef<Llama> ra(a);
  FixedBatch da = data;
  const TrainResult full = train(ra, da, nullptr, o);

  Llama b(mf, o.method, o.seed);
  ModelRef<Llama> rb(b);
  FixedBatch db = data;
  db.throw_after = 3 * o.grad_accum;
  o.save_every = 3;
  o.checkpoint = dir + "/b.gguf";
  EXPECT_THROW(train(rb, db, nullptr, o), std::runtime_error);

  Llama c(mf, o.method, o.seed + 1);  // another adapter init: all state must come from the file
  ModelRef<Llama> rc(c);
  FixedBatch dc = data;
  o.resume = dir + "/b.gguf";
  o.checkpoint = dir + "/c.gguf";
  const TrainResult resumed = train(rc, dc, nullptr, o);

  EXPECT_EQ(resumed.first_step, 4);
  ASSERT_EQ(resumed.loss_curve.size(), full.loss_curve.size());
  for (size_t i = 0; i < full.loss_curve.size(); ++i)
    EXPECT_EQ(std::memcmp(&resumed.loss_curve[i].loss, &full.loss_curve[i].loss, sizeof(float)), 0)
        << "step " << i + 1 << ": " << resumed.loss_curve[i].loss << " vs " << full.loss_curve[i].loss;
  const auto pa = a.trainable(), pc = c.trainable();
  ASSERT_EQ(pa.size(), pc.size());
  for (size_t i = 0; i < pa.size(); ++i)
    EXPECT_EQ(std::memcmp(pa[i].value, pc[i].value, pa[i].numel * sizeof(float)), 0) << pa[i].name;
}

}  // namespace
}  // namespace qtune
