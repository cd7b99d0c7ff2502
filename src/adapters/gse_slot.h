// adapters/gse_slot.h — a slot's GEMMs in GSE-INT (--gemm gse:..., GSQ-Tuning; docs/METHODS.md §9):
// the rounding of each operand, and a frozen weight cached in the two orientations its products
// reduce over. The products themselves are kernels::gse_gemm on operands encoded by
// kernels::gse_operand / gse_operand_t (kernels/gse_ops.h).
//
// Which operands round how. Forward operands (activations, weights, LoRA's factors, h = x·Aᵀ)
// round to nearest; gradients (dy, g = s·dy·B, as is and transposed) follow the spec: nearest,
// or stochastic with the key hash(run seed ^ slot key, step·32 + operand role) — unbiased
// (E[x̂] = x) where nearest rounding would bias small gradients towards 0, and a pure function of
// (seed, micro-batch, slot, operand), so a run is reproducible and --resume continues it exactly.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "adapters/linear.h"
#include "core/error.h"
#include "kernels/gse_ops.h"
#include "quant/gse.h"

namespace qtune {

class GseArith {
 public:
  GseArith(const GseSpec& spec, const std::string& slot_name);
  const GseSpec& spec() const { return spec_; }
  GseSpec nearest() const;  // forward operands
  GseSpec grad(const Context& ctx, kernels::GseRole role) const;  // gradient operands

 private:
  GseSpec spec_;
  uint64_t key_;  // fingerprint of the slot's name
};

// A frozen weight W [out, in] in GSE form, both orientations encoded once (nearest rounding):
// the forward reduces over in, the backward to the input over out.
struct GseWeight {
  GseMatrix w;   // [out, in], groups along in:  y  = x·Wᵀ
  GseMatrix wt;  // [in, out], groups along out: dx = dy·W
  GseWeight(const float* W, int64_t out, int64_t in, const GseSpec& spec);
  int64_t bytes() const { return kernels::gse_bytes(w) + kernels::gse_bytes(wt); }
  // W as the forward sees it: decode(w) [out, in].
  Tensor decoded() const;
};

// GSE GEMMs run in float; the double instantiation of a slot exists for finite-difference
// checks of the float arithmetic. Slots refuse --gemm gse when T is double (check_gse_scalar),
// so these casts only ever see float.
template <class T>
void check_gse_scalar(const std::string& name, bool gse) {
  if constexpr (!std::is_same_v<T, float>)
    QT_CHECK(!gse, "{}: --gemm gse runs in float (double slots are for gradient checks)", name);
}
template <class T>
const float* gse_f(const T* p) {
  if constexpr (std::is_same_v<T, float>) return p;
  QT_ASSERT(false);
  return nullptr;
}
template <class T>
float* gse_f(T* p) {
  if constexpr (std::is_same_v<T, float>) return p;
  QT_ASSERT(false);
  return nullptr;
}

}  // namespace qtune
