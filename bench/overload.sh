#!/usr/bin/env bash
#
# bench/overload.sh — load shedding: cache misses offered at 3× what the
# database path sustains, while cache hits are read at the same time.
#
# What it measures, in four runs against one strata (default settings,
# embedded SQLite, response cache on):
#   1. capacity: the miss path's throughput — wrk (closed loop, CONNS
#      connections) reading list pages, each with a cache key no other
#      request uses (bench/overload_keys.lua): tag × category × limit
#      (20..100) × sort, real pages of the seeded items, so every request
#      is a miss that goes to a database worker and renders up to 100 items;
#   2. misses unloaded: bench/openloop.c offering distinct misses at
#      UNLOADED_FACTOR × capacity, an open loop (a fixed arrival rate);
#      their p99 is the reference;
#   3. overload: openloop offering distinct misses at 3 × capacity;
#   4. ROUNDS times in turn: wrk on one cached item (HIT_CONNS connections,
#      HIT_THREADS threads) alone, then the same wrk while openloop offers
#      the overload again.
# and checks the promise of docs/operations.md ("Load shedding"):
#   - p99 of the answered misses (200 or stale 200) under overload (run 3)
#     < 5 × its unloaded value; the p99 of the rounds under hits is printed
#     beside it, for what a hit load that takes every spare cycle does to
#     it (on a 2-core machine the load generators share the cores with
#     strata, and fills run only on cycles hits leave);
#   - every request of run 3 and of the rounds is answered 200, stale 200
#     or 503 (with Retry-After), none hangs (no answer within HANG_S), and
#     every 503 comes within the queue's deadline
#     (server.queue_timeout_ms) plus SLACK_MS;
#   - hits' throughput under overload ≥ 0.8 × hits alone: the medians of
#     the rounds, read alike, so the two differ only by the overload.
# Ratios are printed with PASS/FAIL; the overall verdict is the last line.
# The generator must really offer 3×: if it could not (one Python process
# tops out at a few thousand requests/s), the offered ratio says so and
# the verdict is FAIL (generator-limited), never a silent pass.
#
# Usage: bench/overload.sh            (from anywhere; needs build/strata)
#   DURATION=8      seconds of each measured run (default 8)
#   CONNS=16        wrk connections for the capacity run: enough to keep both
#                   loops busy; their deferred reads then form a standing list
#                   and, past the loops' 10 ms wait, about one in eight is shed
#                   (capacity counts only what was answered 200)
#   HIT_CONNS=16    wrk connections reading hits
#   HIT_THREADS=1   wrk threads reading hits (alone and under overload alike)
#   ROUNDS=3        hits alone / hits under overload, in turn, this many times (medians)
#   OPEN_CONNS=2000 keep-alive connections of the open-loop generator (more than
#                   server.queue_max + workers, or the generator, not strata, queues)
#   UNLOADED_FACTOR=0.3  the unloaded misses' rate, × capacity
#   HANG_S=10       an answer later than this is a hang
#   SLACK_MS=300    a 503's allowance past the deadline (timer and loop granularity)
#   QUEUE_TIMEOUT_MS=1000  strata's --queue-timeout-ms (the deadline checked)
#   STRATA_ARGS="…" more `strata serve` arguments (e.g. --queue-timeout-ms 500)
#   SERVE_THREADS=2 ITEMS=5000 STRATA=path BENCH_BUILD=1 BENCH_KEEP_TMP=1  as in bench/item_get.sh
#
# Output: a table on stdout, then
#   RESULT overload capacity_rps=… offered_ratio=… p99_ratio=… hits_ratio=… … verdict=PASS|FAIL
# Whole run: about (3 + 2 × ROUNDS) × (DURATION + 2) + setup seconds; bounded.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

