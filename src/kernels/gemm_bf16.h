// kernels/gemm_bf16.h — the float GEMMs in bfloat16 (`--gemm bf16`): both operands rounded to
// bf16 (8 significant bits, round to nearest even), products summed in float. On a CPU with
// AVX512-BF16 (vdpbf16ps: two bf16 products per float lane) oneDNN's matmul runs them faster than
// fp32 sgemm (training tok/s: README "Side by side", bench/peers/run.sh).
//
// One process-wide switch, read by kernels/sgemm_parallel.cpp: while it is on, every float
// GEMM large enough to gain (sgemm_parallel; not the per-thread tiles of sgemm_serial, whose
// products are too small for a library call) runs here. Off by default: training at fp32 is
// unchanged; finetune turns it on for --gemm bf16.
#pragma once
#include <cstdint>

namespace qtune::kernels {

// AVX512-BF16 present (and QTUNE_CPU, kernels/cpu_features.h, not capping below avx512-vnni).
bool bf16_gemm_supported();
// Throws Error naming the CPU when !bf16_gemm_supported().
void require_bf16_gemm();
// Throws as require_bf16_gemm when on.
void set_bf16_gemm(bool on);
bool bf16_gemm();

// Turns the switch to `on` for its lifetime, then back (training steps run in bf16, validation
// between them at fp32: a held-out loss must not depend on --gemm).
class Bf16GemmScope {
 public:
  explicit Bf16GemmScope(bool on) : prev_(bf16_gemm()) { set_bf16_gemm(on); }
  ~Bf16GemmScope() { set_bf16_gemm(prev_); }
  Bf16GemmScope(const Bf16GemmScope&) = delete;
  Bf16GemmScope& operator=(const Bf16GemmScope&) = delete;

 private:
  bool prev_;
};

// A float matrix [rows, cols] (dense) that stays constant while the pin lives, converted to bf16
// once: sgemm_bf16 uses the copy for an operand at the same address and shape instead of
// converting it again (the classifier weight, multiplied once per chunk of rows). Does nothing
// while bf16_gemm() is off. Pins are made and dropped outside parallel regions.
class Bf16Pin {
 public:
  Bf16Pin(const float* m, int64_t rows, int64_t cols);
  ~Bf16Pin();
  Bf16Pin(const Bf16Pin&) = delete;
  Bf16Pin& operator=(const Bf16Pin&) = delete;

 private:
  bool active_ = false;
};

// C[M, N] = alpha · op(A) · op(B) + beta · C, row-major with leading dimensions (as
// cblas_sgemm), A and B rounded to bf16 first. Runs on OpenMP's threads (one when called
// inside a parallel region). Requires bf16_gemm_supported().
void sgemm_bf16(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// dst[r, c] = bf16(src[r·ld + c]) for r < rows, c < cols (dense rows of cols), round to
// nearest even: the rounding sgemm_bf16 applies (exposed for the tests).
void round_to_bf16(const float* src, int64_t rows, int64_t cols, int64_t ld, uint16_t* dst);

}  // namespace qtune::kernels
