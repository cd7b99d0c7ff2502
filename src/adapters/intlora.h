// adapters/intlora.h — methods "intlora-mul" and "intlora-shift": IntLoRA (docs/METHODS.md §4).
//
// Construction (once, from the float W [out, in]; W is not kept):
//   R[o, c] = f_o · Laplace(0, 0.5)          the auxiliary matrix (AQS), regenerated on the fly
//                                            from a per-slot key (core/rng.h laplace_at), never stored
//   f_o     = (Wmax_o / (Rmin_o + 1e-8))^α   VMC, abs-max rule (the reference code):
//             Wmax_o = max(|max_c W|, |min_c W|), Rmin_o = min(|max_c R|, |min_c R|) of the raw draws
//           = (σ_W,o / (σ_R,o + 1e-8))^α     VMC, std rule (the paper), per row
//   W − R   → b-bit quantizer (docs/METHODS.md §1; MSE search by default): codes, s (per row or group), z
//   W_int   = q − z                          (zero-free grid: 2q − (L−1), odd, with s = Δ/2)
// Every pass (MLA), with W_int' = W_int with zeros replaced by 1:
//   U   = s + (R + B·A) ⊘ W_int'
//   MUL:   U_int = clamp(round(U / s̄) + z̄, 0, 2^b − 1) − z̄      s̄, z̄ per row: a second b-bit
//          W'    = s̄ · (U_int ⊙ W_int)                          MSE quantizer of U at B·A = 0, frozen
//   SHIFT: k     = round(log2(|U| + 1e-16));   W' = sign(U) ⊙ 2^k ⊙ W_int
//   y = x·W'ᵀ.   A [r, in] Kaiming-uniform a=√5, B [out, r] zeros; no α/r factor.
// Gradients (STE: round is the identity; clamp passes gradient only inside):
//   MUL:   dL/d(BA) = dL/dW' ⊙ [W_int ≠ 0] ⊙ [U inside its clamp]
//   SHIFT: dL/d(BA) = dL/dW' ⊙ [W_int ≠ 0] ⊙ 2^k / (|U| + 1e-16)
// Merge (exact, no PTQ):
//   MUL:   P = U_int ⊙ W_int (int32; |P| ≤ (2^b−1)·max|W_int|), weight = s̄·P per row
//   SHIFT: per row, P = sign·W_int·2^(k − k_base) with k_base = the row's smallest exponent
//          (raised only if the row would need more than 29 bits: those elements are rounded and
//          counted in Deployed::inexact), weight = 2^k_base·P
//   → quant/int_planes.h planes (8-bit when P fits int8, else 16-bit, else two 16-bit planes).
// Non-targeted slots: make_qlora without an adapter (the b-bit base of W itself, no R).
#pragma once
#include <memory>
#include <string>

#include "adapters/linear.h"

namespace qtune {

struct IntLoraOptions {
  bool shift = false;       // false: MUL, true: SHIFT
  QuantSpec spec;           // the base quantizer (bits, group, symmetric, mse_search, zero_free)
  std::string vmc = "abs-max";  // abs-max | std
  float vmc_alpha = 1.5f;
};

template <class T>
std::unique_ptr<Linear<T>> make_intlora(const std::string& name, const Tensor& w, const IntLoraOptions& opts,
                                        int rank, Rng& rng);

}  // namespace qtune
