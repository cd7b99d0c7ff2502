#!/usr/bin/env bash
# GSQ-Tuning acceptance 3 and 4 (docs/METHODS.md §9): LoRA fine-tuning of a stories110M-shaped
# model with random weights (dim 768, hidden 2048, 12 layers, 12 heads, vocab 32000 from the
# Llama-2 tokenizer, seq 256), batch 4 × 256 tokens, rank 8 on all seven projections.
#
#   bench/gsq_110m.sh model     the random model (qtune finetune --init-config, one step of full
#                               fine-tuning at lr 1e-12: qtune's own writer, weights ≈ the init)
#   bench/gsq_110m.sh memory    peak RSS and the report's memory breakdown, --save-act gse vs f32,
#                               with --gemm f32 and with --gemm gse:b=8 (STEPS_MEM steps each)
#   bench/gsq_110m.sh speed     training tokens/s (the report's: steps only, no setup), REPS runs of
#                               each configuration interleaved, median; THREADS threads
#   bench/gsq_110m.sh cpu       CPU seconds per training step (user + sys of a STEPS_SPEED-step run minus
#                               a 1-step run, over the difference in steps): the work per step, which
#                               other jobs on the machine change far less than the wall clock
#   bench/gsq_110m.sh collect   bench/results/gsq_110m.json (raw reports, medians, machine load)
#   bench/gsq_110m.sh all       all of the above
# Env: QTUNE (build/qtune), OUT (out/gsq_110m), THREADS (2), REPS (3), REP_FIRST (1: the first run's
#      number, to add runs in several sittings), STEPS_MEM (3), STEPS_SPEED (4), SPEED_CONFIGS (names below).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-all}
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/gsq_110m}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
STEPS_MEM=${STEPS_MEM:-3}
STEPS_SPEED=${STEPS_SPEED:-4}
S=${QTUNE_SHARED_DIR:-../shared}
TOK=$S/models/llama2-tokenizer/tokenizer.model
MODEL=$OUT/stories110m-random.gguf
DATA=$OUT/kjv-3mb.txt
mkdir -p "$OUT" bench/results
export OMP_WAIT_POLICY=PASSIVE

# configuration name → flags
declare -A FLAGS=(
  [f32]="--gemm f32 --save-act f32"
  [f32-saveact-gse]="--gemm f32 --save-act gse"
  [gse8]="--gemm gse:b=8 --save-act f32"
  [gse8-saveact-gse]="--gemm gse:b=8 --save-act gse"
  [gse8-attn]="--gemm gse:b=8 --gemm-attention"
  [gse8-attn-saveact-gse]="--gemm gse:b=8 --gemm-attention --save-act gse"
  [gse8g128-attn]="--gemm gse:b=8,g=128 --gemm-attention"
)
MEM_CONFIGS="f32 f32-saveact-gse gse8 gse8-saveact-gse"
SPEED_CONFIGS=${SPEED_CONFIGS:-"f32 gse8 gse8-attn gse8g128-attn"}

make_model() {
  [ -s "$MODEL" ] && [ -s "$DATA" ] && return 0
  head -c 3000000 "$S/data/kjv.txt" > "$DATA"
  "$Q" finetune --init-config dim=768,hidden=2048,layers=12,heads=12,kv_heads=12,seq=256 --tokenizer "$TOK" \
    --method full --data "$DATA" --steps 1 --batch 1 --seq 16 --lr 1e-12 --threads "$THREADS" --quiet \
    --out "$MODEL" > /dev/null 2>&1
}

run() {  # config steps report
  # shellcheck disable=SC2086
  "$Q" finetune --model "$MODEL" --tokenizer "$TOK" --data "$DATA" --method lora --rank 8 --alpha 16 \
    --batch 4 --seq 256 --steps "$2" --threads "$THREADS" --seed 1 --quiet ${FLAGS[$1]} \
    --out "$OUT/adapter.gguf" --report "$3" > /dev/null 2> "$3.err"
}

# what else the machine was doing: load and the busiest processes other than this one
machine() {
  jq -n --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" \
    --arg ps "$(ps -eo pcpu,comm --sort=-pcpu | sed -n 2,6p | tr -s ' ' | paste -sd';')" \
    '{loadavg: $load, cpu: $cpu, busiest: $ps}'
}

