// kernels/igemm.cpp — integer inference GEMM (contract: igemm.h): activation quantization,
// the scalar reference, and the tiled dispatcher over the exact row-block dots of idot.cpp.
//
//   y[n, out] (+)= a_scale[t] · Σ_g w_scale[o, g]·(Σ_{c∈g} xq·code − off[o, g]·Σ_{c∈g} xq)
//
// Work split: tiles of ≤ 16 weight rows in parallel (OpenMP). A tile's ≤4-bit codes are
// unpacked once to one byte per code (thread-local scratch, L1-sized) and reused by every
// token — or, for a few tokens (generation), unpacked in registers at each use. Inside a
// tile, blocks of 4 rows × 2 tokens share each load and produce all of a row's group sums in
// one pass (idot.h). Every integer sum is exact and each y[t, o] is combined by
// igemm_combine in one thread, so y does not depend on the path, the tiling or the thread
// count.
#include "kernels/igemm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/buffer.h"
#include "core/error.h"
#include "kernels/idot.h"

namespace qtune::kernels {

namespace {

using idot::kRows;
using idot::kTokens;

constexpr int64_t kMaxTile = 16;           // weight rows per parallel work item
constexpr int64_t kTileBytes = 32 * 1024;  // unpacked codes of one tile: stays in L1
// Up to this many tokens, ≤4-bit codes are unpacked in registers at every use rather than once
// per tile into scratch (each row block is used ⌈n/2⌉ times).
constexpr int64_t kPackedMaxN = 4;

// Owner of this file's thread-local scratch, kept between calls (generation calls igemm once
// per token per layer). Slots: uint8 0 = unpacked codes; int64 0 = xsums, 1 = dots, 2 = one
// output's sums; float 0 = symmetric offsets; int8 0 = a row of ones; double 0 = a tile's wsum.
struct IgemmScratch;

struct Loops {
  idot::RowFn rows;
  idot::UnpackFn unpack;  // ≤4-bit codes
  idot::RowFn rows4;      // ≤4-bit codes read packed (nullptr: scalar)
};

// The loops each level runs (cpu_features.h): AVX-512F without BW (Xeon Phi) runs AVX2's.
Loops loops_for(Isa isa, int bits) {
  // bits ≤ 7: codes ≤ 127, where vpmaddubsw cannot saturate; 8: widened; 16: re-centred int16
  const bool b16 = bits == 16, b8 = bits == 8;
  switch (isa) {
    case Isa::scalar: return {b16 ? idot::dot16_scalar : idot::dot8_scalar, idot::unpack4_scalar, nullptr};
    case Isa::avx2:
    case Isa::avx512f:
      return {b16 ? idot::dot16_avx2 : b8 ? idot::dot8_avx2 : idot::dot7_avx2, idot::unpack4_avx2, idot::dot4_avx2};
    case Isa::avx512bw:
      return {b16 ? idot::dot16_avx512bw : b8 ? idot::dot8_avx512bw : idot::dot7_avx512bw, idot::unpack4_avx512bw,
              idot::dot4_avx512bw};
    case Isa::avx512vnni:
      return {b16 ? idot::dot16_vnni : idot::dot8_vnni, idot::unpack4_avx512bw, idot::dot4_vnni};
  }
  QT_ASSERT(false);
  return {};
}

// One call's read-only inputs.
struct Job {
  const int8_t* xq;        // [n, in]
  const float* a_scale;    // [n]
  const QuantMatrix* W;    // [out, in]
  float* y;                // [n, out]
  int64_t n;
  bool accumulate;
  const int64_t* xsums;    // [n, ng]: Σ_{c∈g} xq[t, c], shared by every row
  const float* sym_off;    // [ng] all 2^(b−1) (symmetric W), else nullptr: W.zero is the offset
  Loops loops;
  const int32_t* a_zero;   // [n] activation zero points (igemm_zp), or nullptr (igemm)
  const int8_t* ones;      // [in] all 1 when a_zero: the loops' Σ code·1 gives the code sums
};

// wsum[i·ng + g] = igemm_wsum(Σ_{c∈g} code[r0 + i, c], off, len_g) for the tile's rows, from the
// same loops with a token of ones ([nr, ng]; one extra single-token pass over the tile).
void tile_wsum(const Job& jb, const uint8_t* codes, int64_t stride, idot::RowFn rows, int64_t r0, int64_t nr,
               int64_t* dots, double* wsum) {
  const QuantMatrix& W = *jb.W;
  const int64_t in = W.cols, gs = W.group_size(), ng = W.groups_per_row();
  const int8_t* xp[kTokens] = {jb.ones, jb.ones};
  for (int64_t i0 = 0; i0 < nr; i0 += kRows) {
    const int mr = static_cast<int>(std::min<int64_t>(kRows, nr - i0));
    const uint8_t* wp[kRows];
    for (int i = 0; i < kRows; ++i) wp[i] = codes + (i0 + std::min(i, mr - 1)) * stride;
    rows(wp, xp, 1, in, gs, dots);  // [ng, 4]
    for (int i = 0; i < mr; ++i) {
      const int64_t o = r0 + i0 + i;
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t len = std::min(in, (g + 1) * gs) - g * gs;
        int64_t cs = dots[g * kRows + i];
        if (W.spec.bits == 16) cs += 32768 * len;  // the 16-bit loops return Σ (code − 32768)
        wsum[(i0 + i) * ng + g] = igemm_wsum(cs, W.offset(o, g), len);
      }
    }
  }
}

// Rows [r0, r0 + nr) of W against every token: y[:, r0 : r0 + nr].
void run_tile(const Job& jb, int64_t r0, int64_t nr) {
  const QuantMatrix& W = *jb.W;
  const int64_t in = W.cols, out = W.rows, gs = W.group_size(), ng = W.groups_per_row(), rb = W.row_bytes();
  const bool wide = W.spec.bits == 16;
  // the tile's codes: one byte per code (≤4-bit unpacked here), or as stored (5..8 and 16 bits)
  const uint8_t* codes = W.codes.data() + r0 * rb;
  int64_t stride = rb;
  idot::RowFn rows = jb.loops.rows;
  const bool packed = W.spec.bits <= 4 && jb.loops.rows4 && jb.n <= kPackedMaxN && (gs % 2 == 0 || ng == 1);
  if (packed) {
    rows = jb.loops.rows4;
  } else if (W.spec.bits <= 4) {
    uint8_t* u = scratch<uint8_t, IgemmScratch>(0, nr * 2 * rb);  // [nr, 2·rb]
    for (int64_t i = 0; i < nr; ++i) jb.loops.unpack(codes + i * rb, rb, u + i * 2 * rb);
    codes = u;
    stride = 2 * rb;
  }
  int64_t* dots = scratch<int64_t, IgemmScratch>(1, kRows * kTokens * ng);  // [ng, 4·nt] as the loops write it
  int64_t* row = scratch<int64_t, IgemmScratch>(2, ng);                      // one output's sums, [ng]
  double* wsum = nullptr;                                                    // [nr, ng] (igemm_zp)
  if (jb.a_zero) {
    wsum = scratch<double, IgemmScratch>(0, nr * ng);
    tile_wsum(jb, codes, stride, rows, r0, nr, dots, wsum);
  }
  for (int64_t t0 = 0; t0 < jb.n; t0 += kTokens) {
    const int nt = static_cast<int>(std::min<int64_t>(kTokens, jb.n - t0));
    const int8_t* xp[kTokens] = {jb.xq + t0 * in, jb.xq + (t0 + nt - 1) * in};
    const int64_t* xs = jb.xsums + t0 * ng;  // [nt, ng]
    for (int64_t i0 = 0; i0 < nr; i0 += kRows) {
      const int mr = static_cast<int>(std::min<int64_t>(kRows, nr - i0));
      const uint8_t* wp[kRows];  // a short block repeats its last row (computed, not stored)
      for (int i = 0; i < kRows; ++i) wp[i] = codes + (i0 + std::min(i, mr - 1)) * stride;
      rows(wp, xp, nt, in, gs, dots);
      const int A = kRows * nt;
      for (int i = 0; i < mr; ++i) {
        const int64_t o = r0 + i0 + i;
        const float* off = jb.sym_off ? jb.sym_off : W.zero.data() + o * ng;
        for (int j = 0; j < nt; ++j) {
          const int64_t t = t0 + j;
          for (int64_t g = 0; g < ng; ++g) row[g] = dots[g * A + i * nt + j];
          if (wide)  // the 16-bit loops return Σ (code − 32768)·xq
            for (int64_t g = 0; g < ng; ++g) row[g] += 32768 * xs[j * ng + g];
          const float v = igemm_combine(row, xs + j * ng, W.scale.data() + o * ng, off, ng, jb.a_scale[t],
                                        wsum ? wsum + (i0 + i) * ng : nullptr, jb.a_zero ? jb.a_zero[t] : 0);
          float* yo = jb.y + t * out + o;
          *yo = jb.accumulate ? *yo + v : v;
        }
      }
    }
  }
}

// Shape and size checks shared by igemm and ref::igemm; false when there is nothing to do
// (y is zeroed for in == 0 without accumulate: an empty sum).
bool prepare(const QuantMatrix& W, float* y, int64_t n, bool accumulate) {
  QT_CHECK(quant_bits_supported(W.spec.bits), "igemm: {}-bit codes are not supported (valid: 2..8, 16)", W.spec.bits);
  QT_CHECK(n >= 0 && W.rows >= 0 && W.cols >= 0, "igemm: invalid shape n = {}, W [{}, {}]", n, W.rows, W.cols);
  if (n == 0 || W.rows == 0) return false;
  if (W.cols == 0) {
    if (!accumulate) std::fill(y, y + n * W.rows, 0.0f);
    return false;
  }
  const auto ns = static_cast<size_t>(W.rows * W.groups_per_row());
  QT_CHECK(W.codes.size() == static_cast<size_t>(W.rows * W.row_bytes()) && W.scale.size() == ns &&
               (W.spec.symmetric || W.zero.size() == ns),
           "igemm: quantized matrix [{}, {}] has {} code bytes, {} scales, {} zeros (inconsistent)", W.rows, W.cols,
           W.codes.size(), W.scale.size(), W.zero.size());
  return true;
}

}  // namespace

