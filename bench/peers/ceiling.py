"""The arithmetic ceiling of the training rows: how fast any implementation could go on this machine.

A training step of a LLaMA has a floor of multiply-adds that no implementation can skip. Divided into the
machine's measured peak (bench/peak_bench.cpp: one core's multiply-add throughput × threads), it bounds
tokens/s from above; divided by the peer's measured tokens/s, it bounds the speed-up over the peer.

Operations per token (2 per multiply-add), for a model of L layers, width d, FFN width h, KV width dk,
vocabulary V, window T, LoRA rank r on q,k,v,o:
  P         = L·(2·d·d + 2·d·dk + 3·d·h) + d·V        weights of every projection and the classifier
  attention = L·2·d·(T+1)                               Q·Kᵀ and P·V, causal (T+1)/2 keys on average
  lora      = L·2·r·(6·d + 2·dk)                      x·A and (x·A)·B of each target (q, o: d→d; k, v: d→dk)
  forward   = 2·P + attention + lora
  lora / qlora:  forward + input gradients (2·P + 2·attention + lora) + adapter weight gradients (lora)
                 − the input gradient of layer 0's q,k,v (it would only reach the frozen embedding)
  full:          forward + input gradients + weight gradients (2·P) + 2·attention
Norms, softmax, SwiGLU, RoPE and the optimizer are left out: the figure is a lower bound on the work,
so the ceiling it gives is an upper bound on the speed.
"""

SHAPES = {  # bench/peers/run.sh CONFIG and SEQ
    "15m": dict(d=288, h=768, layers=6, heads=6, kv_heads=6, vocab=32000, T=256),
    "110m": dict(d=768, h=2048, layers=12, heads=12, kv_heads=12, vocab=32000, T=256),
}
RANK = 8


def ops_per_token(shape, method):
    s = SHAPES.get(shape)
    if s is None:
        return None
    d, h, L, V, T = s["d"], s["h"], s["layers"], s["vocab"], s["T"]
    dk = d * s["kv_heads"] // s["heads"]
    P = L * (2 * d * d + 2 * d * dk + 3 * d * h) + d * V
    attention = L * 2 * d * (T + 1)
    base = method.split("-")[0]
    if base == "full":
        return 6 * P + 3 * attention
    lora = L * 2 * RANK * (d + d + d + dk + d + dk + d + d)  # q: d→d, k,v: d→dk, o: d→d
    return 4 * P + 3 * attention + 3 * lora - 2 * (d * d + 2 * d * dk)


def peak_kind(method):
    """Which peak bounds a row: its GEMMs' number format."""
    if method.endswith("-bf16"):
        return "bf16"
    if method.endswith("-gse8"):
        return "int8"
    return "fp32"


def load_peak(path):
    """Per-core GOP/s from `qtune_bench --benchmark_filter=Peak --benchmark_format=json`, by kind."""
    import json
    import os
    if not os.path.exists(path):
        return None
    names = {"BM_PeakFp32Avx512": "fp32", "BM_PeakFp32Avx2": "fp32", "BM_PeakBf16Avx512": "bf16",
             "BM_PeakInt8Vnni": "int8"}
    peak = {}
    for b in json.load(open(path))["benchmarks"]:
        kind = names.get(b.get("run_name", b["name"]).split("/")[0])
        if kind and b.get("aggregate_name", "median") == "median" and "GOP/s" in b:
            peak[kind] = max(peak.get(kind, 0.0), b["GOP/s"] / 1e9)
    return peak or None


def ceiling(row, peak_per_core, threads):
    """Adds ops_per_token, attained GOP/s and the highest possible speed-up over the peer to a train row."""
    ops = ops_per_token(row["shape"], row["method"])
    kind = peak_kind(row["method"])
    if ops is None or not peak_per_core or kind not in peak_per_core:
        return row
    peak = peak_per_core[kind] * threads
    row = dict(row, mops_per_token=ops / 1e6, peak_kind=kind, machine_peak_gops=peak)
    if row.get("qtune_tok_s"):
        row["qtune_gops"] = row["qtune_tok_s"] * ops / 1e9
        row["qtune_peak_share"] = row["qtune_gops"] / peak
    if row.get("torch_tok_s"):
        row["max_speed_ratio"] = peak * 1e9 / ops / row["torch_tok_s"]
    return row
