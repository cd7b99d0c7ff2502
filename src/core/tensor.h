// core/tensor.h — a named float tensor, the unit of exchange between readers, models and writers.
//
// Shapes are written outermost first, as in PyTorch: a linear weight is {out, in}, row-major.
// (GGUF stores ne[] innermost first; io/gguf converts.)
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/buffer.h"

namespace qtune {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

struct Tensor {
  Shape shape;
  Buffer<float> data;

  Tensor() = default;
  explicit Tensor(Shape s) : shape(std::move(s)), data(static_cast<size_t>(qtune::numel(shape))) {}
  int64_t numel() const { return qtune::numel(shape); }
  int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
  int64_t cols() const { return shape.size() < 2 ? 1 : numel() / shape[0]; }
  float* ptr() { return data.data(); }
  const float* ptr() const { return data.data(); }
};

// Name → tensor, names follow GGUF conventions (token_embd.weight, blk.0.attn_q.weight, ...).
using TensorMap = std::map<std::string, Tensor>;

std::string shape_str(const Shape& s);

// Index of the first NaN or ±Inf in p[0..n), or -1 when all are finite. One pass that the
// compiler vectorizes: cheap enough to run on every weight a model file loads.
int64_t first_non_finite(const float* p, int64_t n);
// "[3, 7]": the index of element i of a tensor of shape s, outermost first.
std::string index_str(const Shape& s, int64_t i);

}  // namespace qtune
