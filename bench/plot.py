#!/usr/bin/python3
"""Draws the README's plots from qtune's JSON reports (Debian's python3-matplotlib):

  docs/images/kjv_curves.png   training curves of the stories260K -> KJV table: the train loss of
                               every step (a 100-step running mean over the raw values) and the
                               held-out loss every 100 steps, for full, lora r 8 and qlora 4-bit
                               r 8 (finetune --report, from bench/kjv_curves.sh), and the
                               held-out loss of the model before training (kjv_stories260k.json)
  docs/images/integer_kjv.png  the integer-methods table (bench/results/integer_kjv.json): deployed
                               held-out perplexity per method at W8A8 and W4A8, mean +- std over
                               the seeds, float LoRA as the reference line

usage: /usr/bin/python3 bench/plot.py [--results bench/results] [--out docs/images]
A missing or malformed report stops it with one line naming the file and the script that makes it.
"""
import argparse
import json
import math
import os
import sys

CURVE_RUNS = (("full", "full"), ("lora_r8", "lora, r 8"), ("qlora4_r8", "qlora, 4-bit base, r 8"))
INTEGER_ROWS = (("lora", "LoRA\n(float)"), ("qlora", "QLoRA\n+ PTQ"), ("qalora", "QA-LoRA"),
                ("intlora-mul", "IntLoRA-\nMUL"), ("intlora-shift", "IntLoRA-\nSHIFT"),
                ("intlora-mul-zf", "IntLoRA-MUL\nzero-free"))
DPI = 80


def fail(msg):
    sys.exit(f"plot.py: {msg}")


def load(path, made_by):
    if not os.path.isfile(path):
        fail(f"{path}: report missing (made by {made_by})")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"{path}: not a readable JSON report ({e})")


def field(rep, key, path):
    if key not in rep:
        fail(f"{path}: no '{key}' in the report")
    return rep[key]


def running_mean(xs, n):
    out, s = [], 0.0
    for i, x in enumerate(xs):
        s += x
        if i >= n:
            s -= xs[i - n]
        out.append(s / min(i + 1, n))
    return out


def save(fig, path):
    tmp = path + ".tmp.png"  # written whole, then renamed: a failed run leaves the old plot
    fig.savefig(tmp, dpi=DPI)
    os.replace(tmp, path)
    print(f"wrote {path} ({os.path.getsize(path) // 1024} KiB)")


def read_curves(results):
    path = os.path.join(results, "kjv_stories260k.json")
    base = field(load(path, "bench/kjv_finetune.sh"), "base_perplexity", path)  # the model before training
    runs = []
    for name, label in CURVE_RUNS:
        path = os.path.join(results, "kjv_curves", name + ".json")
        rep = load(path, "bench/kjv_curves.sh")
        train, val = field(rep, "loss_curve", path), field(rep, "val_curve", path)
        if not train or len(val) < 2:
            fail(f"{path}: empty loss_curve or a single val_curve point (run finetune with --eval-every)")
        runs.append((label, train, val, field(rep, "val_perplexity", path)))
    return base, runs


def plot_curves(plt, curves, out, zoom_from=300):
    base, runs = curves
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [1, 1.3]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, lo in ((axes[0], 0), (axes[1], zoom_from)):
        for (label, train, val, ppl), color in zip(runs, colors):
            tr = [(p["step"], m) for p, m in zip(train, running_mean([p["loss"] for p in train], 100)) if p["step"] >= lo]
            ax.plot([s for s, _ in tr], [m for _, m in tr], color=color, linewidth=1.2, label=f"{label}: train")
            vs = [p for p in val if p["step"] >= lo]
            ax.plot([p["step"] for p in vs], [p["loss"] for p in vs], color=color, linestyle="--", marker="o",
                    markersize=2.5, linewidth=1.0, label=f"{label}: held-out, final ppl {ppl:.2f}")
        ax.set_xlabel("step (batch 8 x 128 tokens)")
        ax.grid(alpha=0.3)
    axes[0].plot([0], [math.log(base)], color="black", marker="s", markersize=3, linestyle="none",
                 label=f"before fine-tuning: held-out, ppl {base:.2f}")
    axes[0].set_ylabel("cross-entropy (nats / token)")
    axes[0].set_title("the whole run", fontsize=9)
    axes[1].set_title(f"from step {zoom_from}", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[1].legend(handles, labels, fontsize=6.5)
    fig.suptitle("stories260K fine-tuned on the KJV: train loss (100-step running mean) and held-out loss", fontsize=9)
    fig.tight_layout()
    save(fig, os.path.join(out, "kjv_curves.png"))


def read_integer(results):
    path = os.path.join(results, "integer_kjv.json")
    rep = load(path, "bench/integer_kjv.sh")
    rows = {(r["method"], r["bits"]): r for r in field(rep, "rows", path)}
    if ("lora", 32) not in rows:
        fail(f"{path}: no float LoRA row (method lora, bits 32)")
    return rows, field(rep, "base", path)


def plot_integer(plt, table, out):
    rows, base = table
    lora = rows[("lora", 32)]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = range(len(INTEGER_ROWS))
    for off, bits, label in ((-0.2, 8, "W8A8"), (0.2, 4, "W4A8")):
        # float LoRA has no bit width: the same figure stands in both groups
        rs = [lora if m == "lora" else rows.get((m, bits)) for m, _ in INTEGER_ROWS]
        means = [r["mean"] if r else 0 for r in rs]
        bars = ax.bar([i + off for i in x], means, 0.4, yerr=[r["std"] if r else 0 for r in rs], capsize=2,
                      label=label)
        ax.bar_label(bars, labels=[f"{m:.2f}" if m else "" for m in means], fontsize=7, padding=2)
    ax.axhline(lora["mean"], color="gray", linestyle=":", linewidth=1, label=f"float LoRA {lora['mean']:.2f}")
    ax.set_xticks(list(x), [label for _, label in INTEGER_ROWS], fontsize=8)
    ax.set_ylabel("held-out perplexity (deployed)")
    ax.set_ylim(0, max(r["mean"] for r in rows.values()) * 1.15)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(f"stories260K -> KJV, 600 steps, rank 8: merged models run by qtune eval (mean +- std, "
                 f"{lora.get('n', '?')} seeds; unadapted base {base['float']:.1f})", fontsize=8)
    fig.tight_layout()
    save(fig, os.path.join(out, "integer_kjv.png"))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=os.path.join(root, "bench", "results"), help="the JSON reports")
    ap.add_argument("--out", default=os.path.join(root, "docs", "images"), help="where the PNGs go")
    a = ap.parse_args()
    if not os.path.isdir(a.out):
        fail(f"{a.out}: output folder missing")
    curves, integer = read_curves(a.results), read_integer(a.results)  # every report checked before drawing
    try:
        import matplotlib
    except ImportError:
        fail("matplotlib is missing (Debian: apt-get install python3-matplotlib)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plot_curves(plt, curves, a.out)
    plot_integer(plt, integer, a.out)


if __name__ == "__main__":
    main()
