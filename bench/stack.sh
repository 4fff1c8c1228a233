#!/usr/bin/env bash
#
# bench/stack.sh — stage 3 (issue 14), in one run, on loopback: what each
# tier of the stack answers at the same client count, and the capacity
# model's inputs (docs/capacity.md): strata's CPU µs per L1 hit, per L2 hit,
# per miss and per write, on PostgreSQL (the stack) and on SQLite (a plain
# single instance).
#
# The stack is started by scripts/stack.sh itself, with its own STACK_DIR
# (under this run's temp dir) and its own free ports, and taken down at the
# end even on failure (down --purge). Reads are of SPREAD published items of
# the same 2 KB of JSON (made through the API, as bench/l2.sh makes its
# spread items), requested in turn by a wrk Lua script (wrk thread k of T
# takes items k, k+T, …), so no two requests in flight share a key and no
# lookup is collapsed onto another's. Every run is wrk -t THREADS -c CONNS
# for BENCH_S seconds after a WARMUP.
#
# Requests/s, each printed with its ratio to (3):
#   (1) varnish_hit  through Varnish: a Varnish hit (checked: X-Varnish
#                    names two requests);
#   (2) nginx_hit    through nginx: round-robin over the three instances, an
#                    L1 hit on each;
#   (3) strata_hit   instance 1 directly: an L1 hit (the reference);
#   (4) miss_replica strata --cache false with db.replicas = the stack's
#                    replica: every request a database read, from the
#                    replica. Needs db.replicas (the replicas work of issue
#                    14): with a build that lacks it this row says so and is
#                    skipped. The replica's committed transactions are
#                    counted over the round, to show it served the reads;
#   (5) miss_primary strata --cache false, no replica: every request a read
#                    of the primary.
# CPU µs per request (the strata process's utime + stime from /proc over
# warm-up + run, divided by the requests wrk counted in both):
#   PostgreSQL: L1 hit (3), L2 hit (an extra instance with --cache-l1 false
#   on the stack's Redis and database: every read an L2 lookup), miss (5),
#   write (an extra instance, the stack's settings, rate limits off: wrk
#   POSTs a new 2 KB draft per request);
#   SQLite: the same four on a plain instance on a seeded SQLite file (its
#   L2 on a redis-server of its own, so the two backends' keys never meet).
# Also printed: Varnish's and nginx's own CPU µs per request in (1), (2).
# Per-address rate limits are off in this run (STRATA_LIMITS_CLIENT_RPS=0,
# and limits.write_rps for the writes): one wrk is one client address.
#
# The machine is shared and noisy: read the ratios, and rerun on a quiet
# machine before recording figures (docs/benchmarks.md, docs/capacity.md).
#
# Usage: bench/stack.sh   (needs build/strata, wrk, and what scripts/stack.sh needs)
#   BENCH_S=5 WARMUP=2s THREADS=2 CONNS=64 SPREAD=256 STRATA=path BENCH_KEEP_TMP=1
# Output: a table, then `RESULT stack …` with every figure.
# Whole run: 13 × (WARMUP + BENCH_S) + setup (≈ 2 min at the defaults).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_S=${BENCH_S:-5}
DURATION=${BENCH_S}s
SPREAD=${SPREAD:-256}
STRATA=${STRATA:-$REPO/build/strata}
BENCH_NAME=stack
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export DURATION

