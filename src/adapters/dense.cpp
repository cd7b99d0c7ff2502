// adapters/dense.cpp — method "full": a plain float weight, y = x·Wᵀ. Trainable (full
// fine-tuning, grad dW) or frozen (the non-targeted slots under lora).
// With --gemm gse (docs/METHODS.md §9) every product is a GSE GEMM: a frozen W is held only in its
// two GSE orientations, encoded once; a trainable W changes every step, so each pass encodes it
// in the orientation it needs (W for the forward, Wᵀ for dx).
#include <optional>
#include <string>

#include "adapters/gse_slot.h"
#include "adapters/methods.h"
#include "kernels/gemm.h"
#include "kernels/gse_gemm.h"

namespace qtune {

namespace {

template <class T>
class Dense final : public Linear<T> {
 public:
  Dense(const std::string& name, const Tensor& w, bool trainable, const GemmMode& gemm)
      : Linear<T>(w.shape[1], w.shape[0]), name_(name), trainable_(trainable) {
    check_gse_scalar<T>(name, gemm.gse);
    if (gemm.gse) ar_.emplace(gemm.spec, name);
    if (gemm.gse && !trainable_) {
      Wg_.emplace(w.ptr(), this->out_, this->in_, gemm.spec);
      return;
    }
    W_.resize(w.data.size());
    for (size_t i = 0; i < W_.size(); ++i) W_[i] = static_cast<T>(w.data[i]);
    if (trainable_) dW_.resize(W_.size());
  }

  // y[n, out] = x[n, in]·Wᵀ
  void forward(const T* x, T* y, int64_t n, Context&) override {
    if (ar_) {
      using kernels::GseRole;
      const GseMatrix& xq = kernels::gse_operand(GseRole::x, gse_f(x), n, this->in_, ar_->nearest());
      kernels::gse_gemm(xq, Wg_ ? Wg_->w : kernels::gse_operand(GseRole::w, gse_f(W_.data()), this->out_, this->in_,
                                                                 ar_->nearest()),
                        gse_f(y), false);
      return;
    }
    kernels::matmul_nt(x, W_.data(), y, n, this->in_, this->out_, false);
  }

  // dx[n, in] += dy·W;  dW[out, in] += dyᵀ·x (trainable only)
  void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) override {
    if (ar_) {
      backward_gse(gse_f(x), gse_f(dy), gse_f(dx), n, ctx);
      return;
    }
    if (dx) kernels::matmul_nn(dy, W_.data(), dx, n, this->in_, this->out_, true);
    if (trainable_) kernels::matmul_tn(dy, x, dW_.data(), n, this->in_, this->out_, true);
  }

  // dx = dy·W: dy [n, out] · Wᵀ [in, out];  dW = dyᵀ·x: dyᵀ [out, n] · xᵀ [in, n]
  void backward_gse(const float* x, const float* dy, float* dx, int64_t n, const Context& ctx) {
    using kernels::GseRole;
    const int64_t in = this->in_, out = this->out_;
    if (dx) {
      const GseMatrix& dyq = kernels::gse_operand(GseRole::dy, dy, n, out, ar_->grad(ctx, GseRole::dy));
      kernels::gse_gemm(dyq, Wg_ ? Wg_->wt : kernels::gse_operand_t(GseRole::wt, gse_f(W_.data()), out, in,
                                                                     ar_->nearest()),
                        dx, true);
    }
    if (trainable_)
      kernels::gse_gemm(kernels::gse_operand_t(GseRole::dyt, dy, n, out, ar_->grad(ctx, GseRole::dyt)),
                        kernels::gse_operand_t(GseRole::xt, x, n, in, ar_->nearest()), gse_f(dW_.data()), true);
  }

  std::vector<Param<T>> trainable() override {
    if (!trainable_) return {};
    return {{name_ + ".weight", W_.data(), dW_.data(), this->out_ * this->in_, {this->out_, this->in_}}};
  }

  Deployed merge() const override {
    Deployed d;
    d.weight = base_weight();
    return d;
  }

  // A frozen slot under --gemm gse: W as the GSE forward sees it (the float W is not held).
  Tensor base_weight() const override {
    if (Wg_) return Wg_->decoded();
    Tensor t({this->out_, this->in_});
    for (size_t i = 0; i < W_.size(); ++i) t.data[i] = static_cast<float>(W_[i]);
    return t;
  }

  const char* method() const override { return trainable_ ? "full" : "frozen"; }
  int64_t weight_bytes() const override {
    return static_cast<int64_t>(W_.size() * sizeof(T)) + (Wg_ ? Wg_->bytes() : 0);
  }

 private:
  std::string name_;
  bool trainable_;
  Buffer<T> W_, dW_;  // [out, in]; W_ empty for a frozen slot under --gemm gse
  std::optional<GseArith> ar_;  // --gemm gse
  std::optional<GseWeight> Wg_;  // a frozen W in GSE form (--gemm gse)
};

}  // namespace

void check_weight(const std::string& name, const Tensor& w) {
  QT_CHECK(w.shape.size() == 2 && w.shape[0] > 0 && w.shape[1] > 0,
           "{}: a linear weight must be 2-D [out, in], got {}", name, shape_str(w.shape));
}

template <class T>
std::unique_ptr<Linear<T>> make_dense(const std::string& name, const Tensor& w, bool trainable, const GemmMode& gemm) {
  check_weight(name, w);
  return std::make_unique<Dense<T>>(name, w, trainable, gemm);
}

template std::unique_ptr<Linear<float>> make_dense<float>(const std::string&, const Tensor&, bool, const GemmMode&);
template std::unique_ptr<Linear<double>> make_dense<double>(const std::string&, const Tensor&, bool,
                                                            const GemmMode&);

}  // namespace qtune
