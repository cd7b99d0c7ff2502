#!/usr/bin/env bash
# EfficientDM's tables (issue 13): the DiT pretrained on Fashion-MNIST classes 0-7 (bench/dit_fmnist.sh
# makes it: OUT/base.gguf, and the classifier OUT/clf.gguf) quantized and fine-tuned by `qtune distill`;
# every row is the DEPLOYED model (integer weights, per-step integer activations), scored on 0-7.
#   float        the float model itself
#   ptq-w8a8     calibrated per-step activation tables, weights min/max per row, no training (--iters 0)
#   ptq-w4a4     the same at 4 bits (first/last layers 8-bit, as every row)
#   edm-w8a8     EfficientDM: QALoRA rank 32 + TALSQ, data-free distillation, scale-aware LoRA lr
#   edm-w4a4     the same at 4 bits
#   no-talsq     edm-w4a4 with one activation scale for all steps (--one-act-scale)
#   no-distill   edm-w4a4 trained on real training images (DDPM loss; --objective real)
#   no-salr      edm-w4a4 with one LoRA learning rate for every layer (--no-scale-aware-lr)
#   edm-w4a4-long  edm-w4a4 trained 4× longer (4·ITERS trajectories): how far more steps close the gap
#   qat          QAT baseline at W4A4: every block weight trained behind its fake quantizer on real
#                images (--qat --objective real), QAT_ITERS iterations, the model saved every QAT_SAVE
#                and scored: the wall time at which it first reaches edm-w4a4's FID
# Training: ITERS trajectories (default 40) of 8 images × 25 DDIM steps (η 1, CFG 2) = 1000 optimizer
# steps, lr LR (1e-3), calibration on 64 images' trajectories, seed 1. Metrics (qtune fid): N images per
# class (default 100), the same 25 DDIM steps, η 1, CFG 2, sampling seed 0.
#
#   bench/efficientdm.sh rows [row ...]   train and score rows (cached per row); default: all
#   bench/efficientdm.sh resample S [row ...]  the FID again with sampling seed S (fid.seedS.json)
#   bench/efficientdm.sh heldout [row ...]  the held-out loss (dit-eval) of rows already trained
#   bench/efficientdm.sh table            OUT/edm/table.{json,md} of the rows done, printed
#   bench/efficientdm.sh collect          that table into bench/results/efficientdm.{json,md}
# Two single-threaded halves in parallel use two cores better than one two-threaded run:
#   THREADS=1 bench/efficientdm.sh rows float ptq-w4a4 edm-w4a4 no-distill no-salr &
#   THREADS=1 bench/efficientdm.sh rows ptq-w8a8 edm-w8a8 no-talsq qat; wait
# Env: QTUNE (default build/qtune), OUT (default out/dit), THREADS (2), ITERS (40), LR (1e-3), N (100),
# QAT_ITERS (160), QAT_SAVE (40), QAT_LR (1e-4).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-rows}
shift || true
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/dit}
D=$OUT/edm
THREADS=${THREADS:-2}
ITERS=${ITERS:-40}
LR=${LR:-1e-3}
N=${N:-100}
QAT_ITERS=${QAT_ITERS:-160}
QAT_SAVE=${QAT_SAVE:-40}
QAT_LR=${QAT_LR:-1e-4}
mkdir -p "$D"
export OMP_WAIT_POLICY=PASSIVE
T=(--threads "$THREADS")
FID=(--classifier "$OUT/clf.gguf" --classes 0-7 --n "$N" --steps 25 --eta 1 --cfg 2 -q)
RUN=(--teacher "$OUT/base.gguf" --classes 0-7 --steps 25 --batch 8 --cfg 2 --eta 1 --calib 64 --seed 1)
ALL_ROWS="float ptq-w8a8 ptq-w4a4 edm-w8a8 edm-w4a4 edm-w4a4-long no-talsq no-distill no-salr qat"

# The deployed model of a row.
row_model() { [ "$1" = float ] && echo "$OUT/base.gguf" || echo "$D/$1/model.gguf"; }

flags() {
  case "$1" in
    float) echo "" ;;
    ptq-w8a8) echo "--bits 8 --act-bits 8 --iters 0" ;;
    ptq-w4a4) echo "--iters 0" ;;
    edm-w8a8) echo "--bits 8 --act-bits 8 --iters $ITERS --lr $LR" ;;
    edm-w4a4) echo "--iters $ITERS --lr $LR" ;;
    edm-w4a4-long) echo "--iters $((4 * ITERS)) --lr $LR" ;;
    no-talsq) echo "--iters $ITERS --lr $LR --one-act-scale" ;;
    no-distill) echo "--iters $ITERS --lr $LR --objective real" ;;
    no-salr) echo "--iters $ITERS --lr $LR --no-scale-aware-lr" ;;
    qat) echo "--iters $QAT_ITERS --lr $QAT_LR --qat --objective real --save-every $QAT_SAVE" ;;
  esac
}

# The held-out ε-prediction loss of a row's deployed model (dit-eval: 256 t10k images of 0-7, fixed
# (t, ε) per image): a finer measure than FID of what quantization does to the denoiser.
heldout() {
  [ -s "$D/$1/eval.json" ] && return
  $Q dit-eval --model "$(row_model "$1")" --classes 0-7 "${T[@]}" --report "$D/$1/eval.json" >/dev/null
}

