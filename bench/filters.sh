#!/usr/bin/env bash
#
# bench/filters.sh — filters on declared custom fields (issue 16) against a
# plain list page, cold (response cache off), in one run, on loopback, with
# wrk --latency.
#
# Data: `strata seed --items ITEMS` (10,000 by default: about 95 % of type
# post, 10 % of them featured, reading_minutes 1..43 from the body's size),
# then `strata fields index` declares post's `featured` (bool) and
# `reading_minutes` (number): their indexes are built on the seeded rows.
#
# Targets, each a page of 20 summaries, each measured alone after a warm-up
# against one `strata serve --cache false` (every request reads the
# database; the object cache serves the rows' texts, as it ships):
#   plain       GET /v1/main/content?limit=20             the reference
#   plain_type  GET …?type=post&limit=20
#   bool        GET …?type=post&fields.featured=true&limit=20
#   number      GET …?type=post&fields.reading_minutes=12&limit=20
#   range       GET …?type=post&fields.reading_minutes[gte]=40&limit=20
#               (matches ~3 % of posts: read from the field's index and
#               sorted, src/store/field_filters.c)
#   range_all   GET …?type=post&fields.reading_minutes[gte]=0&limit=20
#               (matches every post: a range's dearest case, every post
#               read from the index and sorted; shown, not part of the bar)
#
# Issue 16's bar, printed PASS/FAIL: each cold filtered query's p99 ≤ 3 ×
# the cold plain list page's p99 (bool, number and range; `target=` is
# PASS only when all are). Beside each: the server's CPU µs per request (user +
# system over the warm-up and the run, from /proc), less noisy than
# latency on a shared machine. PG=1 (or PG_URL=postgres://…) runs the same
# on a throwaway PostgreSQL cluster (tests/pg_cluster.sh) as well.
#
# Rate limits are off (--limits-*-rps 0: one wrk is one client address);
# everything else is strata's default configuration but the response
# cache (log level info: one access line per request).
#
# Usage: bench/filters.sh     (needs build/strata, wrk, curl, python3)
#   DURATION=10s WARMUP=2s THREADS=2 CONNS=16 SERVE_THREADS=2 ITEMS=10000
#   STRATA=path PG=1 PG_URL=… QUIET_LOAD=0.7 QUIET_WAIT=300 BENCH_KEEP_TMP=1
# Output: a table, then `RESULT filters …` with every figure and the verdict.
# Time: seeding (≈ 15 s per 10,000 items on SQLite) + 6 × (WARMUP +
# DURATION) per engine (≈ 1 min) + the quiet wait.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_NAME=filters
ITEMS=${ITEMS:-10000}
CONNS=${CONNS:-16}
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_WAIT=${QUIET_WAIT:-300}
STRATA=${STRATA:-$REPO/build/strata}
PG=${PG:-0}
[[ -z ${PG_URL:-} ]] || PG=1
NO_LIMITS=(--limits-client-rps 0 --limits-read-rps 0 --limits-write-rps 0 --limits-admin-rps 0)
BENCH_LOG_LEVEL=info
export BENCH_LOG_LEVEL CONNS