bench_require wrk curl python3 redis-server redis-cli nginx varnishd
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make\` first"

bench_init
STACK_DIR=$BENCH_TMP/stack
ports=()
while ((${#ports[@]} < 9)); do
    p=$(bench_free_port)
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
export STACK_DIR STRATA_BIN=$STRATA STACK_PG_PORT=${ports[0]} STACK_REPLICA_PORT=${ports[1]} \
    STACK_REDIS_PORT=${ports[2]} STACK_STRATA1_PORT=${ports[3]} STACK_STRATA2_PORT=${ports[4]} \
    STACK_STRATA3_PORT=${ports[5]} STACK_NGINX_PORT=${ports[6]} STACK_VARNISH_PORT=${ports[7]}
SQ_REDIS_PORT=${ports[8]}

# One wrk is one client address: the stack's per-address limit (100/s by
# default) would answer most of (2) with 429. The instances take their
# settings from the environment too.
export STRATA_LIMITS_CLIENT_RPS=0

stack_down() { "$REPO/scripts/stack.sh" down --purge >>"$BENCH_TMP/stack.log" 2>&1 || true; }
trap 'stack_down; bench_cleanup' EXIT

bench_log "scripts/stack.sh up (state in $STACK_DIR)"
t0=$SECONDS
"$REPO/scripts/stack.sh" up >"$BENCH_TMP/stack.log" 2>&1 || bench_die "scripts/stack.sh up failed: $(tail -n 5 "$BENCH_TMP/stack.log")"
UP_S=$((SECONDS - t0))
secret() { sed -n "s/^$1=//p" "$STACK_DIR/secrets"; }
PG_URL="postgresql://strata:$(secret pg_password)@127.0.0.1:$STACK_PG_PORT/strata"
REPLICA_URL="postgresql://strata:$(secret pg_password)@127.0.0.1:$STACK_REPLICA_PORT/strata"
TOKEN=$(secret editor_token)
S1_PID=$(cat "$STACK_DIR/run/strata1.pid")
NGINX_PID=$(cat "$STACK_DIR/run/nginx.pid")
VARNISH_PID=$(cat "$STACK_DIR/run/varnish.pid")
PRIMARY_PID=$(cat "$STACK_DIR/run/primary.pid")   # the postmaster: its backends are its children
REPLICA_PID=$(cat "$STACK_DIR/run/replica.pid")
HZ=$(getconf CLK_TCK)

# ---- the items -----------------------------------------------------------------

# make_items PORT TOKEN FILE — SPREAD published posts of one 2 KB body
# through the API of the strata on PORT; their ids, space-separated, in FILE.
ITEM_TEXT=""
for ((i = 1; ${#ITEM_TEXT} < 1700; i++)); do
    ITEM_TEXT+="Paragraph $i of the benchmark item: plain ASCII text, no escapes. "
done
ITEM_TEXT=${ITEM_TEXT:0:1700}
printf '%s' "$ITEM_TEXT" >"$BENCH_TMP/text.txt"
make_items() {
    bench_make_items "$1" "$2" "$SPREAD" "$BENCH_TMP/text.txt" bench-stack- "Stack bench item" >"$3" ||
        bench_die "creating the items failed"
}

# spread_lua IDS_FILE OUT — the wrk script reading those items in turn.
spread_lua() {
    local id ids paths=()
    read -r -a ids <"$1"
    for id in "${ids[@]}"; do paths+=("/v1/main/content/$id"); done
    bench_spread_lua "$2" "${paths[@]}"
}

# The write: every request a new draft of the items' size (POST, slug
# unique per run, thread and request).
cat >"$BENCH_TMP/write.lua" <<EOF
-- generated by bench/stack.sh: POST a new 2 KB draft per request
local started = 0
function setup(thread)
  thread:set("index", started)
  started = started + 1
end
local n = 0
local run = tostring(os.time()) .. tostring(math.random(100000))
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_WRITE_TOKEN")
wrk.headers["Content-Type"] = "application/json"
function request()
  n = n + 1
  local body = string.format('{"type":"post","slug":"w-%s-%s-%d","title":"bench write","body":"$ITEM_TEXT"}',
                             run, tostring(index), n)
  return wrk.format(nil, "/v1/main/content", nil, body)
end
EOF

bench_log "making $SPREAD items of 2 KB on PostgreSQL (through instance 1)"
make_items "$STACK_STRATA1_PORT" "$TOKEN" "$BENCH_TMP/pg_ids"
spread_lua "$BENCH_TMP/pg_ids" "$BENCH_TMP/pg_spread.lua"
FIRST_PG=$(cut -d' ' -f1 "$BENCH_TMP/pg_ids")
bench_fetch first "http://127.0.0.1:$STACK_STRATA1_PORT/v1/main/content/$FIRST_PG"
ITEM_BYTES=$F_BODY

# ---- measuring -----------------------------------------------------------------------

declare -A RPS P99 US REQUESTS
# per_request_us TICKS NAME — CPU clock ticks over round NAME's requests, in µs
per_request_us() {
    awk -v t="$1" -v hz="$HZ" -v n="${REQUESTS[$2]}" 'BEGIN { printf "%.1f", n ? t / hz * 1e6 / n : 0 }'
}
# round NAME URL CPU_PID LOG [WRK_ARG...] — wrk at URL (the Lua script
# given in WRK_ARGs picks the paths); RPS, P99 and, with CPU_PID, US (CPU
# µs per request of CPU_PID and its direct children over warm-up + run).
round() {
    local name=$1 url=$2 pid=$3 log=$4 t0 t1 n
    shift 4
    t0=$(bench_cpu_ticks "$pid" | cut -d' ' -f1)
    bench_wrk_args "$name" "$url" "$pid" "$log" "$@"
    t1=$(bench_cpu_ticks "$pid" | cut -d' ' -f1)
    n=$(awk '/requests in/ { s += $1 } END { print s + 0 }' "$BENCH_TMP/wrk-$name-warmup.txt" "$BENCH_TMP/wrk-$name.txt")
    RPS[$name]=$WRK_RPS P99[$name]=$WRK_P99_MS REQUESTS[$name]=$n
    US[$name]=$(per_request_us $((t1 - t0)) "$name")
    bench_log "$name: $WRK_RPS req/s, p99 $WRK_P99_MS ms, ${US[$name]} µs CPU/request (pid $pid)"
}

# cache_status PORT_URL — the Cache-Status of a second GET of the first item
cache_status() {
    curl -fsS -o /dev/null "$1" || bench_die "GET $1 failed"
    bench_fetch cs "$1"
    bench_header "$BENCH_TMP/cs.headers" cache-status
}

# (1) Varnish
V_URL="http://127.0.0.1:$STACK_VARNISH_PORT"
curl -fsS -o /dev/null "$V_URL/v1/main/content/$FIRST_PG"
bench_fetch vcheck "$V_URL/v1/main/content/$FIRST_PG"
[[ $(bench_header "$BENCH_TMP/vcheck.headers" x-varnish | wc -w) == 2 ]] ||
    bench_die "Varnish does not cache the item (X-Varnish: $(bench_header "$BENCH_TMP/vcheck.headers" x-varnish))"
round varnish_hit "$V_URL/" "$VARNISH_PID" "$STACK_DIR/logs/varnish.log" -s "$BENCH_TMP/pg_spread.lua"
# (2) nginx → three instances
round nginx_hit "http://127.0.0.1:$STACK_NGINX_PORT/" "$NGINX_PID" "$STACK_DIR/logs/nginx.log" -s "$BENCH_TMP/pg_spread.lua"
# (3) instance 1 directly: an L1 hit (PostgreSQL's L1 hit CPU)
S1_URL="http://127.0.0.1:$STACK_STRATA1_PORT"
cs=$(cache_status "$S1_URL/v1/main/content/$FIRST_PG")
[[ $cs == *hit* ]] || bench_die "instance 1 answers the item with cache-status '$cs', not a hit"
round strata_hit "$S1_URL/" "$S1_PID" "$STACK_DIR/logs/strata1.log" -s "$BENCH_TMP/pg_spread.lua"

# extra NAME FLAG... — one more strata on the stack's database; sets
# STRATA_PID, STRATA_PORT, STRATA_LOG (bench/lib.sh)
extra() {
    local name=$1
    shift
    BENCH_DB=$PG_URL bench_strata_start "$name" --redis "redis://127.0.0.1:$STACK_REDIS_PORT" "$@"
}

# replica_xacts — committed transactions of the replica's strata database
replica_xacts() {
    local q="SELECT xact_commit FROM pg_stat_database WHERE datname = 'strata'"
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$PG_BIN/psql" -X -A -t -h "$STACK_DIR/pg" -p "$STACK_REPLICA_PORT" -U postgres -d postgres -c "$q"
    else
        "$PG_BIN/psql" -X -A -t -h "$STACK_DIR/pg" -p "$STACK_REPLICA_PORT" -U postgres -d postgres -c "$q"
    fi
}

# (4) a miss from the replica, once this build has db.replicas
REPLICA_NOTE="" REPLICA_DB_US=-
# (the help captured whole: grep -q in a pipe would stop strata with
# SIGPIPE, and pipefail would read that as "no")
STRATA_HELP=$("$STRATA" --help 2>&1 || true)
if [[ $STRATA_HELP == *--db-replicas* ]]; then
    STRATA_DB_REPLICAS=$REPLICA_URL extra miss_replica --cache false
    x0=$(replica_xacts)
    r0=$(bench_cpu_ticks "$REPLICA_PID" | cut -d' ' -f1)
    round miss_replica "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/pg_spread.lua"
    r1=$(bench_cpu_ticks "$REPLICA_PID" | cut -d' ' -f1)
    x1=$(replica_xacts)
    REPLICA_DB_US=$(per_request_us $((r1 - r0)) miss_replica)
    REPLICA_NOTE="the replica: $((x1 - x0)) transactions, $REPLICA_DB_US µs CPU per miss"
    bench_log "(4) $REPLICA_NOTE"
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" miss_replica
else
    REPLICA_NOTE="not measured: $STRATA has no db.replicas (--db-replicas) yet"
    bench_log "(4) $REPLICA_NOTE"
fi
# (5) a miss from the primary
extra miss_primary --cache false
pg0=$(bench_cpu_ticks "$PRIMARY_PID" | cut -d' ' -f1)
round miss_primary "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/pg_spread.lua"
pg1=$(bench_cpu_ticks "$PRIMARY_PID" | cut -d' ' -f1)
PG_MISS_DB_US=$(per_request_us $((pg1 - pg0)) miss_primary)
bench_log "(5) the primary's own CPU: $PG_MISS_DB_US µs per miss"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" miss_primary
# PostgreSQL L2 hit: L1 off, the stack's Redis. Its memory per key is
# measured here too: every item is in it by now (the reads above filled it).
redis_info() { redis-cli -p "$STACK_REDIS_PORT" "$@" 2>/dev/null | tr -d '\r'; }
extra pg_l2 --cache-l1 false
cs=$(cache_status "http://127.0.0.1:$STRATA_PORT/v1/main/content/$FIRST_PG")
[[ $cs == *l2* ]] || bench_log "WARNING: with --cache-l1 false the item answers cache-status '$cs' (detail=l2 expected)"
round pg_l2 "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/pg_spread.lua"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" pg_l2
# A cached response is two keys, its value (…:v:…) and its metadata
# (…:m:…); a key's last part is the item id. Bytes per response: the memory
# used above Redis's own at startup over the values.
REDIS_KEYS=$(redis_info --scan --pattern 'strata:*:v:*' | wc -l)
REDIS_USED=$(redis_info info memory | awk -F: '/^used_memory:/ { u = $2 } /^used_memory_startup:/ { s = $2 } END { print u - s }')
REDIS_PER_RESPONSE=$(awk -v u="$REDIS_USED" -v k="$REDIS_KEYS" 'BEGIN { printf "%.0f", k ? u / k : 0 }')
REDIS_ITEM_BYTES=0
for key in $(redis_info --scan --pattern "strata:*:[vm]:*:$FIRST_PG"); do
    REDIS_ITEM_BYTES=$((REDIS_ITEM_BYTES + $(redis_info memory usage "$key")))
done
bench_log "Redis: $REDIS_KEYS cached responses in $REDIS_USED bytes ($REDIS_PER_RESPONSE per response); item $FIRST_PG: $REDIS_ITEM_BYTES bytes (MEMORY USAGE of its value and metadata)"
# PostgreSQL write: the stack's settings (Redis bus, Varnish purges), limits off
STRATA_DB_REPLICAS=$REPLICA_URL extra pg_write --cdn-purge-url "http://127.0.0.1:$STACK_VARNISH_PORT/" \
    --limits-write-rps 0
BENCH_WRITE_TOKEN=$TOKEN round pg_write "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" \
    -s "$BENCH_TMP/write.lua"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" pg_write

# ---- SQLite: a plain single instance ----------------------------------------------------
bench_log "SQLite: seeding $BENCH_TMP/bench.db, $SPREAD items of 2 KB"
BENCH_DB=$BENCH_TMP/bench.db
export BENCH_DB
{ "$STRATA" migrate --db "$BENCH_DB" && "$STRATA" seed --db "$BENCH_DB" --items 300; } >>"$BENCH_TMP/seed.log" 2>&1 ||
    bench_die "seeding SQLite failed: $(tail -n 3 "$BENCH_TMP/seed.log")"
SQ_TOKEN=$("$STRATA" token create --db "$BENCH_DB" --site main --role write --name bench 2>>"$BENCH_TMP/seed.log")
bench_strata_start sq_setup
make_items "$STRATA_PORT" "$SQ_TOKEN" "$BENCH_TMP/sq_ids"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" sq_setup
spread_lua "$BENCH_TMP/sq_ids" "$BENCH_TMP/sq_spread.lua"
FIRST_SQ=$(cut -d' ' -f1 "$BENCH_TMP/sq_ids")

redis-server --port "$SQ_REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$BENCH_TMP" \
    >"$BENCH_TMP/sq_redis.log" 2>&1 </dev/null &
bench_track_pid $! sq_redis
for ((i = 0; i < 100; i++)); do
    [[ $(redis-cli -p "$SQ_REDIS_PORT" ping 2>/dev/null) == PONG ]] && break
    sleep 0.1
done

bench_strata_start sq_hit
cs=$(cache_status "http://127.0.0.1:$STRATA_PORT/v1/main/content/$FIRST_SQ")
[[ $cs == *hit* ]] || bench_die "SQLite instance answers cache-status '$cs', not a hit"
round sq_hit "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/sq_spread.lua"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" sq_hit
bench_strata_start sq_l2 --redis "redis://127.0.0.1:$SQ_REDIS_PORT" --cache-l1 false
round sq_l2 "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/sq_spread.lua"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" sq_l2
bench_strata_start sq_miss --cache false
round sq_miss "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/sq_spread.lua"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" sq_miss
bench_strata_start sq_write --limits-write-rps 0
BENCH_WRITE_TOKEN=$SQ_TOKEN round sq_write "http://127.0.0.1:$STRATA_PORT/" "$STRATA_PID" "$STRATA_LOG" \
    -s "$BENCH_TMP/write.lua"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" sq_write

# ---- report ------------------------------------------------------------------------------
REF=${RPS[strata_hit]}
ratio() { [[ -n ${RPS[$1]:-} ]] && bench_ratio "${RPS[$1]}" "$REF" || echo -; }
row() { printf '  %-44s %10s req/s  p99 %7s ms  ×%-6s %s\n' "$1" "${RPS[$2]:--}" "${P99[$2]:--}" "$(ratio "$2")" "${3:-}"; }

printf '\nstack: %s cores, wrk -t%s -c%s, rounds of %ss after %s warm-up; %s items of %s bytes of JSON; stack up in %ss\n' \
    "$(nproc)" "${THREADS:-2}" "${CONNS:-64}" "$BENCH_S" "${WARMUP:-2s}" "$SPREAD" "$ITEM_BYTES" "$UP_S"
row "(1) Varnish hit" varnish_hit "varnishd ${US[varnish_hit]} µs/req"
row "(2) nginx → strata L1 hit (3 instances)" nginx_hit "nginx ${US[nginx_hit]} µs/req"
row "(3) strata direct L1 hit (reference)" strata_hit
row "(4) miss from the replica" miss_replica "${RPS[miss_replica]:+strata ${US[miss_replica]} µs/req; }$REPLICA_NOTE"
row "(5) miss from the primary" miss_primary "strata ${US[miss_primary]} µs/req; the primary $PG_MISS_DB_US µs/req"
printf '  Redis L2: %s responses in %s bytes above startup, %s bytes each; one 2 KB item %s bytes (MEMORY USAGE)\n' \
    "$REDIS_KEYS" "$REDIS_USED" "$REDIS_PER_RESPONSE" "$REDIS_ITEM_BYTES"
printf '  strata CPU µs per request      L1 hit   L2 hit     miss    write\n'
printf '    PostgreSQL (the stack)     %8s %8s %8s %8s   (writes %s req/s)\n' \
    "${US[strata_hit]}" "${US[pg_l2]}" "${US[miss_primary]}" "${US[pg_write]}" "${RPS[pg_write]}"
printf '    SQLite (one instance)      %8s %8s %8s %8s   (writes %s req/s)\n' \
    "${US[sq_hit]}" "${US[sq_l2]}" "${US[sq_miss]}" "${US[sq_write]}" "${RPS[sq_write]}"
printf '  load (1 min): %s — the machine is shared: figures are preliminary until rerun on a quiet one\n\n' "$(bench_load1)"
printf 'RESULT stack up_s=%s varnish_hit_rps=%s nginx_hit_rps=%s strata_hit_rps=%s miss_replica_rps=%s miss_primary_rps=%s ' \
    "$UP_S" "${RPS[varnish_hit]}" "${RPS[nginx_hit]}" "$REF" "${RPS[miss_replica]:--}" "${RPS[miss_primary]}"
printf 'varnish_ratio=%s nginx_ratio=%s miss_replica_ratio=%s miss_primary_ratio=%s ' \
    "$(ratio varnish_hit)" "$(ratio nginx_hit)" "$(ratio miss_replica)" "$(ratio miss_primary)"
printf 'varnish_us=%s nginx_us=%s pg_hit_us=%s pg_l2_us=%s pg_miss_us=%s pg_miss_replica_us=%s pg_write_us=%s pg_write_rps=%s ' \
    "${US[varnish_hit]}" "${US[nginx_hit]}" "${US[strata_hit]}" "${US[pg_l2]}" "${US[miss_primary]}" \
    "${US[miss_replica]:--}" "${US[pg_write]}" "${RPS[pg_write]}"
printf 'pg_miss_db_us=%s replica_miss_db_us=%s redis_responses=%s redis_bytes_per_response=%s redis_item_bytes=%s ' \
    "$PG_MISS_DB_US" "$REPLICA_DB_US" "$REDIS_KEYS" "$REDIS_PER_RESPONSE" "$REDIS_ITEM_BYTES"
printf 'sq_hit_us=%s sq_l2_us=%s sq_miss_us=%s sq_write_us=%s sq_write_rps=%s strata_exits=%s\n' \
    "${US[sq_hit]}" "${US[sq_l2]}" "${US[sq_miss]}" "${US[sq_write]}" "${RPS[sq_write]}" "$(IFS=,; echo "${STRATA_EXITS[*]}")"
