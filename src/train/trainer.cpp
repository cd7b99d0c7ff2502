#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <csignal>

#include <fmt/format.h>

#include "core/dist.h"
#include "core/error.h"
#include "core/progress.h"
#include "core/signals.h"
#include "core/system.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "train/optimizer.h"

namespace qtune {

RunKeys run_keys(const TrainOptions& o) {
  RunKeys k = settings_of(o.method);
  if (!o.model_fingerprint.empty()) k.emplace_back("model-fingerprint", o.model_fingerprint);
  if (!o.data_fingerprint.empty()) k.emplace_back("data-fingerprint", o.data_fingerprint);
  k.insert(k.end(), {{"seed", std::to_string(o.seed)},
                     {"batch", std::to_string(o.batch)},
                     {"seq", std::to_string(o.seq)},
                     {"grad-accum", std::to_string(o.grad_accum)},
                     {"lr", option_value_str(o.lr)},
                     {"min-lr", option_value_str(o.min_lr)},
                     {"warmup", std::to_string(o.warmup)},
                     {"schedule", schedule_name(o.schedule)},
                     {"clip", option_value_str(o.clip)},
                     {"weight-decay", option_value_str(o.weight_decay)}});
  if (o.schedule != ScheduleKind::constant) k.emplace_back("steps", std::to_string(o.steps));
  // The global batch and each rank's shard depend on it. Recorded only when > 1, so a plain run's
  // checkpoint is as before; a checkpoint without the key was made by 1 (train/checkpoint.cpp).
  if (dist::size() > 1) k.emplace_back("ranks", std::to_string(dist::size()));
  return k;
}

namespace {

void validate(const TrainOptions& o) {
  // 0: nothing to train; the model is validated (if a set is given) and returned as it is.
  QT_CHECK(o.steps >= 0, "--steps must not be negative (got {})", o.steps);
  QT_CHECK(o.batch >= 1 && o.seq >= 1, "--batch and --seq must be at least 1 (got {} and {})", o.batch, o.seq);
  QT_CHECK(o.grad_accum >= 1, "--grad-accum must be at least 1 (got {})", o.grad_accum);
  QT_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr must be positive (got {})", o.lr);
  QT_CHECK(o.min_lr >= 0 && o.min_lr <= o.lr, "--min-lr must be in [0, --lr] (got {})", o.min_lr);
  QT_CHECK(o.warmup >= 0, "--warmup must not be negative (got {})", o.warmup);
  QT_CHECK(o.clip >= 0, "--clip must not be negative (got {})", o.clip);
  QT_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, "--betas must be in [0, 1) (got {}, {})",
           o.beta1, o.beta2);
  QT_CHECK(o.save_every >= 0 && o.val_every_steps >= 0, "--save-every and --val-every must not be negative");
  QT_CHECK(o.save_every == 0 || !o.checkpoint.empty(), "--save-every needs --checkpoint (where to write it)");
}

// Everything one run carries from step to step.
//
// Several ranks (core/dist.h): --batch b is per rank and the global batch is N·b. Every rank
// draws the whole global batch from the stream (the same seed and state on every rank: the data
// order of a one-process run with --batch N·b) and trains on its rows [r·b, (r+1)·b), its loss
// averaged over the global micro-batch's C targets (TrainModel::forward_for_backward's count), so
// the sum of the ranks' gradients is the gradient of the global mean loss. The grads are summed
// over ranks (dist::allreduce_sum: rank order, the same bits everywhere) before clipping, the
// finiteness check and AdamW — so every rank takes the same step and holds the same params. With
// --exact-sums an adapter's grads are summed exactly per sequence (Param::sum,
// adapters/exact_grad.cpp) and reduced as those double sums: the step's gradient is then one
// process's, whatever N.
struct Loop {
  TrainModel& model;
  BatchSource& data;
  const TrainOptions& o;
  std::vector<Param<float>> params;
  std::vector<Param<float>> state;  // the model's non-trained state (checkpointed)
  AdamW opt;
  Rng rng;
  TrainState st;
  const int ranks = dist::size(), rank = dist::rank();
  std::vector<int> tokens, targets;  // one global micro-batch [N·B, T], allocated once
  std::vector<float> packed;         // the float grads, for one collective per step
  std::vector<double> packed_sums;   // the exact sums (Param::sum), likewise
  double allreduce_seconds = 0;      // gradient and loss reductions (this session)

