// models/dit_sampler.h — generating images with a trained DiT: DDIM (models/diffusion.h) with
// classifier-free guidance, in fixed chunks so the result depends on the seed only.
#pragma once
#include <cstdint>
#include <vector>

#include "models/dit.h"

namespace qtune {

struct DitSampleOptions {
  int steps = 50;          // DDIM steps: ddim_timesteps(1000, steps)
  float eta = 0.0f;        // 0 = deterministic DDIM
  float guidance = 1.0f;   // classifier-free guidance w (1 = none)
  uint64_t seed = 0;
};

// Images are generated kSampleChunk at a time; chunk c starts from the noise of seed
// mix(seed, c), so image i is the same whatever the number of images after it.
constexpr int kSampleChunk = 16;

// One image per entry of `classes` (0..K−1, or K = the null class: unconditional); returns
// [classes.size(), C·H·W] in the model's [−1, 1] pixel scale, x̂_0 clamped to [−1, 1] at every
// step. `progress(done, total)` is called after each chunk when given.
std::vector<float> dit_sample(Dit<float>& model, const std::vector<int>& classes, const DitSampleOptions& o,
                              void (*progress)(int64_t done, int64_t total) = nullptr);

}  // namespace qtune
