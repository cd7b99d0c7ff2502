#!/usr/bin/python3
"""Golden reference for the integer methods and for AdamW training, on stories260K, in PyTorch.

Regenerate the committed dump (deterministic; ~10 s on one core):

    /usr/bin/python3 tools/torch_reference_int.py \
        --model ../shared/models/stories260K/stories260K.bin --out tests/data/stories260K_int_ref.bin

It reuses tools/torch_reference.py's float64 LLaMA, its fixed batch (B=2, T=32) and its fixed
nonzero LoRA tensors (rank 4, seed 4321: "lora.<stem>.lora_a/b" in tests/data/stories260K_ref.bin,
which the C++ tests load them from; "ab_fingerprint" here guards that both dumps agree), rounded to
float32 first since integers depend on them. Written from docs/METHODS.md §1-§4 and qtune's documented
conventions (headers of src/adapters/qalora.h, intlora.h); it calls no qtune code.

1. The integer methods, 4-bit per-row base, rank 4, on all 7 projections of all 5 layers:
   * qalora (min/max base, as qtune's default): W0 = s0·(q − z) frozen, s = s0·u with u the trained
     multiplier (fixed here at 1 + 0.02·N(0, 1) from torch.Generator(99), float32, so the clamp and
     the scale gradient are exercised), Ŵ = s·clamp(round_ste((W0 + B·A)/s), −z, 2^b − 1 − z);
   * intlora-mul / intlora-shift (MSE base, as qtune's default): R = VMC(Laplace(0, 0.5)), W − R
     quantized -> s, W_int; U = s + (R + B·A)/W_int' (zeros of W_int replaced by 1);
     MUL: s̄, z̄ = the MSE quantizer of U at B·A = 0 (frozen), W' = s̄·(clamp(round_ste(U/s̄) + z̄) − z̄)·W_int;
     SHIFT: W' = sign(U)·2^round_ste(log2(|U| + 1e-16))·W_int;
   and for each: the loss, the gradients of every A and B (and of qalora's u), the base quantization
   (qalora: s0, z, integers; intlora: the float base s·W_int + R and the count of W_int = 0; MUL: s̄, z̄)
   and the merged integers (qalora: the b-bit codes; MUL: P = U_int·W_int; SHIFT: sign·W_int·2^k).
   The full integer arrays would make the dump megabytes: they are stored as per-row checksums Σ_c v[o, c]·(c + 1)
   (exact in float32 for the integers; for float rows a float64 sum in column order, which the C++
   test evaluates in the same order).
2. A 10-step AdamW trajectory (torch.optim.AdamW in float64, torch.nn.utils.clip_grad_norm_) for
   lora and qlora (4-bit min/max base) from the same A, B on the same batch every step: losses and
   gradient norms before clipping.

Integer decisions. Everything differentiable runs in float64, with STE written as
x + (round(x) − x).detach(). But round(x) is taken from x evaluated in float32 (qtune_numerics.py:
one rounding per operation of the formulas above, B·A summed over j in order), because qtune trains
and deploys in float32 and its integers must match exactly. The float64 rounding is checked against
those decisions: they may differ only within 1e-5 of a .5 tie (the count is printed).

R. qtune draws R from its own RNG (core/rng.h) and keeps no copy. This script re-implements that RNG
(splitmix64, xoshiro256**, the counter-based Laplace draw: ~40 lines of numpy) rather than injecting
R into the slot through a test hook: no API change in the adapters, and the bit-exact base check
(s·W_int + R) then shows that qtune's R is the documented Laplace(0, 0.5) draw. The price: the key of each slot is the stream's next u64 after the
rank·in draws of that slot's A initialisation (Llama(seed = 1) builds slots in order layer, q k v o
gate up down), so a change of that draw order in qtune needs this dump regenerated.

Dump format (little-endian), "QTREF002": like torch_reference.py's "QTREF001" but each array has a
dtype after its name, uint32 0 = float32, 1 = float64:
    magic b"QTREF002", count uint32, then per array: name_len uint32, name, dtype uint32,
    ndim uint32, dims int64[ndim], data.
Array names (stem = blk.N.attn_q ...; m = qalora | intlora-mul | intlora-shift):
    tokens, targets, ab_fingerprint, settings, <m>.loss, <m>.grad.<stem>.lora_a, <m>.grad.<stem>.lora_b,
    qalora.<stem>.qalora_scale (u), qalora.grad.<stem>.qalora_scale, qalora.base.<stem>.{scale,zero,check},
    <m>.merged.<stem>.check, intlora.base.<stem>.{check,zeros}, intlora-mul.<stem>.{ubar_scale,ubar_zero},
    adamw.<lora|qlora>.{loss,grad_norm}.
settings = [bits, rank, seed, steps, lr, weight decay, clip, alpha, beta1, beta2, eps] (the C++ tests read them).
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qtune_numerics as qn  # noqa: E402
import torch_reference as tr  # noqa: E402

F32, F64 = np.float32, torch.float64
BITS, RANK, SEED = 4, 4, 1  # base bits, adapter rank, qtune's Llama seed (for R)
L1 = 2**BITS - 1
# AdamW trajectory: qtune's hyper-parameters are float32, so the reference uses the same values
STEPS, LR, WD, CLIP, ALPHA = 10, float(F32(2e-3)), float(F32(0.1)), 8.0, 8.0  # the norms start above CLIP, end below
BETAS, EPS = (float(F32(0.9)), float(F32(0.999))), float(F32(1e-8))


def t64(a):
    return torch.from_numpy(np.asarray(a, np.float64))


def round_ste(x, decided):
    """STE round: forward `decided` (round(x) as qtune evaluates x, in float32), backward the identity."""
    return x + (decided - x).detach()


def near_ties(x, decided):
    """How many float64 round(x) differ from the float32 decisions; asserts each is a .5 near-tie."""
    r = torch.sign(x) * torch.floor(torch.abs(x) + 0.5)
    diff = r != decided
    dist = ((torch.abs(x[diff]) % 1.0) - 0.5).abs()
    assert bool((dist < 1e-5).all()), f"float32/float64 rounding differ away from a tie: {dist.max().item()}"
    return int(diff.sum())


def row_check(v):
    """Per-row checksum Σ_c v[o, c]·(c + 1), summed in column order in float64 ([out])."""
    v = np.asarray(v, np.float64)
    return np.cumsum(v * np.arange(1, v.shape[1] + 1, dtype=np.float64), axis=1)[:, -1]


# ----------------------------------------------------------------------------------------------
# QA-LoRA (docs/METHODS.md §3)

def qalora_slot(w32, A, B, u, ties):
    """-> Ŵ [out, in] (float64, differentiable in A, B, u) and the merged codes [out, in].
    w32: [out, in] float32; A [r, in], B [out, r], u [out, 1] float64 leaves holding float32 values."""
    s0, z, q = qn.quantize(w32, BITS, mse=False)          # the frozen base, s0 and z per row
    A32, B32, u32 = (t.detach().numpy().astype(F32) for t in (A, B, u))
    s32 = s0[:, None] * u32                               # the learned scale, float32
    v32 = (s0[:, None] * q.astype(F32) + qn.ba_f32(A32, B32)) / s32
    rv = t64(qn.rnd(v32))
    S0, Z = t64(s0)[:, None], t64(z)[:, None]
    s = S0 * u
    v = (S0 * t64(q) + B @ A) / s                         # (W0 + B·A)/s
    ties["qalora"] += near_ties(v.detach(), rv)
    W = s * torch.clamp(round_ste(v, rv), -Z, L1 - Z)     # the clamp passes gradient inside only
    codes = np.clip(rv.numpy(), -z[:, None], L1 - z[:, None]) + z[:, None]
    base = dict(scale=s0, zero=z, check=row_check(q))
    return W, codes, base


# ----------------------------------------------------------------------------------------------
# IntLoRA (docs/METHODS.md §4)

def intlora_base(w32, key):
    """AQS + VMC (abs-max rule, α = 1.5) and the MSE quantization of W − R.
    -> R [out, in] float32, s [out] float32, W_int [out, in] int64."""
    out, n_in = w32.shape
    raw = qn.laplace_at(key, out * n_in).reshape(out, n_in)
    wmax = np.maximum(np.abs(w32.max(1)), np.abs(w32.min(1))).astype(np.float64)
    rmin = np.minimum(np.abs(raw.max(1)), np.abs(raw.min(1))).astype(np.float64)
    f = np.array([(a / (b + 1e-8)) ** 1.5 for a, b in zip(wmax.tolist(), rmin.tolist())], F32)
    R = f[:, None] * raw
    s, _, wint = qn.quantize(w32 - R, BITS, mse=True)
    return R, s, wint, raw


def intlora_slot(w32, key, A, B, shift, ties):
    """-> W' [out, in] (float64, differentiable in A, B), the merged integers and base checks."""
    R, s, wint, raw = intlora_base(w32, key)
    wi1 = np.where(wint == 0, 1, wint).astype(F32)                  # W_int'
    A32, B32 = (t.detach().numpy().astype(F32) for t in (A, B))
    u32 = s[:, None] + (R + qn.ba_f32(A32, B32)) / wi1              # U in float32
    U = t64(s)[:, None] + (t64(R) + B @ A) / t64(wi1)              # U in float64
    Wint = t64(wint)
    base_w = s[:, None] * wint.astype(F32) + R                      # s·W_int + R, float32
    base = dict(check=row_check(base_w), zeros=int((wint == 0).sum()), raw=raw)
    if not shift:
        # the second quantizer: U at B·A = 0, MSE search, frozen
        sbar, zbar = qn.choose_range(s[:, None] + R / wi1, BITS, mse=True)
        rt = qn.rnd(u32 / sbar[:, None])
        Sb, Zb = t64(sbar)[:, None], t64(zbar)[:, None]
        t = U / Sb
        ties["intlora-mul"] += near_ties(t.detach(), t64(rt))
        W = Sb * ((torch.clamp(round_ste(t, t64(rt)) + Zb, 0, L1) - Zb) * Wint)
        P = (np.clip(rt + zbar[:, None], 0, L1) - zbar[:, None]) * wint  # U_int·W_int
        base.update(ubar_scale=sbar, ubar_zero=zbar)
        return W, P, base
    sgn = np.sign(u32)
    k32 = qn.rnd(np.log2((np.abs(u32) + F32(1e-16)).astype(np.float64)).astype(F32))  # log2f, then round
    lg = torch.log2(torch.abs(U) + 1e-16)
    ties["intlora-shift"] += near_ties(lg.detach(), t64(k32))
    W = t64(sgn) * torch.exp2(round_ste(lg, t64(k32))) * Wint
    merged = sgn * wint * np.exp2(k32)                              # sign·W_int·2^k, exact
    return W, merged, base