  Loop(TrainModel& m, BatchSource& d, const TrainOptions& opts)
      : model(m), data(d), o(opts), params(m.trainable()), state(m.state()),
        opt(params, AdamWOptions{opts.beta1, opts.beta2, opts.eps, opts.weight_decay}), rng(opts.seed),
        tokens(static_cast<size_t>(opts.batch) * ranks * opts.seq), targets(tokens.size()) {}

  int* shard(std::vector<int>& v) { return v.data() + static_cast<size_t>(rank) * o.batch * o.seq; }

  // One optimizer update; returns the mean loss over its micro-batches.
  float step(int64_t s, float lr) {
    model.zero_grad();
    double loss_sum = 0.0;  // Σ over micro-batches of this rank's share of the micro-batch mean
    for (int a = 0; a < o.grad_accum; ++a) {
      data.next(o.batch * ranks, o.seq, tokens.data(), targets.data(), rng);
      // the global micro-batch's: the same on every rank
      const int64_t count = nn::count_targets(targets.data(), static_cast<int64_t>(targets.size()));
      model.set_step(static_cast<uint64_t>((s - 1) * o.grad_accum + a));
      loss_sum += model.forward_for_backward(shard(tokens), shard(targets), o.batch, o.seq, count);
      model.backward();
    }
    if (ranks > 1) loss_sum = reduce(loss_sum);
    // Each backward added the grads of its micro-batch mean; their mean is the grad of the mean
    // loss over the step.
    if (o.grad_accum > 1) {
      const float f = 1.0f / static_cast<float>(o.grad_accum);
      for (const auto& p : params)
        for (int64_t j = 0; j < p.numel; ++j) p.grad[j] *= f;
    }
    const float loss = static_cast<float>(loss_sum / o.grad_accum);
    const double norm = clip_grad_norm(params, o.clip);
    check_finite(loss, norm, params, s);  // before the update, so params stay finite
    opt.step(lr);
    return loss;
  }

  // Sums the grads and the losses over ranks: a float grad as floats, a grad with an exact sum as
  // that sum, rounded once after the reduction. Returns the loss summed over ranks.
  double reduce(double loss) {
    const double t0 = now_seconds();
    packed.clear();
    packed_sums.clear();
    for (const auto& p : params) {
      if (p.sum) packed_sums.insert(packed_sums.end(), p.sum, p.sum + p.numel);
      else packed.insert(packed.end(), p.grad, p.grad + p.numel);
    }
    if (!packed.empty()) dist::allreduce_sum(packed.data(), static_cast<int64_t>(packed.size()));
    if (!packed_sums.empty()) dist::allreduce_sum(packed_sums.data(), static_cast<int64_t>(packed_sums.size()));
    dist::allreduce_sum(&loss, 1);
    size_t off = 0, off_sums = 0;
    for (const auto& p : params) {
      if (p.sum) {
        std::copy(packed_sums.begin() + off_sums, packed_sums.begin() + off_sums + p.numel, p.sum);
        for (int64_t j = 0; j < p.numel; ++j) p.grad[j] = static_cast<float>(p.sum[j]);
        off_sums += p.numel;
      } else {
        std::copy(packed.begin() + off, packed.begin() + off + p.numel, p.grad);
        off += p.numel;
      }
    }
    allreduce_seconds += now_seconds() - t0;
    return loss;
  }

