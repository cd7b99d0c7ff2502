#!/usr/bin/env bash
# GSQ-Tuning acceptance 2 (docs/METHODS.md §9): stories260K fine-tuned with LoRA on the KJV (every
# 20th verse held out), 3 seeds, float LoRA against GSE-INT8 / INT6 / INT5 training arithmetic
# (--gemm gse:b=B; GSE_FLAGS adds more, default --gemm-attention: every GEMM of forward and
# backward in GSE), ranks 4, 8, 16. Each run is merged (float: merge adds B·A to the float base
# whatever arithmetic trained it) and the merged model evaluated with `qtune eval` on the whole
# held-out set: the deployed perplexity. The report's val_perplexity (the training arithmetic's
# own) is kept next to it.
#
#   bench/gsq_kjv.sh runs [steps] [seeds]   train, merge, evaluate every (row, rank, seed), cached
#   bench/gsq_kjv.sh collect [steps]        bench/results/gsq_kjv.{json,md}
# Env: QTUNE (build/qtune), OUT (out/gsq_kjv), THREADS (2), ROWS ("f32 gse8 gse6 gse5"),
#      RANKS ("4 8 16"), GSE_FLAGS ("--gemm-attention"), LR (1e-2: lora's default, README
#      "Learning rates").
# A smoke run: OUT=/tmp/gsq_smoke bench/gsq_kjv.sh runs 20 1 && OUT=/tmp/gsq_smoke bench/gsq_kjv.sh collect 20
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-runs}
STEPS=${2:-600}
SEEDS=${3:-"1 2 3"}
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/gsq_kjv}
THREADS=${THREADS:-2}
ROWS=${ROWS:-"f32 gse8 gse6 gse5"}
RANKS=${RANKS:-"4 8 16"}
GSE_FLAGS=${GSE_FLAGS:-"--gemm-attention"}
LR=${LR:-1e-2}
S=${QTUNE_SHARED_DIR:-../shared}
MODEL=$S/models/stories260K/stories260K.bin TOK=$S/models/stories260K/tok512.bin DATA=$S/data/kjv.txt
mkdir -p "$OUT" bench/results
export OMP_WAIT_POLICY=PASSIVE
common=(--tokenizer "$TOK" --data "$DATA" --val-every 20 --seq 128 --threads "$THREADS")

gemm_flags() {  # row → flags
  case "$1" in
    f32) echo "--gemm f32" ;;
    gse*) echo "--gemm gse:b=${1#gse} $GSE_FLAGS" ;;
    *) echo "unknown row $1" >&2; exit 2 ;;
  esac
}

train() {  # name row rank seed → OUT/name.gguf + OUT/name.json
  local name=$1 row=$2 rank=$3 seed=$4
  [ -s "$OUT/$name.json" ] && return 0  # cached
  # shellcheck disable=SC2046
  "$Q" finetune --model "$MODEL" "${common[@]}" --method lora --rank "$rank" --alpha $((2 * rank)) --lr "$LR" \
    --steps "$STEPS" --batch 8 --warmup $((STEPS / 10)) --schedule cosine --seed "$seed" --eval-batches 0 \
    $(gemm_flags "$row") --quiet --out "$OUT/$name.gguf" --report "$OUT/$name.json" > /dev/null 2> "$OUT/$name.err"
}

deploy() {  # name → OUT/name.deployed.json
  local name=$1
  [ -s "$OUT/$name.deployed.json" ] && return 0
  "$Q" merge --model "$MODEL" --tokenizer "$TOK" --adapter "$OUT/$name.gguf" --out "$OUT/$name.merged.gguf" \
    > /dev/null
  "$Q" eval --model "$OUT/$name.merged.gguf" "${common[@]}" --report "$OUT/$name.deployed.json" > /dev/null
  rm -f "$OUT/$name.merged.gguf"
}

if [ "$MODE" = runs ]; then
  for seed in $SEEDS; do
    for rank in $RANKS; do
      for row in $ROWS; do
        name="$row.r$rank.s$seed.$STEPS"
        echo "run: $name" >&2
        train "$name" "$row" "$rank" "$seed"
        deploy "$name"
      done
    done
  done
  exit 0
fi

[ "$MODE" = collect ] || { echo "usage: bench/gsq_kjv.sh runs|collect [steps] [seeds]" >&2; exit 2; }
for f in "$OUT"/*."$STEPS".json; do
  case "$f" in *.deployed.json) continue ;; esac
  name=$(basename "$f" .json)
  [ -s "$OUT/$name.deployed.json" ] || continue
  jq -c --arg name "$name" --slurpfile d "$OUT/$name.deployed.json" \
    '{row: ($name | split(".")[0]), rank: ($name | split(".")[1] | ltrimstr("r") | tonumber),
      seed: ($name | split(".")[2] | ltrimstr("s") | tonumber), gemm: .method.gemm,
      gemm_attention: .method.gemm_attention, deployed_perplexity: $d[0].perplexity,
      training_val_perplexity: .val_perplexity, tokens_per_second}' "$f"
done | jq -s --arg steps "$STEPS" --arg flags "$GSE_FLAGS" '
  {what: "stories260K LoRA on KJV (every 20th verse held out), \($steps) steps x 8 x 128, lr per README, alpha = 2 rank; GSE rows: --gemm gse:b=B \($flags); deployed = qtune eval of the float merge, whole held-out set",
   runs: sort_by(.row, .rank, .seed),
   table: (group_by([.row, .rank]) | map({row: .[0].row, rank: .[0].rank, n: length,
            mean: (map(.deployed_perplexity) | add / length),
            std: (map(.deployed_perplexity) as $v | ($v | add / length) as $m
                  | if ($v | length) > 1 then (($v | map(. - $m | . * .) | add) / (($v | length) - 1) | sqrt) else null end),
            training_val_mean: (map(.training_val_perplexity) | add / length)}))}' > bench/results/gsq_kjv.json
jq -r '"| row | rank | runs | deployed ppl (mean ± std) | training val ppl |", "|---|---|---|---|---|",
       (.table[] | "| \(.row) | \(.rank) | \(.n) | \(.mean * 1000 | round / 1000)\(if .std then " ± \(.std * 1000 | round / 1000)" else "" end) | \(.training_val_mean * 1000 | round / 1000) |")' \
  bench/results/gsq_kjv.json | tee bench/results/gsq_kjv.md
