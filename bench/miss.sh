#!/usr/bin/env bash
#
# bench/miss.sh — the miss path and the object cache (issue 15), in one
# run, on loopback, with wrk -t2 -c64 --latency.
#
# Targets (each measured alone after a warm-up; servers started and
# stopped around it):
#   (1) h2o_bare        bench/h2o_bare.c serving the 2 KB item's bytes from
#                       memory: the ceiling (as bench/hot_path.sh);
#   (2) item            strata --cache false, GET /v1/main/content/{id} of
#                       that item: every request a miss of the response
#                       cache, answered through the object cache (the row's
#                       stamp read, the text from memory, views written in);
#   (2') item_noobj     the same with --cache-objects false: one statement
#                       reads the row, rendered straight to JSON text;
#   (3) list            strata --cache false, GET /v1/main/content?limit=20
#                       (20 summaries): the page's stamps, texts from the
#                       object cache;
#   (3') list_noobj     the same with --cache-objects false;
#   (4) mix             strata as it ships (response cache on, object cache
#                       on), wrk with bench/miss_mix.lua: MIX_ITEMS published
#                       items read by Zipf rank (exponent ZIPF_S) — anonymous
#                       item reads, anonymous list pages, editors' item reads
#                       with a token (which the response cache does not
#                       serve) — and editors' saves (PUT, If-Match: *) at
#                       SAVE_PCT % of requests. Reports the object cache's hit
#                       ratio over the run (from /v1/cache/stats before and
#                       after), the response cache's, and the saves answered.
#   BASELINE=path       optionally (2) and (3) again with another strata
#                       binary (an older build: "before"), same flags but
#                       --cache-objects, which it may not know.
#   PG=1                (or PG_URL=postgres://…) also: (5) `pgbench -S -M
#                       prepared` on a throwaway cluster (tests/pg_cluster.sh,
#                       as bench/pg.sh) and (2), (2'), (3), (3') on it, with
#                       PostgreSQL's own CPU per request beside strata's.
#
# Issue 15's bar, printed PASS/FAIL: (2) ≥ 0.3 × (1) req/s on SQLite
# (0.174 before this issue). Printed beside, for every target: server CPU µs
# per request (user+system of the server's threads, from /proc, over the
# warm-up and the run) — less noisy than req/s on a shared machine.
#
# Rate limits are off in every strata run here (--limits-*-rps 0): one wrk
# is one client address; everything else is strata's default
# configuration (log level info: one access line per request).
#
# Usage: bench/miss.sh     (needs build/strata, wrk, curl, python3, cc, libh2o-evloop-dev)
#   DURATION=10s WARMUP=2s THREADS=2 CONNS=64 SERVE_THREADS=2
#   MIX_DURATION=20s MIX_ITEMS=200 ZIPF_S=1.0 SAVE_PCT=0.05 EDITOR_PCT=20 LIST_PCT=10
#   ITEMS=200 (seeded) ITEM_BYTES=2048 STRATA=path BASELINE=path PG=1 PG_URL=…
#   QUIET_LOAD=0.7 QUIET_WAIT=300   BENCH_KEEP_TMP=1
# Output: a table, then `RESULT miss …` with every figure and the verdict.
# Time: about 5 × (WARMUP + DURATION) + MIX_DURATION + setup (≈ 1 min 40 s),
# + 5 × (WARMUP + DURATION) + pgbench -i with PG=1, + the quiet wait.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_NAME=miss
ITEMS=${ITEMS:-200}
ITEM_BYTES=${ITEM_BYTES:-2048}
MIX_DURATION=${MIX_DURATION:-20s}
MIX_ITEMS=${MIX_ITEMS:-200}
ZIPF_S=${ZIPF_S:-1.0}
SAVE_PCT=${SAVE_PCT:-0.05}
EDITOR_PCT=${EDITOR_PCT:-20}
LIST_PCT=${LIST_PCT:-10}
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_WAIT=${QUIET_WAIT:-300}
STRATA=${STRATA:-$REPO/build/strata}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG=${PG:-0}
[[ -z ${PG_URL:-} ]] || PG=1
OUT_DIR="$REPO/build/bench"
H2O_BARE="$OUT_DIR/h2o_bare"
NO_LIMITS=(--limits-client-rps 0 --limits-read-rps 0 --limits-write-rps 0 --limits-admin-rps 0)
BENCH_LOG_LEVEL=info
export BENCH_LOG_LEVEL

