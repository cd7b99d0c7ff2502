#!/usr/bin/python3
"""Golden reference for the Llama model: an independent PyTorch LLaMA that reads stories260K.bin.

Regenerate the committed dump (deterministic; ~10 s on one core):

    /usr/bin/python3 tools/torch_reference.py \
        --model ../shared/models/stories260K/stories260K.bin --out tests/data/stories260K_ref.bin

What it computes, all in float64 (the C++ model runs in float32 and is compared to it):
  * a fixed batch, B=2, T=32: row 0 is BOS + the model's greedy story (asserted against the
    ids in shared/models/README.md), row 1 token ids drawn from torch.Generator seeded 1234;
    targets are the next ids, with every 5th position and a whole tail of row 1 set to -1 (ignored);
  * full fine-tuning: logits [B, T, V], mean cross-entropy over counted targets, and the
    gradient of every parameter (GGUF names: token_embd.weight, blk.N.attn_q.weight, ...);
  * LoRA, rank 4, alpha 8 (scale 2) on all 7 projections with fixed nonzero A [r, in] and
    B [out, r] (seed 4321; B nonzero or dA would be 0): the loss and dA, dB.

Dump format (little-endian):
    magic   8 bytes  b"QTREF001"
    count   uint32   number of arrays
    then per array:
      name_len uint32, name (utf-8, no terminator),
      ndim uint32, dims int64[ndim] (outermost first),
      data float32[prod(dims)] (integer arrays such as tokens are stored as exact floats)
Array names: tokens, targets, logits, loss, grad.<param>, lora.loss, lora.<stem>.lora_a,
lora.<stem>.lora_b, lora.grad.<stem>.lora_a, lora.grad.<stem>.lora_b.
"""
import argparse
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F

PROJ = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def load_llama2c_legacy(path):
    """llama2.c legacy (v0) fp32 checkpoint -> (config dict, {gguf name: float64 tensor})."""
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    kv_dim = dim * n_kv // n_heads
    head = dim // n_heads
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(data[off:off + n].astype(np.float64).reshape(shape))
        off += n
        return t

    w = {}
    w["token_embd.weight"] = take(vocab, dim)
    per_layer = [("attn_norm", (dim,)), ("attn_q", (dim, dim)), ("attn_k", (kv_dim, dim)),
                 ("attn_v", (kv_dim, dim)), ("attn_output", (dim, dim)), ("ffn_norm", (dim,)),
                 ("ffn_gate", (hidden, dim)), ("ffn_down", (dim, hidden)), ("ffn_up", (hidden, dim))]
    for name, shape in per_layer:  # the legacy file stores each tensor for all layers together
        for l in range(n_layers):
            w[f"blk.{l}.{name}.weight"] = take(*shape)
    w["output_norm.weight"] = take(dim)
    off += seq_len * head  # freq_cis_real + freq_cis_imag (seq_len * head/2 each)
    if not shared:
        w["output.weight"] = take(vocab, dim)
    assert off == len(data), f"{path}: {len(data) - off} floats left over"
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv, vocab=vocab,
               seq_len=seq_len, shared=shared)
    return cfg, w


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta=10000.0):
    """x: [B, T, H, hd]; rotates adjacent pairs (x[2j], x[2j+1]) by t * theta^(-2j/hd)."""
    B, T, H, hd = x.shape
    freqs = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.outer(torch.arange(T, dtype=torch.float64), freqs)  # [T, hd/2]
    # angles in float64, then x's dtype: a float32 run (torch_reference_int.py's noise estimate) stays float32
    cos, sin = ang.cos()[None, :, None, :].to(x.dtype), ang.sin()[None, :, None, :].to(x.dtype)
    xr, xi = x[..., 0::2], x[..., 1::2]
    return torch.stack([xr * cos - xi * sin, xr * sin + xi * cos], dim=-1).flatten(-2)


def forward(cfg, w, tokens, lora=None, scale=0.0, weight=None):
    """tokens: [B, T] -> logits [B, T, V]. lora: {stem: (A, B)} adds scale * x A^T B^T.
    weight: optional function stem -> the projection's effective weight [out, in] (used instead of
    w[stem + ".weight"]; the integer methods of tools/torch_reference_int.py)."""
    B, T = tokens.shape
    nh, nkv, dim = cfg["n_heads"], cfg["n_kv"], cfg["dim"]
    hd = dim // nh

    def lin(stem, x):
        y = x @ (weight(stem) if weight is not None else w[stem + ".weight"]).T
        if lora is not None:
            A, Bm = lora[stem]
            y = y + scale * (x @ A.T) @ Bm.T
        return y

    x = w["token_embd.weight"][tokens]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    for l in range(cfg["n_layers"]):
        p = f"blk.{l}."
        h = rmsnorm(x, w[p + "attn_norm.weight"])
        q = rope(lin(p + "attn_q", h).view(B, T, nh, hd)).transpose(1, 2)    # [B, nh, T, hd]
        k = rope(lin(p + "attn_k", h).view(B, T, nkv, hd)).transpose(1, 2)   # [B, nkv, T, hd]
        v = lin(p + "attn_v", h).view(B, T, nkv, hd).transpose(1, 2)
        k = k.repeat_interleave(nh // nkv, dim=1)  # query head i uses kv head i // group
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, dim)
        x = x + lin(p + "attn_output", y)
        h = rmsnorm(x, w[p + "ffn_norm.weight"])
        x = x + lin(p + "ffn_down", F.silu(lin(p + "ffn_gate", h)) * lin(p + "ffn_up", h))
    x = rmsnorm(x, w["output_norm.weight"])
    cls = w["token_embd.weight"] if cfg["shared"] else w["output.weight"]
    return x @ cls.T


