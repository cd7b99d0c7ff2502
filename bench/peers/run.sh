#!/usr/bin/env bash
# qtune side by side with its peers, on this machine, in one run (issue 14's table):
#   training  qtune finetune vs PyTorch (bench/peers/torch_peer.py): the same GGUF weights, LoRA r 8 α 16 on
#             q,k,v,o, batch B × T; lora · qlora (4-bit, per row, asymmetric) · full; tokens/s = B·T / the
#             median step (the first step of every run is a warm-up and not counted); peak RSS of the process
#   inference qtune generate: prefill (the prompt, batched) and decode tok/s on Q8_0 / Q4_0 files made by
#             `qtune quantize`, and on merged QA-LoRA W4A8 / W8A8 models; llama.cpp's llama-bench (pp / tg)
#             on the same files when LLAMA_BENCH points at its binary
#   moonshot  MOONSHOT=1: qlora 4-bit on a TinyLlama-1.1B-shaped random model, B1 × 512, --recompute
# Runs are interleaved (qtune, peer, qtune, peer, ...) REPS times; every figure is the median of the runs.
#
#   bench/peers/run.sh [all|models|train|infer|moonshot|peak|table]
# Env: QTUNE (build/qtune), QBENCH (build/qtune_bench), OUT (out/peers), THREADS (2), REPS (3), STEPS (6), LLAMA_BENCH (unset: no
#      llama.cpp rows), MOONSHOT (0), SHAPES ("15m 110m"), METHODS ("lora qlora full lora-gse8").
# Writes bench/results/peers.{json,md} and docs/images/peers.png (table.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE=${1:-all}
Q=${QTUNE:-build/qtune}
OUT=${OUT:-out/peers}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
STEPS=${STEPS:-6}
SHAPES=${SHAPES:-"15m 110m"}
METHODS=${METHODS:-"lora qlora full lora-gse8 lora-bf16 qlora-bf16 full-bf16"}
S=${QTUNE_SHARED_DIR:-../shared}
TOK=$S/models/llama2-tokenizer/tokenizer.model
PY=/usr/bin/python3
mkdir -p "$OUT" bench/results docs/images
# qtune sets its OpenMP wait policy itself (src/cli/main.cpp) and llama.cpp runs with its defaults,
# so no OpenMP variable is set from outside; the PyTorch peer gets its best one (peer_train).
unset OMP_WAIT_POLICY GOMP_SPINCOUNT

need_pkgs() {  # the peer and the plot: Debian's PyTorch, OpenBLAS with threads, matplotlib
  local missing=()
  for p in python3-torch libopenblas0-pthread python3-matplotlib; do
    dpkg -s "$p" > /dev/null 2>&1 || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" > /dev/null
}

# shape name → init config, batch, seq
declare -A CONFIG=([15m]="dim=288,hidden=768,layers=6,heads=6,kv_heads=6,seq=256"
                   [110m]="dim=768,hidden=2048,layers=12,heads=12,kv_heads=12,seq=1024"
                   [1b]="dim=2048,hidden=5632,layers=22,heads=32,kv_heads=4,seq=2048")
declare -A BATCH=([15m]=8 [110m]=4 [1b]=1)
declare -A SEQ=([15m]=256 [110m]=256 [1b]=512)

model() { echo "$OUT/s$1.gguf"; }

make_model() {  # shape
  local m; m=$(model "$1")
  [ -s "$m" ] && return 0
  echo "model $1 → $m" >&2
  "$Q" init --config "${CONFIG[$1]}" --tokenizer "$TOK" --seed 1 --out "$m" > /dev/null
}

models() {
  [ -s "$OUT/kjv-3mb.txt" ] || head -c 3000000 "$S/data/kjv.txt" > "$OUT/kjv-3mb.txt"
  for s in $SHAPES; do make_model "$s"; done
}

infer_models() {  # the 110M model as Q8_0 / Q4_0 (qtune quantize) and as merged QA-LoRA W4A8 / W8A8
  make_model 110m
  local m110; m110=$(model 110m)
  [ -s "$OUT/s110m-q8.gguf" ] || "$Q" quantize --model "$m110" --bits 8 --out "$OUT/s110m-q8.gguf" > /dev/null
  [ -s "$OUT/s110m-q4.gguf" ] || "$Q" quantize --model "$m110" --bits 4 --symmetric --out "$OUT/s110m-q4.gguf" > /dev/null
  # merged QA-LoRA models: W4 (Q4_1 groups of 32) / W8 (Q8_0) with int8 activations, after a few steps
  for b in 4 8; do
    local merged="$OUT/s110m-w${b}a8.gguf"
    [ -s "$merged" ] && continue
    "$Q" finetune --model "$m110" --tokenizer "$TOK" --data "$OUT/kjv-3mb.txt" --method qalora --bits "$b" \
      --group 32 --act-bits 8 --act-calib 1 --rank 8 --batch 1 --seq 64 --steps 2 --threads "$THREADS" --quiet \
      --out "$OUT/w${b}a8.adapter.gguf" > /dev/null
    "$Q" merge --model "$m110" --adapter "$OUT/w${b}a8.adapter.gguf" --out "$merged" > /dev/null
  done
}

