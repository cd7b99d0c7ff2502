// adapters/lora.cpp — method "lora" (docs/METHODS.md §2.1): frozen float W0 plus a low-rank branch,
//   y = x·W0ᵀ + (α/r)·(x·Aᵀ)·Bᵀ;  merge: W = W0 + (α/r)·B·A.
// With --gemm gse (docs/METHODS.md §9) every product is a GSE GEMM and W0 is held only in its two
// GSE orientations (the float W0 is not kept: merge rebuilds it from the model file).
#include <optional>
#include <string>

#include "adapters/lora_branch.h"
#include "adapters/methods.h"
#include "kernels/gemm.h"
#include "kernels/gse_gemm.h"

namespace qtune {

namespace {

template <class T>
class Lora final : public Linear<T> {
 public:
  Lora(const std::string& name, const Tensor& w, int rank, float alpha, Rng& rng, const GemmMode& gemm)
      : Linear<T>(w.shape[1], w.shape[0]), name_(name), branch_(w.shape[1], w.shape[0], rank, alpha, rng) {
    check_gse_scalar<T>(name, gemm.gse);
    if (gemm.gse) {
      ar_.emplace(gemm.spec, name);
      W0g_.emplace(w.ptr(), this->out_, this->in_, gemm.spec);
      return;
    }
    W0_.resize(w.data.size());
    for (size_t i = 0; i < W0_.size(); ++i) W0_[i] = static_cast<T>(w.data[i]);
  }

  // y[n, out] = x·W0ᵀ + s·(x·Aᵀ)·Bᵀ
  void forward(const T* x, T* y, int64_t n, Context&) override {
    if (ar_) {  // x encoded once for both products
      const GseMatrix& xq = kernels::gse_operand(kernels::GseRole::x, gse_f(x), n, this->in_, ar_->nearest());
      kernels::gse_gemm(xq, W0g_->w, gse_f(y), false);
      branch_.forward_add_gse(xq, y, n, *ar_);
      return;
    }
    kernels::matmul_nt(x, W0_.data(), y, n, this->in_, this->out_, false);
    branch_.forward_add(x, y, n);
  }

  // W0 is frozen: it only contributes dx += dy·W0.
  void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) override {
    if (ar_) {  // dy encoded once for dy·W0 and dy·B
      using kernels::GseRole;
      const GseMatrix& dyq = kernels::gse_operand(GseRole::dy, gse_f(dy), n, this->out_, ar_->grad(ctx, GseRole::dy));
      if (dx) kernels::gse_gemm(dyq, W0g_->wt, gse_f(dx), true);
      const GseMatrix& xq = kernels::gse_operand(GseRole::x, gse_f(x), n, this->in_, ar_->nearest());
      branch_.backward_gse(x, xq, dy, dyq, dx, n, *ar_, ctx);
      return;
    }
    if (dx) kernels::matmul_nn(dy, W0_.data(), dx, n, this->in_, this->out_, true);
    branch_.backward(x, dy, dx, n);
  }

  bool light_param_grads() const override { return true; }

  std::vector<Param<T>> trainable() override {
    std::vector<Param<T>> p;
    branch_.params(name_, p);
    return p;
  }

  Deployed merge() const override {
    Tensor w = base_weight();
    branch_.add_delta(w.ptr());
    Deployed d;
    d.weight = std::move(w);
    return d;
  }

  // Under --gemm gse: W0 as the GSE forward sees it (the float W0 is not held).
  Tensor base_weight() const override {
    if (W0g_) return W0g_->decoded();
    Tensor t({this->out_, this->in_});
    for (size_t i = 0; i < W0_.size(); ++i) t.data[i] = static_cast<float>(W0_[i]);
    return t;
  }

  const char* method() const override { return "lora"; }
  int64_t weight_bytes() const override {
    return static_cast<int64_t>(W0_.size() * sizeof(T)) + (W0g_ ? W0g_->bytes() : 0) + branch_.bytes();
  }
  int64_t adapter_bytes() const override { return branch_.bytes(); }
  int64_t scratch_bytes() const override { return branch_.scratch_bytes(); }

 private:
  std::string name_;
  Buffer<T> W0_;  // [out, in], frozen (float GEMMs)
  std::optional<GseArith> ar_;  // --gemm gse
  std::optional<GseWeight> W0g_;  // W0 in GSE form (--gemm gse), instead of W0_
  LoraBranch<T> branch_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_lora(const std::string& name, const Tensor& w, int rank, float alpha, Rng& rng,
                                     const GemmMode& gemm) {
  check_weight(name, w);
  return std::make_unique<Lora<T>>(name, w, rank, alpha, rng, gemm);
}

template std::unique_ptr<Linear<float>> make_lora<float>(const std::string&, const Tensor&, int, float, Rng&,
                                                         const GemmMode&);
template std::unique_ptr<Linear<double>> make_lora<double>(const std::string&, const Tensor&, int, float, Rng&,
                                                           const GemmMode&);

}  // namespace qtune
