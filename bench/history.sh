#!/usr/bin/env bash
#
# bench/history.sh — version history at 10,000 versions (issue 5), in one
# run, on loopback: what an editor's tool waits for.
#
# Data (bench/history_data.py build, through the API: real saves with
# If-Match, timed): item A, a ~20 KB article with 10 versions; item B, the
# same kind of article with VERSIONS (10,000) versions of one small edit
# each; item C, a ~50 KB article with 60 versions about ten edits apart.
#
# Measured (wrk --latency, WARMUP then DURATION each; strata started once):
#   list_a       GET …/A/versions?limit=10              first page, 10 versions
#   list_b       GET …/B/versions?limit=10              first page, 10,000 versions
#   list_b_deep  GET …/B/versions?limit=10&cursor=…     a page ~100 versions above version 1
# (pages of 10 in all three, so each answer holds as many versions as A has)
#   version_hit  GET …/B/versions/5000                  a rendered version, from the history cache
#   diff_hit     GET …/C/diff?from=1&to=60              a rendered 50 KB diff, from the history cache
#   autosave     POST …/B/autosave, If-Match the latest (wrk -t1 -c2: two tabs typing)
#   preview      GET /preview/{token} of B's latest version
# and, one request at a time (bench/history_data.py cold), what no cache
# answers: DIFF_SAMPLES diffs of C between version pairs never asked before
# (two ~50 KB texts, Myers + word refinement) and as many versions of B never
# read before (decoded through their skip-delta chain).
#
# Targets of issue 5, printed PASS/FAIL (the script exits 0 either way; it
# fails only when something breaks):
#   the three list pages within 1.5 × of each other (req/s), p99 ≤ 10 ms
#   each; and cold, B's deep pages within 1.5 × of its first pages (p50),
#   p99 ≤ 10 ms
#   diff of two 50 KB versions p99 ≤ 20 ms (the cold diffs: computed)
#   autosave p99 ≤ 10 ms          preview p99 ≤ 20 ms
#   bytes per version: reported (B's stored bytes ÷ its versions)
#
# Usage: bench/history.sh   (needs build/strata, wrk, python3, curl)
#   VERSIONS=10000  DIFF_SAMPLES=200  DURATION=5s  WARMUP=1s  THREADS=2  CONNS=16
#   SERVE_THREADS=2   STRATA=path   QUIET_LOAD=0.7 QUIET_WAIT=300   BENCH_KEEP_TMP=1
# Time: building B takes about VERSIONS × 4 ms (≈ 40 s), then 7 × (WARMUP +
# DURATION) and the cold requests (≈ 10 s): about 1.5 minutes.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_NAME=history
VERSIONS=${VERSIONS:-10000}
DIFF_SAMPLES=${DIFF_SAMPLES:-200}
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_WAIT=${QUIET_WAIT:-300}
STRATA=${STRATA:-$REPO/build/strata}
SITE=main

