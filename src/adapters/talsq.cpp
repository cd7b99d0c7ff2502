// adapters/talsq.cpp — the per-step activation quantizer (contract and math: talsq.h).
#include "adapters/talsq.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "adapters/ste_probe.h"
#include "adapters/wrapped_linear.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/rng.h"
#include "kernels/igemm.h"

namespace qtune {

namespace {

constexpr int64_t kReservoir = 4096;  // calibration values kept per step
constexpr int kSearch = 80;           // shrink candidates of the range search

// What calibration saw at one step.
struct StepObservation {
  int64_t count = 0;
  double mn = 0, mx = 0;  // min(x, 0), max(x, 0)
  std::vector<float> sample;
};

// The (s, z) of one step from its observation: MSE over the sample, shrinking the range.
std::pair<float, int32_t> search_range(const StepObservation& o, int bits) {
  const double levels = double((1 << bits) - 1);
  double best = std::numeric_limits<double>::infinity();
  std::pair<float, int32_t> pick{1.0f, 0};
  for (int i = 0; i < kSearch; ++i) {
    const double f = 1.0 - 0.01 * i, mn = o.mn * f, mx = o.mx * f;
    if (!(mx - mn > 0)) break;  // an all-zero input: keep s = 1, z = 0
    const float s = float((mx - mn) / levels);
    const int32_t z = int32_t(std::clamp(std::round(-mn / s), 0.0, levels));
    double err = 0;
    for (float x : o.sample) {
      const float u = std::clamp(std::round(x / s) + float(z), 0.0f, float(levels));
      const double d = double(s) * (double(u) - z) - x;
      err += d * d;
    }
    if (err < best) {
      best = err;
      pick = {s, z};
    }
  }
  return pick;
}

template <class T>
class Talsq final : public WrappedLinear<T>, public StepActQuantizer, public SteProbed {
 public:
  Talsq(const std::string& name, std::unique_ptr<Linear<T>> inner, int bits, int steps, int stride, float lr_scale,
        bool trainable)
      : WrappedLinear<T>(std::move(inner)), name_(name), name_hash_(fingerprint(name.data(), name.size())),
        inner_frozen_(inner_->trainable().empty()), bits_(bits), stride_(stride),
        lr_scale_(lr_scale), trainable_(trainable) {
    QT_CHECK(bits >= 2 && bits <= 8, "{}: {} activation bits (TALSQ quantizes to 2..8)", name, bits);
    QT_CHECK(steps >= 1 && stride >= 1, "{}: a per-step quantizer needs >= 1 steps of >= 1 timesteps ({}, {})", name,
             steps, stride);
    s0_.assign(size_t(steps), T(0));
    s_.assign(size_t(steps), T(1));
    z_.assign(size_t(steps), T(0));
    ds_.assign(size_t(steps), T(0));
    dz_.assign(size_t(steps), T(0));
  }

  void set_table(const StepActTable& t) {
    check_step_table(t, name_);
    QT_CHECK(t.bits == bits_ && t.steps() == int(s_.size()) && t.stride == stride_,
             "{}: activation table of {} bits, {} steps, stride {} does not fit the slot", name_, t.bits, t.steps(),
             t.stride);
    for (int j = 0; j < t.steps(); ++j) {
      s0_[j] = T(t.scale[j]);
      s_[j] = T(1);
      z_[j] = T(t.zero[j]);
    }
    calibrated_ = true;
  }

  // ---- Linear ----
  void forward(const T* x, T* y, int64_t n, Context& ctx) override {
    if (calibrating_) {
      observe(x, n, ctx);
      return inner_->forward(x, y, n, ctx);
    }
    check_state();
    rows_steps(n, ctx);
    if constexpr (std::is_same_v<T, float>) {
      if (ste_mode() == SteMode::off && integer_forward(x, y, n)) return;
    }
    inner_->forward(fake_quant(x, n, false), y, n, ctx);
  }

  void backward(const T* x, const T* dy, T* dx, int64_t n, Context& ctx) override {
    QT_CHECK(!calibrating_, "{}: backward while calibrating", name_);
    check_state();
    rows_steps(n, ctx);
    const T* xh = fake_quant(x, n, true);
    const int64_t m = n * this->in_;
    if (!dx && !trainable_) return inner_->backward(xh, dy, nullptr, n, ctx);
    if (dxi_.size() < size_t(m)) dxi_.resize(size_t(m));
    std::fill(dxi_.begin(), dxi_.begin() + m, T(0));
    inner_->backward(xh, dy, dxi_.data(), n, ctx);
    std::vector<double> ds(s_.size(), 0.0), dz(s_.size(), 0.0);
    for (int64_t r = 0; r < n; ++r) {
      const int j = row_step_[r];
      for (int64_t c = 0; c < this->in_; ++c) {
        const int64_t i = r * this->in_ + c;
        const double g = double(dxi_[i]);
        ds[j] += g * double(dxh_ds_[i]);
        if (side_[i] == 0) {
          if (dx) dx[i] += dxi_[i];
        } else {
          dz[j] -= g * double(scale(j));
        }
      }
    }
    if (trainable_)
      for (size_t j = 0; j < s_.size(); ++j) {
        ds_[j] += T(ds[j] * double(s0_[j]));  // s = s0·u: ∂L/∂u = s0·∂L/∂s
        dz_[j] += T(dz[j]);
      }
  }

