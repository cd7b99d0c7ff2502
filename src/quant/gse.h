// quant/gse.h — GSE-INT(b, G, E): group-shared-exponent integers (GSQ-Tuning).
// Spec: docs/METHODS.md §8. The GEMM on this format is kernels/gse_gemm.h.
//
// A row-major [rows, cols] matrix is cut into groups of G consecutive values along each row
// (along cols: the reduction axis of the GEMM that will consume it; the last group of a row is
// short when cols % G != 0). A group shares one exponent e; each value is a signed b-bit
// mantissa:
//   Qmax = 2^(b−1) − 1                            b = 4..8, G ∈ {16, 32, 64, 128}
//   ceil rule: e = ceil(log2(max|x| / Qmax))      never saturates
//   mx rule:   e = floor(log2 max|x|) − (b − 2)   OCP MX's rule; can clip (see below)
//   e = clamp(e, emin, emax)                      all-zero group: e = emin, m = 0
//   m = clamp(round(x / 2^e), −Qmax, Qmax)        x̂ = m · 2^e
// round: nearest (half away from zero) or stochastic sign(v)·floor(|v| + u), u ~ U[0, 1) drawn
// from a counter-based hash of (seed, r·cols + c): a pure function of the element, so results
// do not depend on the thread count or the order of work.
//
// Exponent range. E bits hold e ∈ [−(2^(E−1) − 1), 2^(E−1) − 1]; E = 8 gives [−127, 127], the
// 255 exponents of OCP's E8M0 scale (2^−127 .. 2^127; E8M0 keeps its 256th code for NaN, we
// keep int8's −128 unused). The range is of e itself (the value's step), not of an MX-style
// scale that an implicit element factor shifts, so it does not depend on b and 2^(eA+eB) of two
// E8 operands stays in [2^−254, 2^254] (exact in double). For float32 input, e (before the
// clamp) lies in [−155, 126], so E ≥ 9 never clamps, and E = 8 clamps only tiny groups —
// max|x| ≤ Qmax·2^−128 (ceil) or < 2^(b−129) (mx) — which get the coarser step 2^−127 (no
// mantissa saturates: a larger e only shrinks |x|/2^e).
//
// Error bounds (nearest; per element, e the group's exponent after the clamp, E ≥ 8):
//   ceil: |x̂ − x| ≤ 2^(e−1) for every element — max|x| ≤ Qmax·2^e, so no mantissa saturates.
//   mx:   max|x|/2^e ∈ [2^(b−2), 2^(b−1)) = [2^(b−2), Qmax + 1): elements with
//         |x| ≤ (Qmax + ½)·2^e also have |x̂ − x| ≤ 2^(e−1); larger ones (only in the top half
//         step below 2^(b−1)·2^e) clip to ±Qmax with |x̂ − x| = |x| − Qmax·2^e < 2^e.
// Stochastic: |x̂ − x| < 2^e (ceil: for every element), and E[x̂] = x where no clip occurs.
//
// Relation to OCP MXINT8 (OCP Microscaling Formats spec v1.0; its reference code, Microsoft's
// microxcaling): a block of 32 has scale X = 2^s (E8M0, s ∈ [−127, 127]) with
// s = floor(log2 amax) − emax_elem, emax_elem = 0 for INT8, and int8 elements P with an implicit
// 2^−6 (two's complement, 1 integer + 6 fraction bits): value = X · P · 2^−6. The elements are
// round-half-away(V / X · 2^6) saturated to ±127/64 (never −128). So GSE-INT(8, 32, 8) with the
// mx rule and nearest rounding is MXINT8 with m = P and e = s − 6 (E8M0 byte = e + 133), bit for
// bit, for every block with amax ≥ 2^−121 (s ≥ −121: the two exponent ranges overlap); below
// that MXINT8's scale reaches 2^−127 (e = −133) where ours stops at e = −127. An all-zero block
// decodes to 0 in both; its exponent is ours emin, MX leaves it open (microxcaling: s = −126).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "core/buffer.h"

namespace qtune {

enum class GseRule { ceil, mx };
enum class GseRounding { nearest, stochastic };

struct GseSpec {
  int bits = 8;       // b: mantissa bits including the sign, 4..8
  int group = 32;     // G: 16, 32, 64 or 128
  int exp_bits = 8;   // E: 4..16
  GseRule rule = GseRule::ceil;
  GseRounding rounding = GseRounding::nearest;
  uint64_t seed = 0;  // stochastic rounding's hash key (callers vary it per step / tensor)

