// adapters/ldu.h — the rank-r LDU slice of a pretrained weight, which LoLDU adapts
// (docs/METHODS.md §7).
//
//   W = P·L·U                      LU with partial (row) pivoting; W: [out, in]
//   d = diag(U), Ū = U / d[:,None] (unit diagonal)          so W = P·L·diag(d)·Ū
//   L_r = L[:, :r]  [out, r]     Ū_r = Ū[:r, :]  [r, in]     d_r = d[:r]
//
// Our own elimination rather than LAPACK getrf: LoLDU needs only the first r steps of it, so
// the slice costs O(r·out·in) instead of a full factorization, the partial LU's trailing
// matrix S_r (the Schur complement, exactly zero in the r eliminated rows and columns) comes
// out of it directly, and it adds no dependency. It runs in double on one thread in a fixed
// order (this file is compiled without floating-point contraction), so the slice is a pure
// function of W: merge and eval rebuild it from the base instead of storing L_r and Ū_r.
//
// Zero pivots: a pivot column whose largest remaining entry is below the rounding level of a
// float weight (max|W|·max(out, in)·2⁻²⁴, which includes an exact 0: rank-deficient and
// all-zero weights) is not eliminated: d_j = 0, column j of L and row j of Ū are the unit
// vector e_j, and the rows stay in S_r. Dividing by such a pivot would blow Ū up with noise.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"

namespace qtune {

struct LduSlice {
  int64_t out = 0, in = 0, rank = 0;
  std::vector<int32_t> perm;  // [out]: row i of L·U is row perm[i] of W
  std::vector<double> l;      // L_r [out, r], unit lower triangular, in L·U's (permuted) row order
  std::vector<double> ubar;   // Ū_r [r, in], unit diagonal
  std::vector<double> d;      // d_r [r] (0 at a zero pivot)
  int64_t zero_pivots = 0;
  std::vector<double> schur;  // S_r [out, in] in L·U's row order (only with keep_schur)
};

// The first `rank` steps of LU with partial pivoting of w [out, in] (1 <= rank <= min(out, in)).
LduSlice ldu_slice(const float* w, int64_t out, int64_t in, int64_t rank, bool keep_schur = false);

// Pᵀ·W_res = S_r + L_r·diag(d_r − σ0·z0)·Ū_r, W_res = W − σ0·P·L_r·diag(z0)·Ū_r: the residual in
// L·U's row order ([out, in]; needs keep_schur). With σ0 = 1 and z0 = d_r (init "lu") it is S_r
// itself: exact zeros in the first r rows and the first r columns.
std::vector<double> permuted_residual(const LduSlice& s, double sigma0, const std::vector<double>& z0);

// The initial z (docs/METHODS.md §7), μ = mean(d_r): "lu" z = d_r; "uniform" U(−|μ|/2, |μ|/2);
// "constant" μ; "normal" N(μ, std(d_r)). Draws from rng only for uniform and normal.
std::vector<double> loldu_init_z(const std::vector<double>& d, const std::string& init, Rng& rng);

// "lu", "uniform", "constant", "normal".
const std::vector<std::string>& loldu_inits();

}  // namespace qtune
