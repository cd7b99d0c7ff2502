// adapters/lora_branch.cpp — forward/backward of the low-rank branch y += s·(x·Aᵀ)·Bᵀ.
//
//   h  = x·Aᵀ            [n, r]
//   y += (s·h)·Bᵀ        [n, out]
// backward, with g = s·(dy·B)  [n, r]:
//   dB += dyᵀ·(s·h)      dA += gᵀ·x      dx += g·A
#include "adapters/lora_branch.h"

#include <cmath>

#include "kernels/gemm.h"
#include "kernels/gse_gemm.h"

namespace qtune {

template <class T>
LoraBranch<T>::LoraBranch(int64_t in, int64_t out, int rank, float alpha, Rng& rng)
    : in_(in), out_(out), rank_(rank), scale_(static_cast<T>(alpha) / static_cast<T>(rank)) {
  QT_CHECK(rank >= 1, "lora: rank = {} is invalid (must be >= 1)", rank);
  A_.resize(static_cast<size_t>(rank * in));
  B_.resize(static_cast<size_t>(out * rank));  // zeros: the adapted model starts as the base
  dA_.resize(A_.size());
  dB_.resize(B_.size());
  // Kaiming-uniform with a = √5 (PyTorch's nn.Linear default, used by LoRA):
  // gain = √(2/(1+a²)) = √(1/3), bound = gain·√(3/fan_in) = 1/√in.
  const float bound = 1.0f / std::sqrt(static_cast<float>(in));
  for (auto& a : A_) a = static_cast<T>(rng.uniform(-bound, bound));
}

template <class T>
void LoraBranch<T>::ensure_scratch(int64_t n) {
  const size_t need = static_cast<size_t>(n * rank_);
  if (h_.size() < need) {
    h_.resize(need);
    dh_.resize(need);
  }
}

template <class T>
void LoraBranch<T>::forward_add(const T* x, T* y, int64_t n) {
  ensure_scratch(n);
  T* h = h_.data();
  kernels::matmul_nt(x, A_.data(), h, n, in_, rank_, false);  // h: [n, r]
  for (int64_t i = 0; i < n * rank_; ++i) h[i] *= scale_;      // fold s into the small tensor
  kernels::matmul_nt(h, B_.data(), y, n, rank_, out_, true);   // y: [n, out] += h·Bᵀ
}

template <class T>
void LoraBranch<T>::backward(const T* x, const T* dy, T* dx, int64_t n) {
  ensure_scratch(n);
  T* h = h_.data();
  T* g = dh_.data();
  kernels::matmul_nt(x, A_.data(), h, n, in_, rank_, false);  // recompute h = x·Aᵀ
  for (int64_t i = 0; i < n * rank_; ++i) h[i] *= scale_;
  kernels::matmul_tn(dy, h, dB_.data(), n, rank_, out_, true);  // dB[out, r] += dyᵀ·(s·h)
  kernels::matmul_nn(dy, B_.data(), g, n, rank_, out_, false);  // g[n, r] = dy·B
  for (int64_t i = 0; i < n * rank_; ++i) g[i] *= scale_;
  kernels::matmul_tn(g, x, dA_.data(), n, in_, rank_, true);    // dA[r, in] += gᵀ·x
  if (dx) kernels::matmul_nn(g, A_.data(), dx, n, in_, rank_, true);  // dx[n, in] += g·A
}

// The GSE forms of the lines above: every product is gse_gemm (C = A·Bᵀ, both operands grouped
// along the product's reduction axis; kernels/gse_ops.h), so a float GEMM that reads a matrix by
// columns reads the transposed encoding instead:
//   h  = x·Aᵀ        x [n, in]    · A  [r, in]      reduce over in
//   y += (s·h)·Bᵀ    h [n, r]     · B  [out, r]     reduce over r
//   dB += dyᵀ·(s·h)  dyᵀ [out, n] · hᵀ [r, n]       reduce over the tokens
//   g  = s·dy·B      dy [n, out]  · Bᵀ [r, out]     reduce over out
//   dA += gᵀ·x       gᵀ [r, n]    · xᵀ [in, n]      reduce over the tokens
//   dx += g·A        g [n, r]     · Aᵀ [in, r]      reduce over r
template <class T>
void LoraBranch<T>::forward_add_gse(const GseMatrix& xq, T* y, int64_t n, const GseArith& ar) {
  using kernels::GseRole;
  ensure_scratch(n);
  float* h = gse_f(h_.data());
  const GseSpec near = ar.nearest();
  kernels::gse_gemm(xq, kernels::gse_operand(GseRole::a, gse_f(A_.data()), rank_, in_, near), h, false);
  for (int64_t i = 0; i < n * rank_; ++i) h[i] *= static_cast<float>(scale_);
  kernels::gse_gemm(kernels::gse_operand(GseRole::h, h, n, rank_, near),
                    kernels::gse_operand(GseRole::b, gse_f(B_.data()), out_, rank_, near), gse_f(y), true);
}

template <class T>
void LoraBranch<T>::backward_gse(const T* x, const GseMatrix& xq, const T* dy, const GseMatrix& dyq, T* dx,
                                 int64_t n, const GseArith& ar, const Context& ctx) {
  using kernels::GseRole;
  using kernels::gse_operand;
  using kernels::gse_operand_t;
  ensure_scratch(n);
  float* h = gse_f(h_.data());
  float* g = gse_f(dh_.data());
  const float s = static_cast<float>(scale_);
  const GseSpec near = ar.nearest();
  // recompute s·h as the forward did (nearest rounding: the same bits)
  kernels::gse_gemm(xq, gse_operand(GseRole::a, gse_f(A_.data()), rank_, in_, near), h, false);
  for (int64_t i = 0; i < n * rank_; ++i) h[i] *= s;
  // dB[out, r] += dyᵀ·(s·h)
  kernels::gse_gemm(gse_operand_t(GseRole::dyt, gse_f(dy), n, out_, ar.grad(ctx, GseRole::dyt)),
                    gse_operand_t(GseRole::ht, h, n, rank_, near), gse_f(dB_.data()), true);
  // g[n, r] = s·dy·B
  kernels::gse_gemm(dyq, gse_operand_t(GseRole::bt, gse_f(B_.data()), out_, rank_, near), g, false);
  for (int64_t i = 0; i < n * rank_; ++i) g[i] *= s;
  // dA[r, in] += gᵀ·x
  kernels::gse_gemm(gse_operand_t(GseRole::gt, g, n, rank_, ar.grad(ctx, GseRole::gt)),
                    gse_operand_t(GseRole::xt, gse_f(x), n, in_, near), gse_f(dA_.data()), true);
  // dx[n, in] += g·A
  if (dx)
    kernels::gse_gemm(gse_operand(GseRole::g, g, n, rank_, ar.grad(ctx, GseRole::g)),
                      gse_operand_t(GseRole::at, gse_f(A_.data()), rank_, in_, near), gse_f(dx), true);
}

template <class T>
void LoraBranch<T>::params(const std::string& name, std::vector<Param<T>>& out) {
  out.push_back({name + ".lora_a", A_.data(), dA_.data(), rank_ * in_, {rank_, in_}});
  out.push_back({name + ".lora_b", B_.data(), dB_.data(), out_ * rank_, {out_, rank_}});
}

template <class T>
void LoraBranch<T>::add_delta(float* w) const {
  // w[o, k] += s·Σ_j B[o, j]·A[j, k], summed in double; rows are independent
#pragma omp parallel for
  for (int64_t o = 0; o < out_; ++o) {
    for (int64_t k = 0; k < in_; ++k) {
      double sum = 0;
      for (int j = 0; j < rank_; ++j) sum += double(B_[o * rank_ + j]) * double(A_[j * in_ + k]);
      w[o * in_ + k] = static_cast<float>(double(w[o * in_ + k]) + double(scale_) * sum);
    }
  }
}

template class LoraBranch<float>;
template class LoraBranch<double>;

}  // namespace qtune
