// adapters/loldu.cpp — methods "loldu" and "qloldu" (loldu.h): a frozen base, float or b-bit, plus
// the LoLDU adapter.
#include "adapters/loldu.h"

#include "adapters/methods.h"  // check_weight
#include "kernels/gemm.h"

namespace qtune {

namespace {

template <class T>
class Loldu final : public Linear<T> {
 public:
  Loldu(const std::string& name, const Tensor& w, const std::optional<QuantSpec>& spec, const LolduConfig& cfg,
        Rng& rng)
      : Linear<T>(w.shape[1], w.shape[0]), name_(name), branch_(w, cfg, rng) {
    if (spec) {
      Wq_ = quantize(w.ptr(), w.shape[0], w.shape[1], *spec);
    } else {
      W_.resize(w.data.size());
      for (size_t i = 0; i < w.data.size(); ++i) W_[i] = static_cast<T>(w.data[i]);
    }
  }

  // y[n, out] = x·W_baseᵀ + (t ⊙ c)·(P·L_r)ᵀ
  void forward(const T* x, T* y, int64_t n, Context&) override {
    if (Wq_) kernels::qmatmul_nt(x, *Wq_, y, n, false);
    else kernels::matmul_nt(x, W_.data(), y, n, this->in_, this->out_, false);
    branch_.forward_add(x, y, n);
  }

  void backward(const T* x, const T* dy, T* dx, int64_t n, Context&) override {
    if (dx) {
      if (Wq_) kernels::qmatmul_nn(dy, *Wq_, dx, n, true);
      else kernels::matmul_nn(dy, W_.data(), dx, n, this->in_, this->out_, true);
    }
    branch_.backward(x, dy, dx, n);
  }

  std::vector<Param<T>> trainable() override {
    std::vector<Param<T>> p;
    branch_.params(name_, p);
    return p;
  }
  std::vector<Param<T>> state() override {
    std::vector<Param<T>> p;
    branch_.state(name_, p);
    return p;
  }

  // Float W_base + P·L_r·diag(c)·Ū_r (the caller runs PTQ for --bits).
  Deployed merge() const override {
    Tensor w = base_weight();
    branch_.add_delta(w.ptr());
    Deployed d;
    d.weight = std::move(w);
    return d;
  }

  Tensor base_weight() const override {
    Tensor t({this->out_, this->in_});
    if (Wq_) Wq_->dequantize_rows(0, this->out_, t.ptr());
    else
      for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = static_cast<float>(W_[i]);
    return t;
  }

  std::vector<std::pair<std::string, double>> stats() const override {
    return {{"loldu_zero_pivots", static_cast<double>(branch_.zero_pivots())}};
  }
  const char* method() const override { return Wq_ ? "qloldu" : "loldu"; }
  int64_t weight_bytes() const override {
    return (Wq_ ? Wq_->bytes() : static_cast<int64_t>(W_.size() * sizeof(T))) + branch_.bytes();
  }
  int64_t adapter_bytes() const override { return branch_.bytes(); }

 private:
  std::string name_;
  Buffer<T> W_;                    // float base [out, in] (loldu)
  std::optional<QuantMatrix> Wq_;  // b-bit base (qloldu)
  LolduBranch<T> branch_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_loldu(const std::string& name, const Tensor& w, const std::optional<QuantSpec>& spec,
                                      const LolduConfig& cfg, Rng& rng) {
  check_weight(name, w);
  return std::make_unique<Loldu<T>>(name, w, spec, cfg, rng);
}

template std::unique_ptr<Linear<float>> make_loldu<float>(const std::string&, const Tensor&,
                                                          const std::optional<QuantSpec>&, const LolduConfig&, Rng&);
template std::unique_ptr<Linear<double>> make_loldu<double>(const std::string&, const Tensor&,
                                                            const std::optional<QuantSpec>&, const LolduConfig&, Rng&);

}  // namespace qtune
