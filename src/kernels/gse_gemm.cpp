// kernels/gse_gemm.cpp — the GSE GEMM (contract: gse_gemm.h): the scalar reference, the packed
// panel driver, and its block loops — portable, AVX2 and AVX-512 VNNI, the SIMD ones with
// per-function target attributes (no -m flags; the dispatcher only calls what the CPU has).
//
// Layout. B is packed once per call into panels of NJ rows of B (NJ output columns): for each
// step of 4 k's, the panel holds NJ × 4 bytes, [k/4][NJ][4] — one vector of 4-byte column
// quadruples, the "VNNI layout". A row's 4 mantissas at a step are broadcast to every lane, so a
// single multiply-add updates NJ (or 16 per vector) output columns and no horizontal sum is
// needed. Per group (G/4 steps) each lane holds one exact dot_g(i, j); it is combined at once
// (gse_combine_group) into a double accumulator per output.
//
// Multiplies, and why each is exact:
//   VNNI   vpdpbusd multiplies u8 × s8 (4 products into an int32 lane, no saturation); both
//          operands are signed here, so the panel holds mB + 128 (u8, in [1, 255]) and
//          Σ (mB + 128)·mA = dot + 128·Σ_g mA: each group's lanes start at −128·Σ_g mA (the row
//          sums of A per group, computed once per call). Chosen over vpdpwssd on int16, which
//          would halve the products per instruction.
//   AVX2   vpmaddubsw multiplies u8 × s8 pairs into saturating int16: with |mA| (vpabsb) as the
//          u8 side and mB·sign(mA) (vpsignb) as the s8 one, a pair is ≤ 2·127·127 = 32258 <
//          2^15 (|m| ≤ 127), so it never saturates; vpmaddwd by 1 widens pairs to int32.
//   scalar plain int32 loops over the same (signed) panel.
// Rows of A go RA at a time (8 VNNI, 4 AVX2 / scalar); a short last block repeats its last row
// (computed, not stored). Padded panel columns are zero mantissas (stored: never).
#include "kernels/gse_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "core/buffer.h"
#include "core/error.h"

#define QT_AVX2 __attribute__((target("avx2,fma")))
#define QT_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace qtune::kernels {

