#!/usr/bin/env bash
# Acceptance 1 of the integer-methods issue: stories260K fine-tuned on the KJV (every 20th verse
# held out), every method at W8A8 and W4A8, the DEPLOYED model's held-out perplexity:
#   lora (float)       float LoRA, merged in float, float inference          (the quality ceiling)
#   qlora+ptq          QLoRA on a b-bit base, merged, then post-training quantized to b bits
#   qalora             QA-LoRA, merged exactly into b-bit integers
#   intlora-mul/shift  IntLoRA, merged exactly into integers
#   intlora-mul-zf     IntLoRA-MUL with --zero-free (the zero-weight defect's fix), to measure its cost
#   base               the unadapted model: float, and PTQ'd to b bits (per row)
# Every quantized method trains with --act-bits 8 (static scales calibrated on the first 8
# micro-batches) and is deployed with int8 activations through the integer GEMM; the base's
# A8 rows use per-token scales (nothing to calibrate them on).
#
#   bench/integer_kjv.sh sweep [steps]          lr sweep (SWEEP_LRS), seed 1, W4A8 → OUT/sweep.json
#   bench/integer_kjv.sh runs [steps] [seeds]   train, merge and evaluate every row (BITS, default "8 4";
#                                               WITH_LORA=0 skips the float LoRA runs) — cached per run
#   bench/integer_kjv.sh collect [steps]        bench/results/integer_kjv.{json,md} from OUT
#   bench/integer_kjv.sh init                   the model each integer method STARTS from (B = 0; 8 steps at
#                                               lr 1e-30 so the A8 calibration completes) → bench/results/integer_kjv_init.json
#   bench/integer_kjv.sh table [steps] [seeds]  runs + collect
# Two single-threaded halves in parallel use two cores better than one two-threaded run:
#   THREADS=1 BITS=8 bench/integer_kjv.sh runs 600 & THREADS=1 BITS=4 WITH_LORA=0 bench/integer_kjv.sh runs 600
# Env: QTUNE (default build/qtune), OUT (default out/integer_kjv), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-table}
STEPS=${2:-1000}
SEEDS=${3:-"1 2 3"}
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/integer_kjv}
THREADS=${THREADS:-2}
S=../shared
MODEL=$S/models/stories260K/stories260K.bin TOK=$S/models/stories260K/tok512.bin DATA=$S/data/kjv.txt
mkdir -p "$OUT" bench/results
export OMP_WAIT_POLICY=PASSIVE
common=(--tokenizer "$TOK" --data "$DATA" --val-every 20 --seq 128 --threads "$THREADS")

# Chosen by `sweep` (400 steps, seed 1, W4A8: the lowest held-out perplexity of 1e-3 … 1e-1 for every
# method; bench/results/integer_kjv_sweep.json).
declare -A LRS=([lora]=1e-2 [qlora]=1e-2 [qalora]=1e-2 [intlora-mul]=1e-2 [intlora-shift]=1e-2)

train() {  # name method lr seed extra... → OUT/name.gguf (adapter) + OUT/name.json (report)
  local name=$1 method=$2 lr=$3 seed=$4; shift 4
  [ -s "$OUT/$name.json" ] && return 0  # cached
  local adapter=()  # qtune refuses a flag that does not apply to the method
  case "$method" in lora|qlora) adapter=(--rank 8 --alpha 16) ;; full) ;; *) adapter=(--rank 8) ;; esac
  "$Q" finetune --model "$MODEL" "${common[@]}" --method "$method" "${adapter[@]}" --lr "$lr" \
    --steps "$STEPS" --batch 8 --warmup $((STEPS / 10)) --schedule cosine --seed "$seed" --eval-batches 0 \
    --quiet --out "$OUT/$name.gguf" --report "$OUT/$name.json" "$@" >/dev/null
}

deploy() {  # name [merge flags...] → OUT/name.deployed.json (eval of the merged model)
  local name=$1; shift
  [ -s "$OUT/$name.deployed.json" ] && return 0
  "$Q" merge --model "$MODEL" --tokenizer "$TOK" --adapter "$OUT/$name.gguf" --out "$OUT/$name.merged.gguf" \
    --report "$OUT/$name.merge.json" "$@" >/dev/null
  "$Q" eval --model "$OUT/$name.merged.gguf" "${common[@]}" --report "$OUT/$name.deployed.json" >/dev/null
}

