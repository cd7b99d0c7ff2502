#include "train/optimizer.h"

#include <cmath>

#include "core/error.h"

namespace qtune {

AdamW::AdamW(std::vector<Param<float>> params, const AdamWOptions& opts)
    : params_(std::move(params)), opts_(opts) {
  for (const auto& p : params_) {
    offsets_.push_back(n_);
    n_ += p.numel;
  }
  state_.resize(static_cast<size_t>(2 * n_));  // zeroed: m = v = 0 before the first step
}

void AdamW::step(float lr) {
  ++t_;
  const float b1 = opts_.beta1, b2 = opts_.beta2, eps = opts_.eps;
  // Bias corrections in double, as PyTorch computes them on Python floats.
  const double bc1 = 1.0 - std::pow(static_cast<double>(b1), static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(static_cast<double>(b2), static_cast<double>(t_));
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float one_minus_b1 = static_cast<float>(1.0 - b1), one_minus_b2 = static_cast<float>(1.0 - b2);
  float* m_all = m();
  float* v_all = v();
  for (size_t i = 0; i < params_.size(); ++i) {
    const Param<float>& p = params_[i];
    const float plr = lr * p.lr_scale;  // this param group's learning rate (== lr for lr_scale 1)
    const float step_size = static_cast<float>(plr / bc1);
    const float decay = p.decay ? static_cast<float>(1.0 - static_cast<double>(plr) * opts_.weight_decay) : 1.0f;
    float* w = p.value;
    const float* g = p.grad;
    float* m = m_all + offsets_[i];
    float* v = v_all + offsets_[i];
    // Element-wise and independent, so the result does not depend on the thread count.
#pragma omp parallel for schedule(static) if (p.numel > 32768)
    for (int64_t j = 0; j < p.numel; ++j) {
      w[j] *= decay;
      m[j] = b1 * m[j] + one_minus_b1 * g[j];
      v[j] = b2 * v[j] + one_minus_b2 * (g[j] * g[j]);
      const float denom = std::sqrt(v[j]) / bc2_sqrt + eps;
      w[j] -= step_size * m[j] / denom;  // (step_size·m)/denom, PyTorch's addcdiv order
    }
  }
}

double clip_grad_norm(const std::vector<Param<float>>& params, double max_norm) {
  // Sequential sum in double: exact enough, and the same on every run and thread count.
  double sumsq = 0.0;
  for (const auto& p : params)
    for (int64_t j = 0; j < p.numel; ++j) sumsq += static_cast<double>(p.grad[j]) * p.grad[j];
  const double norm = std::sqrt(sumsq);
  // A non-finite norm is left for check_finite to report, with the gradients intact.
  if (max_norm > 0.0 && std::isfinite(norm) && norm > max_norm) {
    const float scale = static_cast<float>(max_norm / (norm + 1e-6));
    for (const auto& p : params)
      for (int64_t j = 0; j < p.numel; ++j) p.grad[j] *= scale;
  }
  return norm;
}

static const char* nan_or_inf(double x) { return std::isnan(x) ? "NaN" : "Inf"; }

void check_finite(double loss, double grad_norm, const std::vector<Param<float>>& params, int64_t step) {
  // Before the update: the params, and every checkpoint written so far, stay finite.
  if (!std::isfinite(loss)) fail("loss became {} at step {}; start again with a lower --lr (earlier checkpoints are intact)", nan_or_inf(loss), step);
  if (std::isfinite(grad_norm)) return;
  // Name the first tensor with a bad gradient; the norm can also overflow from finite values.
  for (const auto& p : params)
    for (int64_t j = 0; j < p.numel; ++j)
      if (!std::isfinite(p.grad[j]))
        fail("gradient of {} became {} at step {}; lower --lr", p.name, nan_or_inf(p.grad[j]), step);
  fail("gradient norm overflowed at step {}; lower --lr or set --clip", step);
}

}  // namespace qtune
