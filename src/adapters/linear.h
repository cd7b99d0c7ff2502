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
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "quant/quant.h"

namespace qtune {

// Per-call state orthogonal to the method, carried by every call. Empty: every slot saves
// what its backward needs whether or not a backward follows.
struct Context {};

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
};

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
  // The static int8 scale of this slot's input activations (calibrated during training, or
  // recorded in a deployed model); 0 when the input is not quantized or per token.
  virtual float input_scale() const { return 0.0f; }
  // Method-specific counters for reports, e.g. {"zero_weights", n}, {"weights", n} (IntLoRA).
  virtual std::vector<std::pair<std::string, double>> stats() const { return {}; }
  // The frozen weight as float [out, in] (dequantized if stored quantized) — for export,
  // tests and PTQ baselines; never used on the training hot path.
  virtual Tensor base_weight() const = 0;
  virtual const char* method() const = 0;
  virtual int64_t weight_bytes() const = 0;  // memory held by this slot's weights + adapters

  int64_t in() const { return in_; }
  int64_t out() const { return out_; }

 protected:
  int64_t in_, out_;
};

// How to fill the slots, from the CLI flags --method --rank --alpha --bits --group --target ...
struct MethodOptions {
  std::string method = "lora";  // full | lora | qlora | qalora | intlora-mul | intlora-shift
  int rank = 8;
  float alpha = 16.0f;          // LoRA scale is alpha / rank (lora, qlora; the integer methods have none)
  int bits = 4;                 // bits of the quantized base (qlora, qalora, intlora-*)
  int group = 0;                // quantization group size along `in`; 0 = per row
  bool symmetric = false;
  // Range of the base quantizer: minmax | mse | auto (= mse for intlora-*, as the IntLoRA
  // reference; minmax otherwise).
  std::string scale_search = "auto";
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
  // Activation quantization of every slot's input (all methods): 0 = float, 8 = int8
  // per-tensor, the scale calibrated on the first `act_calib` training micro-batches.
  int act_bits = 0;
  int act_calib = 8;
  // QA-LoRA: the learning rate of the learned scales (trained as multipliers of their initial
  // values, so the steps are relative) as a fraction of the adapter's, and optionally their
  // gradient times 1/√(N·Qp) (LSQ; not in the reference).
  float scale_lr = 0.1f;
  bool lsq_grad_scale = false;
  // IntLoRA: variance matching of the auxiliary matrix R ("abs-max", the reference code's rule,
  // or "std", the paper's), its exponent α, and the zero-free base grid (the fix for weights
  // whose integer is 0 and which the multiplicative update can never move).
  std::string vmc = "abs-max";
  float vmc_alpha = 1.5f;
  bool zero_free = false;
  // Inference only (eval, generate): every slot frozen (make_inference_linear), nothing
  // trainable, no gradient buffers — whatever `method` says. act_bits then selects the
  // activation path, and act_dynamic ignores recorded static scales (per-token int8).
  bool frozen = false;
  bool act_dynamic = false;
};

// The integer fine-tuning methods (their merge is exact in integers; no PTQ).
bool is_integer_method(const std::string& method);
// intlora-mul and intlora-shift.
bool is_intlora(const std::string& method);
// Methods whose frozen base is quantized (qlora and the integer methods).
bool has_quantized_base(const std::string& method);
// The base quantizer of these options (bits, group, symmetry, resolved scale search).
QuantSpec base_quant_spec(const MethodOptions& opts);

// Known method names, for --method validation and --help.
const std::vector<std::string>& known_methods();
void validate(const MethodOptions& opts);  // throws Error for an unknown method, bad rank, bits...

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

// Short target name of a GGUF tensor ("blk.3.ffn_gate" → "gate"), "" if it is not a linear.
std::string target_of(const std::string& tensor_name);

}  // namespace qtune
