// adapters/wrapped_linear.h — a slot that quantizes its input and hands the product to an inner
// slot (int8 activations: act_quant.cpp; per-step activations: talsq.cpp). Everything about the
// weight — its parameters, state, merge, integers, sizes, method — is the inner slot's.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "adapters/linear.h"

namespace qtune {

template <class T>
class WrappedLinear : public Linear<T> {
 public:
  explicit WrappedLinear(std::unique_ptr<Linear<T>> inner)
      : Linear<T>(inner->in(), inner->out()), inner_(std::move(inner)) {}

  std::vector<Param<T>> trainable() override { return inner_->trainable(); }
  std::vector<Param<T>> state() override { return inner_->state(); }
  Deployed merge() const override { return inner_->merge(); }
  const std::vector<QuantMatrix>* integer_planes() const override { return inner_->integer_planes(); }
  std::vector<std::pair<std::string, double>> stats() const override { return inner_->stats(); }
  Tensor base_weight() const override { return inner_->base_weight(); }
  const char* method() const override { return inner_->method(); }
  int64_t weight_bytes() const override { return inner_->weight_bytes(); }
  int64_t adapter_bytes() const override { return inner_->adapter_bytes(); }
  int64_t scratch_bytes() const override { return inner_->scratch_bytes(); }
  Linear<T>& inner() { return *inner_; }

 protected:
  std::unique_ptr<Linear<T>> inner_;
};

}  // namespace qtune
