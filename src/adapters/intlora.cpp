// adapters/intlora.cpp — IntLoRA MUL and SHIFT (docs/METHODS.md §4; the math is in intlora.h).
//
// One class, two element rules. RequantLinear supplies B·A per row, the tiling and the GEMMs;
// this file supplies the per-row effective weight W', its STE gradient, and the exact merge —
// all three through for_each_elem, the one place the integers are computed.
#include "adapters/intlora.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "adapters/methods.h"  // check_weight
#include "adapters/requant_linear.h"
#include "core/error.h"
#include "quant/int_planes.h"

namespace qtune {

namespace {

constexpr double kLaplaceB = 0.5;   // R ~ Laplace(0, 0.5) before VMC (the reference)
constexpr double kLog2Eps = 1e-16;  // SHIFT: k = round(log2(|U| + 1e-16))

// The VMC factor of one row: w, raw (unscaled) R draws, both [n].
float vmc_factor(const float* w, const float* r, int64_t n, const IntLoraOptions& o) {
  double ratio;
  if (o.vmc == "std") {
    auto stdev = [n](const float* v) {
      double m = 0, q = 0;
      for (int64_t i = 0; i < n; ++i) m += v[i];
      m /= static_cast<double>(n);
      for (int64_t i = 0; i < n; ++i) q += (v[i] - m) * (v[i] - m);
      return std::sqrt(q / static_cast<double>(n));
    };
    ratio = stdev(w) / (stdev(r) + 1e-8);
  } else {
    const auto [wmn, wmx] = std::minmax_element(w, w + n);
    const auto [rmn, rmx] = std::minmax_element(r, r + n);
    const double wmax = std::max(std::fabs(*wmx), std::fabs(*wmn));
    const double rmin = std::min(std::fabs(*rmx), std::fabs(*rmn));
    ratio = wmax / (rmin + 1e-8);
  }
  return static_cast<float>(std::pow(ratio, static_cast<double>(o.vmc_alpha)));
}

template <class T>
class IntLora final : public RequantLinear<T, IntLora<T>> {
  using Base = RequantLinear<T, IntLora<T>>;
  friend Base;

 public:
  IntLora(const std::string& name, const Tensor& w, const IntLoraOptions& opts, int rank, Rng& rng)
      : Base(name, w.shape[1], w.shape[0], rank, rng), shift_(opts.shift), key_(rng.next_u64()) {
    const int64_t in = this->in_, out = this->out_;
    levels_ = 1 << opts.spec.bits;
    // AQS + VMC: R row by row, then quantize W − R (W itself is not kept).
    vmc_.resize(static_cast<size_t>(out));
    Tensor d({out, in});
#pragma omp parallel
    {
      std::vector<float> raw(static_cast<size_t>(in));
#pragma omp for schedule(static)
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t c = 0; c < in; ++c) raw[c] = Rng::laplace_at(key_, o * in + c, kLaplaceB);
        vmc_[o] = vmc_factor(w.ptr() + o * in, raw.data(), in, opts);
        for (int64_t c = 0; c < in; ++c) d.data[o * in + c] = w.data[o * in + c] - vmc_[o] * raw[c];  // = r_at(o, c)
      }
    }
    Wq_ = quantize(d.ptr(), out, in, opts.spec);
    gs_ = Wq_.group_size();
    ng_ = Wq_.groups_per_row();
    if (!shift_) init_second_quantizer(opts.spec.bits);
  }

  std::vector<Param<T>> trainable() override {
    std::vector<Param<T>> p;
    this->lora_params(p);
    return p;
  }

  // MUL's frozen second quantizer is state: a checkpoint or adapter restores it exactly.
  std::vector<Param<T>> state() override {
    if (shift_) return {};
    const int64_t out = this->out_;
    return {{this->name_ + ".intlora_ubar_scale", sbar_.data(), nullptr, out, {out}},
            {this->name_ + ".intlora_ubar_zero", zbar_.data(), nullptr, out, {out}}};
  }

