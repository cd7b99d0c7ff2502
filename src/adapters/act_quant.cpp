// adapters/act_quant.cpp — int8 activation quantization of a slot's input, around any method.
//
//   x̂ = s·clamp(round(x / s), −127, 127)         y = inner(x̂)
//   static (training):  s = amax / 127, amax = max|x| over the first `calib` training micro-batches
//   dynamic (inference): s_t = max_c |x[t, c]| / 127 per token
// Backward (STE): the inner slot's backward at x̂; dx passes where round(x/s) is inside ±127.
//
// Calibration happens in backward: only training micro-batches run it, while validation
// forwards (which also carry targets) must not move the scale. A forward during calibration
// uses max(amax, max|x|) — no clipping until the scale is frozen — and the backward of that
// micro-batch commits the same value, so forward and backward see one s.
//
// Several MPI ranks (core/dist.h): each rank sees its shard of the global batch, so the range a
// calibrating forward or backward takes is the max over ranks (batch_max_abs) — the global
// batch's, as one process with the whole batch sees it. Every rank runs the same forwards and
// backwards in the same order, so the collective is reached in lockstep.
//
// The quantization rule is kernels::quantize_activations' (a true division, round half away
// from zero), so a merged model running real int8 activations sees the same integers.
#include <algorithm>
#include <cmath>

#include "adapters/methods.h"
#include "adapters/wrapped_linear.h"
#include "core/dist.h"
#include "core/error.h"

namespace qtune {

namespace {

constexpr float kQmax = 127.0f;

template <class T>
class ActQuant final : public WrappedLinear<T> {
 public:
  // calib > 0: static scale calibrated on the first `calib` training micro-batches.
  // calib == 0: a fixed static scale `scale` (> 0), or per-token dynamic (scale == 0).
  ActQuant(const std::string& name, std::unique_ptr<Linear<T>> inner, int calib, float scale)
      : WrappedLinear<T>(std::move(inner)), name_(name), dynamic_(calib == 0 && scale == 0) {
    amax_[0] = static_cast<T>(scale * kQmax);
    calib_left_[0] = static_cast<T>(calib);
  }

  void forward(const T* x, T* y, int64_t n, Context& ctx) override {
    check_state();
    T* xh = fake_quant(x, n, false);
    inner_->forward(xh, y, n, ctx);
  }

  void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) override {
    if (!dynamic_ && calib_left_[0] > 0) {  // a training micro-batch: commit its range
      amax_[0] = std::max(amax_[0], batch_max_abs(x, x + n * this->in_));
      calib_left_[0] -= 1;
    }
    T* xh = fake_quant(x, n, dx != nullptr);
    if (!dx) return inner_->backward(xh, dy, nullptr, n, ctx);
    const int64_t m = n * this->in_;
    if (dxi_.size() < static_cast<size_t>(m)) dxi_.resize(static_cast<size_t>(m));
    std::fill(dxi_.data(), dxi_.data() + m, T(0));
    inner_->backward(xh, dy, dxi_.data(), n, ctx);
    for (int64_t i = 0; i < m; ++i)
      if (inside_[i]) dx[i] += dxi_[i];
  }

  std::vector<Param<T>> state() override {
    std::vector<Param<T>> s = inner_->state();
    if (!dynamic_) {
      s.push_back({name_ + ".act_amax", amax_, nullptr, 1, {1}});
      s.push_back({name_ + ".act_calib_left", calib_left_, nullptr, 1, {1}});
    }
    return s;
  }
  float input_scale() const override { return dynamic_ ? 0.0f : static_cast<float>(amax_[0]) / kQmax; }

 private:
  static T max_abs(const T* b, const T* e) {
    T m = 0;
    for (const T* p = b; p != e; ++p) m = std::max(m, std::fabs(*p));
    return m;
  }

  // max|x| over the global batch: this rank's shard, then the max over ranks.
  static T batch_max_abs(const T* b, const T* e) {
    float m = static_cast<float>(max_abs(b, e));
    dist::allreduce_max(&m, 1);
    return static_cast<T>(m);
  }

  // x̂ into scratch; with `mask`, also which elements the STE passes (inside the clamp).
  T* fake_quant(const T* x, int64_t n, bool mask) {
    const int64_t in = this->in_, m = n * in;
    if (xh_.size() < static_cast<size_t>(m)) xh_.resize(static_cast<size_t>(m));
    if (mask && inside_.size() < static_cast<size_t>(m)) inside_.resize(static_cast<size_t>(m));
    T amax = amax_[0];
    if (!dynamic_ && calib_left_[0] > 0) amax = std::max(amax, batch_max_abs(x, x + m));
    for (int64_t t = 0; t < n; ++t) {
      const T* xt = x + t * in;
      T a = dynamic_ ? max_abs(xt, xt + in) : amax;
      // the same rule as kernels::quantize_activations: an all-zero input quantizes with s = 1
      const T s = a > 0 ? a / static_cast<T>(kQmax) : T(1);
      for (int64_t c = 0; c < in; ++c) {
        const T q = std::round(xt[c] / s);
        const T qc = std::clamp(q, -static_cast<T>(kQmax), static_cast<T>(kQmax));
        xh_[t * in + c] = s * qc;
        if (mask) inside_[t * in + c] = q == qc;
      }
    }
    return xh_.data();
  }

  void check_state() const {
    QT_CHECK(std::isfinite(static_cast<double>(amax_[0])) && amax_[0] >= 0 && calib_left_[0] >= 0,
             "{}: invalid activation range state (amax {}, calibration batches left {}): corrupt checkpoint?", name_,
             static_cast<double>(amax_[0]), static_cast<double>(calib_left_[0]));
  }

  using WrappedLinear<T>::inner_;
  std::string name_;
  bool dynamic_;
  T amax_[1];        // max|x| seen while calibrating (state)
  T calib_left_[1];  // training micro-batches still to calibrate on (state)
  Buffer<T> xh_, dxi_;
  Buffer<uint8_t> inside_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_act_quant(const std::string& name, std::unique_ptr<Linear<T>> inner, int calib,
                                          float scale) {
  QT_CHECK(calib >= 0, "--act-calib {} is invalid (must be >= 1)", calib);
  QT_CHECK(std::isfinite(scale) && scale >= 0, "{}: activation scale {} is invalid", name, scale);
  return std::make_unique<ActQuant<T>>(name, std::move(inner), calib, scale);
}

template std::unique_ptr<Linear<float>> make_act_quant<float>(const std::string&, std::unique_ptr<Linear<float>>, int,
                                                              float);
template std::unique_ptr<Linear<double>> make_act_quant<double>(const std::string&, std::unique_ptr<Linear<double>>,
                                                                int, float);

}  // namespace qtune
