// train/optimizer.h — AdamW with decoupled weight decay, global grad-norm clipping, and the
// NaN/Inf guard that stops a diverging run with a useful message.
//
// AdamW follows torch.optim.AdamW (Loshchilov & Hutter) exactly, per element, with each param's
// learning rate lr·Param::lr_scale (PyTorch's param groups) and its decay only where Param::decay:
//   p ← p·(1 − lr·wd)                       decoupled weight decay (not added to the gradient)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
// State (m, v) exists only for the trainable params handed in, in one allocation.
#pragma once
#include <cstdint>
#include <vector>

#include "adapters/linear.h"
#include "core/buffer.h"

namespace qtune {

struct AdamWOptions {
  float beta1 = 0.9f, beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: p *= 1 - lr * weight_decay
};

class AdamW {
 public:
  // The params' value/grad pointers must stay valid for the optimizer's life.
  AdamW(std::vector<Param<float>> params, const AdamWOptions& opts);

  // One update of every param with learning rate lr; increments the step count first
  // (so the first update uses t = 1 in the bias corrections, as PyTorch does).
  void step(float lr);

  int64_t t() const { return t_; }   // updates done so far
  int64_t size() const { return n_; }  // total trainable elements
  // m and v of all params, laid out param after param in the order given: [size()] each.
  float* m() { return state_.data(); }
  float* v() { return state_.data() + n_; }
  const float* m() const { return state_.data(); }
  const float* v() const { return state_.data() + n_; }
  // Offset of param i's slice within m() / v().
  int64_t offset(size_t i) const { return offsets_[i]; }
  const std::vector<Param<float>>& params() const { return params_; }
  int64_t state_bytes() const { return static_cast<int64_t>(state_.size() * sizeof(float)); }  // m and v
  // For resume: sets the step count (m and v are written directly through m()/v()).
  void set_t(int64_t t) { t_ = t; }

 private:
  std::vector<Param<float>> params_;
  std::vector<int64_t> offsets_;
  AdamWOptions opts_;
  int64_t n_ = 0, t_ = 0;
  Buffer<float> state_;  // [2, n_]: m then v
};

// L2 norm of all gradients together (accumulated in double, in a fixed order, so it is
// deterministic). If max_norm > 0 and the norm exceeds it, scales every gradient by
// max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
double clip_grad_norm(const std::vector<Param<float>>& params, double max_norm);

// Throws Error ("loss became NaN at step N; lower --lr") when the loss or the gradient norm
// is NaN or Inf; a bad gradient is reported with the first param holding one. Call with the
// norm returned by clip_grad_norm, before the optimizer step (so the params stay finite).
void check_finite(double loss, double grad_norm, const std::vector<Param<float>>& params, int64_t step);

}  // namespace qtune
