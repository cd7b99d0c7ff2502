#!/usr/bin/env bash
# The DiT issue's tables: a class-conditional DiT pretrained on Fashion-MNIST classes 0-7, then
# taught classes 8-9 by each method at W8A8 and W4A8; every row is the DEPLOYED (merged) model.
#   base (0-7)   FID + conditional accuracy on classes 0-7, a 4×4 grid per class
#   lora-fp      float LoRA, float merge (the W32A32 reference)
#   <m>-w<b>     m ∈ lora (+ b-bit PTQ), qlora (+ b-bit PTQ), qalora, intlora-mul, intlora-shift (exact
#                integer merges), b ∈ 8, 4; every one trained and deployed with int8 activations
#   base-89      the pretrained DiT on classes 8-9 before adaptation
# Every fine-tune: rank 8, --steps (default 1000) of 32 images, the method's default lr, seed 1,
# the class embedding trained (dit-train --class-embedding train). Metrics (qtune fid): N images per
# class (default 250), DDIM 50 steps, η = 1, CFG w = 2, seed 0.
#
#   bench/dit_fmnist.sh rows [row ...]   train, merge and score rows (cached per row); default: all
#   bench/dit_fmnist.sh resample S [row ...]  the metrics again with sampling seed S (fid.seedS.json):
#                                        how much of a FID gap is sampling noise
#   bench/dit_fmnist.sh table            OUT/table.{json,md} of the rows done, printed
#   bench/dit_fmnist.sh collect          that table into bench/results/dit_fmnist.{json,md}, and the
#                                        grids into docs/images/dit_*.png
# Two single-threaded halves in parallel use two cores better than one two-threaded run:
#   THREADS=1 bench/dit_fmnist.sh rows base lora-fp lora-w8 qlora-w8 qalora-w8 intlora-mul-w8 &
#   THREADS=1 bench/dit_fmnist.sh rows base-89 intlora-shift-w8 lora-w4 qlora-w4 qalora-w4 intlora-mul-w4 intlora-shift-w4; wait
# Env: QTUNE (default build/qtune), OUT (default out/dit: base.gguf and clf.gguf are made there
# when absent and reused after), THREADS (default 2), STEPS (1000), N (250), PRETRAIN_STEPS (8000).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-rows}
shift || true
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/dit}
THREADS=${THREADS:-2}
STEPS=${STEPS:-1000}
N=${N:-250}
mkdir -p "$OUT"
export OMP_WAIT_POLICY=PASSIVE
T=(--threads "$THREADS")
FID=(--classifier "$OUT/clf.gguf" --n "$N" --steps 50 --eta 1 --cfg 2 -q)
ALL_ROWS="base lora-fp lora-w8 qlora-w8 qalora-w8 intlora-mul-w8 intlora-shift-w8 lora-w4 qlora-w4 qalora-w4
          intlora-mul-w4 intlora-shift-w4 base-89"

# The base (cached): ~28 min on one core of this machine; patch 4 → 49 tokens, dim 64, depth 4.
make_base() {
  [ -s "$OUT/base.gguf" ] && return
  echo "== pretraining the base DiT on classes 0-7 (${PRETRAIN_STEPS:-8000} steps; cached afterwards)" >&2
  $Q dit-train --init-config patch=4,dim=64,depth=4,heads=4 --method full --classes 0-7 --steps "${PRETRAIN_STEPS:-8000}" --batch 32 \
    --lr 2e-3 --min-lr 1e-4 --warmup 200 --seed 1 --eval-every 1000 --save-every 500 "${T[@]}" -q \
    --out "$OUT/base.gguf" --report "$OUT/base.pretrain.json"
}
make_classifier() {
  [ -s "$OUT/clf.gguf" ] && return
  echo "== training the Fashion-MNIST classifier for the metrics (cached afterwards)" >&2
  $Q classifier-train --out "$OUT/clf.gguf" --report "$OUT/clf.json" "${T[@]}" -q
}

# row → dit-train flags and merge flags
train_flags() {
  case "$1" in
    lora-fp) echo "--method lora" ;;
    lora-w*) echo "--method lora --act-bits 8" ;;
    *-w*) local m=${1%-w*} b=${1##*-w}; echo "--method $m --bits $b --act-bits 8" ;;
  esac
}
merge_flags() {
  case "$1" in
    lora-w*|qlora-w*) echo "--bits ${1##*-w}" ;;
    *) echo "" ;;
  esac
}

row() {
  local r=$1 d="$OUT/$1"
  [ -s "$d/fid.json" ] && { echo "== $r: cached" >&2; return; }
  mkdir -p "$d"
  if [ "$r" = base ]; then
    $Q fid --model "$OUT/base.gguf" --classes 0-7 "${FID[@]}" --seed 0 "${T[@]}" --report "$d/fid.tmp.json" >&2
    $Q dit-eval --model "$OUT/base.gguf" --classes 0-7 "${T[@]}" --report "$d/eval.json" >/dev/null
    for k in 0 1 2 3 4 5 6 7; do
      $Q sample --model "$OUT/base.gguf" --class $k --n 16 --steps 50 --eta 1 --cfg 2 --seed 0 "${T[@]}" -q \
        --out "$d/class$k.png"
    done
  elif [ "$r" = base-89 ]; then
    $Q fid --model "$OUT/base.gguf" --classes 8-9 "${FID[@]}" --seed 0 "${T[@]}" --report "$d/fid.tmp.json" >&2
    $Q dit-eval --model "$OUT/base.gguf" --classes 8-9 "${T[@]}" --report "$d/eval.json" >/dev/null
  else
    echo "== $r: fine-tuning on classes 8-9 ($(train_flags "$r"))" >&2
    # shellcheck disable=SC2046
    $Q dit-train --model "$OUT/base.gguf" $(train_flags "$r") --rank 8 --classes 8-9 --steps "$STEPS" --batch 32 \
      --seed 1 "${T[@]}" -q --out "$d/adapter.gguf" --report "$d/train.json" >&2
    # shellcheck disable=SC2046
    $Q merge --model "$OUT/base.gguf" --adapter "$d/adapter.gguf" $(merge_flags "$r") --out "$d/merged.gguf" \
      --report "$d/merge.json" >&2
    $Q dit-eval --model "$d/merged.gguf" --classes 8-9 "${T[@]}" --report "$d/eval.json" >/dev/null
    $Q fid --model "$d/merged.gguf" --classes 8-9 "${FID[@]}" --seed 0 "${T[@]}" --report "$d/fid.tmp.json" >&2
    $Q sample --model "$d/merged.gguf" --class 8,9 --n 8 --steps 50 --eta 1 --cfg 2 --seed 0 "${T[@]}" -q \
      --out "$d/classes89.png"
  fi
  mv "$d/fid.tmp.json" "$d/fid.json"
}