namespace {

constexpr int kMaxRa = 8;            // rows of A per block, at most
constexpr int64_t kTileRows = 32;    // rows of A per parallel work item
constexpr int64_t kParallelMacs = 1 << 20;  // below this many products, one thread

struct GseScratch;  // owner of this file's scratch: uint8 0 panels; double 0 sb, 1 sa; int32 0 asum

// One call of a block loop: RA rows of A × one panel of B, every group.
struct Block {
  const int8_t* a[kMaxRa];     // rows of A (padded mantissas [kp])
  const double* sa[kMaxRa];    // [ng] 2^eA of each row
  const int32_t* asum[kMaxRa]; // [ng] Σ_g mA of each row (VNNI only)
  float* c[kMaxRa];            // C[row, j0 ..]
  int ra;                      // real rows (the rest repeat the last one)
  const uint8_t* panel;        // [kp/4][NJ][4]
  const double* sb;            // [ng][NJ] 2^eB, 0 for padded columns
  int64_t ng, G;
  int nj;                      // real columns
  bool accumulate;
};

using BlockFn = void (*)(const Block&);

inline int32_t load4(const int8_t* p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// ---- portable -------------------------------------------------------------------------------

template <int RA>
void block_scalar(const Block& bk) {
  constexpr int NJ = 16;
  double acc[RA][NJ] = {};
  int32_t dots[RA][NJ];
  const auto* p = reinterpret_cast<const int8_t*>(bk.panel);
  for (int64_t g = 0; g < bk.ng; ++g) {
    std::memset(dots, 0, sizeof(dots));
    for (int64_t s = 0; s < bk.G / 4; ++s, p += 4 * NJ)
      for (int r = 0; r < RA; ++r) {
        const int8_t* a = bk.a[r] + g * bk.G + 4 * s;
        for (int j = 0; j < NJ; ++j)
          for (int t = 0; t < 4; ++t) dots[r][j] += int32_t(a[t]) * int32_t(p[4 * j + t]);
      }
    for (int r = 0; r < RA; ++r) gse_combine_group(acc[r], dots[r], bk.sa[r][g], bk.sb + g * NJ, NJ);
  }
  for (int r = 0; r < bk.ra; ++r) gse_combine_store(acc[r], bk.c[r], bk.nj, bk.accumulate);
}

// ---- AVX2: 16 columns (2 × 8 int32 lanes) ----------------------------------------------------

template <int RA>
QT_AVX2 void block_avx2(const Block& bk) {
  constexpr int NJ = 16;
  alignas(32) double acc[RA][NJ] = {};
  alignas(32) int32_t dots[RA][NJ];
  const __m256i ones = _mm256_set1_epi16(1);
  const uint8_t* p = bk.panel;
  for (int64_t g = 0; g < bk.ng; ++g) {
    __m256i c0[RA], c1[RA];
    for (int r = 0; r < RA; ++r) c0[r] = c1[r] = _mm256_setzero_si256();
    for (int64_t s = 0; s < bk.G / 4; ++s, p += 4 * NJ) {
      const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
      const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(p + 32));
#pragma GCC unroll 4
      for (int r = 0; r < RA; ++r) {
        const __m256i av = _mm256_set1_epi32(load4(bk.a[r] + g * bk.G + 4 * s));
        const __m256i aa = _mm256_abs_epi8(av);
        c0[r] = _mm256_add_epi32(c0[r], _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b0, av)), ones));
        c1[r] = _mm256_add_epi32(c1[r], _mm256_madd_epi16(_mm256_maddubs_epi16(aa, _mm256_sign_epi8(b1, av)), ones));
      }
    }
    for (int r = 0; r < RA; ++r) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(dots[r]), c0[r]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(dots[r] + 8), c1[r]);
      gse_combine_group(acc[r], dots[r], bk.sa[r][g], bk.sb + g * NJ, NJ);
    }
  }
  for (int r = 0; r < bk.ra; ++r) gse_combine_store(acc[r], bk.c[r], bk.nj, bk.accumulate);
}

// ---- AVX-512 VNNI: 32 columns (2 × 16 int32 lanes), panel bytes mB + 128 -----------------------

template <int RA>
QT_VNNI void block_vnni(const Block& bk) {
  constexpr int NJ = 32;
  alignas(64) double acc[RA][NJ] = {};
  alignas(64) int32_t dots[RA][NJ];
  const uint8_t* p = bk.panel;
  for (int64_t g = 0; g < bk.ng; ++g) {
    __m512i c0[RA], c1[RA];
    for (int r = 0; r < RA; ++r) c0[r] = c1[r] = _mm512_set1_epi32(-128 * bk.asum[r][g]);
    for (int64_t s = 0; s < bk.G / 4; ++s, p += 4 * NJ) {
      const __m512i b0 = _mm512_load_si512(p), b1 = _mm512_load_si512(p + 64);
#pragma GCC unroll 8
      for (int r = 0; r < RA; ++r) {
        const __m512i av = _mm512_set1_epi32(load4(bk.a[r] + g * bk.G + 4 * s));
        c0[r] = _mm512_dpbusd_epi32(c0[r], b0, av);
        c1[r] = _mm512_dpbusd_epi32(c1[r], b1, av);
      }
    }
    for (int r = 0; r < RA; ++r) {
      _mm512_store_si512(dots[r], c0[r]);
      _mm512_store_si512(dots[r] + 16, c1[r]);
      gse_combine_group(acc[r], dots[r], bk.sa[r][g], bk.sb + g * NJ, NJ);
    }
  }
  for (int r = 0; r < bk.ra; ++r) gse_combine_store(acc[r], bk.c[r], bk.nj, bk.accumulate);
}

// ---- driver ---------------------------------------------------------------------------------

