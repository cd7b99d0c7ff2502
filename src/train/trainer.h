// train/trainer.h — the training loop: grad accumulation, clipping, lr schedule, AdamW,
// periodic validation, progress bar, checkpoints with bit-exact resume.
//
// One step (1-based):
//   zero_grad; for each of grad_accum micro-batches: forward + backward (grads accumulate);
//   grads /= grad_accum (so they are the grads of the mean loss over micro-batches);
//   norm = clip_grad_norm; refuse NaN/Inf; lr = schedule(step); AdamW step.
// Under mpirun (core/dist.h) each rank trains its shard of a global batch of N·batch rows and the
// grads are summed over ranks before the clipping (docs/DESIGN.md §5.1).
// Deterministic for a fixed seed and thread count: the only randomness is the trainer's Rng
// (seeded from `seed`, handed to the batch source) and the model's own init.
//
// The loop is written over three small interfaces so it can be tested without the real
// model or dataset: TrainModel (Llama fits via ModelRef<Llama>), BatchSource (the training
// stream, with a serializable state) and EvalSet (a fixed validation set).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapters/linear.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/ops.h"
#include "train/checkpoint.h"
#include "train/schedule.h"

namespace qtune {

class TrainModel {
 public:
  virtual ~TrainModel() = default;
  // tokens, targets: [B, T]; targets < 0 are not counted. Returns the mean loss over
  // counted targets.
  virtual float forward(const int* tokens, const int* targets, int B, int T) = 0;
  virtual void backward() = 0;  // accumulates into the grads of trainable()
  // A training forward: backward() of it follows, after zero_grad (a model may then make some
  // gradients during the forward, Llama::forward's will_backward). Evaluation calls forward.
  // count: the targets the loss is averaged over — the global micro-batch's, of which these rows
  // are one MPI rank's shard — so the return value is this call's share Σ loss / count and
  // backward() adds the gradient of that share. A model that can only average over its own
  // targets refuses any other count.
  virtual float forward_for_backward(const int* tokens, const int* targets, int B, int T, int64_t count) {
    const int64_t own = nn::count_targets(targets, int64_t{B} * T);
    QT_CHECK(count == own, "this model averages its loss over its own {} targets, not over {} (several MPI ranks)",
             own, count);
    return forward(tokens, targets, B, T);
  }
  virtual void zero_grad() = 0;
  virtual std::vector<Param<float>> trainable() = 0;
  // Non-trained state that a checkpoint must carry (grad == nullptr); none by default.
  virtual std::vector<Param<float>> state() { return {}; }
  // Told before each training forward: the micro-batch's index over the whole run, from 0
  // ((step − 1)·grad_accum + micro), so randomness keyed by it continues exactly on --resume.
  virtual void set_step(uint64_t micro_batch) {}
};

// Adapts any model with those four methods (Llama, test models) without inheritance.
template <class M>
class ModelRef : public TrainModel {
 public:
  explicit ModelRef(M& m) : m_(m) {}
  float forward(const int* tokens, const int* targets, int B, int T) override {
    return m_.forward(tokens, targets, B, T);
  }
  void backward() override { m_.backward(); }
  float forward_for_backward(const int* tokens, const int* targets, int B, int T, int64_t count) override {
    if constexpr (requires { m_.forward(tokens, targets, B, T, true, count); })
      return m_.forward(tokens, targets, B, T, true, count);
    else
      return TrainModel::forward_for_backward(tokens, targets, B, T, count);
  }
  void zero_grad() override { m_.zero_grad(); }
  std::vector<Param<float>> trainable() override { return m_.trainable(); }
  std::vector<Param<float>> state() override {
    if constexpr (requires(M& m) { m.state(); }) return m_.state();
    else return {};
  }
  void set_step(uint64_t micro_batch) override {
    if constexpr (requires(M& m) { m.set_step(micro_batch); }) m_.set_step(micro_batch);
  }

 private:
  M& m_;
};

// The training stream. state()/set_state() capture everything needed to continue it exactly
// (cursor, epoch, its own RNG if it has one); set_state throws Error if the state does not fit
// this data (e.g. a different file).
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Fills tokens and targets [B, T] with the next batch; may draw from rng.
  virtual void next(int B, int T, int* tokens, int* targets, Rng& rng) = 0;
  virtual std::vector<uint64_t> state() const = 0;
  virtual void set_state(const std::vector<uint64_t>& s) = 0;
};

