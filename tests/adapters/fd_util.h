// tests/adapters/fd_util.h — finite differences of one Linear in double precision, for the
// gradient checks: the loss is L = Σ y ⊙ r with y = forward(x) [n, out] and r fixed (so dL/dy = r).
#pragma once
#include <cstdint>
#include <vector>

#include "adapters/linear.h"
#include "core/rng.h"

namespace qtune::test {

inline std::vector<double> randn_double(int64_t n, Rng& rng, double scale = 1.0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.normal() * scale;
  return v;
}

// L = Σ forward(x) ⊙ r over n rows.
inline double weighted_output(Linear<double>& lin, const std::vector<double>& x, const std::vector<double>& r,
                              int64_t n) {
  Context ctx;
  std::vector<double> y(static_cast<size_t>(n * lin.out()));
  lin.forward(x.data(), y.data(), n, ctx);
  double L = 0;
  for (size_t i = 0; i < y.size(); ++i) L += y[i] * r[i];
  return L;
}

// Central difference of L with respect to *v (a parameter or an element of x).
inline double central_difference(Linear<double>& lin, double* v, const std::vector<double>& x,
                                  const std::vector<double>& r, int64_t n, double eps) {
  const double keep = *v;
  *v = keep + eps;
  const double lp = weighted_output(lin, x, r, n);
  *v = keep - eps;
  const double lm = weighted_output(lin, x, r, n);
  *v = keep;
  return (lp - lm) / (2 * eps);
}

}  // namespace qtune::test