bench_require wrk curl python3
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build\` in $REPO first"

bench_init
PG_DIR=""
stop_cluster() { [[ -z $PG_DIR ]] || "$REPO/tests/pg_cluster.sh" stop "$PG_DIR" >/dev/null 2>&1 || true; }
trap 'stop_cluster; bench_cleanup' EXIT

# A private copy of the binary: build/strata may be rebuilt meanwhile.
cp "$STRATA" "$BENCH_TMP/strata"
STRATA_ID="$(sha256sum "$STRATA" | cut -c1-12), built $(date -u -r "$STRATA" +%Y-%m-%dT%H:%M:%SZ)"
STRATA="$BENCH_TMP/strata"
GIT_ID=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
bench_log "measuring strata $STRATA_ID, tree $GIT_ID"

declare -A QUERY=(
    [plain]="limit=20"
    [plain_type]="type=post&limit=20"
    [bool]="type=post&fields.featured=true&limit=20"
    [number]="type=post&fields.reading_minutes=12&limit=20"
    [range]="type=post&fields.reading_minutes%5Bgte%5D=40&limit=20"
    [range_all]="type=post&fields.reading_minutes%5Bgte%5D=0&limit=20"
)
KEYS=(plain plain_type bool number range range_all)

# ---- data -------------------------------------------------------------------------

# setup_db DB — seeds DB and declares the two fields.
setup_db() {
    local db=$1 started=$SECONDS
    "$STRATA" migrate --db "$db" >>"$BENCH_TMP/seed.log" 2>&1 &&
        "$STRATA" seed --db "$db" --items "$ITEMS" >>"$BENCH_TMP/seed.log" 2>&1 ||
        bench_die "seeding $db failed: $(tail -n 3 "$BENCH_TMP/seed.log")"
    local seeded=$SECONDS
    "$STRATA" fields index --db "$db" --type post --field featured --kind bool >>"$BENCH_TMP/seed.log" 2>&1 &&
        "$STRATA" fields index --db "$db" --type post --field reading_minutes --kind number \
            >>"$BENCH_TMP/seed.log" 2>&1 ||
        bench_die "declaring the fields on $db failed: $(tail -n 3 "$BENCH_TMP/seed.log")"
    bench_log "seeded $ITEMS items in $((seeded - started)) s; both fields indexed in $((SECONDS - seeded)) s"
}

# check_pages — every target answers 200 with a full page of 20.
check_pages() {
    local k n
    for k in "${KEYS[@]}"; do
        bench_fetch "page-$k" "http://127.0.0.1:$STRATA_PORT/v1/main/content?${QUERY[$k]}"
        [[ $F_STATUS == 200 ]] || bench_die "$k: GET answered $F_STATUS: $(head -c 300 "$BENCH_TMP/page-$k.body")"
        n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$BENCH_TMP/page-$k.body")
        [[ $n == 20 ]] || bench_die "$k: a page of $n items, not 20 (ITEMS=$ITEMS too few?)"
        BYTES[$k]=$F_BODY
    done
}

# ---- measuring ----------------------------------------------------------------------

declare -A RPS P50 P99 CPU_US NON2XX BYTES
TARGETS=()
# measure KEY URL PID LOG — bench_wrk plus the server's CPU per request
# over the warm-up and the run
measure() {
    local key=$1 url=$2 pid=$3 log=$4 before after warm_n n hz
    before=$(bench_cpu_ticks "$pid" | cut -d' ' -f1)
    bench_wrk "$key" "$url" "$pid" "$log"
    after=$(bench_cpu_ticks "$pid" | cut -d' ' -f1)
    warm_n=$(awk '/requests in/ {print $1}' "$BENCH_TMP/wrk-$key-warmup.txt")
    n=$((WRK_REQUESTS + warm_n))
    hz=$(getconf CLK_TCK)
    RPS[$key]=$WRK_RPS P50[$key]=$WRK_P50_MS P99[$key]=$WRK_P99_MS NON2XX[$key]=$((WRK_NON2XX + WRK_ERRORS))
    CPU_US[$key]=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')
    TARGETS+=("$key")
    bench_log "$key: $(bench_round "$WRK_RPS" 0) req/s, p99 $WRK_P99_MS ms, server CPU ${CPU_US[$key]} us/req"
}

# run_engine PREFIX DB — every target against one cold server on DB.
run_engine() {
    local prefix=$1 db=$2 k
    BENCH_DB=$db bench_strata_start "$prefix" --cache false "${NO_LIMITS[@]}"
    check_pages
    for k in "${KEYS[@]}"; do
        measure "$prefix$k" "http://127.0.0.1:$STRATA_PORT/v1/main/content?${QUERY[$k]}" "$STRATA_PID" "$STRATA_LOG"
        BYTES[$prefix$k]=${BYTES[$k]}
    done
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" "$prefix"
}

SQLITE_DB="$BENCH_TMP/bench.db"
bench_log "seeding $ITEMS items into $SQLITE_DB"
setup_db "$SQLITE_DB"
if [[ $PG == 1 ]]; then
    if [[ -z ${PG_URL:-} ]]; then
        PG_DIR=$(mktemp -d /tmp/strata-bench-filters-pg.XXXXXX)
        chmod 755 "$PG_DIR"
        bench_log "starting a PostgreSQL cluster in $PG_DIR"
        PG_URL=$("$REPO/tests/pg_cluster.sh" start "$PG_DIR") || bench_die "tests/pg_cluster.sh start failed"
    fi
    bench_log "seeding $ITEMS items on PostgreSQL"
    setup_db "$PG_URL"
fi

LOAD_BEFORE=$(bench_load1)
bench_wait_quiet "$QUIET_LOAD" "$QUIET_WAIT" 20
QUIET_NOTE="load $LOAD_BEFORE, waited ${BENCH_QUIET_WAITED}s, $([[ $BENCH_QUIET == 1 ]] && echo quiet || echo "NOT quiet (load $BENCH_QUIET_LOAD${BENCH_QUIET_BUSY:+, test runs $BENCH_QUIET_BUSY}): numbers are noisy")"
LOAD_START=$(bench_load1)
run_engine "" "$SQLITE_DB"
[[ $PG != 1 ]] || run_engine pg_ "$PG_URL"
LOAD_END=$(bench_load1)

# ---- report ---------------------------------------------------------------------------

printf '\nfilters: %s items, wrk -t%s -c%s -d%s --latency (warm-up %s), %s loop threads, --cache false, loopback, %s cores; strata %s, tree %s\n' \
    "$ITEMS" "${THREADS:-2}" "$CONNS" "${DURATION:-10s}" "${WARMUP:-2s}" "${SERVE_THREADS:-2}" "$(nproc)" "$STRATA_ID" "$GIT_ID"
printf 'machine: %s; load %s at start, %s at end\n' "$QUIET_NOTE" "$LOAD_START" "$LOAD_END"
printf '%-16s %9s %8s %8s %11s %8s %7s  %s\n' target req/s p50_ms p99_ms cpu_us/req bytes errors query
for k in "${TARGETS[@]}"; do
    base=${k#pg_}
    printf '%-16s %9s %8s %8s %11s %8s %7s  %s\n' "$k" "$(bench_round "${RPS[$k]}" 0)" "${P50[$k]}" "${P99[$k]}" \
        "${CPU_US[$k]}" "${BYTES[$k]}" "${NON2XX[$k]}" "${QUERY[$base]}"
done
RESULT="RESULT filters"
VERDICT=PASS
for prefix in "" $([[ $PG == 1 ]] && echo pg_); do
    for k in bool number range; do
        ratio=$(bench_ratio "${P99[$prefix$k]}" "${P99[${prefix}plain]}")
        cpu_ratio=$(bench_ratio "${CPU_US[$prefix$k]}" "${CPU_US[${prefix}plain]}")
        verdict=$(bench_verdict_le "$ratio" 3)
        [[ $verdict == PASS ]] || VERDICT=FAIL
        printf '  %s%s p99 / plain p99 = %s (target <= 3: %s); CPU per request %s x plain\n' "$prefix" "$k" "$ratio" \
            "$verdict" "$cpu_ratio"
        RESULT+=" ${prefix}${k}_p99_over_plain=$ratio ${prefix}${k}_cpu_over_plain=$cpu_ratio"
    done
done
for k in "${TARGETS[@]}"; do
    RESULT+=" ${k}_rps=$(bench_round "${RPS[$k]}" 0) ${k}_p99_ms=${P99[$k]} ${k}_cpu_us=${CPU_US[$k]}"
done
RESULT+=" target=$VERDICT errors=$(for k in "${TARGETS[@]}"; do echo "${NON2XX[$k]}"; done | paste -sd+ | bc)"
RESULT+=" quiet=$BENCH_QUIET load_start=$LOAD_START load_end=$LOAD_END items=$ITEMS conns=$CONNS duration=${DURATION:-10s}"
echo "$RESULT"