  // Every rank starts from rank 0's params and state (they are equal anyway: the same seed and
  // checkpoint; this makes it a guarantee rather than an assumption).
  void agree() {
    for (const auto& p : params) dist::bcast(p.value, p.numel);
    for (const auto& p : state) dist::bcast(p.value, p.numel);
  }

  void save() {
    st.rng = rng.state();
    st.data_state = data.state();
    if (dist::is_root()) save_checkpoint(o.checkpoint, params, opt, st, run_keys(o), state);
  }

  void resume() {
    load_checkpoint(o.resume, params, opt, st, run_keys(o), state);
    rng.set_state(st.rng);
    data.set_state(st.data_state);
  }
};

}  // namespace

// Several ranks: the batches are those of one process with batch N·B (the same windows, the same
// padding), each rank scoring its rows [r·B, (r+1)·B) — every rank runs every batch, so
// collectives inside a forward (activation calibration) stay in lockstep; loss sums are then
// summed over ranks (rank order), giving every rank the same result.
EvalResult evaluate(TrainModel& model, const EvalSet& val, int B, int T, int64_t max_batches) {
  const int ranks = dist::size();
  const int G = B * ranks;  // the global batch
  int64_t n = val.num_batches(G, T);
  if (max_batches > 0) n = std::min(n, max_batches);
  QT_CHECK(n > 0, "the validation set is smaller than one batch of {}x{} tokens", G, T);
  std::vector<int> tokens(static_cast<size_t>(G) * T), targets(tokens.size());
  const size_t off = static_cast<size_t>(dist::rank()) * B * T;
  double loss_sum = 0.0;
  int64_t counted = 0, windows = 0;
  for (int64_t i = 0; i < n; ++i) {
    val.batch(i, G, T, tokens.data(), targets.data());
    // the global batch's: the same on every rank
    const int64_t c = nn::count_targets(targets.data(), static_cast<int64_t>(targets.size()));
    if (c == 0) continue;
    for (int b = 0; b < G; ++b)
      windows += std::any_of(targets.begin() + int64_t{b} * T, targets.begin() + int64_t{b + 1} * T,
                             [](int t) { return t >= 0; });
    const int64_t mine = nn::count_targets(targets.data() + off, int64_t{B} * T);
    // forward returns the mean over this batch's targets: weight it by their count, so the
    // result is the mean over all targets (what perplexity is defined on).
    const float l = model.forward(tokens.data() + off, targets.data() + off, B, T);
    if (mine > 0) loss_sum += static_cast<double>(l) * mine;
    counted += c;
  }
  QT_CHECK(counted > 0, "the validation set has no targets to score");
  dist::allreduce_sum(&loss_sum, 1);
  return {loss_sum / counted, windows, counted};
}

namespace {

// The validation point of step s: a sample of --eval-batches batches, except after the last step,
// which scores the whole set.
ValPoint validate_at(TrainModel& model, const EvalSet& val, const TrainOptions& o, int64_t s) {
  const EvalResult e = evaluate(model, val, o.batch, o.seq, s == o.steps ? 0 : o.eval_batches);
  return {s, static_cast<float>(e.loss), e.windows};
}

}  // namespace

