#!/usr/bin/python3
"""PyTorch reference for PEFT adapters: applies a Hugging Face PEFT LoRA folder to stories260K the way
PEFT and transformers do, independently of qtune, and dumps the logits.

Regenerate the committed fixture and dump (deterministic; a few seconds on one core):

    /usr/bin/python3 tools/peft_reference.py --make-adapter tests/data/peft_stories260K \\
        --adapter tests/data/peft_stories260K --out tests/data/peft_stories260K_ref.bin

What it does, all in float64:
  * --make-adapter DIR: writes a PEFT folder (adapter_config.json + adapter_model.safetensors, F32,
    written by hand with json + struct): r 4, lora_alpha 8, all seven projections, fixed nonzero
    A [r, in] and B [out, r] (0.1 * N(0, 1) from torch.Generator seeded 2468, in the order layer,
    q k v o gate up down, A then B). B is in Hugging Face's row order by construction: this script
    never sees qtune's layout, so the fixture tests qtune's import of a PEFT file made elsewhere.
  * --adapter DIR: reads the llama2.c base (tools/torch_reference.py), converts it to transformers'
    layout as convert_llama_weights_to_hf.py does (q_proj and k_proj rows permuted within each head:
    w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)), applies the
    adapter by PEFT's formula W + (lora_alpha / r) * B @ A (use_rslora: lora_alpha / sqrt(r)) to
    every target module, and runs transformers' LlamaForCausalLM forward (rotate_half RoPE) on a fixed
    batch: B=2, T=32, row 0 BOS + ids 2.., row 1 random ids from torch.Generator seeded 1234.
  * self-check: without an adapter, the HF-layout forward equals tools/torch_reference.py's llama2.c
    forward (adjacent-pair RoPE on the unpermuted weights) to 1e-9.
  * --out DUMP: writes "tokens" [B, T] and "logits" [B, T, V] in tools/torch_reference.py's
    QTREF001 format (read by tests/ref_dump.h).
Only json, struct, numpy and torch are used: no safetensors, transformers or peft package.
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

from torch_reference import forward as meta_forward, load_llama2c_legacy, rmsnorm, write_dump

PROJ = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]
MODULE = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
          "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
          "ffn_down": "mlp.down_proj"}


def permute(w, n_heads):
    """transformers' convert_llama_weights_to_hf.py: Meta (adjacent pairs) -> HF (halves) row order."""
    dim1, dim2 = w.shape
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def to_hf(cfg, w):
    """{gguf name: tensor} -> {HF name: tensor} in transformers' LLaMA layout."""
    hf = {"model.embed_tokens.weight": w["token_embd.weight"], "model.norm.weight": w["output_norm.weight"]}
    hf["lm_head.weight"] = w["token_embd.weight"] if cfg["shared"] else w["output.weight"]
    for l in range(cfg["n_layers"]):
        p, q = f"blk.{l}.", f"model.layers.{l}."
        hf[q + "input_layernorm.weight"] = w[p + "attn_norm.weight"]
        hf[q + "post_attention_layernorm.weight"] = w[p + "ffn_norm.weight"]
        for stem in PROJ:
            t = w[p + stem + ".weight"]
            if stem == "attn_q":
                t = permute(t, cfg["n_heads"])
            elif stem == "attn_k":
                t = permute(t, cfg["n_kv"])
            hf[q + MODULE[stem] + ".weight"] = t
    return hf


