#!/usr/bin/env bash
# run.sh SECONDS NAME... — run each libFuzzer harness build/fuzz/fuzz_NAME
# for SECONDS, one after the other, and print its figures and a total.
#
# Each run starts from a fresh copy of tests/fuzz/corpus/NAME in
# build/fuzz/work/NAME (the committed corpus is never written), with
# tests/fuzz/NAME.dict when there is one and the flags of
# tests/fuzz/NAME.options (one line) when there is one. A crash, a leak,
# a sanitizer report, a timeout (FUZZ_TIMEOUT s for one input) or an
# out-of-memory stops that harness: its input is kept under
# build/fuzz/crashes/ and the script fails. The full log of each run is
# build/fuzz/logs/NAME.log.
#
# Figures come from libFuzzer's own output: the final "cov:" and "ft:" of
# its status lines, and -print_final_stats=1's
# stat::number_of_executed_units and stat::average_exec_per_sec.
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:?usage: run.sh SECONDS NAME...}
shift
timeout_s=${FUZZ_TIMEOUT:-10}
dir=build/fuzz
mkdir -p "$dir/crashes" "$dir/logs" "$dir/work"

# UBSan stops at the first report; ASan checks leaks after each input.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

total_execs=0
failed=0
printf '%-10s %12s %10s %8s %8s %8s  %s\n' harness execs execs/s cov ft corpus result
for name in "$@"; do
  bin=$dir/fuzz_$name
  work=$dir/work/$name
  log=$dir/logs/$name.log
  rm -rf "$work"
  mkdir -p "$work"
  [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$work/"
  flags=(-max_total_time="$seconds" -print_final_stats=1 -timeout="$timeout_s" -rss_limit_mb=2048
         -artifact_prefix="$dir/crashes/$name-" -close_fd_mask=1)
  [ -f "tests/fuzz/$name.dict" ] && flags+=(-dict="tests/fuzz/$name.dict")
  [ -f "tests/fuzz/$name.options" ] && read -r -a extra <"tests/fuzz/$name.options" && flags+=("${extra[@]}")
  if [ -x "$bin" ]; then
    "$bin" "${flags[@]}" "$work" >"$log" 2>&1
    rc=$?
  else
    echo "$bin: not built" >"$log"
    rc=127
  fi
  execs=$(grep -Eo '^stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  rate=$(grep -Eo '^stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  cov=$(grep -Eo ' cov: [0-9]+' "$log" | grep -Eo '[0-9]+' | tail -1)
  ft=$(grep -Eo ' ft: [0-9]+' "$log" | grep -Eo '[0-9]+' | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  result=ok
  if [ "$rc" -ne 0 ] || [ -z "$execs" ]; then
    result="FAILED (exit $rc; log $log)"
    failed=$((failed + 1))
  fi
  printf '%-10s %12s %10s %8s %8s %8s  %s\n' "$name" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$result"
  if [ "$result" != ok ]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written|    #[0-9]+ )' "$log" | head -n 30
  fi
  total_execs=$((total_execs + ${execs:-0}))
done
echo "total: $total_execs executions in $# harnesses, $failed failed"
[ "$failed" -eq 0 ]
