// kernels/qblocks_packed.cpp — packing Q8_0 / Q4_0 weights into row-interleaved block records,
// back, dequantizing them, the portable group loop and the dispatcher (contract:
// qblocks_packed.h). The SIMD group loops are in qblocks_packed_simd.cpp.
#include "kernels/qblocks_packed.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/qblocks_packed_loops.h"
#include "kernels/qdot_blocks.h"

namespace qtune::kernels {

namespace {

constexpr int64_t kScaleBytes = 4 * kPackRows;  // a record's leading scales

// Owner of this file's thread-local scratch (calling thread: xq, d, isum of the tokens).
struct QpackScratch;

// Where code (row i of the group, column c of the block) lives in a record's code bytes, and
// whether it is the high nibble (4-bit). The layout of qblocks_packed.h.
struct CodeAt {
  int64_t byte;
  bool high;
};
CodeAt code_at(int bits, int64_t i, int64_t c) {
  if (bits == 8) return {(c / 4) * 64 + 4 * i + c % 4, false};
  const int64_t k = (c % 16) / 4;
  return {k * 64 + 4 * i + c % 4, c >= 16};
}

// The portable group loop: the same integers and float operations as the SIMD ones.
void group_scalar(int bits, const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum,
                  float* acc) {
  const int32_t off = 1 << (bits - 1);
  const int64_t rb = 4 * kPackRows + kPackRows * 32 * bits / 8;
  for (int i = 0; i < kPackRows; ++i) acc[i] = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* r = rec + b * rb;
    const float* sc = reinterpret_cast<const float*>(r);
    const int8_t* xb = xq + b * 32;
    const int32_t oi = off * isum[b];
    for (int i = 0; i < kPackRows; ++i) {
      int32_t u = 0;
      for (int c = 0; c < 32; ++c) {
        const CodeAt at = code_at(bits, i, c);
        const uint8_t v = r[kScaleBytes + at.byte];
        u += (bits == 8 ? v : at.high ? v >> 4 : v & 15) * xb[c];
      }
      acc[i] += (sc[i] * d[b]) * static_cast<float>(u - oi);
    }
  }
}

void group8_scalar(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc) {
  group_scalar(8, rec, nb, xq, d, isum, acc);
}
void group4_scalar(const uint8_t* rec, int64_t nb, const int8_t* xq, const float* d, const int32_t* isum, float* acc) {
  group_scalar(4, rec, nb, xq, d, isum, acc);
}

qpack::GroupFn group_for(Isa isa, int bits) {
  if (isa >= Isa::avx512vnni) return bits == 8 ? qpack::group8_vnni : qpack::group4_vnni;
  if (isa >= Isa::avx2) return bits == 8 ? qpack::group8_avx2 : qpack::group4_avx2;
  return bits == 8 ? group8_scalar : group4_scalar;
}

}  // namespace

bool packable(const QuantMatrix& W) {
  return (W.spec.bits == 8 || W.spec.bits == 4) && W.spec.symmetric && W.group_size() == 32 && W.rows > 0 &&
         W.cols > 0 && W.cols % 32 == 0 && qblocks_supported(W);
}