bench_require wrk curl python3
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build\` in $REPO first"
bench_init
cp "$STRATA" "$BENCH_TMP/strata"
STRATA_ID="$(sha256sum "$STRATA" | cut -c1-12), built $(date -u -r "$STRATA" +%Y-%m-%dT%H:%M:%SZ)"
STRATA="$BENCH_TMP/strata"
GIT_ID=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)

"$STRATA" seed --db "$BENCH_TMP/bench.db" --items 20 >"$BENCH_TMP/seed.log" 2>&1 ||
    bench_die "strata seed failed: $(cat "$BENCH_TMP/seed.log")"
TOKEN=$("$STRATA" token create --db "$BENCH_TMP/bench.db" --site "$SITE" --role write 2>"$BENCH_TMP/token.log") ||
    bench_die "strata token create failed: $(cat "$BENCH_TMP/token.log")"
AUTH="Authorization: Bearer $TOKEN"

bench_strata_start strata
BASE="http://127.0.0.1:$STRATA_PORT/v1/$SITE"

bench_log "building items A (10 versions), B ($VERSIONS versions) and C (60 × 50 KB) through the API"
BUILD_START=$SECONDS
python3 "$BENCH_DIR/history_data.py" build --port "$STRATA_PORT" --token "$TOKEN" --versions "$VERSIONS" \
    >"$BENCH_TMP/build.json" || bench_die "building the history data failed"
BUILD_S=$((SECONDS - BUILD_START))
json() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
A=$(json "$BENCH_TMP/build.json" a)
B=$(json "$BENCH_TMP/build.json" b)
C=$(json "$BENCH_TMP/build.json" c)
DEEP=$(json "$BENCH_TMP/build.json" deep_cursor)
bench_log "built in ${BUILD_S}s: $(cat "$BENCH_TMP/build.json")"

# The preview link and the autosave request (B's latest version).
PREVIEW=$(curl -sS --max-time 10 -X POST -H "$AUTH" -H 'Content-Type: application/json' \
    --data '{"ttl":3600}' "$BASE/content/$B/previews") || bench_die "creating a preview link failed"
PREVIEW_URL=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["url"])' "$PREVIEW") ||
    bench_die "no preview url in: $PREVIEW"
cat >"$BENCH_TMP/autosave.lua" <<EOF
wrk.method = "POST"
wrk.body = '{"title":"Typing in the autosave bench"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["If-Match"] = '"v$VERSIONS"'
EOF

bench_wait_quiet "$QUIET_LOAD" "$QUIET_WAIT"
LOAD_START=$(bench_load1)

declare -A RPS P50 P99
measure() { # NAME URL [WRK_ARG...]
    local name=$1 url=$2
    shift 2
    bench_wrk_args "$name" "$url" "$STRATA_PID" "$STRATA_LOG" "$@"
    RPS[$name]=$WRK_RPS P50[$name]=$WRK_P50_MS P99[$name]=$WRK_P99_MS
    [[ $WRK_NON2XX == 0 ]] || bench_die "$name: $WRK_NON2XX answers were not 2xx/3xx"
}
measure list_a "$BASE/content/$A/versions?limit=10" -H "$AUTH"
measure list_b "$BASE/content/$B/versions?limit=10" -H "$AUTH"
measure list_b_deep "$BASE/content/$B/versions?limit=10&cursor=$DEEP" -H "$AUTH"
measure version_hit "$BASE/content/$B/versions/$((VERSIONS / 2))" -H "$AUTH"
measure diff_hit "$BASE/content/$C/diff?from=1&to=60" -H "$AUTH"
measure preview "http://127.0.0.1:$STRATA_PORT$PREVIEW_URL"
THREADS=1 CONNS=2 measure autosave "$BASE/content/$B/autosave" -H "$AUTH" -s "$BENCH_TMP/autosave.lua"

bench_log "cold: $DIFF_SAMPLES diffs never asked before, $DIFF_SAMPLES versions never read before, one at a time"
python3 "$BENCH_DIR/history_data.py" cold --port "$STRATA_PORT" --token "$TOKEN" --item-b "$B" --item-c "$C" \
    --versions "$VERSIONS" --samples "$DIFF_SAMPLES" --deep-cursor "$DEEP" >"$BENCH_TMP/cold.json" ||
    bench_die "the cold requests failed"
LOAD_END=$(bench_load1)
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" strata

# ---- report ---------------------------------------------------------------------

DIFF_COLD_P99=$(json "$BENCH_TMP/cold.json" diff_cold_p99_ms)
COLD_FIRST_P50=$(json "$BENCH_TMP/cold.json" list_cold_first_p50_ms)
COLD_DEEP_P50=$(json "$BENCH_TMP/cold.json" list_cold_deep_p50_ms)
COLD_LIST_P99=$(printf '%s\n' "$(json "$BENCH_TMP/cold.json" list_cold_first_p99_ms)" \
    "$(json "$BENCH_TMP/cold.json" list_cold_deep_p99_ms)" | sort -g | tail -n1)
COLD_SPREAD=$(bench_ratio "$(printf '%s\n' "$COLD_FIRST_P50" "$COLD_DEEP_P50" | sort -g | tail -n1)" \
    "$(printf '%s\n' "$COLD_FIRST_P50" "$COLD_DEEP_P50" | sort -g | head -n1)")
MAX_LIST=$(printf '%s\n' "${RPS[list_a]}" "${RPS[list_b]}" "${RPS[list_b_deep]}" | sort -g | tail -n1)
MIN_LIST=$(printf '%s\n' "${RPS[list_a]}" "${RPS[list_b]}" "${RPS[list_b_deep]}" | sort -g | head -n1)
LIST_SPREAD=$(bench_ratio "$MAX_LIST" "$MIN_LIST")
MAX_LIST_P99=$(printf '%s\n' "${P99[list_a]}" "${P99[list_b]}" "${P99[list_b_deep]}" | sort -g | tail -n1)

printf '\nhistory: strata %s, tree %s; %s versions built in %ss; load %s at start, %s at end\n' \
    "$STRATA_ID" "$GIT_ID" "$VERSIONS" "$BUILD_S" "$LOAD_START" "$LOAD_END"
printf '%-12s %10s %9s %9s   %s\n' target req/s p50_ms p99_ms wrk
for t in list_a list_b list_b_deep version_hit diff_hit preview autosave; do
    conc="-t$THREADS -c$CONNS"
    [[ $t == autosave ]] && conc="-t1 -c2"
    printf '%-12s %10s %9s %9s   %s\n' "$t" "${RPS[$t]}" "${P50[$t]}" "${P99[$t]}" "$conc"
done
printf 'cold, one at a time: %s\n' "$(cat "$BENCH_TMP/cold.json")"
printf 'data: %s\n' "$(cat "$BENCH_TMP/build.json")"
printf 'targets of issue 5:\n'
V_SPREAD=$(bench_verdict_le "$LIST_SPREAD" 1.5)
V_LIST=$(bench_verdict_le "$MAX_LIST_P99" 10)
V_COLD_SPREAD=$(bench_verdict_le "$COLD_SPREAD" 1.5)
V_COLD_LIST=$(bench_verdict_le "$COLD_LIST_P99" 10)
V_DIFF=$(bench_verdict_le "$DIFF_COLD_P99" 20)
V_AUTOSAVE=$(bench_verdict_le "${P99[autosave]}" 10)
V_PREVIEW=$(bench_verdict_le "${P99[preview]}" 20)
printf '  list pages req/s max/min   %8s  target <= 1.5     %s\n' "$LIST_SPREAD" "$V_SPREAD"
printf '  list pages p99 (worst)     %8s  target <= 10 ms   %s\n' "$MAX_LIST_P99" "$V_LIST"
printf '  cold list deep/first p50   %8s  target <= 1.5     %s\n' "$COLD_SPREAD" "$V_COLD_SPREAD"
printf '  cold list pages p99        %8s  target <= 10 ms   %s\n' "$COLD_LIST_P99" "$V_COLD_LIST"
printf '  diff 50 KB, cold, p99      %8s  target <= 20 ms   %s\n' "$DIFF_COLD_P99" "$V_DIFF"
printf '  autosave p99               %8s  target <= 10 ms   %s\n' "${P99[autosave]}" "$V_AUTOSAVE"
printf '  preview p99                %8s  target <= 20 ms   %s\n' "${P99[preview]}" "$V_PREVIEW"
printf '  bytes per version (B)      %8s  (JSON %s bytes per version)\n' \
    "$(json "$BENCH_TMP/build.json" b_bytes_per_version)" "$(json "$BENCH_TMP/build.json" b_json_bytes_per_version)"
printf 'RESULT history list_spread=%s list_p99_ms=%s cold_list_spread=%s cold_list_p99_ms=%s diff_cold_p99_ms=%s autosave_p99_ms=%s preview_p99_ms=%s bytes_per_version=%s target_list_spread=%s target_list_p99=%s target_cold_list_spread=%s target_cold_list_p99=%s target_diff=%s target_autosave=%s target_preview=%s load_start=%s load_end=%s quiet=%s\n' \
    "$LIST_SPREAD" "$MAX_LIST_P99" "$COLD_SPREAD" "$COLD_LIST_P99" "$DIFF_COLD_P99" "${P99[autosave]}" "${P99[preview]}" \
    "$(json "$BENCH_TMP/build.json" b_bytes_per_version)" "$V_SPREAD" "$V_LIST" "$V_COLD_SPREAD" "$V_COLD_LIST" "$V_DIFF" "$V_AUTOSAVE" "$V_PREVIEW" \
    "$LOAD_START" "$LOAD_END" "$BENCH_QUIET"