void quantize_activations(const float* x, int64_t n, int64_t in, float static_scale, int8_t* xq, float* scale) {
  quantize_activations(x, n, in, static_scale, xq, scale, cpu_isa());
}

void quantize_activations(const float* x, int64_t n, int64_t in, float static_scale, int8_t* xq, float* scale,
                          Isa isa) {
  QT_CHECK(n >= 0 && in >= 0, "quantize_activations: invalid shape [{}, {}]", n, in);
  QT_CHECK(std::isfinite(static_scale) && static_scale >= 0,
           "quantize_activations: static scale {} is invalid (0 = dynamic per token, or a positive scale)",
           static_scale);
  QT_ASSERT(isa_supported(isa));
  // the AVX-512 versions use BW's byte ops; AVX-512F alone runs the AVX2 ones
  const bool a512 = isa >= Isa::avx512bw, a256 = !a512 && isa >= Isa::avx2;
  const idot::AbsMaxFn absmax = a512 ? idot::absmax_avx512 : a256 ? idot::absmax_avx2 : idot::absmax_scalar;
  const idot::QuantRowFn quant = a512 ? idot::quantize_row_avx512 : a256 ? idot::quantize_row_avx2
                                                                         : idot::quantize_row_scalar;
  int64_t bad = -1;  // the first token with a non-finite value (reported after the parallel loop)
#pragma omp parallel for schedule(static) if (n * in > 65536)
  for (int64_t t = 0; t < n; ++t) {
    float amax;
    const bool finite = absmax(x + t * in, in, &amax);
    // dynamic: max|x|/127; a zero row (or one so tiny that max|x|/127 underflows) gets 1
    float s = static_scale > 0 ? static_scale : amax / 127.0f;
    if (!(s > 0)) s = 1.0f;
    scale[t] = s;
    if (finite) {
      quant(x + t * in, in, s, xq + t * in);
    } else {
      std::fill(xq + t * in, xq + (t + 1) * in, int8_t(0));
#pragma omp critical(qtune_igemm_bad)
      bad = bad < 0 ? t : std::min(bad, t);
    }
  }
  QT_CHECK(bad < 0, "quantize_activations: token {} has a non-finite activation (NaN or inf)", bad);
}