PackedBlocks pack_blocks(QuantMatrix&& W) {
  QT_CHECK(packable(W), "pack_blocks: a {}-bit [{}, {}] weight with groups of {} is not Q8_0 / Q4_0", W.spec.bits,
           W.rows, W.cols, W.group_size());
  PackedBlocks P;
  P.bits = W.spec.bits, P.rows = W.rows, P.cols = W.cols;
  const int64_t nb = P.blocks(), ng = P.row_groups(), rb = P.record_bytes();
  P.data.resize(static_cast<size_t>(ng * nb * rb));  // zeroed: padding rows stay 0
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < ng; ++g)
    for (int64_t i = 0; i < kPackRows && g * kPackRows + i < P.rows; ++i) {
      const int64_t r = g * kPackRows + i;
      const uint8_t* src = W.codes.data() + r * W.row_bytes();
      for (int64_t b = 0; b < nb; ++b) {
        uint8_t* rec = P.data.data() + (g * nb + b) * rb;
        reinterpret_cast<float*>(rec)[i] = W.scale[r * nb + b];
        uint8_t* dst = rec + kScaleBytes + 4 * i;  // this row's 4 bytes of each chunk (code_at)
        if (P.bits == 8) {
          for (int c = 0; c < 32; ++c) dst[(c / 4) * 64 + c % 4] = src[b * 32 + c];
        } else {  // loaded: column pairs per byte; packed: columns c and c + 16 per byte
          const uint8_t* s = src + b * 16;
          for (int c = 0; c < 16; ++c) {
            const uint8_t lo = c & 1 ? s[c / 2] >> 4 : s[c / 2] & 15;
            const uint8_t hi = c & 1 ? s[8 + c / 2] >> 4 : s[8 + c / 2] & 15;
            dst[(c / 4) * 64 + c % 4] = static_cast<uint8_t>(lo | hi << 4);
          }
        }
      }
    }
  W = QuantMatrix{};  // the loaded layout is gone: the packed one replaces it
  return P;
}

QuantMatrix unpack_blocks(const PackedBlocks& P) {
  QuantSpec spec;
  spec.bits = P.bits, spec.group = 32, spec.symmetric = true;
  QuantMatrix W = empty_quant_matrix(P.rows, P.cols, spec);
  const int64_t nb = P.blocks();
  for (int64_t r = 0; r < P.rows; ++r)
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* rec = P.record(r / kPackRows, b);
      const int64_t i = r % kPackRows;
      W.scale[r * nb + b] = reinterpret_cast<const float*>(rec)[i];
      for (int64_t c = 0; c < 32; ++c) {
        const CodeAt at = code_at(P.bits, i, c);
        const uint8_t v = rec[kScaleBytes + at.byte];
        W.set_code(r, b * 32 + c, P.bits == 8 ? v : at.high ? v >> 4 : v & 15);
      }
    }
  return W;
}

void dequantize_packed_rows(const PackedBlocks& P, int64_t r0, int64_t nr, float* out) {
  QT_ASSERT(r0 >= 0 && nr >= 0 && r0 + nr <= P.rows);
  const int64_t nb = P.blocks();
  const float off = static_cast<float>(1 << (P.bits - 1));
  for (int64_t k = 0; k < nr; ++k) {
    const int64_t r = r0 + k, i = r % kPackRows;
    float* o = out + k * P.cols;
    for (int64_t b = 0; b < nb; ++b, o += 32) {
      const uint8_t* rec = P.record(r / kPackRows, b);
      const float s = reinterpret_cast<const float*>(rec)[i];
      const uint8_t* row = rec + kScaleBytes + 4 * i;  // this row's 4 bytes of each chunk
      // s·(q − off): QuantMatrix::dequantize_rows' formula, so prefill's GEMM sees the same floats
      if (P.bits == 8) {
        for (int c = 0; c < 32; ++c) o[c] = s * (static_cast<float>(row[(c / 4) * 64 + c % 4]) - off);
      } else {
        for (int c = 0; c < 16; ++c) {
          const uint8_t v = row[(c / 4) * 64 + c % 4];
          o[c] = s * (static_cast<float>(v & 15) - off);
          o[c + 16] = s * (static_cast<float>(v >> 4) - off);
        }
      }
    }
  }
}

void qgemv_packed(const float* x, const PackedBlocks& P, float* y, int64_t n, bool accumulate) {
  qgemv_packed(x, P, y, n, accumulate, cpu_isa());
}

