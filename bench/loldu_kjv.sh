#!/usr/bin/env bash
# Acceptance 5 of the LoLDU issue: stories260K fine-tuned on the KJV (every 20th verse held out),
# 3 seeds, the DEPLOYED model's held-out perplexity (whole held-out set) and trainable parameters:
#   float base   lora r8 (float merge) | loldu r8 | loldu full rank (float merge)
#   W4 base      qlora r8 + 4-bit PTQ | qloldu r8 / full + 4-bit PTQ | qaloldu r8 / full (exact integer merge)
#   base         the unadapted model, float and 4-bit PTQ (per row, asymmetric: the bases above)
# No activation quantization (the W4 rows are weight-only).
#
#   bench/loldu_kjv.sh sweep [steps]          lr sweep (SWEEP_LRS) of every LoLDU row, seed 1 → OUT/sweep.json
#                                             and bench/results/loldu_kjv_sweep.json
#   bench/loldu_kjv.sh runs [steps] [seeds]   train, merge, evaluate every row (cached per run; ROWS selects)
#   bench/loldu_kjv.sh collect [steps]        bench/results/loldu_kjv.{json,md}
# Two single-threaded halves in parallel use two cores better than one two-threaded run:
#   THREADS=1 ROWS="lora loldu-r8 loldu-full qaloldu-full" bench/loldu_kjv.sh runs 600 &
#   THREADS=1 ROWS="qlora qloldu-r8 qloldu-full qaloldu-r8" bench/loldu_kjv.sh runs 600; wait
#   bench/loldu_kjv.sh collect 600
# Env: QTUNE (default build/qtune), OUT (default out/loldu_kjv), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-runs}
STEPS=${2:-600}
SEEDS=${3:-"1 2 3"}
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/loldu_kjv}
THREADS=${THREADS:-2}
S=../shared
MODEL=$S/models/stories260K/stories260K.bin TOK=$S/models/stories260K/tok512.bin DATA=$S/data/kjv.txt
mkdir -p "$OUT" bench/results
export OMP_WAIT_POLICY=PASSIVE
common=(--tokenizer "$TOK" --data "$DATA" --val-every 20 --seq 128 --threads "$THREADS")

# row → method, rank, merge flags
declare -A METHOD=([lora]=lora [loldu-r8]=loldu [loldu-full]=loldu [qlora]=qlora [qloldu-r8]=qloldu
                   [qloldu-full]=qloldu [qaloldu-r8]=qaloldu [qaloldu-full]=qaloldu)
declare -A RANK=([lora]=8 [loldu-r8]=8 [loldu-full]=full [qlora]=8 [qloldu-r8]=8 [qloldu-full]=full
                 [qaloldu-r8]=8 [qaloldu-full]=full)
declare -A MERGE=([qlora]="--bits 4" [qloldu-r8]="--bits 4" [qloldu-full]="--bits 4")
# Learning rates: the best of the 400-step `sweep` per row (bench/results/loldu_kjv_sweep.json; r8 is
# flat within 0.4% from 3e-3 to 3e-2); qloldu takes loldu's. LoRA/QLoRA: the integer table's sweep
# (README "Learning rates").
declare -A LRS=([lora]=1e-2 [qlora]=1e-2 [loldu-r8]=${LR_LOLDU_R8:-3e-3} [loldu-full]=${LR_LOLDU_FULL:-3e-2}
                [qloldu-r8]=${LR_LOLDU_R8:-3e-3} [qloldu-full]=${LR_LOLDU_FULL:-3e-2}
                [qaloldu-r8]=${LR_QALOLDU_R8:-1e-2} [qaloldu-full]=${LR_QALOLDU_FULL:-3e-2})
ROWS=${ROWS:-"lora loldu-r8 loldu-full qlora qloldu-r8 qloldu-full qaloldu-r8 qaloldu-full"}

train() {  # name row lr seed → OUT/name.gguf (adapter) + OUT/name.json (report)
  local name=$1 row=$2 lr=$3 seed=$4
  [ -s "$OUT/$name.json" ] && return 0  # cached
  local extra=(--rank "${RANK[$row]}")
  case "${METHOD[$row]}" in lora|qlora) extra+=(--alpha 16) ;; esac
  case "${METHOD[$row]}" in q*) extra+=(--bits 4) ;; esac
  "$Q" finetune --model "$MODEL" "${common[@]}" --method "${METHOD[$row]}" "${extra[@]}" --lr "$lr" \
    --steps "$STEPS" --batch 8 --warmup $((STEPS / 10)) --schedule cosine --seed "$seed" --eval-batches 0 \
    --quiet --out "$OUT/$name.gguf" --report "$OUT/$name.json" >/dev/null
}

deploy() {  # name row → OUT/name.deployed.json (eval of the merged model)
  local name=$1 row=$2
  [ -s "$OUT/$name.deployed.json" ] && return 0
  # shellcheck disable=SC2086
  "$Q" merge --model "$MODEL" --tokenizer "$TOK" --adapter "$OUT/$name.gguf" --out "$OUT/$name.merged.gguf" \
    --report "$OUT/$name.merge.json" ${MERGE[$row]:-} >/dev/null
  "$Q" eval --model "$OUT/$name.merged.gguf" "${common[@]}" --report "$OUT/$name.deployed.json" >/dev/null
  rm -f "$OUT/$name.merged.gguf"
}

