#!/usr/bin/python3
"""Collects bench/peers/run.sh's raw reports into one JSON, a Markdown table and a PNG plot.

Every figure is the median over the runs (reps) found; tokens/s of one training run = batch·seq / its
median step after the first (qtune's report step_seconds, the peer's step_seconds, the same rule).
"""
import argparse
import glob
import json
import os
import re
import statistics
import subprocess

import ceiling


def median(xs):
    return statistics.median(xs) if xs else None


def train_tok_s(rep):
    steps = rep["step_seconds"][1:] or rep["step_seconds"]
    return rep["batch"] * rep["seq"] / statistics.median(steps)


def load(path):
    with open(path) as f:
        return json.load(f)


def collect_train(d):
    rows = {}
    for p in glob.glob(os.path.join(d, "train.*.json")):
        m = re.match(r"train\.(\w+)\.([\w-]+)\.(qtune|torch)\.(\d+)\.json$", os.path.basename(p))
        if not m:
            continue
        shape, method, who, _ = m.groups()
        rep = load(p)
        row = rows.setdefault((shape, method), {"shape": shape, "method": method, "qtune": [], "torch": []})
        row[who].append({"tok_s": train_tok_s(rep), "rss": rep["peak_rss_bytes"] / 2**20,
                         "batch": rep["batch"], "seq": rep["seq"]})
    for (shape, method), row in rows.items():  # GSE and bf16 rows are compared with the peer's float row
        base = re.sub(r"-(gse8|bf16)$", "", method)
        if base != method and (shape, base) in rows:
            row["torch"] = rows[(shape, base)]["torch"]
    out = []
    for (shape, method), row in sorted(rows.items(), key=lambda kv: (kv[0][0] != "15m", kv[0][0], kv[0][1])):
        r = {"shape": shape, "method": method, "runs": {"qtune": len(row["qtune"]), "torch": len(row["torch"])}}
        for who in ("qtune", "torch"):
            r[f"{who}_tok_s"] = median([x["tok_s"] for x in row[who]])
            r[f"{who}_rss_mib"] = median([x["rss"] for x in row[who]])
        if row["qtune"]:
            r["batch"], r["seq"] = row["qtune"][0]["batch"], row["qtune"][0]["seq"]
        if r["qtune_tok_s"] and r["torch_tok_s"]:
            r["speed_ratio"] = r["qtune_tok_s"] / r["torch_tok_s"]
            r["rss_ratio"] = r["qtune_rss_mib"] / r["torch_rss_mib"]
        out.append(r)
    return out


def collect_infer(d):
    out = []
    for f in ("q8", "q4", "w4a8", "w8a8"):
        gens = [load(p) for p in sorted(glob.glob(os.path.join(d, f"gen.{f}.*.json")))]
        if not gens:
            continue
        r = {"model": f, "runs": len(gens), "prompt_tokens": gens[0].get("prompt_tokens"),
             "gen_tokens": gens[0].get("gen_tokens"),
             "qtune_prefill_tok_s": median([g["prompt_tok_s"] for g in gens]),
             "qtune_decode_tok_s": median([g["decode_tok_s"] for g in gens])}
        pp, tg = [], []
        for p in glob.glob(os.path.join(d, f"llama.{f}.*.json")):
            try:
                for t in load(p):
                    (pp if t.get("n_prompt", 0) > 0 else tg).append(t["avg_ts"])
            except (ValueError, KeyError):
                pass
        if pp and tg:
            r["llamacpp_pp_tok_s"], r["llamacpp_tg_tok_s"] = median(pp), median(tg)
            r["prefill_ratio"] = r["qtune_prefill_tok_s"] / r["llamacpp_pp_tok_s"]
            r["decode_ratio"] = r["qtune_decode_tok_s"] / r["llamacpp_tg_tok_s"]
        out.append(r)
    return out


def collect_moonshot(d):
    p = os.path.join(d, "moonshot.json")
    if not os.path.exists(p):
        return None
    rep = load(p)
    r = {"tok_s": train_tok_s(rep), "report_peak_rss_mib": rep["peak_rss_bytes"] / 2**20,
         "batch": rep["batch"], "seq": rep["seq"], "memory": rep.get("memory")}
    t = os.path.join(d, "moonshot.time")
    if os.path.exists(t):
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(t).read())
        if m:
            r["max_rss_mib"] = int(m.group(1)) / 1024
    return r


def load_notes(d):
    p = os.path.join(d, "load.txt")
    return "; ".join(open(p).read().split("\n")[-6:]).strip("; ") if os.path.exists(p) else "not recorded"


def fmt(x, spec=".0f"):
    return "—" if x is None else format(x, spec)


