// adapters/gse_slot.cpp — operand rounding and cached weight orientations (contract: gse_slot.h).
#include "adapters/gse_slot.h"

#include "core/hash.h"
#include "core/rng.h"

namespace qtune {

static_assert(static_cast<int>(kernels::GseRole::count) <= 32, "GseArith::grad keys roles in 5 bits");

GseArith::GseArith(const GseSpec& spec, const std::string& slot_name)
    : spec_(spec), key_(fingerprint(slot_name.data(), slot_name.size())) {
  validate(spec_);
}

GseSpec GseArith::nearest() const {
  GseSpec s = spec_;
  s.rounding = GseRounding::nearest;
  s.seed = 0;
  return s;
}

GseSpec GseArith::grad(const Context& ctx, kernels::GseRole role) const {
  GseSpec s = spec_;
  if (s.rounding == GseRounding::stochastic)
    s.seed = Rng::hash(ctx.seed ^ key_, ctx.step * 32 + static_cast<uint64_t>(role));
  return s;
}

GseWeight::GseWeight(const float* W, int64_t out, int64_t in, const GseSpec& spec) {
  GseSpec s = spec;
  s.rounding = GseRounding::nearest;
  gse_encode(W, out, in, s, w);
  kernels::gse_encode_t(W, out, in, s, wt);
}

Tensor GseWeight::decoded() const {
  Tensor t({w.rows, w.cols});
  gse_decode(w, t.ptr());
  return t;
}

}  // namespace qtune
