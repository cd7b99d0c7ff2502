#!/usr/bin/python3
"""Golden reference for the DiT (src/models/dit.h): an independent PyTorch DiT, in float64, that
reads the weights qtune wrote (a GGUF, general.architecture = "dit").

Regenerate the committed files (deterministic; a few seconds on one core):

    QTUNE_WRITE_DIT_GOLDEN=tests/data/dit_tiny.gguf build/test_models --gtest_filter=DitGolden.*
    /usr/bin/python3 tools/torch_reference_dit.py --model tests/data/dit_tiny.gguf --out tests/data/dit_tiny_ref.bin

The first command writes the model (qtune's tests/models/tiny_dit.h golden config with every
tensor random, so that no gradient is zero by adaLN-Zero); this script then computes, in float64:
  * a fixed batch, B = 4 (torch.Generator seeded 1234): x_t and eps ~ N(0, 1) rounded to float32
    (the C++ model reads exactly these), timesteps 0, 999 and two random ones, classes 3, 7, a
    random one and the null class;
  * the prediction eps_hat [B, C, H, W], the loss mean((eps_hat - eps)^2), and the gradient of
    the loss with respect to every tensor of the file and to x_t.
It follows DiT's models.py (facebookresearch/DiT) in its own code: the patch embedding is a Conv2d
with kernel = stride = patch whose weight is the file's [dim, C*p*p] matrix viewed as [dim, C, p, p];
unpatchify is DiT's einsum; LayerNorm without affine (eps 1e-6); GELU approximate="tanh";
attention is softmax(q k^T / sqrt(hd)) v over all tokens.

Dump format: tools/torch_reference.py's "QTREF001" (float32 arrays). Array names: x_t, eps, t, y,
pred, loss, grad.input, grad.<tensor name>.
"""
import argparse
import math
import struct

import numpy as np
import torch
import torch.nn.functional as F


def read_gguf(path):
    """Minimal GGUF v3 reader for qtune's DiT file: scalar metadata and F32 tensors only."""
    raw = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, raw, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = raw[pos:pos + n].decode()
        pos += n
        return s

    assert raw[:4] == b"GGUF", f"{path}: not a GGUF"
    pos = 4
    assert take("I") == 3
    n_tensors, n_kv = take("Q"), take("Q")
    scalar = {4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    meta = {}
    for _ in range(n_kv):
        key, typ = string(), take("I")
        meta[key] = string() if typ == 8 else take(scalar[typ])
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take("Q") for _ in range(take("I"))]
        typ, off = take("I"), take("Q")
        assert typ == 0, f"{name}: type {typ}, only F32 is read here"
        infos.append((name, ne[::-1], off))
    align = meta.get("general.alignment", 32)
    data = (pos + align - 1) // align * align
    tensors = {}
    for name, shape, off in infos:
        n = int(np.prod(shape))
        a = np.frombuffer(raw, dtype="<f4", count=n, offset=data + off).astype(np.float64)
        tensors[name] = torch.from_numpy(a.reshape(shape).copy())
    return meta, tensors


def timestep_embedding(t, dim, max_period=10000):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    args = t[:, None].double() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def pos_embed_2d(dim, gs):
    """DiT's get_2d_sincos_pos_embed (numpy, float64)."""
    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=np.float64) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    grid = np.meshgrid(np.arange(gs, dtype=np.float64), np.arange(gs, dtype=np.float64))  # w goes first
    grid = np.stack(grid, axis=0).reshape(2, 1, gs, gs)
    emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
    return torch.from_numpy(emb)


def forward(cfg, w, x, t, y):
    C, p, D, nh = cfg["channels"], cfg["patch"], cfg["dim"], cfg["heads"]
    B, _, H, W = x.shape
    gs = H // p
    lin = lambda stem, v: v @ w[stem + ".weight"].T + w[stem + ".bias"]
    ln = lambda v: F.layer_norm(v, (D,), eps=1e-6)
    modulate = lambda v, shift, scale: v * (1 + scale[:, None]) + shift[:, None]

    conv_w = w["patch_embd.weight"].view(D, C, p, p)
    h = F.conv2d(x, conv_w, w["patch_embd.bias"], stride=p)          # [B, D, gs, gs]
    h = h.flatten(2).transpose(1, 2) + pos_embed_2d(D, gs)[None]      # [B, T, D]
    temb = lin("t_embd.fc2", F.silu(lin("t_embd.fc1", timestep_embedding(t, cfg["freq_dim"]))))
    c = F.silu(temb + w["y_embd.weight"][y])
    T = h.shape[1]
    hd = D // nh
    for l in range(cfg["depth"]):
        b = f"blk.{l}."
        s1, a1, g1, s2, a2, g2 = lin(b + "adaln", c).chunk(6, dim=1)
        u = modulate(ln(h), s1, a1)
        q, k, v = (lin(b + n, u).view(B, T, nh, hd).transpose(1, 2) for n in ("attn_q", "attn_k", "attn_v"))
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).softmax(-1)
        h = h + g1[:, None] * lin(b + "attn_output", (att @ v).transpose(1, 2).reshape(B, T, D))
        u = modulate(ln(h), s2, a2)
        h = h + g2[:, None] * lin(b + "ffn_down", F.gelu(lin(b + "ffn_up", u), approximate="tanh"))
    shift, scale = lin("output_adaln", c).chunk(2, dim=1)
    out = lin("output", modulate(ln(h), shift, scale))                # [B, T, p*p*C]
    out = out.reshape(B, gs, gs, p, p, C)
    out = torch.einsum("nhwpqc->nchpwq", out)
    return out.reshape(B, C, gs * p, gs * p)


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
    ap.add_argument("--model", default="tests/data/dit_tiny.gguf")
    ap.add_argument("--out", default="tests/data/dit_tiny_ref.bin")
    args = ap.parse_args()
    torch.set_num_threads(1)

    meta, w = read_gguf(args.model)
    assert meta["general.architecture"] == "dit"
    cfg = dict(channels=meta["dit.channels"], patch=meta["dit.patch_size"], dim=meta["dit.embedding_length"],
               heads=meta["dit.attention.head_count"], depth=meta["dit.block_count"],
               freq_dim=meta["dit.timestep_freq_dim"], image=meta["dit.image_size"], classes=meta["dit.num_classes"])
    B, C, S = 4, cfg["channels"], cfg["image"]
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(B, C, S, S, generator=g, dtype=torch.float64).float().double()  # float32 values
    eps = torch.randn(B, C, S, S, generator=g, dtype=torch.float64).float().double()
    t = torch.tensor([0, 999] + torch.randint(1, 999, (2,), generator=g).tolist())
    y = torch.tensor([3, 7, int(torch.randint(0, cfg["classes"], (1,), generator=g)), cfg["classes"]])

    for v in w.values():
        v.requires_grad_(True)
    x.requires_grad_(True)
    pred = forward(cfg, w, x, t, y)
    loss = ((pred - eps) ** 2).mean()
    loss.backward()
    out = [("x_t", x), ("eps", eps), ("t", t.double()), ("y", y.double()), ("pred", pred), ("loss", loss.reshape(1)),
           ("grad.input", x.grad)]
    out += [("grad." + n, v.grad) for n, v in w.items()]
    print(f"loss {loss.item():.8f}, {len(w)} tensor gradients, timesteps {t.tolist()}, classes {y.tolist()}")
    write_dump(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
