// adapters/ldu.cpp — the partial LU behind LoLDU (ldu.h): right-looking elimination, r steps.
#include "adapters/ldu.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace qtune {

namespace {

// Moves the row with the largest |a[i, j]| (i >= j; the first one on ties) to row j, in a, perm
// and the L columns found so far.
void pivot_rows(std::vector<double>& a, std::vector<double>& l, std::vector<int32_t>& perm, int64_t j, int64_t in,
                int64_t r) {
  const int64_t out = static_cast<int64_t>(perm.size());
  int64_t p = j;
  for (int64_t i = j + 1; i < out; ++i)
    if (std::fabs(a[i * in + j]) > std::fabs(a[p * in + j])) p = i;
  if (p == j) return;
  std::swap_ranges(a.begin() + j * in, a.begin() + (j + 1) * in, a.begin() + p * in);
  std::swap_ranges(l.begin() + j * r, l.begin() + j * r + j, l.begin() + p * r);
  std::swap(perm[j], perm[p]);
}

}  // namespace

LduSlice ldu_slice(const float* w, int64_t out, int64_t in, int64_t rank, bool keep_schur) {
  QT_CHECK(out >= 1 && in >= 1 && rank >= 1 && rank <= std::min(out, in),
           "LDU slice of rank {} of a [{}, {}] weight (valid ranks: 1..{})", rank, out, in, std::min(out, in));
  LduSlice s;
  s.out = out, s.in = in, s.rank = rank;
  const int64_t r = rank;
  std::vector<double> a(static_cast<size_t>(out * in));  // the working matrix, ends as S_r
  double amax = 0;
  for (int64_t i = 0; i < out * in; ++i) {
    QT_CHECK(std::isfinite(w[i]), "LDU slice: the weight has a non-finite value at [{}, {}]", i / in, i % in);
    a[i] = w[i];
    amax = std::max(amax, std::fabs(a[i]));
  }
  const double tol = amax * static_cast<double>(std::max(out, in)) * std::ldexp(1.0, -24);
  s.perm.resize(static_cast<size_t>(out));
  for (int64_t i = 0; i < out; ++i) s.perm[i] = static_cast<int32_t>(i);
  s.l.assign(static_cast<size_t>(out * r), 0.0);
  s.ubar.assign(static_cast<size_t>(r * in), 0.0);
  s.d.assign(static_cast<size_t>(r), 0.0);
  for (int64_t j = 0; j < r; ++j) {
    pivot_rows(a, s.l, s.perm, j, in, r);
    s.l[j * r + j] = 1.0;
    double* uj = a.data() + j * in;  // row j of U (from column j on)
    const double piv = uj[j];
    if (!(std::fabs(piv) > tol)) {  // zero pivot: not eliminated (ldu.h)
      ++s.zero_pivots;
      s.ubar[j * in + j] = 1.0;
      continue;
    }
    s.d[j] = piv;
    for (int64_t c = j; c < in; ++c) s.ubar[j * in + c] = uj[c] / piv;
    s.ubar[j * in + j] = 1.0;  // exactly
    for (int64_t i = j + 1; i < out; ++i) {
      double* ai = a.data() + i * in;
      const double m = ai[j] / piv;
      s.l[i * r + j] = m;
      ai[j] = 0.0;
      if (m != 0.0)
        for (int64_t c = j + 1; c < in; ++c) ai[c] -= m * uj[c];
    }
    std::fill(uj, uj + in, 0.0);  // row j moved into U
  }
  if (keep_schur) s.schur = std::move(a);
  return s;
}

std::vector<double> permuted_residual(const LduSlice& s, double sigma0, const std::vector<double>& z0) {
  QT_CHECK(!s.schur.empty(), "permuted_residual needs the slice's Schur complement (keep_schur)");
  QT_CHECK(static_cast<int64_t>(z0.size()) == s.rank, "z0 has {} values, the slice has rank {}", z0.size(), s.rank);
  const int64_t r = s.rank, in = s.in;
  std::vector<double> res = s.schur;
  for (int64_t j = 0; j < r; ++j) {
    const double c = s.d[j] - sigma0 * z0[j];
    if (c == 0.0) continue;  // σ0·z0 = d exactly: nothing of the slice is left in the residual
    for (int64_t i = 0; i < s.out; ++i) {
      const double lc = s.l[i * r + j] * c;
      if (lc == 0.0) continue;
      for (int64_t k = 0; k < in; ++k) res[i * in + k] += lc * s.ubar[j * in + k];
    }
  }
  return res;
}

const std::vector<std::string>& loldu_inits() {
  static const std::vector<std::string> v = {"lu", "uniform", "constant", "normal"};
  return v;
}

std::vector<double> loldu_init_z(const std::vector<double>& d, const std::string& init, Rng& rng) {
  QT_CHECK(!d.empty(), "loldu: empty pivot vector");
  const double n = static_cast<double>(d.size());
  double mu = 0;
  for (double x : d) mu += x;
  mu /= n;
  double var = 0;
  for (double x : d) var += (x - mu) * (x - mu);
  const double sd = std::sqrt(var / n);
  std::vector<double> z(d.size());
  for (size_t j = 0; j < d.size(); ++j) {
    if (init == "lu") z[j] = d[j];
    else if (init == "uniform") z[j] = std::fabs(mu) * (rng.uniform_double() - 0.5);
    else if (init == "constant") z[j] = mu;
    else if (init == "normal") z[j] = mu + sd * rng.normal();
    else fail("--loldu-init '{}' is invalid (valid: lu, uniform, constant, normal)", init);
  }
  return z;
}

}  // namespace qtune