case "$MODE" in model|all) make_model ;; esac
if [ "$MODE" = memory ] || [ "$MODE" = all ]; then
  make_model
  for c in $MEM_CONFIGS; do
    echo "memory: $c" >&2
    run "$c" "$STEPS_MEM" "$OUT/mem.$c.json"
    machine > "$OUT/mem.$c.machine.json"
  done
fi
if [ "$MODE" = speed ] || [ "$MODE" = all ]; then
  make_model
  for r in $(seq "${REP_FIRST:-1}" $((${REP_FIRST:-1} + REPS - 1))); do
    for c in $SPEED_CONFIGS; do
      echo "speed: $c run $r" >&2
      machine > "$OUT/speed.$c.$r.machine.json"
      run "$c" "$STEPS_SPEED" "$OUT/speed.$c.$r.json"
    done
  done
fi
if [ "$MODE" = cpu ] || [ "$MODE" = all ]; then
  make_model
  for c in $SPEED_CONFIGS; do
    for steps in 1 "$STEPS_SPEED"; do
      echo "cpu: $c $steps steps" >&2
      /usr/bin/time -f '{"user": %U, "sys": %S, "wall": %e}' -o "$OUT/cpu.$c.$steps.time.json" \
        bash -c "$(declare -f run); $(declare -p FLAGS); Q=$Q MODEL=$MODEL TOK=$TOK DATA=$DATA THREADS=$THREADS OUT=$OUT run $c $steps $OUT/cpu.$c.$steps.json"
    done
  done
fi
if [ "$MODE" = collect ] || [ "$MODE" = all ]; then
  mem=$(for c in $MEM_CONFIGS; do
    [ -s "$OUT/mem.$c.json" ] || continue
    jq -c --arg c "$c" --argjson m "$(cat "$OUT/mem.$c.machine.json")" \
      '{config: $c, flags: .method, memory: .memory, tokens_per_second, machine: $m}' "$OUT/mem.$c.json"
  done | jq -s .)
  speed=$(for c in $SPEED_CONFIGS; do
    for f in "$OUT"/speed."$c".[0-9]*.json; do
      [ -s "$f" ] || continue  # no runs of this configuration (yet)
      case "$f" in *.machine.json) continue ;; esac
      jq -c --arg c "$c" --argjson m "$(cat "${f%.json}.machine.json")" \
        '{config: $c, tokens_per_second, wall_seconds, machine: $m}' "$f"
    done
  done | jq -s 'group_by(.config) | map({config: .[0].config, runs: map(.tokens_per_second),
                 median: (map(.tokens_per_second) | sort | .[(length - 1) / 2 | floor]), machine: map(.machine)})')
  cpu=$(for c in $SPEED_CONFIGS; do
    [ -s "$OUT/cpu.$c.1.time.json" ] && [ -s "$OUT/cpu.$c.$STEPS_SPEED.time.json" ] || continue
    jq -n -c --arg c "$c" --argjson a "$(cat "$OUT/cpu.$c.1.time.json")" --argjson b "$(cat "$OUT/cpu.$c.$STEPS_SPEED.time.json")" \
      --argjson steps "$STEPS_SPEED" \
      '{config: $c, cpu_seconds_per_step: ((($b.user + $b.sys) - ($a.user + $a.sys)) / ($steps - 1)),
        tokens_per_cpu_second: (1024 * ($steps - 1) / (($b.user + $b.sys) - ($a.user + $a.sys)))}'
  done | jq -s .)
  jq -n --argjson mem "$mem" --argjson speed "$speed" --argjson cpu "$cpu" --arg threads "$THREADS" --arg steps "$STEPS_SPEED" \
    '{what: "LoRA r8 (all 7 projections) on a random stories110M-shaped model (dim 768, hidden 2048, 12 layers, 12 heads, vocab 32000), batch 4 x 256, threads \($threads); speed: training tokens/s over \($steps) steps (setup excluded), median of the runs",
      memory: $mem, speed: $speed, cpu: $cpu,
      cpu_speedup_vs_f32: ($cpu | (map(select(.config == "f32"))[0].cpu_seconds_per_step) as $f
                           | if $f then map({config, ratio: ($f / .cpu_seconds_per_step)}) else [] end),
      speedup_vs_f32: ($speed | (map(select(.config == "f32"))[0].median) as $f
                       | if $f then map({config, ratio: (.median / $f)}) else [] end)}' \
    | tee bench/results/gsq_110m.json
fi
