// adapters/loldu.h — the LoLDU methods (docs/METHODS.md §7; the adapter is loldu_branch.h):
//
//   loldu    float base:  y = x·W0ᵀ + (t ⊙ c)·(P·L_r)ᵀ                     merge: float (PTQ with --bits)
//   qloldu   b-bit base:  y = x·deq(W0q)ᵀ + (t ⊙ c)·(P·L_r)ᵀ               merge: float, then PTQ
//   qaloldu  b-bit base, the exact integer route: the merged weight is fake-quantized on the
//            base's own grid in every forward (scale s, zero z of each row/group, frozen),
//              W'[o, c] = s·clamp(round((q − z) + Δ[o, c]/s), lo, hi),   Δ = P·L_r·diag(c)·Ū_r
//            with the straight-through estimator (∂W'/∂Δ = 1 inside the clamp range, else 0), so
//            the deployed integers are exactly the forward's: merge = those codes, bit for bit.
// All three start exactly at their base (c = 0 at init). On a b-bit base the residual
// W_res = deq(W0q) − σ0·P·L_r·diag(z0)·Ū_r is held as the base's integers plus the frozen init
// term: quantizing W_res itself would round the starting point a second time.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "adapters/linear.h"
#include "adapters/loldu_branch.h"

namespace qtune {

// loldu (spec empty: float base) and qloldu (spec: the b-bit base).
template <class T>
std::unique_ptr<Linear<T>> make_loldu(const std::string& name, const Tensor& w, const std::optional<QuantSpec>& spec,
                                      const LolduConfig& cfg, Rng& rng);

// qaloldu.
template <class T>
std::unique_ptr<Linear<T>> make_qaloldu(const std::string& name, const Tensor& w, const QuantSpec& spec,
                                        const LolduConfig& cfg, Rng& rng);

}  // namespace qtune
