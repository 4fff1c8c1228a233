#!/usr/bin/env bash
#
# bench/search.sh — full-text search (issue 16) on 10,000 published
# articles, cold and cached, against a cold plain list page in the same run.
#
# Data: `strata seed --items ITEMS` (10,000 published articles of about
# 14 KB of body each, drawn from a small vocabulary: most words of a query
# are in nearly every article, the hard case for a search, which must
# rank among thousands of matches).
#
# Two strata on that database, at the default settings (log level info,
# object cache on) but for one: the COLD one runs with `--cache false`, so
# no response is cached and every request is a cold read — the search
# runs its statement and renders its snippets, the list page its statement
# (the object cache serves rows to both as it would after any miss); the
# CACHED one has the response cache on, its search pages read once before
# the run (each request a hit).
#
# Load: bench/openloop.c, an open loop at RATE requests/s (no coordinated
# omission: a slow answer shows as latency, never as a lower rate), for
# DURATION s per target, in this order:
#   1. list_cold     GET /v1/main/content?limit=20 on the cold strata
#   2. search_cold   the QUERIES below in turn, on the cold strata
#   3. search_cached the same on the cached strata
# p50 and p99 of each come from the generator. The bar of issue 16:
# search_cold p99 ÷ list_cold p99 ≤ 3 (printed PASS/FAIL).
#
# Queries (sort=relevance, limit 20, each with its snippets): single words,
# two words, a phrase, a prefix, OR, an exclusion — a mix whose words are
# in about 95 % of the articles (see the table printed at the start: each
# query's hits in the first page's tiers).
#
# Usage: bench/search.sh   (from anywhere; needs build/strata, curl, python3, cc)
#   ITEMS=10000 RATE=200 DURATION=15 OPEN_CONNS=64 SERVE_THREADS=2
#   STRATA_ARGS="…"  more `strata serve` arguments, for both
#   STRATA=path BENCH_BUILD=1 BENCH_KEEP_TMP=1
# Output: a table, then
#   RESULT search … list_cold_p99_ms=… search_cold_p99_ms=… search_cached_p99_ms=… ratio=… verdict=PASS|FAIL
# Whole run: seeding (~30 s) + 3 × DURATION + a few seconds; bounded.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

ITEMS=${ITEMS:-10000}
RATE=${RATE:-200}
DURATION=${DURATION:-15}
OPEN_CONNS=${OPEN_CONNS:-64}
HANG_S=${HANG_S:-10}
STRATA=${STRATA:-$REPO/build/strata}
BENCH_LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
read -r -a EXTRA_ARGS <<<"${STRATA_ARGS:-}"
BENCH_NAME=search
QUERIES=(budget coastal+budget %22next+decade%22 clim%2A flood+OR+storm rollout+-sport teachers
    %22broadband+rollout%22 pension+changes regional+OR+local courts council%2A -budget+climate
    research+grant %22rising+costs%22)

bench_require curl python3 cc
if [[ ${BENCH_BUILD:-0} == 1 ]]; then
    make -s -C "$REPO" build/strata