# method name → qtune flags; lora-gse8 is LoRA with GSQ-Tuning's 8-bit group-shared-exponent GEMMs
# (docs/METHODS.md §9), the -bf16 rows run the training GEMMs in bfloat16 (--gemm bf16, AVX512-BF16);
# both are measured against the peer's float row of the same method
declare -A QFLAGS=([lora]="--method lora" [qlora]="--method qlora --bits 4" [full]="--method full"
                   [lora-gse8]="--method lora --gemm gse:b=8" [lora-bf16]="--method lora --gemm bf16"
                   [qlora-bf16]="--method qlora --bits 4 --gemm bf16" [full-bf16]="--method full --gemm bf16")

qtune_train() {  # shape method rep
  local flags="${QFLAGS[$2]}"
  [[ $2 == full* ]] || flags="$flags --rank 8 --alpha 16 --target q,k,v,o"
  local r="$OUT/train.$1.$2.qtune.$3.json"
  # shellcheck disable=SC2086
  "$Q" finetune --model "$(model "$1")" --tokenizer "$TOK" --data "$OUT/kjv-3mb.txt" $flags --lr 1e-4 \
    --batch "${BATCH[$1]}" --seq "${SEQ[$1]}" --steps "$STEPS" --threads "$THREADS" --seed 1 --quiet \
    --out "$OUT/train.$1.$2.out.gguf" --report "$r" > /dev/null 2> "$r.err"
}

peer_train() {  # shape method rep
  # PyTorch's libgomp workers spin by default and steal the cores from OpenBLAS's own threads:
  # a passive wait is its best setting here (15M lora: 1546 tok/s vs 721 with the default)
  OMP_WAIT_POLICY=PASSIVE "$PY" bench/peers/torch_peer.py --model "$(model "$1")" --method "$2" --target q,k,v,o --rank 8 --alpha 16 \
    --batch "${BATCH[$1]}" --seq "${SEQ[$1]}" --steps "$STEPS" --threads "$THREADS" \
    --report "$OUT/train.$1.$2.torch.$3.json" 2> "$OUT/train.$1.$2.torch.$3.err"
}

note_load() {  # what else was running when a measurement started: the table reports it
  echo "$1 $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/load.txt"
}

peak() {  # one core's multiply-add peak per number format: table.py's arithmetic ceiling
  "${QBENCH:-build/qtune_bench}" --benchmark_filter=Peak --benchmark_format=json > "$OUT/peak.json.tmp" 2> /dev/null
  mv "$OUT/peak.json.tmp" "$OUT/peak.json"
}

train() {
  need_pkgs
  note_load train
  peak
  for rep in $(seq 1 "$REPS"); do
    for s in $SHAPES; do
      for m in $METHODS; do
        echo "train $s $m rep $rep" >&2
        qtune_train "$s" "$m" "$rep"
        [[ $m == *-gse8 || $m == *-bf16 ]] || peer_train "$s" "$m" "$rep"  # their peer is the float row
      done
    done
  done
}

PROMPT_BYTES=${PROMPT_BYTES:-560}  # ≈ 128 Llama-2 tokens of the KJV text

infer() {
  note_load infer
  local prompt; prompt=$(head -c 20000 "$OUT/kjv-3mb.txt" | tail -c "$PROMPT_BYTES" | tr '\n' ' ')
  for rep in $(seq 1 "$REPS"); do
    for f in q8 q4 w4a8 w8a8; do
      local m="$OUT/s110m-$f.gguf"
      [ -s "$m" ] || continue
      echo "generate $f rep $rep" >&2
      "$Q" generate --model "$m" --prompt "$prompt" -n 128 --threads "$THREADS" --ids \
        --report "$OUT/gen.$f.$rep.json" > /dev/null 2> "$OUT/gen.$f.$rep.err"
      if [ -n "${LLAMA_BENCH:-}" ] && [[ $f == q* ]]; then
        "$LLAMA_BENCH" -m "$m" -p 128 -n 128 -t "$THREADS" -r 1 -o json \
          > "$OUT/llama.$f.$rep.json" 2> /dev/null
      fi
    done
  done
}

moonshot() {
  SHAPES=1b make_model 1b
  local r="$OUT/moonshot.json"
  /usr/bin/time -v "$Q" finetune --model "$(model 1b)" --tokenizer "$TOK" --data "$OUT/kjv-3mb.txt" --method qlora \
    --bits 4 --rank 8 --alpha 16 --target q,k,v,o --batch 1 --seq 512 --steps 4 --threads "$THREADS" --seed 1 \
    --recompute --quiet --out "$OUT/moonshot.adapter.gguf" --report "$r" > /dev/null 2> "$OUT/moonshot.time"
}

table() {
  need_pkgs
  "$PY" bench/peers/table.py --dir "$OUT" --json bench/results/peers.json --md bench/results/peers.md \
    --png docs/images/peers.png
}

case "$MODE" in
  models) models ;;
  train) models; train ;;
  infer) models; infer_models; infer ;;
  moonshot) moonshot ;;
  peak) peak ;;
  table) table ;;
  all) models; train; infer_models; infer; [ "${MOONSHOT:-0}" = 1 ] && moonshot; table ;;
  *) echo "usage: $0 [all|models|train|infer|moonshot|peak|table]" >&2; exit 2 ;;
esac
