#!/usr/bin/python3
"""The PyTorch peer of `qtune finetune`: the same LLaMA, the same LoRA, the same batch, timed the same way.

    /usr/bin/python3 bench/peers/torch_peer.py --model out/perf/s15m.gguf --method lora \
        --batch 8 --seq 256 --steps 6 --threads 2 --report peer.json

Reads the model's weights from qtune's own GGUF (F32 tensors; llama.* keys), builds the model in float32
with PyTorch 1.13 (Debian's python3-torch) and trains it with AdamW:
  lora   frozen float base, LoRA (rank r, alpha a) on --target, B zero-initialised as qtune does;
  qlora  the base held as 4-bit codes (two per byte) with one float scale and zero point per row —
         qtune's default qlora format (asymmetric, per row, min/max) — dequantized in every forward,
         which is what QLoRA without bitsandbytes does on a CPU; LoRA as above;
  full   every weight trains (embedding, norms, projections, untied classifier).
Tokens are random ids (the speed of a step does not depend on the text). tokens/s = batch·seq / the
median wall time of the steps after the first (the warm-up step allocates); peak RSS is the process's
ru_maxrss. The report is JSON: tokens_per_second, step_seconds, peak_rss_bytes, and the settings.
"""
import argparse
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_gguf(path):
    """GGUF v2/v3 → (metadata of scalars and strings, {name: float32 numpy view}). F32 tensors only."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    pos = 0

    def take(fmt):
        nonlocal pos
        n = struct.calcsize("<" + fmt)
        v = struct.unpack("<" + fmt, bytes(raw[pos:pos + n]))[0]
        pos += n
        return v

    def string():
        nonlocal pos
        n = take("Q")
        s = bytes(raw[pos:pos + n]).decode("utf-8", "replace")
        pos += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(typ):
        nonlocal pos
        if typ == 8:
            return string()
        if typ == 9:  # array: element type, count, elements (skipped except their length)
            et, n = take("I"), take("Q")
            if et == 8:
                for _ in range(n):
                    string()
            else:
                pos += n * struct.calcsize("<" + scalar[et])
            return n
        return take(scalar[typ])

    if bytes(raw[:4]) != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    pos = 4
    version = take("I")
    if version not in (2, 3):
        sys.exit(f"{path}: GGUF version {version} is not supported")
    n_tensors, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        key = string()
        meta[key] = value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        dims = [take("Q") for _ in range(take("I"))]
        typ, off = take("I"), take("Q")
        if typ != 0:
            sys.exit(f"{path}: tensor {name} has GGML type {typ}; the peer reads F32 models only")
        infos.append((name, dims[::-1], off))
    align = meta.get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    tensors = {}
    for name, shape, off in infos:
        n = int(np.prod(shape))
        tensors[name] = np.frombuffer(raw, dtype="<f4", count=n, offset=data + off).reshape(shape)
    return meta, tensors


class QuantLinear4(nn.Module):
    """A frozen weight [out, in] as 4-bit codes (two per byte), a float scale and zero point per row."""

    def __init__(self, w):
        super().__init__()
        lo, hi = w.min(dim=1, keepdim=True).values, w.max(dim=1, keepdim=True).values
        scale = ((hi - lo) / 15).clamp_min(1e-12)
        zero = torch.round(-lo / scale)
        q = torch.clamp(torch.round(w / scale) + zero, 0, 15).to(torch.uint8)
        if q.shape[1] % 2:
            q = F.pad(q, (0, 1))
        self.register_buffer("packed", q[:, 0::2] | (q[:, 1::2] << 4))
        self.register_buffer("scale", scale)
        self.register_buffer("zero", zero)
        self.cols = w.shape[1]

    def weight(self):
        p = self.packed
        q = torch.stack((p & 15, p >> 4), dim=2).reshape(p.shape[0], -1)[:, :self.cols]
        return (q.float() - self.zero) * self.scale


class Proj(nn.Module):
    """y = x·Wᵀ (+ (alpha/r)·x·Aᵀ·Bᵀ with LoRA); W float or 4-bit."""

    def __init__(self, w, method, lora, rank, alpha):
        super().__init__()
        wt = torch.from_numpy(np.array(w, dtype=np.float32))
        if method == "qlora":
            self.q = QuantLinear4(wt)
            self.w = None
        else:
            self.q = None
            self.w = nn.Parameter(wt, requires_grad=(method == "full"))
        self.lora = lora and method in ("lora", "qlora")
        if self.lora:
            out_f, in_f = wt.shape
            self.a = nn.Parameter(torch.empty(rank, in_f))
            nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
            self.b = nn.Parameter(torch.zeros(out_f, rank))
            self.s = alpha / rank

    def forward(self, x):
        y = F.linear(x, self.w if self.q is None else self.q.weight())
        if self.lora:
            y = y + self.s * F.linear(F.linear(x, self.a), self.b)
        return y


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, hd, theta):
    inv = theta ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)  # [T, hd/2]
    return torch.cos(ang), torch.sin(ang)


def rope(x, cos, sin):  # x [B, T, h, hd], adjacent pairs (llama2.c)
    xr = x.reshape(*x.shape[:-1], -1, 2)
    a, b = xr[..., 0], xr[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((a * c - b * s, a * s + b * c), dim=-1).flatten(-2)


class Llama(nn.Module):
    def __init__(self, meta, t, method, targets, rank, alpha):
        super().__init__()
        self.dim = meta["llama.embedding_length"]
        self.L = meta["llama.block_count"]
        self.nh = meta["llama.attention.head_count"]
        self.nkv = meta.get("llama.attention.head_count_kv", self.nh)
        self.eps = meta.get("llama.attention.layer_norm_rms_epsilon", 1e-5)
        self.theta = meta.get("llama.rope.freq_base", 10000.0)
        full = method == "full"

        def param(a):
            return nn.Parameter(torch.from_numpy(np.array(a, dtype=np.float32)), requires_grad=full)

        self.emb = param(t["token_embd.weight"])
        self.out = param(t["output.weight"]) if "output.weight" in t else None
        self.norm = param(t["output_norm.weight"])
        names = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate",
                 "up": "ffn_up", "down": "ffn_down"}
        self.blocks = nn.ModuleList()
        for l in range(self.L):
            blk = nn.Module()
            blk.attn_norm = param(t[f"blk.{l}.attn_norm.weight"])
            blk.ffn_norm = param(t[f"blk.{l}.ffn_norm.weight"])
            for short, gg in names.items():
                setattr(blk, short, Proj(t[f"blk.{l}.{gg}.weight"], method, short in targets, rank, alpha))
            self.blocks.append(blk)

    def forward(self, tokens, targets):
        B, T = tokens.shape
        hd = self.dim // self.nh
        cos, sin = rope_tables(T, hd, self.theta)
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = F.embedding(tokens, self.emb)
        for blk in self.blocks:
            h = rmsnorm(x, blk.attn_norm, self.eps)
            q = rope(blk.q(h).view(B, T, self.nh, hd), cos, sin).transpose(1, 2)
            k = rope(blk.k(h).view(B, T, self.nkv, hd), cos, sin).transpose(1, 2)
            v = blk.v(h).view(B, T, self.nkv, hd).transpose(1, 2)
            if self.nkv != self.nh:
                k = k.repeat_interleave(self.nh // self.nkv, dim=1)
                v = v.repeat_interleave(self.nh // self.nkv, dim=1)
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
            x = x + blk.o((att @ v).transpose(1, 2).reshape(B, T, self.dim))
            h = rmsnorm(x, blk.ffn_norm, self.eps)
            x = x + blk.down(F.silu(blk.gate(h)) * blk.up(h))
        logits = F.linear(rmsnorm(x, self.norm, self.eps), self.emb if self.out is None else self.out)
        return F.cross_entropy(logits.view(B * T, -1), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="qtune GGUF model with F32 tensors")
    ap.add_argument("--method", choices=["lora", "qlora", "full"], default="lora")
    ap.add_argument("--target", default="q,k,v,o", help="projections with LoRA (q,k,v,o,gate,up,down)")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6, help="optimizer steps; the first is a warm-up, not timed")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--report", help="write the JSON report here")
    a = ap.parse_args()
    if not os.path.isfile(a.model):
        sys.exit(f"{a.model}: no such file")
    if a.steps < 2:
        sys.exit("--steps must be at least 2 (the first is not timed)")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    meta, tensors = read_gguf(a.model)
    model = Llama(meta, tensors, a.method, set(a.target.split(",")), a.rank, a.alpha)
    del tensors
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    V = model.emb.shape[0]
    g = torch.Generator().manual_seed(a.seed)
    times, losses = [], []
    for _ in range(a.steps):
        ids = torch.randint(0, V, (a.batch, a.seq + 1), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(ids[:, :-1], ids[:, 1:])
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss))
    med = statistics.median(times[1:])
    rep = {
        "peer": f"pytorch {torch.__version__}",
        "model": a.model, "method": a.method, "target": a.target, "rank": a.rank, "alpha": a.alpha,
        "batch": a.batch, "seq": a.seq, "steps": a.steps, "threads": a.threads,
        "trainable_params": sum(p.numel() for p in params),
        "step_seconds": times, "tokens_per_second": a.batch * a.seq / med,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "loss_curve": losses,
    }
    if a.report:
        tmp = a.report + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rep, f, indent=1)
        os.replace(tmp, a.report)
    print(f"{a.method}: {rep['tokens_per_second']:.0f} tok/s (median of {len(times) - 1} steps), "
          f"peak RSS {rep['peak_rss_bytes'] / 2**20:.0f} MiB", file=sys.stderr)


if __name__ == "__main__":
    main()
