// kernels/qblocks_packed.h — Q8_0 / Q4_0 weights repacked for decoding, and their product.
//
// qgemv_blocks (qdot_blocks.h) reads a QuantMatrix as loaded: codes row by row, the block scales
// in a separate array. Its inner loop reduces each row's per-block sums across lanes, then
// gathers the scales apart from the codes and combines both in a second pass. Here the same
// weights are stored once in the order the decode loop reads them:
//
//   16 rows interleaved (rows are the SIMD lanes), one record per block of 32 columns:
//     record(g, b) = [ scale of rows 16g..16g+15 (16 floats) | codes of those rows, 32 columns ]
//   codes, 8-bit:  8 chunks of 64 bytes; chunk k, byte 4i + j = code(16g + i, 4k + j)
//          4-bit:  4 chunks of 64 bytes; chunk k, byte 4i + j = code(16g + i, 4k + j)
//                                                            | code(16g + i, 16 + 4k + j) << 4
//   records in (g, b) order: one row group's weights are one contiguous stream.
//
// So a vpdpbusd of a chunk against four activation bytes broadcast gives 16 rows' partial sums in
// 16 lanes (no horizontal reduction), the block's scales are the next 64 bytes, and the float
// combination runs on the same lanes. Rows past `rows` (the last group's padding) are zero.
//
// Exactness: the per-block integers Σ code·xq are exact on every path, and each row's float
// combination is the very sequence of operations of qgemv_blocks' combine():
//   acc += (scale·d[b])·float(Σ code·xq − off·Σ xq)     b = 0, 1, …   (no FMA: this file is
//                                                                     compiled -ffp-contract=off)
// so qgemv_packed returns y bit-identical to qgemv_blocks on the unpacked matrix, at every level.
#pragma once
#include <cstdint>

#include "core/buffer.h"
#include "kernels/cpu_features.h"
#include "quant/quant.h"

namespace qtune::kernels {

constexpr int64_t kPackRows = 16;  // rows interleaved per record (one zmm of int32/float lanes)

struct PackedBlocks {
  int bits = 0;  // 8 (Q8_0) or 4 (Q4_0); codes offset by 2^(bits−1) as in QuantMatrix
  int64_t rows = 0, cols = 0;
  Buffer<uint8_t> data;  // row_groups() · blocks() records of record_bytes()

  int64_t blocks() const { return cols / 32; }
  int64_t row_groups() const { return (rows + kPackRows - 1) / kPackRows; }
  int64_t record_bytes() const { return 4 * kPackRows + kPackRows * 32 * bits / 8; }  // 576 / 320
  const uint8_t* record(int64_t g, int64_t b) const { return data.data() + (g * blocks() + b) * record_bytes(); }
  int64_t bytes() const { return static_cast<int64_t>(data.size()); }
};

// True for the layouts packing takes: symmetric 8- or 4-bit codes in groups of 32 (Q8_0, Q4_0).
bool packable(const QuantMatrix& W);

// The packed form of W (packable(W)): the same bytes (codes, float scales; the last row group
// padded with zero rows). W's memory is released on return, so a model holds one copy; both
// exist only for one matrix during the call. unpack_blocks gives W back exactly (for merge,
// backward, and tests).
PackedBlocks pack_blocks(QuantMatrix&& W);
QuantMatrix unpack_blocks(const PackedBlocks& P);

// Rows [r0, r0 + nr) dequantized into out[nr, cols]: the same floats as
// QuantMatrix::dequantize_rows of the unpacked matrix (prefill's float GEMM reads these).
void dequantize_packed_rows(const PackedBlocks& P, int64_t r0, int64_t nr, float* out);

// y[n, rows] (+)= x[n, cols] · deq(P)ᵀ with x quantized per block of 32 (quantize_blocks);
// bit-identical to qgemv_blocks(x, unpack_blocks(P), …), and each row of y the same whatever n.
// OpenMP over row groups (one static split). n: decode's few tokens, or a prompt's many (VNNI
// runs 8 tokens per pass over a row group: the weights are read from memory once per call, not
// once per token). Non-finite x throws qtune::Error.
void qgemv_packed(const float* x, const PackedBlocks& P, float* y, int64_t n, bool accumulate);
// Same at an explicit level, isa_supported(isa): avx512vnni runs vpdpbusd, avx2 / avx512f /
// avx512bw the maddubs loops (one token per pass), scalar the portable ones.
void qgemv_packed(const float* x, const PackedBlocks& P, float* y, int64_t n, bool accumulate, Isa isa);

// Several products of the same x at once, y[j][n, P[j]->rows] = x · deq(*P[j])ᵀ (overwritten),
// each bit-identical to qgemv_packed(x, *P[j], y[j], n, false): x is quantized once and one
// OpenMP loop runs over all matrices' row groups in turn, so decode's q/k/v (or gate/up) cost
// one fork/join instead of one each. The matrices share cols; count ≤ kMaxFused.
constexpr int kMaxFused = 4;
void qgemv_packed_fused(const float* x, const PackedBlocks* const* P, float* const* y, int count, int64_t n);
void qgemv_packed_fused(const float* x, const PackedBlocks* const* P, float* const* y, int count, int64_t n,
                        Isa isa);

}  // namespace qtune::kernels
