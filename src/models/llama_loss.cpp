// models/llama_loss.cpp — the float path's classifier and cross-entropy, fused and chunked: no
// [N, V] logits, softmax or gradient is ever held, only kCeRows rows of logits at a time.
//
// Per chunk of rows [r0, r1):  z = xf[r0:r1]·Wᵀ            [rows, V]   (GEMM)
//                              loss_r = lse(z_r) − z_r[y_r]             (rows with a target)
//   with grad:                 z ← dlogits = (softmax(z) − onehot(y)) / count   (0 on rows y < 0)
//                              dxf[r0:r1] = z·W,  dW += zᵀ·xf[r0:r1]
// count is the whole batch's number of targets (or the global batch's, Llama::forward's
// loss_count), known before the first chunk, so each chunk's gradient is final when computed and
// needs no second pass.
//
// When the gradient is made: a training forward is told a backward follows (Llama::forward's
// will_backward) and makes it here, while the logits are at hand (Impl::ce_ready); a forward
// that was not told leaves it to backward, which runs this again (the logits recomputed).
// Recomputing costs the classifier GEMM once more — the largest GEMM of a small model (V·C =
// 9.2M of stories15M's 15M weights): measured (2 threads, a loaded machine) ~9% of a stories15M
// LoRA B8×256 step (453 vs 415 tok/s, median of 3) and 20–30% of a one-layer model's
// (bench/ce_bench.cpp), while making the gradient in the forward costs nothing extra; an eval
// forward is not told, so it pays for no gradient.
//
// kCeRows = 256 by bench/ce_bench.cpp (CPU time per step at 64/128/256/512/2048 rows: 1226 /
// 937 / 870 / 858 / 924 ms): below 256 rows the GEMMs lose speed, above it only memory grows.
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "kernels/sgemm_parallel.h"
#include "kernels/softmax.h"
#include "models/llama.h"
#include "models/llama_impl.h"
#include "nn/parallel.h"

namespace qtune {

namespace {

// Rows z [rows, V] of logits → loss[r] = −log softmax(z_r)[y_r] (0 where y_r < 0). With inv > 0,
// z_r becomes the gradient of Σ loss · inv: (softmax − onehot)·inv, or 0 on rows without a target.
void xent_rows(float* z, const int* y, double* loss, int64_t rows, int64_t V, float inv, bool grad) {
#pragma omp parallel for schedule(static) if (rows * V >= nn::kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    float* zr = z + r * V;
    loss[r] = 0;
    if (y[r] < 0) {
      if (grad) std::fill(zr, zr + V, 0.0f);
      continue;
    }
    const float mx = kernels::row_max(zr, V);
    const float zy = zr[y[r]];
    const float sum = kernels::exp_shift_sum(zr, V, mx);  // zr = exp(z − mx)
    // −log p[y] = log(sum) − (z[y] − mx): exact even when p[y] underflows
    loss[r] = std::log(double(sum)) - double(zy - mx);
    if (!grad) continue;
    const float scale = inv / sum;
    for (int64_t j = 0; j < V; ++j) zr[j] *= scale;
    zr[y[r]] -= inv;
  }
}

}  // namespace

void Llama::set_loss_chunk(int64_t rows) {
  QT_CHECK(rows >= 1, "set_loss_chunk: rows must be at least 1, got {}", rows);
  impl_->ce_rows = rows;
  impl_->act_mem.resize(0);  // the next forward carves the chunk anew
}

double Llama::Impl::classifier_ce(const int* targets, bool grad) {
  const int64_t n = N(), C = cfg.dim, V = cfg.vocab_size;
  for (int64_t r = 0; r < n; ++r)
    QT_CHECK(targets[r] < V, "cross-entropy: target {} at row {} is outside the vocabulary ({} tokens)", targets[r], r,
             V);
  const int64_t counted = loss_denominator(targets);
  const float inv = counted ? 1.0f / static_cast<float>(counted) : 0.0f;
  std::vector<double> loss(static_cast<size_t>(std::min(n, ce_rows)));
  double total = 0;  // summed in row order: the same loss whatever the threads
  const kernels::Bf16Pin pin_classifier(p.output, V, C);  // --gemm bf16: converted once, not per chunk
  // --exact-sums (kernels::RowsPerSample set): chunks of whole sequences, or of one sequence's
  // rows, never across a sequence's end, so each sequence's logits are computed as if it were alone.
  const bool per_sequence = kernels::rows_per_sample() > 0;
  const int64_t step = per_sequence && ce_rows >= T ? ce_rows / T * T : ce_rows;
  for (int64_t r0 = 0, r1; r0 < n; r0 = r1) {
    r1 = std::min(n, r0 + step);
    if (per_sequence && step < T) r1 = std::min(r1, (r0 / T + 1) * T);
    const int64_t rows = r1 - r0;
    const float* xf = a.xf + r0 * C;
    kernels::matmul_nt(xf, p.output, a.logits, rows, C, V, false);  // z: [rows, V]
    xent_rows(a.logits, targets + r0, loss.data(), rows, V, inv, grad);
    for (int64_t r = 0; r < rows; ++r) total += loss[r];
    if (!grad) continue;
    kernels::matmul_nn(a.logits, p.output, d.dxn + r0 * C, rows, C, V, false);  // dxf: [rows, C]
    if (g.output) kernels::matmul_tn(a.logits, xf, g.output, rows, C, V, true);  // dW: [V, C]
  }
  return counted ? total / double(counted) : 0.0;
}

}  // namespace qtune