def markdown(res):
    lines = [f"Machine: {res['machine']}; {res['threads']} threads; load before the run: {res['load']}.", ""]
    if res["train"]:
        lines += ["| shape | method | B×T | qtune tok/s | PyTorch tok/s | ratio | qtune RSS MiB | PyTorch RSS MiB | RSS ratio |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in res["train"]:
            lines.append(f"| {r['shape']} | {r['method']} | {r.get('batch')}×{r.get('seq')} | {fmt(r['qtune_tok_s'])} | "
                         f"{fmt(r['torch_tok_s'])} | {fmt(r.get('speed_ratio'), '.2f')}× | {fmt(r['qtune_rss_mib'])} | "
                         f"{fmt(r['torch_rss_mib'])} | {fmt(r.get('rss_ratio'), '.2f')} |")
        lines.append("")
    if res["infer"]:
        lines += ["| 110M model | prompt tok | qtune prefill tok/s | llama.cpp pp128 | ratio | qtune decode tok/s | "
                  "llama.cpp tg128 | ratio |", "|---|---|---|---|---|---|---|---|"]
        for r in res["infer"]:
            lines.append(f"| {r['model']} | {r['prompt_tokens']} | {fmt(r['qtune_prefill_tok_s'])} | "
                         f"{fmt(r.get('llamacpp_pp_tok_s'))} | {fmt(r.get('prefill_ratio'), '.2f')} | "
                         f"{fmt(r['qtune_decode_tok_s'])} | {fmt(r.get('llamacpp_tg_tok_s'))} | "
                         f"{fmt(r.get('decode_ratio'), '.2f')} |")
        lines.append("")
    ceil = [r for r in res["train"] if r.get("max_speed_ratio")]
    if ceil:
        pk = res["peak_gops_per_core"]
        lines += [f"Arithmetic ceiling (bench/peers/ceiling.py): the machine's peak with {res['threads']} threads is "
                  + ", ".join(f"{k} {v * res['threads']:.0f}" for k, v in sorted(pk.items()))
                  + " GOP/s (bench/peak_bench.cpp); the work per token is a lower bound (multiply-adds only), so "
                  "'highest possible ratio' is what an implementation at 100 % of peak would reach against this peer.", "",
                  "| shape | method | MOP/token | qtune GOP/s | share of peak | PyTorch GOP/s | highest possible ratio |",
                  "|---|---|---|---|---|---|---|"]
        for r in ceil:
            lines.append(f"| {r['shape']} | {r['method']} | {r['mops_per_token']:.1f} | {fmt(r.get('qtune_gops'))} | "
                         f"{fmt(100 * r.get('qtune_peak_share', 0))} % of {r['peak_kind']} | "
                         f"{fmt(r['torch_tok_s'] * r['mops_per_token'] / 1e3)} | {r['max_speed_ratio']:.2f}× |")
        lines.append("")
    m = res.get("moonshot")
    if m:
        lines.append(f"TinyLlama-1.1B shape, qlora 4-bit r 8 (q,k,v,o), B{m['batch']}×{m['seq']}, --recompute: "
                     f"{m['tok_s']:.1f} tok/s, peak RSS {fmt(m.get('max_rss_mib'))} MiB.")
    return "\n".join(lines) + "\n"


def plot(res, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 2]})
    tr = res["train"]
    if tr:
        labels = [f"{r['shape']}\n{r['method']}" for r in tr]
        x = range(len(tr))
        axes[0].bar([i - 0.2 for i in x], [r["qtune_tok_s"] or 0 for r in tr], 0.4, label="qtune")
        axes[0].bar([i + 0.2 for i in x], [r["torch_tok_s"] or 0 for r in tr], 0.4, label="PyTorch 1.13")
        axes[0].set_xticks(list(x), labels, fontsize=7, rotation=60, ha="right")
        axes[0].set_yscale("log")
        axes[0].set_ylabel("training tokens/s")
        axes[0].legend(fontsize=8)
        axes[0].set_title(f"training, {res['threads']} threads (median of runs)", fontsize=9)
    inf = res["infer"]
    if inf:
        labels, q, l = [], [], []
        for r in inf:
            for kind, key, lk in (("prefill", "qtune_prefill_tok_s", "llamacpp_pp_tok_s"),
                                  ("decode", "qtune_decode_tok_s", "llamacpp_tg_tok_s")):
                labels.append(f"{r['model']}\n{kind}")
                q.append(r[key] or 0)
                l.append(r.get(lk) or 0)
        x = range(len(labels))
        axes[1].bar([i - 0.2 for i in x], q, 0.4, label="qtune")
        axes[1].bar([i + 0.2 for i in x], l, 0.4, label="llama.cpp")
        axes[1].set_xticks(list(x), labels, fontsize=8)
        axes[1].set_yscale("log")
        axes[1].set_ylabel("tokens/s")
        axes[1].legend(fontsize=8)
        axes[1].set_title("110M inference (Q8_0, Q4_0, merged W4A8/W8A8)", fontsize=9)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    a = ap.parse_args()
    cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True,
                         text=True).stdout.strip()
    res = {"machine": f"{cpu}, {os.cpu_count()} cores", "threads": 2,
           "load": load_notes(a.dir),
           "train": collect_train(a.dir), "infer": collect_infer(a.dir), "moonshot": collect_moonshot(a.dir),
           "peak_gops_per_core": ceiling.load_peak(os.path.join(a.dir, "peak.json"))}
    res["train"] = [ceiling.ceiling(r, res["peak_gops_per_core"], res["threads"]) for r in res["train"]]
    for path, text in ((a.json, json.dumps(res, indent=1)), (a.md, markdown(res))):
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    plot(res, a.png)
    print(markdown(res))


if __name__ == "__main__":
    main()
