#!/usr/bin/env bash
#
# bench/item_get.sh — baseline of the UNCACHED read path: GET one published
# item, /v1/main/content/{id}, from strata with its embedded SQLite store.
#
# What it measures: requests/s and p99 latency of strata answering the same
# item over and over, with wrk on loopback (-t2 -c64, keep-alive), each
# request going request → parse → SQLite → JSON → response. strata runs with
# `--cache false` when it has a response cache, and the bench checks that no
# answer is a cache hit. This is the number the caching work must beat
# (baseline of issue 2; see docs/benchmarks.md).
#
# It fails (exit 1, `RESULT item_get FAILED strata_died …`) if strata dies
# under the load, and reports strata's exit status on SIGTERM afterwards.
#
# Why nginx is the reference: the product promise is that a cache hit costs
# about what serving a static file costs. nginx serving the very same JSON
# bytes from a file (open_file_cache on, no access log, 2 workers) is that
# "static file" ceiling on this machine, measured in the same run, under the
# same load generator, with the same noise. The ratio strata/nginx is the
# figure to track; absolute numbers drift with whatever else the shared
# machine is doing.
#
# Usage: bench/item_get.sh            (from anywhere; needs build/strata)
#   DURATION=10s  measured run per target (default 10s)
#   WARMUP=2s     warm-up per target (default 2s)
#   THREADS=2 CONNS=64   wrk threads and connections
#   ITEMS=200     demo items seeded
#   SERVE_THREADS=2   strata serve --threads
#   STRATA=path   the binary (default build/strata)
#   BENCH_BUILD=1 run `make -s` first
#   BENCH_KEEP_TMP=1  keep the temp dir (logs, wrk outputs)
#
# Output: a table on stdout, then one machine-readable line:
#   RESULT item_get strata_rps=… strata_p99_ms=… nginx_rps=… nginx_p99_ms=… ratio=… …
# Whole run: about 2 × (WARMUP + DURATION) + a few seconds of setup.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

ITEMS=${ITEMS:-200}
SERVE_THREADS=${SERVE_THREADS:-2}
STRATA=${STRATA:-$REPO/build/strata}
SITE=main
BENCH_NAME=item_get

bench_require wrk nginx curl

if [[ ${BENCH_BUILD:-0} == 1 ]]; then
    make -s -C "$REPO"
