// adapters/lora_branch.h — the low-rank branch s·(x·Aᵀ)·Bᵀ shared by lora, qlora and later
// methods that put a float LoRA next to some base (docs/METHODS.md §2).
//
//   A: [r, in]  Kaiming-uniform a=√5, i.e. U(−1/√in, 1/√in)      B: [out, r] zeros
//   s = α / r
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "adapters/gse_slot.h"
#include "adapters/linear.h"
#include "core/buffer.h"
#include "core/rng.h"

namespace qtune {

template <class T>
class LoraBranch {
 public:
  LoraBranch(int64_t in, int64_t out, int rank, float alpha, Rng& rng);

  // y[n, out] += s·(x·Aᵀ)·Bᵀ
  void forward_add(const T* x, T* y, int64_t n);
  // Accumulates dA, dB and (if dx) dx += s·(dy·B)·A. Recomputes h = x·Aᵀ (no saved state).
  void backward(const T* x, const T* dy, T* dx, int64_t n);
  // The same in GSE-INT (--gemm gse; T = float only; adapters/gse_slot.h): xq is x [n, in]
  // encoded along in, shared with the base's product; dyq is dy [n, out] encoded along out.
  // A and B change every step, so each pass encodes them (once, in the orientation it needs).
  void forward_add_gse(const GseMatrix& xq, T* y, int64_t n, const GseArith& ar);
  void backward_gse(const T* x, const GseMatrix& xq, const T* dy, const GseMatrix& dyq, T* dx, int64_t n,
                    const GseArith& ar, const Context& ctx);
  // Appends "<name>.lora_a" and "<name>.lora_b".
  void params(const std::string& name, std::vector<Param<T>>& out);
  // w[out, in] += s·B·A (float, for merge)
  void add_delta(float* w) const;

  int rank() const { return rank_; }
  T scale() const { return scale_; }
  int64_t bytes() const { return static_cast<int64_t>((A_.size() + B_.size()) * sizeof(T)); }
  int64_t scratch_bytes() const { return static_cast<int64_t>((h_.size() + dh_.size()) * sizeof(T)); }

 private:
  int64_t in_, out_;
  int rank_;
  T scale_;
  Buffer<T> A_, B_, dA_, dB_;  // A: [r, in]  B: [out, r], grads alike
  Buffer<T> h_, dh_;           // scratch [n, r], grown on demand
  void ensure_scratch(int64_t n);
};

}  // namespace qtune
