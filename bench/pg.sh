#!/usr/bin/env bash
#
# bench/pg.sh — strata on PostgreSQL (issue 12), against PostgreSQL itself
# and against strata on its embedded SQLite, in one run, on loopback.
#
# A throwaway cluster (tests/pg_cluster.sh: Debian's postgresql-15, fsync
# off — every figure here is a read) holds both pgbench's tables and a
# seeded strata database; a SQLite file holds the same seed.
#
#   (1) pgbench     `pgbench -S -M prepared -c CONNS -j 2 -T D`: one
#                   primary-key SELECT per transaction, prepared — what
#                   PostgreSQL itself answers on this machine;
#   (2) pg_miss     strata --cache false on PostgreSQL, wrk -c CONNS on
#                   GET /v1/main/content/{id} of a 2 KB item (made through
#                   the API, as bench/hot_path.sh makes its own): every
#                   request a database read (an item miss's one statement),
#                   JSON, response;
#   (3) sqlite_miss the same on SQLite;
#   (2b), (3b)      the same for the newest seeded post (about 14 KB of body),
#                   printed for information: there the bytes dominate;
#   (4) hits        strata with its cache on, an L1 hit of the same item,
#                   on PostgreSQL and on SQLite, ROUNDS interleaved rounds of
#                   HIT_DURATION each (the machine's speed drifts: many short
#                   rounds, in alternating order, compare them fairly)
#                   (the backend must not touch the hit path).
#
# Promises of issue 12, printed PASS/FAIL: (2) ≥ 0.3 × (1) (requests/s
# against pgbench's TPS at the same client count); the PostgreSQL-backed
# hit ≥ 0.95 × the SQLite-backed hit (medians of the rounds). Printed
# beside: server CPU µs per miss on each backend (strata's own, from
# /proc; and PostgreSQL's backends' for (2)).
#
# Usage: bench/pg.sh           (from anywhere; needs build/strata, wrk, postgresql-15)
#   DURATION=10s WARMUP=2s THREADS=2 CONNS=64 ROUNDS=8 HIT_DURATION=5s ITEMS=200 SERVE_THREADS=2
#   PGBENCH_SCALE=10   pgbench -i -s (1,000,000 rows)
#   STRATA=path  BENCH_KEEP_TMP=1
# Output: a table, then `RESULT pg …` with every figure and the verdicts.
# Whole run: about 5 × (WARMUP + DURATION) + 2 × ROUNDS × (WARMUP + HIT_DURATION)
# + setup (≈ 4 min).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

ITEMS=${ITEMS:-200}
ROUNDS=${ROUNDS:-8}
HIT_DURATION=${HIT_DURATION:-5s}
PGBENCH_SCALE=${PGBENCH_SCALE:-10}
STRATA=${STRATA:-$REPO/build/strata}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
BENCH_NAME=pg
SECONDS_OF() { echo "${1%s}"; }

