// adapters/methods.h — constructors of the method implementations, one per file
// (dense.cpp, lora.cpp, qlora.cpp, act_quant.cpp, int_linear.cpp; qalora.h and
// intlora.h declare theirs). Only factory.cpp and tests call these directly; models go through
// make_linear and make_inference_linear.
#pragma once
#include <memory>
#include <string>

#include "adapters/linear.h"

namespace qtune {

// `gemm` (full, lora, qlora): --gemm, the arithmetic of every product of the slot, forward and
// backward: float (the default) or GSE-INT (docs/METHODS.md §9; adapters/gse_slot.h; float only).

// method "full": W [out, in] trainable (grad dW) or frozen (non-targeted slots of lora).
template <class T>
std::unique_ptr<Linear<T>> make_dense(const std::string& name, const Tensor& w, bool trainable,
                                      const GemmMode& gemm = {});

// method "lora": frozen float W0 + low-rank branch.
template <class T>
std::unique_ptr<Linear<T>> make_lora(const std::string& name, const Tensor& w, int rank, float alpha, Rng& rng,
                                     const GemmMode& gemm = {});

// method "qlora": frozen b-bit W0 (quant/) + low-rank branch; with_adapter = false gives the
// frozen quantized linear of non-targeted slots (qlora, qalora, intlora-*), which merges to its
// QuantMatrix.
template <class T>
std::unique_ptr<Linear<T>> make_qlora(const std::string& name, const Tensor& w, const QuantSpec& spec,
                                      bool with_adapter, int rank, float alpha, Rng& rng, const GemmMode& gemm = {});

// int8 fake quantization of `inner`'s input. calib > 0: a static per-tensor scale calibrated on
// the first `calib` training micro-batches (state: "<name>.act_amax", "<name>.act_calib_left");
// calib == 0: the fixed static `scale`, or per token when scale == 0.
template <class T>
std::unique_ptr<Linear<T>> make_act_quant(const std::string& name, std::unique_ptr<Linear<T>> inner, int calib,
                                          float scale);

// `inner` with its parameter gradients made independent of how a batch is split over calls, MPI
// ranks and micro-batches: the backward runs one sample at a time (Context::samples) and adds each
// sample's gradient into a double sum (Param::sum; adapters/exact_grad.cpp).
template <class T>
std::unique_ptr<Linear<T>> make_exact_grad(std::unique_ptr<Linear<T>> inner);

// A deployed integer weight (planes summed), frozen; act_bits 8 runs int8 activations through
// the integer GEMM with the static `act_scale` (0 = per token), act_bits 0 float activations.
template <class T>
std::unique_ptr<Linear<T>> make_int_linear(const std::string& name, std::vector<QuantMatrix> planes, int act_bits,
                                           float act_scale);

// Shape check shared by the constructors: w must be a 2-D [out, in] weight.
void check_weight(const std::string& name, const Tensor& w);

}  // namespace qtune
