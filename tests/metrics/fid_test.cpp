// metrics/fid: the Fréchet distance against closed forms (diagonal and commuting covariances),
// against an independent computation (Denman–Beavers iteration for (Σ1Σ2)^{1/2}), FID(X, X) ≈ 0,
// symmetry, and the unbiased statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "metrics/fid.h"

namespace qtune {
namespace {

using Mat = std::vector<double>;

Mat matmul(const Mat& a, const Mat& b, int n) {
  Mat c(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int k = 0; k < n; ++k)
      for (int j = 0; j < n; ++j) c[i * n + j] += a[i * n + k] * b[k * n + j];
  return c;
}
Mat transpose(const Mat& a, int n) {
  Mat t(a.size());
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) t[j * n + i] = a[i * n + j];
  return t;
}
// Gauss–Jordan with partial pivoting (test-only; the matrices are small and well conditioned).
Mat inverse(Mat a, int n) {
  Mat inv(size_t(n) * n, 0.0);
  for (int i = 0; i < n; ++i) inv[i * n + i] = 1;
  for (int c = 0; c < n; ++c) {
    int p = c;
    for (int r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[p * n + c])) p = r;
    for (int j = 0; j < n; ++j) std::swap(a[c * n + j], a[p * n + j]), std::swap(inv[c * n + j], inv[p * n + j]);
    const double d = a[c * n + c];
    for (int j = 0; j < n; ++j) a[c * n + j] /= d, inv[c * n + j] /= d;
    for (int r = 0; r < n; ++r) {
      if (r == c) continue;
      const double f = a[r * n + c];
      for (int j = 0; j < n; ++j) a[r * n + j] -= f * a[c * n + j], inv[r * n + j] -= f * inv[c * n + j];
    }
  }
  return inv;
}
// A random orthogonal matrix: Gram–Schmidt on Gaussian columns.
Mat random_orthogonal(int n, Rng& rng) {
  Mat q(size_t(n) * n);
  for (double& v : q) v = rng.normal();
  for (int j = 0; j < n; ++j) {  // rows as the vectors
    for (int k = 0; k < j; ++k) {
      double dot = 0;
      for (int i = 0; i < n; ++i) dot += q[j * n + i] * q[k * n + i];
      for (int i = 0; i < n; ++i) q[j * n + i] -= dot * q[k * n + i];
    }
    double norm = 0;
    for (int i = 0; i < n; ++i) norm += q[j * n + i] * q[j * n + i];
    for (int i = 0; i < n; ++i) q[j * n + i] /= std::sqrt(norm);
  }
  return q;
}
FeatureStats stats(const Mat& mean, const Mat& cov) {
  FeatureStats s;
  s.n = 100, s.dim = int(mean.size()), s.mean = mean, s.cov = cov;
  return s;
}
// n samples of dim d: x = μ + A z (z standard normal), so Σ = A Aᵀ, generally not commuting.
std::vector<float> samples(int64_t n, int d, double shift, uint64_t seed) {
  Rng rng(seed);
  Mat a(size_t(d) * d);
  for (double& v : a) v = rng.normal() / std::sqrt(double(d));
  std::vector<float> x(size_t(n) * d);
  std::vector<double> z(d);
  for (int64_t r = 0; r < n; ++r) {
    for (double& v : z) v = rng.normal();
    for (int i = 0; i < d; ++i) {
      double acc = shift * (i + 1) / d;
      for (int k = 0; k < d; ++k) acc += a[i * d + k] * z[k];
      x[r * d + i] = float(acc);
    }
  }
  return x;
}

TEST(Fid, DiagonalGaussiansMatchTheClosedForm) {
  const int d = 6;
  Mat m1 = {0.5, -1, 2, 0, 0.25, 3}, m2 = {0, 1, 2, -1, 0.5, 3};
  Mat a = {1, 4, 0.25, 9, 2, 1e-3}, b = {4, 1, 0.25, 1, 0.5, 0};  // one zero variance
  Mat s1(d * d, 0.0), s2(d * d, 0.0);
  double expected = 0;
  for (int i = 0; i < d; ++i) {
    s1[i * d + i] = a[i], s2[i * d + i] = b[i];
    expected += (m1[i] - m2[i]) * (m1[i] - m2[i]) + std::pow(std::sqrt(a[i]) - std::sqrt(b[i]), 2);
  }
  EXPECT_NEAR(frechet_distance(stats(m1, s1), stats(m2, s2)), expected, 1e-10 * expected);
}

TEST(Fid, CommutingRotatedCovariancesMatchTheClosedForm) {
  // Σ1 = Q diag(a) Qᵀ, Σ2 = Q diag(b) Qᵀ commute: FID = ‖μ1 − μ2‖² + Σ (√a_i − √b_i)².
  const int d = 9;
  Rng rng(7);
  const Mat q = random_orthogonal(d, rng);
  Mat da(d * d, 0.0), db(d * d, 0.0), m1(d), m2(d);
  double expected = 0;
  for (int i = 0; i < d; ++i) {
    const double ai = 0.1 + rng.uniform_double() * 3, bi = i == 0 ? 0.0 : 0.1 + rng.uniform_double() * 3;
    da[i * d + i] = ai, db[i * d + i] = bi;
    m1[i] = rng.normal(), m2[i] = rng.normal();
    expected += (m1[i] - m2[i]) * (m1[i] - m2[i]) + std::pow(std::sqrt(ai) - std::sqrt(bi), 2);
  }
  const Mat qt = transpose(q, d);
  const Mat s1 = matmul(matmul(qt, da, d), q, d), s2 = matmul(matmul(qt, db, d), q, d);
  EXPECT_NEAR(frechet_distance(stats(m1, s1), stats(m2, s2)), expected, 1e-9 * expected);
}

