#!/usr/bin/env bash
# Data-parallel finetune on one machine (issue 16): 1 process × 2 threads vs `mpirun -np 2` ranks ×
# 1 thread, the same global batch (1 × B vs 2 × B/2) and data. Models: stories260K and a
# stories15M-shaped random model (qtune init, as bench/peers/run.sh). tok/s = global batch · seq /
# the median step (the first step is a warm-up, not counted); all-reduce share = the report's
# allreduce_seconds / the steps' time (it includes waiting for the slower rank). Median of REPS runs.
# Also the communication volume per step: 4 bytes × trainable params (the grads summed over ranks;
# the adapter's alone for the adapter methods), 8 with --exact-sums (double sums), and what it
# costs at 10 Gb/s. A case shape:method:exact runs with --exact-sums (its cost is the tok/s
# against the same case without).
#
#   bench/mpi/run.sh
# Env: QTUNE (build/qtune), OUT (out/mpi), REPS (3), STEPS (6), MPIRUN (mpirun),
#      CASES ("260k:lora 260k:qlora 15m:lora 15m:qlora 15m:lora:exact 15m:qlora:exact 15m:qalora
#      15m:qalora:exact").
# Writes bench/results/mpi.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/../.."
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/mpi}
REPS=${REPS:-3}
STEPS=${STEPS:-6}
MPIRUN=${MPIRUN:-mpirun}
CASES=${CASES:-"260k:lora 260k:qlora 15m:lora 15m:qlora 15m:lora:exact 15m:qlora:exact 15m:qalora 15m:qalora:exact"}
S=${QTUNE_SHARED_DIR:-../shared}
mkdir -p "$OUT" bench/results
unset OMP_WAIT_POLICY GOMP_SPINCOUNT  # qtune sets its own (src/cli/main.cpp)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers run as root

[ -s "$OUT/kjv-1mb.txt" ] || head -c 1000000 "$S/data/kjv.txt" > "$OUT/kjv-1mb.txt"
[ -s "$OUT/s15m.gguf" ] || "$Q" init --config dim=288,hidden=768,layers=6,heads=6,kv_heads=6,seq=256 \
  --tokenizer "$S/models/llama2-tokenizer/tokenizer.model" --seed 1 --out "$OUT/s15m.gguf" > /dev/null

model_args() {  # shape → model flags
  case "$1" in
    260k) echo "--model $S/models/stories260K/stories260K.bin --tokenizer $S/models/stories260K/tok512.bin" ;;
    15m) echo "--model $OUT/s15m.gguf --tokenizer $S/models/llama2-tokenizer/tokenizer.model" ;;
  esac
}

run_one() {  # shape method exact("" | exact) mode(1p2t|2r1t) rep
  local shape=$1 method=$2 exact=$3 mode=$4 rep=$5 global=8 seq=256
  local rep_json="$OUT/$shape-$method$exact-$mode-$rep.json"
  local common=(finetune $(model_args "$shape") --data "$OUT/kjv-1mb.txt" --val-every 0 --method "$method"
                --rank 8 --target q,k,v,o --steps "$STEPS" --seq "$seq" --seed 1 --quiet
                --out "$OUT/$shape-$method$exact-$mode.gguf" --report "$rep_json")
  [ -z "$exact" ] || common+=(--exact-sums)
  if [ "$mode" = 1p2t ]; then
    "$Q" "${common[@]}" --batch "$global" --threads 2 > /dev/null
  else
    "$MPIRUN" --oversubscribe -np 2 "$Q" "${common[@]}" --batch $((global / 2)) --threads 1 > /dev/null
  fi
}

for c in $CASES; do
  IFS=: read -r shape method exact <<< "$c"
  for rep in $(seq 1 "$REPS"); do  # interleaved, so a load change hits both modes alike
    for mode in 1p2t 2r1t; do
      echo "$shape $method ${exact:+--exact-sums }$mode run $rep" >&2
      run_one "$shape" "$method" "$exact" "$mode" "$rep"
    done
  done
done

python3 - "$OUT" "$REPS" "$CASES" <<'PY'
import json, statistics, sys, os
out, reps, cases = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rows = []
for c in cases:
    shape, method, exact = (c.split(":") + [""])[:3]
    row = {"model": shape, "method": method + (" --exact-sums" if exact else ""), "exact_sums": bool(exact)}
    for mode in ("1p2t", "2r1t"):
        tps, share, params = [], [], 0
        for rep in range(1, reps + 1):
            j = json.load(open(f"{out}/{shape}-{method}{exact}-{mode}-{rep}.json"))
            steps = j["step_seconds"][1:] or j["step_seconds"]
            tps.append(j["batch"] * j.get("ranks", 1) * j["seq"] / statistics.median(steps))
            share.append(j.get("allreduce_share", 0.0))
            params = j["trainable_params"]
        row[mode] = {"tokens_per_second": statistics.median(tps), "allreduce_share": statistics.median(share),
                     "runs_tok_s": tps}
    row["trainable_params"] = params
    b = (8 if exact else 4) * params  # float32 grads or double sums, summed over ranks each step (+ a few doubles of loss)
    row["bytes_per_step"] = b
    # 10 Gb/s ≈ 1.25 GB/s per direction. qtune's sum (all-to-all, rank-order sums, all-gather)
    # moves 2(N−1)/N·b each way per rank, as a ring would: b at N = 2.
    row["seconds_at_10gbe_n2"] = b / 1.25e9
    rows.append(row)
json.dump(rows, open("bench/results/mpi.json", "w"), indent=1)
with open("bench/results/mpi.md", "w") as f:
    f.write("| model | method | trainable params | 1 proc × 2 threads tok/s | 2 ranks × 1 thread tok/s | all-reduce share (2 ranks) | grads per step | at 10 Gb/s |\n")
    f.write("|---|---|---:|---:|---:|---:|---:|---:|\n")
    for r in rows:
        f.write(f"| {r['model']} | {r['method']} | {r['trainable_params']:,} | {r['1p2t']['tokens_per_second']:.0f} | "
                f"{r['2r1t']['tokens_per_second']:.0f} | {100 * r['2r1t']['allreduce_share']:.1f}% | "
                f"{r['bytes_per_step'] / 1e6:.2f} MB | {1e3 * r['seconds_at_10gbe_n2']:.2f} ms |\n")
print(open("bench/results/mpi.md").read())
PY
