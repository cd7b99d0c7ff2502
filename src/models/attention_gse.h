// models/attention_gse.h — causal grouped-query attention with its four products in GSE-INT
// (--gemm gse:... --gemm-attention; docs/METHODS.md §9). The contract of nn::attention_forward /
// attention_backward (nn/ops.h: shapes, causal mask, softmax saved in att, gradients
// accumulate), the arithmetic of gse_gemm (kernels/gse_gemm.h) for
//   scores  S = q_h·k_hᵀ        [T, hd]·[T, hd]ᵀ     reduce over hd
//   output  O = P·v_h           [T, T]·([hd, T])ᵀ    reduce over the keys
//   dP = dO·v_hᵀ,  dv_h += Pᵀ·dO,  dq_h += dZ·k_h,  dk_h += dZᵀ·q_h   (dZ: the softmax backward)
// Softmax, its backward and the scale 1/√hd stay float. Per (batch, head) the T×T products run
// whole (the causal half above the diagonal is computed and masked: zeros in P and dZ add
// nothing), one head per thread. It lives in models/ because nn/ knows no number formats.
#pragma once
#include <cstdint>

#include "adapters/gse_slot.h"

namespace qtune {

void attention_forward_gse(const float* q, const float* k, const float* v, float* out, float* att, int64_t B,
                           int64_t T, int64_t nh, int64_t nkv, int64_t hd, const GseArith& ar);

// `layer` keys the stochastic rounding of dO and dZ (with the step, batch row and head).
void attention_backward_gse(const float* dout, const float* q, const float* k, const float* v, const float* att,
                            float* dq, float* dk, float* dv, int64_t B, int64_t T, int64_t nh, int64_t nkv, int64_t hd,
                            const GseArith& ar, const Context& ctx, int layer);

}  // namespace qtune
