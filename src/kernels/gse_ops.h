// kernels/gse_ops.h — what the GSE GEMM (gse_gemm.h) needs to stand in for the float GEMMs of
// training (GSQ-Tuning; docs/METHODS.md §9): operands encoded along the reduction axis of the
// product that consumes them, transposed where the float GEMM reads a matrix by columns.
//
// gse_gemm computes C = A·Bᵀ with k contiguous in both. The three float orientations map to it:
//   y  = x·Wᵀ     (matmul_nt)   A = x   [n, in]      B = W  [out, in]     reduce over in
//   dx = dy·W     (matmul_nn)   A = dy  [n, out]     B = Wᵀ [in, out]     reduce over out
//   dW = dyᵀ·x    (matmul_tn)   A = dyᵀ [out, n]     B = xᵀ [in, n]       reduce over tokens
// so an operand is encoded either as it is (rows along the reduction axis) or transposed.
//
// The shared operands. Slots, the classifier and attention run one at a time (each GEMM is
// parallel inside), so the encoded activations and gradients of one product are scratch: one
// GseMatrix per (role, rows, cols, G), kept and reused (gse_encode reuses buffers of the same
// shape) instead of allocated per call. A model has only a few distinct shapes, so this is a
// few matrices of each role; gse_operand_bytes() is their memory (the report's workspace).
#pragma once
#include <cstdint>

#include "quant/gse.h"

namespace qtune::kernels {

// What an operand is, so two operands alive in the same product never share storage.
enum class GseRole : int {
  x, xt, dy, dyt,          // a slot's input and output gradient, as is and transposed
  h, ht, g, gt,            // LoRA's x·Aᵀ and dy·B (scaled), as is and transposed
  a, at, b, bt,            // LoRA's factors, per pass
  w, wt,                   // a trainable weight, per pass (full fine-tuning)
  q, k, v, p, dp, kt, vt,  // attention: queries, keys, values, probabilities, their gradients
  count
};

// x [rows, cols] encoded along cols into the shared operand of this role and shape.
const GseMatrix& gse_operand(GseRole role, const float* x, int64_t rows, int64_t cols, const GseSpec& spec);
// xᵀ: x [rows, cols] → [cols, rows], encoded along the rows of x (the reduction of a ·ᵀ· product).
const GseMatrix& gse_operand_t(GseRole role, const float* x, int64_t rows, int64_t cols, const GseSpec& spec);
// Reuse of input encodings within a scope. While a GseReuse is alive, gse_operand (role x) and
// gse_operand_t (role xt) return the encoding made earlier in the same scope from the same data
// pointer, shape and spec instead of encoding again. The model opens one per layer pass, where
// q, k and v (and gate and up) read one input, and writes no input after it is first encoded;
// the caller owns that promise. Outside a scope every call encodes. Not nestable.
class GseReuse {
 public:
  GseReuse();
  ~GseReuse();
  GseReuse(const GseReuse&) = delete;
  GseReuse& operator=(const GseReuse&) = delete;
};

// Bytes held by every shared operand (mantissas and exponents as stored) and the float scratch
// of the transpositions.
int64_t gse_operand_bytes();

// xᵀ encoded into q (for a cached weight orientation): x [rows, cols] → q [cols, rows], a block
// of rows of xᵀ at a time through a small temporary buffer (the shared operands keep theirs as
// scratch).
void gse_encode_t(const float* x, int64_t rows, int64_t cols, const GseSpec& spec, GseMatrix& q);

// Bytes a GseMatrix holds (mantissas as int8 bytes, exponents as int16).
inline int64_t gse_bytes(const GseMatrix& q) {
  return static_cast<int64_t>(q.mant.size() * sizeof(int8_t) + q.exps.size() * sizeof(int16_t));
}

}  // namespace qtune::kernels