# ----------------------------------------------------------------------------------------------
# runs

def float32_lora(cfg, w):
    """The fixed A, B of torch_reference.py rounded to float32 (what the C++ tests load)."""
    return {stem: (A.float().double(), Bm.float().double()) for stem, (A, Bm) in tr.fixed_lora(cfg, w, RANK).items()}


def slot_keys(cfg, w):
    """R's key per slot, drawn as Llama(SEED) does: per slot, A's rank·in uniforms, then the key."""
    rng, keys = qn.Xoshiro256ss(SEED), {}
    for l in range(cfg["n_layers"]):
        for p in tr.PROJ:
            stem = f"blk.{l}.{p}"
            for _ in range(RANK * w[stem + ".weight"].shape[1]):
                rng.next_u64()
            keys[stem] = rng.next_u64()
    return keys


def run_integer(cfg, w, tokens, targets, lora32, method, keys, ties):
    """Loss, gradients, base and merged checks of one integer method -> list of (name, array)."""
    g = torch.Generator().manual_seed(99)
    weights, out = {}, []
    ab, scales = {}, {}
    for stem, (A0, B0) in lora32.items():
        A, Bm = A0.clone().requires_grad_(True), B0.clone().requires_grad_(True)
        ab[stem] = (A, Bm)
        w32 = w[stem + ".weight"].numpy().astype(F32)
        if method == "qalora":
            u0 = (1 + 0.02 * torch.randn(w32.shape[0], 1, generator=g, dtype=F64)).float().double()
            u = u0.clone().requires_grad_(True)
            scales[stem] = u
            W, codes, base = qalora_slot(w32, A, Bm, u, ties)
            out += [(f"qalora.{stem}.qalora_scale", u0)]
            out += [(f"qalora.base.{stem}.{k}", t64(v)) for k, v in base.items()]
            out.append((f"qalora.merged.{stem}.check", t64(row_check(codes))))
        else:
            W, merged, base = intlora_slot(w32, keys[stem], A, Bm, method == "intlora-shift", ties)
            check = t64(row_check(merged))  # SHIFT's are float rows (sign·W_int·2^k)
            out.append(wide(f"{method}.merged.{stem}.check", check) if method == "intlora-shift" else
                       (f"{method}.merged.{stem}.check", check))
            if method == "intlora-mul":  # the base is the same for both variants: dump it once
                out += [wide(f"intlora.base.{stem}.check", t64(base["check"])),
                        (f"intlora.base.{stem}.zeros", torch.tensor([float(base["zeros"])], dtype=F64)),
                        (f"intlora-mul.{stem}.ubar_scale", t64(base["ubar_scale"])),
                        (f"intlora-mul.{stem}.ubar_zero", t64(base["ubar_zero"]))]
                raw_abs = np.abs(base["raw"]).mean()
                assert abs(raw_abs - 0.5) < 0.05, f"{stem}: mean |Laplace(0, 0.5)| = {raw_abs}"
        weights[stem] = W
    loss = tr.loss_of(tr.forward(cfg, w, tokens, weight=lambda stem: weights[stem]), targets)
    loss.backward()
    out.append(wide(f"{method}.loss", loss.detach().reshape(1)))
    for stem, (A, Bm) in ab.items():
        out += [(f"{method}.grad.{stem}.lora_a", A.grad), (f"{method}.grad.{stem}.lora_b", Bm.grad)]
        if method == "qalora":
            out.append((f"qalora.grad.{stem}.qalora_scale", scales[stem].grad))
    print(f"{method}: loss {loss.item():.7f}, float64 rounding differs from the float32 decisions at "
          f"{ties[method]} near-tie elements")
    return out


