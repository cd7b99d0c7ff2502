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
#include <vector>

#include "core/buffer.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "quant/quant.h"

namespace qtune {

// Orthogonal to the method; carried by every call.
struct Context {
  bool training = true;  // false: inference (no caches for backward needed)
};

// One trainable tensor: the optimizer updates value using grad (same size).
template <class T>
struct Param {
  std::string name;  // e.g. "blk.0.attn_q.lora_a"
  T* value;
  T* grad;
  int64_t numel;
  Shape shape;
};

// What a Linear deploys as after merging its adapter: either a float weight or an integer
// one (b-bit, the quant module's format). Exactly one is set.
struct Deployed {
  std::optional<Tensor> weight;          // float [out, in]
  std::optional<QuantMatrix> quantized;  // integer weight
};

template <class T>
class Linear {
 public:
  Linear(int64_t in, int64_t out) : in_(in), out_(out) {}
  virtual ~Linear() = default;

  virtual void forward(const T* x, T* y, int64_t n, Context& ctx) = 0;
  virtual void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) = 0;
  virtual std::vector<Param<T>> trainable() = 0;
  virtual Deployed merge() const = 0;
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

// How to fill the slots, from the CLI flags --method --rank --alpha --bits --group --target.
struct MethodOptions {
  std::string method = "lora";  // full | lora | qlora  (later: qalora, intlora-mul, ...)
  int rank = 8;
  float alpha = 16.0f;          // LoRA scale is alpha / rank
  int bits = 4;                 // frozen-base bits for qlora
  int group = 0;                // quantization group size along `in`; 0 = per row
  bool symmetric = false;
  std::string scale_search = "minmax";  // minmax | mse
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
  // Inference only (eval, generate): every slot a frozen float weight, nothing trainable, no
  // gradient buffers — whatever `method` says.
  bool frozen = false;
};

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

// Short target name of a GGUF tensor ("blk.3.ffn_gate" → "gate"), "" if it is not a linear.
std::string target_of(const std::string& tensor_name);

}  // namespace qtune
