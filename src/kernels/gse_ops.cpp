// kernels/gse_ops.cpp — transposed encoding and the shared operands (contract: gse_ops.h).
#include "kernels/gse_ops.h"

#include <omp.h>

#include <algorithm>
#include <deque>

#include "core/buffer.h"
#include "core/error.h"

namespace qtune::kernels {

namespace {

struct GseOpsScratch;  // owner of this file's scratch: float 0 = a transposed operand

struct Operand {
  GseRole role;
  GseMatrix q;
};

// Every shared operand; the main thread only (checked), so no lock. A deque: references handed
// out stay valid when another operand is added.
std::deque<Operand>& operands() {
  static std::deque<Operand> v;
  return v;
}
int64_t transpose_floats = 0;  // the largest transposition so far (its scratch is kept)

GseMatrix& operand(GseRole role, int64_t rows, int64_t cols, int group) {
  QT_ASSERT(!omp_in_parallel());
  for (Operand& o : operands())
    if (o.role == role && o.q.rows == rows && o.q.cols == cols && o.q.spec.group == group) return o.q;
  operands().push_back({role, GseMatrix{}});
  return operands().back().q;
}

// y [cols, rows] = xᵀ, in 32×32 blocks (both sides stay in cache).
void transpose(const float* x, int64_t rows, int64_t cols, float* y) {
  constexpr int64_t kB = 32;
#pragma omp parallel for collapse(2) schedule(static) if (rows * cols > 65536)
  for (int64_t r0 = 0; r0 < rows; r0 += kB)
    for (int64_t c0 = 0; c0 < cols; c0 += kB)
      for (int64_t c = c0; c < std::min(cols, c0 + kB); ++c)
        for (int64_t r = r0; r < std::min(rows, r0 + kB); ++r) y[c * rows + r] = x[r * cols + c];
}

}  // namespace

void gse_encode_t(const float* x, int64_t rows, int64_t cols, const GseSpec& spec, GseMatrix& q) {
  float* t = scratch<float, GseOpsScratch>(0, rows * cols);
  if (!omp_in_parallel()) transpose_floats = std::max(transpose_floats, rows * cols);
  transpose(x, rows, cols, t);
  gse_encode(t, cols, rows, spec, q);
}

const GseMatrix& gse_operand(GseRole role, const float* x, int64_t rows, int64_t cols, const GseSpec& spec) {
  GseMatrix& q = operand(role, rows, cols, spec.group);
  gse_encode(x, rows, cols, spec, q);
  return q;
}

const GseMatrix& gse_operand_t(GseRole role, const float* x, int64_t rows, int64_t cols, const GseSpec& spec) {
  GseMatrix& q = operand(role, cols, rows, spec.group);
  gse_encode_t(x, rows, cols, spec, q);
  return q;
}

int64_t gse_operand_bytes() {
  int64_t n = transpose_floats * static_cast<int64_t>(sizeof(float));
  for (const Operand& o : operands()) n += gse_bytes(o.q);
  return n;
}

}  // namespace qtune::kernels
