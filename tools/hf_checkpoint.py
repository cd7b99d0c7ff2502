#!/usr/bin/python3
"""A llama2.c checkpoint as a Hugging Face LLaMA checkpoint folder, and reference logits of it.

    /usr/bin/python3 tools/hf_checkpoint.py \
        --model ../shared/models/stories260K/stories260K.bin --out /tmp/stories260K-hf [--shards 2]

What it writes into --out (created if absent):
  * config.json as transformers' LlamaConfig saves it (model_type llama, hidden_size, ...,
    rms_norm_eps 1e-5 and rope_theta 10000 as llama2.c uses, tie_word_embeddings for a shared
    classifier);
  * the weights as a `state_dict` in HF naming (model.embed_tokens.weight,
    model.layers.N.self_attn.q_proj.weight, ..., lm_head.weight unless tied), float32, with
    q_proj / k_proj permuted exactly as transformers' convert_llama_weights_to_hf.py does:
        w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)
    (k with n_kv_heads heads), plus model.layers.N.self_attn.rotary_emb.inv_freq as older
    transformers saved it (derived, not learned). The safetensors format is written by hand
    (there is no `safetensors` package here): u64 header length, JSON header padded with spaces
    to a multiple of 8, the tensors' bytes. --shards N > 1 writes model-0000i-of-0000N.safetensors
    and model.safetensors.index.json instead of model.safetensors;
  * reference.bin, a QTREF001 dump (format: tools/torch_reference.py) with
      tokens [2, 16]  BOS then ids from torch.Generator seeded 1234,
      logits [2, 16, V]  of an HF-style float64 forward on the HF tensors: rotate_half RoPE
                         (x[i] with x[i + head_dim/2]), as transformers' LlamaAttention.
The script checks its HF-style logits against tools/torch_reference.py's llama2.c-style forward
(adjacent-pair RoPE on the unpermuted weights) to 1e-9 before writing: the permutation and the
rotate-half RoPE together are the llama2.c model. tests/models/hf_llama_test.cpp runs it and
compares qtune's logits of the folder with these and with qtune's logits of the llama2.c file.
"""
import argparse
import json
import math
import os
import struct

import torch
import torch.nn.functional as F

from torch_reference import forward as llama2c_forward, load_llama2c_legacy, rmsnorm, write_dump

LAYER_MODULES = [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                 ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
                 ("attn_output", "self_attn.o_proj"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                 ("ffn_down", "mlp.down_proj")]


def permute(w, n_heads, dim1, dim2):
    """convert_llama_weights_to_hf.py: Meta's adjacent-pair rows -> HF's rotate-half rows."""
    return w.view(n_heads, dim1 // n_heads // 2, 2, dim2).transpose(1, 2).reshape(dim1, dim2)


def hf_state_dict(cfg, w):
    """{HF name: float32 tensor} in transformers' order."""
    dim, nh, nkv = cfg["dim"], cfg["n_heads"], cfg["n_kv"]
    hd = dim // nh
    sd = {"model.embed_tokens.weight": w["token_embd.weight"]}
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    for l in range(cfg["n_layers"]):
        for gguf, module in LAYER_MODULES:
            t = w[f"blk.{l}.{gguf}.weight"]
            if gguf == "attn_q":
                t = permute(t, nh, dim, dim)
            elif gguf == "attn_k":
                t = permute(t, nkv, dim * nkv // nh, dim)
            sd[f"model.layers.{l}.{module}.weight"] = t
        sd[f"model.layers.{l}.self_attn.rotary_emb.inv_freq"] = inv_freq
    sd["model.norm.weight"] = w["output_norm.weight"]
    if not cfg["shared"]:
        sd["lm_head.weight"] = w["output.weight"]
    return {k: v.to(torch.float32).contiguous() for k, v in sd.items()}


def hf_config(cfg):
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": cfg["dim"],
            "intermediate_size": cfg["hidden"], "num_hidden_layers": cfg["n_layers"],
            "num_attention_heads": cfg["n_heads"], "num_key_value_heads": cfg["n_kv"], "vocab_size": cfg["vocab"],
            "max_position_embeddings": cfg["seq_len"], "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
            "rope_scaling": None, "hidden_act": "silu", "tie_word_embeddings": cfg["shared"],
            "attention_bias": False, "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float32"}


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 tensor). Written to a temp file, then renamed."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, t in tensors:
        n = t.numel() * 4
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for _, t in tensors:
            f.write(t.numpy().astype("<f4").tobytes())
    os.replace(tmp, path)


def write_checkpoint(out, config, sd, shards):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    items = list(sd.items())
    if shards <= 1:
        write_safetensors(os.path.join(out, "model.safetensors"), items)
        return
    weight_map = {}
    for s in range(shards):
        part = items[s * len(items) // shards:(s + 1) * len(items) // shards]
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(out, name), part)
        weight_map.update({k: name for k, _ in part})
    total = sum(t.numel() * 4 for _, t in items)
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def hf_forward(config, sd, tokens):
    """transformers' LlamaForCausalLM forward (eager attention) in float64: tokens [B, T] -> logits."""
    sd = {k: v.to(torch.float64) for k, v in sd.items()}
    B, T = tokens.shape
    dim, nh, nkv = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    hd, eps = dim // nh, config["rms_norm_eps"]
    inv_freq = 1.0 / (config["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)  # [T, hd]: angle j and j + hd/2 are the same
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    x = sd["model.embed_tokens.weight"][tokens]
    for l in range(config["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, sd[p + "input_layernorm.weight"], eps)
        q = (h @ sd[p + "self_attn.q_proj.weight"].T).view(B, T, nh, hd).transpose(1, 2)
        k = (h @ sd[p + "self_attn.k_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        v = (h @ sd[p + "self_attn.v_proj.weight"].T).view(B, T, nkv, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)  # repeat_kv: query head i uses kv head i // n_rep
        v = v.repeat_interleave(nh // nkv, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, dim)
        x = x + y @ sd[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, sd[p + "post_attention_layernorm.weight"], eps)
        gate, up = h @ sd[p + "mlp.gate_proj.weight"].T, h @ sd[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(gate) * up) @ sd[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, sd["model.norm.weight"], eps)
    head = sd["model.embed_tokens.weight"] if config["tie_word_embeddings"] else sd["lm_head.weight"]
    return x @ head.T


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="../shared/models/stories260K/stories260K.bin")
    ap.add_argument("--out", required=True, help="checkpoint folder to write")
    ap.add_argument("--shards", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)

    cfg, w = load_llama2c_legacy(args.model)  # float64, GGUF names, llama2.c row order
    config = hf_config(cfg)
    sd = hf_state_dict(cfg, w)
    write_checkpoint(args.out, config, sd, args.shards)

    g = torch.Generator().manual_seed(1234)
    tokens = torch.randint(0, cfg["vocab"], (2, 16), generator=g)
    tokens[:, 0] = 1  # BOS
    with torch.no_grad():
        logits = hf_forward(config, sd, tokens)
        w32 = {k: v.to(torch.float32).to(torch.float64) for k, v in w.items()}  # the same float32 values
        ref = llama2c_forward(cfg, w32, tokens)
    err = (logits - ref).abs().max().item()
    assert err < 1e-9, f"HF-style and llama2.c-style forwards differ by {err}"
    write_dump(os.path.join(args.out, "reference.bin"), [("tokens", tokens.double()), ("logits", logits)])
    print(f"wrote {args.out} ({args.shards} weight file(s)); HF-style vs llama2.c-style logits: max diff {err:.2e}")


if __name__ == "__main__":
    main()
