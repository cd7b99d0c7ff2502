// A tiny DiT from DiT's own initialisation learns: 50 AdamW steps of the DDPM loss on three
// synthetic classes of 8×8 images lower the loss well below its starting value (≈ 1 = E ε²,
// since adaLN-Zero starts at ε̂ = 0).
#include <cstdio>
#include <numeric>
#include <vector>

#include "models/diffusion.h"
#include "models/dit.h"
#include "models/tiny_dit.h"
#include "train/optimizer.h"
#include "test_util.h"

using namespace qtune;

namespace {

// Class 0: left half bright; 1: top half bright; 2: a checkerboard of 2×2 cells. In [−1, 1].
std::vector<float> synthetic_images(const DitConfig& c, const std::vector<int>& labels) {
  std::vector<float> x;
  for (int y : labels)
    for (int r = 0; r < c.image; ++r)
      for (int col = 0; col < c.image; ++col) {
        const bool on = y == 0 ? col < c.image / 2 : y == 1 ? r < c.image / 2 : ((r / 2 + col / 2) % 2 == 0);
        x.push_back(on ? 0.9f : -0.9f);
      }
  return x;
}

}  // namespace

TEST(DitTrain, LossFallsOverFiftyAdamWSteps) {
  const DitConfig c = test::tiny_dit_config();
  MethodOptions mo;
  mo.method = "full";
  Dit<float> m(dit_init(c, 3), mo, 1);
  AdamW opt(m.trainable(), AdamWOptions{});
  const NoiseSchedule s = NoiseSchedule::linear();
  const int B = 16;
  std::vector<int> labels(B);
  for (int i = 0; i < B; ++i) labels[i] = i % 3;
  const std::vector<float> x0 = synthetic_images(c, labels);
  Rng rng(11);
  DiffusionBatch batch;
  std::vector<double> losses;
  for (int step = 0; step < 50; ++step) {
    make_diffusion_batch(s, x0.data(), labels.data(), B, c.image_numel(), c.null_class(), 0.1f, rng, batch);
    m.zero_grad();
    losses.push_back(m.forward(batch.x_t.data(), batch.t.data(), batch.y.data(), batch.eps.data(), B));
    m.backward();
    opt.step(3e-3f);
  }
  const double first = std::accumulate(losses.begin(), losses.begin() + 10, 0.0) / 10;
  const double last = std::accumulate(losses.end() - 10, losses.end(), 0.0) / 10;
  std::printf("DiT loss: first 10 steps %.4f, last 10 steps %.4f\n", first, last);
  EXPECT_GT(first, 0.8);
  EXPECT_LT(last, 0.6 * first);
}