row() {
  local r=$1 d="$D/$1"
  [ -s "$d/fid.json" ] && { echo "== $r: cached" >&2; return; }
  mkdir -p "$d"
  local model="$d/model.gguf"
  if [ "$r" = float ]; then
    model="$OUT/base.gguf"
  else
    echo "== $r: qtune distill $(flags "$r")" >&2
    # shellcheck disable=SC2046
    $Q distill "${RUN[@]}" $(flags "$r") "${T[@]}" --out "$model" --report "$d/train.json" >&2 2>"$d/train.log"
  fi
  if [ "$r" = qat ]; then  # the saved intermediate models: FID against training wall time
    local k
    for ((k = QAT_SAVE; k < QAT_ITERS; k += QAT_SAVE)); do
      [ -s "$d/fid.iter$k.json" ] && continue
      $Q fid --model "$model.iter$k.gguf" "${FID[@]}" --seed 0 "${T[@]}" --report "$d/fid.iter$k.json" >&2
    done
  fi
  heldout "$r"
  $Q fid --model "$model" "${FID[@]}" --seed 0 "${T[@]}" --report "$d/fid.tmp.json" >&2
  $Q sample --model "$model" --class 0-7 --n 4 --steps 25 --eta 1 --cfg 2 --seed 0 "${T[@]}" -q \
    --out "$d/grid.png"
  mv "$d/fid.tmp.json" "$d/fid.json"
}

table() {
  local rows=() r
  for r in $ALL_ROWS; do [ -s "$D/$r/fid.json" ] && rows+=("$r"); done
  {
    echo "["
    local first=1
    for r in "${rows[@]}"; do
      [ $first = 1 ] || echo ","
      first=0
      jq -n --arg row "$r" --arg flags "$(flags "$r")" --slurpfile f "$D/$r/fid.json" \
        --argjson t "$( [ -s "$D/$r/train.json" ] && cat "$D/$r/train.json" || echo null)" \
        --argjson e "$( [ -s "$D/$r/eval.json" ] && cat "$D/$r/eval.json" || echo null)" \
        --argjson more "$(cat "$D/$r"/fid.seed*.json 2>/dev/null | jq -s '[.[] | {seed, fid, conditional_accuracy}]')" \
        --argjson curve "$(for j in "$D/$r"/fid.iter*.json; do [ -s "$j" ] && jq -c '{model, fid, conditional_accuracy}' "$j"; done | jq -s '.')" \
        '{row: $row, distill_flags: $flags, fid: $f[0].fid, fid_train_reference: $f[0].fid_train_reference,
          conditional_accuracy: $f[0].conditional_accuracy, per_class: [$f[0].per_class[] | {class, fid, conditional_accuracy}],
          train_seconds: (if $t then $t.train_seconds else null end), calib_seconds: (if $t then $t.calib_seconds else null end),
          trainable: (if $t then $t.trainable else null end), optimizer_steps: (if $t then $t.optimizer_steps else null end),
          iter_seconds: (if $t then $t.iter_seconds else null end), iter_loss: (if $t then $t.iter_loss else null end),
          heldout_loss: (if $e then $e.val_loss else null end), weights: (if $e then $e.weights else null end),
          saved_curve: $curve, other_sampling_seeds: $more,
          fid_settings: {n: $f[0].n, steps: $f[0].steps, cfg: $f[0].cfg, eta: $f[0].eta, seed: $f[0].seed}}'
    done
    echo "]"
  } > "$D/table.json"
  {
    echo "| row | distill flags | FID ↓ (sampling seed 0 / 1 / 2) | cond. acc. ↑ (same) | held-out loss | sampling steps | trainable | fine-tune wall time |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    jq -r '.[] | "| \(.row) | \(.distill_flags) | \([.fid] + [.other_sampling_seeds[].fid] | map(. * 10 | round / 10 | tostring) | join(" / ")) | \([.conditional_accuracy] + [.other_sampling_seeds[].conditional_accuracy] | map(. * 1000 | round / 10 | tostring + "%") | join(" / ")) | \(if .heldout_loss then (.heldout_loss * 100000 | round / 100000) else "—" end) | \(.fid_settings.steps) | \(.trainable // "—") | \(if .train_seconds then "\(.train_seconds | round) s + \(.calib_seconds | round) s calibration" else "—" end) |"' \
      "$D/table.json"
  } > "$D/table.md"
  cat "$D/table.md"
}

collect() {
  table
  mkdir -p bench/results docs/images
  cp "$D/table.json" bench/results/efficientdm.json
  cp "$D/table.md" bench/results/efficientdm.md
  for r in float ptq-w4a4 edm-w4a4; do
    [ -s "$D/$r/grid.png" ] && cp "$D/$r/grid.png" "docs/images/efficientdm_$r.png"
  done
}

resample() {
  local seed=$1 r
  shift
  for r in "$@"; do
    [ -s "$D/$r/fid.seed$seed.json" ] && continue
    $Q fid --model "$(row_model "$r")" "${FID[@]}" --seed "$seed" "${T[@]}" \
      --report "$D/$r/fid.seed$seed.tmp.json" >&2
    mv "$D/$r/fid.seed$seed.tmp.json" "$D/$r/fid.seed$seed.json"
  done
}

case "$MODE" in
  rows)
    for f in "$OUT/base.gguf" "$OUT/clf.gguf"; do
      [ -s "$f" ] || { echo "$f is missing: run bench/dit_fmnist.sh rows base first (it makes both)" >&2; exit 2; }
    done
    for r in ${*:-$ALL_ROWS}; do row "$r"; done ;;
  resample) resample "$@" ;;
  heldout) for r in ${*:-$ALL_ROWS}; do [ -s "$(row_model "$r")" ] && heldout "$r"; done ;;
  table) table ;;
  collect) collect ;;
  *) echo "usage: bench/efficientdm.sh rows [row ...] | resample S [row ...] | table | collect" >&2; exit 2 ;;
esac
