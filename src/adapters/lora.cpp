// adapters/lora.cpp — method "lora" (docs/METHODS.md §2.1): frozen float W0 plus a low-rank branch,
//   y = x·W0ᵀ + (α/r)·(x·Aᵀ)·Bᵀ;  merge: W = W0 + (α/r)·B·A.
#include <string>

#include "adapters/lora_branch.h"
#include "adapters/methods.h"
#include "kernels/gemm.h"

namespace qtune {

namespace {

template <class T>
class Lora final : public Linear<T> {
 public:
  Lora(const std::string& name, const Tensor& w, int rank, float alpha, Rng& rng)
      : Linear<T>(w.shape[1], w.shape[0]), name_(name), branch_(w.shape[1], w.shape[0], rank, alpha, rng) {
    W0_.resize(w.data.size());
    for (size_t i = 0; i < W0_.size(); ++i) W0_[i] = static_cast<T>(w.data[i]);
  }

  // y[n, out] = x·W0ᵀ + s·(x·Aᵀ)·Bᵀ
  void forward(const T* x, T* y, int64_t n, Context&) override {
    kernels::matmul_nt(x, W0_.data(), y, n, this->in_, this->out_, false);
    branch_.forward_add(x, y, n);
  }

  // W0 is frozen: it only contributes dx += dy·W0.
  void backward(const T* x, const T* dy, T* dx, int64_t n, Context&) override {
    if (dx) kernels::matmul_nn(dy, W0_.data(), dx, n, this->in_, this->out_, true);
    branch_.backward(x, dy, dx, n);
  }

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

  Tensor base_weight() const override {
    Tensor t({this->out_, this->in_});
    for (size_t i = 0; i < W0_.size(); ++i) t.data[i] = static_cast<float>(W0_[i]);
    return t;
  }

  const char* method() const override { return "lora"; }
  int64_t weight_bytes() const override { return static_cast<int64_t>(W0_.size() * sizeof(T)) + branch_.bytes(); }
  int64_t adapter_bytes() const override { return branch_.bytes(); }

 private:
  std::string name_;
  Buffer<T> W0_;  // [out, in], frozen
  LoraBranch<T> branch_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_lora(const std::string& name, const Tensor& w, int rank, float alpha, Rng& rng) {
  check_weight(name, w);
  return std::make_unique<Lora<T>>(name, w, rank, alpha, rng);
}

template std::unique_ptr<Linear<float>> make_lora<float>(const std::string&, const Tensor&, int, float, Rng&);
template std::unique_ptr<Linear<double>> make_lora<double>(const std::string&, const Tensor&, int, float, Rng&);

}  // namespace qtune
