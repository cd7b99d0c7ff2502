// train/data_source.h — the io/dataset types seen through the trainer's interfaces.
//
//   Dataset split = load_data(...);
//   Batcher batcher(split.train, opts.batch, opts.seed);
//   BatcherSource src(batcher, split.train.seq_len);
//   DatasetEval val(split.val);
//   train(model, src, split.val.n_windows ? &val : nullptr, opts);
#pragma once
#include <cstdint>
#include <vector>

#include "io/dataset.h"
#include "train/trainer.h"

namespace qtune {

// Batcher as the training stream. The Batcher shuffles with its own seeded Rng (part of its
// state), so the trainer's rng is not drawn from. next() refuses a shape other than the
// batcher's [batch, seq_len] (a programming error: TrainOptions and the Batcher disagree).
class BatcherSource : public BatchSource {
 public:
  BatcherSource(Batcher& b, int seq_len) : b_(b), seq_len_(seq_len) {}
  void next(int B, int T, int* tokens, int* targets, Rng& rng) override;
  // {epoch, index, rng[0..3]}
  std::vector<uint64_t> state() const override;
  void set_state(const std::vector<uint64_t>& s) override;  // throws Error if it does not fit

 private:
  Batcher& b_;
  int seq_len_;
};

// A Dataset's windows in order as the validation set; the last batch is padded with unscored
// rows (targets −1), so every window counts exactly once.
class DatasetEval : public EvalSet {
 public:
  explicit DatasetEval(const Dataset& d) : d_(d) {}
  int64_t num_batches(int B, int T) const override;
  void batch(int64_t i, int B, int T, int* tokens, int* targets) const override;

 private:
  const Dataset& d_;
};

// evaluate() over a Dataset in batches of `batch` windows of its seq_len.
EvalResult evaluate(TrainModel& model, const Dataset& val, int batch, int64_t max_batches);

}  // namespace qtune
