// models/diffusion.cpp — DDPM schedule and training batches, DDIM sampling with CFG
// (models/diffusion.h).
#include "models/diffusion.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qtune {

NoiseSchedule NoiseSchedule::linear(int steps, double beta_start, double beta_end) {
  QT_CHECK(steps >= 2, "diffusion: {} timesteps, need at least 2", steps);
  QT_CHECK(beta_start > 0 && beta_end < 1 && beta_start <= beta_end, "diffusion: betas {}..{} must be in (0, 1)",
           beta_start, beta_end);
  NoiseSchedule s;
  s.steps = steps;
  s.alpha_bar.resize(steps);
  double prod = 1;
  for (int t = 0; t < steps; ++t) {
    prod *= 1.0 - (beta_start + (beta_end - beta_start) * t / (steps - 1));
    s.alpha_bar[t] = prod;
  }
  return s;
}

void make_diffusion_batch(const NoiseSchedule& s, const float* x0, const int* labels, int B, int64_t n,
                          int null_class, float p_uncond, Rng& rng, DiffusionBatch& out) {
  out.x_t.resize(size_t(B) * n);
  out.eps.resize(size_t(B) * n);
  out.t.resize(B);
  out.y.resize(B);
  for (int b = 0; b < B; ++b) {
    const int t = int(rng.below(uint64_t(s.steps)));
    const double a = std::sqrt(s.alpha_bar[t]), sd = std::sqrt(1.0 - s.alpha_bar[t]);
    for (int64_t i = 0; i < n; ++i) {
      const float e = float(rng.normal());
      out.eps[b * n + i] = e;
      out.x_t[b * n + i] = float(a * x0[b * n + i] + sd * e);
    }
    out.t[b] = t;
    out.y[b] = rng.uniform() < p_uncond ? null_class : labels[b];
  }
}

std::vector<int> ddim_timesteps(int steps, int n) {
  QT_CHECK(n >= 1 && n <= steps, "ddim: {} sampling steps, need 1..{}", n, steps);
  const int k = steps / n;
  std::vector<int> ts;
  for (int i = n - 1; i >= 0; --i) ts.push_back(i * k);
  return ts;
}

void cfg_combine(const float* eps_c, const float* eps_u, float w, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = eps_u[i] + w * (eps_c[i] - eps_u[i]);
}

void ddim_step(float* x, const float* eps, int64_t n, double at, double ap, float eta, bool clip_x0, Rng& rng) {
  const double sigma = eta * std::sqrt((1 - ap) / (1 - at)) * std::sqrt(1 - at / ap);
  const double dir = std::sqrt(std::max(0.0, 1 - ap - sigma * sigma));
  for (int64_t j = 0; j < n; ++j) {
    double x0 = (x[j] - std::sqrt(1 - at) * eps[j]) / std::sqrt(at);
    if (clip_x0) x0 = std::clamp(x0, -1.0, 1.0);
    double next = std::sqrt(ap) * x0 + dir * eps[j];
    if (sigma > 0) next += sigma * rng.normal();
    x[j] = float(next);
  }
}

namespace {

void check_options(const NoiseSchedule& s, const DdimOptions& o) {
  QT_CHECK(!o.timesteps.empty(), "ddim: no timesteps to sample");
  for (size_t i = 0; i < o.timesteps.size(); ++i) {
    QT_CHECK(o.timesteps[i] >= 0 && o.timesteps[i] < s.steps, "ddim: timestep {} is outside 0..{}", o.timesteps[i],
             s.steps - 1);
    QT_CHECK(i == 0 || o.timesteps[i] < o.timesteps[i - 1], "ddim: timesteps must decrease ({} after {})",
             o.timesteps[i], o.timesteps[i - 1]);
  }
  QT_CHECK(o.eta >= 0 && o.eta <= 1, "ddim: eta {} must be in [0, 1]", o.eta);
}

// ε̂ for x at one timestep, guided: one model call over [cond; null] when w ≠ 1.
void guided_eps(const EpsModel& model, const std::vector<float>& x, int t, const int* classes, int B, int64_t n,
                const DdimOptions& o, std::vector<float>& eps) {
  if (o.guidance == 1.0f) {
    std::vector<int> ts(B, t);
    model(x.data(), ts.data(), classes, B, eps.data());
    return;
  }
  std::vector<float> x2(x);
  x2.insert(x2.end(), x.begin(), x.end());
  std::vector<int> ts(2 * B, t), y2(classes, classes + B);
  y2.resize(2 * B, o.null_class);
  std::vector<float> e2(size_t(2) * B * n);
  model(x2.data(), ts.data(), y2.data(), 2 * B, e2.data());
  cfg_combine(e2.data(), e2.data() + B * n, o.guidance, B * n, eps.data());
}

}  // namespace

std::vector<float> ddim_sample(const EpsModel& model, const NoiseSchedule& s, const int* classes, int B, int64_t n,
                               const DdimOptions& o) {
  check_options(s, o);
  Rng rng(o.seed);
  std::vector<float> x(size_t(B) * n), eps(x.size());
  for (auto& v : x) v = float(rng.normal());
  for (size_t i = 0; i < o.timesteps.size(); ++i) {
    const int t = o.timesteps[i];
    const double at = s.alpha_bar[t];
    const double ap = i + 1 < o.timesteps.size() ? s.alpha_bar[o.timesteps[i + 1]] : 1.0;
    guided_eps(model, x, t, classes, B, n, o, eps);
    ddim_step(x.data(), eps.data(), int64_t(x.size()), at, ap, o.eta, o.clip_x0, rng);
  }
  return x;
}

}  // namespace qtune