  Deployed merge() const override {
    check_state();
    const int64_t in = this->in_, out = this->out_;
    std::vector<int32_t> p(static_cast<size_t>(out * in));
    std::vector<float> row_scale(static_cast<size_t>(out));
    int64_t inexact = 0;
    this->for_each_row([&](int64_t o, const T* ba) {
      int64_t rounded = 0;
      if (shift_) rounded = merge_shift_row(o, ba, p.data() + o * in, &row_scale[o]);
      else merge_mul_row(o, ba, p.data() + o * in, &row_scale[o]);
#pragma omp atomic
      inexact += rounded;
    });
    Deployed dep;
    dep.planes = planes_from_integers(p.data(), row_scale.data(), out, in);
    dep.inexact = inexact;
    return dep;
  }

  const char* method() const override { return shift_ ? "intlora-shift" : "intlora-mul"; }

  // The zero-weight defect, measured: how many W_int are 0, and how much of the learned update
  // B·A falls on them (Σ (B·A)² there and everywhere) — the part of the update the merge drops.
  std::vector<std::pair<std::string, double>> stats() const override {
    const int64_t in = this->in_;
    std::vector<double> zeros(static_cast<size_t>(this->out_)), lost(zeros.size()), all(zeros.size());
    this->for_each_row([&](int64_t o, const T* ba) {
      for (int64_t c = 0; c < in; ++c) {
        const double d = static_cast<double>(ba[c]) * static_cast<double>(ba[c]);
        all[o] += d;
        if (w_int(o, c) == 0) zeros[o] += 1, lost[o] += d;
      }
    });
    double z = 0, l = 0, a = 0;
    for (size_t o = 0; o < zeros.size(); ++o) z += zeros[o], l += lost[o], a += all[o];  // fixed order
    return {{"zero_weights", z},
            {"weights", static_cast<double>(this->out_ * in)},
            {"update_sq_on_zero_weights", l},
            {"update_sq", a}};
  }

 private:
  // One element of MLA and its rounding.
  struct Elem {
    int32_t wi;   // W_int
    T u;          // U = s + (R + BA)/W_int'
    T t;          // MUL: U/s̄   SHIFT: log2(|U| + ε)
    T r;          // round(t) (frozen offset under the STE probe)
    int8_t side;  // MUL: clamp side (0 inside, ±1 clipped)   SHIFT: sign(U)
    T w;          // W'
  };

  // R[o, c], identical wherever it is needed (construction, every pass).
  float r_at(int64_t o, int64_t c) const { return vmc_[o] * Rng::laplace_at(key_, o * this->in_ + c, kLaplaceB); }

  // W_int and s of (o, c): q − z and Δ, or on the zero-free grid 2q − (L−1) and Δ/2.
  int32_t w_int(int64_t o, int64_t c) const {
    const int32_t q = static_cast<int32_t>(Wq_.code(o, c));
    if (Wq_.spec.zero_free) return 2 * q - (levels_ - 1);
    return q - static_cast<int32_t>(Wq_.offset(o, c / gs_));
  }
  float s_at(int64_t o, int64_t c) const {
    const float s = Wq_.scale[o * ng_ + c / gs_];
    return Wq_.spec.zero_free ? 0.5f * s : s;
  }

