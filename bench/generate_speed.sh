#!/bin/bash
# Generation speed, old binary vs new, side by side in the same minute (the machine is shared):
# prompt = the first 130 tokens of a text (BOS included), 128 greedy tokens, 2 threads, 3 rounds.
#   bench/generate_speed.sh OLD_QTUNE NEW_QTUNE TOKENIZER PROMPT_FILE OUT_DIR MODEL...
# Per round and model: the new binary's --report (prompt_tok_s, decode_tok_s), and the old one's
# wall times for (BOS, 1 token), (prompt, 1 token), (prompt, 128 tokens), from which
#   old prefill tok/s = 129 / (t_prompt,1 − t_bos,1)    old decode tok/s = 127 / (t_prompt,128 − t_prompt,1)
# Take the median of the three rounds. PROMPT_FILE holds the prompt text (e.g. the first 533
# characters of out/perf/kjv-3mb.txt are 130 llama2 tokens).
set -euo pipefail
OLD=$1 NEW=$2 TOK=$3 P="$(cat "$4")" D=$5
shift 5
mkdir -p "$D"
t() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
for rep in 1 2 3; do
  for m in "$@"; do
    b=$(basename "$m" .gguf)
    o0=$(t "$OLD" generate --model "$m" --tokenizer "$TOK" --prompt "" -n 1 --ids --threads 2)
    o1=$(t "$OLD" generate --model "$m" --tokenizer "$TOK" --prompt "$P" -n 1 --ids --threads 2)
    o128=$(t "$OLD" generate --model "$m" --tokenizer "$TOK" --prompt "$P" -n 128 --ids --threads 2)
    n=$(t "$NEW" generate --model "$m" --tokenizer "$TOK" --prompt "$P" -n 128 --ids --threads 2 --quiet \
          --report "$D/$b.$rep.json")
    echo "$rep $b old(bos,1)=[$o0] old(prompt,1)=[$o1] old(prompt,128)=[$o128] new=[$n] $(python3 -c \
      "import json;j=json.load(open('$D/$b.$rep.json'));print(round(j['prompt_tok_s'],1),round(j['decode_tok_s'],1))")"
  done
done
