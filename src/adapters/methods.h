// adapters/methods.h — constructors of the method implementations, one per file
// (dense.cpp, lora.cpp, qlora.cpp). Only factory.cpp and tests call these directly;
// models go through make_linear.
#pragma once
#include <memory>
#include <string>

#include "adapters/linear.h"

namespace qtune {

// method "full": W [out, in] trainable (grad dW) or frozen (non-targeted slots of lora).
template <class T>
std::unique_ptr<Linear<T>> make_dense(const std::string& name, const Tensor& w, bool trainable);

// method "lora": frozen float W0 + low-rank branch.
template <class T>
std::unique_ptr<Linear<T>> make_lora(const std::string& name, const Tensor& w, int rank, float alpha, Rng& rng);

// method "qlora": frozen b-bit W0 (quant/) + low-rank branch; with_adapter = false gives a
// frozen quantized linear (non-targeted slots under qlora).
template <class T>
std::unique_ptr<Linear<T>> make_qlora(const std::string& name, const Tensor& w, const QuantSpec& spec,
                                      bool with_adapter, int rank, float alpha, Rng& rng);

// Shape check shared by the constructors: w must be a 2-D [out, in] weight.
void check_weight(const std::string& name, const Tensor& w);

}  // namespace qtune