  // The MUL second quantizer of U at B·A = 0 (what the reference computes at its first forward).
  void init_second_quantizer(int bits) {
    const int64_t in = this->in_, out = this->out_;
    sbar_.resize(static_cast<size_t>(out));
    zbar_.resize(static_cast<size_t>(out));
    QuantSpec u_spec;
    u_spec.bits = bits;
    u_spec.mse_search = true;
#pragma omp parallel
    {
      std::vector<float> u(static_cast<size_t>(in));
#pragma omp for schedule(static)
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t c = 0; c < in; ++c) {
          const int32_t wi = w_int(o, c);
          u[c] = s_at(o, c) + r_at(o, c) / static_cast<float>(wi == 0 ? 1 : wi);
        }
        float s, z;
        choose_range(u.data(), in, u_spec, &s, &z);
        sbar_[o] = static_cast<T>(s);
        zbar_[o] = static_cast<T>(z);
      }
    }
  }

  // Calls f(c, elem) for every column of row o, given ba[c] = (B·A)[o, c]; f may overwrite ba[c].
  template <class F>
  void for_each_elem(int64_t o, const T* ba, F&& f) const {
    const int64_t in = this->in_;
    const T lmax = static_cast<T>(levels_ - 1);
    for (int64_t c = 0; c < in; ++c) {
      const int64_t idx = o * in + c;
      Elem e;
      e.wi = w_int(o, c);
      const T wi = static_cast<T>(e.wi);
      e.u = static_cast<T>(s_at(o, c)) + (static_cast<T>(r_at(o, c)) + ba[c]) / (e.wi == 0 ? T(1) : wi);
      if (!shift_) {
        e.t = e.u / sbar_[o];
        e.r = this->ste_round(idx, e.t);
        const T q = e.r + zbar_[o];
        e.side = this->ste_decide(idx, q < 0 ? -1 : q > lmax ? 1 : 0);
        const T uint = (e.side == 0 ? q : e.side < 0 ? T(0) : lmax) - zbar_[o];
        e.w = sbar_[o] * (uint * wi);
      } else {
        e.side = this->ste_decide(idx, e.u > 0 ? 1 : e.u < 0 ? -1 : 0);
        e.t = std::log2(std::fabs(e.u) + static_cast<T>(kLog2Eps));
        e.r = this->ste_round(idx, e.t);
        e.w = static_cast<T>(e.side) * std::exp2(e.r) * wi;
      }
      f(c, e);
    }
  }

  void effective_row(int64_t o, const T* ba, T* w) const {
    for_each_elem(o, ba, [&](int64_t c, const Elem& e) { w[c] = e.w; });
  }

  // g: dL/dW'[o, :] in, dL/d(BA)[o, :] out; w: W'[o, :] out (may alias ba).
  void backward_row(int64_t o, const T* ba, T* g, T* w) const {
    for_each_elem(o, ba, [&](int64_t c, const Elem& e) {
      w[c] = e.w;
      if (e.wi == 0) {
        g[c] = T(0);  // W' = 0·…: the adapter cannot move this weight (the zero-weight defect)
      } else if (!shift_) {
        if (e.side != 0) g[c] = T(0);  // U clipped by the second quantizer
      } else {
        const T sign2 = static_cast<T>(e.side * e.side);
        g[c] *= sign2 * std::exp2(e.r) / (std::fabs(e.u) + static_cast<T>(kLog2Eps));
      }
    });
  }

  // P[c] = U_int·W_int and the row scale s̄.
  void merge_mul_row(int64_t o, const T* ba, int32_t* p, float* scale) const {
    for_each_elem(o, ba, [&](int64_t c, const Elem& e) {
      const int32_t uint = static_cast<int32_t>(e.side == 0 ? e.r + zbar_[o] : e.side < 0 ? T(0) : T(levels_ - 1)) -
                           static_cast<int32_t>(zbar_[o]);
      p[c] = uint * e.wi;
    });
    *scale = static_cast<float>(sbar_[o]);
  }

  // P[c] = sign·W_int·2^(k − k_base), scale 2^k_base; returns how many elements were rounded.
  int64_t merge_shift_row(int64_t o, const T* ba, int32_t* p, float* scale) const {
    const int64_t in = this->in_;
    std::vector<int32_t> k(static_cast<size_t>(in)), m(static_cast<size_t>(in));
    int32_t kmin = INT32_MAX, kmax = INT32_MIN, mmax = 0;
    for_each_elem(o, ba, [&](int64_t c, const Elem& e) {
      k[c] = static_cast<int32_t>(e.r);
      m[c] = e.side * e.wi;
      if (m[c] == 0) return;
      kmin = std::min(kmin, k[c]);
      kmax = std::max(kmax, k[c]);
      mmax = std::max(mmax, std::abs(m[c]));
    });
    if (mmax == 0) {  // an all-zero row
      std::fill(p, p + in, 0);
      *scale = 1.0f;
      return 0;
    }
    const int mbits = 32 - __builtin_clz(static_cast<uint32_t>(mmax));  // bits of the largest |m|
    const int32_t kbase = std::max(kmin, kmax + mbits - 29);            // keeps |P| < 2^29
    int64_t rounded = 0;
    for (int64_t c = 0; c < in; ++c) {
      if (m[c] == 0) {
        p[c] = 0;
      } else if (k[c] >= kbase) {
        p[c] = m[c] * (1 << (k[c] - kbase));
      } else {
        p[c] = static_cast<int32_t>(std::round(std::ldexp(static_cast<double>(m[c]), k[c] - kbase)));
        ++rounded;
      }
    }
    *scale = std::ldexp(1.0f, kbase);
    return rounded;
  }

  void check_state() const {
    if (shift_) return;
    for (int64_t o = 0; o < this->out_; ++o)
      QT_CHECK(std::isfinite(static_cast<double>(sbar_[o])) && sbar_[o] > T(0) && zbar_[o] >= T(0) &&
                   zbar_[o] <= T(levels_ - 1) && zbar_[o] == std::round(zbar_[o]),
               "{}: the IntLoRA second quantizer of row {} is invalid (scale {}, zero {}): corrupt checkpoint?",
               this->name_, o, static_cast<double>(sbar_[o]), static_cast<double>(zbar_[o]));
  }

  Tensor base_float() const {  // W ≈ s·W_int + R, the base the adapter starts from
    Tensor t({this->out_, this->in_});
    for (int64_t o = 0; o < this->out_; ++o)
      for (int64_t c = 0; c < this->in_; ++c)
        t.data[o * this->in_ + c] = s_at(o, c) * static_cast<float>(w_int(o, c)) + r_at(o, c);
    return t;
  }
  int64_t base_bytes() const {
    return Wq_.bytes() + static_cast<int64_t>(vmc_.size() * sizeof(float) + (sbar_.size() + zbar_.size()) * sizeof(T));
  }

  bool shift_;
  uint64_t key_;            // R's counter-based key
  int levels_ = 0;          // L = 2^b
  QuantMatrix Wq_;          // W − R quantized: codes, s, z
  int64_t gs_ = 0, ng_ = 0;
  Buffer<float> vmc_;       // f_o per row
  Buffer<T> sbar_, zbar_;   // MUL: s̄, z̄ per row (frozen)
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_intlora(const std::string& name, const Tensor& w, const IntLoraOptions& opts,
                                        int rank, Rng& rng) {
  check_weight(name, w);
  QT_CHECK(opts.vmc == "abs-max" || opts.vmc == "std", "unknown --vmc '{}' (valid: abs-max, std)", opts.vmc);
  QT_CHECK(std::isfinite(opts.vmc_alpha) && opts.vmc_alpha > 0, "--vmc-alpha must be a positive number, got {}",
           opts.vmc_alpha);
  QT_CHECK(opts.spec.bits <= 8, "intlora: --bits {} is not supported (valid: 2..8)", opts.spec.bits);
  return std::make_unique<IntLora<T>>(name, w, opts, rank, rng);
}

template std::unique_ptr<Linear<float>> make_intlora<float>(const std::string&, const Tensor&, const IntLoraOptions&,
                                                            int, Rng&);
template std::unique_ptr<Linear<double>> make_intlora<double>(const std::string&, const Tensor&,
                                                              const IntLoraOptions&, int, Rng&);

}  // namespace qtune