  std::vector<Param<T>> trainable() override {
    std::vector<Param<T>> p = inner_->trainable();
    if (!trainable_) return p;
    const int64_t K = int64_t(s_.size());
    p.push_back({name_ + ".act_scale", s_.data(), ds_.data(), K, {K}, lr_scale_, /*decay=*/false});
    p.push_back({name_ + ".act_zero", z_.data(), dz_.data(), K, {K}, lr_scale_, /*decay=*/false});
    return p;
  }

  // ---- StepActQuantizer ----
  void begin_calibration() override {
    calibrating_ = true;
    obs_.assign(s_.size(), StepObservation{});
  }
  void end_calibration() override {
    calibrating_ = false;
    std::vector<int> seen;
    for (size_t j = 0; j < obs_.size(); ++j)
      if (obs_[j].count > 0) seen.push_back(int(j));
    QT_CHECK(!seen.empty(), "{}: no calibration input reached this slot", name_);
    for (size_t j = 0; j < obs_.size(); ++j) {
      int near = seen[0];
      for (int k : seen)
        if (std::abs(k - int(j)) < std::abs(near - int(j))) near = k;
      const auto [s, z] = search_range(obs_[size_t(near)], bits_);
      s0_[j] = T(s);
      s_[j] = T(1);
      z_[j] = T(z);
    }
    obs_.clear();
    obs_.shrink_to_fit();
    calibrated_ = true;
  }
  bool calibrated() const override { return calibrated_; }
  StepActTable table() const override {
    check_state();
    StepActTable t;
    t.bits = bits_;
    t.stride = stride_;
    for (size_t j = 0; j < s_.size(); ++j) {
      t.scale.push_back(float(scale(j)));
      t.zero.push_back(zero_int(j));
    }
    return t;
  }

 private:
  int levels() const { return (1 << bits_) - 1; }
  T scale(size_t j) const { return s0_[j] * s_[j]; }  // the step size: calibrated × learned multiplier
  int32_t zero_int(size_t j) const { return int32_t(std::clamp(std::round(double(z_[j])), 0.0, double(levels()))); }

  void check_state() const {
    QT_CHECK(calibrated_, "{}: the activation quantizer was never calibrated", name_);
    for (size_t j = 0; j < s_.size(); ++j)
      QT_CHECK(std::isfinite(double(scale(j))) && scale(j) > T(0) && std::isfinite(double(z_[j])),
               "{}: the activation step size of step {} became {} (zero point {}): lower the activation learning rate",
               name_, j, double(scale(j)), double(z_[j]));
  }

  // row_step_[r] = the table entry of row r's sample.
  void rows_steps(int64_t n, const Context& ctx) {
    QT_CHECK(ctx.timesteps && ctx.samples > 0 && n % ctx.samples == 0,
             "{}: a per-step activation quantizer needs the timestep of every sample (a diffusion model)", name_);
    const int64_t per = n / ctx.samples;
    row_step_.resize(size_t(n));
    for (int64_t r = 0; r < n; ++r) row_step_[r] = step_table_index(ctx.timesteps[r / per], stride_, int(s_.size()));
  }

  void observe(const T* x, int64_t n, const Context& ctx) {
    rows_steps(n, ctx);
    for (int64_t r = 0; r < n; ++r) {
      StepObservation& o = obs_[size_t(row_step_[r])];
      Rng rng(name_hash_ ^ uint64_t(row_step_[r]) * 0x9e3779b97f4a7c15ULL ^ uint64_t(o.count));
      for (int64_t c = 0; c < this->in_; ++c) {
        const float v = float(x[r * this->in_ + c]);
        QT_CHECK(std::isfinite(v), "{}: non-finite activation while calibrating", name_);
        o.mn = std::min(o.mn, double(v));
        o.mx = std::max(o.mx, double(v));
        if (int64_t(o.sample.size()) < kReservoir) {
          o.sample.push_back(v);
        } else {  // reservoir sampling: every value seen so far is kept with equal probability
          const uint64_t k = rng.next_u64() % uint64_t(o.count + 1);
          if (k < uint64_t(kReservoir)) o.sample[k] = v;
        }
        ++o.count;
      }
    }
  }

