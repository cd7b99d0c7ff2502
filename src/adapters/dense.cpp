// adapters/dense.cpp — method "full": a plain float weight, y = x·Wᵀ. Trainable (full
// fine-tuning, grad dW) or frozen (the non-targeted slots under lora).
#include <string>

#include "adapters/methods.h"
#include "kernels/gemm.h"

namespace qtune {

namespace {

template <class T>
class Dense final : public Linear<T> {
 public:
  Dense(const std::string& name, const Tensor& w, bool trainable)
      : Linear<T>(w.shape[1], w.shape[0]), name_(name), trainable_(trainable) {
    W_.resize(w.data.size());
    for (size_t i = 0; i < W_.size(); ++i) W_[i] = static_cast<T>(w.data[i]);
    if (trainable_) dW_.resize(W_.size());
  }

  // y[n, out] = x[n, in]·Wᵀ
  void forward(const T* x, T* y, int64_t n, Context&) override {
    kernels::matmul_nt(x, W_.data(), y, n, this->in_, this->out_, false);
  }

  // dx[n, in] += dy·W;  dW[out, in] += dyᵀ·x (trainable only)
  void backward(const T* x, const T* dy, T* dx, int64_t n, Context&) override {
    if (dx) kernels::matmul_nn(dy, W_.data(), dx, n, this->in_, this->out_, true);
    if (trainable_) kernels::matmul_tn(dy, x, dW_.data(), n, this->in_, this->out_, true);
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

  Tensor base_weight() const override {
    Tensor t({this->out_, this->in_});
    for (size_t i = 0; i < W_.size(); ++i) t.data[i] = static_cast<float>(W_[i]);
    return t;
  }

  const char* method() const override { return trainable_ ? "full" : "frozen"; }
  int64_t weight_bytes() const override { return static_cast<int64_t>(W_.size() * sizeof(T)); }

 private:
  std::string name_;
  bool trainable_;
  Buffer<T> W_, dW_;  // [out, in]
};

}  // namespace

void check_weight(const std::string& name, const Tensor& w) {
  QT_CHECK(w.shape.size() == 2 && w.shape[0] > 0 && w.shape[1] > 0,
           "{}: a linear weight must be 2-D [out, in], got {}", name, shape_str(w.shape));
}

template <class T>
std::unique_ptr<Linear<T>> make_dense(const std::string& name, const Tensor& w, bool trainable) {
  check_weight(name, w);
  return std::make_unique<Dense<T>>(name, w, trainable);
}

template std::unique_ptr<Linear<float>> make_dense<float>(const std::string&, const Tensor&, bool);
template std::unique_ptr<Linear<double>> make_dense<double>(const std::string&, const Tensor&, bool);

}  // namespace qtune