if [ "$MODE" = sweep ]; then
  for row in ${ROWS}; do
    [ "${METHOD[$row]}" = lora ] || [ "${METHOD[$row]}" = qlora ] && continue
    for lr in ${SWEEP_LRS:-3e-3 1e-2 3e-2 1e-1}; do
      echo "sweep: $row lr $lr" >&2
      train "sweep.$row.$lr" "$row" "$lr" 1 2> "$OUT/sweep.$row.$lr.err" ||
        jq -n --arg e "$(tail -1 "$OUT/sweep.$row.$lr.err")" --arg lr "$lr" '{lr: ($lr|tonumber), val_perplexity: null, error: $e}' \
          > "$OUT/sweep.$row.$lr.json"
    done
  done
  for f in "$OUT"/sweep.*.json; do
    [ "$(basename "$f")" = sweep.json ] && continue
    row=$(basename "$f" | cut -d. -f2)
    jq -c --arg row "$row" '{row: $row, lr: .lr, val_perplexity: .val_perplexity, error: .error}' "$f"
  done | jq -s --arg steps "$STEPS" '{what: "held-out perplexity after \($steps) steps, seed 1, whole held-out set (training forward)",
                                      rows: sort_by(.row, .lr)}' | tee "$OUT/sweep.json" > bench/results/loldu_kjv_sweep.json
  exit 0
fi

if [ "$MODE" = runs ]; then
  [ -s "$OUT/base.json" ] || "$Q" eval --model "$MODEL" "${common[@]}" --report "$OUT/base.json" >/dev/null
  if [ ! -s "$OUT/base.w4.json" ]; then
    "$Q" quantize --model "$MODEL" --tokenizer "$TOK" --quantizer qtune --bits 4 --out "$OUT/base.w4.gguf" >/dev/null
    "$Q" eval --model "$OUT/base.w4.gguf" "${common[@]}" --report "$OUT/base.w4.json" >/dev/null
  fi
  for seed in $SEEDS; do
    for row in $ROWS; do
      echo "seed $seed: $row" >&2
      train "$row.s$seed" "$row" "${LRS[$row]}" "$seed"
      deploy "$row.s$seed" "$row"
    done
  done
  exit 0
fi

# --- collect: per row the deployed perplexities over seeds, mean and sample std ------------------
for f in "$OUT"/*.s[0-9].deployed.json; do
  n=$(basename "$f" .deployed.json)
  jq -c --arg n "$n" --arg row "${n%.s*}" --slurpfile r "$OUT/$n.json" --slurpfile mg "$OUT/$n.merge.json" '{
    run: $n, row: $row, method: $r[0].method.method, rank: $r[0].method.rank, seed: $r[0].seed, lr: $r[0].lr,
    merge: $mg[0].merge, deployed_perplexity: .perplexity, deployed_windows: .windows,
    train_val_perplexity: $r[0].val_perplexity, trainable_params: $r[0].trainable_params,
    adapter_state_bytes: $r[0].adapter_state_bytes, tokens_per_second: $r[0].tokens_per_second}' "$f"
done | jq -s --slurpfile base "$OUT/base.json" --slurpfile b4 "$OUT/base.w4.json" --arg steps "$STEPS" '
  def stats: (map(.deployed_perplexity)) as $p | ($p | add / length) as $m |
    {mean: $m, std: (if ($p|length) > 1 then (($p | map((. - $m) * (. - $m)) | add) / (($p|length) - 1) | sqrt) else 0 end),
     n: ($p|length), per_seed: $p, train_val_mean: (map(.train_val_perplexity) | add / length)};
  {steps: ($steps|tonumber), batch: 8, seq: 128, split: "kjv.txt, every 20th verse held out (whole held-out set)",
   base: {float: $base[0].perplexity, w4_ptq: $b4[0].perplexity},
   rows: (group_by(.row) | map({row: .[0].row, method: .[0].method, rank: .[0].rank, lr: .[0].lr, merge: .[0].merge,
          trainable_params: .[0].trainable_params, adapter_state_bytes: .[0].adapter_state_bytes,
          tokens_per_second: (map(.tokens_per_second) | add / length)} + (. | stats))),
   runs: .}' > bench/results/loldu_kjv.json

jq -r '
  def f: (. * 100 | round) as $x | "\($x / 100 | floor).\($x % 100 | tostring | if length < 2 then "0" + . else . end)";
  def row(r): [.rows[] | select(.row == r)][0];
  def line(r; name): row(r) as $x | if $x == null then empty else
    "| \(name) | \($x.merge) | \($x.lr * 1e4 | round / 1e4) | \($x.trainable_params) | \($x.adapter_state_bytes / 1024 | floor) KiB | \($x.train_val_mean|f) | \($x.mean|f) ± \($x.std|f) |" end;
  "| adapter | deployed as | lr | trainable params | adapter state | training forward | deployed perplexity |",
  "|---|---|---|---|---|---|---|",
  "| none (base) | float | – | 0 | – | – | \(.base.float|f) |",
  line("lora"; "LoRA r8"), line("loldu-r8"; "LoLDU r8"), line("loldu-full"; "LoLDU full rank"),
  "| none (base, 4-bit PTQ) | 4-bit | – | 0 | – | – | \(.base.w4_ptq|f) |",
  line("qlora"; "QLoRA r8, W4 base"), line("qloldu-r8"; "LoLDU r8, W4 base"), line("qloldu-full"; "LoLDU full, W4 base"),
  line("qaloldu-r8"; "LoLDU r8, W4 base, exact route"), line("qaloldu-full"; "LoLDU full, W4 base, exact route")' \
  bench/results/loldu_kjv.json | tee bench/results/loldu_kjv.md
