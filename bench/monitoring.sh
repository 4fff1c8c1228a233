#!/usr/bin/env bash
#
# bench/monitoring.sh — what monitoring costs on the hot path (issue 6): L1
# hits with metrics on (the default) against the same binary with
# `--metrics-enabled false`, in one run, on loopback, with wrk.
#
# Each measurement starts its own strata on the same database, makes the
# ~item an L1 hit, and runs wrk (a warm-up, then the measured run). The two
# settings alternate (on, off, then off, on, …) so drift in the machine's
# load falls on both alike; the verdict compares the means:
#
#     on / off  ≥ 0.95   → PASS (monitoring costs ≤ 5 % of L1-hit throughput)
#
# With metrics on, the run also checks that /metrics counted every request
# wrk made (strata_http_requests_total of the item route ≥ wrk's count).
#
# Usage: bench/monitoring.sh      (needs build/strata, wrk, curl)
#   RUNS=3          pairs of measurements (on and off each RUNS times)
#   DURATION=10s WARMUP=2s THREADS=2 CONNS=64   wrk settings (bench/lib.sh)
#   SERVE_THREADS=2 strata loop threads     ITEMS=200 demo items seeded
#   QUIET_LOAD=0.7 QUIET_WAIT=300   wait for a quiet machine first (0: no wait)
#   STRATA=path  (default build/strata)    BENCH_KEEP_TMP=1  keep the temp dir
#
# Output: one line per measurement, a summary with the ratio and the
# verdict, and `RESULT monitoring …` lines. Exits 0 unless something breaks.
# Time: about 2 × RUNS × (WARMUP + DURATION + 1 s) plus the quiet wait.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_NAME=monitoring
RUNS=${RUNS:-3}
ITEMS=${ITEMS:-200}
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_WAIT=${QUIET_WAIT:-300}
SERVE_THREADS=${SERVE_THREADS:-2}
STRATA=${STRATA:-$REPO/build/strata}
ITEM_ROUTE='/v1/:site/content/:id'

