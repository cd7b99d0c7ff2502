// adapters/loldu_branch.cpp — LoLDU's adapter: the math is in loldu_branch.h.
#include "adapters/loldu_branch.h"

#include <algorithm>

#include "kernels/gemm.h"

namespace qtune {

template <class T>
LolduBranch<T>::LolduBranch(const Tensor& w, const LolduConfig& cfg, Rng& rng)
    : in_(w.shape[1]), out_(w.shape[0]), rank_(cfg.rank), sigma0_(cfg.sigma0), train_scale_(cfg.train_scale) {
  const LduSlice s = ldu_slice(w.ptr(), out_, in_, rank_);
  zero_pivots_ = s.zero_pivots;
  perm_ = s.perm;
  const int64_t r = rank_;
  pl_.resize(static_cast<size_t>(out_ * r));
  ub_.resize(static_cast<size_t>(r * in_));
  for (int64_t i = 0; i < out_; ++i)
    for (int64_t j = 0; j < r; ++j) pl_[perm_[i] * r + j] = static_cast<T>(s.l[i * r + j]);
  for (int64_t k = 0; k < r * in_; ++k) ub_[k] = static_cast<T>(s.ubar[k]);
  const std::vector<double> z0 = loldu_init_z(s.d, cfg.init, rng);
  z_.resize(r), dz_.resize(r), z0_.resize(r);
  for (int64_t j = 0; j < r; ++j) z_[j] = z0_[j] = static_cast<T>(z0[j]);
  sigma_.resize(1), dsigma_.resize(1);
  sigma_[0] = static_cast<T>(sigma0_);
}

template <class T>
void LolduBranch<T>::forward_add(const T* x, T* y, int64_t n) {
  const int64_t r = rank_;
  if (t_.size() < static_cast<size_t>(n * r)) t_.resize(static_cast<size_t>(n * r)), s_.resize(t_.size());
  T* t = t_.data();
  kernels::matmul_nt(x, ub_.data(), t, n, in_, r, false);  // t = x·Ū_rᵀ  [n, r]
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < r; ++j) t[i * r + j] *= coef(static_cast<int>(j));
  kernels::matmul_nt(t, pl_.data(), y, n, r, out_, true);  // y += (t ⊙ c)·(P·L_r)ᵀ
}

template <class T>
void LolduBranch<T>::backward(const T* x, const T* dy, T* dx, int64_t n) {
  const int64_t r = rank_;
  if (t_.size() < static_cast<size_t>(n * r)) t_.resize(static_cast<size_t>(n * r)), s_.resize(t_.size());
  T *t = t_.data(), *s = s_.data();
  kernels::matmul_nt(x, ub_.data(), t, n, in_, r, false);     // t = x·Ū_rᵀ    [n, r]
  kernels::matmul_nn(dy, pl_.data(), s, n, r, out_, false);   // s = dy·(P·L_r) [n, r]
  double dsigma = 0;
  for (int64_t j = 0; j < r; ++j) {
    double a = 0;  // a_j = Σ_t t_tj·s_tj
    for (int64_t i = 0; i < n; ++i) a += static_cast<double>(t[i * r + j]) * static_cast<double>(s[i * r + j]);
    dz_[j] += static_cast<T>(static_cast<double>(sigma_[0]) * a);
    dsigma += static_cast<double>(z_[j]) * a;
  }
  if (train_scale_) dsigma_[0] += static_cast<T>(dsigma);
  if (!dx) return;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < r; ++j) s[i * r + j] *= coef(static_cast<int>(j));
  kernels::matmul_nn(s, ub_.data(), dx, n, in_, r, true);  // dx += (s ⊙ c)·Ū_r
}

template <class T>
void LolduBranch<T>::params(const std::string& name, std::vector<Param<T>>& out) {
  out.push_back({name + ".loldu_z", z_.data(), dz_.data(), rank_, {rank_}});
  // σ is a scale: weight decay would pull it, and the whole update with it, to 0
  if (train_scale_) out.push_back({name + ".loldu_scale", sigma_.data(), dsigma_.data(), 1, {1}, 1.0f, false});
}

template <class T>
void LolduBranch<T>::state(const std::string& name, std::vector<Param<T>>& out) {
  out.push_back({name + ".loldu_z0", z0_.data(), nullptr, rank_, {rank_}});
}

template <class T>
void LolduBranch<T>::delta_row(int64_t o, T* row) const {
  std::fill(row, row + in_, T(0));
  for (int j = 0; j < rank_; ++j) {
    const T b = pl_[o * rank_ + j] * coef(j);
    if (b == T(0)) continue;
    const T* u = ub_.data() + j * in_;
    for (int64_t k = 0; k < in_; ++k) row[k] += b * u[k];
  }
}

template <class T>
void LolduBranch<T>::update_grads(const T* g, int64_t r0, int64_t nr) {
  const int64_t r = rank_;
  T* m = scratch<T, LolduBranch>(0, nr * r);
  kernels::matmul_nt(g, ub_.data(), m, nr, in_, r, false);  // m = g·Ū_rᵀ  [nr, r]
  double dsigma = 0;
  for (int64_t j = 0; j < r; ++j) {
    double a = 0;  // ∂L/∂c_j over these rows
    for (int64_t i = 0; i < nr; ++i)
      a += static_cast<double>(pl_[(r0 + i) * r + j]) * static_cast<double>(m[i * r + j]);
    dz_[j] += static_cast<T>(static_cast<double>(sigma_[0]) * a);
    dsigma += static_cast<double>(z_[j]) * a;
  }
  if (train_scale_) dsigma_[0] += static_cast<T>(dsigma);
}

template <class T>
void LolduBranch<T>::add_delta(float* w) const {
#pragma omp parallel
  {
    T* row = scratch<T, LolduBranch>(1, in_);
#pragma omp for schedule(static)
    for (int64_t o = 0; o < out_; ++o) {
      delta_row(o, row);
      for (int64_t k = 0; k < in_; ++k) w[o * in_ + k] = static_cast<float>(static_cast<T>(w[o * in_ + k]) + row[k]);
    }
  }
}

template <class T>
int64_t LolduBranch<T>::bytes() const {
  return static_cast<int64_t>((pl_.size() + ub_.size() + z_.size() + z0_.size() + sigma_.size()) * sizeof(T) +
                              perm_.size() * sizeof(int32_t));
}

template class LolduBranch<float>;
template class LolduBranch<double>;

}  // namespace qtune
