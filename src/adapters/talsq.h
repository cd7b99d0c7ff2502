// adapters/talsq.h — EfficientDM's temporal activation LSQ (TALSQ, docs/METHODS.md §10): a slot's
// input quantized asymmetric b-bit with one learned step size and zero point per sampling step.
//
//   j  = table.index(t)                for the timestep t of the row's sample (Context::timesteps)
//   zr = clamp(round(z[j]), 0, 2^b − 1)
//   u  = clamp(round(x / s[j]) + zr, 0, 2^b − 1)
//   x̂  = s[j]·(u − zr)                 y = inner(x̂)
// Backward (STE, LSQ; v = x / s): dx = dx̂ inside the clamp range, 0 clipped;
//   ∂x̂/∂s = round(v) − v inside, u − zr clipped;    ∂x̂/∂z = 0 inside, −s clipped.
// s trains as a multiplier of its calibrated value, s = s0·u ("<name>.act_scale" = u, [K]), so
// Adam's steps are relative (8-bit step sizes of ~1e-3 sit beside 4-bit ones of ~0.5), and z as a
// plain value in code units ("<name>.act_zero", [K], rounded in every forward); both at
// lr_scale × lr, without weight decay.
//
// Calibration (the PTQ initialisation): between begin_calibration() and end_calibration() the
// slot runs in float and records, per step, its input's range and a fixed-size uniform sample of
// it (a reservoir, 4096 values). The end picks each step's range by an MSE search over the
// shrunken [min(x, 0), max(x, 0)] (mn·(1 − 0.01i), mx·(1 − 0.01i), i = 0..79; the zero stays
// representable) and sets s = (mx − mn)/(2^b − 1), z = round(−mn / s). A step no calibration
// call visited takes the nearest visited step's entry.
//
// Arithmetic: with float scalars and an inner slot whose weight is integer (a deployed IntLinear,
// or one that merges into integers: qalora, the frozen b-bit base) the forward runs exactly as
// the deployed model: the codes, carried in int8, through kernels::igemm_zp on the inner slot's
// integers. So a fake-quant sampler and the merged model's sampler compute the same thing, bit
// for bit. In double (gradient checks) or over a float inner weight it is inner->forward(x̂).
#pragma once
#include <memory>
#include <string>

#include "adapters/linear.h"
#include "io/gguf_act.h"

namespace qtune {

// What a model reaches through a slot built by make_talsq (dynamic_cast from Linear<T>).
class StepActQuantizer {
 public:
  virtual ~StepActQuantizer() = default;
  virtual void begin_calibration() = 0;
  // Throws Error when no calibration call reached the slot.
  virtual void end_calibration() = 0;
  virtual bool calibrated() const = 0;
  // The deployed table: the learned s and the rounded, clamped z (what the forward uses).
  virtual StepActTable table() const = 0;
};

// A trainable per-step quantizer of `bits` (2..8) with `steps` entries, `stride` timesteps each,
// in front of `inner`; uncalibrated until end_calibration(). lr_scale: its Param::lr_scale.
template <class T>
std::unique_ptr<Linear<T>> make_talsq(const std::string& name, std::unique_ptr<Linear<T>> inner, int bits, int steps,
                                      int stride, float lr_scale);
// The deployed quantizer: the table as recorded, nothing trains.
template <class T>
std::unique_ptr<Linear<T>> make_talsq_frozen(const std::string& name, std::unique_ptr<Linear<T>> inner,
                                             const StepActTable& table);

}  // namespace qtune