def read_safetensors(path):
    """{name: float64 tensor} of an F32/F16/BF16 safetensors file, parsed by hand."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        buf = raw[base + b:base + end]
        if e["dtype"] == "F32":
            a = np.frombuffer(buf, dtype="<f4").astype(np.float64)
        elif e["dtype"] == "F16":
            a = np.frombuffer(buf, dtype="<f2").astype(np.float64)
        elif e["dtype"] == "BF16":
            a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {e['dtype']}")
        out[name] = torch.from_numpy(a.reshape(e["shape"]).copy())
    return out


def write_safetensors(path, tensors):
    """[(name, float32 numpy array)] -> safetensors, header padded to 8 bytes."""
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, a in tensors:
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for _, a in tensors:
            f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())


def make_adapter(cfg, hf, folder, rank=4, alpha=8, seed=2468):
    g = torch.Generator().manual_seed(seed)
    tensors = []
    for l in range(cfg["n_layers"]):
        for stem in PROJ:
            name = f"base_model.model.model.layers.{l}.{MODULE[stem]}"
            n_out, n_in = hf[f"model.layers.{l}.{MODULE[stem]}.weight"].shape
            A = torch.randn(rank, n_in, generator=g, dtype=torch.float64) * 0.1
            B = torch.randn(n_out, rank, generator=g, dtype=torch.float64) * 0.1
            tensors += [(name + ".lora_A.weight", A.float().numpy()), (name + ".lora_B.weight", B.float().numpy())]
    os.makedirs(folder, exist_ok=True)
    write_safetensors(os.path.join(folder, "adapter_model.safetensors"), tensors)
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "stories260K",
              "r": rank, "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False,
              "use_rslora": False, "use_dora": False, "modules_to_save": None, "inference_mode": True,
              "target_modules": [MODULE[s].split(".")[1] for s in PROJ]}
    with open(os.path.join(folder, "adapter_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"wrote {folder}: {len(tensors)} tensors, r {rank}, lora_alpha {alpha}")


def apply_adapter(cfg, hf, folder):
    """W + scale * B @ A on every target module (PEFT's LoraLayer merge)."""
    config = json.load(open(os.path.join(folder, "adapter_config.json")))
    assert config["peft_type"] == "LORA" and not config.get("use_dora") and config.get("bias", "none") == "none"
    r, alpha = config["r"], config["lora_alpha"]
    scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
    targets = set(config["target_modules"])
    t = read_safetensors(os.path.join(folder, "adapter_model.safetensors"))
    applied = 0
    for l in range(cfg["n_layers"]):
        for stem in PROJ:
            module = MODULE[stem]
            if module.split(".")[1] not in targets:
                continue
            key = f"base_model.model.model.layers.{l}.{module}"
            A, B = t.pop(key + ".lora_A.weight"), t.pop(key + ".lora_B.weight")
            w = f"model.layers.{l}.{module}.weight"
            hf[w] = hf[w] + scale * (B @ A)
            applied += 1
    assert not t, f"tensors left over: {list(t)[:3]}"
    print(f"applied {applied} modules, scale {scale}")


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def hf_forward(cfg, hf, tokens, theta=10000.0):
    """transformers' LlamaForCausalLM forward (eager attention, rotate_half RoPE)."""
    B, T = tokens.shape
    nh, nkv, dim = cfg["n_heads"], cfg["n_kv"], cfg["dim"]
    hd = dim // nh
    inv_freq = 1.0 / theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]  # [1, 1, T, hd]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    x = hf["model.embed_tokens.weight"][tokens]
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, hf[p + "input_layernorm.weight"])
        q = (h @ hf[p + "self_attn.q_proj.weight"].T).view(B, T, nh, hd).transpose(1, 2)
        k = (h @ hf[p + "self_attn.k_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        v = (h @ hf[p + "self_attn.v_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = ((q @ k.transpose(-1, -2)) / math.sqrt(hd)).masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, dim)
        x = x + y @ hf[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, hf[p + "post_attention_layernorm.weight"])
        gate, up = h @ hf[p + "mlp.gate_proj.weight"].T, h @ hf[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ hf[p + "mlp.down_proj.weight"].T
    return rmsnorm(x, hf["model.norm.weight"]) @ hf["lm_head.weight"].T


def fixed_tokens(cfg, B=2, T=32):
    g = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, cfg["vocab"], (B, T), generator=g)
    tokens[0] = torch.arange(1, T + 1)  # BOS, then ids 2..T
    return tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="../shared/models/stories260K/stories260K.bin")
    ap.add_argument("--make-adapter", help="write a fixed random PEFT adapter folder here first")
    ap.add_argument("--adapter", help="the PEFT adapter folder to apply")
    ap.add_argument("--out", help="the logits dump (QTREF001)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg, w = load_llama2c_legacy(args.model)
    hf = to_hf(cfg, w)
    with torch.no_grad():  # self-check: the converted model is the same model (permutation + rotate_half)
        tokens = fixed_tokens(cfg)
        diff = (hf_forward(cfg, hf, tokens) - meta_forward(cfg, w, tokens)).abs().max().item()
    assert diff < 1e-9, f"HF layout forward differs from the llama2.c one by {diff}"
    if args.make_adapter:
        make_adapter(cfg, hf, args.make_adapter)
    if args.adapter:
        apply_adapter(cfg, hf, args.adapter)
    if args.out:
        tokens = fixed_tokens(cfg)
        with torch.no_grad():
            logits = hf_forward(cfg, hf, tokens)
        write_dump(args.out, [("tokens", tokens.double()), ("logits", logits)])
        print(f"wrote {args.out}: logits {list(logits.shape)}")


if __name__ == "__main__":
    main()