void quantize_activations_asym(const float* x, int64_t n, int64_t in, const float* scale, const int32_t* zero,
                               int bits, int8_t* xq, int32_t* zero_carried) {
  QT_CHECK(bits >= 2 && bits <= 8, "quantize_activations_asym: {}-bit activations are not supported (valid: 2..8)",
           bits);
  QT_CHECK(n >= 0 && in >= 0, "quantize_activations_asym: invalid shape [{}, {}]", n, in);
  const int32_t qmax = (1 << bits) - 1, mid = 1 << (bits - 1);
  for (int64_t t = 0; t < n; ++t) {
    QT_CHECK(std::isfinite(scale[t]) && scale[t] > 0,
             "quantize_activations_asym: token {} has scale {} (must be finite and > 0)", t, scale[t]);
    QT_CHECK(zero[t] >= 0 && zero[t] <= qmax,
             "quantize_activations_asym: token {} has zero point {} outside [0, {}] for {}-bit activations", t,
             zero[t], qmax, bits);
  }
  int64_t bad = -1;  // the first token with a non-finite value (reported after the parallel loop)
#pragma omp parallel for schedule(static) if (n * in > 65536)
  for (int64_t t = 0; t < n; ++t) {
    const float s = scale[t];
    const int32_t z = zero[t];
    zero_carried[t] = z - mid;
    bool finite = true;
    for (int64_t c = 0; c < in; ++c) {
      const float v = x[t * in + c];
      finite = finite && std::isfinite(v);
      // round(x / s) in float as the fake quantizer, clamped to [−z, qmax − z] while still a
      // float (x / s may be huge; NaN of a non-finite x becomes 0 here and throws below)
      const float r = std::round(v / s);
      const float rc = r >= static_cast<float>(-z) ? std::min(r, static_cast<float>(qmax - z)) : static_cast<float>(-z);
      xq[t * in + c] = static_cast<int8_t>(static_cast<int32_t>(rc) + z - mid);
    }
    if (!finite) {
#pragma omp critical(qtune_igemm_bad)
      bad = bad < 0 ? t : std::min(bad, t);
    }
  }
  QT_CHECK(bad < 0, "quantize_activations_asym: token {} has a non-finite activation (NaN or inf)", bad);
}

