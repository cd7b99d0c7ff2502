#!/usr/bin/env bash
# The main job, end to end on an embedded default, with nothing but this repo and Debian packages:
#   1. corpus: the KJV from Debian's bible-kjv (OT for pretraining, NT for fine-tuning), and a
#      512-piece SentencePiece vocabulary trained on the OT                       (cached)
#   2. pretrain a small base model on the OT                                      (cached)
#   3. quantize the base to 4 bits (the PTQ baseline)
#   4. fine-tune on the NT, every 20th verse held out, rank 8, 4-bit base: QLoRA, and the integer
#      methods QA-LoRA and IntLoRA-MUL
#   5. merge: QLoRA in float and then 4-bit PTQ; QA-LoRA and IntLoRA-MUL exactly into 4-bit
#      integers (no PTQ); evaluate every deployed model on the held-out NT
#   6. print the table
# Usage: bash scripts/demo.sh [workdir]   (default out/demo; delete it to start over)
#
# bash scripts/demo.sh dit [workdir]   the diffusion demo instead (default out/demo-dit): a DiT
#   pretrained on Fashion-MNIST classes 0-7 (cached; ~25 min on 2 cores), the metrics classifier
#   (cached), then classes 8-9 taught by float LoRA, QLoRA + 4-bit PTQ, QA-LoRA and IntLoRA-MUL at
#   W4A8, every deployed model sampled (PNG grids in the workdir) and scored: FID, conditional
#   accuracy, held-out loss (bench/dit_fmnist.sh does the work; DEMO_DIT_STEPS, DEMO_DIT_N).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = dit ]; then
  W=${2:-out/demo-dit}
  bash scripts/install-deps.sh demo dit
  echo "== building qtune" >&2
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build --target qtune -j"$(nproc)" >/dev/null
  OUT=$W THREADS=0 STEPS=${DEMO_DIT_STEPS:-600} N=${DEMO_DIT_N:-100} \
    bash bench/dit_fmnist.sh rows base base-89 lora-fp qlora-w4 qalora-w4 intlora-mul-w4
  printf '\nClasses 8-9 taught to a DiT pretrained on 0-7; deployed models (base row: classes 0-7)\n\n'
  OUT=$W bash bench/dit_fmnist.sh table
  printf '\nSample grids: %s/*/class*.png, %s/*/classes89.png; JSON reports beside them\n' "$W" "$W"
  exit 0
fi
W=${1:-out/demo}
bash scripts/install-deps.sh demo
echo "== building qtune" >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target qtune -j"$(nproc)" >/dev/null
Q=build/qtune
bash scripts/demo_corpus.sh "$W"
TOK=$W/kjv.model
T=(--threads 0)

BASE_CONFIG=dim=128,hidden=384,layers=4,heads=4,kv_heads=4,seq=128
if [ ! -s "$W/base.gguf" ]; then
  echo "== pretraining the base model on the Old Testament ($BASE_CONFIG; cached afterwards)" >&2
  $Q finetune --init-config "$BASE_CONFIG" --tokenizer "$TOK" --method full --data "$W/ot.txt" \
    --steps "${DEMO_PRETRAIN_STEPS:-800}" --batch 16 --seq 128 --lr 3e-3 --min-lr 3e-4 --warmup 100 --schedule cosine --seed 1 \
    --val-every 50 --eval-batches 8 "${T[@]}" --out "$W/base.gguf" --report "$W/base.pretrain.json"
fi

echo "== quantizing the base to 4 bits (PTQ)" >&2
$Q quantize --model "$W/base.gguf" --bits 4 --out "$W/base.q4.gguf"

echo "== fine-tuning QLoRA (4-bit base, rank 8) on the New Testament" >&2
$Q finetune --model "$W/base.gguf" --tokenizer "$TOK" --method qlora --bits 4 --rank 8 --alpha 16 \
  --data "$W/nt.txt" --val-every 20 --steps "${DEMO_FINETUNE_STEPS:-200}" --batch 16 --seq 128 --lr "${DEMO_LR:-1e-2}" --warmup 50 --seed 1 \
  --eval-batches 0 "${T[@]}" --out "$W/nt.qlora.gguf" --report "$W/nt.qlora.json"

for m in qalora intlora-mul; do
  echo "== fine-tuning ${m} (4-bit integer base, rank 8) on the New Testament" >&2
  $Q finetune --model "$W/base.gguf" --tokenizer "$TOK" --method "$m" --bits 4 --rank 8 \
    --data "$W/nt.txt" --val-every 20 --steps "${DEMO_FINETUNE_STEPS:-200}" --batch 16 --seq 128 --lr "${DEMO_LR:-1e-2}" --warmup 50 --seed 1 \
    --eval-batches 0 "${T[@]}" --out "$W/nt.$m.gguf" --report "$W/nt.$m.json"
done

echo "== merging" >&2
$Q merge --model "$W/base.gguf" --adapter "$W/nt.qlora.gguf" --out "$W/nt.merged.f32.gguf" >/dev/null
$Q merge --model "$W/base.gguf" --adapter "$W/nt.qlora.gguf" --out "$W/nt.merged.q4.gguf" --bits 4 >/dev/null
for m in qalora intlora-mul; do
  $Q merge --model "$W/base.gguf" --adapter "$W/nt.$m.gguf" --out "$W/nt.$m.merged.gguf" | sed "s/^/  $m: /" >&2
done

echo "== evaluating on the held-out New Testament verses" >&2
ev() { $Q eval --model "$1" --tokenizer "$TOK" --data "$W/nt.txt" --val-every 20 --seq 128 "${T[@]}" \
         --report "$2" >/dev/null; jq -r '.perplexity' "$2"; }
p_base=$(ev "$W/base.gguf" "$W/eval.base.json")
p_base4=$(ev "$W/base.q4.gguf" "$W/eval.base.q4.json")
p_ft=$(ev "$W/nt.merged.f32.gguf" "$W/eval.merged.f32.json")
p_ft4=$(ev "$W/nt.merged.q4.gguf" "$W/eval.merged.q4.json")
p_qa=$(ev "$W/nt.qalora.merged.gguf" "$W/eval.qalora.json")
p_mul=$(ev "$W/nt.intlora-mul.merged.gguf" "$W/eval.intlora-mul.json")
tps=$(jq -r '.tokens_per_second|round' "$W/nt.qlora.json")
mem=$(jq -r '.peak_rss_bytes/1048576|round' "$W/nt.qlora.json")

printf '\nHeld-out New Testament perplexity (every 20th verse; lower is better)\n\n'
printf '| %-52s | %10s |\n' "model" "perplexity" "$(printf '%0.s-' {1..52})" "----------"
row() { printf '| %-52s | %10.3f |\n' "$1" "$2"; }
row "base (pretrained on OT, float)" "$p_base"
row "base, 4-bit PTQ (Q4_1, groups of 32)" "$p_base4"
row "QLoRA fine-tuned on NT, merged (float)" "$p_ft"
row "QLoRA fine-tuned on NT, merged + 4-bit PTQ (per row)" "$p_ft4"
row "QA-LoRA, exact 4-bit integer merge (per row)" "$p_qa"
row "IntLoRA-MUL, exact integer merge (W4 base, per row)" "$p_mul"
printf '\nQLoRA training: %s tok/s, peak RSS %s MiB. Files and JSON reports: %s/\n' "$tps" "$mem" "$W"