table() {
  local rows=() r
  for r in $ALL_ROWS; do [ -s "$OUT/$r/fid.json" ] && rows+=("$r"); done
  {
    echo "["
    local first=1
    for r in "${rows[@]}"; do
      [ $first = 1 ] || echo ","
      first=0
      jq -n --arg row "$r" --arg flags "$(train_flags "$r")" --arg merge "$(merge_flags "$r")" \
        --slurpfile f "$OUT/$r/fid.json" --slurpfile e "$OUT/$r/eval.json" \
        --argjson more "$(cat "$OUT/$r"/fid.seed*.json 2>/dev/null | jq -s '[.[] | {seed, fid, conditional_accuracy}]')" \
        --argjson t "$( [ -s "$OUT/$r/train.json" ] && cat "$OUT/$r/train.json" || echo null)" \
        --argjson m "$( [ -s "$OUT/$r/merge.json" ] && cat "$OUT/$r/merge.json" || echo null)" \
        '{row: $row, train_flags: $flags, merge_flags: $merge, fid: $f[0].fid, fid_train_reference: $f[0].fid_train_reference,
          conditional_accuracy: $f[0].conditional_accuracy, per_class: [$f[0].per_class[] | {class, fid, conditional_accuracy}],
          heldout_loss: $e[0].val_loss, weights: $e[0].weights,
          trainable_params: (if $t then $t.trainable_params else null end),
          train_heldout_loss: (if $t then $t.val_loss else null end), train_seconds: (if $t then $t.wall_seconds else null end),
          merge: (if $m then $m.merge else null end),
          other_sampling_seeds: $more, fid_settings: {n: $f[0].n, steps: $f[0].steps, cfg: $f[0].cfg, eta: $f[0].eta, seed: $f[0].seed}}'
    done
    echo "]"
  } > "$OUT/table.json"
  {
    echo "| row | trained | deployed | trainable params | FID ↓ (sampling seed 0 / 1 / 2) | cond. acc. ↑ (same) | held-out loss |"
    echo "|---|---|---|---:|---:|---:|---:|"
    jq -r '.[] | "| \(.row) | \(.train_flags // "") | \(.merge // "—") | \(.trainable_params // "—") | \([.fid] + [.other_sampling_seeds[].fid] | map(. * 10 | round / 10 | tostring) | join(" / ")) | \([.conditional_accuracy] + [.other_sampling_seeds[].conditional_accuracy] | map(. * 1000 | round / 10 | tostring + "%") | join(" / ")) | \(.heldout_loss * 100000 | round / 100000) |"' \
      "$OUT/table.json"
  } > "$OUT/table.md"
  cat "$OUT/table.md"
}

collect() {
  table
  mkdir -p bench/results docs/images
  cp "$OUT/table.json" bench/results/dit_fmnist.json
  cp "$OUT/table.md" bench/results/dit_fmnist.md
  for k in 0 1 2 3 4 5 6 7; do [ -s "$OUT/base/class$k.png" ] && cp "$OUT/base/class$k.png" "docs/images/dit_base_class$k.png"; done
  for r in lora-fp qalora-w4 intlora-mul-w4 qlora-w4; do
    [ -s "$OUT/$r/classes89.png" ] && cp "$OUT/$r/classes89.png" "docs/images/dit_${r}_classes89.png"
  done
}

# The deployed model of a row (the base for base and base-89) and the classes it is scored on.
row_model() { case "$1" in base|base-89) echo "$OUT/base.gguf" ;; *) echo "$OUT/$1/merged.gguf" ;; esac; }
row_classes() { [ "$1" = base ] && echo 0-7 || echo 8-9; }

resample() {
  local seed=$1 r
  shift
  for r in "$@"; do
    [ -s "$OUT/$r/fid.seed$seed.json" ] && continue
    $Q fid --model "$(row_model "$r")" --classes "$(row_classes "$r")" "${FID[@]}" "${T[@]}" --seed "$seed" --report "$OUT/$r/fid.seed$seed.tmp.json" >&2
    mv "$OUT/$r/fid.seed$seed.tmp.json" "$OUT/$r/fid.seed$seed.json"
  done
}

case "$MODE" in
  rows)
    make_base
    make_classifier
    for r in ${*:-$ALL_ROWS}; do row "$r"; done ;;
  resample) resample "$@" ;;
  table) table ;;
  collect) collect ;;
  *) echo "usage: bench/dit_fmnist.sh rows [row ...] | table | collect" >&2; exit 2 ;;
esac
