#!/usr/bin/env bash
# Training curves for the stories260K → KJV table (bench/kjv_finetune.sh): the same three runs
# (full, lora r 8, qlora 4-bit r 8; 2000 steps of 8 × 128, warmup 100 + cosine, seed 1), with the
# whole held-out split (every 20th verse) scored every 100 steps. The finetune reports, compacted
# (one line; loss/lr to 6 digits; step_seconds, the wall time of each step, left out) go to
# bench/results/kjv_curves/; `/usr/bin/python3 bench/plot.py` draws them.
#   usage: bench/kjv_curves.sh [path/to/qtune] [steps]
set -euo pipefail
source "$(dirname "$0")/kjv_setup.sh"
OUT=${OUT:-out/kjv_curves}; mkdir -p "$OUT" bench/results/kjv_curves
compact() {  # report out: one line, curve values to 6 digits, without step_seconds (wall times)
  /usr/bin/python3 - "$1" "$2" <<'PY'
import json, os, sys
rep = json.load(open(sys.argv[1]))
rep.pop("step_seconds", None)
for k in ("loss_curve", "val_curve"):
    rep[k] = [{f: float(f"{v:.6g}") if isinstance(v, float) else v for f, v in p.items()} for p in rep[k]]
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write(json.dumps(rep, separators=(",", ":")) + "\n")
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
}
run() {  # name method lr extra...: the table's run, scored every 100 steps, compacted
  kjv_run "$OUT" "$@" --eval-every 100
  compact "$OUT/$1.json" "bench/results/kjv_curves/$1.json"
}
run full full 1e-3
run lora_r8 lora 3e-3 --rank 8 --alpha 16
run qlora4_r8 qlora 3e-3 --rank 8 --alpha 16 --bits 4
