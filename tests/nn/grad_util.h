// tests/nn/grad_util.h — the finite-difference helpers of the nn gradient checks: each op is
// wrapped as L = Σ G ⊙ op(inputs) with a fixed random G, so the analytic gradient is
// op_backward(dout = G), compared with central differences in double precision.
#pragma once
#include <cmath>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "test_util.h"

namespace qtune::test::nngrad {

using Vec = std::vector<double>;

inline Vec randn(size_t n, Rng& rng, double scale = 1.0) {
  Vec v(n);
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

// Central-difference gradient of f with respect to x (perturbed in place, restored).
inline Vec numeric_grad(Vec& x, const std::function<double()>& f, double h = 1e-5) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    double x0 = x[i];
    x[i] = x0 + h;
    double fp = f();
    x[i] = x0 - h;
    double fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// analytic = accumulated − start (backward must add, not overwrite)
inline void expect_grad(const Vec& accumulated, const Vec& start, const Vec& numeric, const char* what) {
  Vec analytic(accumulated.size());
  for (size_t i = 0; i < analytic.size(); ++i) analytic[i] = accumulated[i] - start[i];
  double e = test::rel_err(analytic.data(), numeric.data(), analytic.size());
  EXPECT_LT(e, 1e-6) << what;
  double norm = std::sqrt(dot(numeric, numeric));
  EXPECT_GT(norm, 1e-3) << what << ": gradient is ~0, the check would be vacuous";
}

}  // namespace qtune::test::nngrad