fi
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build/strata\` in $REPO first (or BENCH_BUILD=1)"
((DURATION <= 120)) || bench_die "DURATION must be at most 120 s (openloop's bound)"

bench_init
cc -O2 -o "$BENCH_TMP/openloop" "$BENCH_DIR/openloop.c" || bench_die "cannot build bench/openloop.c"

bench_log "seeding $ITEMS items into $BENCH_TMP/bench.db"
"$STRATA" seed --db "$BENCH_TMP/bench.db" --items "$ITEMS" >"$BENCH_TMP/seed.log" 2>&1 || {
    cat "$BENCH_TMP/seed.log" >&2
    bench_die "strata seed failed"
}

# Every connection of the open loop comes from 127.0.0.1: the per-client cap
# would refuse most of OPEN_CONNS; every other setting is the default.
bench_strata_start cold --cache false --max-connections-per-client 0 "${EXTRA_ARGS[@]}"
COLD_PID=$STRATA_PID COLD_LOG=$STRATA_LOG COLD_PORT=$STRATA_PORT
bench_strata_start cached --max-connections-per-client 0 "${EXTRA_ARGS[@]}"
CACHED_PID=$STRATA_PID CACHED_LOG=$STRATA_LOG CACHED_PORT=$STRATA_PORT

# Each query once on the cold strata: it must answer 200 with hits and
# snippets (a search that finds nothing would measure nothing); then twice
# on the cached one, the second a hit.
printf '%-28s %6s %s\n' query hits "first hit's snippet" >&2
for q in "${QUERIES[@]}"; do
    path="/v1/main/content?q=$q&limit=20"
    bench_fetch "q" "http://127.0.0.1:$COLD_PORT$path" || true
    [[ $F_STATUS == 200 ]] || bench_die "GET $path on the cold strata: $F_STATUS $(head -c 300 "$BENCH_TMP/q.body")"
    python3 - "$BENCH_TMP/q.body" "$q" <<'PY' || bench_die "GET $path found nothing"
import json, sys
page = json.load(open(sys.argv[1]))
if not page["items"] or "snippet" not in page["items"][0]:
    sys.exit(1)
print("%-28s %6d %s" % (sys.argv[2], len(page["items"]), page["items"][0]["snippet"][:70]), file=sys.stderr)
PY
    curl -fsS -o /dev/null "http://127.0.0.1:$CACHED_PORT$path"
    curl -fsS -o /dev/null -D - "http://127.0.0.1:$CACHED_PORT$path" | tr -d '\r' | grep -i '^cache-status:' |
        grep -qi hit || bench_die "GET $path on the cached strata is not a hit the second time"
done
if curl -fsS -o /dev/null -D - "http://127.0.0.1:$COLD_PORT/v1/main/content?limit=20" | tr -d '\r' |
    grep -i '^cache-status:' | grep -qiw hit; then
    bench_die "the cold strata answers cache hits"
fi

# paths FILE PATH... — the paths in turn, enough lines for the whole run.
paths() {
    local out=$1
    shift
    python3 - "$out" "$((RATE * DURATION + 100))" "$@" <<'PY'
import sys
out, n, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
open(out, "w").write("".join(paths[i % len(paths)] + "\n" for i in range(n)))
PY
}
SEARCH_PATHS=()
for q in "${QUERIES[@]}"; do SEARCH_PATHS+=("/v1/main/content?q=$q&limit=20"); done
paths "$BENCH_TMP/list.paths" "/v1/main/content?limit=20"
paths "$BENCH_TMP/search.paths" "${SEARCH_PATHS[@]}"

field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("nan" if v is None else v)' "$@"; }

# openloop NAME PORT PATHS PID LOG — one open-loop run; sets P50, P99 and
# OTHER (the answers that were not 200: shed, errors, hung, unsent).
openloop() {
    local out="$BENCH_TMP/open-$1.json"
    timeout $((DURATION + HANG_S + 30)) "$BENCH_TMP/openloop" --port "$2" --paths "$3" --rate "$RATE" \
        --duration "$DURATION" --timeout "$HANG_S" --conns "$OPEN_CONNS" >"$out" 2>"$BENCH_TMP/open-$1.err" ||
        bench_die "openloop $1 failed: $(tail -n 3 "$BENCH_TMP/open-$1.err")"
    bench_check_alive "$4" "$1" "$5"
    P50=$(field "$out" p50_ms) P99=$(field "$out" p99_ms)
    # a stale 200 (served while one refresh runs) is an answer too
    OTHER=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"] - d["ok"] - d["stale"])' "$out")
}

LOAD_BEFORE=$(bench_load1)
bench_log "load: $LOAD_BEFORE (1-min average); other test runs: $(bench_busy_others | wc -w)"
bench_log "1/3 list_cold: $RATE/s for ${DURATION}s"
openloop list_cold "$COLD_PORT" "$BENCH_TMP/list.paths" "$COLD_PID" "$COLD_LOG"
LIST_P50=$P50 LIST_P99=$P99 LIST_OTHER=$OTHER
bench_log "2/3 search_cold: $RATE/s for ${DURATION}s, ${#QUERIES[@]} queries in turn"
openloop search_cold "$COLD_PORT" "$BENCH_TMP/search.paths" "$COLD_PID" "$COLD_LOG"
COLD_P50=$P50 COLD_P99=$P99 COLD_OTHER=$OTHER
bench_log "3/3 search_cached: $RATE/s for ${DURATION}s"
openloop search_cached "$CACHED_PORT" "$BENCH_TMP/search.paths" "$CACHED_PID" "$CACHED_LOG"
HOT_P50=$P50 HOT_P99=$P99 HOT_OTHER=$OTHER
LOAD_AFTER=$(bench_load1)

RATIO=$(bench_ratio "$COLD_P99" "$LIST_P99")
RATIO_P50=$(bench_ratio "$COLD_P50" "$LIST_P50") # for information: the tails are the noisy part
VERDICT=$(bench_verdict_le "$RATIO" 3)
((LIST_OTHER + COLD_OTHER + HOT_OTHER == 0)) || VERDICT=FAIL

printf '\n%-14s %8s %10s %10s %8s\n' target rate/s p50_ms p99_ms not_200
printf '%-14s %8s %10s %10s %8s\n' list_cold "$RATE" "$LIST_P50" "$LIST_P99" "$LIST_OTHER"
printf '%-14s %8s %10s %10s %8s\n' search_cold "$RATE" "$COLD_P50" "$COLD_P99" "$COLD_OTHER"
printf '%-14s %8s %10s %10s %8s\n' search_cached "$RATE" "$HOT_P50" "$HOT_P99" "$HOT_OTHER"
printf '\nsearch_cold p99 / list_cold p99 = %s (bar <= 3): %s; p50 / p50 = %s\n' "$RATIO" "$VERDICT" "$RATIO_P50"
printf 'RESULT search items=%s rate=%s duration_s=%s list_cold_p50_ms=%s list_cold_p99_ms=%s search_cold_p50_ms=%s search_cold_p99_ms=%s search_cached_p50_ms=%s search_cached_p99_ms=%s ratio=%s ratio_p50=%s load_before=%s load_after=%s verdict=%s\n' \
    "$ITEMS" "$RATE" "$DURATION" "$LIST_P50" "$LIST_P99" "$COLD_P50" "$COLD_P99" "$HOT_P50" "$HOT_P99" "$RATIO" \
    "$RATIO_P50" "$LOAD_BEFORE" "$LOAD_AFTER" "$VERDICT"
bench_strata_stop "$CACHED_PID" "$CACHED_LOG" cached
bench_strata_stop "$COLD_PID" "$COLD_LOG" cold
[[ $VERDICT == PASS ]]