if [ "$MODE" = init ]; then
  for b in 8 4; do
    for m in qalora intlora-mul intlora-shift intlora-mul-zf; do
      zf=(); method=$m
      [ "$m" = intlora-mul-zf ] && zf=(--zero-free) && method=intlora-mul
      echo "init: $m W${b}A8" >&2
      STEPS=8 train "init.$m.w$b" "$method" 1e-30 1 --bits "$b" --act-bits 8 "${zf[@]}"
      jq -c --arg m "$m" '{method: $m, bits: .method.bits, val_perplexity, zero_weight_share: .intlora_zero_weight_share}' \
        "$OUT/init.$m.w$b.json"
    done
  done | jq -s '{what: "held-out perplexity of the model each method starts from (B = 0), W·A8, seed 1", rows: .}' |
    tee bench/results/integer_kjv_init.json
  exit 0
fi

if [ "$MODE" = sweep ]; then
  for m in ${SWEEP_METHODS:-lora qlora qalora intlora-mul intlora-shift}; do
    for lr in ${SWEEP_LRS:-1e-3 3e-3 1e-2 3e-2}; do
      extra=(); [ "$m" != lora ] && [ "$m" != full ] && extra=(--bits 4 --act-bits 8)
      echo "sweep: $m lr $lr" >&2
      # a learning rate that diverges (NaN, a QA-LoRA scale below 0) is a result, not a failure
      train "sweep.$m.$lr" "$m" "$lr" 1 "${extra[@]}" 2> "$OUT/sweep.$m.$lr.err" ||
        jq -n --arg m "$m" --arg lr "$lr" --arg e "$(tail -1 "$OUT/sweep.$m.$lr.err")" \
          '{method: {method: $m}, lr: ($lr|tonumber), val_perplexity: null, error: $e}' > "$OUT/sweep.$m.$lr.json"
    done
  done
  for f in "$OUT"/sweep.*.json; do
    jq -c '{method: .method.method, lr: .lr, val_perplexity: .val_perplexity, error: .error}' "$f"
  done | jq -s 'sort_by(.method, .lr)' | tee "$OUT/sweep.json"
  exit 0
fi

# --- runs --------------------------------------------------------------------------------------
if [ "$MODE" = runs ] || [ "$MODE" = table ]; then
[ -s "$OUT/base.json" ] || "$Q" eval --model "$MODEL" "${common[@]}" --report "$OUT/base.json" >/dev/null
for b in ${BITS:-8 4}; do
  "$Q" quantize --model "$MODEL" --tokenizer "$TOK" --quantizer qtune --bits "$b" --out "$OUT/base.w$b.gguf" >/dev/null
  "$Q" eval --model "$OUT/base.w$b.gguf" "${common[@]}" --act-bits 8 --report "$OUT/base.w${b}a8.json" >/dev/null
done
for seed in $SEEDS; do
  if [ "${WITH_LORA:-1}" = 1 ]; then
    echo "seed $seed: lora" >&2
    train "lora.s$seed" lora "${LRS[lora]}" "$seed"
    deploy "lora.s$seed"
  fi
  for b in ${BITS:-8 4}; do
    for m in qlora qalora intlora-mul intlora-shift intlora-mul-zf; do
      echo "seed $seed: $m W${b}A8" >&2
      zf=(); method=$m
      [ "$m" = intlora-mul-zf ] && zf=(--zero-free) && method=intlora-mul
      train "$m.w$b.s$seed" "$method" "${LRS[$method]}" "$seed" --bits "$b" --act-bits 8 "${zf[@]}"
      if [ "$m" = qlora ]; then deploy "$m.w$b.s$seed" --bits "$b"; else deploy "$m.w$b.s$seed"; fi
    done
  done
done
fi
[ "$MODE" = runs ] && exit 0

# --- collect -----------------------------------------------------------------------------------