ITEMS=${ITEMS:-5000}
SERVE_THREADS=${SERVE_THREADS:-2}
STRATA=${STRATA:-$REPO/build/strata}
DURATION=${DURATION:-8}
CONNS=${CONNS:-16}
HIT_CONNS=${HIT_CONNS:-16}
HIT_THREADS=${HIT_THREADS:-1}
ROUNDS=${ROUNDS:-3}
OPEN_CONNS=${OPEN_CONNS:-2000}
UNLOADED_FACTOR=${UNLOADED_FACTOR:-0.3}
HANG_S=${HANG_S:-10}
SLACK_MS=${SLACK_MS:-300}
QUEUE_TIMEOUT_MS=${QUEUE_TIMEOUT_MS:-1000}
read -r -a EXTRA_ARGS <<<"${STRATA_ARGS:-}"
BENCH_NAME=overload

bench_require wrk curl python3 cc

if [[ ${BENCH_BUILD:-0} == 1 ]]; then
    make -s -C "$REPO"
fi
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make\` in $REPO first (or BENCH_BUILD=1)"

bench_init
cc -O2 -o "$BENCH_TMP/openloop" "$BENCH_DIR/openloop.c" || bench_die "cannot build bench/openloop.c"

bench_log "seeding $ITEMS items into $BENCH_TMP/bench.db"
"$STRATA" seed --db "$BENCH_TMP/bench.db" --items "$ITEMS" >"$BENCH_TMP/seed.log" 2>&1 || {
    cat "$BENCH_TMP/seed.log" >&2
    bench_die "strata seed failed"
}

# The open loop's OPEN_CONNS connections stand for many readers but all come
# from 127.0.0.1: the per-client connection cap (server.max_connections_per_client,
# 256) would refuse most of them, so it is off here; every other setting is
# the default.
bench_strata_start strata --queue-timeout-ms "$QUEUE_TIMEOUT_MS" --max-connections-per-client 0 "${EXTRA_ARGS[@]}"
BASE="http://127.0.0.1:$STRATA_PORT/v1/main"

# The hit: the first item of the default list, read twice so it is cached.
curl -fsS "$BASE/content?limit=1" -o "$BENCH_TMP/list.json" || bench_die "GET $BASE/content?limit=1 failed"
ITEM_ID=$(grep -o '"id": *[0-9]*' "$BENCH_TMP/list.json" | head -n1 | grep -o '[0-9]*$' || true)
[[ -n $ITEM_ID ]] || bench_die "no item id in $(head -c 300 "$BENCH_TMP/list.json")"
HIT_URL="$BASE/content/$ITEM_ID"
curl -fsS -o /dev/null "$HIT_URL"
curl -fsS -o /dev/null -D - "$HIT_URL" | tr -d '\r' | grep -i '^cache-status:' | grep -qi 'hit' ||
    bench_die "GET $HIT_URL is not a cache hit the second time"

# wrk_run NAME URL CONNS [SCRIPT [THREADS]] — one closed-loop run of DURATION s; sets WRK_*.
wrk_run() {
    local out="$BENCH_TMP/wrk-$1.txt" script=()
    [[ -n ${4:-} ]] && script=(-s "$4")
    timeout $((DURATION + 30)) wrk -t"${5:-2}" -c"$3" -d"${DURATION}s" --latency "${script[@]}" "$2" >"$out" 2>&1 ||
        bench_die "wrk $1 failed: $(tail -n 3 "$out")"
    bench_check_alive "$STRATA_PID" strata "$STRATA_LOG"
    bench_wrk_parse "$out"
}

# openloop NAME RATE FIRST — the open-loop generator on the paths from line FIRST; its JSON in $BENCH_TMP/open-NAME.json.
openloop() {
    timeout $((DURATION + HANG_S + 30)) "$BENCH_TMP/openloop" --port "$STRATA_PORT" \
        --paths "$OVERLOAD_PATHS" --rate "$2" --duration "$DURATION" --timeout "$HANG_S" \
        --conns "$OPEN_CONNS" --first "$3" >"$BENCH_TMP/open-$1.json" 2>"$BENCH_TMP/open-$1.err" ||
        bench_die "openloop $1 failed: $(tail -n 3 "$BENCH_TMP/open-$1.err")"
    bench_check_alive "$STRATA_PID" strata "$STRATA_LOG"
}
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print("nan" if v is None else v)' "$@"; }

# Distinct list keys with real pages behind them: the seeded tags (from the
# newest items) and categories, every limit from 20 to 100, four sorts;
# shuffled (fixed seed) so consecutive requests do not read alike.
export OVERLOAD_PATHS=$BENCH_TMP/paths.txt
python3 - "$BASE" "$OVERLOAD_PATHS" <<'PY' || bench_die "cannot build the list of miss paths"
import itertools, json, random, sys, urllib.request
base, out = sys.argv[1], sys.argv[2]
get = lambda p: json.load(urllib.request.urlopen(base + p, timeout=10))
tags = sorted({t for item in get("/content?limit=100")["items"] for t in item["tags"]})
cats = sorted(c["slug"] for c in get("/categories")["categories"])
sorts = ["-published_at", "published_at", "-updated_at", "title"]
filters = [f"tag={t}" for t in tags] + [f"category={c}" for c in cats] + \
          [f"tag={t}&category={c}" for t, c in itertools.product(tags, cats)]
paths = [f"/v1/main/content?{f}&limit={l}&sort={s}" for f in filters for l in range(20, 101) for s in sorts]
random.Random(11).shuffle(paths)
open(out, "w").write("\n".join(paths) + "\n")
PY
PATH_COUNT=$(wc -l <"$OVERLOAD_PATHS")
bench_log "$PATH_COUNT distinct list keys"

# ---- 1. capacity of the miss path ---------------------------------------------------
bench_log "1/4 capacity: distinct misses, wrk -c$CONNS, ${DURATION}s"
wrk_run capacity "$BASE/content" "$CONNS" "$BENCH_DIR/overload_keys.lua"
# what was answered 200, per second (a shed answer is not capacity)
CAP_RPS=$(awk -v r="$WRK_RPS" -v n="$WRK_REQUESTS" -v x="$WRK_NON2XX" 'BEGIN { printf "%.0f\n", n ? r * (n - x) / n : 0 }')
CAP_P99=$WRK_P99_MS CAP_SHED=$WRK_NON2XX

# ---- 2. misses, unloaded (open loop) ------------------------------------------------------
LOW_RATE=$(awk -v c="$CAP_RPS" -v f="$UNLOADED_FACTOR" 'BEGIN { r = c * f; printf "%.0f\n", r < 1 ? 1 : r }')
bench_log "2/4 misses unloaded: $LOW_RATE/s open loop"
openloop low "$LOW_RATE" 0
# each overload run reads keys no run before it read (PATH_COUNT is enough for
# 1 + ROUNDS runs of DURATION s at 3 × capacity on this machine; warned if not)
SPAN=$((CAP_RPS * 3 * DURATION + 1000))
NEXT_KEY=$((LOW_RATE * DURATION + 1000))
(((1 + ROUNDS) * SPAN + NEXT_KEY > PATH_COUNT)) && bench_log "warning: $PATH_COUNT keys are too few: later overload runs read keys again"
LOW_P99=$(field "$BENCH_TMP/open-low.json" p99_ms)

# ---- 3. overload: 3 × capacity of misses ------------------------------------------------
HIGH_RATE=$((CAP_RPS * 3))
bench_log "3/4 overload: $HIGH_RATE misses/s open loop"
openloop high "$HIGH_RATE" "$NEXT_KEY"

# ---- 4. hits alone, then hits during the overload, ROUNDS times in turn --------------------
# In turn, so that the machine's own drift (a shared VM moves ±15 % from one
# run to the next) falls on both sides alike; the ratio is of the medians.
HITS_ALONE=() HITS_LOADED=()
for ((round = 1; round <= ROUNDS; round++)); do
    bench_log "4/4 round $round/$ROUNDS: hits alone, then $HIGH_RATE misses/s open loop + the same hits"
    wrk_run "hits-$round" "$HIT_URL" "$HIT_CONNS" "" "$HIT_THREADS"
    HITS_ALONE+=("$WRK_RPS")
    timeout $((DURATION + 30)) wrk -t"$HIT_THREADS" -c"$HIT_CONNS" -d"${DURATION}s" --latency "$HIT_URL" \
        >"$BENCH_TMP/wrk-hits-loaded-$round.txt" 2>&1 &
    WRK_PID=$!
    openloop "mixed-$round" "$HIGH_RATE" "$(((NEXT_KEY + round * SPAN) % PATH_COUNT))"
    wait "$WRK_PID" || bench_die "wrk (hits under overload) failed: $(tail -n 3 "$BENCH_TMP/wrk-hits-loaded-$round.txt")"
    bench_wrk_parse "$BENCH_TMP/wrk-hits-loaded-$round.txt"
    HITS_LOADED+=("$WRK_RPS")
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.0f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
HIT_RPS=$(median "${HITS_ALONE[@]}")
HIT_LOADED_RPS=$(median "${HITS_LOADED[@]}")

# open_fields RUN — one open-loop run's figures, in the order of the read below.
open_fields() {
    python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(*(("nan" if r[k] is None else r[k]) for k in
        ("requests", "offered_rps", "ok", "stale", "shed_503", "other", "hung", "unsent", "retry_after_missing",
         "p99_ms", "slowest_503_ms")))' "$BENCH_TMP/open-$1.json"
}
read -r REQUESTS OFFERED OK STALE SHED OTHER HUNG UNSENT NO_RETRY P99 SLOW503 < <(open_fields high)
# the rounds under hits together: counts summed, the largest p99 and slowest 503
read -r M_REQUESTS M_OK M_STALE M_SHED M_OTHER M_HUNG M_UNSENT M_NO_RETRY M_P99 M_SLOW503 < <(
    for ((round = 1; round <= ROUNDS; round++)); do open_fields "mixed-$round"; done |
        awk '{ for (i = 1; i <= 9; i++) if (i != 2) s[i] += $i; if ($10 > p) p = $10; if ($11 > w) w = $11 }
             END { print s[1], s[3], s[4], s[5], s[6], s[7], s[8], s[9], p, w }')

METRICS=$(curl -fsS "http://127.0.0.1:$STRATA_PORT/metrics" || true)
SHED_COUNTED=$(awk '/^strata_http_shed_total\{/ && /reason="(queue_full|deadline)"/ { n += $NF } END { print n + 0 }' <<<"$METRICS")
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" strata

# ---- verdicts ------------------------------------------------------------------------------
OFFERED_RATIO=$(bench_ratio "$OFFERED" "$CAP_RPS")
P99_RATIO=$(bench_ratio "$P99" "$LOW_P99")
M_P99_RATIO=$(bench_ratio "$M_P99" "$LOW_P99")
HITS_RATIO=$(bench_ratio "$HIT_LOADED_RPS" "$HIT_RPS")
V_OFFERED=$(bench_verdict_ge "$OFFERED_RATIO" 2.9)
V_P99=$([[ $P99_RATIO != nan ]] && awk -v r="$P99_RATIO" 'BEGIN { exit !(r < 5) }' && echo PASS || echo FAIL)
V_HITS=$(bench_verdict_ge "$HITS_RATIO" 0.8)
V_ANSWERED=$([[ $OTHER == 0 && $HUNG == 0 && $NO_RETRY == 0 && $M_OTHER == 0 && $M_HUNG == 0 && $M_NO_RETRY == 0 ]] &&
    echo PASS || echo FAIL)
SLOWEST_503=$(awk -v a="$SLOW503" -v b="$M_SLOW503" 'BEGIN { print (b > a ? b : a) }')
V_DEADLINE=$(bench_verdict_le "$SLOWEST_503" $((QUEUE_TIMEOUT_MS + SLACK_MS)))
[[ $SHED == 0 && $M_SHED == 0 ]] && V_DEADLINE=PASS
VERDICT=PASS
for v in "$V_OFFERED" "$V_P99" "$V_HITS" "$V_ANSWERED" "$V_DEADLINE"; do [[ $v == PASS ]] || VERDICT=FAIL; done

printf '\noverload: strata --threads %s %s, %s cores, runs of %ss; misses are list pages, a new key each\n' \
    "$SERVE_THREADS" "${EXTRA_ARGS[*]:-}" "$(nproc)" "$DURATION"
printf '  miss capacity (wrk -c%s, closed loop)   %8s req/s  p99 %s ms  (%s not 2xx)\n' "$CONNS" "$CAP_RPS" "$CAP_P99" "$CAP_SHED"
printf '  misses unloaded (open, %s/s)          p99 %s ms\n' "$LOW_RATE" "$LOW_P99"
printf '  misses offered (open, target %s/s)    %8s req/s  = %s × capacity  %s (≥ 2.9)\n' "$HIGH_RATE" "$OFFERED" "$OFFERED_RATIO" "$V_OFFERED"
printf '    overload alone, of %s: 200 %s, stale 200 %s, 503 %s, other %s, hung %s, unsent (generator) %s, 503 without Retry-After %s\n' \
    "$REQUESTS" "$OK" "$STALE" "$SHED" "$OTHER" "$HUNG" "$UNSENT" "$NO_RETRY"
printf '    with hits (rounds), of %s: 200 %s, stale 200 %s, 503 %s, other %s, hung %s, unsent (generator) %s, 503 without Retry-After %s\n' \
    "$M_REQUESTS" "$M_OK" "$M_STALE" "$M_SHED" "$M_OTHER" "$M_HUNG" "$M_UNSENT" "$M_NO_RETRY"
printf '    every request answered 200 / stale 200 / 503                                  %s\n' "$V_ANSWERED"
printf '    slowest 503 %s ms; deadline %s ms + %s ms slack                              %s\n' "$SLOWEST_503" "$QUEUE_TIMEOUT_MS" "$SLACK_MS" "$V_DEADLINE"
printf '    p99 of answered %s ms = %s × unloaded  (< 5)                                  %s\n' "$P99" "$P99_RATIO" "$V_P99"
printf '    p99 of answered while hits take every spare cycle (rounds, largest): %s ms = %s × unloaded\n' "$M_P99" "$M_P99_RATIO"
printf '    strata counted %s shed (strata_http_shed_total, queue_full + deadline)\n' "$SHED_COUNTED"
printf '  hits alone %s req/s; during the overload %s req/s = %s ×  (≥ 0.8; medians of %s rounds in turn)  %s\n' \
    "$HIT_RPS" "$HIT_LOADED_RPS" "$HITS_RATIO" "$ROUNDS" "$V_HITS"
printf '    hits alone, by round: %s; under overload: %s\n' "${HITS_ALONE[*]}" "${HITS_LOADED[*]}"
printf '  load (1 min): %s%s\n\n' "$(bench_load1)" "${BUSY_START:+; other test runs were going on}"

printf 'RESULT overload capacity_rps=%s offered_rps=%s offered_ratio=%s unloaded_p99_ms=%s p99_ms=%s p99_ratio=%s mixed_p99_ms=%s mixed_p99_ratio=%s ok=%s stale=%s shed_503=%s other=%s hung=%s unsent=%s slowest_503_ms=%s deadline_ms=%s hits_rps=%s hits_loaded_rps=%s hits_ratio=%s strata_exit=%s verdict=%s\n' \
    "$CAP_RPS" "$OFFERED" "$OFFERED_RATIO" "$LOW_P99" "$P99" "$P99_RATIO" "$M_P99" "$M_P99_RATIO" "$OK" "$STALE" "$SHED" "$OTHER" "$HUNG" \
    "$UNSENT" "$SLOWEST_503" "$QUEUE_TIMEOUT_MS" "$HIT_RPS" "$HIT_LOADED_RPS" "$HITS_RATIO" "$STRATA_EXIT" "$VERDICT"
[[ $VERDICT == PASS ]]