// A fixed validation set: the same batches every time, independent of training.
class EvalSet {
 public:
  virtual ~EvalSet() = default;
  virtual int64_t num_batches(int B, int T) const = 0;
  virtual void batch(int64_t i, int B, int T, int* tokens, int* targets) const = 0;
};

struct TrainOptions {
  int64_t steps = 100;  // optimizer updates in all (a resumed run continues up to this; 0: none)
  float lr = 1e-3f, min_lr = 0.0f;
  int64_t warmup = 0;
  ScheduleKind schedule = ScheduleKind::cosine;
  int batch = 4, seq = 64, grad_accum = 1;
  float clip = 1.0f;  // max global grad norm; 0 = no clipping
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  uint64_t seed = 42;
  int64_t val_every_steps = 0;  // 0: validate only after the last step
  // Validation batches of a periodic evaluation (0 = all). The final evaluation, after the last
  // step, always scores the whole set: it is the figure a merged model is compared with.
  int64_t eval_batches = 8;
  int64_t save_every = 0;       // 0: no periodic checkpoints
  std::string checkpoint;       // where checkpoints go (overwritten atomically each time)
  std::string resume;           // a checkpoint to continue from ("" = start fresh)
  int threads = 0;              // > 0: set OpenMP+BLAS threads; bit-exact resume needs the same count
  bool progress = true;         // progress bar on stderr
  // Settings of the model recorded in checkpoints and checked on resume (method, rank, ...).
  MethodOptions method;
  // Fingerprints of the inputs (core/hash.h), recorded and checked on resume when set: a resume
  // on another model or other data would silently break the exact-continuation promise.
  std::string model_fingerprint, data_fingerprint;
};

struct TrainResult {
  std::vector<LossPoint> loss_curve;  // every step, including those before a resume
  std::vector<ValPoint> val_curve;
  std::optional<double> final_val_loss, final_val_ppl;  // set when a validation set was given
  int64_t final_val_windows = 0;                         // the whole validation set
  double tokens_per_second = 0;       // training tokens / training time (this session)
  std::vector<double> step_seconds;   // wall time of each optimizer step of this session (its tok/s spread)
  int64_t peak_rss_bytes = 0;
  int64_t optimizer_state_bytes = 0;  // AdamW's m and v
  int64_t trainable_params = 0;
  double wall_seconds = 0;
  int64_t first_step = 1;             // > 1 when resumed
  int ranks = 1;                      // MPI ranks (core/dist.h); tok/s is over all of them
  double train_seconds = 0;           // the steps' wall time (this session)
  double allreduce_seconds = 0;       // of it: summing grads and losses over ranks (incl. waiting for the slowest)
};

// The settings that must match on resume, as (flag, value): every method option that applies to
// the method (settings_of), the input fingerprints, and every option that changes the run: seed,
// batch, seq, grad-accum, lr, min-lr, warmup, schedule, clip, weight-decay, and steps unless the
// schedule is constant (then a resume may go on for more steps: the rates of the steps done do
// not depend on the total). --threads may change, at the price of bit-exactness.
RunKeys run_keys(const TrainOptions& opts);

// Trains model on data for opts.steps steps (continuing from opts.resume if set); validates
// on val (may be null). Throws Error for bad options, a mismatched checkpoint, or a NaN loss.
TrainResult train(TrainModel& model, BatchSource& data, const EvalSet* val, const TrainOptions& opts);

struct EvalResult {
  double loss = 0;      // mean over every counted target; perplexity = exp(loss)
  int64_t windows = 0;  // rows (windows) with at least one counted target
  int64_t targets = 0;  // counted targets
};

// Mean loss over the first max_batches batches of val (all if max_batches <= 0), weighted by
// the number of counted targets of each batch. Under several ranks B is per rank: the batches are
// those of batch N·B, each rank scores its shard, and every rank returns the same result.
EvalResult evaluate(TrainModel& model, const EvalSet& val, int B, int T, int64_t max_batches);

}  // namespace qtune