bench_require wrk curl
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build\` in $REPO first"
bench_init
# A private copy: others may rebuild build/strata while this runs.
cp "$STRATA" "$BENCH_TMP/strata"
STRATA="$BENCH_TMP/strata"

bench_log "seeding $ITEMS items into $BENCH_TMP/bench.db"
"$STRATA" seed --db "$BENCH_TMP/bench.db" --items "$ITEMS" >"$BENCH_TMP/seed.log" 2>&1 ||
    bench_die "strata seed failed: $(tail -n 5 "$BENCH_TMP/seed.log")"

# The item: the newest published one.
bench_strata_start setup
bench_fetch list "http://127.0.0.1:$STRATA_PORT/v1/main/content?limit=1"
ITEM_ID=$(grep -o '"id": *[0-9]*' "$BENCH_TMP/list.body" | head -n1 | grep -o '[0-9]*$' || true)
[[ -n $ITEM_ID ]] || bench_die "no published item in the seeded database"
ITEM_PATH="/v1/main/content/$ITEM_ID"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" setup

bench_wait_quiet "$QUIET_LOAD" "$QUIET_WAIT" 20
bench_log "quiet: $BENCH_QUIET (load $BENCH_QUIET_LOAD after ${BENCH_QUIET_WAITED}s)"

# measure NAME [FLAG...] — one strata, an L1 hit, wrk; sets RPS_OF[NAME].
declare -A RPS_OF CPU_OF
measure() {
    local name=$1 i url status
    shift
    bench_strata_start "$name" "$@"
    url="http://127.0.0.1:$STRATA_PORT$ITEM_PATH"
    for ((i = 0; i < 5; i++)); do
        bench_fetch "$name" "$url"
        [[ $(bench_header "$BENCH_TMP/$name.headers" cache-status) == "strata; hit"* ]] && break
        sleep 0.2
    done
    status=$(bench_header "$BENCH_TMP/$name.headers" cache-status)
    [[ $status == "strata; hit"* ]] || bench_die "$ITEM_PATH is not an L1 hit: cache-status '$status'"
    local before after warm_n
    before=$(bench_cpu_ticks "$STRATA_PID")
    bench_wrk "$name" "$url" "$STRATA_PID" "$STRATA_LOG"
    after=$(bench_cpu_ticks "$STRATA_PID")
    RPS_OF[$name]=$WRK_RPS
    # the server's own CPU time per request (warm-up and run): less moved
    # than req/s by whatever else the machine runs
    warm_n=$(awk '/requests in/ {print $1}' "$BENCH_TMP/wrk-$name-warmup.txt")
    CPU_OF[$name]=$(awk -v b="${before% *}" -v a="${after% *}" -v n=$((WRK_REQUESTS + warm_n)) \
        -v tk="$(getconf CLK_TCK)" 'BEGIN { printf "%.3f", (a - b) / tk * 1e6 / n }')
    if [[ $name == on* ]]; then # every request wrk made is counted (warm-up, run, the fetches)
        bench_fetch "$name-metrics" "http://127.0.0.1:$STRATA_PORT/metrics"
        local counted
        counted=$(awk -v r="$ITEM_ROUTE" '$0 ~ "^strata_http_requests_total\\{route=\"" r "\",method=\"GET\",code_class=\"2xx\"\\}" { print $2 }' \
            "$BENCH_TMP/$name-metrics.body")
        if [[ -z $counted ]] || ! bench_ge "$counted" "$WRK_REQUESTS"; then
            bench_die "/metrics counted '${counted:-nothing}' item requests; wrk made $WRK_REQUESTS in its measured run alone"
        fi
        COUNTED_OF[$name]=$counted
    fi
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" "$name"
    printf '%-6s %10s req/s   p50 %7s ms   p99 %7s ms   server CPU %6s us/req%s\n' "$name" \
        "$(bench_round "$WRK_RPS" 0)" "$WRK_P50_MS" "$WRK_P99_MS" "${CPU_OF[$name]}" \
        "${COUNTED_OF[$name]:+   (/metrics counted ${COUNTED_OF[$name]} item requests)}"
}
declare -A COUNTED_OF

printf 'monitoring: L1 hit %s, wrk -t%s -c%s -d%s (warm-up %s), strata with %s loop threads, %s cores, load %s\n' \
    "$ITEM_PATH" "${THREADS:-2}" "${CONNS:-64}" "${DURATION:-10s}" "${WARMUP:-2s}" "$SERVE_THREADS" "$(nproc)" \
    "$(bench_load1)"
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then
        measure "on$r"
        measure "off$r" --metrics-enabled false
    else
        measure "off$r" --metrics-enabled false
        measure "on$r"
    fi
done

# mean_of ARRAY PREFIX — the mean of ARRAY[PREFIX1..PREFIXRUNS]
mean_of() {
    local -n values=$1
    local r
    for ((r = 1; r <= RUNS; r++)); do echo "${values[$2$r]}"; done | awk '{ s += $1 } END { printf "%.3f", s / NR }'
}
MEAN_ON=$(mean_of RPS_OF on) MEAN_OFF=$(mean_of RPS_OF off)
RATIO=$(bench_ratio "$MEAN_ON" "$MEAN_OFF")
CPU_ON=$(mean_of CPU_OF on) CPU_OFF=$(mean_of CPU_OF off)
CPU_RATIO=$(bench_ratio "$CPU_OFF" "$CPU_ON") # throughput a CPU-bound server would keep: off/on of its cost
COST_PCT=$(awk -v r="$RATIO" 'BEGIN { printf "%.1f", (1 - r) * 100 }')
VERDICT=$(bench_verdict_ge "$RATIO" 0.95)
printf 'monitoring summary over %s pairs: metrics on %.0f req/s, off %.0f req/s, on/off %s (cost %s %%), target on/off >= 0.95: %s\n' \
    "$RUNS" "$MEAN_ON" "$MEAN_OFF" "$RATIO" "$COST_PCT" "$VERDICT"
printf '  server CPU per request: on %s us, off %s us, off/on %s (information: less noisy than req/s on a shared machine)\n' \
    "$CPU_ON" "$CPU_OFF" "$CPU_RATIO"
printf 'RESULT monitoring runs=%s on_rps=%.0f off_rps=%.0f on_over_off=%s cost_pct=%s target=%s cpu_us_on=%s cpu_us_off=%s cpu_off_over_on=%s quiet=%s' \
    "$RUNS" "$MEAN_ON" "$MEAN_OFF" "$RATIO" "$COST_PCT" "$VERDICT" "$CPU_ON" "$CPU_OFF" "$CPU_RATIO" "$BENCH_QUIET"
for ((r = 1; r <= RUNS; r++)); do
    printf ' on%s=%s off%s=%s' "$r" "$(bench_round "${RPS_OF[on$r]}" 0)" "$r" "$(bench_round "${RPS_OF[off$r]}" 0)"
done
printf '\n'
