// metrics/fid.cpp — see metrics/fid.h.
#include "metrics/fid.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

// LAPACK's divide-and-conquer symmetric eigensolver, as the Fortran library exports it (Debian's
// OpenBLAS carries LAPACK; PkgConfig::OPENBLAS links it). Every argument by pointer; the two
// trailing lengths are the hidden lengths of the CHARACTER arguments (gfortran's convention).
//   jobz 'N' eigenvalues only, 'V' also eigenvectors (overwriting a, column-major: column j = vector j)
//   uplo 'U'/'L' triangle of a that is read; w the eigenvalues, ascending; lwork/liwork = −1 queries
//   the workspace sizes into work[0]/iwork[0]; info 0 = success, > 0 = no convergence.
extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len,
                        size_t uplo_len);

namespace qtune {

namespace {

// Eigen-decomposition of the symmetric a [n, n] (a is overwritten with the eigenvectors when
// vectors). a is symmetric, so row- and column-major are the same matrix.
std::vector<double> syevd(std::vector<double>& a, int n, bool vectors) {
  QT_CHECK(n >= 1 && a.size() == size_t(n) * n, "fid: a {}×{} matrix needs {} values, got {}", n, n,
           size_t(n) * n, a.size());
  std::vector<double> w(n);
  const char jobz = vectors ? 'V' : 'N', uplo = 'L';
  int info = 0, lwork = -1, liwork = -1, iwork_query = 0;
  double work_query = 0;
  dsyevd_(&jobz, &uplo, &n, a.data(), &n, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  QT_CHECK(info == 0, "fid: dsyevd workspace query failed (info {})", info);
  lwork = std::max(1, int(work_query)), liwork = std::max(1, iwork_query);
  std::vector<double> work(lwork);
  std::vector<int> iwork(liwork);
  dsyevd_(&jobz, &uplo, &n, a.data(), &n, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
  QT_CHECK(info == 0, "fid: dsyevd failed (info {}): the covariance is not a finite symmetric matrix", info);
  return w;
}

}  // namespace

std::vector<double> eigvals_sym(const std::vector<double>& a, int n) {
  std::vector<double> copy = a;
  return syevd(copy, n, false);
}

std::vector<double> sqrtm_psd(const std::vector<double>& a, int n) {
  std::vector<double> v = a;
  const std::vector<double> w = syevd(v, n, true);  // column j of v (v[j·n + i]) = eigenvector j
  std::vector<double> s(w.size());
  for (int j = 0; j < n; ++j) s[j] = std::sqrt(std::max(w[j], 0.0));
  std::vector<double> out(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k <= i; ++k) {
      double acc = 0;
      for (int j = 0; j < n; ++j) acc += v[size_t(j) * n + i] * s[j] * v[size_t(j) * n + k];
      out[size_t(i) * n + k] = out[size_t(k) * n + i] = acc;
    }
  return out;
}

FeatureStats feature_stats(const float* x, int64_t n, int dim) {
  QT_CHECK(n >= 2, "fid: a covariance needs at least 2 feature vectors, got {}", n);
  QT_CHECK(dim >= 1, "fid: feature dim {} must be positive", dim);
  FeatureStats s;
  s.n = n, s.dim = dim;
  s.mean.assign(dim, 0.0);
  for (int64_t r = 0; r < n; ++r)
    for (int i = 0; i < dim; ++i) {
      const float v = x[r * dim + i];
      QT_CHECK(std::isfinite(v), "fid: feature {} of vector {} is not finite", i, r);
      s.mean[i] += v;
    }
  for (double& m : s.mean) m /= double(n);
  // Σ = Σ_r (x_r − μ)(x_r − μ)ᵀ / (n − 1), lower triangle accumulated then mirrored.
  s.cov.assign(size_t(dim) * dim, 0.0);
  std::vector<double> c(dim);
  for (int64_t r = 0; r < n; ++r) {
    for (int i = 0; i < dim; ++i) c[i] = double(x[r * dim + i]) - s.mean[i];
    for (int i = 0; i < dim; ++i) {
      double* row = s.cov.data() + size_t(i) * dim;
      const double ci = c[i];
      for (int k = 0; k <= i; ++k) row[k] += ci * c[k];
    }
  }
  for (int i = 0; i < dim; ++i)
    for (int k = 0; k <= i; ++k) {
      const double v = s.cov[size_t(i) * dim + k] / double(n - 1);
      s.cov[size_t(i) * dim + k] = s.cov[size_t(k) * dim + i] = v;
    }
  return s;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  QT_CHECK(a.dim == b.dim && a.dim >= 1, "fid: feature dims differ ({} vs {})", a.dim, b.dim);
  const int d = a.dim;
  double mean_term = 0, trace_a = 0, trace_b = 0;
  for (int i = 0; i < d; ++i) {
    const double diff = a.mean[i] - b.mean[i];
    mean_term += diff * diff;
    trace_a += a.cov[size_t(i) * d + i];
    trace_b += b.cov[size_t(i) * d + i];
  }
  // M = Σa^{1/2} Σb Σa^{1/2}: symmetric PSD; tr M^{1/2} = Σ √max(λ, 0) over its eigenvalues.
  const std::vector<double> ra = sqrtm_psd(a.cov, d);
  std::vector<double> t(size_t(d) * d, 0.0), m(size_t(d) * d, 0.0);
  for (int i = 0; i < d; ++i)  // t = ra · Σb
    for (int k = 0; k < d; ++k) {
      const double rik = ra[size_t(i) * d + k];
      const double* brow = b.cov.data() + size_t(k) * d;
      double* trow = t.data() + size_t(i) * d;
      for (int j = 0; j < d; ++j) trow[j] += rik * brow[j];
    }
  for (int i = 0; i < d; ++i)  // m = t · ra (ra symmetric: row j of ra = column j)
    for (int j = 0; j <= i; ++j) {
      double acc = 0;
      const double *ti = t.data() + size_t(i) * d, *rj = ra.data() + size_t(j) * d;
      for (int k = 0; k < d; ++k) acc += ti[k] * rj[k];
      m[size_t(i) * d + j] = acc;
    }
  for (int i = 0; i < d; ++i)  // mirror the lower triangle (m is symmetric up to rounding)
    for (int j = 0; j < i; ++j) m[size_t(j) * d + i] = m[size_t(i) * d + j];
  double trace_sqrt = 0;
  for (double l : eigvals_sym(m, d)) trace_sqrt += std::sqrt(std::max(l, 0.0));
  const double fid = mean_term + trace_a + trace_b - 2.0 * trace_sqrt;
  return std::max(fid, 0.0);
}

}  // namespace qtune
