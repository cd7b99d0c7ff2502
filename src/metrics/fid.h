// metrics/fid.h — the Fréchet distance between two sets of feature vectors (FID when the features
// are a classifier's activations; docs/DESIGN.md §11.1).
//
// Each set is summarised by its mean μ and unbiased covariance Σ (divisor N − 1), in double; then
//   FID = ‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2·tr((Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2})
// (the Fréchet distance of the Gaussians N(μ1, Σ1), N(μ2, Σ2)). tr((Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2})
// equals tr((Σ1 Σ2)^{1/2}), the term of Heusel et al.; the symmetric form keeps every matrix
// symmetric positive semi-definite, so both square roots come from LAPACK's symmetric
// eigensolver (dsyevd), with eigenvalues that rounding made negative clamped to 0.
#pragma once
#include <cstdint>
#include <vector>

namespace qtune {

struct FeatureStats {
  int64_t n = 0;            // vectors summarised
  int dim = 0;
  std::vector<double> mean;  // [dim]
  std::vector<double> cov;   // [dim, dim], symmetric, divisor n − 1
};

// x: [n, dim] row-major, n ≥ 2. Throws Error for n < 2, dim < 1 or a non-finite value.
FeatureStats feature_stats(const float* x, int64_t n, int dim);

// The Fréchet distance of two summaries of the same dim (Error otherwise); ≥ 0 up to rounding
// (a tiny negative value from rounding is returned as 0).
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// The symmetric PSD square root of a symmetric matrix a [n, n] (V·diag(√max(λ, 0))·Vᵀ from dsyevd).
std::vector<double> sqrtm_psd(const std::vector<double>& a, int n);
// The eigenvalues of a symmetric matrix a [n, n], ascending (dsyevd, no vectors).
std::vector<double> eigvals_sym(const std::vector<double>& a, int n);

}  // namespace qtune