namespace {

// x [n, cols] quantized per block of 32 into the calling thread's scratch (read, not written, by
// the row-group loop's threads).
struct QuantizedTokens {
  const int8_t* xq;    // [n, in]
  const float* d;      // [n, nb]
  const int32_t* isum; // [n, nb]
};
QuantizedTokens quantize_tokens(const float* x, int64_t n, int64_t in, const char* who) {
  const int64_t nb = in / 32;
  int8_t* xq = scratch<int8_t, QpackScratch>(0, n * in);
  float* d = scratch<float, QpackScratch>(0, n * nb);
  int32_t* isum = scratch<int32_t, QpackScratch>(0, n * nb);
  int64_t bad = n;  // the first token with a non-finite activation
#pragma omp parallel for schedule(static) reduction(min : bad) if (n > 4)
  for (int64_t t = 0; t < n; ++t)
    if (!quantize_blocks(x + t * in, in, xq + t * in, d + t * nb, isum + t * nb)) bad = std::min(bad, t);
  QT_CHECK(bad == n, "{}: token {} has a non-finite activation (NaN or inf)", who, bad);
  return {xq, d, isum};
}

// Row group g of P against the n quantized tokens, into y [n, P.rows]: one iteration of the
// row-group loop (qgemv_packed runs it over one matrix, qgemv_packed_fused over several).
void run_group(const PackedBlocks& P, int64_t g, const QuantizedTokens& q, float* y, int64_t n, bool accumulate,
               Isa isa) {
  const int64_t in = P.cols, nb = P.blocks(), out = P.rows;
  const qpack::GroupFn group = group_for(isa, P.bits);
  const qpack::TokensFn tokens =
      isa >= Isa::avx512vnni ? (P.bits == 8 ? qpack::tokens8_vnni : qpack::tokens4_vnni) : nullptr;
  constexpr int64_t kT = qpack::kTokens;
  const int64_t r0 = g * kPackRows, nr = std::min(kPackRows, out - r0);
  const uint8_t* rec = P.data.data() + g * nb * P.record_bytes();
  alignas(64) float acc[kT * kPackRows];
  auto put = [&](int64_t t, const float* a) {
    float* yo = y + t * out + r0;
    for (int64_t i = 0; i < nr; ++i) yo[i] = accumulate ? yo[i] + a[i] : a[i];
  };
  int64_t t = 0;
  if (tokens)  // prefill: kT tokens per pass over the group's weights (read from cache kT times less)
    for (; t + kT <= n; t += kT) {
      tokens(rec, nb, q.xq + t * in, in, q.d + t * nb, q.isum + t * nb, nb, acc);
      for (int64_t j = 0; j < kT; ++j) put(t + j, acc + j * kPackRows);
    }
  for (; t < n; ++t) {
    group(rec, nb, q.xq + t * in, q.d + t * nb, q.isum + t * nb, acc);
    put(t, acc);
  }
}

}  // namespace

void qgemv_packed(const float* x, const PackedBlocks& P, float* y, int64_t n, bool accumulate, Isa isa) {
  QT_ASSERT(isa_supported(isa));
  QT_ASSERT(P.bits == 8 || P.bits == 4);
  if (n <= 0) return;
  const QuantizedTokens q = quantize_tokens(x, n, P.cols, "qgemv_packed");
  const int64_t ng = P.row_groups();
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < ng; ++g) run_group(P, g, q, y, n, accumulate, isa);
}

void qgemv_packed_fused(const float* x, const PackedBlocks* const* P, float* const* y, int count, int64_t n) {
  qgemv_packed_fused(x, P, y, count, n, cpu_isa());
}

void qgemv_packed_fused(const float* x, const PackedBlocks* const* P, float* const* y, int count, int64_t n,
                        Isa isa) {
  QT_ASSERT(isa_supported(isa));
  QT_ASSERT(count >= 1 && count <= kMaxFused);
  int64_t first[kMaxFused + 1] = {0};  // matrix j's row groups are [first[j], first[j + 1]) of the fused loop
  for (int j = 0; j < count; ++j) {
    QT_ASSERT(P[j]->bits == 8 || P[j]->bits == 4);
    QT_ASSERT(P[j]->cols == P[0]->cols);
    first[j + 1] = first[j] + P[j]->row_groups();
  }
  if (n <= 0) return;
  const QuantizedTokens q = quantize_tokens(x, n, P[0]->cols, "qgemv_packed_fused");
  const int64_t ng = first[count];
#pragma omp parallel for schedule(static)
  for (int64_t g = 0; g < ng; ++g) {
    int j = 0;
    while (g >= first[j + 1]) ++j;
    run_group(*P[j], g - first[j], q, y[j], n, false, isa);
  }
}

}  // namespace qtune::kernels
