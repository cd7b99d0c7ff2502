// adapters/loldu_branch.h — LoLDU's adapter (docs/METHODS.md §7), shared by the three LoLDU slots
// (loldu, qloldu: loldu.cpp; qaloldu: qaloldu.cpp).
//
//   W_res = W_base − σ0·P·L_r·diag(z0)·Ū_r        W_eff = W_res + σ·P·L_r·diag(z)·Ū_r
//
// The residual is never stored as its own dense matrix: the slot keeps its frozen base (float, or
// b-bit) and the adapter applies the DIFFERENCE from the start,
//
//   W_eff = W_base + P·L_r·diag(c)·Ū_r,    c_j = σ·z_j − σ0·z0_j,
//
// which is W_res + σ·P·L_r·diag(z)·Ū_r exactly in real arithmetic, costs no dense memory beyond
// the base, makes the adapted model start bit for bit at the base (c = 0 at init: σ = σ0, z = z0),
// and builds W_res from the very z0 that is stored (z0 is the slot's state; the adapter file
// holds it). Trainable: z [r] and, with --loldu-train-scale, σ (init σ0 = α/r). L_r, Ū_r, P are
// frozen and rebuilt from the base (adapters/ldu.h), never trained or saved.
//
// Forward and backward never form the out×in update:
//   t = x·Ū_rᵀ [n, r]    y += (t ⊙ c)·(P·L_r)ᵀ      (P·L_r: L_r's rows put back in W's order)
//   s = dy·(P·L_r) [n, r]    a_j = Σ_t t_tj·s_tj
//   ∂L/∂z_j = σ·a_j    ∂L/∂σ = Σ_j z_j·a_j    ∂L/∂x += (s ⊙ c)·Ū_r
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/ldu.h"
#include "adapters/linear.h"
#include "core/buffer.h"

namespace qtune {

struct LolduConfig {
  int rank = 8;                  // resolved (1..min(out, in))
  float sigma0 = 1.0f;           // α/r
  std::string init = "uniform";  // z0: lu | uniform | constant | normal
  bool train_scale = false;      // σ trains too
};

template <class T>
class LolduBranch {
 public:
  // Decomposes w [out, in] (ldu_slice) and draws z0 from rng.
  LolduBranch(const Tensor& w, const LolduConfig& cfg, Rng& rng);

  // y[n, out] += (t ⊙ c)·(P·L_r)ᵀ, t = x·Ū_rᵀ
  void forward_add(const T* x, T* y, int64_t n);
  // Accumulates dz, dσ and (if dx) dx += (s ⊙ c)·Ū_r.
  void backward(const T* x, const T* dy, T* dx, int64_t n);
  // "<name>.loldu_z" [r] (and "<name>.loldu_scale" [1] with train_scale).
  void params(const std::string& name, std::vector<Param<T>>& out);
  // "<name>.loldu_z0" [r]: the init the residual is built with.
  void state(const std::string& name, std::vector<Param<T>>& out);

  // row[0..in) = (P·L_r·diag(c)·Ū_r)[o, :], summed j = 0..r−1 by the calling thread (deterministic:
  // qaloldu's forward, backward and merge all use it).
  void delta_row(int64_t o, T* row) const;
  // dz, dσ from g = dL/dΔ for rows [r0, r0 + nr) of the update Δ = P·L_r·diag(c)·Ū_r:
  // ∂L/∂c_j = Σ_o (P·L_r)[o, j]·(g·Ū_rᵀ)[o, j].
  void update_grads(const T* g, int64_t r0, int64_t nr);
  // w[out, in] += P·L_r·diag(c)·Ū_r (float merge).
  void add_delta(float* w) const;

  int rank() const { return rank_; }
  int64_t zero_pivots() const { return zero_pivots_; }
  // L_r, Ū_r, P, z, z0, σ: the adapter's memory (frozen parts included).
  int64_t bytes() const;
  int64_t trainable_count() const { return rank_ + (train_scale_ ? 1 : 0); }

 private:
  T coef(int j) const { return sigma_[0] * z_[j] - static_cast<T>(sigma0_) * z0_[j]; }

  int64_t in_, out_;
  int rank_;
  float sigma0_;
  bool train_scale_;
  int64_t zero_pivots_ = 0;
  std::vector<int32_t> perm_;  // [out]
  Buffer<T> pl_, ub_;          // P·L_r [out, r], Ū_r [r, in]
  Buffer<T> z_, dz_, z0_;      // [r]
  Buffer<T> sigma_, dsigma_;   // [1]
  Buffer<T> t_, s_;            // scratch [n, r], grown on demand
};

}  // namespace qtune
