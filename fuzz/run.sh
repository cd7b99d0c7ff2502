#!/usr/bin/env bash
# fuzz/run.sh <harness binary> <seconds> <seed dir> <work dir> [libFuzzer flags...]
# Runs one libFuzzer harness for a fixed time over <work dir>/corpus (kept between runs, so inputs
# found earlier are replayed first) plus the seeds, with the limits that make a bug out of a huge
# allocation (> 2 GB) or a slow input (> 10 s). Prints one summary line; on a crash, the end of the
# log and the reproducer's path (<work dir>/artifacts/crash-*; rerun: <harness> <file>).
set -uo pipefail
bin=$1 secs=$2 seeds=$3 work=$4
shift 4
name=$(basename "$bin")
dict_dir=$(dirname "$0")
mkdir -p "$work/corpus" "$work/artifacts"
dict=()
case "$name" in
  fuzz_dataset) dict=(-dict="$dict_dir/dataset.dict") ;;
  fuzz_gguf*|fuzz_lora|fuzz_checkpoint|fuzz_adapter) dict=(-dict="$dict_dir/gguf.dict") ;;
esac
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=1
log=$work/log
"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1 \
  -artifact_prefix="$work/artifacts/" "${dict[@]}" "$@" "$work/corpus" "$seeds" >"$log" 2>&1
rc=$?
stat_of() { grep -m1 "^stat::$1:" "$log" | awk '{print $2}'; }
runs=$(stat_of number_of_executed_units) rate=$(stat_of average_exec_per_sec) rss=$(stat_of peak_rss_mb)
echo "$name: ${runs:-?} executions in ${SECONDS} s (${rate:-?} exec/s), corpus $(ls "$work/corpus" | wc -l) files," \
  "peak RSS ${rss:-?} MB, exit $rc"
if [ "$rc" -ne 0 ]; then
  tail -n 60 "$log"
  ls -1 "$work/artifacts"
fi
exit "$rc"
