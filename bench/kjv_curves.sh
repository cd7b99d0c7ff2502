#!/usr/bin/env bash
# Training curves for the stories260K → KJV table (bench/kjv_finetune.sh): the same three runs
# (full, lora r 8, qlora 4-bit r 8; 2000 steps of 8 × 128, warmup 100 + cosine, seed 1), with the
# whole held-out split (every 20th verse) scored every 100 steps. The finetune reports, compacted
# to one line each, go to bench/results/kjv_curves/; `/usr/bin/python3 bench/plot.py` draws them.
#   usage: bench/kjv_curves.sh [path/to/qtune] [steps]
set -euo pipefail
cd "$(dirname "$0")/.."
QTUNE=${1:-build/qtune}
STEPS=${2:-2000}
S=../shared
MODEL=$S/models/stories260K/stories260K.bin TOK=$S/models/stories260K/tok512.bin DATA=$S/data/kjv.txt
OUT=${OUT:-out/kjv_curves}; mkdir -p "$OUT" bench/results/kjv_curves
common=(--model "$MODEL" --tokenizer "$TOK" --data "$DATA" --val-every 20 --seq 128 --threads 2)
run() {  # name method lr extra...
  local name=$1 method=$2 lr=$3; shift 3
  "$QTUNE" finetune "${common[@]}" --method "$method" --lr "$lr" --steps "$STEPS" --batch 8 --warmup 100 \
    --schedule cosine --seed 1 --eval-every 100 --eval-batches 0 --out "$OUT/$name.gguf" --report "$OUT/$name.json" \
    "$@" --quiet
  jq -c . "$OUT/$name.json" > "bench/results/kjv_curves/$name.json.tmp"
  mv "bench/results/kjv_curves/$name.json.tmp" "bench/results/kjv_curves/$name.json"
}
run full full 1e-3
run lora_r8 lora 3e-3 --rank 8 --alpha 16
run qlora4_r8 qlora 3e-3 --rank 8 --alpha 16 --bits 4