  int qmax() const { return (1 << (bits - 1)) - 1; }
  int emax() const { return (1 << (exp_bits - 1)) - 1; }
  int emin() const { return -emax(); }
  bool operator==(const GseSpec&) const = default;
};

// Throws Error naming the field for b outside 4..8, G not in {16, 32, 64, 128}, E outside 4..16.
void validate(const GseSpec& spec);

// "b=8,g=32,e=8,rule=mx,round=stochastic" → GseSpec. Every key is optional (defaults above);
// keys: b, g, e, rule (ceil | mx), round (nearest | stochastic). The seed is not a key: the run's
// seed drives it. Throws Error with one line naming the problem (unknown key, repeated key,
// malformed or out-of-range value, an item without '=').
GseSpec parse_gse_spec(std::string_view s);
// The canonical string of a spec (every key; parse_gse_spec's inverse).
std::string gse_spec_str(const GseSpec& spec);

// The value of the --gemm flag: "f32" (float GEMMs) or "gse:<spec>" (GSE GEMMs, the spec as
// parse_gse_spec takes it; "gse" alone or "gse:" = the default spec).
struct GemmMode {
  bool gse = false;
  GseSpec spec;
  bool bf16 = false;  // float GEMMs with bf16 operands (kernels/gemm_bf16.h); not GSE
  bool operator==(const GemmMode&) const = default;
};
GemmMode parse_gemm_mode(std::string_view s);
std::string gemm_mode_str(const GemmMode& m);

// A matrix in GSE form.
// Storage: one int8 per mantissa, whatever b ≤ 8 (not packed to b bits): the GEMM's SIMD loops
// multiply bytes as they are (vpdpbusd, vpmaddubsw) with no unpacking, and encode/decode stay
// byte-addressed. The format's true size (what packed storage would take: the memory figure of
// GSQ-Tuning) is format_bits(). Each row is padded with zero mantissas to whole groups, so
// every group is G bytes and the GEMM's loops have no tails (zeros add nothing to a dot).
// Exponents are int16 for every E ≤ 16 (1/G of the elements: 2/G bytes each; one type for
// both widths the brief allows).
// Invariant (encode guarantees it; hand-built matrices must keep it): |m| ≤ Qmax ≤ 127 and
// e ∈ [emin, emax] — the GEMM's AVX2 loops need |m| ≤ 127.
struct GseMatrix {
  GseSpec spec;
  int64_t rows = 0, cols = 0;
  Buffer<int8_t> mant;    // [rows, stride()], zero past cols
  Buffer<int16_t> exps;   // [rows, groups()]

  int64_t groups() const { return (cols + spec.group - 1) / spec.group; }
  int64_t stride() const { return groups() * spec.group; }
  int8_t m(int64_t r, int64_t c) const { return mant[r * stride() + c]; }
  int e(int64_t r, int64_t g) const { return exps[r * groups() + g]; }
  // m · 2^e in double (ldexp: exact while |e| < 1000, true of every encoded float input).
  double value(int64_t r, int64_t c) const;
  int64_t format_bits() const { return rows * cols * spec.bits + rows * groups() * spec.exp_bits; }
};

// Allocates (zeroed) an all-zero matrix: every m = 0, every e = emin.
GseMatrix gse_zeros(int64_t rows, int64_t cols, const GseSpec& spec);

// The exponent of a group whose largest magnitude is amax (finite, ≥ 0) under spec's rule and
// clamp: exact integer arithmetic (ilogb and ldexp, no log2 rounding).
int gse_exponent(float amax, const GseSpec& spec);

// x [rows, cols] → q. Reuses q's buffers when q already has this shape and group; OpenMP over
// rows. Throws Error naming the first (row, col) holding a NaN or inf (q is then unspecified).
void gse_encode(const float* x, int64_t rows, int64_t cols, const GseSpec& spec, GseMatrix& q);
GseMatrix gse_encode(const float* x, int64_t rows, int64_t cols, const GseSpec& spec);

// Rows [r0, r1) of an allocated q (shape and group fixed: gse_zeros) from x [r1 − r0, cols]: the
// same bytes as those rows of a whole-matrix encode (stochastic indices count from row 0 of q),
// so a large matrix can be encoded a block of rows at a time.
void gse_encode_rows(const float* x, int64_t r0, int64_t r1, const GseSpec& spec, GseMatrix& q);
// Rows [r0, r1) of q → x [r1 − r0, cols].
void gse_decode_rows(const GseMatrix& q, int64_t r0, int64_t r1, float* x);

// q → x [rows, cols]: x = float(m · 2^e). Exact, except that a ceil-rule group whose max|x| is
// within half a step of FLT_MAX may round up to 2^128 = ±inf in float (the GSE value itself is
// finite; the GEMM combines in double and does not see this).
void gse_decode(const GseMatrix& q, float* x);

}  // namespace qtune