def trajectory(cfg, w, tokens, targets, lora32, method, dtype):
    """STEPS AdamW steps of lora or qlora (4-bit min/max base) -> losses, grad norms before clipping."""
    base = {}
    for stem in lora32:
        w32 = w[stem + ".weight"].numpy().astype(F32)
        if method == "qlora":
            s, _, q = qn.quantize(w32, BITS, mse=False)
            w32 = s[:, None] * q.astype(F32)  # the dequantized base, float32 as qtune holds it
        base[stem] = torch.from_numpy(w32).to(dtype)
    wd = {k: v.to(dtype) for k, v in w.items()}
    lora = {stem: (A.to(dtype).clone().requires_grad_(True), Bm.to(dtype).clone().requires_grad_(True))
            for stem, (A, Bm) in lora32.items()}
    params = [t for ab in lora.values() for t in ab]
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD)
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = tr.loss_of(tr.forward(cfg, wd, tokens, lora, ALPHA / RANK, weight=lambda stem: base[stem]), targets)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, CLIP)))
        losses.append(loss.item())
        opt.step()
    return np.array(losses), np.array(norms)


def wide(name, t):
    """An array stored in float64: losses, settings, and checksums of float rows (compared exactly)."""
    return (name, t, True)


def write_dump(path, arrays):
    """arrays: (name, tensor or ndarray) stored as float32, or (name, t, True) from wide() as float64."""
    with open(path, "wb") as f:
        f.write(b"QTREF002")
        f.write(struct.pack("<I", len(arrays)))
        for name, t, *is_wide in arrays:
            a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
            a = np.ascontiguousarray(a, dtype="<f8" if is_wide else "<f4")
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<I", 1 if is_wide else 0))
            f.write(struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape))
            f.write(a.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="../shared/models/stories260K/stories260K.bin")
    ap.add_argument("--out", default="tests/data/stories260K_int_ref.bin")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg, w = tr.load_llama2c_legacy(args.model)
    tokens, targets = tr.make_batch(cfg, w)
    lora32 = float32_lora(cfg, w)
    fingerprint = sum(float(A.abs().sum() + Bm.abs().sum()) for A, Bm in lora32.values())
    settings = [BITS, RANK, SEED, STEPS, LR, WD, CLIP, ALPHA, BETAS[0], BETAS[1], EPS]
    out = [("tokens", tokens.double()), ("targets", targets.double()),
           wide("ab_fingerprint", torch.tensor([fingerprint], dtype=F64)), wide("settings", torch.tensor(settings, dtype=F64))]

    keys, ties = slot_keys(cfg, w), {"qalora": 0, "intlora-mul": 0, "intlora-shift": 0}
    for method in ("qalora", "intlora-mul", "intlora-shift"):
        out += run_integer(cfg, w, tokens, targets, lora32, method, keys, ties)

    for method in ("lora", "qlora"):
        losses, norms = trajectory(cfg, w, tokens, targets, lora32, method, F64)
        l32, _ = trajectory(cfg, w, tokens, targets, lora32, method, torch.float32)  # a float32 run, for scale
        out += [wide(f"adamw.{method}.loss", t64(losses)), wide(f"adamw.{method}.grad_norm", t64(norms))]
        print(f"adamw {method}: losses {losses[0]:.6f} .. {losses[-1]:.6f}, grad norms {norms.min():.3f} .. "
              f"{norms.max():.3f}; torch float32 differs by {np.abs(l32 / losses - 1).max():.2g} relative")

    write_dump(args.out, out)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(out)} arrays)")


if __name__ == "__main__":
    main()
