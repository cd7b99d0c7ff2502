#!/usr/bin/env bash
# fuzz/long_run.sh [runs] [parallel] [harness...] — the long run behind README "Reliability":
# every harness (or those named) until `runs` executions (default 1000000), `parallel` at a time
# (default 2), each capped at 3 hours, over build-fuzz/fuzz/long/<harness>/ (the corpus is kept,
# so a second run continues from the first). Needs `cmake --build build-fuzz --target qtune_fuzz`.
# Prints a Markdown table: executions, exec/s, wall time, crashes, corpus files, coverage.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000} parallel=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(gguf gguf_model gguf_vocab llama2c tokenizer_bin spm_model tokenize dataset lora
                                          checkpoint adapter)
fz=build-fuzz/fuzz
for h in "${harnesses[@]}"; do
  [ -x "$fz/fuzz_$h" ] || { echo "long_run.sh: $fz/fuzz_$h is not built" >&2; exit 2; }
done
one() {
  local h=$1
  bash fuzz/run.sh "$fz/fuzz_$h" 10800 "$fz/seeds/$h" "$fz/long/$h" -runs="$runs" >"$fz/long/$h.summary" 2>&1
}
mkdir -p "$fz/long"
for h in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n; done
  one "$h" &
done
wait
echo "| harness | executions | exec/s | time | crashes | corpus files | coverage (edges) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for h in "${harnesses[@]}"; do
  log=$fz/long/$h/log
  stat_of() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
  secs=$(sed -n 's/.* in \([0-9]*\) s .*/\1/p' "$fz/long/$h.summary")
  rc=$(sed -n 's/.*exit \([0-9]*\)$/\1/p' "$fz/long/$h.summary")
  crashes=$(ls "$fz/long/$h/artifacts" | wc -l)
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  printf '| fuzz_%s | %s | %s | %s s | %s%s | %s | %s |\n' "$h" "$(stat_of number_of_executed_units)" \
    "$(stat_of average_exec_per_sec)" "$secs" "$crashes" "$([ "$rc" = 0 ] || echo " (exit $rc)")" \
    "$(ls "$fz/long/$h/corpus" | wc -l)" "$cov"
done
