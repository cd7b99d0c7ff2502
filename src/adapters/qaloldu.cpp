// adapters/qaloldu.cpp — method "qaloldu" (loldu.h): LoLDU on a b-bit base, trained through the
// fake quantization of the merged weight on the base's own grid, so it merges exactly.
//
// Per row o (RequantLinear supplies Δ[o, :] = LolduBranch::delta_row, the tiling and the GEMMs),
// with k = q − z the base integer, s the base's scale (frozen), G = dL/dW':
//   forward    v = k + Δ/s    n = clamp(round(v), lo, hi)    W'[o, c] = s·n
//   backward   dL/dΔ = G ⊙ inside                            (STE; ∂W'/∂Δ = s·(1/s))
//              dz, dσ from dL/dΔ (LolduBranch::update_grads)
//   merge      codes n + z in the base's format and scales: exactly the forward's integers.
// At init Δ = 0, so v = k exactly and the slot is its base bit for bit.
#include <algorithm>
#include <cmath>

#include "adapters/loldu.h"
#include "adapters/methods.h"  // check_weight
#include "adapters/requant_linear.h"
#include "core/error.h"

namespace qtune {

namespace {

template <class T>
class Qaloldu final : public RequantLinear<T, Qaloldu<T>> {
  using Base = RequantLinear<T, Qaloldu<T>>;
  friend Base;

 public:
  Qaloldu(const std::string& name, const Tensor& w, const QuantSpec& spec, const LolduConfig& cfg, Rng& rng)
      : Base(name, w.shape[1], w.shape[0], /*rank=*/0, rng),
        branch_(w, cfg, rng),
        Wq_(quantize(w.ptr(), w.shape[0], w.shape[1], spec)) {
    gs_ = Wq_.group_size();
    ng_ = Wq_.groups_per_row();
  }

  std::vector<Param<T>> trainable() override {
    std::vector<Param<T>> p;
    branch_.params(this->name_, p);
    return p;
  }
  std::vector<Param<T>> state() override {
    std::vector<Param<T>> p;
    branch_.state(this->name_, p);
    return p;
  }

  Deployed merge() const override {
    QuantMatrix m = Wq_;
    this->for_each_row([&](int64_t o, const T* delta) {
      for_each_elem(o, delta, [&](int64_t c, T, const Elem& e) {
        m.set_code(o, c, static_cast<uint32_t>(static_cast<int32_t>(e.n) + offset(o, c / gs_)));
      });
    });
    Deployed d;
    d.planes.push_back(std::move(m));
    return d;
  }

  std::vector<std::pair<std::string, double>> stats() const override {
    return {{"loldu_zero_pivots", static_cast<double>(branch_.zero_pivots())}};
  }
  const char* method() const override { return "qaloldu"; }
  int64_t adapter_bytes() const override { return branch_.bytes(); }

 private:
  struct Elem {
    T v;          // k + Δ/s
    T rv;         // round(v) (frozen offset under the STE probe)
    T n;          // clamp(rv, lo, hi)
    bool inside;  // lo <= rv <= hi
  };

  // RequantLinear's hooks: the delta and its gradient come from the LoLDU branch.
  void delta_row(int64_t o, T* row) const { branch_.delta_row(o, row); }
  void factor_grads(const T* ddelta, int64_t r0, int64_t nr) { branch_.update_grads(ddelta, r0, nr); }
  void check_state() const {}

  void effective_row(int64_t o, const T* delta, T* w) const {
    for_each_elem(o, delta, [&](int64_t c, T s, const Elem& e) { w[c] = s * e.n; });
  }

  // g: dL/dW'[o, :] in, dL/dΔ[o, :] out; w: W'[o, :] out (may alias delta).
  void backward_row(int64_t o, const T* delta, T* g, T* w) {
    for_each_elem(o, delta, [&](int64_t c, T s, const Elem& e) {
      w[c] = s * e.n;
      if (!e.inside) g[c] = T(0);
    });
  }

  int32_t offset(int64_t o, int64_t k) const { return static_cast<int32_t>(Wq_.offset(o, k)); }

  // f(c, s, elem) for every column c of row o, given delta[c] = Δ[o, c]: the one place the
  // integers are computed (forward, backward, merge). f may overwrite delta[c].
  template <class F>
  void for_each_elem(int64_t o, const T* delta, F&& f) const {
    const int64_t in = this->in_;
    const int bits = Wq_.spec.bits;
    for (int64_t k = 0; k < ng_; ++k) {
      const int64_t c0 = k * gs_, c1 = std::min(in, c0 + gs_);
      const int32_t off = offset(o, k);
      const T s = static_cast<T>(Wq_.scale[o * ng_ + k]);
      const T hi = Wq_.spec.symmetric ? static_cast<T>((1 << (bits - 1)) - 1) : static_cast<T>((1 << bits) - 1 - off);
      const T lo = Wq_.spec.symmetric ? -hi : -static_cast<T>(off);
      for (int64_t c = c0; c < c1; ++c) {
        Elem e;
        e.v = static_cast<T>(static_cast<int32_t>(Wq_.code(o, c)) - off) + delta[c] / s;
        e.rv = this->ste_round(o * in + c, e.v);
        const int8_t side = this->ste_decide(o * in + c, e.rv < lo ? -1 : e.rv > hi ? 1 : 0);
        e.inside = side == 0;
        e.n = side == 0 ? e.rv : (side < 0 ? lo : hi);
        f(c, s, e);
      }
    }
  }

  Tensor base_float() const {
    Tensor t({this->out_, this->in_});
    Wq_.dequantize_rows(0, this->out_, t.ptr());
    return t;
  }
  int64_t base_bytes() const { return Wq_.bytes() + branch_.bytes(); }

  LolduBranch<T> branch_;
  QuantMatrix Wq_;  // the base: codes, scales, zeros (all frozen)
  int64_t gs_ = 0, ng_ = 0;
};

}  // namespace

template <class T>
std::unique_ptr<Linear<T>> make_qaloldu(const std::string& name, const Tensor& w, const QuantSpec& spec,
                                        const LolduConfig& cfg, Rng& rng) {
  check_weight(name, w);
  QT_CHECK(!spec.zero_free, "qaloldu: the zero-free grid is an IntLoRA option");
  return std::make_unique<Qaloldu<T>>(name, w, spec, cfg, rng);
}

template std::unique_ptr<Linear<float>> make_qaloldu<float>(const std::string&, const Tensor&, const QuantSpec&,
                                                            const LolduConfig&, Rng&);
template std::unique_ptr<Linear<double>> make_qaloldu<double>(const std::string&, const Tensor&, const QuantSpec&,
                                                              const LolduConfig&, Rng&);

}  // namespace qtune
