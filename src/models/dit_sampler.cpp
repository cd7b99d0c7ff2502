// models/dit_sampler.cpp — see dit_sampler.h.
#include "models/dit_sampler.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "models/diffusion.h"

namespace qtune {

std::vector<float> dit_sample(Dit<float>& model, const std::vector<int>& classes, const DitSampleOptions& o,
                              void (*progress)(int64_t, int64_t)) {
  const DitConfig& c = model.config();
  const int64_t n = c.image_numel(), total = int64_t(classes.size());
  for (int k : classes) QT_CHECK(k >= 0 && k <= c.null_class(), "class {} is outside 0..{}", k, c.num_classes - 1);
  const NoiseSchedule sched = NoiseSchedule::linear();
  DdimOptions d;
  d.timesteps = ddim_timesteps(sched.steps, o.steps);
  d.eta = o.eta;
  d.guidance = o.guidance;
  d.null_class = c.null_class();
  d.clip_x0 = true;
  const EpsModel eps = [&](const float* x, const int* t, const int* y, int B, float* out) {
    model.forward(x, t, y, nullptr, B);
    std::memcpy(out, model.prediction(), size_t(B) * n * sizeof(float));
  };
  std::vector<float> images(size_t(total) * n);
  for (int64_t first = 0, chunk = 0; first < total; first += kSampleChunk, ++chunk) {
    const int B = int(std::min<int64_t>(kSampleChunk, total - first));
    d.seed = o.seed ^ (0x9e3779b97f4a7c15ULL * uint64_t(chunk + 1));
    const std::vector<float> x = ddim_sample(eps, sched, classes.data() + first, B, n, d);
    std::copy(x.begin(), x.end(), images.begin() + first * n);
    if (progress) progress(first + B, total);
  }
  return images;
}

}  // namespace qtune
