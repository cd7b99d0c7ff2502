// The training loop on a bigram stand-in model: it learns, grad accumulation averages,
// evaluation weights by target count, a NaN stops the run, and resume is bit-exact.
#include <cmath>
#include <cstring>
#include <vector>

#include "fakes.h"
#include "test_util.h"
#include "train/trainer.h"

namespace qtune {
namespace {

using test::Bigram;
using test::SeqEval;
using test::WindowSource;

constexpr int V = 16, D = 8;

TrainOptions small_options() {
  TrainOptions o;
  o.steps = 40;
  o.lr = 0.05f;
  o.min_lr = 0.005f;
  o.warmup = 5;
  o.schedule = ScheduleKind::cosine;
  o.batch = 4;
  o.seq = 16;
  o.clip = 1.0f;
  o.weight_decay = 0.01f;
  o.progress = false;
  return o;
}

TEST(Trainer, LearnsTheChain) {
  Bigram m(V, D, 1);
  ModelRef<Bigram> ref(m);
  WindowSource data(test::chain_tokens(V, 4000, 7));
  SeqEval val(test::chain_tokens(V, 1000, 8));
  TrainOptions o = small_options();
  o.val_every_steps = 10;
  TrainResult r = train(ref, data, &val, o);
  ASSERT_EQ(r.loss_curve.size(), 40u);
  EXPECT_EQ(r.loss_curve[0].step, 1);
  EXPECT_FLOAT_EQ(r.loss_curve[0].lr, 0.01f);  // warmup: 0.05 · 1/5
  EXPECT_FLOAT_EQ(r.loss_curve[39].lr, 0.005f);
  // The chain is 80% deterministic: the optimum is far below log(16) = 2.77.
  EXPECT_LT(r.loss_curve.back().loss, 0.7f * r.loss_curve.front().loss);
  ASSERT_EQ(r.val_curve.size(), 4u);  // steps 10, 20, 30, 40
  EXPECT_EQ(r.val_curve[3].step, 40);
  EXPECT_LT(r.val_curve[3].loss, r.val_curve[0].loss);
  ASSERT_TRUE(r.final_val_loss && r.final_val_ppl);
  EXPECT_DOUBLE_EQ(*r.final_val_ppl, std::exp(*r.final_val_loss));
  EXPECT_EQ(r.trainable_params, 2 * V * D);
  EXPECT_GT(r.tokens_per_second, 0);
  ASSERT_EQ(r.step_seconds.size(), 40u);  // one wall time per step: tok/s is their total
  double total = 0;
  for (double t : r.step_seconds) total += t;
  EXPECT_NEAR(r.tokens_per_second, 40.0 * o.batch * o.seq / total, 1e-6 * r.tokens_per_second);
  EXPECT_GT(r.peak_rss_bytes, 0);
}

// Two micro-batches of 2 rows draw the same windows as one batch of 4 rows, so after the
// 1/grad_accum scaling the updates must agree (up to float summation order).
TEST(Trainer, GradAccumAveragesMicroBatches) {
  TrainOptions o = small_options();
  o.steps = 10;
  o.clip = 0.0f;
  Bigram big(V, D, 1), acc(V, D, 1);
  ModelRef<Bigram> rb(big), ra(acc);
  WindowSource d1(test::chain_tokens(V, 4000, 7)), d2(test::chain_tokens(V, 4000, 7));
  TrainResult r1 = train(rb, d1, nullptr, o);
  o.batch = 2;
  o.grad_accum = 2;
  TrainResult r2 = train(ra, d2, nullptr, o);
  EXPECT_EQ(d2.drawn, 20u);
  for (int s = 0; s < 10; ++s) EXPECT_NEAR(r2.loss_curve[s].loss, r1.loss_curve[s].loss, 1e-5f) << "step " << s + 1;
  EXPECT_LT(test::rel_err(acc.E.data(), big.E.data(), acc.E.size()), 1e-4);
  EXPECT_LT(test::rel_err(acc.U.data(), big.U.data(), acc.U.size()), 1e-4);
}

TEST(Trainer, EvaluateWeightsByTargetCount) {
  Bigram m(V, D, 3);
  ModelRef<Bigram> ref(m);
  SeqEval val(test::chain_tokens(V, 200, 9));
  const int B = 2, T = 8;
  const double got = evaluate(ref, val, B, T, 3).loss;
  // Reference: the mean of −log p over every scored position, computed position by position.
  std::vector<int> tok(B * T), tgt(B * T);
  std::vector<float> p(V);
  double sum = 0, batch_mean_sum = 0;
  int64_t n = 0;
  for (int i = 0; i < 3; ++i) {
    val.batch(i, B, T, tok.data(), tgt.data());
    double bs = 0;
    int bn = 0;
    for (int j = 0; j < B * T; ++j) {
      if (tgt[j] < 0) continue;
      m.softmax_row(tok[j], p.data());
      bs -= std::log(static_cast<double>(p[tgt[j]]));
      ++bn;
    }
    sum += bs, n += bn, batch_mean_sum += bs / bn;
  }
  EXPECT_EQ(n, 3 * B * T - B * T / 2);  // batch 0 scores half its positions
  EXPECT_NEAR(got, sum / n, 1e-5);
  EXPECT_GT(std::fabs(got - batch_mean_sum / 3), 1e-4);  // a per-batch mean would differ
}

TEST(Trainer, NaNLossStopsWithClearError) {
  Bigram m(V, D, 1);
  m.nan_at_call = 5;  // the 6th forward: step 3 with grad_accum 2
  ModelRef<Bigram> ref(m);
  WindowSource data(test::chain_tokens(V, 4000, 7));
  TrainOptions o = small_options();
  o.grad_accum = 2;
  try {
    train(ref, data, nullptr, o);
    FAIL() << "a NaN loss was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "loss became NaN at step 3; start again with a lower --lr (earlier checkpoints are intact)");
  }
  for (float x : m.E) ASSERT_TRUE(std::isfinite(x));  // the bad step was not applied
}

TEST(Trainer, RejectsBadOptions) {
  Bigram m(V, D, 1);
  ModelRef<Bigram> ref(m);
  WindowSource data(test::chain_tokens(V, 400, 7));
  TrainOptions o = small_options();
  o.grad_accum = 0;
  EXPECT_THROW(train(ref, data, nullptr, o), Error);
  o = small_options();
  o.save_every = 5;  // but no checkpoint path
  EXPECT_THROW(train(ref, data, nullptr, o), Error);
}

// N steps in one go == k steps, a crash, and a resume into a fresh model: every loss, lr and
// val loss bit for bit, and the final params exactly.
TEST(Trainer, ResumeIsBitExact) {
  const std::string dir = test::scratch_dir();
  TrainOptions o = small_options();
  o.steps = 12;
  o.grad_accum = 2;
  o.clip = 0.5f;  // clipping active on most steps
  o.val_every_steps = 4;
  o.save_every = 5;
  const auto tokens = test::chain_tokens(V, 4000, 7);
  SeqEval val(test::chain_tokens(V, 600, 8));

  Bigram a(V, D, 1);
  ModelRef<Bigram> ra(a);
  WindowSource da(tokens);
  o.checkpoint = dir + "/a.gguf";
  const TrainResult full = train(ra, da, &val, o);

  // The interrupted run dies during step 8: its last checkpoint is from step 5.
  Bigram b(V, D, 1);
  ModelRef<Bigram> rb(b);
  WindowSource db(tokens);
  db.throw_after = 7 * o.grad_accum + 1;
  o.checkpoint = dir + "/b.gguf";
  EXPECT_THROW(train(rb, db, &val, o), std::runtime_error);

  // A fresh model, initialised differently, so nothing carries over but the checkpoint.
  Bigram c(V, D, 99);
  ModelRef<Bigram> rc(c);
  WindowSource dc(tokens);
  o.resume = dir + "/b.gguf";
  o.checkpoint = dir + "/c.gguf";
  const TrainResult resumed = train(rc, dc, &val, o);

  EXPECT_EQ(resumed.first_step, 6);
  ASSERT_EQ(resumed.loss_curve.size(), full.loss_curve.size());
  for (size_t i = 0; i < full.loss_curve.size(); ++i) {
    EXPECT_EQ(resumed.loss_curve[i].step, full.loss_curve[i].step);
    EXPECT_EQ(std::memcmp(&resumed.loss_curve[i].loss, &full.loss_curve[i].loss, sizeof(float)), 0) << "step " << i + 1;
    EXPECT_EQ(std::memcmp(&resumed.loss_curve[i].lr, &full.loss_curve[i].lr, sizeof(float)), 0) << "step " << i + 1;
  }
  ASSERT_EQ(resumed.val_curve.size(), 3u);  // steps 4, 8, 12
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(resumed.val_curve[i].step, full.val_curve[i].step);
    EXPECT_EQ(std::memcmp(&resumed.val_curve[i].loss, &full.val_curve[i].loss, sizeof(float)), 0);
  }
  EXPECT_EQ(std::memcmp(c.E.data(), a.E.data(), a.E.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(c.U.data(), a.U.data(), a.U.size() * sizeof(float)), 0);
  EXPECT_EQ(dc.drawn, da.drawn);
}

TEST(Trainer, ResumeRefusesAnotherRankLrOrLength) {
  const std::string dir = test::scratch_dir();
  Bigram m(V, D, 1);
  ModelRef<Bigram> ref(m);
  WindowSource data(test::chain_tokens(V, 4000, 7));
  TrainOptions o = small_options();
  o.steps = 4;
  o.save_every = 2;
  o.checkpoint = dir + "/ckpt.gguf";
  o.method.rank = 8;
  train(ref, data, nullptr, o);
  o.method.rank = 4;
  o.resume = o.checkpoint;
  o.steps = 6;
  try {
    train(ref, data, nullptr, o);
    FAIL() << "a checkpoint of another rank was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), o.resume + ": rank 8 does not match --rank 4");
  }
  o.method.rank = 8;
  auto refused = [&](const TrainOptions& t, const std::string& flag) {
    try {
      train(ref, data, nullptr, t);
      ADD_FAILURE() << "a resume with another " << flag << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  TrainOptions t = o;
  t.lr *= 0.5f;
  refused(t, "--lr");
  refused(o, "--steps");  // 6 vs 4 under cosine: the total sets every step's rate
  o.steps = 4;
  const TrainResult r = train(ref, data, nullptr, o);  // nothing left to do, and accepted
  EXPECT_EQ(r.first_step, 5);
  EXPECT_EQ(r.loss_curve.size(), 4u);
}

}  // namespace
}  // namespace qtune