TrainResult train(TrainModel& model, BatchSource& data, const EvalSet* val, const TrainOptions& o) {
  validate(o);
  const double t_start = now_seconds();
  if (o.threads > 0) kernels::set_num_threads(o.threads);
  const bool bf16_steps = gemm_mode(o.method).bf16;  // --gemm bf16: the steps' GEMMs, not validation's
  if (bf16_steps) kernels::require_bf16_gemm();      // a CPU without AVX512-BF16: refused before any work
  Loop L(model, data, o);
  QT_CHECK(!L.params.empty(), "the model has no trainable parameters (check --method and --target)");
  if (!o.resume.empty()) L.resume();
  L.agree();

  TrainResult r;
  r.first_step = L.st.step + 1;
  for (const auto& p : L.params) r.trainable_params += p.numel;
  const LrSchedule sched{o.schedule, o.lr, o.min_lr, o.warmup, o.steps};
  r.ranks = L.ranks;
  Progress bar(std::max<int64_t>(o.steps - L.st.step, 0), "train", o.progress && dist::is_root());
  // the global batch's: tok/s is the job's, over every rank
  const int64_t tokens_per_step = static_cast<int64_t>(o.batch) * L.ranks * o.seq * o.grad_accum;
  const std::string ranks_note = L.ranks > 1 ? fmt::format("  ranks {}", L.ranks) : "";
  double train_seconds = 0.0;
  const DeferInterrupt defer;  // SIGINT: finish the step, save a checkpoint, then stop
  for (int64_t s = r.first_step; s <= o.steps; ++s) {
    const float lr = sched.at(s);
    const double t0 = now_seconds();
    float loss;
    {
      const kernels::Bf16GemmScope bf16(bf16_steps);
      loss = L.step(s, lr);
    }
    r.step_seconds.push_back(now_seconds() - t0);
    train_seconds += r.step_seconds.back();
    L.st.step = s;
    L.st.loss_curve.push_back({s, loss, lr});
    const double tps = (s - r.first_step + 1) * tokens_per_step / std::max(train_seconds, 1e-9);
    bar.update(s - r.first_step + 1, fmt::format("step {}  loss {:.4f}  lr {:.2e}  {:.0f} tok/s{}", s, loss, lr, tps, ranks_note));
    // Validate before saving so the checkpoint's val curve includes this step.
    if (val && (s == o.steps || (o.val_every_steps > 0 && s % o.val_every_steps == 0)))
      L.st.val_curve.push_back(validate_at(model, *val, o, s));
    if (o.save_every > 0 && (s % o.save_every == 0 || s == o.steps)) L.save();
    // Several ranks stop together: an interrupt on any rank (the flag reduced every step) stops
    // all of them after the same step, and rank 0 saves.
    int sig = pending_interrupt();
    if (L.ranks > 1 && dist::any_flag(sig) && sig == 0) sig = SIGINT;
    if (sig) {
      bar.finish(fmt::format("interrupted at step {}", s));
      if (o.checkpoint.empty()) throw Interrupted(sig, fmt::format("stopped at step {} (no --checkpoint to save to)", s));
      L.save();
      // the others wait for rank 0's checkpoint: a rank exiting first would make mpirun end the job
      dist::barrier();
      throw Interrupted(sig, fmt::format("checkpoint of step {} written to {}; continue with --resume {}", s,
                                         o.checkpoint, o.checkpoint));
    }
  }
  // A resumed run that had nothing left to do still reports its final validation loss.
  if (val && (L.st.val_curve.empty() || L.st.val_curve.back().step != L.st.step))
    L.st.val_curve.push_back(validate_at(model, *val, o, L.st.step));
  const float last_loss = L.st.loss_curve.empty() ? 0.0f : L.st.loss_curve.back().loss;
  bar.finish(fmt::format("loss {:.4f}", last_loss));

  r.loss_curve = L.st.loss_curve;
  r.val_curve = L.st.val_curve;
  if (val) {
    r.final_val_loss = r.val_curve.back().loss;
    r.final_val_ppl = std::exp(*r.final_val_loss);
    r.final_val_windows = r.val_curve.back().windows;
  }
  const int64_t steps_done = o.steps - r.first_step + 1;
  r.tokens_per_second = steps_done > 0 ? steps_done * tokens_per_step / std::max(train_seconds, 1e-9) : 0.0;
  r.peak_rss_bytes = peak_rss_bytes();
  r.optimizer_state_bytes = L.opt.state_bytes();
  r.allreduce_seconds = L.allreduce_seconds;
  r.train_seconds = train_seconds;
  r.wall_seconds = now_seconds() - t_start;
  return r;
}

}  // namespace qtune
