// adapters/linear.h — the one interface every weight matrix of a model sits behind.
//
//   y = x·Wᵀ        x: [n, in]   W: [out, in]   y: [n, out]
//
// The fine-tuning method is which implementation fills the slot (dense, lora, qlora, ...);
// models never branch on the method name. Templated on the scalar type so every method can
// be gradient-checked in double precision; models and kernels run in float.
//
// Conventions (llm.c style):
//  - forward OVERWRITES y.
//  - backward ACCUMULATES (+=) into dx (if non-null) and into the gradients of trainable
//    parameters; the caller zeroes gradients. Linears are stateless between forward and
//    backward: backward gets x again (the model saved it) and recomputes what it needs.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "core/rng.h"
#include "adapters/method_options.h"
#include "core/tensor.h"
#include "quant/quant.h"

namespace qtune {

namespace kernels {
struct PackedBlocks;
}

// Per-call state orthogonal to the method, carried by every call. Slots save nothing for their
// backward whether or not one follows (see the conventions above); what a call needs from the
// run is here: the key of stochastic rounding (--gemm gse:...,round=stochastic), so a gradient's
// rounding differs from step to step and slot to slot yet is a pure function of (seed, step,
// slot, operand): reproducible, independent of threads, and the same after --resume.
struct Context {
  uint64_t seed = 0;  // the run's seed
  uint64_t step = 0;  // the micro-batch being trained, counted over the whole run from 0
  // The diffusion timestep of each sample of the call (the DiT sets them; nullptr elsewhere): a
  // slot whose quantizer depends on the sampling step (TALSQ, adapters/talsq.h) reads them. The
  // call's n rows belong to the `samples` samples in order, n / samples rows each.
  const int* timesteps = nullptr;
  int64_t samples = 0;
  // Generation's prompt (Llama::prefill): a block-quantized weight may round the rows'
  // activations per block of 32 as decoding does (adapters/int_linear.cpp), so the prompt's
  // logits are those of feeding it one token at a time. Elsewhere (training, eval) false.
  bool prefill = false;
};

// One trainable tensor: the optimizer updates value using grad (same size). Also used for
// persistent state that is not trained (Linear::state(): grad == nullptr).
template <class T>
struct Param {
  std::string name;  // e.g. "blk.0.attn_q.lora_a"
  T* value;
  T* grad;
  int64_t numel;
  Shape shape;
  // The optimizer's learning rate for this tensor is lr·lr_scale, and weight decay applies only
  // when decay is set: a quantizer's learned step size (QA-LoRA) moves far slower than the
  // adapter and must not be pulled towards 0.
  float lr_scale = 1.0f;
  bool decay = true;
  // The exact running sum of grad, where the slot keeps one (adapters/exact_grad.cpp): grad is
  // then its rounding, and a reduction over MPI ranks sums this in double instead. nullptr
  // elsewhere. Whoever zeroes grad zeroes this too (zero_grad below).
  double* sum = nullptr;
};

// Zeroes a parameter's gradient (and its exact sum, where kept).
template <class T>
void zero_grad(const Param<T>& p) {
  std::fill(p.grad, p.grad + p.numel, T(0));
  if (p.sum) std::fill(p.sum, p.sum + p.numel, 0.0);
}

// What a Linear deploys as after merging its adapter: a float weight, or an integer one as
// QuantMatrix planes whose sum is the weight (one plane, except values wider than 16 bits:
// quant/int_planes.h). Exactly one of the two is set.
struct Deployed {
  std::optional<Tensor> weight;     // float [out, in]
  std::vector<QuantMatrix> planes;  // integer weight [out, in]
  int64_t inexact = 0;              // elements the integer form had to round (0 for an exact merge)
};

template <class T>
class Linear {
 public:
  Linear(int64_t in, int64_t out) : in_(in), out_(out) {}
  virtual ~Linear() = default;

  virtual void forward(const T* x, T* y, int64_t n, Context& ctx) = 0;
  virtual void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) = 0;
  virtual std::vector<Param<T>> trainable() = 0;
  // Persistent state that is not trained but must survive a checkpoint and reach the merge
  // (calibrated activation ranges, frozen quantizer ranges); grad == nullptr.
  virtual std::vector<Param<T>> state() { return {}; }
  virtual Deployed merge() const = 0;
  // The integer weight a deployed slot holds (no copy), or nullptr: every other slot gives its
  // integers through merge().
  virtual const std::vector<QuantMatrix>* integer_planes() const { return nullptr; }
  // The packed Q8_0 / Q4_0 weight this slot's one-token forward multiplies by, or nullptr: where
  // set, forward(x, y, 1) is exactly qgemv_packed(x, *packed_weight(), y, 1, false), so decoding
  // may fuse slots that share an input into one qgemv_packed_fused (one fork/join).
  virtual const kernels::PackedBlocks* packed_weight() const { return nullptr; }
  // The static int8 scale of this slot's input activations (calibrated during training, or
  // recorded in a deployed model); 0 when the input is not quantized or per token.
  virtual float input_scale() const { return 0.0f; }
  // Whether the trainable parameters' gradients are a small part of backward's work (a low-rank
  // branch beside a frozen base: lora, qlora), so adapters/exact_grad.cpp may take dx from one
  // backward over all rows and only the parameters' gradients from a backward per sample.
  virtual bool light_param_grads() const { return false; }
  // Method-specific counters for reports, e.g. {"zero_weights", n}, {"weights", n} (IntLoRA).
  virtual std::vector<std::pair<std::string, double>> stats() const { return {}; }
  // The frozen weight as float [out, in] (dequantized if stored quantized) — for export,
  // tests and PTQ baselines; never used on the training hot path.
  virtual Tensor base_weight() const = 0;
  virtual const char* method() const = 0;
  virtual int64_t weight_bytes() const = 0;  // memory held by this slot's weights + adapters
  // The adapter's part of weight_bytes: its tensors, trained and frozen (LoLDU's L_r, Ū_r, P),
  // without gradients and optimizer state; 0 for a slot without an adapter.
  virtual int64_t adapter_bytes() const { return 0; }
  // Working memory the slot keeps between calls (LoRA's h and g [n, r]), for the report's
  // memory breakdown; gradients and optimizer state are not counted here.
  virtual int64_t scratch_bytes() const { return 0; }

  int64_t in() const { return in_; }
  int64_t out() const { return out_; }

 protected:
  int64_t in_, out_;
};

// Builds the slot for one weight. `w` is the pretrained float weight [out, in]; `targeted` is
// whether this weight matched --target (non-targeted slots are frozen: dense for full/lora,
// quantized for qlora). `name` is the GGUF tensor name without ".weight" (e.g. "blk.0.attn_q"),
// used to name the params. `rng` initialises adapters (A: Kaiming-uniform a=√5, B: zeros).
template <class T>
std::unique_ptr<Linear<T>> make_linear(const MethodOptions& opts, const std::string& name, const Tensor& w,
                                       bool targeted, Rng& rng);

// The slot of a deployed (inference-only) model: integer planes → the integer path
// (make_int_linear); a float weight → frozen dense, wrapped in int8 fake quantization when
// act_bits == 8. act_scale: the recorded static scale of the input, 0 = per token.
template <class T>
std::unique_ptr<Linear<T>> make_inference_linear(const std::string& name, const Tensor* weight,
                                                 const std::vector<QuantMatrix>* planes, int act_bits, float act_scale);

}  // namespace qtune
