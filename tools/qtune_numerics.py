"""qtune's documented numeric conventions, written independently in numpy for tools/torch_reference_int.py.

Two things the integer methods' reference must reproduce bit for bit, because integers are
compared exactly:

  * the random auxiliary matrix R of IntLoRA. qtune draws it from core/rng.h: xoshiro256** seeded
    by splitmix64 for the sequential stream, and for R a counter-based draw
    Laplace(0, b) at (key, i) = (u < 0 ? b : -b) * log(1 - 2|u|), u = (splitmix64(key ^ i*C) >> 11) * 2^-53 - 0.5,
    evaluated in double and rounded to float once;
  * the uniform b-bit quantizer of docs/METHODS.md §1 (per row, asymmetric, min/max range or the
    80-candidate |ŵ − w|^2.4 search) evaluated in float32, the precision qtune stores weights and
    scales in: every formula of §1 is taken literally, one float32 rounding per operation, in the
    order written there (Δ = (mx − mn)/(L − 1), z = round(−mn/Δ), q = clamp(round(w/Δ) + z, 0, L − 1)).
    Only the search's error sum is a float64 sum of float32 terms |e|·|e|·|e|^0.4, in column order.

round is half away from zero. Everything here is numpy; nothing calls qtune.
"""
import math

import numpy as np

F32 = np.float32
M64 = (1 << 64) - 1


# ----------------------------------------------------------------------------------------------
# core/rng.h

def _splitmix(z):
    """splitmix64 step: returns (new state, output)."""
    z = (z + 0x9E3779B97F4A7C15) & M64
    r = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    r = ((r ^ (r >> 27)) * 0x94D049BB133111EB) & M64
    return z, r ^ (r >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256ss:
    """xoshiro256** with the 4 state words expanded from the seed by splitmix64 (qtune's Rng)."""

    def __init__(self, seed):
        z, self.s = seed, []
        for _ in range(4):
            z, word = _splitmix(z)
            self.s.append(word)

    def next_u64(self):
        s = self.s
        result = (_rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
        return result


def laplace_at(key, n, b=0.5):
    """float32 [n]: the counter-based Laplace(0, b) draws at (key, i), i = 0..n-1."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as in C++
        z = np.uint64(key) ^ (np.arange(n, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03))
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 - 0.5
    a = np.maximum(1.0 - 2.0 * np.abs(u), 1e-300)
    log_a = np.array([math.log(x) for x in a.tolist()])  # the C library's log, as the C++ (numpy may use SIMD code)
    return (np.where(u < 0, b, -b) * log_a).astype(F32)


# ----------------------------------------------------------------------------------------------
# docs/METHODS.md §1 in float32

def rnd(x):
    """round half away from zero of float32 values, as float64 (|x| + 0.5 is exact in float64;
    in float32 0.49999997 + 0.5 would round up to 1)."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _params(mn, mx, shrink, L1):
    """Δ, z [rows] for the range [mn·shrink, mx·shrink]; a range <= 1e-30 is all zero (Δ = 1, z = 0)."""
    lo, hi = mn * shrink, mx * shrink
    span = hi - lo
    ok = span > F32(1e-30)
    scale = np.where(ok, span / L1, F32(1)).astype(F32)
    zero = np.where(ok, np.clip(rnd(-lo / scale), 0, L1), 0).astype(F32)
    return scale, zero


def _codes(x, scale, zero, L1):
    """q − z [rows, n] (float64 integers) of x [rows, n] under per-row Δ, z."""
    return np.clip(rnd(x / scale[:, None]) + zero[:, None], 0, L1) - zero[:, None]


def _lp_error(x, scale, zero, L1):
    """Σ_c |ŵ − x|^2.4 per row: float32 terms |e|·|e|·|e|^0.4, summed in column order in float64."""
    e = np.abs(scale[:, None] * _codes(x, scale, zero, L1).astype(F32) - x)
    p = (e.astype(np.float64) ** np.float64(F32(0.4))).astype(F32)  # powf(|e|, 0.4f)
    return np.cumsum(((e * e) * p).astype(np.float64), axis=1)[:, -1]  # cumsum: a sequential sum


def choose_range(x, bits, mse):
    """Per-row asymmetric b-bit range of x [rows, n] float32 -> Δ, z [rows] float32.
    The range always contains 0: mn = min(min x, 0), mx = max(max x, 0). mse: shrink both ends by
    (1 − 0.01 i), i = 0..79, keep the lowest |ŵ − x|^2.4 sum; ties keep the earlier (wider) range."""
    L1 = F32(2**bits - 1)
    mn, mx = np.minimum(x.min(1), F32(0)), np.maximum(x.max(1), F32(0))
    scale, zero = _params(mn, mx, F32(1), L1)
    if not mse:
        return scale, zero
    best = _lp_error(x, scale, zero, L1)
    for i in range(1, 80):
        s, z = _params(mn, mx, F32(1) - F32(0.01) * F32(i), L1)
        err = _lp_error(x, s, z, L1)
        better = err < best
        best = np.where(better, err, best)
        scale, zero = np.where(better, s, scale), np.where(better, z, zero)
    return scale, zero


def quantize(w, bits, mse):
    """Per-row asymmetric b-bit quantization of w [rows, n] float32 -> Δ [rows], z [rows] (float32)
    and the signed integers q − z [rows, n] (int64)."""
    scale, zero = choose_range(w, bits, mse)
    return scale, zero, _codes(w, scale, zero, F32(2**bits - 1)).astype(np.int64)


def ba_f32(A, B):
    """(B·A) [out, in] in float32, A [r, in], B [out, r] float32: summed j = 0..r−1 in order with one
    rounding per product and per sum (qtune computes the integer methods' B·A this way, so the integers
    do not depend on a BLAS)."""
    ba = np.zeros((B.shape[0], A.shape[1]), F32)
    for j in range(A.shape[0]):
        ba = ba + B[:, j:j + 1] * A[j:j + 1, :]
    return ba
