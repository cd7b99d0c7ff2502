#!/usr/bin/env bash
# Builds the demo corpus from Debian's bible-kjv package (cached in $1):
#   ot.txt  Old Testament, one verse per line (pretraining)
#   nt.txt  New Testament, one verse per line (fine-tuning; every 20th verse is held out)
#   kjv.model / kjv.vocab  a 512-piece SentencePiece BPE vocabulary trained on the OT
set -euo pipefail
dir="$1"
mkdir -p "$dir"
verses() {  # verse lines are "  N text": keep the text
  bible -l100000 "$1" | sed -n 's/^ *[0-9][0-9]* //p'
}
if [ ! -s "$dir/ot.txt" ] || [ ! -s "$dir/nt.txt" ]; then
  verses "Gen1:1-Mal4:6" > "$dir/ot.txt.tmp" && mv "$dir/ot.txt.tmp" "$dir/ot.txt"
  verses "Mat1:1-Rev22:21" > "$dir/nt.txt.tmp" && mv "$dir/nt.txt.tmp" "$dir/nt.txt"
fi
if [ ! -s "$dir/kjv.model" ]; then
  spm_train --input="$dir/ot.txt" --model_prefix="$dir/kjv.tmp" --vocab_size=512 --model_type=bpe \
    --character_coverage=1.0 --byte_fallback=true --bos_id=1 --eos_id=2 --unk_id=0 --pad_id=-1 \
    --num_threads=2 --minloglevel=2 >/dev/null 2>&1
  mv "$dir/kjv.tmp.vocab" "$dir/kjv.vocab" && mv "$dir/kjv.tmp.model" "$dir/kjv.model"
fi
echo "corpus: $(wc -l < "$dir/ot.txt") OT verses, $(wc -l < "$dir/nt.txt") NT verses; tokenizer $dir/kjv.model" >&2
