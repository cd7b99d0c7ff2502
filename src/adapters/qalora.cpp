// adapters/qalora.cpp — method "qalora" (docs/METHODS.md §3; the math and its interpretation are in
// qalora.h): a re-quantizing fake-quant forward with a learned scale, and the exact integer merge.
//
// Per row o (RequantLinear supplies B·A, the tiling and the GEMMs), with G = dL/dŴ:
//   forward    Ŵ[o, c] = s_w·n
//   backward   dL/d(BA) = G ⊙ inside
//              ds_w    += Σ_c G ⊙ (inside ? round(v) − v : n)    (× 1/√(N·Qp) with lsq_grad_scale)
#include "adapters/qalora.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "adapters/methods.h"  // check_weight
#include "adapters/requant_linear.h"
#include "core/error.h"

namespace qtune {

namespace {

template <class T>
class QaLora final : public RequantLinear<T, QaLora<T>> {
  using Base = RequantLinear<T, QaLora<T>>;
  friend Base;

 public:
  // dense: QAT — the delta is a full trainable [out, in] tensor D (from 0) instead of B·A.
  QaLora(const std::string& name, const Tensor& w, const QuantSpec& spec, int rank, Rng& rng, float scale_lr,
         bool lsq_grad_scale, bool dense = false)
      : Base(name, w.shape[1], w.shape[0], dense ? 0 : rank, rng),
        Wu_(quantize(w.ptr(), w.shape[0], w.shape[1], spec)),
        scale_lr_(scale_lr),
        lsq_grad_scale_(lsq_grad_scale),
        dense_(dense) {
    if (dense) {
      D_.resize(size_t(w.numel()));
      dD_.resize(size_t(w.numel()));
      std::fill(D_.begin(), D_.end(), T(0));
    }
    gs_ = Wu_.group_size();
    ng_ = Wu_.groups_per_row();
    u_.resize(Wu_.scale.size());
    du_.resize(Wu_.scale.size());
    for (auto& u : u_) u = T(1);  // s_w = s_w0·u starts at the base's scale
    const int b = spec.bits;
    qp_ = spec.symmetric ? (1 << (b - 1)) - 1 : (1 << b) - 1;
  }

  std::vector<Param<T>> trainable() override {
    std::vector<Param<T>> p;
    if (dense_)
      p.push_back({this->name_ + ".qat_delta", D_.data(), dD_.data(), this->out_ * this->in_, {this->out_, this->in_},
                   1.0f, /*decay=*/false});
    else
      this->lora_params(p);
    p.push_back({this->name_ + ".qalora_scale", u_.data(), du_.data(), this->out_ * ng_, {this->out_, ng_},
                 scale_lr_, /*decay=*/false});
    return p;
  }

  // The forward's integers n, in the base's format with the learned scale: the exact merge.
  Deployed merge() const override {
    check_state();
    QuantMatrix m = empty_quant_matrix(this->out_, this->in_, Wu_.spec);
    m.zero = Wu_.zero;
    for (size_t i = 0; i < u_.size(); ++i) m.scale[i] = static_cast<float>(learned_scale(i));
    this->for_each_row([&](int64_t o, const T* ba) {
      for_each_elem(o, ba, [&](int64_t c, T, const Elem& e) {
        m.set_code(o, c, static_cast<uint32_t>(static_cast<int32_t>(e.n) + static_cast<int32_t>(Wu_.offset(o, c / gs_))));
      });
    });
    Deployed d;
    d.planes.push_back(std::move(m));
    return d;
  }

  const char* method() const override { return dense_ ? "qat" : "qalora"; }
  int64_t adapter_bytes() const override {
    return dense_ ? int64_t(D_.size() * sizeof(T)) : Base::adapter_bytes();
  }

 private:
  // The delta of row o: (B·A)[o, :], or D[o, :] (QAT).
  void delta_row(int64_t o, T* row) const {
    if (!dense_) return Base::delta_row(o, row);
    std::copy(D_.data() + o * this->in_, D_.data() + (o + 1) * this->in_, row);
  }
  void factor_grads(const T* dba, int64_t r0, int64_t nr) {
    if (!dense_) return Base::factor_grads(dba, r0, nr);
    T* g = dD_.data() + r0 * this->in_;
    for (int64_t i = 0; i < nr * this->in_; ++i) g[i] += dba[i];
  }

  // One element of the re-quantization.
  struct Elem {
    T v;          // (W0 + BA)/s_w
    T rv;         // round(v) (half away from zero; frozen offset under the STE probe)
    T n;          // clamp(rv, lo, hi) = q − z_w, the integer
    bool inside;  // lo <= rv <= hi (the STE passes gradient)
  };

  void effective_row(int64_t o, const T* ba, T* w) const {
    for_each_elem(o, ba, [&](int64_t c, T s, const Elem& e) { w[c] = s * e.n; });
  }

  // g: dL/dŴ[o, :] in, dL/d(BA)[o, :] out; w: Ŵ[o, :] out (may alias ba).
  void backward_row(int64_t o, const T* ba, T* g, T* w) {
    // the thread's scratch: backward_row runs once per row inside the omp loop of every backward
    double* ds = scratch<double, QaLora>(0, ng_);  // [ng]: Σ over the group of g·∂Ŵ/∂s_w
    std::fill(ds, ds + ng_, 0.0);
    for_each_elem(o, ba, [&](int64_t c, T s, const Elem& e) {
      w[c] = s * e.n;
      // LSQ/STE: ∂Ŵ/∂s_w = round(v) − v inside the clamp range, n (= q_clip − z_w) outside
      ds[c / gs_] += static_cast<double>(g[c]) * static_cast<double>(e.inside ? e.rv - e.v : e.n);
      if (!e.inside) g[c] = T(0);  // ∂Ŵ/∂(BA) = 1 inside, 0 clipped
    });
    // ∂L/∂u = s_w0·∂L/∂s_w (s_w = s_w0·u)
    for (int64_t k = 0; k < ng_; ++k)
      du_[o * ng_ + k] += static_cast<T>(ds[k] * lsq_factor(k) * static_cast<double>(Wu_.scale[o * ng_ + k]));
  }