void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate) {
  igemm(xq, a_scale, W, y, n, accumulate, cpu_isa());
}

namespace {

// igemm and igemm_zp (a_zero == nullptr: no zero-point term).
void run(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y, int64_t n,
         bool accumulate, Isa isa) {
  QT_ASSERT(isa_supported(isa));
  if (!prepare(W, y, n, accumulate)) return;
  const int64_t in = W.cols, out = W.rows, gs = W.group_size(), ng = W.groups_per_row();
  // xsums[t, g] = Σ_{c∈g} xq[t, c], once per call (every row of W needs it)
  int64_t* xsums = scratch<int64_t, IgemmScratch>(0, n * ng);
#pragma omp parallel for schedule(static) if (n * in > 65536)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t g = 0; g < ng; ++g) {
      int64_t s = 0;
      for (int64_t c = g * gs; c < std::min(in, (g + 1) * gs); ++c) s += xq[t * in + c];
      xsums[t * ng + g] = s;
    }
  float* sym_off = nullptr;
  if (W.spec.symmetric) {
    sym_off = scratch<float, IgemmScratch>(0, ng);
    std::fill(sym_off, sym_off + ng, W.offset(0, 0));
  }
  int8_t* ones = nullptr;
  if (a_zero) {
    ones = scratch<int8_t, IgemmScratch>(0, in);
    std::fill(ones, ones + in, int8_t(1));
  }
  const Job jb{xq, a_scale, &W, y, n, accumulate, xsums, sym_off, loops_for(isa, W.spec.bits), a_zero, ones};
  // tile rows: a multiple of the block height, as many as keep the unpacked codes in L1
  const int64_t code_bytes = W.spec.bits <= 4 ? 2 * W.row_bytes() : W.row_bytes();
  const int64_t tile = std::clamp<int64_t>(kTileBytes / code_bytes / kRows * kRows, kRows, kMaxTile);
  const int64_t ntiles = (out + tile - 1) / tile;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < ntiles; ++i) run_tile(jb, i * tile, std::min(tile, out - i * tile));
}

