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
  const float* src = nullptr;  // what q encodes, and in which GseReuse scope (0: none)
  uint64_t scope = 0;
};

uint64_t reuse_scope = 0;  // the open GseReuse scope, 0 when none
uint64_t scopes_opened = 0;

// Every shared operand; the main thread only (checked), so no lock. A deque: references handed
// out stay valid when another operand is added.
std::deque<Operand>& operands() {
  static std::deque<Operand> v;
  return v;
}
int64_t transpose_floats = 0;  // the largest transposition so far (its scratch is kept)

Operand& operand(GseRole role, int64_t rows, int64_t cols, int group) {
  QT_ASSERT(!omp_in_parallel());
  for (Operand& o : operands())
    if (o.role == role && o.q.rows == rows && o.q.cols == cols && o.q.spec.group == group) return o;
  operands().push_back({role, GseMatrix{}});
  return operands().back();
}

// True when o already holds src encoded with spec in the open scope (roles x, xt only);
// otherwise records that it is about to.
bool reusable(Operand& o, const float* src, const GseSpec& spec) {
  const bool input = o.role == GseRole::x || o.role == GseRole::xt;
  if (input && reuse_scope != 0 && o.scope == reuse_scope && o.src == src && o.q.spec == spec) return true;
  o.src = src;
  o.scope = input ? reuse_scope : 0;
  return false;
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

// A weight's transposition (once, at construction), 64 rows of xᵀ at a time through a buffer of
// its own: the classifier's whole transpose would be 32000 × 768 floats held next to the model.
void gse_encode_t(const float* x, int64_t rows, int64_t cols, const GseSpec& spec, GseMatrix& q) {
  constexpr int64_t kBlock = 64;
  q = gse_zeros(cols, rows, spec);
  Buffer<float> t(static_cast<size_t>(std::min(cols, kBlock) * rows));
  for (int64_t c0 = 0; c0 < cols; c0 += kBlock) {
    const int64_t c1 = std::min(cols, c0 + kBlock);
#pragma omp parallel for schedule(static) if (rows * (c1 - c0) > 65536)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) t[(c - c0) * rows + r] = x[r * cols + c];
    gse_encode_rows(t.data(), c0, c1, spec, q);
  }
}

const GseMatrix& gse_operand(GseRole role, const float* x, int64_t rows, int64_t cols, const GseSpec& spec) {
  Operand& o = operand(role, rows, cols, spec.group);
  if (!reusable(o, x, spec)) gse_encode(x, rows, cols, spec, o.q);
  return o.q;
}

// An activation's or gradient's transposition (every pass): through the kept scratch.
const GseMatrix& gse_operand_t(GseRole role, const float* x, int64_t rows, int64_t cols, const GseSpec& spec) {
  Operand& o = operand(role, cols, rows, spec.group);
  if (reusable(o, x, spec)) return o.q;
  float* t = scratch<float, GseOpsScratch>(0, rows * cols);
  transpose_floats = std::max(transpose_floats, rows * cols);
  transpose(x, rows, cols, t);
  gse_encode(t, cols, rows, spec, o.q);
  return o.q;
}

GseReuse::GseReuse() {
  QT_ASSERT(reuse_scope == 0);
  reuse_scope = ++scopes_opened;
}

GseReuse::~GseReuse() { reuse_scope = 0; }

int64_t gse_operand_bytes() {
  int64_t n = transpose_floats * static_cast<int64_t>(sizeof(float));
  for (const Operand& o : operands()) n += gse_bytes(o.q);
  return n;
}

}  // namespace qtune::kernels
