// adapters/ste_probe.h — freezing the rounding of a fake-quant forward, for gradient checks.
//
// A fake-quant forward rounds (round(v), clamps, the exponent round(log2|U|)); its backward is the
// straight-through estimator (STE): the derivative of the forward with every rounding offset
// round(t) − t held constant and every discrete decision (clamp side, sign) held fixed. A
// finite-difference check of that backward needs exactly that function:
//   record — the normal forward, remembering each element's offset and decision;
//   replay — the forward with them frozen: smooth in the parameters, and its true derivative IS
//            the STE gradient the backward computes.
// Test-only; off by default and free when off.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace qtune {

enum class SteMode { off, record, replay };

class SteProbed {
 public:
  virtual ~SteProbed() = default;
  void set_ste_mode(SteMode m) { ste_mode_ = m; }
  SteMode ste_mode() const { return ste_mode_; }

 protected:
  // Call before a pass over `n` elements (outside parallel regions).
  void ste_prepare(int64_t n) const {
    if (ste_mode_ == SteMode::record) {
      offsets_.assign(static_cast<size_t>(n), 0.0);
      decisions_.assign(static_cast<size_t>(n), 0);
    }
    if (ste_mode_ == SteMode::replay) QT_ASSERT(offsets_.size() == static_cast<size_t>(n));
  }
  // round(t) half away from zero; in replay, t + the recorded offset (the STE's identity).
  template <class T>
  T ste_round(int64_t idx, T t) const {
    if (ste_mode_ == SteMode::replay) return t + static_cast<T>(offsets_[idx]);
    const T r = std::round(t);
    if (ste_mode_ == SteMode::record) offsets_[idx] = static_cast<double>(r - t);
    return r;
  }
  // A discrete decision d (clamp side, sign); in replay, the recorded one.
  int8_t ste_decide(int64_t idx, int8_t d) const {
    if (ste_mode_ == SteMode::replay) return decisions_[idx];
    if (ste_mode_ == SteMode::record) decisions_[idx] = d;
    return d;
  }

 private:
  SteMode ste_mode_ = SteMode::off;
  // Written by record passes from several threads at distinct indices; sized by ste_prepare.
  mutable std::vector<double> offsets_;
  mutable std::vector<int8_t> decisions_;
};

}  // namespace qtune
