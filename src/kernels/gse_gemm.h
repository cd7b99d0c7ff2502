// kernels/gse_gemm.h — the GEMM of GSQ-Tuning (docs/METHODS.md §8): both operands in GSE-INT
// form (quant/gse.h), integer mantissa products per group, groups combined with 2^(eA+eB).
//
//   C[n, m] (+)= A[n, k] · B[m, k]ᵀ
//   C[i, j] = float( Σ_g dot_g(i, j) · 2^(eA[i, g] + eB[j, g]) )
//   dot_g(i, j) = Σ_{c ∈ g} mA[i, c] · mB[j, c]          (int32, exact)
//
// A and B are both "NT": k contiguous in each (rows of GseMatrix), grouped along k with the
// same G (their b may differ). Exactness: |m| ≤ 127 and G ≤ 128, so |dot_g| ≤ 128·127² < 2^21
// in int32 — no overflow, no rounding, in every path. The float combination is ONE rule,
// gse_combine_group / gse_combine_store below, used by every path: each term
// dot · 2^eA · 2^eB is exact in double (an integer < 2^21 times powers of two within double's
// range while |eA|, |eB| ≤ 500 — every encoded float input: e ∈ [−155, 127], or emin for an
// all-zero group, whose dot is 0), the terms are added in double in group order g = 0, 1, ...,
// and the sum is rounded to float once. Since each term is exact, evaluating the rule in SIMD
// lanes, with or without FMA contraction, gives the same bits as the scalar loop: the scalar
// reference, AVX2 and AVX-512 VNNI paths return bit-identical C, whatever the thread count.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/cpu_features.h"
#include "quant/gse.h"

namespace qtune::kernels {

// 2^e for a group exponent: ldexp (exact; never pow).
inline double gse_pow2(int e) { return std::ldexp(1.0, e); }

// The combination rule, for one output row and nj consecutive columns, one group at a time (in
// g order): acc[j] += dot[j] · sa · sb[j], with sa = gse_pow2(eA[i, g]), sb[j] = gse_pow2(eB[j, g]).
inline void gse_combine_group(double* __restrict acc, const int32_t* __restrict dot, double sa,
                              const double* __restrict sb, int nj) {
#pragma omp simd
  for (int j = 0; j < nj; ++j) acc[j] += static_cast<double>(dot[j]) * sa * sb[j];
}

// After the last group: c[j] = float(acc[j]), or c[j] + float(acc[j]) when accumulating.
inline void gse_combine_store(const double* acc, float* c, int nj, bool accumulate) {
  for (int j = 0; j < nj; ++j) c[j] = accumulate ? c[j] + static_cast<float>(acc[j]) : static_cast<float>(acc[j]);
}

// C [A.rows, B.rows] (+)= A·Bᵀ with the loops of cpu_isa(); OpenMP over tiles of (rows of A,
// panels of rows of B). Throws Error when A.cols != B.cols, the group sizes differ, or a
// matrix's buffers do not match its shape. Needs |m| ≤ 127 in both (encode guarantees it).
void gse_gemm(const GseMatrix& A, const GseMatrix& B, float* C, bool accumulate);
// Same at an explicit level, isa_supported(isa): avx512vnni runs the VNNI loops (vpdpbusd),
// avx2, avx512f and avx512bw the AVX2 ones, scalar portable loops over the same packed panels.
// Tests and benchmarks force each level. All give bit-identical C.
void gse_gemm(const GseMatrix& A, const GseMatrix& B, float* C, bool accumulate, Isa isa);

namespace ref {
// The scalar reference: per (i, j, g) a plain int32 dot, then the combination rule.
void gse_gemm(const GseMatrix& A, const GseMatrix& B, float* C, bool accumulate);
}  // namespace ref

}  // namespace qtune::kernels