bench_require wrk curl python3
[[ -x $PG_BIN/pgbench ]] || bench_die "$PG_BIN/pgbench not found (Debian package postgresql-15)"
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make\` first"

bench_init
PG_DIR=$(mktemp -d /tmp/strata-bench-pg.XXXXXX)
chmod 755 "$PG_DIR"
stop_cluster() { "$REPO/tests/pg_cluster.sh" stop "$PG_DIR" >/dev/null 2>&1 || true; }
trap 'stop_cluster; bench_cleanup' EXIT

bench_log "starting a PostgreSQL cluster in $PG_DIR"
PG_URL=$("$REPO/tests/pg_cluster.sh" start "$PG_DIR") || bench_die "tests/pg_cluster.sh start failed"
PG_PORT=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.urlsplit(sys.argv[1]).port)' "$PG_URL")

# postgres processes of this cluster only: the postmaster's children
pg_ticks() {
    local pm total=0 p f
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    for p in $pm $(pgrep -P "$pm" || true); do
        f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        read -r _ _ _ _ _ _ _ _ _ _ _ ut st _ <<<"$f"
        total=$((total + ut + st))
    done
    echo "$total"
}

bench_log "seeding $ITEMS items on PostgreSQL and on SQLite"
for db in "$PG_URL" "$BENCH_TMP/bench.db"; do
    "$STRATA" migrate --db "$db" >>"$BENCH_TMP/seed.log" 2>&1 &&
        "$STRATA" seed --db "$db" --items "$ITEMS" >>"$BENCH_TMP/seed.log" 2>&1 ||
        bench_die "seeding $(basename "$db") failed: $(tail -n 3 "$BENCH_TMP/seed.log")"
done
bench_log "pgbench -i -s $PGBENCH_SCALE"
"$PG_BIN/pgbench" -i -q -s "$PGBENCH_SCALE" "$PG_URL" >"$BENCH_TMP/pgbench-init.log" 2>&1 ||
    bench_die "pgbench -i failed: $(tail -n 3 "$BENCH_TMP/pgbench-init.log")"

# ---- (1) pgbench --------------------------------------------------------------------
C=${CONNS:-64}
D=$(SECONDS_OF "${DURATION:-10s}")
W=$(SECONDS_OF "${WARMUP:-2s}")
bench_log "(1) pgbench -S -M prepared -c $C -j 2 -T $D"
"$PG_BIN/pgbench" -S -M prepared -c "$C" -j 2 -T "$W" "$PG_URL" >/dev/null 2>&1 || true
timeout $((D + 30)) "$PG_BIN/pgbench" -S -M prepared -c "$C" -j 2 -T "$D" "$PG_URL" >"$BENCH_TMP/pgbench.txt" 2>&1 ||
    bench_die "pgbench failed: $(tail -n 3 "$BENCH_TMP/pgbench.txt")"
PGBENCH_TPS=$(awk '/^tps = / {print $3; exit}' "$BENCH_TMP/pgbench.txt")

# The item read: a post whose public JSON is ITEM_BYTES (2 KB, the item of
# bench/hot_path.sh and of the hit figures in docs/benchmarks.md), made
# through the API on each database; its id goes in ITEM_IDS[db].
# ARTICLE_ID: the newest seeded post (the seed is deterministic: the same
# item, about 14 KB of body, on both), for a second row: what a miss costs
# when the bytes themselves dominate.
declare -A ITEM_IDS
make_item() {
    local db=$1 token
    token=$("$STRATA" token create --db "$db" --site main --role write --name bench 2>>"$BENCH_TMP/seed.log") ||
        bench_die "token create failed on $db"
    BENCH_DB=$db bench_strata_start make_item
    BASE="http://127.0.0.1:$STRATA_PORT/v1/main"
    [[ -n ${ARTICLE_ID:-} ]] || ARTICLE_ID=$(curl -fsS "$BASE/content?limit=1" | grep -o '"id": *[0-9]*' |
        head -n1 | grep -o '[0-9]*$')
    TOKEN=$token bench_make_item "$ITEM_BYTES" "PostgreSQL bench item"
    local id=$BENCH_ITEM_ID
    ITEM_IDS[$db]=$id
    bench_log "item $id on $(basename "${db%%\?*}"): $(curl -fsS "$BASE/content/$id" | wc -c) bytes of JSON"
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" make_item
}
ITEM_BYTES=${ITEM_BYTES:-2048}
make_item "$PG_URL"
make_item "$BENCH_TMP/bench.db"

# miss NAME DB [ID] — strata --cache false on DB reading item ID (default
# the 2 KB item); sets MISS_RPS, MISS_P99, MISS_US, MISS_PG_US
miss() {
    BENCH_DB=$2 bench_strata_start "$1" --cache false
    local url="http://127.0.0.1:$STRATA_PORT/v1/main/content/${3:-${ITEM_IDS[$2]}}"
    curl -fsS -o /dev/null "$url" || bench_die "GET $url failed on $1"
    local s0 p0 s1 p1
    s0=$(bench_cpu_ticks "$STRATA_PID" | cut -d' ' -f1)
    p0=$(pg_ticks)
    bench_wrk "$1" "$url" "$STRATA_PID" "$STRATA_LOG"
    s1=$(bench_cpu_ticks "$STRATA_PID" | cut -d' ' -f1)
    p1=$(pg_ticks)
    local hz requests
    hz=$(getconf CLK_TCK)
    # wrk's warm-up and run both count in the CPU; estimate the warm-up's
    # requests at the run's rate
    requests=$(awk -v r="$WRK_RPS" -v d="$D" -v w="$W" 'BEGIN { printf "%.0f", r * (d + w) }')
    MISS_RPS=$WRK_RPS MISS_P99=$WRK_P99_MS
    MISS_US=$(awk -v t=$((s1 - s0)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    MISS_PG_US=$(awk -v t=$((p1 - p0)) -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" "$1"
}

bench_log "(2) strata --cache false on PostgreSQL"
miss pg_miss "$PG_URL"
PG_MISS_RPS=$MISS_RPS PG_MISS_P99=$MISS_P99 PG_MISS_US=$MISS_US PG_MISS_PG_US=$MISS_PG_US
bench_log "(3) strata --cache false on SQLite"
miss sqlite_miss "$BENCH_TMP/bench.db"
SQ_MISS_RPS=$MISS_RPS SQ_MISS_P99=$MISS_P99 SQ_MISS_US=$MISS_US
bench_log "(2b) and (3b): the same, reading the newest seeded post (item $ARTICLE_ID)"
miss pg_article "$PG_URL" "$ARTICLE_ID"
PG_ART_RPS=$MISS_RPS PG_ART_US=$MISS_US PG_ART_PG_US=$MISS_PG_US
miss sqlite_article "$BENCH_TMP/bench.db" "$ARTICLE_ID"
SQ_ART_RPS=$MISS_RPS SQ_ART_US=$MISS_US

# ---- (4) hits, interleaved ---------------------------------------------------------------
hit() {
    BENCH_DB=$2 bench_strata_start "$1"
    local url="http://127.0.0.1:$STRATA_PORT/v1/main/content/${ITEM_IDS[$2]}"
    curl -fsS -o /dev/null "$url" && curl -fsS -o /dev/null -D - "$url" | tr -d '\r' |
        grep -i '^cache-status:' | grep -qi hit || bench_die "$1: the item is not a cache hit"
    bench_wrk "$1" "$url" "$STRATA_PID" "$STRATA_LOG"
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" "$1"
}
PG_HITS=() SQ_HITS=()
# hit_round BACKEND ROUND — one HIT_DURATION run on BACKEND (sqlite or pg)
hit_round() {
    if [[ $1 == sqlite ]]; then
        DURATION=$HIT_DURATION hit "sqlite_hit_$2" "$BENCH_TMP/bench.db"
        SQ_HITS+=("$WRK_RPS")
    else
        DURATION=$HIT_DURATION hit "pg_hit_$2" "$PG_URL"
        PG_HITS+=("$WRK_RPS")
    fi
}
# The order alternates (SQLite first in odd rounds, PostgreSQL first in
# even ones), so a drift of the machine's speed within a round favours
# neither; each round's runs are HIT_DURATION long, so more rounds fit.
for ((r = 1; r <= ROUNDS; r++)); do
    order=(sqlite pg)
    ((r % 2)) || order=(pg sqlite)
    bench_log "(4) round $r/$ROUNDS: hits on ${order[0]}, then on ${order[1]}"
    hit_round "${order[0]}" "$r"
    hit_round "${order[1]}" "$r"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
PG_HIT=$(median "${PG_HITS[@]}")
SQ_HIT=$(median "${SQ_HITS[@]}")

MISS_RATIO=$(bench_ratio "$PG_MISS_RPS" "$PGBENCH_TPS")
HIT_RATIO=$(bench_ratio "$PG_HIT" "$SQ_HIT")
MISS_VERDICT=$(bench_verdict_ge "$MISS_RATIO" 0.3)
HIT_VERDICT=$(bench_verdict_ge "$HIT_RATIO" 0.95)

printf '\npg: %s cores, wrk -t%s -c%s, runs of %ss (hits: %s rounds of %s); PostgreSQL 15 on 127.0.0.1:%s (fsync off)\n' \
    "$(nproc)" "${THREADS:-2}" "$C" "$D" "$ROUNDS" "$HIT_DURATION" "$PG_PORT"
printf '  (1) pgbench -S -M prepared -c %s        %10s tps\n' "$C" "$PGBENCH_TPS"
printf '  (2) strata miss on PostgreSQL         %10s req/s  p99 %s ms  strata %s µs/req, postgres %s µs/req\n' \
    "$PG_MISS_RPS" "$PG_MISS_P99" "$PG_MISS_US" "$PG_MISS_PG_US"
printf '  (3) strata miss on SQLite             %10s req/s  p99 %s ms  strata %s µs/req\n' \
    "$SQ_MISS_RPS" "$SQ_MISS_P99" "$SQ_MISS_US"
printf '  (2b) a seeded post on PostgreSQL      %10s req/s  strata %s µs/req, postgres %s µs/req\n' \
    "$PG_ART_RPS" "$PG_ART_US" "$PG_ART_PG_US"
printf '  (3b) a seeded post on SQLite          %10s req/s  strata %s µs/req\n' "$SQ_ART_RPS" "$SQ_ART_US"
printf '  (4) hits: SQLite %s, PostgreSQL %s (rounds); medians %s / %s req/s\n' \
    "${SQ_HITS[*]}" "${PG_HITS[*]}" "$SQ_HIT" "$PG_HIT"
printf '  (2)/(1) = %s  (≥ 0.3)  %s\n' "$MISS_RATIO" "$MISS_VERDICT"
printf '  hit on PostgreSQL / hit on SQLite = %s  (≥ 0.95)  %s\n' "$HIT_RATIO" "$HIT_VERDICT"
printf '  load (1 min): %s\n\n' "$(cut -d' ' -f1 /proc/loadavg)"
printf 'RESULT pg pgbench_tps=%s pg_miss_rps=%s pg_miss_p99_ms=%s pg_miss_strata_us=%s pg_miss_postgres_us=%s ' \
    "$PGBENCH_TPS" "$PG_MISS_RPS" "$PG_MISS_P99" "$PG_MISS_US" "$PG_MISS_PG_US"
printf 'sqlite_miss_rps=%s sqlite_miss_strata_us=%s pg_hit_rps=%s sqlite_hit_rps=%s miss_ratio=%s hit_ratio=%s ' \
    "$SQ_MISS_RPS" "$SQ_MISS_US" "$PG_HIT" "$SQ_HIT" "$MISS_RATIO" "$HIT_RATIO"
printf 'pg_article_rps=%s sqlite_article_rps=%s ' "$PG_ART_RPS" "$SQ_ART_RPS"
printf 'miss_verdict=%s hit_verdict=%s strata_exits=%s\n' "$MISS_VERDICT" "$HIT_VERDICT" "$(IFS=,; echo "${STRATA_EXITS[*]}")"
