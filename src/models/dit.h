// models/dit.h — a class-conditional diffusion transformer (DiT, Peebles & Xie 2023) with
// explicit forward and backward (llm.c style), predicting the noise ε of a DDPM.
//
//   x_t [B, C, H, W] → patchify (patch p) → patch_embd + bias + fixed 2-D sin-cos position
//   → depth × block → final adaLN → output linear → unpatchify → ε̂ [B, C, H, W]
//   c = MLP(sinusoidal(t)) + y_embd[class]        (class K = the null class of CFG)
//   block: x += g1 ⊙ attn(modulate(LN(x), s1, a1));  x += g2 ⊙ mlp(modulate(LN(x), s2, a2))
//          (s, a, g) = adaLN(SiLU(c)), chunks of one [6·dim] row; attention is non-causal,
//          LN has no affine parameters, the MLP is GELU (tanh approximation)
//   loss = mean over B·C·H·W of (ε̂ − ε)²
//
// Every weight matrix is a Linear slot built by make_linear, so every fine-tuning method runs on
// it; the model never branches on the method name. The block projections answer to --target
// q k v o up down; the other slots (patch and timestep embedders, adaLN, output) and the
// biases and class embedding are trained by method full only, as LLaMA's embedding and norms.
// Templated on the scalar: float for training, double for finite-difference checks.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "adapters/linear.h"
#include "io/dit_file.h"

namespace qtune {

template <class T>
class Dit {
 public:
  // Builds the slots from f's tensors; `seed` initialises adapters. train_class_embedding: an
  // adapter method also trains the class embedding y_embd ([K+1, D] floats, "y_embd.weight") —
  // the only way a frozen base can tell apart classes it never saw (dit-train --class-embedding).
  Dit(const DitFile& f, const MethodOptions& opts, uint64_t seed, bool train_class_embedding = false);
  // The slot of weight `stem` ("blk.0.attn_q") from its float weight [out, in]: a model whose slots
  // are not one method's (EfficientDM: models/efficientdm.h) brings its own.
  using SlotMaker = std::function<std::unique_ptr<Linear<T>>(const std::string& stem, const Tensor& w, Rng& rng)>;
  Dit(const DitFile& f, const MethodOptions& opts, uint64_t seed, bool train_class_embedding, const SlotMaker& make);
  ~Dit();
  Dit(const Dit&) = delete;
  Dit& operator=(const Dit&) = delete;

  const DitConfig& config() const { return cfg_; }
  const MethodOptions& method() const { return opts_; }

  // x: [B, C, H, W] noisy images; t: [B] timesteps ≥ 0; y: [B] classes 0..K (K = null);
  // eps: [B, C, H, W] the noise to predict, or nullptr (prediction only, returns 0).
  // Returns the mean squared error of the prediction; loss_images > 0: the mean is over that many
  // images instead of B (an MPI rank's shard of a global batch), in the loss and in backward().
  double forward(const T* x, const int* t, const int* y, const T* eps, int B, int64_t loss_images = 0);
  const T* prediction() const;  // ε̂ [B, C, H, W] of the last forward
  // Backward of the last forward (which must have had eps); accumulates into the parameter
  // gradients, and overwrites input_grad().
  void backward();
  // The same from a given ∂loss/∂prediction [B, C, H, W] (a loss the model does not know, e.g.
  // distillation through classifier-free guidance); needs no noise target.
  void backward(const T* dpred);
  const T* input_grad() const;  // ∂loss/∂x [B, C, H, W] of the last backward
  void zero_grad();

  std::vector<Param<T>> trainable();
  std::vector<Param<T>> state();
  int64_t num_params() const;  // base tensors + slots' weights + adapters
  int64_t num_trainable() const;
  Linear<T>& slot(const std::string& stem);  // e.g. "blk.0.adaln"
  // Every per-step activation quantizer (adapters/talsq.h) records its inputs while on, and
  // picks its ranges when turned off. Returns how many slots have one.
  int set_act_calibration(bool on);

  // The deployed model: every slot merged (integer methods into their exact integers, float ones
  // into float weights) with the activation setting it trained with; a DitFile that save_dit
  // writes and a fresh (frozen) Dit runs as this model's forward did.
  DitFile merged() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  DitConfig cfg_;
  MethodOptions opts_;
};

// DiT's initialisation: Xavier-uniform weights with zero biases (q, k, v as slices of one fused
// [3D, D] qkv, as timm's Attention), N(0, 0.02) class embedding and timestep MLP, and adaLN-Zero:
// every adaLN modulation and the output layer start at zero, so each block starts as identity
// and the first prediction is 0.
DitFile dit_init(const DitConfig& c, uint64_t seed);

}  // namespace qtune