def loss_of(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


def greedy(cfg, w, n):
    """BOS + n greedy tokens by repeated full forwards (slow but independent of any cache)."""
    seq = torch.tensor([[1]])
    with torch.no_grad():
        for _ in range(n):
            seq = torch.cat([seq, forward(cfg, w, seq)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[0]


def make_batch(cfg, w, B=2, T=32):
    """Row 0: natural text (the model's own greedy story); row 1: random ids (high loss)."""
    g = torch.Generator().manual_seed(1234)
    seq = torch.randint(0, cfg["vocab"], (B, T + 1), generator=g)
    story = greedy(cfg, w, T)
    # self-check of this implementation against shared/models/README.md
    assert story[1:21].tolist() == [403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426,
                                    338, 401, 396, 267, 337], story[1:21].tolist()
    seq[0] = story
    tokens, targets = seq[:, :T].clone(), seq[:, 1:].clone()
    targets[:, ::5] = -1      # scattered ignored targets
    targets[1, T - 6:] = -1   # and a padded tail
    return tokens, targets


def fixed_lora(cfg, w, rank=4, seed=4321):
    """{stem: (A [r, in], B [out, r])}: fixed nonzero float64 adapters, 0.1 * N(0, 1) (B nonzero or dA would
    be 0), drawn from torch.Generator(seed) in the order layer, PROJ, A then B."""
    g = torch.Generator().manual_seed(seed)
    lora = {}
    for l in range(cfg["n_layers"]):
        for p in PROJ:
            stem = f"blk.{l}.{p}"
            n_out, n_in = w[stem + ".weight"].shape
            A = torch.randn(rank, n_in, generator=g, dtype=torch.float64) * 0.1
            Bm = torch.randn(n_out, rank, generator=g, dtype=torch.float64) * 0.1
            lora[stem] = (A, Bm)
    return lora


def write_dump(path, arrays):
    with open(path, "wb") as f:
        f.write(b"QTREF001")
        f.write(struct.pack("<I", len(arrays)))
        for name, t in arrays:
            a = np.ascontiguousarray(t.detach().cpu().numpy(), dtype="<f4")
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<I", a.ndim) + struct.pack(f"<{a.ndim}q", *a.shape))
            f.write(a.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="../shared/models/stories260K/stories260K.bin")
    ap.add_argument("--out", default="tests/data/stories260K_ref.bin")
    args = ap.parse_args()
    torch.set_num_threads(1)  # tiny model: threads only add nondeterminism and overhead

    cfg, w = load_llama2c_legacy(args.model)
    tokens, targets = make_batch(cfg, w)
    out = [("tokens", tokens.double()), ("targets", targets.double())]

    # full fine-tuning: every parameter gets a gradient
    for t in w.values():
        t.requires_grad_(True)
    logits = forward(cfg, w, tokens)
    loss = loss_of(logits, targets)
    loss.backward()
    out += [("logits", logits), ("loss", loss.reshape(1))]
    out += [("grad." + n, t.grad) for n, t in w.items()]
    print(f"full: loss {loss.item():.6f}, {len(w)} parameter gradients")

    # LoRA rank 4, alpha 8 on all projections; the base is frozen
    for t in w.values():
        t.requires_grad_(False)
    rank, alpha = 4, 8.0
    lora = {stem: (A.requires_grad_(True), Bm.requires_grad_(True))
            for stem, (A, Bm) in fixed_lora(cfg, w, rank).items()}
    lloss = loss_of(forward(cfg, w, tokens, lora, alpha / rank), targets)
    lloss.backward()
    out.append(("lora.loss", lloss.reshape(1)))
    for stem, (A, Bm) in lora.items():
        out += [(f"lora.{stem}.lora_a", A), (f"lora.{stem}.lora_b", Bm),
                (f"lora.grad.{stem}.lora_a", A.grad), (f"lora.grad.{stem}.lora_b", Bm.grad)]
    print(f"lora: loss {lloss.item():.6f}, {len(lora)} adapted projections")

    write_dump(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