struct Level {
  int nj;       // panel width
  int ra;       // rows of A per block
  bool offset;  // panel bytes are mB + 128 (VNNI)
  BlockFn fn;
};

// The loops each level runs (cpu_features.h): AVX-512F / BW without VNNI run AVX2's.
Level level_for(Isa isa) {
  switch (isa) {
    case Isa::scalar: return {16, 4, false, block_scalar<4>};
    case Isa::avx2:
    case Isa::avx512f:
    case Isa::avx512bw: return {16, 4, false, block_avx2<4>};
    case Isa::avx512vnni: return {32, 8, true, block_vnni<8>};
  }
  QT_ASSERT(false);
  return {};
}

// One call's inputs, shared read-only by the tiles.
struct Job {
  const GseMatrix* A;
  float* C;
  int64_t m;
  bool accumulate;
  Level L;
  const uint8_t* panels;  // [np][kp/4][nj][4]
  const double* sb;       // [np][ng][nj]
  const double* sa;       // [n][ng]
  const int32_t* asum;    // [n][ng] or nullptr
};

// B → panels and their scales. Panel p holds rows j = p·nj + jj of B; rows past m are zero
// mantissas (byte 128 with the offset) with scale 0.
void pack_panels(const GseMatrix& B, const Level& L, uint8_t* panels, double* sb) {
  const int64_t m = B.rows, kp = B.stride(), ng = B.groups(), nj = L.nj, np = (m + nj - 1) / nj;
  const uint8_t off = L.offset ? 128 : 0;
#pragma omp parallel for schedule(static) if (m * kp > kParallelMacs / 16)
  for (int64_t p = 0; p < np; ++p) {
    uint8_t* pp = panels + p * kp * nj;
    double* sp = sb + p * ng * nj;
    for (int64_t jj = 0; jj < nj; ++jj) {
      const int64_t j = p * nj + jj;
      const int8_t* row = j < m ? B.mant.data() + j * kp : nullptr;
      for (int64_t s = 0; s < kp / 4; ++s)
        for (int t = 0; t < 4; ++t)
          pp[(s * nj + jj) * 4 + t] = static_cast<uint8_t>((row ? static_cast<uint8_t>(row[4 * s + t]) : 0) + off);
      for (int64_t g = 0; g < ng; ++g) sp[g * nj + jj] = row ? gse_pow2(B.e(j, g)) : 0.0;
    }
  }
}

// Rows [i0, i1) of A against panel p.
void run_tile(const Job& jb, int64_t i0, int64_t i1, int64_t p) {
  const GseMatrix& A = *jb.A;
  const int64_t kp = A.stride(), ng = A.groups(), nj = jb.L.nj;
  Block bk;
  bk.panel = jb.panels + p * kp * nj;
  bk.sb = jb.sb + p * ng * nj;
  bk.ng = ng;
  bk.G = A.spec.group;
  bk.nj = static_cast<int>(std::min(nj, jb.m - p * nj));
  bk.accumulate = jb.accumulate;
  for (int64_t i = i0; i < i1; i += jb.L.ra) {
    bk.ra = static_cast<int>(std::min<int64_t>(jb.L.ra, i1 - i));
    for (int r = 0; r < jb.L.ra; ++r) {
      const int64_t row = i + std::min(r, bk.ra - 1);
      bk.a[r] = A.mant.data() + row * kp;
      bk.sa[r] = jb.sa + row * ng;
      bk.asum[r] = jb.asum ? jb.asum + row * ng : nullptr;
      bk.c[r] = jb.C + row * jb.m + p * nj;
    }
    jb.L.fn(bk);
  }
}

void check_matrix(const GseMatrix& X, const char* name) {
  QT_CHECK(X.rows >= 0 && X.cols >= 0 && X.mant.size() == static_cast<size_t>(X.rows * X.stride()) &&
               X.exps.size() == static_cast<size_t>(X.rows * X.groups()),
           "gse_gemm: {} [{}, {}] (G = {}) has {} mantissas and {} exponents (inconsistent)", name, X.rows, X.cols,
           X.spec.group, X.mant.size(), X.exps.size());
}

