// kernels/qdot_blocks.cpp — the decode product on block-quantized weights (contract:
// qdot_blocks.h): activation rounding, the scalar block dots, the one combine, the dispatcher.
//
// Work split: tiles of kTileRows weight rows in parallel (OpenMP). A tile's codes (≤ 16 rows of
// ≤ 2 KiB for the shapes of interest) stay in L1 while every token reuses them. Inside a tile,
// the loops of one path produce the exact per-block sums u[b, i] = Σ_{c∈b} code[i, c]·xq[c] of
// 4 rows at a time; combine() turns a tile's sums into y, vectorised across the tile's rows
// (each row is one lane, so the order of its float operations is the same on every path).
#include "kernels/qdot_blocks.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/buffer.h"
#include "core/error.h"
#include "kernels/qdot_blocks_loops.h"

namespace qtune::kernels {

namespace {

using qblk::kTileRows;

// Owner of this file's thread-local scratch. Calling thread: int8 0 = xq, float 0 = d, int32 0 =
// isum. Workers: int32 1 = a tile's sums, float 1 = a tile's block scales, float 2 = its offsets.
struct QblkScratch;

bool packed(const QuantMatrix& W) { return W.spec.bits <= 4; }

// A tile's float combination: y[i] (+)= Σ_b (sc[b, i]·d[b])·(u[b, i] − off·isum[b]) for rows
// i < nr of a kTileRows-row tile. Symmetric: off = sym_off, the difference an exact int32;
// asymmetric: off = of[b, i] (zero points may be fractional), in float. Out of line and
// compiled once: every path calls this same code.
__attribute__((noinline)) void combine(const int32_t* u, const float* sc, const float* of, int32_t sym_off,
                                       const float* d, const int32_t* isum, int64_t nb, float* y, int64_t nr,
                                       bool accumulate) {
  constexpr int R = kTileRows;
  float acc[R] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const float db = d[b];
    const int32_t is = isum[b];
    const int32_t* ub = u + b * R;
    const float* sb = sc + b * R;
    if (of == nullptr) {
      const int32_t oi = sym_off * is;
      for (int i = 0; i < R; ++i) acc[i] += (sb[i] * db) * static_cast<float>(ub[i] - oi);
    } else {
      const float fs = static_cast<float>(is);
      const float* ob = of + b * R;
      for (int i = 0; i < R; ++i) acc[i] += (sb[i] * db) * (static_cast<float>(ub[i]) - ob[i] * fs);
    }
  }
  for (int64_t i = 0; i < nr; ++i) y[i] = accumulate ? y[i] + acc[i] : acc[i];
}

// Σ_{c∈b} code·xq of 4 rows, block by block: the portable loops.
void dots4_scalar(const uint8_t* const* w, const int8_t* x, const int32_t*, int64_t nb, int32_t* u) {
  for (int i = 0; i < qblk::kRows; ++i)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* p = w[i] + b * kQBlock / 2;
      const int8_t* xb = x + b * kQBlock;
      int32_t s = 0;
      for (int k = 0; k < kQBlock / 2; ++k) s += (p[k] & 15) * xb[2 * k] + (p[k] >> 4) * xb[2 * k + 1];
      u[b * kTileRows + i] = s;
    }
}

void dots8_scalar(const uint8_t* const* w, const int8_t* x, const int32_t*, int64_t nb, int32_t* u) {
  for (int i = 0; i < qblk::kRows; ++i)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* p = w[i] + b * kQBlock;
      const int8_t* xb = x + b * kQBlock;
      int32_t s = 0;
      for (int k = 0; k < kQBlock; ++k) s += p[k] * xb[k];
      u[b * kTileRows + i] = s;
    }
}

void gather_scalar(const float* scale, const float* zero, int64_t ng, int64_t bpg, int64_t nb, int64_t nr, float* sc,
                   float* of) {
  for (int i = 0; i < kTileRows; ++i) {
    const int64_t k = std::min<int64_t>(i, nr - 1) * ng;
    for (int64_t b = 0; b < nb; ++b) {
      sc[b * kTileRows + i] = scale[k + b / bpg];
      if (zero) of[b * kTileRows + i] = zero[k + b / bpg];
    }
  }
}