fi
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make\` in $REPO first (or BENCH_BUILD=1)"

bench_init

# ---- data: a fresh database with demo content ----------------------------------

bench_log "seeding $ITEMS items into $BENCH_TMP/bench.db"
"$STRATA" seed --db "$BENCH_TMP/bench.db" --items "$ITEMS" \
    >"$BENCH_TMP/seed.log" 2>&1 || {
    cat "$BENCH_TMP/seed.log" >&2
    bench_die "strata seed failed"
}

# ---- strata ------------------------------------------------------------------

# The response cache (issue 3 on) would turn this into a hit benchmark: turn
# it off, so every GET still goes parse → SQLite → JSON → response. A build
# from before the cache has no --cache flag and nothing to turn off.
CACHE_ARGS=()
CACHE_MODE=none
STRATA_HELP=$("$STRATA" --help 2>&1 || true) # (not piped into grep -q: SIGPIPE + pipefail)
if grep -q -- '--cache ' <<<"$STRATA_HELP"; then
    CACHE_ARGS=(--cache false)
    CACHE_MODE=off
fi

STRATA_PORT=$(bench_free_port)
"$STRATA" serve --db "$BENCH_TMP/bench.db" --listen "127.0.0.1:$STRATA_PORT" \
    --threads "$SERVE_THREADS" --log-level warn "${CACHE_ARGS[@]}" >"$BENCH_TMP/strata.log" 2>&1 </dev/null &
STRATA_PID=$!
bench_track_pid "$STRATA_PID" strata
bench_wait_url "http://127.0.0.1:$STRATA_PORT/healthz" 15 "$STRATA_PID"
BASE="http://127.0.0.1:$STRATA_PORT/v1/$SITE"

# One published item: the first of the default list (newest published). The
# seed is deterministic, so it is the same item from run to run.
curl -fsS "$BASE/content?limit=1" -o "$BENCH_TMP/list.json" ||
    bench_die "GET $BASE/content?limit=1 failed"
ITEM_ID=$(grep -o '"id": *[0-9]*' "$BENCH_TMP/list.json" | head -n1 | grep -o '[0-9]*$' || true)
[[ -n $ITEM_ID ]] || bench_die "no item id in $(head -c 300 "$BENCH_TMP/list.json")"
ITEM_URL="$BASE/content/$ITEM_ID"

# The reference serves exactly the bytes strata sends.
mkdir -p "$BENCH_TMP/www"
curl -fsS "$ITEM_URL" -o "$BENCH_TMP/www/item.json" -D "$BENCH_TMP/item.headers" ||
    bench_die "GET $ITEM_URL failed"
ITEM_BYTES=$(wc -c <"$BENCH_TMP/www/item.json")
# Twice more: with the cache off, neither may be a hit (RFC 9211 Cache-Status).
for _ in 1 2; do
    if curl -fsS -o /dev/null -D - "$ITEM_URL" | tr -d '\r' | grep -i '^cache-status:' | grep -qiw hit; then
        bench_die "GET $ITEM_URL answers cache hits with ${CACHE_ARGS[*]:-no --cache flag}: not the uncached path"
    fi
done
bench_log "item $ITEM_ID: $ITEM_BYTES bytes of JSON"

# ---- nginx, the reference ----------------------------------------------------

NGINX_PORT=$(bench_free_port)
while [[ $NGINX_PORT == "$STRATA_PORT" ]]; do NGINX_PORT=$(bench_free_port); done
bench_nginx_start "$BENCH_TMP/www" "$NGINX_PORT"
NGINX_URL="http://127.0.0.1:$NGINX_PORT/item.json"
curl -fsS "$NGINX_URL" | cmp -s - "$BENCH_TMP/www/item.json" ||
    bench_die "nginx does not serve the item bytes at $NGINX_URL"

# ---- load --------------------------------------------------------------------

LOAD_START=$(bench_load1) BUSY_START=$(bench_busy_others)
bench_wrk strata "$ITEM_URL" "$STRATA_PID" "$BENCH_TMP/strata.log"
S_RPS=$WRK_RPS S_P50=$WRK_P50_MS S_P99=$WRK_P99_MS S_NON2XX=$WRK_NON2XX S_ERR=$WRK_ERRORS
# Still serving the same bytes after the load?
curl -fsS "$ITEM_URL" | cmp -s - "$BENCH_TMP/www/item.json" ||
    bench_log "WARNING: strata's answer changed after the load"
# Stop strata before nginx is measured (no idle process in the way), and
# check that it shuts down cleanly on SIGTERM after the load.
bench_stop_pid "$STRATA_PID" TERM
bench_untrack_pid "$STRATA_PID"
S_EXIT=$BENCH_STOP_STATUS
if [[ $S_EXIT != 0 ]]; then
    bench_log "WARNING: strata exited with status $S_EXIT on SIGTERM (0 expected); last lines of its log:"
    tail -n 5 "$BENCH_TMP/strata.log" >&2 || true
fi

bench_wrk nginx "$NGINX_URL" "$BENCH_NGINX_PID" "$BENCH_TMP/nginx/logs/error.log"
N_RPS=$WRK_RPS N_P50=$WRK_P50_MS N_P99=$WRK_P99_MS N_NON2XX=$WRK_NON2XX N_ERR=$WRK_ERRORS

LOAD_END=$(bench_load1)
RATIO=$(bench_ratio "$S_RPS" "$N_RPS")
P99_RATIO=$(bench_ratio "$S_P99" "$N_P99")

# ---- report ------------------------------------------------------------------

printf '\nitem_get: GET one %s-byte item, wrk -t%s -c%s -d%s --latency, strata --threads %s%s, loopback, %s cores\n' \
    "$ITEM_BYTES" "${THREADS:-2}" "${CONNS:-64}" "${DURATION:-10s}" "$SERVE_THREADS" \
    "${CACHE_ARGS[*]:+ ${CACHE_ARGS[*]}}" "$(nproc)"
printf '%-8s %12s %10s %10s %8s %8s\n' target req/s p50_ms p99_ms non2xx errors
printf '%-8s %12s %10s %10s %8s %8s\n' strata "$(bench_round "$S_RPS" 0)" "$S_P50" "$S_P99" "$S_NON2XX" "$S_ERR"
printf '%-8s %12s %10s %10s %8s %8s\n' nginx "$(bench_round "$N_RPS" 0)" "$N_P50" "$N_P99" "$N_NON2XX" "$N_ERR"
printf 'strata/nginx: req/s ratio %s, p99 ratio %s\n' "$RATIO" "$P99_RATIO"
printf 'load (1 min): %s at start, %s at end%s\n\n' "$LOAD_START" "$LOAD_END" \
    "${BUSY_START:+; test runs (pytest / make test) were going on: the machine was busy}"

printf 'RESULT item_get strata_rps=%s strata_p99_ms=%s nginx_rps=%s nginx_p99_ms=%s ratio=%s p99_ratio=%s strata_non2xx=%s strata_socket_errors=%s strata_exit=%s item_bytes=%s duration=%s conns=%s serve_threads=%s load1_start=%s load1_end=%s cache=%s\n' \
    "$(bench_round "$S_RPS" 0)" "$S_P99" "$(bench_round "$N_RPS" 0)" "$N_P99" "$RATIO" "$P99_RATIO" \
    "$S_NON2XX" "$S_ERR" "$S_EXIT" "$ITEM_BYTES" "${DURATION:-10s}" "${CONNS:-64}" "$SERVE_THREADS" "$LOAD_START" "$LOAD_END" "$CACHE_MODE"

if [[ -s $BENCH_TMP/strata.log && $S_EXIT == 0 ]]; then
    bench_log "strata logged $(wc -l <"$BENCH_TMP/strata.log") lines at level warn; the last ones:"
    tail -n 5 "$BENCH_TMP/strata.log" >&2
fi