// Shape checks shared by gse_gemm and ref::gse_gemm; false when there is nothing to do (C is
// zeroed for k == 0 without accumulate: an empty sum).
bool prepare(const GseMatrix& A, const GseMatrix& B, float* C, bool accumulate) {
  QT_CHECK(A.cols == B.cols, "gse_gemm: A [{}, {}] and B [{}, {}] differ in k (A·Bᵀ reduces over both rows)", A.rows,
           A.cols, B.rows, B.cols);
  QT_CHECK(A.spec.group == B.spec.group, "gse_gemm: A and B are grouped differently (G = {} and {})", A.spec.group,
           B.spec.group);
  validate(A.spec);
  validate(B.spec);
  check_matrix(A, "A");
  check_matrix(B, "B");
  if (A.rows == 0 || B.rows == 0) return false;
  if (A.cols == 0) {
    if (!accumulate) std::fill(C, C + A.rows * B.rows, 0.0f);
    return false;
  }
  return true;
}

}  // namespace

void gse_gemm(const GseMatrix& A, const GseMatrix& B, float* C, bool accumulate) {
  gse_gemm(A, B, C, accumulate, cpu_isa());
}

void gse_gemm(const GseMatrix& A, const GseMatrix& B, float* C, bool accumulate, Isa isa) {
  QT_ASSERT(isa_supported(isa));
  if (!prepare(A, B, C, accumulate)) return;
  const Level L = level_for(isa);
  const int64_t n = A.rows, m = B.rows, kp = A.stride(), ng = A.groups(), G = A.spec.group;
  const int64_t np = (m + L.nj - 1) / L.nj;
  uint8_t* panels = scratch<uint8_t, GseScratch>(0, np * kp * L.nj);
  double* sb = scratch<double, GseScratch>(0, np * ng * L.nj);
  double* sa = scratch<double, GseScratch>(1, n * ng);
  int32_t* asum = L.offset ? scratch<int32_t, GseScratch>(0, n * ng) : nullptr;
  pack_panels(B, L, panels, sb);
#pragma omp parallel for schedule(static) if (n * kp > kParallelMacs / 16)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t g = 0; g < ng; ++g) {
      sa[i * ng + g] = gse_pow2(A.e(i, g));
      if (asum) {
        int32_t s = 0;
        for (int64_t c = g * G; c < (g + 1) * G; ++c) s += A.mant[i * kp + c];
        asum[i * ng + g] = s;
      }
    }
  const Job jb{&A, C, m, accumulate, L, panels, sb, sa, asum};
  const int64_t nti = (n + kTileRows - 1) / kTileRows;
#pragma omp parallel for collapse(2) schedule(static) if (n * m * kp > kParallelMacs)
  for (int64_t ti = 0; ti < nti; ++ti)
    for (int64_t p = 0; p < np; ++p) run_tile(jb, ti * kTileRows, std::min(n, (ti + 1) * kTileRows), p);
}

namespace ref {

void gse_gemm(const GseMatrix& A, const GseMatrix& B, float* C, bool accumulate) {
  if (!prepare(A, B, C, accumulate)) return;
  const int64_t n = A.rows, m = B.rows, k = A.cols, ng = A.groups(), G = A.spec.group;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double acc = 0.0;
      for (int64_t g = 0; g < ng; ++g) {
        int32_t dot = 0;
        for (int64_t c = g * G; c < std::min(k, (g + 1) * G); ++c) dot += int32_t(A.m(i, c)) * int32_t(B.m(j, c));
        const double sb = gse_pow2(B.e(j, g));
        gse_combine_group(&acc, &dot, gse_pow2(A.e(i, g)), &sb, 1);
      }
      gse_combine_store(&acc, C + i * m + j, 1, accumulate);
    }
}

}  // namespace ref

}  // namespace qtune::kernels
