// adapters/qalora.h — method "qalora": QA-LoRA as in EfficientDM (docs/METHODS.md §3).
//
// The base stays b-bit (W_u, per-row scale s_w0 and zero z_w from quant/'s quantize()); a float
// low-rank delta B·A is added and the sum is RE-QUANTIZED with a learned per-row scale s_w in
// every forward, so training sees exactly the integer weight it will deploy:
//
//   W0 = s_w0·(W_u − z_w)                       FIXED (s_w0 = the base's initial scale)
//   v  = (W0 + B·A) / s_w                       s_w trainable, init s_w0
//   n  = clamp(round(v), lo, hi)                lo = −z_w, hi = 2^b − 1 − z_w (asymmetric)
//   Ŵ  = s_w·n                                  (= s_w·(clamp(round(v) + z_w, 0, 2^b−1) − z_w))
//   y  = x·Ŵᵀ
//
// A [r, in] Kaiming-uniform a=√5 (U(−1/√in, 1/√in)), B [out, r] zeros, no α/r factor.
// Trainable: "<name>.lora_a", "<name>.lora_b", "<name>.qalora_scale" [out, groups]. The scale is
// trained as a multiplier of its initial value, s_w = s_w0·u (u starts at 1), at its own learning
// rate --scale-lr × --lr without weight decay: Adam moves every element by about its learning
// rate whatever the gradient's size, and s_w spans orders of magnitude across rows (at 8 bits
// some are ~1e-4), so an absolute rate either freezes the large scales or drives the small ones
// negative. Training u makes the steps relative — EfficientDM's 1e-6 on scales of ~1e-3 is about
// 0.1% per step, which --scale-lr 0.1 at --lr 1e-2 matches. ∂L/∂u = s_w0·∂L/∂s_w.
//
// Interpretation (the reference, EfficientDM quant_layer.py QuantModule_intnlora): W0 is the
// dequantized base with its OWN frozen scale (SimpleDequantizer.delta, requires_grad=False);
// only the re-quantizer's delta trains. So W0 does not move when s_w trains, and the gradient is
// autograd's through Ŵ = s_w·clamp(round_ste((W0 + BA)/s_w)) with W0 constant (STE, LSQ):
//   ∂Ŵ/∂(BA) = 1                  inside the clamp range (lo <= round(v) <= hi, inclusive), else 0
//   ∂Ŵ/∂s_w  = round(v) − v       inside    (= round(v) + s_w·∂v/∂s_w, ∂v/∂s_w = −v/s_w)
//            = n (= q_clip − z_w) clipped
// With lsq_grad_scale, ∂L/∂s_w is multiplied by 1/√(N·Qp): N = the number of weights sharing that
// scale (in, or the group size), Qp = 2^b − 1 (asymmetric) or 2^(b−1) − 1 (symmetric).
//
// Merge: the deployed integers are EXACTLY the forward's n (same code computes both), stored as a
// QuantMatrix in the base format (same bits/group/symmetry, scale = learned s_w, zero = z_w):
// the merged model's forward equals the training fake-quant forward, integers bit-exact.
// The usual merge formula (docs/METHODS.md §3.5) W_u' = clamp(W_u + round(B·A/s_w), 0, 2^b−1) is the same integer
// only while s_w = s_w0 (then v = (W_u − z_w) + BA/s_w, an integer plus BA/s_w; the two differ
// only where BA/s_w is within float rounding of a half-integer, or exactly at a half-integer
// whose sign differs from that of v). Once s_w has moved, v = (W_u − z_w)·s_w0/s_w + BA/s_w and
// that formula no longer equals the forward (already with B·A = 0: round((W_u − z_w)·
// s_w0/s_w) ≠ W_u − z_w as soon as |(W_u − z_w)·(s_w0/s_w − 1)| > 1/2), so it is not used.
//
// Per-group scales and the symmetric format work the same way (lo = −(2^(b−1)−1), hi = −lo,
// z_w = 0); the reference method is the per-row asymmetric case (docs/METHODS.md §3.5).
//
// The STE checks (tests/adapters) freeze round(v) − v and the clamp side through SteProbed.
#pragma once
#include <memory>
#include <string>

#include "adapters/linear.h"

namespace qtune {

// Non-targeted slots get make_qlora without an adapter (adapters/methods.h). scale_lr: the optimizer's
// learning-rate multiplier for s_w (Param::lr_scale; no weight decay on it).
template <class T>
std::unique_ptr<Linear<T>> make_qalora(const std::string& name, const Tensor& w, const QuantSpec& spec, int rank,
                                       Rng& rng, float scale_lr = 0.1f, bool lsq_grad_scale = false);

// Quantization-aware training (the QAT baseline of EfficientDM): the same re-quantizing forward
// and exact merge, with the delta a full trainable [out, in] tensor "<name>.qat_delta" (from 0,
// no weight decay) instead of B·A — the latent weight W0 + D trains behind the fake quantizer.
template <class T>
std::unique_ptr<Linear<T>> make_qat(const std::string& name, const Tensor& w, const QuantSpec& spec,
                                    float scale_lr = 0.1f);

}  // namespace qtune
