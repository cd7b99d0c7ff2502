// tests/models/tiny_dit.h — a tiny DiT (8×8 images, patch 2 → 16 tokens, dim 8, 2 blocks of
// 2 heads, MLP ratio 2, 3 classes, timestep frequencies 8) and a batch for model-level tests.
// random_dit fills EVERY tensor with noise: DiT's own init zeroes adaLN and the output layer,
// which would make most gradients 0 and a gradient check vacuous.
#pragma once
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "io/dit_file.h"

namespace qtune::test {

inline DitConfig tiny_dit_config() {
  DitConfig c;
  c.image = 8, c.channels = 1, c.patch = 2, c.dim = 8, c.depth = 2, c.heads = 2, c.mlp_ratio = 2;
  c.num_classes = 3, c.freq_dim = 8;
  return c;
}

inline DitFile random_dit(const DitConfig& c, uint64_t seed = 5, double scale = 0.4) {
  DitFile f;
  f.config = c;
  f.path = "tiny-dit";
  Rng rng(seed);
  for (const auto& [name, shape] : dit_tensor_shapes(c)) {
    Tensor t(shape);
    for (auto& x : t.data) x = float(scale * rng.normal());
    f.tensors[name] = std::move(t);
  }
  return f;
}

// The PyTorch golden test's DiT (tests/data/dit_tiny.gguf): Fashion-MNIST's shape with patch 4
// (49 tokens), dim 32, 2 blocks of 4 heads, MLP ratio 4, 10 classes, DiT's 256 frequencies;
// weights N(0, 1/in), 1-D tensors N(0, 0.1²), class embedding N(0, 0.3²) — all nonzero.
inline DitConfig golden_dit_config() {
  DitConfig c;
  c.image = 28, c.channels = 1, c.patch = 4, c.dim = 32, c.depth = 2, c.heads = 4, c.mlp_ratio = 4;
  c.num_classes = 10, c.freq_dim = 256;
  return c;
}

inline DitFile golden_dit(uint64_t seed = 2024) {
  const DitConfig c = golden_dit_config();
  DitFile f;
  f.config = c;
  f.path = "golden-dit";
  Rng rng(seed);
  for (const auto& [name, shape] : dit_tensor_shapes(c)) {
    Tensor t(shape);
    const double scale = name == "y_embd.weight" ? 0.3 : shape.size() == 1 ? 0.1 : 1.0 / std::sqrt(double(shape[1]));
    for (auto& x : t.data) x = float(scale * rng.normal());
    f.tensors[name] = std::move(t);
  }
  return f;
}

// A batch of B images: x and eps N(0, 1), timesteps spread over 0..999, classes cycling
// through 0..K (K = the null class).
template <class T>
struct DitBatch {
  std::vector<T> x, eps;
  std::vector<int> t, y;
  int B = 0;
};

template <class T>
DitBatch<T> dit_batch(const DitConfig& c, int B, uint64_t seed = 9) {
  DitBatch<T> b;
  b.B = B;
  Rng rng(seed);
  const int64_t n = int64_t(B) * c.image_numel();
  for (int64_t i = 0; i < n; ++i) b.x.push_back(T(rng.normal()));
  for (int64_t i = 0; i < n; ++i) b.eps.push_back(T(rng.normal()));
  for (int i = 0; i < B; ++i) {
    b.t.push_back(int((i * 397 + 11) % 1000));
    b.y.push_back(i % (c.num_classes + 1));
  }
  return b;
}

}  // namespace qtune::test
