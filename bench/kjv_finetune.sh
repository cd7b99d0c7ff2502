#!/usr/bin/env bash
# Acceptance 4 of the foundation issue: fine-tune stories260K on the KJV (every 20th verse held
# out) for 2000 steps with full, lora (r 8) and qlora (4-bit base, r 8), and compare held-out
# perplexity with the base model's. Writes bench/results/kjv_stories260k.{json,md}.
#   usage: bench/kjv_finetune.sh [path/to/qtune] [steps]
set -euo pipefail
source "$(dirname "$0")/kjv_setup.sh"
OUT=${OUT:-out/kjv}; mkdir -p "$OUT" bench/results
"$QTUNE" eval "${common[@]}" --report "$OUT/base.json" >/dev/null
run() { kjv_run "$OUT" "$@"; }
run full full 1e-3
run lora lora 3e-3 --rank 8 --alpha 16
run qlora4 qlora 3e-3 --rank 8 --alpha 16 --bits 4
jq -n --slurpfile b "$OUT/base.json" --slurpfile f "$OUT/full.json" --slurpfile l "$OUT/lora.json" \
  --slurpfile q "$OUT/qlora4.json" --arg steps "$STEPS" '
  def row(r): {val_perplexity: r.val_perplexity, relative_drop: (1 - r.val_perplexity / $b[0].perplexity),
               trainable_params: r.trainable_params, tokens_per_second: r.tokens_per_second,
               peak_rss_bytes: r.peak_rss_bytes, lr: r.lr, wall_seconds: r.wall_seconds};
  {steps: ($steps|tonumber), batch: 8, seq: 128, split: "kjv.txt, every 20th verse held out",
   base_perplexity: $b[0].perplexity, full: row($f[0]), lora_r8: row($l[0]), qlora4_r8: row($q[0])}' \
  > bench/results/kjv_stories260k.json
jq -r '"| method | trainable params | lr | held-out ppl | drop vs base | tok/s | peak RSS |",
       "|---|---|---|---|---|---|---|",
       "| base (stories260K) | – | – | \(.base_perplexity*100|round/100) | – | – | – |",
       (["full","lora_r8","qlora4_r8"][] as $k | .[$k] as $r |
        "| \($k) | \($r.trainable_params) | \($r.lr*1e6|round/1e6) | \($r.val_perplexity*100|round/100) | \($r.relative_drop*1000|round/10)% | \($r.tokens_per_second|round) | \($r.peak_rss_bytes/1048576*10|round/10) MiB |")' \
  bench/results/kjv_stories260k.json | tee bench/results/kjv_stories260k.md