qblk::DotsFn dots_for(Isa isa, bool nib) {
  if (isa >= Isa::avx512vnni) return nib ? qblk::dots4_vnni : qblk::dots8_vnni;
  if (isa >= Isa::avx2) return nib ? qblk::dots4_avx2 : qblk::dots8_avx2;
  return nib ? dots4_scalar : dots8_scalar;
}

// Rows [r0, r0 + nr) of W against every token.
void run_tile(const QuantMatrix& W, qblk::DotsFn dots, qblk::GatherFn gather, const int8_t* xq, const float* d,
              const int32_t* isum, int64_t n, float* y, bool accumulate, int64_t r0, int64_t nr) {
  constexpr int R = kTileRows;
  const int64_t in = W.cols, out = W.rows, nb = in / kQBlock, ng = W.groups_per_row(), rb = W.row_bytes();
  const int64_t bpg = W.group_size() / kQBlock;  // blocks per weight group
  int32_t* u = scratch<int32_t, QblkScratch>(1, nb * R);  // [nb, R]
  float* sc = scratch<float, QblkScratch>(1, nb * R);     // [nb, R] the weight scale of each block
  float* of = nullptr;                                    // [nb, R] zero points (asymmetric)
  if (!W.spec.symmetric) of = scratch<float, QblkScratch>(2, nb * R);
  gather(W.scale.data() + r0 * ng, of ? W.zero.data() + r0 * ng : nullptr, ng, bpg, nb, nr, sc, of);
  for (int64_t k = (r0 + R) * ng; k < std::min(out, r0 + 2 * R) * ng; k += 16) {  // the next tile's, in flight
    __builtin_prefetch(W.scale.data() + k);
    if (of) __builtin_prefetch(W.zero.data() + k);
  }
  const int32_t sym_off = W.spec.symmetric ? 1 << (W.spec.bits - 1) : 0;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t i0 = 0; i0 < nr; i0 += qblk::kRows) {
      const uint8_t* wp[qblk::kRows];  // a short block repeats its last row (computed, not stored)
      for (int i = 0; i < qblk::kRows; ++i) wp[i] = W.codes.data() + (r0 + std::min<int64_t>(i0 + i, nr - 1)) * rb;
      if (t == 0) {  // the next four rows' codes (contiguous), requested while these are multiplied
        const uint8_t* next = W.codes.data() + (r0 + i0 + qblk::kRows) * rb;
        const uint8_t* end = W.codes.data() + out * rb;
        for (int64_t k = 0; k < qblk::kRows * rb && next + k < end; k += 64) __builtin_prefetch(next + k);
      }
      dots(wp, xq + t * in, isum + t * nb, nb, u + i0);
    }
    combine(u, sc, of, sym_off, d + t * nb, isum + t * nb, nb, y + t * out + r0, nr, accumulate);
  }
}

}  // namespace

bool qblocks_supported(const QuantMatrix& W) {
  const int64_t gs = W.group_size();
  return W.spec.bits >= 2 && W.spec.bits <= 8 && W.rows > 0 && W.cols > 0 && gs % kQBlock == 0 && W.cols % gs == 0 &&
         W.codes.size() == static_cast<size_t>(W.rows * W.row_bytes()) &&
         W.scale.size() == static_cast<size_t>(W.rows * W.groups_per_row()) &&
         (W.spec.symmetric || W.zero.size() == W.scale.size());
}

bool quantize_blocks(const float* x, int64_t in, int8_t* xq, float* d, int32_t* isum) {
  return quantize_blocks(x, in, xq, d, isum, cpu_isa());
}