bench_require wrk curl python3 cc pkg-config
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build\` in $REPO first"
pkg-config --exists libh2o-evloop || bench_die "libh2o-evloop not found: apt-get install -y libh2o-evloop-dev"
if [[ $PG == 1 && -z ${PG_URL:-} ]]; then
    [[ -x $PG_BIN/pgbench ]] || bench_die "$PG_BIN/pgbench not found (Debian package postgresql-15)"
fi

bench_init
PG_DIR=""
stop_cluster() { [[ -z $PG_DIR ]] || "$REPO/tests/pg_cluster.sh" stop "$PG_DIR" >/dev/null 2>&1 || true; }
trap 'stop_cluster; bench_cleanup' EXIT

# A private copy of the binaries: build/strata may be rebuilt meanwhile.
cp "$STRATA" "$BENCH_TMP/strata"
STRATA_ID="$(sha256sum "$STRATA" | cut -c1-12), built $(date -u -r "$STRATA" +%Y-%m-%dT%H:%M:%SZ)"
STRATA="$BENCH_TMP/strata"
if [[ -n ${BASELINE:-} ]]; then
    [[ -x $BASELINE ]] || bench_die "BASELINE=$BASELINE is not an executable"
    cp "$BASELINE" "$BENCH_TMP/strata-baseline"
    BASELINE="$BENCH_TMP/strata-baseline"
fi
GIT_ID=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
bench_log "measuring strata $STRATA_ID, tree $GIT_ID"
bench_build_h2o_bare "$H2O_BARE"

# ---- data -------------------------------------------------------------------------

# setup_db DB — seeds DB, makes the 2 KB item and tokens; sets ITEM_ID[DB],
# WRITE_TOKEN[DB], ADMIN_TOKEN[DB], MIX_IDS[DB] (published ids, newest first).
declare -A ITEM_ID WRITE_TOKEN ADMIN_TOKEN MIX_IDS
setup_db() {
    local db=$1
    "$STRATA" migrate --db "$db" >>"$BENCH_TMP/seed.log" 2>&1 &&
        "$STRATA" seed --db "$db" --items "$ITEMS" >>"$BENCH_TMP/seed.log" 2>&1 ||
        bench_die "seeding $db failed: $(tail -n 3 "$BENCH_TMP/seed.log")"
    WRITE_TOKEN[$db]=$("$STRATA" token create --db "$db" --site main --role write --name bench 2>>"$BENCH_TMP/seed.log")
    ADMIN_TOKEN[$db]=$("$STRATA" token create --db "$db" --site main --role admin --name bench 2>>"$BENCH_TMP/seed.log")
    BENCH_DB=$db bench_strata_start setup "${NO_LIMITS[@]}"
    BASE="http://127.0.0.1:$STRATA_PORT/v1/main"
    TOKEN=${WRITE_TOKEN[$db]} bench_make_item "$ITEM_BYTES" "Miss bench item"
    ITEM_ID[$db]=$BENCH_ITEM_ID
    MIX_IDS[$db]=$(python3 - "$BASE" "$MIX_ITEMS" <<'EOF'
import json, sys, urllib.request
base, want = sys.argv[1], int(sys.argv[2])
ids, cursor = [], None
while len(ids) < want:
    url = base + "/content?limit=100" + ("&cursor=" + cursor if cursor else "")
    page = json.load(urllib.request.urlopen(url, timeout=10))
    ids += [i["id"] for i in page["items"]]
    cursor = page["next_cursor"]
    if not cursor:
        break
print(" ".join(str(i) for i in ids[:want]))
EOF
    )
    local n
    n=$(wc -w <<<"${MIX_IDS[$db]}")
    ((n >= 20)) || bench_die "only $n published items on $db: a list page of 20 needs more (ITEMS=$ITEMS)"
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" setup
}

SQLITE_DB="$BENCH_TMP/bench.db"
bench_log "seeding $ITEMS items into $SQLITE_DB"
setup_db "$SQLITE_DB"
if [[ $PG == 1 ]]; then
    if [[ -z ${PG_URL:-} ]]; then
        PG_DIR=$(mktemp -d /tmp/strata-bench-miss-pg.XXXXXX)
        chmod 755 "$PG_DIR"
        bench_log "starting a PostgreSQL cluster in $PG_DIR"
        PG_URL=$("$REPO/tests/pg_cluster.sh" start "$PG_DIR") || bench_die "tests/pg_cluster.sh start failed"
    fi
    bench_log "seeding $ITEMS items on PostgreSQL; pgbench -i -s ${PGBENCH_SCALE:-10}"
    setup_db "$PG_URL"
    "$PG_BIN/pgbench" -i -q -s "${PGBENCH_SCALE:-10}" "$PG_URL" >"$BENCH_TMP/pgbench-init.log" 2>&1 ||
        bench_die "pgbench -i failed: $(tail -n 3 "$BENCH_TMP/pgbench-init.log")"
fi

# The reference bytes: the item as strata sends it.
BENCH_DB=$SQLITE_DB bench_strata_start bytes "${NO_LIMITS[@]}"
mkdir -p "$BENCH_TMP/www"
bench_fetch item "http://127.0.0.1:$STRATA_PORT/v1/main/content/${ITEM_ID[$SQLITE_DB]}"
[[ $F_STATUS == 200 ]] || bench_die "GET the bench item: $F_STATUS"
cp "$BENCH_TMP/item.body" "$BENCH_TMP/www/item.json"
ITEM_SIZE=$F_BODY
bench_fetch list "http://127.0.0.1:$STRATA_PORT/v1/main/content?limit=20"
LIST_SIZE=$F_BODY
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" bytes
bench_log "item ${ITEM_ID[$SQLITE_DB]}: $ITEM_SIZE bytes; list page of 20: $LIST_SIZE bytes"

# ---- measuring ----------------------------------------------------------------------

# pg_ticks — CPU ticks of the PostgreSQL cluster's processes (0 without
# one): the postmaster's and its live children's own, plus what its
# children that have exited used (its cutime and cstime: pgbench's
# backends are gone when the run ends, strata's are not)
pg_ticks() {
    local pm total=0 p f
    [[ -n $PG_DIR && -f $PG_DIR/data/postmaster.pid ]] || {
        echo 0
        return
    }
    pm=$(head -n 1 "$PG_DIR/data/postmaster.pid")
    for p in $pm $(pgrep -P "$pm" || true); do
        f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        read -r _ _ _ _ _ _ _ _ _ _ _ ut st cut cst _ <<<"$f"
        total=$((total + ut + st))
        [[ $p != "$pm" ]] || total=$((total + cut + cst))
    done
    echo "$total"
}

declare -A RPS P50 P99 CPU_US PG_US NON2XX
TARGETS=()
# measure KEY URL PID LOG [WRK_ARG...] — bench_wrk_args plus the server's
# (and PostgreSQL's) CPU per request over the warm-up and the run
measure() {
    local key=$1 url=$2 pid=$3 log=$4 before after pb pa warm_n n hz
    shift 4
    before=$(bench_cpu_ticks "$pid" | cut -d' ' -f1)
    pb=$(pg_ticks)
    bench_wrk_args "$key" "$url" "$pid" "$log" "$@"
    after=$(bench_cpu_ticks "$pid" | cut -d' ' -f1)
    pa=$(pg_ticks)
    warm_n=$(awk '/requests in/ {print $1}' "$BENCH_TMP/wrk-$key-warmup.txt")
    n=$((WRK_REQUESTS + warm_n))
    hz=$(getconf CLK_TCK)
    RPS[$key]=$WRK_RPS P50[$key]=$WRK_P50_MS P99[$key]=$WRK_P99_MS NON2XX[$key]=$((WRK_NON2XX + WRK_ERRORS))
    CPU_US[$key]=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')
    PG_US[$key]=$(awk -v t=$((pa - pb)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')
    TARGETS+=("$key")
    bench_log "$key: $(bench_round "$WRK_RPS" 0) req/s, p99 $WRK_P99_MS ms, server CPU ${CPU_US[$key]} us/req, PostgreSQL ${PG_US[$key]} us/req"
}

# strata_target KEY DB PATH [FLAG...] — strata --cache false on DB, PATH measured
strata_target() {
    local key=$1 db=$2 path=$3
    shift 3
    BENCH_DB=$db bench_strata_start "$key" --cache false "${NO_LIMITS[@]}" "$@"
    local url="http://127.0.0.1:$STRATA_PORT$path"
    bench_fetch "$key" "$url"
    [[ $F_STATUS == 200 ]] || bench_die "$key: GET $path answered $F_STATUS"
    [[ $(bench_header "$BENCH_TMP/$key.headers" cache-status) != *hit* ]] || bench_die "$key: --cache false answered a hit"
    measure "$key" "$url" "$STRATA_PID" "$STRATA_LOG"
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" "$key"
}

# the same set on one database; keys prefixed by PREFIX
miss_targets() {
    local prefix=$1 db=$2 item="/v1/main/content/${ITEM_ID[$2]}"
    strata_target "${prefix}item" "$db" "$item"
    cmp -s "$BENCH_TMP/${prefix}item.body" "$BENCH_TMP/www/item.json" || [[ $db != "$SQLITE_DB" ]] ||
        bench_die "the uncached item is not the bytes h2o_bare serves"
    strata_target "${prefix}item_noobj" "$db" "$item" --cache-objects false
    cmp -s "$BENCH_TMP/${prefix}item_noobj.body" "$BENCH_TMP/${prefix}item.body" ||
        bench_die "the item differs with and without the object cache"
    strata_target "${prefix}list" "$db" "/v1/main/content?limit=20"
    strata_target "${prefix}list_noobj" "$db" "/v1/main/content?limit=20" --cache-objects false
    cmp -s "$BENCH_TMP/${prefix}list_noobj.body" "$BENCH_TMP/${prefix}list.body" ||
        bench_die "the list page differs with and without the object cache"
}

# the Zipf mix: a wrk script over the ids, then the cache figures around it
objects_figures() { # PORT TOKEN → "hits misses evictions entries bytes l1_hits l1_misses"
    curl -fsS -H "Authorization: Bearer $2" "http://127.0.0.1:$1/v1/cache/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin); o = s.get("objects", {}); l1 = s.get("all_sites", {})
print(o.get("hits", 0), o.get("misses", 0), o.get("evictions", 0), o.get("entries", 0), o.get("bytes", 0),
      l1.get("hits", 0) + l1.get("stale_hits", 0), l1.get("misses", 0))'
}

mix_target() {
    local db=$1 lua="$BENCH_TMP/mix.lua" before after
    {
        printf -- '-- generated by bench/miss.sh\nlocal ids = {%s}\n' "$(tr ' ' ',' <<<"${MIX_IDS[$db]}")"
        printf 'local zipf_s, save_pct, editor_pct, list_pct = %s, %s, %s, %s\n' "$ZIPF_S" "$SAVE_PCT" "$EDITOR_PCT" "$LIST_PCT"
        printf 'local token = "%s"\n' "${WRITE_TOKEN[$db]}"
        cat "$BENCH_DIR/miss_mix.lua"
    } >"$lua"
    BENCH_DB=$db bench_strata_start mix "${NO_LIMITS[@]}"
    read -r -a before < <(objects_figures "$STRATA_PORT" "${ADMIN_TOKEN[$db]}")
    DURATION=$MIX_DURATION measure mix "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" -s "$lua"
    read -r -a after < <(objects_figures "$STRATA_PORT" "${ADMIN_TOKEN[$db]}")
    SAVES=$(grep -o '^saves=[0-9]*' "$BENCH_TMP/wrk-mix.txt" | tail -n1 | cut -d= -f2 || echo "?")
    OBJ_HITS=$((after[0] - before[0])) OBJ_MISSES=$((after[1] - before[1])) OBJ_EVICTIONS=$((after[2] - before[2]))
    OBJ_ENTRIES=${after[3]} OBJ_BYTES=${after[4]}
    OBJ_RATIO=$(bench_ratio "$OBJ_HITS" $((OBJ_HITS + OBJ_MISSES)))
    L1_RATIO=$(bench_ratio $((after[5] - before[5])) $((after[5] - before[5] + after[6] - before[6])))
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" mix
}

LOAD_BEFORE=$(bench_load1)
bench_log "waiting (up to ${QUIET_WAIT}s) for load < $QUIET_LOAD and no pytest / make test"
bench_wait_quiet "$QUIET_LOAD" "$QUIET_WAIT" 20
QUIET_NOTE="load $LOAD_BEFORE, waited ${BENCH_QUIET_WAITED}s, $([[ $BENCH_QUIET == 1 ]] && echo quiet || echo "NOT quiet (load $BENCH_QUIET_LOAD${BENCH_QUIET_BUSY:+, test runs $BENCH_QUIET_BUSY}): numbers are noisy")"
bench_log "$QUIET_NOTE"
LOAD_START=$(bench_load1)

# (1) the ceiling
port=$(bench_free_port)
"$H2O_BARE" "$BENCH_TMP/www/item.json" "127.0.0.1:$port" "${SERVE_THREADS:-2}" >"$BENCH_TMP/h2o_bare.log" 2>&1 </dev/null &
hpid=$!
bench_track_pid "$hpid" h2o_bare
bench_wait_url "http://127.0.0.1:$port/item.json" 10 "$hpid"
measure h2o_bare "http://127.0.0.1:$port/item.json" "$hpid" "$BENCH_TMP/h2o_bare.log"
bench_stop_pid "$hpid" TERM
bench_untrack_pid "$hpid"

# (2), (2'), (3), (3') on SQLite; the baseline's; (4) the mix
miss_targets "" "$SQLITE_DB"
if [[ -n ${BASELINE:-} ]]; then
    SAVED_STRATA=$STRATA STRATA=$BASELINE
    strata_target base_item "$SQLITE_DB" "/v1/main/content/${ITEM_ID[$SQLITE_DB]}"
    strata_target base_list "$SQLITE_DB" "/v1/main/content?limit=20"
    STRATA=$SAVED_STRATA
fi
mix_target "$SQLITE_DB"

# (5) PostgreSQL
if [[ $PG == 1 ]]; then
    C=${CONNS:-64}
    bench_log "(5) pgbench -S -M prepared -c $C -j 2"
    "$PG_BIN/pgbench" -S -M prepared -c "$C" -j 2 -T "$(tr -d s <<<"${WARMUP:-2s}")" "$PG_URL" >/dev/null 2>&1 || true
    D=$(tr -d s <<<"${DURATION:-10s}")
    p0=$(pg_ticks)
    timeout $((D + 30)) "$PG_BIN/pgbench" -S -M prepared -c "$C" -j 2 -T "$D" \
        "$PG_URL" >"$BENCH_TMP/pgbench.txt" 2>&1 || bench_die "pgbench failed: $(tail -n 3 "$BENCH_TMP/pgbench.txt")"
    p1=$(pg_ticks)
    PGBENCH_TPS=$(awk '/^tps = / {print $3; exit}' "$BENCH_TMP/pgbench.txt")
    PGBENCH_TX=$(awk '/number of transactions actually processed/ {print $NF; exit}' "$BENCH_TMP/pgbench.txt")
    PGBENCH_US=$(awk -v t=$((p1 - p0)) -v hz="$(getconf CLK_TCK)" -v n="${PGBENCH_TX:-0}" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }')
    miss_targets pg_ "$PG_URL"
fi
LOAD_END=$(bench_load1)

# ---- report -------------------------------------------------------------------------

declare -A LABEL=(
    [h2o_bare]="(1) h2o_bare, the item from memory"
    [item]="(2) item miss, object cache"
    [item_noobj]="(2') item miss, no object cache"
    [list]="(3) list miss (20), object cache"
    [list_noobj]="(3') list miss (20), no object cache"
    [base_item]="(2) item miss, BASELINE binary"
    [base_list]="(3) list miss, BASELINE binary"
    [mix]="(4) Zipf mix, cache on"
    [pg_item]="(5) PG item miss, object cache"
    [pg_item_noobj]="(5) PG item miss, no object cache"
    [pg_list]="(5) PG list miss, object cache"
    [pg_list_noobj]="(5) PG list miss, no object cache"
)
printf '\nmiss: wrk -t%s -c%s -d%s --latency (warm-up %s), %s loop threads, loopback, %s cores; strata %s, tree %s\n' \
    "${THREADS:-2}" "${CONNS:-64}" "${DURATION:-10s}" "${WARMUP:-2s}" "${SERVE_THREADS:-2}" "$(nproc)" "$STRATA_ID" "$GIT_ID"
printf 'machine: %s; load %s at start, %s at end\n' "$QUIET_NOTE" "$LOAD_START" "$LOAD_END"
printf '%-38s %9s %8s %8s %11s %9s %7s\n' target req/s p50_ms p99_ms cpu_us/req pg_us/req errors
for k in "${TARGETS[@]}"; do
    printf '%-38s %9s %8s %8s %11s %9s %7s\n' "${LABEL[$k]}" "$(bench_round "${RPS[$k]}" 0)" "${P50[$k]}" "${P99[$k]}" \
        "${CPU_US[$k]}" "${PG_US[$k]}" "${NON2XX[$k]}"
done
ITEM_RATIO=$(bench_ratio "${RPS[item]}" "${RPS[h2o_bare]}")
VERDICT=$(bench_verdict_ge "$ITEM_RATIO" 0.3)
printf '  (2)/(1) req/s %s   target >= 0.3   %s   (issue 15; 0.174 before it)\n' "$ITEM_RATIO" "$VERDICT"
printf "  (2')/(1) %s; (3)/(3') req/s %s, CPU %s us vs %s us per list page\n" \
    "$(bench_ratio "${RPS[item_noobj]}" "${RPS[h2o_bare]}")" "$(bench_ratio "${RPS[list]}" "${RPS[list_noobj]}")" \
    "${CPU_US[list]}" "${CPU_US[list_noobj]}"
printf '  (4) %s items by Zipf rank (s=%s), %s%% saves (%s sent; non-2xx of the whole mix: %s), %s%% editor reads, %s%% lists:\n' \
    "$(wc -w <<<"${MIX_IDS[$SQLITE_DB]}")" "$ZIPF_S" "$SAVE_PCT" "$SAVES" "${NON2XX[mix]}" "$EDITOR_PCT" "$LIST_PCT"
printf '      object cache hit ratio %s (%s hits, %s misses, %s evictions; %s rows, %s bytes held); response cache %s\n' \
    "$OBJ_RATIO" "$OBJ_HITS" "$OBJ_MISSES" "$OBJ_EVICTIONS" "$OBJ_ENTRIES" "$OBJ_BYTES" "$L1_RATIO"
RESULT="RESULT miss item_over_h2o=$ITEM_RATIO target_item_h2o=$VERDICT"
for k in "${TARGETS[@]}"; do
    RESULT+=" ${k}_rps=$(bench_round "${RPS[$k]}" 0) ${k}_p99_ms=${P99[$k]} ${k}_cpu_us=${CPU_US[$k]}"
done
RESULT+=" mix_object_hit_ratio=$OBJ_RATIO mix_object_hits=$OBJ_HITS mix_object_misses=$OBJ_MISSES"
RESULT+=" mix_object_evictions=$OBJ_EVICTIONS mix_l1_hit_ratio=$L1_RATIO mix_saves=$SAVES mix_errors=${NON2XX[mix]}"
if [[ $PG == 1 ]]; then
    PG_RATIO=$(bench_ratio "${RPS[pg_item]}" "$PGBENCH_TPS")
    printf '  (5) pgbench -S -M prepared %s tps (%s us of PostgreSQL CPU per transaction); PG item miss / pgbench %s, no object cache %s\n' \
        "$(bench_round "$PGBENCH_TPS" 0)" "$PGBENCH_US" "$PG_RATIO" "$(bench_ratio "${RPS[pg_item_noobj]}" "$PGBENCH_TPS")"
    RESULT+=" pgbench_tps=$(bench_round "$PGBENCH_TPS" 0) pgbench_pg_us=$PGBENCH_US pg_item_over_pgbench=$PG_RATIO"
    for k in pg_item pg_item_noobj pg_list pg_list_noobj; do RESULT+=" ${k}_pg_us=${PG_US[$k]}"; done
fi
RESULT+=" errors=$(for k in "${TARGETS[@]}"; do echo "${NON2XX[$k]}"; done | paste -sd+ | bc) quiet=$BENCH_QUIET"
RESULT+=" load_start=$LOAD_START load_end=$LOAD_END item_bytes=$ITEM_SIZE list_bytes=$LIST_SIZE duration=${DURATION:-10s} conns=${CONNS:-64}"
echo "$RESULT"
