// cli/dit_batches.h — Fashion-MNIST images as the generic trainer (train/trainer.h) sees them,
// for dit-train and dit-eval.
//
// The trainer speaks tokens, so a DiT batch is encoded as one "token" per image (seq 1):
// tokens[b] ≥ 0 is training image tokens[b], tokens[b] < 0 held-out image −tokens[b]−1;
// targets[b] is the seed of that image's (t, ε, class dropout), < 0 a padding row. The
// training source draws index and seed from the trainer's Rng, so a checkpoint carries all the
// randomness and --resume continues bit-exactly; the held-out images use their own index as
// seed, so the held-out loss is the same fixed (t, ε) for every run, model and batch size.
#pragma once
#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/idx.h"
#include "models/diffusion.h"
#include "models/dit.h"
#include "train/trainer.h"
#include "core/error.h"

namespace qtune::cli {

// The DiT as the trainer sees it (see the encoding at the top of the file).
class DitTrainModel : public TrainModel {
 public:
  DitTrainModel(Dit<float>& m, const ImageSet& train, const ImageSet& held, float p_uncond)
      : m_(m), train_(train), held_(held), p_uncond_(p_uncond), sched_(NoiseSchedule::linear()) {}

  float forward(const int* tokens, const int* targets, int B, int T) override {
    return forward_images(tokens, targets, B, T, 0);
  }
  // count: the images of the global batch the loss is averaged over (this rank's are a shard).
  float forward_for_backward(const int* tokens, const int* targets, int B, int T, int64_t count) override {
    return forward_images(tokens, targets, B, T, count);
  }
  void backward() override { m_.backward(); }
  void zero_grad() override { m_.zero_grad(); }
  std::vector<Param<float>> trainable() override { return m_.trainable(); }
  std::vector<Param<float>> state() override { return m_.state(); }

 private:
  float forward_images(const int* tokens, const int* targets, int B, int T, int64_t count) {
    QT_CHECK(T == 1, "dit-train: one image per row");
    const int64_t n = m_.config().image_numel();
    int rows = 0;  // counted rows come first; padding (targets < 0) only at the end
    while (rows < B && targets[rows] >= 0) ++rows;
    // A rank's shard of the last held-out batch may hold only padding (several MPI ranks): it
    // scores nothing. (No collective is skipped: cmd_dit_train refuses --act-bits 8 there.)
    if (rows == 0) return 0.0f;
    x_.resize(size_t(rows) * n), eps_.resize(x_.size()), t_.resize(rows), y_.resize(rows);
    for (int b = 0; b < rows; ++b) {
      const bool held = tokens[b] < 0;
      const ImageSet& set = held ? held_ : train_;
      const int64_t i = held ? -int64_t(tokens[b]) - 1 : tokens[b];
      Rng rng(0x9e3779b97f4a7c15ULL ^ (uint64_t(targets[b]) * 0xbf58476d1ce4e5b9ULL));
      make_diffusion_batch(sched_, set.pixels.data() + i * n, &set.labels[i], 1, n, m_.config().null_class(),
                           held ? 0.0f : p_uncond_, rng, one_);
      std::copy(one_.x_t.begin(), one_.x_t.end(), x_.begin() + b * n);
      std::copy(one_.eps.begin(), one_.eps.end(), eps_.begin() + b * n);
      t_[b] = one_.t[0], y_[b] = one_.y[0];
    }
    return float(m_.forward(x_.data(), t_.data(), y_.data(), eps_.data(), rows, count));
  }

  Dit<float>& m_;
  const ImageSet &train_, &held_;
  float p_uncond_;
  NoiseSchedule sched_;
  DiffusionBatch one_;
  std::vector<float> x_, eps_;
  std::vector<int> t_, y_;
};

// Training images drawn uniformly (with replacement) from the trainer's Rng, with a noise seed
// each; the state is only the set's size, checked on resume.
class ImageSource : public BatchSource {
 public:
  explicit ImageSource(int64_t n) : n_(n) {}
  void next(int B, int T, int* tokens, int* targets, Rng& rng) override {
    for (int b = 0; b < B * T; ++b) {
      tokens[b] = int(rng.below(uint64_t(n_)));
      targets[b] = int(rng.next_u64() & 0x7fffffff);
    }
  }
  std::vector<uint64_t> state() const override { return {uint64_t(n_)}; }
  void set_state(const std::vector<uint64_t>& s) override {
    QT_CHECK(s.size() == 1 && s[0] == uint64_t(n_), "the checkpoint was trained on another image set");
  }

 private:
  int64_t n_;
};

// The held-out images, each with its own index as noise seed (fixed across runs and batch sizes).
class HeldOut : public EvalSet {
 public:
  explicit HeldOut(int64_t n) : n_(n) {}
  int64_t num_batches(int B, int T) const override { return (n_ + B - 1) / B; }
  void batch(int64_t i, int B, int T, int* tokens, int* targets) const override {
    for (int b = 0; b < B; ++b) {
      const int64_t j = i * B + b;
      tokens[b] = j < n_ ? int(-j - 1) : 0;
      targets[b] = j < n_ ? int(j) : -1;
    }
  }

 private:
  int64_t n_;
};

// The first n images of s (all when it has fewer).
inline ImageSet first_images(const ImageSet& s, int64_t n) {
  ImageSet out = s;
  n = std::min(n, s.size());
  out.labels.resize(n);
  out.pixels.resize(size_t(n) * s.rows * s.cols);
  return out;
}

// The report's description of the held-out set (dit-train and dit-eval say the same).
inline nlohmann::json heldout_json(const ImageSet& held, const std::string& classes) {
  return {{"images", held.size()},
          {"which", fmt::format("the first {} t10k test images of classes {} in file order", held.size(), classes)},
          {"noise", "each image's (t, ε) seeded by its index in that list: the same in every run, whatever --seed"}};
}

}  // namespace qtune::cli
