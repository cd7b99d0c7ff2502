#include "train/data_source.h"

#include <algorithm>

#include "core/error.h"

namespace qtune {

static_assert(sizeof(int) == sizeof(int32_t), "token ids are passed as int and int32_t alike");

void BatcherSource::next(int B, int T, int* tokens, int* targets, Rng&) {
  QT_CHECK(B == b_.batch() && T == seq_len_, "training batch [{}, {}] does not match the data's [{}, {}]", B, T,
           b_.batch(), seq_len_);
  b_.next(reinterpret_cast<int32_t*>(tokens), reinterpret_cast<int32_t*>(targets));
}

std::vector<uint64_t> BatcherSource::state() const {
  const BatcherState s = b_.state();
  return {static_cast<uint64_t>(s.epoch), static_cast<uint64_t>(s.index), s.rng[0], s.rng[1], s.rng[2], s.rng[3]};
}

void BatcherSource::set_state(const std::vector<uint64_t>& v) {
  QT_CHECK(v.size() == 6, "checkpoint data state has {} words, expected 6 (epoch, index, rng)", v.size());
  BatcherState s;
  s.epoch = static_cast<int64_t>(v[0]);
  s.index = static_cast<int64_t>(v[1]);
  for (int i = 0; i < 4; ++i) s.rng[i] = v[2 + i];
  b_.restore(s);
}

int64_t DatasetEval::num_batches(int B, int T) const {
  QT_CHECK(T == d_.seq_len, "validation windows are {} tokens, the model is run on {}", d_.seq_len, T);
  return (d_.n_windows + B - 1) / B;
}

void DatasetEval::batch(int64_t i, int B, int T, int* tokens, int* targets) const {
  for (int b = 0; b < B; ++b) {
    const int64_t w = i * B + b;
    int* tok = tokens + static_cast<int64_t>(b) * T;
    int* tgt = targets + static_cast<int64_t>(b) * T;
    if (w >= d_.n_windows) {  // padding row past the last window: nothing scored
      std::fill(tok, tok + T, 0);
      std::fill(tgt, tgt + T, -1);
      continue;
    }
    std::copy(d_.window_tokens(w), d_.window_tokens(w) + T, tok);
    std::copy(d_.window_targets(w), d_.window_targets(w) + T, tgt);
  }
}

EvalResult evaluate(TrainModel& model, const Dataset& val, int batch, int64_t max_batches) {
  return evaluate(model, DatasetEval(val), batch, val.seq_len, max_batches);
}

}  // namespace qtune