  // Calls f(c, s_w, elem) for every column c of row o, given ba[c] = (B·A)[o, c]. The one place
  // the integers are computed: forward, backward and merge all go through it. f may overwrite
  // ba[c] (it has been read).
  template <class F>
  void for_each_elem(int64_t o, const T* ba, F&& f) const {
    const int64_t in = this->in_;
    const int bits = Wu_.spec.bits;
    for (int64_t k = 0; k < ng_; ++k) {
      const int64_t c0 = k * gs_, c1 = std::min(in, c0 + gs_);
      const int32_t off = static_cast<int32_t>(Wu_.offset(o, k));
      const T s0 = static_cast<T>(Wu_.scale[o * ng_ + k]);  // fixed: defines W0
      const T s = learned_scale(o * ng_ + k);                // learned
      const T hi = Wu_.spec.symmetric ? static_cast<T>(qp_) : static_cast<T>((1 << bits) - 1 - off);
      const T lo = Wu_.spec.symmetric ? -hi : -static_cast<T>(off);
      for (int64_t c = c0; c < c1; ++c) {
        const int32_t q = static_cast<int32_t>(Wu_.code(o, c));
        Elem e;
        e.v = (s0 * static_cast<T>(q - off) + ba[c]) / s;
        e.rv = this->ste_round(o * in + c, e.v);
        // clamp side: 0 inside, −1 below lo, +1 above hi (frozen under the STE probe)
        const int8_t side = this->ste_decide(o * in + c, e.rv < lo ? -1 : e.rv > hi ? 1 : 0);
        e.inside = side == 0;
        e.n = side == 0 ? e.rv : (side < 0 ? lo : hi);
        f(c, s, e);
      }
    }
  }

  // 1/√(N·Qp) for group k (LSQ gradient scale) when enabled, else 1.
  double lsq_factor(int64_t k) const {
    if (!lsq_grad_scale_) return 1.0;
    const int64_t n = std::min(this->in_, (k + 1) * gs_) - k * gs_;
    return 1.0 / std::sqrt(static_cast<double>(n) * static_cast<double>(qp_));
  }

  void check_state() const {
    for (size_t i = 0; i < u_.size(); ++i)
      QT_CHECK(std::isfinite(static_cast<double>(u_[i])) && u_[i] > T(0),
               "qalora: the learned scale {}.qalora_scale[{}] became {} times its initial value (must be positive); "
               "lower --lr or --scale-lr",
               this->name_, i, static_cast<double>(u_[i]));
  }

  Tensor base_float() const {  // the frozen base W0 = s_w0·(W_u − z_w)
    Tensor t({this->out_, this->in_});
    Wu_.dequantize_rows(0, this->out_, t.ptr());
    return t;
  }
  int64_t base_bytes() const { return Wu_.bytes() + static_cast<int64_t>(u_.size() * sizeof(T)); }

  // s_w of group i: the base's scale times the trained multiplier (computed the same way by
  // forward, backward and merge).
  T learned_scale(size_t i) const { return static_cast<T>(Wu_.scale[i]) * u_[i]; }

  QuantMatrix Wu_;  // W_u codes, s_w0 (fixed), z_w (fixed)
  float scale_lr_;  // the optimizer's lr multiplier for u
  bool lsq_grad_scale_;
  int64_t gs_ = 0, ng_ = 0;
  int qp_ = 0;            // Qp: 2^b − 1 (asymmetric), 2^(b−1) − 1 (symmetric)
  Buffer<T> u_, du_;      // u = s_w / s_w0 [out, groups] (the trained tensor) and its gradient
  bool dense_;
  std::vector<T> D_, dD_;  // QAT's delta [out, in] and its gradient
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_qalora(const std::string& name, const Tensor& w, const QuantSpec& spec, int rank,
                                       Rng& rng, float scale_lr, bool lsq_grad_scale) {
  check_weight(name, w);
  QT_CHECK(!spec.zero_free, "qalora: the zero-free grid is an IntLoRA option");
  QT_CHECK(std::isfinite(scale_lr) && scale_lr >= 0, "--scale-lr must be a number >= 0, got {}", scale_lr);
  return std::make_unique<QaLora<T>>(name, w, spec, rank, rng, scale_lr, lsq_grad_scale);
}

template <class T>
std::unique_ptr<Linear<T>> make_qat(const std::string& name, const Tensor& w, const QuantSpec& spec, float scale_lr) {
  check_weight(name, w);
  QT_CHECK(!spec.zero_free, "qat: the zero-free grid is an IntLoRA option");
  Rng unused(0);
  return std::make_unique<QaLora<T>>(name, w, spec, 0, unused, scale_lr, false, /*dense=*/true);
}

template std::unique_ptr<Linear<float>> make_qat<float>(const std::string&, const Tensor&, const QuantSpec&, float);
template std::unique_ptr<Linear<double>> make_qat<double>(const std::string&, const Tensor&, const QuantSpec&, float);
template std::unique_ptr<Linear<float>> make_qalora<float>(const std::string&, const Tensor&, const QuantSpec&, int,
                                                           Rng&, float, bool);
template std::unique_ptr<Linear<double>> make_qalora<double>(const std::string&, const Tensor&, const QuantSpec&, int,
                                                             Rng&, float, bool);

}  // namespace qtune