TEST(Fid, AgreesWithDenmanBeaversOnNonCommutingCovariances) {
  // Independent route to the cross term: tr((Σ1Σ2)^{1/2}) by the Denman–Beavers iteration
  // (Y ← (Y + Z⁻¹)/2, Z ← (Z + Y⁻¹)/2 from Y = Σ1Σ2, Z = I; Y → (Σ1Σ2)^{1/2}), no eigensolver.
  const int d = 7;
  const std::vector<float> x = samples(400, d, 0.0, 1), y = samples(300, d, 1.5, 2);
  const FeatureStats a = feature_stats(x.data(), 400, d), b = feature_stats(y.data(), 300, d);
  Mat yk = matmul(a.cov, b.cov, d), zk(d * d, 0.0);
  for (int i = 0; i < d; ++i) zk[i * d + i] = 1;
  for (int it = 0; it < 50; ++it) {
    const Mat yi = inverse(yk, d), zi = inverse(zk, d);
    for (int i = 0; i < d * d; ++i) yk[i] = 0.5 * (yk[i] + zi[i]), zk[i] = 0.5 * (zk[i] + yi[i]);
  }
  double expected = 0;
  for (int i = 0; i < d; ++i) {
    expected += std::pow(a.mean[i] - b.mean[i], 2) + a.cov[i * d + i] + b.cov[i * d + i] - 2 * yk[i * d + i];
  }
  EXPECT_GT(expected, 0.1);
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-9 * expected);
}

TEST(Fid, OfASetWithItselfIsZero) {
  for (int64_t n : {500, 20}) {  // 20 < dim: a singular covariance
    const std::vector<float> x = samples(n, 32, 0.3, 5);
    const FeatureStats s = feature_stats(x.data(), n, 32);
    EXPECT_NEAR(frechet_distance(s, s), 0.0, 1e-6) << n;
  }
}

TEST(Fid, IsSymmetric) {
  const int d = 16;
  const std::vector<float> x = samples(200, d, 0.0, 11), y = samples(50, d, 2.0, 12);
  const FeatureStats a = feature_stats(x.data(), 200, d), b = feature_stats(y.data(), 50, d);
  const double ab = frechet_distance(a, b), ba = frechet_distance(b, a);
  EXPECT_GT(ab, 1.0);
  EXPECT_NEAR(ab, ba, 1e-9 * ab);
}

TEST(Fid, StatsAreUnbiased) {
  const float x[] = {1, 10, 3, 20, 5, 30};  // 3 vectors of dim 2
  const FeatureStats s = feature_stats(x, 3, 2);
  EXPECT_DOUBLE_EQ(s.mean[0], 3);
  EXPECT_DOUBLE_EQ(s.mean[1], 20);
  EXPECT_DOUBLE_EQ(s.cov[0], 4);    // (4 + 0 + 4) / 2
  EXPECT_DOUBLE_EQ(s.cov[3], 100);  // (100 + 0 + 100) / 2
  EXPECT_DOUBLE_EQ(s.cov[1], 20);
  EXPECT_DOUBLE_EQ(s.cov[2], 20);
  EXPECT_THROW(feature_stats(x, 1, 2), Error);
  const float bad[] = {1, NAN, 3, 4};
  EXPECT_THROW(feature_stats(bad, 2, 2), Error);
}

TEST(Fid, SqrtmSquaresBack) {
  const int d = 5;
  const std::vector<float> x = samples(100, d, 0.0, 3);
  const FeatureStats s = feature_stats(x.data(), 100, d);
  const Mat r = sqrtm_psd(s.cov, d), rr = matmul(r, r, d);
  for (int i = 0; i < d * d; ++i) EXPECT_NEAR(rr[i], s.cov[i], 1e-12) << i;
  // Negative eigenvalues (here exactly −1) are clamped: sqrt of diag(4, −1) is diag(2, 0).
  const Mat m = sqrtm_psd({4, 0, 0, -1}, 2);
  EXPECT_NEAR(m[0], 2, 1e-14);
  EXPECT_NEAR(m[3], 0, 1e-14);
  const Mat w = eigvals_sym({2, 1, 1, 2}, 2);
  EXPECT_NEAR(w[0], 1, 1e-14);
  EXPECT_NEAR(w[1], 3, 1e-14);
}

TEST(Fid, RefusesDifferentDims) {
  const std::vector<float> x = samples(10, 3, 0, 1), y = samples(10, 4, 0, 1);
  EXPECT_THROW(frechet_distance(feature_stats(x.data(), 10, 3), feature_stats(y.data(), 10, 4)), Error);
}

}  // namespace
}  // namespace qtune
