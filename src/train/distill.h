// train/distill.h — EfficientDM's data-free distillation of a quantized DiT (docs/METHODS.md §10),
// and its "real images" ablation, on the same schedule.
//
// Each iteration draws B classes and Gaussian noise x_T and walks the FLOAT TEACHER's DDIM
// trajectory (η, classifier-free guidance w, K steps). At every step k, with t = t_k:
//   teacher  ε_T = ε_u + w·(ε_c − ε_u)   on [x_t | classes ; x_t | null]
//   student  ε_S = the same combination of the student's outputs on the same inputs
//   loss     mean over B·n of (ε_S − ε_T)²        ∂/∂ε_c = w·g, ∂/∂ε_u = (1 − w)·g
//   one AdamW step (linear decay to 0 over iters·K steps), then x_t → x_{t−1} by the teacher's ε_T
// No training image is read. (w = 1: the conditional pass alone.)
//
// Objective `real` (the ablation "without distillation": QALoRA / QAT on the training images):
// the same iterations and steps, but step k trains the DDPM loss ‖ε − ε_S(x_t, t, y)‖² on a
// batch of real images noised to t = t_k (labels dropped to the null class with p 0.1).
//
// Calibration (before training): `calib` images along the teacher's trajectories, the student's
// per-step activation quantizers recording what reaches them (Dit::set_act_calibration).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/dit.h"

namespace qtune {

struct DistillOptions {
  int iters = 40;           // trajectories per run (each = K optimizer steps)
  int batch = 8;            // images per trajectory
  int steps = 25;           // K: DDIM steps of the trajectory
  float eta = 1.0f;
  float guidance = 2.0f;
  std::vector<int> classes; // the classes drawn from (uniformly)
  float lr = 1e-3f;
  float weight_decay = 0.01f;
  int calib = 64;           // calibration images (0: the student is already calibrated)
  uint64_t seed = 0;
  bool real = false;        // the DDPM loss on real images instead of the teacher (ablation)
  // objective real: fills x0 [B, n] and labels [B] with B training images (drawn from rng).
  std::function<void(int B, Rng& rng, std::vector<float>& x0, std::vector<int>& labels)> real_images;
  bool progress = true;
  // Called after each iteration with the number done (e.g. to save the model every k).
  std::function<void(int done)> after_iter;
};

struct DistillResult {
  std::vector<double> iter_loss;     // mean loss of each iteration's K steps
  std::vector<double> iter_seconds;  // training wall time at the end of each iteration (cumulative)
  double calib_seconds = 0, train_seconds = 0;
  int64_t optimizer_steps = 0;
};

// Runs the teacher's trajectories through the student with its activation quantizers
// recording, then fixes their ranges. Returns the number of quantized slots calibrated.
int calibrate_student(Dit<float>& teacher, Dit<float>& student, const DistillOptions& o);

// Trains `params` (the student's trainable tensors, lr_scale set) as described above.
DistillResult distill(Dit<float>& teacher, Dit<float>& student, std::vector<Param<float>> params,
                      const DistillOptions& o);

}  // namespace qtune
