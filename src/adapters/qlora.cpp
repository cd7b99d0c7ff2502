// adapters/qlora.cpp — method "qlora" (docs/METHODS.md §2.2): the frozen base is stored b-bit
// (quant/, packed) and dequantized tile by tile inside the GEMM; A, B are float.
//   y = x·deq(W0q)ᵀ + (α/r)·(x·Aᵀ)·Bᵀ
// Merge returns float deq(W0q) + (α/r)·B·A; the caller runs PTQ back to b bits.
// Without an adapter it is the frozen quantized linear of non-targeted slots.
// With --gemm gse (docs/METHODS.md §9) every product is a GSE GEMM: deq(W0q) is encoded once in
// its two orientations at construction, next to the b-bit codes (merge and export read those).
#include <optional>
#include <string>

#include "adapters/lora_branch.h"
#include "adapters/methods.h"
#include "kernels/gemm.h"
#include "kernels/gse_gemm.h"

namespace qtune {

namespace {

template <class T>
class QLora final : public Linear<T> {
 public:
  QLora(const std::string& name, const Tensor& w, const QuantSpec& spec, bool with_adapter, int rank, float alpha,
        Rng& rng, const GemmMode& gemm)
      : Linear<T>(w.shape[1], w.shape[0]), name_(name), W0q_(quantize(w.ptr(), w.shape[0], w.shape[1], spec)) {
    check_gse_scalar<T>(name, gemm.gse);
    if (with_adapter) branch_.emplace(w.shape[1], w.shape[0], rank, alpha, rng);
    if (gemm.gse) {
      ar_.emplace(gemm.spec, name);
      W0g_.emplace(base_weight().ptr(), this->out_, this->in_, gemm.spec);  // deq(W0q), encoded
    }
  }

  // y[n, out] = x·deq(W0q)ᵀ (+ s·(x·Aᵀ)·Bᵀ)
  void forward(const T* x, T* y, int64_t n, Context&) override {
    if (ar_) {  // x encoded once for both products
      const GseMatrix& xq = kernels::gse_operand(kernels::GseRole::x, gse_f(x), n, this->in_, ar_->nearest());
      kernels::gse_gemm(xq, W0g_->w, gse_f(y), false);
      if (branch_) branch_->forward_add_gse(xq, y, n, *ar_);
      return;
    }
    kernels::qmatmul_nt(x, W0q_, y, n, false);
    if (branch_) branch_->forward_add(x, y, n);
  }

  void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) override {
    if (ar_) {  // dy encoded once for dy·W0 and dy·B
      using kernels::GseRole;
      const GseMatrix& dyq = kernels::gse_operand(GseRole::dy, gse_f(dy), n, this->out_, ar_->grad(ctx, GseRole::dy));
      if (dx) kernels::gse_gemm(dyq, W0g_->wt, gse_f(dx), true);
      if (branch_) {
        const GseMatrix& xq = kernels::gse_operand(GseRole::x, gse_f(x), n, this->in_, ar_->nearest());
        branch_->backward_gse(x, xq, dy, dyq, dx, n, *ar_, ctx);
      }
      return;
    }
    if (dx) kernels::qmatmul_nn(dy, W0q_, dx, n, true);  // dx[n, in] += dy·deq(W0q)
    if (branch_) branch_->backward(x, dy, dx, n);
  }

  bool light_param_grads() const override { return true; }

  std::vector<Param<T>> trainable() override {
    std::vector<Param<T>> p;
    if (branch_) branch_->params(name_, p);
    return p;
  }

  // With an adapter: float deq(W0q) + s·B·A (the caller runs PTQ). Without: the base itself.
  Deployed merge() const override {
    Deployed d;
    if (!branch_) {
      d.planes.push_back(W0q_);
      return d;
    }
    Tensor w = base_weight();
    branch_->add_delta(w.ptr());
    d.weight = std::move(w);
    return d;
  }

  Tensor base_weight() const override {
    Tensor t({this->out_, this->in_});
    W0q_.dequantize_rows(0, this->out_, t.ptr());
    return t;
  }

  const char* method() const override { return branch_ ? "qlora" : "frozen-quant"; }
  int64_t weight_bytes() const override {
    return W0q_.bytes() + (W0g_ ? W0g_->bytes() : 0) + (branch_ ? branch_->bytes() : 0);
  }
  int64_t adapter_bytes() const override { return branch_ ? branch_->bytes() : 0; }
  int64_t scratch_bytes() const override { return branch_ ? branch_->scratch_bytes() : 0; }

 private:
  std::string name_;
  QuantMatrix W0q_;                     // [out, in] b-bit, frozen
  std::optional<GseArith> ar_;          // --gemm gse
  std::optional<GseWeight> W0g_;        // deq(W0q) in GSE form (--gemm gse)
  std::optional<LoraBranch<T>> branch_;  // absent on non-targeted slots
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_qlora(const std::string& name, const Tensor& w, const QuantSpec& spec,
                                      bool with_adapter, int rank, float alpha, Rng& rng, const GemmMode& gemm) {
  check_weight(name, w);
  return std::make_unique<QLora<T>>(name, w, spec, with_adapter, rank, alpha, rng, gemm);
}

template std::unique_ptr<Linear<float>> make_qlora<float>(const std::string&, const Tensor&, const QuantSpec&, bool,
                                                          int, float, Rng&, const GemmMode&);
template std::unique_ptr<Linear<double>> make_qlora<double>(const std::string&, const Tensor&, const QuantSpec&,
                                                            bool, int, float, Rng&, const GemmMode&);

}  // namespace qtune
