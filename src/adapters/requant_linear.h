// adapters/requant_linear.h — the shared skeleton of the adapters whose effective weight is
// recomputed in every pass from a frozen integer base and a low-rank delta B·A (qalora,
// intlora-mul, intlora-shift; qaloldu's delta is P·L_r·diag(c)·Ū_r instead):
//
//   W'[o, :] = f_o((B·A)[o, :])                       Derived::effective_row
//   y        = x·W'ᵀ
// backward, per tile of rows, with G = dL/dW' = dyᵀ·x:
//   dBA, W' = Derived::backward_row(G)                the STE masks and factors (and any
//                                                     row-local gradients, e.g. a learned scale),
//                                                     and W' again for dx, in one element pass
//   dB += dBA·Aᵀ     dA += Bᵀ·dBA     dx += dy·W'       Derived::factor_grads
//
//   A: [r, in] Kaiming-uniform a=√5, i.e. U(−1/√in, 1/√in)       B: [out, r] zeros (starts as the base)
//
// A Derived with a delta of its own passes rank 0 (no A, B) and hides delta_row and factor_grads.
//
// Memory: W' and G are never held for the whole matrix — kTile rows at a time, in thread-local
// scratch (core/buffer.h) shared by every slot of one method. Determinism: (B·A)[o, :] is
// summed by one thread per row in a fixed order (j = 0..r−1), never by BLAS, so forward,
// backward and merge see the same integers whatever the thread count or tile shape.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "adapters/linear.h"
#include "adapters/ste_probe.h"
#include "kernels/gemm.h"

namespace qtune {

template <class T, class Derived>
class RequantLinear : public Linear<T>, public SteProbed {
 public:
  static constexpr int64_t kTile = 64;  // weight rows per tile

  RequantLinear(const std::string& name, int64_t in, int64_t out, int rank, Rng& rng)
      : Linear<T>(in, out), name_(name), rank_(rank) {
    QT_CHECK(rank >= 0, "{}: rank = {} is invalid (must be >= 1)", name, rank);
    if (rank == 0) return;  // Derived brings its own delta
    A_.resize(static_cast<size_t>(rank * in));
    B_.resize(static_cast<size_t>(out * rank));
    dA_.resize(A_.size());
    dB_.resize(B_.size());
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    for (auto& a : A_) a = static_cast<T>(rng.uniform(-bound, bound));
  }

  // y[n, out] = x·W'ᵀ
  void forward(const T* x, T* y, int64_t n, Context&) override {
    const int64_t in = this->in_, out = this->out_;
    self().check_state();
    this->ste_prepare(out * in);
    const bool one_tile = out <= kTile;
    T* wt = scratch<T, RequantLinear>(0, kTile * in);                // W' tile [nr, in]
    T* yt = one_tile ? y : scratch<T, RequantLinear>(2, n * kTile);  // y tile [n, nr]
    for (int64_t r0 = 0; r0 < out; r0 += kTile) {
      const int64_t nr = std::min(kTile, out - r0);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < nr; ++i) {
        T* row = wt + i * in;
        self().delta_row(r0 + i, row);
        self().effective_row(r0 + i, row, row);
      }
      kernels::matmul_nt(x, wt, yt, n, in, nr, false);
      if (!one_tile)
        for (int64_t t = 0; t < n; ++t) std::copy(yt + t * nr, yt + (t + 1) * nr, y + t * out + r0);
    }
  }

  void backward(const T* x, const T* dy, T* dx, int64_t n, Context&) override {
    const int64_t in = this->in_, out = this->out_;
    self().check_state();
    const bool one_tile = out <= kTile;
    T* wt = scratch<T, RequantLinear>(0, kTile * in);  // B·A, then W', tile [nr, in]
    T* gt = scratch<T, RequantLinear>(1, kTile * in);  // G = dL/dW', then dL/d(BA), tile [nr, in]
    T* dyt = one_tile ? nullptr : scratch<T, RequantLinear>(2, n * kTile);
    for (int64_t r0 = 0; r0 < out; r0 += kTile) {
      const int64_t nr = std::min(kTile, out - r0);
      const T* d = dy;  // dy[:, r0:r0+nr] as a contiguous [n, nr]
      if (!one_tile) {
        for (int64_t t = 0; t < n; ++t) std::copy(dy + t * out + r0, dy + t * out + r0 + nr, dyt + t * nr);
        d = dyt;
      }
      kernels::matmul_tn(d, x, gt, n, in, nr, false);  // G[nr, in] = dyᵀ·x
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < nr; ++i) {
        T* row = wt + i * in;
        self().delta_row(r0 + i, row);
        self().backward_row(r0 + i, row, gt + i * in, row);  // gt row: dL/dW' → dL/d(BA); row: B·A → W'
      }
      if (dx) kernels::matmul_nn(d, wt, dx, n, in, nr, true);  // dx += dy_t·W'_t
      self().factor_grads(gt, r0, nr);
    }
  }

  Tensor base_weight() const override { return self().base_float(); }
  int64_t weight_bytes() const override {
    return self().base_bytes() + static_cast<int64_t>((A_.size() + B_.size()) * sizeof(T));
  }
  int64_t adapter_bytes() const override { return static_cast<int64_t>((A_.size() + B_.size()) * sizeof(T)); }

 protected:
  // Appends "<name>.lora_a" [r, in] and "<name>.lora_b" [out, r].
  void lora_params(std::vector<Param<T>>& p) {
    const int64_t in = this->in_, out = this->out_;
    p.push_back({name_ + ".lora_a", A_.data(), dA_.data(), rank_ * in, {rank_, in}});
    p.push_back({name_ + ".lora_b", B_.data(), dB_.data(), out * rank_, {out, rank_}});
  }

  // row[0..in) = (B·A)[o, :], summed j = 0..r−1 by the calling thread (deterministic).
  void delta_row(int64_t o, T* row) const {
    const int64_t in = this->in_;
    std::fill(row, row + in, T(0));
    const T* b = B_.data() + o * rank_;
    for (int j = 0; j < rank_; ++j) {
      const T bj = b[j];
      const T* a = A_.data() + j * in;
      for (int64_t k = 0; k < in; ++k) row[k] += bj * a[k];
    }
  }

  // The factors' gradients from dBA = dL/d(B·A) of rows [r0, r0 + nr) ([nr, in]).
  void factor_grads(const T* dba, int64_t r0, int64_t nr) {
    const int64_t in = this->in_;
    kernels::matmul_nt(dba, A_.data(), dB_.data() + r0 * rank_, nr, in, rank_, true);  // dB_t += dBA·Aᵀ
    kernels::matmul_tn(B_.data() + r0 * rank_, dba, dA_.data(), nr, in, rank_, true);  // dA += B_tᵀ·dBA
  }

  // Calls f(o, delta) for every row o (rows in parallel), delta = Derived::delta_row(o) in a
  // scratch row the callee may overwrite. For merges.
  template <class F>
  void for_each_row(F&& f) const {
    const int64_t in = this->in_, out = this->out_;
#pragma omp parallel
    {
      T* row = scratch<T, RequantLinear>(0, in);
#pragma omp for schedule(static)
      for (int64_t o = 0; o < out; ++o) {
        self().delta_row(o, row);
        f(o, row);
      }
    }
  }

  std::string name_;
  int rank_;

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
  Derived& self() { return static_cast<Derived&>(*this); }

  Buffer<T> A_, B_, dA_, dB_;  // A [r, in], B [out, r], grads alike
};

}  // namespace qtune