# Collect: per (method, bits) the deployed perplexities over seeds, mean and sample std.
{
  for f in "$OUT"/*.s*.deployed.json; do
    n=$(basename "$f" .deployed.json)
    jq -c --arg n "$n" --slurpfile r "$OUT/$n.json" --slurpfile mg "$OUT/$n.merge.json" '{
      run: $n, method: ($r[0].method.method + (if $r[0].method.zero_free then "-zf" else "" end)), bits: (if $r[0].method.method == "lora" then 32 else $r[0].method.bits end),
      seed: $r[0].seed, lr: $r[0].lr, deployed_perplexity: .perplexity, train_val_perplexity: $r[0].val_perplexity,
      inference: .inference, tokens_per_second: $r[0].tokens_per_second, peak_rss_bytes: $r[0].peak_rss_bytes,
      zero_weight_share: $r[0].intlora_zero_weight_share, lost_update_share: $mg[0].intlora_lost_update_share,
      types: ([$mg[0].integer_weights[].type] | group_by(.) | map({(.[0]): length}) | add),
      max_fp16_scale_err: ([$mg[0].integer_weights[] | .fp16_scale_err, .fp16_min_err] | max),
      llamacpp_loadable: $mg[0].llamacpp_loadable}' "$f"
  done
} | jq -s --slurpfile base "$OUT/base.json" --slurpfile b8 "$OUT/base.w8a8.json" --slurpfile b4 "$OUT/base.w4a8.json" \
  --arg steps "$STEPS" '
  def stats: (map(.deployed_perplexity)) as $p | ($p | add / length) as $m |
    {mean: $m, std: (if ($p|length) > 1 then (($p | map((. - $m) * (. - $m)) | add) / (($p|length) - 1) | sqrt) else 0 end),
     n: ($p|length), per_seed: $p,
     train_val_mean: (map(.train_val_perplexity) | add / length)};
  {steps: ($steps|tonumber), batch: 8, seq: 128, rank: 8, split: "kjv.txt, every 20th verse held out",
   base: {float: $base[0].perplexity, w8a8: $b8[0].perplexity, w4a8: $b4[0].perplexity},
   rows: (group_by(.method + "/" + (.bits|tostring)) | map({method: .[0].method, bits: .[0].bits, lr: .[0].lr} + (. | stats)
          + {tokens_per_second: (map(.tokens_per_second) | add / length), types: .[0].types,
             max_fp16_scale_err: (map(.max_fp16_scale_err // 0) | max), llamacpp_loadable: .[0].llamacpp_loadable,
             zero_weight_share: .[0].zero_weight_share,
             lost_update_share: (if .[0].lost_update_share == null then null
                                 else (map(.lost_update_share) | add / length) end)})),
   runs: .}' > bench/results/integer_kjv.json

jq -r '
  def f: (. * 100 | round) as $x | "\($x / 100 | floor).\($x % 100 | tostring | if length < 2 then "0" + . else . end)";
  def cell(m; b): [.rows[] | select(.method == m and .bits == b)][0] | if . == null then "–" else "\(.mean|f) ± \(.std|f)" end;
  def before(m; b): [.rows[] | select(.method == m and .bits == b)][0] | if . == null then "–" else "(\(.train_val_mean|f))" end;
  "| method | W8A8 | W4A8 |", "|---|---|---|",
  "| base (unadapted; float \(.base.float|f)) | \(.base.w8a8|f) | \(.base.w4a8|f) |",
  "| LoRA (float weights and activations) | \(cell("lora"; 32)) | \(cell("lora"; 32)) |",
  "| QLoRA + PTQ | \(cell("qlora"; 8)) | \(cell("qlora"; 4)) |",
  "| (QLoRA before the merge + PTQ, not an integer model) | \(before("qlora"; 8)) | \(before("qlora"; 4)) |",
  "| QA-LoRA | \(cell("qalora"; 8)) | \(cell("qalora"; 4)) |",
  "| IntLoRA-MUL | \(cell("intlora-mul"; 8)) | \(cell("intlora-mul"; 4)) |",
  "| IntLoRA-SHIFT | \(cell("intlora-shift"; 8)) | \(cell("intlora-shift"; 4)) |",
  "| IntLoRA-MUL, zero-free grid | \(cell("intlora-mul-zf"; 8)) | \(cell("intlora-mul-zf"; 4)) |"' \
  bench/results/integer_kjv.json | tee bench/results/integer_kjv.md