bool quantize_blocks(const float* x, int64_t in, int8_t* xq, float* d, int32_t* isum, Isa isa) {
  if (isa >= Isa::avx512f) return qblk::quantize_blocks_avx512(x, in, xq, d, isum);
  for (int64_t b = 0; b < in / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    float amax = 0;
    bool finite = true;
    for (int k = 0; k < kQBlock; ++k) {
      const float a = std::fabs(xb[k]);
      finite = finite && a <= FLT_MAX;
      amax = std::max(amax, a);
    }
    if (!finite) return false;
    const float db = amax / 127.0f;
    int32_t s = 0;
    for (int k = 0; k < kQBlock; ++k) {
      // round_half_away inline: std::round is a libm call on the x86-64 baseline (no SSE4.1),
      // which cost more than the dot products at prefill. |v| < 128, so the int cast truncates
      // exactly and v − trunc(v) is exact: the same q as std::round.
      const float v = db > 0 ? xb[k] / db : 0.0f;
      float q = static_cast<float>(static_cast<int32_t>(v));
      const float f = v - q;
      q += static_cast<float>(f >= 0.5f) - static_cast<float>(f <= -0.5f);
      q = std::clamp(q, -127.0f, 127.0f);
      xq[b * kQBlock + k] = static_cast<int8_t>(q);
      s += static_cast<int32_t>(q);
    }
    d[b] = db;
    isum[b] = s;
  }
  return true;
}

void qgemv_blocks(const float* x, const QuantMatrix& W, float* y, int64_t n, bool accumulate) {
  qgemv_blocks(x, W, y, n, accumulate, cpu_isa());
}

namespace {

void check_supported(const QuantMatrix& W) {
  QT_CHECK(qblocks_supported(W), "qgemv_blocks: a {}-bit [{}, {}] weight with groups of {} is not block-quantizable "
           "(needs 2..8 bits, groups a multiple of {} dividing the row)", W.spec.bits, W.rows, W.cols, W.group_size(),
           kQBlock);
}

// Both entries once the activations are integers: xq [n, in], d and isum [n, nb].
void run(const int8_t* xq, const float* d, const int32_t* isum, const QuantMatrix& W, float* y, int64_t n,
         bool accumulate, Isa isa) {
  const qblk::DotsFn dots = dots_for(isa, packed(W));
  const qblk::GatherFn gather = isa >= Isa::avx512f ? qblk::gather_avx512 : isa >= Isa::avx2 ? qblk::gather_avx2
                                                                                              : gather_scalar;
  const int64_t out = W.rows, ntiles = (out + kTileRows - 1) / kTileRows;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < ntiles; ++i)
    run_tile(W, dots, gather, xq, d, isum, n, y, accumulate, i * kTileRows,
             std::min<int64_t>(kTileRows, out - i * kTileRows));
}

}  // namespace

void qgemv_blocks(const float* x, const QuantMatrix& W, float* y, int64_t n, bool accumulate, Isa isa) {
  QT_ASSERT(isa_supported(isa));
  check_supported(W);
  if (n <= 0) return;
  const int64_t in = W.cols, nb = in / kQBlock;
  int8_t* xq = scratch<int8_t, QblkScratch>(0, n * in);  // [n, in]
  float* d = scratch<float, QblkScratch>(0, n * nb);     // [n, nb]
  int32_t* isum = scratch<int32_t, QblkScratch>(0, n * nb);
  for (int64_t t = 0; t < n; ++t)
    QT_CHECK(quantize_blocks(x + t * in, in, xq + t * in, d + t * nb, isum + t * nb),
             "qgemv_blocks: token {} has a non-finite activation (NaN or inf)", t);
  run(xq, d, isum, W, y, n, accumulate, isa);
}

void qgemv_blocks_int8(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n,
                       bool accumulate) {
  qgemv_blocks_int8(xq, a_scale, W, y, n, accumulate, cpu_isa());
}

void qgemv_blocks_int8(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n,
                       bool accumulate, Isa isa) {
  QT_ASSERT(isa_supported(isa));
  check_supported(W);
  if (n <= 0) return;
  const int64_t in = W.cols, nb = in / kQBlock;
  float* d = scratch<float, QblkScratch>(0, n * nb);  // [n, nb]: the token's one scale
  int32_t* isum = scratch<int32_t, QblkScratch>(0, n * nb);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t b = 0; b < nb; ++b) {
      int32_t s = 0;
      for (int64_t c = b * kQBlock; c < (b + 1) * kQBlock; ++c) s += xq[t * in + c];
      d[t * nb + b] = a_scale[t];
      isum[t * nb + b] = s;
    }
  run(xq, d, isum, W, y, n, accumulate, isa);
}

}  // namespace qtune::kernels