// The reference of both: plain loops, int64 sums, igemm_combine (wsum from igemm_wsum).
void run_ref(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y, int64_t n,
             bool accumulate) {
  if (!prepare(W, y, n, accumulate)) return;
  const int64_t in = W.cols, out = W.rows, gs = W.group_size(), ng = W.groups_per_row();
  std::vector<int64_t> dots(ng), xsums(ng);
  std::vector<float> off(ng);
  std::vector<double> wsum(ng);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t g = 0; g < ng; ++g) {
        const int64_t c0 = g * gs, c1 = std::min(in, (g + 1) * gs);
        int64_t d = 0, s = 0, cs = 0;
        for (int64_t c = c0; c < c1; ++c) {
          d += static_cast<int64_t>(xq[t * in + c]) * static_cast<int64_t>(W.code(o, c));
          s += xq[t * in + c];
          cs += W.code(o, c);
        }
        dots[g] = d;
        xsums[g] = s;
        off[g] = W.offset(o, g);
        wsum[g] = igemm_wsum(cs, off[g], c1 - c0);
      }
      const float v = igemm_combine(dots.data(), xsums.data(), W.scale.data() + o * ng, off.data(), ng, a_scale[t],
                                    a_zero ? wsum.data() : nullptr, a_zero ? a_zero[t] : 0);
      y[t * out + o] = accumulate ? y[t * out + o] + v : v;
    }
  }
}

}  // namespace

void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate,
           Isa isa) {
  run(xq, a_scale, nullptr, W, y, n, accumulate, isa);
}

void igemm_zp(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y,
              int64_t n, bool accumulate) {
  run(xq, a_scale, a_zero, W, y, n, accumulate, cpu_isa());
}

void igemm_zp(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y,
              int64_t n, bool accumulate, Isa isa) {
  run(xq, a_scale, a_zero, W, y, n, accumulate, isa);
}

namespace ref {

void igemm(const int8_t* xq, const float* a_scale, const QuantMatrix& W, float* y, int64_t n, bool accumulate) {
  run_ref(xq, a_scale, nullptr, W, y, n, accumulate);
}

void igemm_zp(const int8_t* xq, const float* a_scale, const int32_t* a_zero, const QuantMatrix& W, float* y,
              int64_t n, bool accumulate) {
  run_ref(xq, a_scale, a_zero, W, y, n, accumulate);
}

}  // namespace ref

}  // namespace qtune::kernels
