// models/diffusion.h — DDPM training targets and the DDIM sampler with classifier-free
// guidance, for the ε-predicting DiT (models/dit.h).
//
//   forward process   x_t = √ᾱ_t·x_0 + √(1 − ᾱ_t)·ε,   ᾱ_t = Π_{s≤t} (1 − β_s),  t = 0..steps−1
//   training          t ~ U{0..steps−1}, ε ~ N(0, I), class → null with probability p_uncond;
//                     loss ‖ε − ε_θ(x_t, t, c)‖² (Dit::forward)
//   DDIM (Song et al. 2021) from t to the previous timestep p of a decreasing sub-sequence
//   (ᾱ_p = 1 after the last):
//     x̂_0 = (x_t − √(1 − ᾱ_t)·ε̂) / √ᾱ_t
//     σ = η·√((1 − ᾱ_p)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_p)
//     x_p = √ᾱ_p·x̂_0 + √(1 − ᾱ_p − σ²)·ε̂ + σ·z,   z ~ N(0, I)
//   η = 0 is deterministic given the starting noise; η = 1 is DDPM's ancestral sampler.
//   guidance          ε̂ = ε_u + w·(ε_c − ε_u)  (ε_u: the null class; w = 1: no guidance)
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"

namespace qtune {

// Linear β schedule (DDPM): β_t from beta_start to beta_end over `steps` timesteps.
struct NoiseSchedule {
  int steps = 0;
  std::vector<double> alpha_bar;  // [steps] ᾱ_t, in double (1 − ᾱ_t underflows float near t = 0)
  static NoiseSchedule linear(int steps = 1000, double beta_start = 1e-4, double beta_end = 0.02);
};

// One training batch of B images of n pixels each (float, as the model trains).
struct DiffusionBatch {
  std::vector<float> x_t, eps;  // [B, n]
  std::vector<int> t, y;        // [B]
};

// Draws t, ε and the class dropout for x0 [B, n] with labels [B] from rng (in that order per
// image: t, then n normals, then one uniform for the dropout), so a batch is a pure function
// of the rng state. Labels become `null_class` with probability p_uncond.
void make_diffusion_batch(const NoiseSchedule& s, const float* x0, const int* labels, int B, int64_t n,
                          int null_class, float p_uncond, Rng& rng, DiffusionBatch& out);

// The model as the sampler sees it: ε̂ [B, n] for x [B, n] at timesteps t [B], classes y [B].
using EpsModel = std::function<void(const float* x, const int* t, const int* y, int B, float* eps)>;

struct DdimOptions {
  std::vector<int> timesteps;  // strictly decreasing, in [0, steps); e.g. ddim_timesteps(1000, 50)
  float eta = 0.0f;            // 0: deterministic DDIM, 1: DDPM-like
  float guidance = 1.0f;       // w of classifier-free guidance; 1 = the conditional model alone
  int null_class = 0;          // the class id of ε_u (DitConfig::null_class)
  bool clip_x0 = false;        // clamp x̂_0 to [−1, 1] (images scaled to [−1, 1])
  uint64_t seed = 0;           // the starting noise and, for η > 0, every z
};

// n evenly spaced timesteps of a `steps` schedule, decreasing: (n−1)·k, …, k, 0 with k = steps/n
// (DDIM's "uniform" skip). Throws Error unless 1 ≤ n ≤ steps.
std::vector<int> ddim_timesteps(int steps, int n);

// Samples B images of n pixels for classes [B]; returns x_0 [B, n].
std::vector<float> ddim_sample(const EpsModel& model, const NoiseSchedule& s, const int* classes, int B, int64_t n,
                               const DdimOptions& o);

// One DDIM update of x [n] in place from ᾱ_t = at to ᾱ_p = ap given ε̂ (z drawn from rng).
void ddim_step(float* x, const float* eps, int64_t n, double at, double ap, float eta, bool clip_x0, Rng& rng);

// out = eps_u + w·(eps_c − eps_u), elementwise over n.
void cfg_combine(const float* eps_c, const float* eps_u, float w, int64_t n, float* out);

}  // namespace qtune
