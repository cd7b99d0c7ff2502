// adapters/frozen_quant.cpp — the frozen b-bit base without an adapter: the non-targeted slots
// of the integer methods (qalora, intlora-*). Unlike qlora's frozen slot, merge() returns the
// QuantMatrix itself, so every slot of such a model deploys as integers without PTQ.
#include "adapters/methods.h"
#include "kernels/gemm.h"

namespace qtune {

namespace {

template <class T>
class FrozenQuant final : public Linear<T> {
 public:
  FrozenQuant(const Tensor& w, const QuantSpec& spec)
      : Linear<T>(w.shape[1], w.shape[0]), Wq_(quantize(w.ptr(), w.shape[0], w.shape[1], spec)) {}
  // y[n, out] = x·deq(Wq)ᵀ
  void forward(const T* x, T* y, int64_t n, Context&) override { kernels::qmatmul_nt(x, Wq_, y, n, false); }
  void backward(const T*, const T* dy, T* dx, int64_t n, Context&) override {
    if (dx) kernels::qmatmul_nn(dy, Wq_, dx, n, true);  // dx[n, in] += dy·deq(Wq)
  }
  std::vector<Param<T>> trainable() override { return {}; }
  Deployed merge() const override {
    Deployed d;
    d.planes.push_back(Wq_);
    return d;
  }
  Tensor base_weight() const override {
    Tensor t({this->out_, this->in_});
    Wq_.dequantize_rows(0, this->out_, t.ptr());
    return t;
  }
  const char* method() const override { return "frozen-quant"; }
  int64_t weight_bytes() const override { return Wq_.bytes(); }

 private:
  QuantMatrix Wq_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_frozen_quant(const std::string& name, const Tensor& w, const QuantSpec& spec) {
  check_weight(name, w);
  return std::make_unique<FrozenQuant<T>>(w, spec);
}

template std::unique_ptr<Linear<float>> make_frozen_quant<float>(const std::string&, const Tensor&, const QuantSpec&);
template std::unique_ptr<Linear<double>> make_frozen_quant<double>(const std::string&, const Tensor&,
                                                                   const QuantSpec&);

}  // namespace qtune
