# bench/kjv_setup.sh — what the stories260K → KJV benches share (sourced, with the caller's "$@"):
# the inputs, the flags of every run, and one finetune run of the table's recipe (8 × 128,
# warmup 100 + cosine, seed 1, the whole held-out split scored at the end).
#   args: [path/to/qtune] [steps]     sets QTUNE, STEPS, MODEL, TOK, DATA, common; defines kjv_run
cd "$(dirname "${BASH_SOURCE[0]}")/.."
QTUNE=${1:-build/qtune}
STEPS=${2:-2000}
S=../shared
MODEL=$S/models/stories260K/stories260K.bin TOK=$S/models/stories260K/tok512.bin DATA=$S/data/kjv.txt
common=(--model "$MODEL" --tokenizer "$TOK" --data "$DATA" --val-every 20 --seq 128 --threads 2)

kjv_run() {  # out-dir name method lr extra...
  local out=$1 name=$2 method=$3 lr=$4; shift 4
  "$QTUNE" finetune "${common[@]}" --method "$method" --lr "$lr" --steps "$STEPS" --batch 8 --warmup 100 \
    --schedule cosine --seed 1 --eval-batches 0 --out "$out/$name.gguf" --report "$out/$name.json" "$@" --quiet
}