  // x̂ into scratch; with `grads`, also ∂x̂/∂s and the clamp side of every element.
  const T* fake_quant(const T* x, int64_t n, bool grads) {
    const int64_t in = this->in_, m = n * in, K = int64_t(s_.size());
    const T L = T(levels());
    if (xh_.size() < size_t(m)) xh_.resize(size_t(m));
    if (grads && dxh_ds_.size() < size_t(m)) {
      dxh_ds_.resize(size_t(m));
      side_.resize(size_t(m));
    }
    ste_prepare(m + K);
    std::vector<T> zr(s_.size());
    for (int64_t j = 0; j < K; ++j) zr[j] = std::clamp(ste_round(m + j, z_[j]), T(0), L);
    for (int64_t r = 0; r < n; ++r) {
      const int j = row_step_[r];
      const T s = scale(size_t(j));
      for (int64_t c = 0; c < in; ++c) {
        const int64_t i = r * in + c;
        const T v = x[i] / s;
        const T rv = ste_round(i, v);
        const T u = rv + zr[j];
        const int8_t side = ste_decide(i, u < T(0) ? -1 : u > L ? 1 : 0);
        const T uc = side == 0 ? u : side < 0 ? T(0) : L;
        xh_[i] = s * (uc - zr[j]);
        if (grads) {
          dxh_ds_[i] = side == 0 ? rv - v : uc - zr[j];
          side_[i] = side;
        }
      }
    }
    return xh_.data();
  }

  // The deployed arithmetic (float only): false when the inner weight is not integer.
  bool integer_forward(const T* x, T* y, int64_t n) {
    if constexpr (std::is_same_v<T, float>) {
      const std::vector<QuantMatrix>* planes = inner_->integer_planes();
      Deployed d;
      if (!planes && inner_frozen_ && !frozen_planes_.empty()) planes = &frozen_planes_;
      if (!planes) {  // a trained inner slot: its integers as they are now (merge is exact)
        d = inner_->merge();
        if (d.planes.empty()) return false;
        if (inner_frozen_) frozen_planes_ = d.planes;
        planes = &d.planes;
      }
      const int64_t m = n * this->in_;
      if (xq_.size() < size_t(m)) xq_.resize(size_t(m));
      rscale_.resize(size_t(n));
      rzero_.resize(size_t(n));
      rzero_c_.resize(size_t(n));
      for (int64_t r = 0; r < n; ++r) {
        rscale_[r] = float(scale(size_t(row_step_[r])));
        rzero_[r] = zero_int(size_t(row_step_[r]));
      }
      kernels::quantize_activations_asym(x, n, this->in_, rscale_.data(), rzero_.data(), bits_, xq_.data(),
                                         rzero_c_.data());
      for (size_t p = 0; p < planes->size(); ++p)
        kernels::igemm_zp(xq_.data(), rscale_.data(), rzero_c_.data(), (*planes)[p], y, n, p > 0);
      return true;
    }
    return false;
  }

  using WrappedLinear<T>::inner_;
  std::string name_;
  uint64_t name_hash_;  // seeds the calibration reservoirs
  bool inner_frozen_;   // the inner weight never changes: its integers are merged once
  std::vector<QuantMatrix> frozen_planes_;
  int bits_, stride_;
  float lr_scale_;
  bool trainable_;
  bool calibrating_ = false, calibrated_ = false;
  std::vector<T> s0_;               // [K] calibrated step sizes (fixed)
  std::vector<T> s_, z_, ds_, dz_;  // [K] learned multipliers of s0, zero points; their gradients
  std::vector<StepObservation> obs_;
  std::vector<int> row_step_;
  std::vector<T> xh_, dxi_, dxh_ds_;
  std::vector<int8_t> side_;
  std::vector<int8_t> xq_;
  std::vector<float> rscale_;
  std::vector<int32_t> rzero_, rzero_c_;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_talsq(const std::string& name, std::unique_ptr<Linear<T>> inner, int bits, int steps,
                                      int stride, float lr_scale) {
  QT_CHECK(std::isfinite(lr_scale) && lr_scale >= 0, "{}: activation learning-rate scale {} is invalid", name,
           lr_scale);
  return std::make_unique<Talsq<T>>(name, std::move(inner), bits, steps, stride, lr_scale, true);
}

template <class T>
std::unique_ptr<Linear<T>> make_talsq_frozen(const std::string& name, std::unique_ptr<Linear<T>> inner,
                                             const StepActTable& table) {
  check_step_table(table, name);
  auto q = std::make_unique<Talsq<T>>(name, std::move(inner), table.bits, table.steps(), table.stride, 0.0f, false);
  q->set_table(table);
  return q;
}

#define QT_INSTANTIATE(T)                                                                                         \
  template std::unique_ptr<Linear<T>> make_talsq<T>(const std::string&, std::unique_ptr<Linear<T>>, int, int, int, \
                                                    float);                                                       \
  template std::unique_ptr<Linear<T>> make_talsq_frozen<T>(const std::string&, std::unique_ptr<Linear<T>>,         \
                                                           const StepActTable&);
QT_INSTANTIATE(float)
QT_INSTANTIATE(double)
#undef QT_INSTANTIATE

}  // namespace qtune
