#!/usr/bin/env bash
#
# bench/l2.sh — the shared cache tier on Redis (issue 4): strata answering
# from L2 against redis-benchmark reading the same value from the same Redis,
# and the propagation lag of invalidations between two instances, in one run,
# on loopback.
#
# One redis-server is started by the bench (port chosen at random, no
# persistence, 127.0.0.1 only) and used by every target. The item is a
# published post whose public JSON is ITEM_BYTES (created through the API
# as in bench/hot_path.sh).
#
# Targets (each measured alone: strata is started for (2)+(2b), for (3) and
# for (4), and stopped after; redis-server runs throughout):
#   (1) redis_get  redis-benchmark -t get -c CONNS -P 1 --threads RB_THREADS,
#                  GET of a key holding a copy of the item's L2 value (the
#                  exact bytes, so the same size), after a warm-up; -n is
#                  chosen from the warm-up's rate so the run lasts DURATION;
#   (2) l2_hit     strata --redis … --cache-l1 false, GET /v1/main/content/{id}:
#                  every request misses the (disabled) L1 and is answered from
#                  Redis (an EVALSHA round trip on the event loop); checked
#                  before loading: Cache-Status contains `detail=l2`. NB:
#                  strata collapses concurrent misses of one key onto one
#                  lookup even with the L1 off, so with 64 connections on one
#                  URL most requests share another's lookup: the bench prints
#                  L2 lookups per request and the collapsed share (from
#                  /v1/cache/stats before and after) — hence (2b);
#   (2b) l2_spread the same strata, SPREAD items of the same size (created
#                  like the item) requested in turn by a wrk Lua script (wrk
#                  thread k of T takes items k, k+T, …): no two requests in
#                  flight share a key, so every request makes its own L2
#                  lookup (checked: lookups per request ≈ 1);
#   (3) l1_hit     strata --redis … (L1 on, the default), the URL of (2): an
#                  L1 hit, for information;
#   (4) lag        two strata instances A and B on one database and this
#                  Redis (L1 on): WRITES rounds of "save a seeded item's draft on A
#                  (PUT, If-Match), publish it on A", B reading the item
#                  between rounds so that B's L1 holds it; then B's
#                  GET /v1/cache/stats → bus.lag_ms (p50, p99, max, samples,
#                  histogram when the build has one): the time from A queueing
#                  an invalidation to B applying it (both clocks are this
#                  host's CLOCK_REALTIME). The client side is printed too: how
#                  long after A answered the publish B first served the new
#                  title (polling B as fast as one keep-alive connection can).
# (2), (2b) and (3) use wrk -t THREADS -c CONNS --latency after a WARMUP
# warm-up.
#
# Targets of issue 4, printed PASS/FAIL (the script exits 0 either way; it
# fails — exit 1 and `RESULT l2 FAILED …` — only when something breaks, e.g.
# (2) is not answered from L2 or a server dies under load):
#   (2b) ≥ 0.6 × (1) req/s         bus.lag_ms.p99 of (4) ≤ 5 ms
# (2b) is the issue's "L2-hit path": every request pays its own lookup. (2)
# is printed against the same threshold for information only: most of its
# requests share another's lookup, so it measures the collapsing as much as
# the L2.
#
# Before measuring it waits, up to QUIET_WAIT seconds (polling every 20 s),
# for a quiet machine: 1-minute load below QUIET_LOAD and no pytest or
# `make test` process. Before (4) it waits again (same bound) only for test
# runs to end: its own load from (1)–(3) keeps the load average up. It
# measures anyway when a wait runs out, and says so (quiet=0).
#
# Usage: bench/l2.sh     (from anywhere; needs build/strata with --redis and
#                         --cache-l1, redis-server, redis-benchmark, wrk, curl, python3)
#   DURATION=10s   measured run per target (wrk -d; redis-benchmark -n from it)
#   WARMUP=2s      warm-up per target        THREADS=2 CONNS=64   wrk -t / -c
#                  (CONNS is also redis-benchmark -c)
#   RB_THREADS=2   redis-benchmark --threads (0: single-threaded, without the flag)
#   WRITES=500     publish rounds of (4) (each a PUT and a publish on A)
#   LAG_MAX_S=30   (4) stops early after this many seconds of writing
#   LAG_TARGET_MS=5  L2_TARGET=0.6   the targets
#   SPREAD=256     items of (2b), ≥ 4 × CONNS (0: no (2b))
#   PARTS=all      `l2`: only (1)–(3); `lag`: only (4) (needs no --cache-l1)
#   QUIET_LOAD=0.7 QUIET_WAIT=600   the quiet-machine wait (QUIET_WAIT=0: no wait)
#   ITEM_BYTES=2048  target size of the item JSON     ITEMS=200  demo items seeded
#   SERVE_THREADS=2  strata --threads
#   STRATA=path  (default build/strata)    BENCH_BUILD=1  run `make -s build` first
#   BENCH_KEEP_TMP=1   keep the temp dir (logs, wrk and redis-benchmark outputs)
#
# Output: a table (req/s, p50, p99, CPU time per request of strata and of
# redis-server from /proc over warm-up + run, the hypervisor's steal %); for
# (2) and (2b) the L2 lookups per request and the share of collapsed
# requests (strata's /v1/cache/stats), and Redis's own time per GET and per
# EVALSHA (INFO commandstats); the lag figures; the ratios with PASS/FAIL;
# then one line
#   RESULT l2 redis_get_rps=… l2_hit_rps=… l1_hit_rps=… l2_over_redis=…
#     target_l2_redis=PASS|FAIL l2_spread_over_redis=… target_l2_spread_redis=…
#     l2_lookups_per_req=… l2_collapsed_pct=… lag_p50_ms=… lag_p99_ms=…
#     lag_max_ms=… lag_samples=… target_lag_p99=PASS|FAIL … quiet=… load_start=…
# (fields of a part not run are "-").
# Time: 4 × (WARMUP + DURATION) + the writes of (4) (a few seconds) + ~5 s
# of setup ≈ 55 s by default, plus the quiet-machine waits.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_NAME=l2
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_WAIT=${QUIET_WAIT:-600}
ITEMS=${ITEMS:-200}
ITEM_BYTES=${ITEM_BYTES:-2048}
SERVE_THREADS=${SERVE_THREADS:-2}
RB_THREADS=${RB_THREADS:-2}
WRITES=${WRITES:-500}
LAG_MAX_S=${LAG_MAX_S:-30}
LAG_TARGET_MS=${LAG_TARGET_MS:-5}
L2_TARGET=${L2_TARGET:-0.6}
PARTS=${PARTS:-all}
SPREAD=${SPREAD:-256}
STRATA=${STRATA:-$REPO/build/strata}
SITE=main
CONNS_N=${CONNS:-64}
RB_KEY='key:__rand_int__' # the key redis-benchmark's GET reads (without -r)
RB_THREADS_ARG=()
((RB_THREADS > 0)) && RB_THREADS_ARG=(--threads "$RB_THREADS")

case "$PARTS" in
all) DO_L2=1 DO_LAG=1 ;;
l2) DO_L2=1 DO_LAG=0 ;;
lag) DO_L2=0 DO_LAG=1 ;;
*) bench_die "PARTS must be all, l2 or lag (got '$PARTS')" ;;
esac

# redis-benchmark is in Debian's redis-tools (bench_require would name a
# package "redis-benchmark", which does not exist)
if ! command -v redis-benchmark >/dev/null 2>&1; then
    printf 'bench: missing: redis-benchmark\nbench: install with: apt-get install -y redis-tools\n' >&2
    exit 1
fi
bench_require wrk curl python3 redis-server redis-cli redis-benchmark

if [[ ${BENCH_BUILD:-0} == 1 ]]; then
    make -s -C "$REPO" build
fi
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build\` in $REPO first (or BENCH_BUILD=1)"
SERVE_HELP=$("$STRATA" serve --help 2>&1 || true)
grep -q -- '--redis ' <<<"$SERVE_HELP" ||
    bench_die "$STRATA has no --redis flag: this build has no Redis support"
if ((DO_L2)) && ! grep -q -- '--cache-l1 ' <<<"$SERVE_HELP"; then
    bench_die "$STRATA has no --cache-l1 flag: the L2 of issue 4 is not in this build (PARTS=lag measures only the lag)"
fi

# seconds DURATION — wrk's duration syntax (10, 10s, 2m, 1h) in whole seconds.
seconds() {
    local d=$1
    case "$d" in
    *h) echo $((${d%h} * 3600)) ;;
    *m) echo $((${d%m} * 60)) ;;
    *s) echo "${d%s}" ;;
    *) echo "$d" ;;
    esac
}
DURATION_S=$(seconds "${DURATION:-10s}")
WARMUP_S=$(seconds "${WARMUP:-2s}")
[[ $DURATION_S =~ ^[0-9]+$ && $DURATION_S -gt 0 && $WARMUP_S =~ ^[0-9]+$ ]] ||
    bench_die "DURATION and WARMUP must be whole seconds (10s, 2m …), got '${DURATION:-10s}' and '${WARMUP:-2s}'"

bench_init
SCRIPT_START=$SECONDS

# A private copy of the binary: other people may rebuild build/strata while
# this bench runs, and every target must measure the same program.
cp "$STRATA" "$BENCH_TMP/strata"
STRATA_SRC=$STRATA
STRATA="$BENCH_TMP/strata"
STRATA_ID="$(sha256sum "$STRATA" | cut -c1-12), built $(date -u -r "$STRATA_SRC" +%Y-%m-%dT%H:%M:%SZ)"
GIT_ID=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
bench_log "measuring $STRATA_SRC ($STRATA_ID), tree $GIT_ID"

# ---- helpers -------------------------------------------------------------------

# fail_result WHAT DETAIL — the machine-readable failure line, then exit 1.
fail_result() {
    printf 'RESULT l2 FAILED %s %s\n' "$1" "$2"
    bench_die "$1: $2"
}

# is_l2_hit CACHE_STATUS — an answer from L2: `detail=l2` as a whole
# parameter (not `detail=l2-stale-while-revalidate`, a stale L2 answer).
is_l2_hit() { [[ $1 == "strata; hit"* && $1 =~ detail=l2($|[[:space:]\;]) ]]; }
# is_l1_hit CACHE_STATUS — a fresh L1 hit: `strata; hit` (or detail=l1).
is_l1_hit() { [[ $1 == "strata; hit" || ($1 == "strata; hit"* && $1 =~ detail=l1($|[[:space:]\;])) ]]; }

# fetch_until NAME URL PREDICATE — bench_fetch until PREDICATE (a function) accepts
# the Cache-Status (the first request of a key may be the miss that fills
# it); at most 5 tries. Returns 1 (F_* and the files hold the last answer)
# if never.
fetch_until() {
    local i
    for ((i = 0; i < 5; i++)); do
        bench_fetch "$1" "$2"
        [[ $F_STATUS == 200 ]] || fail_result not_200 "GET $2 answered $F_STATUS: $(head -c 300 "$BENCH_TMP/$1.body")"
        "$3" "$(bench_header "$BENCH_TMP/$1.headers" cache-status)" && return 0
        sleep 0.2
    done
    return 1
}

# cpu_ticks PID — user+system clock ticks used so far by PID (all threads).
cpu_ticks() {
    local f
    f=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || {
        echo 0
        return 0
    }
    read -r _ _ _ _ _ _ _ _ _ _ _ ut st _ <<<"$f"
    echo $((ut + st))
}

# steal_pct BEFORE AFTER — steal share (%) between two machine_ticks.
steal_pct() {
    awk -v b="$1" -v a="$2" 'BEGIN { split(b, x, " "); split(a, y, " ")
        d = y[2] - x[2]; pct = 0; if (d > 0) pct = 100 * (y[1] - x[1]) / d; printf "%.1f\n", pct }'
}

# us_per_req TICKS REQUESTS — CPU microseconds per request.
us_per_req() {
    awk -v t="$1" -v n="$2" -v tk="$(getconf CLK_TCK)" 'BEGIN { if (n + 0 == 0) print "-"; else printf "%.2f\n", t / tk * 1e6 / n }'
}

# A small Redis client (RESP over a socket, python3's standard library):
# keys are binary, so redis-cli's line-oriented output is not relied on.
#   l2value PORT PATTERN HINT DEST — SCANs PATTERN; picks the key (the only
#       one, else the one whose value contains HINT, else the largest); copies
#       its value to DEST (unless DEST is "-"); prints "SIZE COUNT KEY_REPR"
#       ("0 0 -" if no key matches) and on stderr every key with its size.
#   strlen PORT DEST — prints STRLEN of DEST.
#   flushall PORT
REDIS_PY=$(
    cat <<'EOF'
import socket, sys

class Redis:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)), timeout=10)
        self.f = self.s.makefile("rb")
    def cmd(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self.reply()
    def reply(self):
        line = self.f.readline()
        if not line:
            raise SystemExit("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest
        if t == b"-":
            raise SystemExit("redis error: " + rest.decode(errors="replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2]
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise SystemExit("unexpected reply %r" % line)

op, port = sys.argv[1], sys.argv[2]
r = Redis(port)
if op == "l2value":
    pattern, hint, dest = sys.argv[3].encode(), sys.argv[4].encode(), sys.argv[5].encode()
    keys, cursor = set(), b"0"
    while True:
        cursor, batch = r.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
        keys.update(batch)
        if cursor == b"0":
            break
    if not keys:
        print("0 0 -")
        sys.exit(0)
    values = {k: r.cmd("GET", k) for k in sorted(keys)}
    for k, v in values.items():
        print("  l2 key %r: %d bytes" % (k, len(v) if v is not None else -1), file=sys.stderr)
    values = {k: v for k, v in values.items() if v is not None}
    with_hint = [k for k, v in values.items() if hint and hint in v]
    if len(values) == 1:
        key = next(iter(values))
    elif len(with_hint) == 1:
        key = with_hint[0]
    else:
        key = max(values, key=lambda k: len(values[k]))
    if dest != b"-":
        r.cmd("SET", dest, values[key])
    print(len(values[key]), len(keys), repr(key).replace(" ", "\\x20"))
elif op == "strlen":
    print(r.cmd("STRLEN", sys.argv[3]))
elif op == "flushall":
    r.cmd("FLUSHALL")
else:
    raise SystemExit("unknown op " + op)
EOF
)
redis_py() { python3 -c "$REDIS_PY" "$@"; }

# redis_cmdstat COMMAND — "CALLS USEC_PER_CALL" of COMMAND (lower case) since
# the last CONFIG RESETSTAT, from INFO commandstats: Redis's own execution
# time per call (without reading and writing the sockets). "0 -" if none.
redis_cmdstat() {
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info commandstats | tr -d '\r' |
        awk -F'[:,=]' -v c="cmdstat_$1" '$1 == c { for (i = 2; i < NF; i += 2) v[$i] = $(i + 1); print v["calls"], v["usec_per_call"]; f = 1 }
            END { if (!f) print "0 -" }'
}
redis_resetstat() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" config resetstat >/dev/null; }

# json_get FILE PATH... — prints the value at each dotted PATH in the JSON
# document FILE ("" if absent; objects and lists as compact JSON).
json_get() {
    python3 - "$@" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
for path in sys.argv[2:]:
    v = doc
    for part in path.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    if v is None:
        print("")
    elif isinstance(v, (dict, list)):
        print(json.dumps(v, separators=(",", ":")))
    elif isinstance(v, bool):
        print("true" if v else "false")
    else:
        print(v)
EOF
}

# ---- Redis -----------------------------------------------------------------------

# redis_start — redis-server on a free port, as a child tracked by PID. The
# PONG must come from our process (INFO's process_id), never from another
# Redis that took the port in between: this bench runs FLUSHALL. A port lost
# to someone else between the choice and the bind is retried (3 tries).
redis_start() {
    local try i pid
    mkdir -p "$BENCH_TMP/redis"
    for ((try = 1; try <= 3; try++)); do
        REDIS_PORT=$(bench_free_port)
        REDIS_LOG="$BENCH_TMP/redis/redis-$try.log"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$BENCH_TMP/redis" --logfile "$REDIS_LOG" >/dev/null 2>&1 </dev/null &
        REDIS_PID=$!
        bench_track_pid "$REDIS_PID" redis-server
        for ((i = 0; i < 100; i++)); do
            kill -0 "$REDIS_PID" 2>/dev/null || break
            pid=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server 2>/dev/null | tr -d '\r' |
                awk -F: '$1 == "process_id" { print $2 }') || true
            [[ $pid == "$REDIS_PID" ]] && return 0
            sleep 0.1
        done
        bench_log "redis-server on 127.0.0.1:$REDIS_PORT did not start (try $try); last lines of its log:"
        tail -n 2 "$REDIS_LOG" >&2 || true
        bench_stop_pid "$REDIS_PID"
        bench_untrack_pid "$REDIS_PID"
    done
    bench_die "redis-server did not start in 3 tries"
}
redis_start
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
REDIS_VERSION=$(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-)
bench_log "redis-server $REDIS_VERSION on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID)"

# ---- data: demo content and the bench item (as in bench/hot_path.sh) -------------

bench_log "seeding $ITEMS items into $BENCH_TMP/bench.db"
"$STRATA" seed --db "$BENCH_TMP/bench.db" --items "$ITEMS" >"$BENCH_TMP/seed.log" 2>&1 || {
    cat "$BENCH_TMP/seed.log" >&2
    bench_die "strata seed failed"
}
TOKEN=$("$STRATA" token create --db "$BENCH_TMP/bench.db" --site "$SITE" --role write --name l2-bench-writer 2>"$BENCH_TMP/token.log") ||
    bench_die "strata token create (write) failed: $(cat "$BENCH_TMP/token.log")"
ADMIN_TOKEN=$("$STRATA" token create --db "$BENCH_TMP/bench.db" --site "$SITE" --role admin --name l2-bench-admin 2>"$BENCH_TMP/token.log") ||
    bench_die "strata token create (admin) failed: $(cat "$BENCH_TMP/token.log")"

bench_strata_start strata-setup
SETUP_PID=$STRATA_PID SETUP_LOG=$STRATA_LOG
BASE="http://127.0.0.1:$STRATA_PORT/v1/$SITE"

# The item for (4): a seeded published item (the first of the public list,
# taken before the bench item exists), so that the bench item keeps its bytes.
bench_fetch first "$BASE/content?limit=1"
LAG_ITEM=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["items"][0]["id"])' "$BENCH_TMP/first.body") ||
    bench_die "no published item for the lag test: $(head -c 300 "$BENCH_TMP/first.body")"

# The item: a post whose public JSON is ITEM_BYTES (bench_make_item).
bench_make_item "$ITEM_BYTES" "L2 bench item" bench-l2 # the slug the Redis key check looks for
ITEM_ID=$BENCH_ITEM_ID
TEXT=$BENCH_ITEM_TEXT
ITEM_PATH="/v1/$SITE/content/$ITEM_ID"
bench_fetch item "$BASE/content/$ITEM_ID"
[[ $F_STATUS == 200 ]] || bench_die "GET $ITEM_PATH: status $F_STATUS"
ITEM_SIZE=$F_BODY
bench_log "item $ITEM_ID: $ITEM_SIZE bytes of JSON (target $ITEM_BYTES)"

# The SPREAD items of (2b): the same body, published, slugs of one length.
# Each wrk thread has CONNS/THREADS requests in flight over its SPREAD/THREADS
# items: with fewer than ~4× as many items, requests collide on a key.
SPREAD_IDS=()
((SPREAD == 0 || SPREAD >= 4 * CONNS_N)) ||
    bench_log "WARNING: SPREAD=$SPREAD < 4 x CONNS ($CONNS_N): (2b) will collapse some requests (see its lookups per request)"
if ((DO_L2 && SPREAD > 0)); then
    printf '%s' "$TEXT" >"$BENCH_TMP/text.txt"
    read -r -a SPREAD_IDS < <(bench_make_items "$STRATA_PORT" "$TOKEN" "$SPREAD" "$BENCH_TMP/text.txt" bench-l2-s \
        "L2 bench item")
    ((${#SPREAD_IDS[@]} == SPREAD)) || bench_die "creating the $SPREAD items of (2b) failed"
    bench_fetch spread0 "$BASE/content/${SPREAD_IDS[0]}"
    bench_log "(2b) items ${SPREAD_IDS[0]}..${SPREAD_IDS[-1]}: $SPREAD items of $F_BODY bytes of JSON"
    SPREAD_PATHS=()
    for id in "${SPREAD_IDS[@]}"; do SPREAD_PATHS+=("/v1/$SITE/content/$id"); done
    bench_spread_lua "$BENCH_TMP/spread.lua" "${SPREAD_PATHS[@]}"
fi

bench_strata_stop "$SETUP_PID" "$SETUP_LOG" strata-setup

# The L2 value: one GET through strata with L1 off fills L2 from the
# database; the key is found by SCAN and its value copied to the key that
# redis-benchmark's GET reads, so the reference reads the same bytes.
VALUE_SIZE=0 L2_KEYS=0 L2_KEY=-
GET_CALLS=0 GET_USEC=- EVALSHA_CALLS=0 EVALSHA_USEC=-
if ((DO_L2)); then
    redis_py flushall "$REDIS_PORT"
    bench_strata_start strata-l2-setup --redis "$REDIS_URL" --cache-l1 false --cache-warm-items 0
    bench_fetch l2fill "http://127.0.0.1:$STRATA_PORT$ITEM_PATH"
    [[ $F_STATUS == 200 ]] || bench_die "GET $ITEM_PATH with --cache-l1 false: status $F_STATUS"
    bench_log "first GET with --cache-l1 false: cache-status '$(bench_header "$BENCH_TMP/l2fill.headers" cache-status)'"
    sleep 0.2 # a fill may be written to Redis after the answer
    read -r VALUE_SIZE L2_KEYS L2_KEY < <(redis_py l2value "$REDIS_PORT" "strata:{$SITE}:v:*" \
        '"slug":"bench-l2"' "$RB_KEY" 2>"$BENCH_TMP/l2keys.txt")
    cat "$BENCH_TMP/l2keys.txt" >&2
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" strata-l2-setup
    ((VALUE_SIZE > 0)) ||
        fail_result no_l2_value "after a GET of $ITEM_PATH with --cache-l1 false, Redis has no key strata:{$SITE}:v:*"
    ((L2_KEYS == 1)) ||
        bench_log "WARNING: $L2_KEYS keys match strata:{$SITE}:v:* after one GET; using $L2_KEY"
    [[ $(redis_py strlen "$REDIS_PORT" "$RB_KEY") == "$VALUE_SIZE" ]] || bench_die "copying the L2 value to $RB_KEY failed"
    bench_log "L2 value of $ITEM_PATH: key $L2_KEY, $VALUE_SIZE bytes (copied to $RB_KEY for redis-benchmark)"
fi

# ---- the measurements ---------------------------------------------------------------

declare -A RPS P50 P99 NON2XX ERRS SCPU RCPU STEAL STATUS NREQ L2_PER_REQ COLLAPSED L2_ERRS DB_QUERIES
TARGETS=()
declare -A LABEL=(
    [redis_get]="(1) redis-benchmark GET"
    [l2_hit]="(2) strata L2 hit (--cache-l1 false)"
    [l2_spread]="(2b) strata L2 hit, $SPREAD items"
    [l1_hit]="(3) strata L1 hit (information)"
)

# measure_wrk KEY URL PID LOG [WRK_ARG...] — bench_wrk_args, plus CPU per
# request of strata (PID) and of redis-server over warm-up + run, and the
# steal; NREQ[KEY] is the number of requests of warm-up + run.
measure_wrk() {
    local key=$1 url=$2 pid=$3 log=$4 s0 r0 m0 s1 r1 m1 n warm_n
    shift 4
    s0=$(cpu_ticks "$pid") r0=$(cpu_ticks "$REDIS_PID") m0=$(bench_machine_ticks)
    bench_wrk_args "$key" "$url" "$pid" "$log" "$@"
    s1=$(cpu_ticks "$pid") r1=$(cpu_ticks "$REDIS_PID") m1=$(bench_machine_ticks)
    warm_n=$(awk '/requests in/ {print $1}' "$BENCH_TMP/wrk-$key-warmup.txt")
    n=$((WRK_REQUESTS + warm_n))
    NREQ[$key]=$n
    RPS[$key]=$WRK_RPS P50[$key]=$WRK_P50_MS P99[$key]=$WRK_P99_MS NON2XX[$key]=$WRK_NON2XX ERRS[$key]=$WRK_ERRORS
    SCPU[$key]=$(us_per_req $((s1 - s0)) "$n") RCPU[$key]=$(us_per_req $((r1 - r0)) "$n")
    STEAL[$key]=$(steal_pct "$m0" "$m1")
    TARGETS+=("$key")
    bench_log "$key: $(bench_round "$WRK_RPS" 0) req/s, p50 $WRK_P50_MS ms, p99 $WRK_P99_MS ms, CPU/req strata ${SCPU[$key]} us, redis ${RCPU[$key]} us, steal ${STEAL[$key]}%"
}

# rb_run NAME N — redis-benchmark GET, N requests; output in
# $BENCH_TMP/rb-NAME.csv; sets RB_RPS RB_P50 RB_P99.
rb_run() {
    local out="$BENCH_TMP/rb-$1.csv" limit=$((DURATION_S * 4 + 30))
    timeout "$limit" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t get -d "$VALUE_SIZE" \
        -c "$CONNS_N" -P 1 -n "$2" "${RB_THREADS_ARG[@]}" --csv >"$out" 2>&1 ||
        bench_die "redis-benchmark ($1) failed or ran over ${limit}s: $(tail -n 3 "$out")"
    bench_check_alive "$REDIS_PID" redis-server "$REDIS_LOG"
    read -r RB_RPS RB_P50 RB_P99 < <(awk -F, '{ gsub(/"/, "") } $1 == "GET" { print $2, $5, $7 }' "$out")
    [[ -n ${RB_RPS:-} ]] || bench_die "could not parse redis-benchmark output: $(cat "$out")"
}

measure_redis() {
    local m0 m1 r0 r1 n warm_n
    # warm-up: a short calibration run, then WARMUP seconds at its rate
    rb_run calibrate 20000
    warm_n=$(awk -v r="$RB_RPS" -v s="$WARMUP_S" 'BEGIN { n = int(r * s); if (n < 10000) n = 10000; print n }')
    r0=$(cpu_ticks "$REDIS_PID") m0=$(bench_machine_ticks)
    bench_log "redis_get: warm-up ${WARMUP_S}s (-n $warm_n), then redis-benchmark -t get -d $VALUE_SIZE -c $CONNS_N -P 1${RB_THREADS_ARG[*]:+ ${RB_THREADS_ARG[*]}} for ~${DURATION_S}s"
    ((WARMUP_S == 0)) || rb_run warmup "$warm_n"
    n=$(awk -v r="$RB_RPS" -v s="$DURATION_S" 'BEGIN { n = int(r * s); if (n < 10000) n = 10000; print n }')
    local t0=$SECONDS
    rb_run run "$n"
    r1=$(cpu_ticks "$REDIS_PID") m1=$(bench_machine_ticks)
    RB_SECONDS=$((SECONDS - t0)) RB_N=$n
    ((WARMUP_S == 0)) && warm_n=0
    RPS[redis_get]=$RB_RPS P50[redis_get]=$RB_P50 P99[redis_get]=$RB_P99 NON2XX[redis_get]=- ERRS[redis_get]=-
    SCPU[redis_get]=- RCPU[redis_get]=$(us_per_req $((r1 - r0)) $((n + warm_n)))
    STEAL[redis_get]=$(steal_pct "$m0" "$m1")
    TARGETS+=(redis_get)
    bench_log "redis_get: $(bench_round "$RB_RPS" 0) req/s, p50 $RB_P50 ms, p99 $RB_P99 ms (-n $n in ~${RB_SECONDS}s), CPU/req redis ${RCPU[redis_get]} us"
}

measure_l2() {
    local url="http://127.0.0.1:$1$ITEM_PATH" cs
    fetch_until l2 "$url" is_l2_hit ||
        fail_result not_l2_hit "GET $ITEM_PATH with --cache-l1 false answers cache-status '$(bench_header "$BENCH_TMP/l2.headers" cache-status)', not detail=l2"
    cs=$(bench_header "$BENCH_TMP/l2.headers" cache-status)
    STATUS[l2_hit]=$cs
    cmp -s "$BENCH_TMP/l2.body" "$BENCH_TMP/item.body" ||
        bench_log "WARNING: the L2 answer's body differs from the item's JSON ($F_BODY bytes, $ITEM_SIZE expected)"
    bench_log "(2) $ITEM_PATH: cache-status '$cs', $F_BODY body bytes, $F_HEAD header bytes"
    measure_l2_wrk l2_hit "$url"
    bench_fetch l2after "$url"
    is_l2_hit "$(bench_header "$BENCH_TMP/l2after.headers" cache-status)" ||
        bench_log "WARNING: after the load, (2) answers cache-status '$(bench_header "$BENCH_TMP/l2after.headers" cache-status)'"
}

# measure_l2_wrk KEY URL [WRK_ARG...] — measure_wrk on the L2 instance, and
# from its /v1/cache/stats before and after: L2 lookups per request, the
# share of requests collapsed onto another's lookup, L2 errors + timeouts,
# database queries.
measure_l2_wrk() {
    local key=$1 url=$2 b a
    shift 2
    stats "$STRATA_PORT" "stats-$key-before"
    measure_wrk "$key" "$url" "$STRATA_PID" "$STRATA_LOG" "$@"
    stats "$STRATA_PORT" "stats-$key-after"
    mapfile -t b < <(json_get "$BENCH_TMP/stats-$key-before.json" l2.lookups site.coalesced l2.errors l2.timeouts db.queries)
    mapfile -t a < <(json_get "$BENCH_TMP/stats-$key-after.json" l2.lookups site.coalesced l2.errors l2.timeouts db.queries)
    if [[ -z ${a[0]} ]]; then
        bench_log "WARNING: /v1/cache/stats has no l2.lookups: $(head -c 300 "$BENCH_TMP/stats-$key-after.json")"
        L2_PER_REQ[$key]=- COLLAPSED[$key]=- L2_ERRS[$key]=- DB_QUERIES[$key]=-
        return 0
    fi
    L2_PER_REQ[$key]=$(awk -v d=$((a[0] - b[0])) -v n="${NREQ[$key]}" 'BEGIN { printf "%.3f\n", d / n }')
    COLLAPSED[$key]=$(awk -v d=$((${a[1]:-0} - ${b[1]:-0})) -v n="${NREQ[$key]}" 'BEGIN { printf "%.1f\n", 100 * d / n }')
    L2_ERRS[$key]=$((${a[2]:-0} + ${a[3]:-0} - ${b[2]:-0} - ${b[3]:-0}))
    DB_QUERIES[$key]=$((${a[4]:-0} - ${b[4]:-0}))
    bench_log "$key: $((a[0] - b[0])) L2 lookups for ${NREQ[$key]} requests (${L2_PER_REQ[$key]} per request), ${COLLAPSED[$key]}% collapsed, L2 errors+timeouts ${L2_ERRS[$key]}, database queries ${DB_QUERIES[$key]}"
}

measure_spread() {
    local url="http://127.0.0.1:$1/v1/$SITE/content/${SPREAD_IDS[0]}" cs
    fetch_until spread "$url" is_l2_hit ||
        fail_result not_l2_hit "GET /v1/$SITE/content/${SPREAD_IDS[0]} with --cache-l1 false answers cache-status '$(bench_header "$BENCH_TMP/spread.headers" cache-status)', not detail=l2"
    cs=$(bench_header "$BENCH_TMP/spread.headers" cache-status)
    STATUS[l2_spread]=$cs
    bench_log "(2b) $SPREAD items in turn (wrk -s spread.lua), the first answers cache-status '$cs'"
    measure_l2_wrk l2_spread "$url" -s "$BENCH_TMP/spread.lua"
}

measure_l1() {
    local url="http://127.0.0.1:$1$ITEM_PATH" cs
    fetch_until l1 "$url" is_l1_hit ||
        fail_result not_l1_hit "GET $ITEM_PATH with L1 on answers cache-status '$(bench_header "$BENCH_TMP/l1.headers" cache-status)'"
    cs=$(bench_header "$BENCH_TMP/l1.headers" cache-status)
    STATUS[l1_hit]=$cs
    bench_log "(3) $ITEM_PATH: cache-status '$cs', $F_BODY body bytes"
    measure_wrk l1_hit "$url" "$STRATA_PID" "$STRATA_LOG"
}

# The writer of (4): python3, standard library, one keep-alive connection to
# A (writes) and one to B (reads). Prints key=value lines.
LAG_PY=$(
    cat <<'EOF'
import http.client, json, sys, time
a_port, b_port, token, item, writes, max_s = sys.argv[1:7]
writes, max_s = int(writes), float(max_s)
path = "/v1/main/content/%s" % item
auth = {"Authorization": "Bearer " + token}
A = http.client.HTTPConnection("127.0.0.1", int(a_port), timeout=10)
B = http.client.HTTPConnection("127.0.0.1", int(b_port), timeout=10)

def req(conn, method, url, body=None, headers=None):
    conn.request(method, url, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.headers, r.read()

def fail(msg):
    print("error=" + msg.replace(" ", "_")[:300])
    sys.exit(1)

def b_read():
    st, h, body = req(B, "GET", path)
    if st != 200:
        fail("B GET %s: %d" % (path, st))
    return json.loads(body)["title"], h.get("cache-status", "")

st, h, body = req(A, "GET", path + "/draft", headers=auth)
if st != 200:
    fail("A GET draft: %d %s" % (st, body[:200]))
etag = h["etag"]

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")

seen_ms, held, first_stale, timeouts, done = [], 0, 0, 0, 0
start = time.monotonic()
for n in range(writes):
    if time.monotonic() - start > max_s:
        break
    # B holds the item in its L1 before the write
    for _ in range(5):
        _, cs = b_read()
        if cs.startswith("strata; hit"):
            held += 1
            break
    title = "l2 bench write %06d" % n
    st, h, body = req(A, "PUT", path, body=json.dumps({"title": title}),
                      headers=dict(auth, **{"Content-Type": "application/json", "If-Match": etag}))
    if st != 200:
        fail("A PUT: %d %s" % (st, body[:200]))
    etag = h["etag"]
    st, h, body = req(A, "POST", path + "/publish", headers=auth)
    if st != 200:
        fail("A publish: %d %s" % (st, body[:200]))
    t0 = time.monotonic()
    first = True
    while True:
        seen, _ = b_read()
        if seen == title:
            seen_ms.append((time.monotonic() - t0) * 1000)
            break
        if first:
            first_stale += 1
        first = False
        if time.monotonic() - t0 > 1.0:
            timeouts += 1
            break
    done += 1
elapsed = time.monotonic() - start
print("writes=%d" % done)
print("seconds=%.1f" % elapsed)
print("b_held=%d" % held)
print("first_read_stale=%d" % first_stale)
print("timeouts=%d" % timeouts)
print("seen_p50_ms=%.3f" % pct(seen_ms, 50))
print("seen_p99_ms=%.3f" % pct(seen_ms, 99))
print("seen_max_ms=%.3f" % (max(seen_ms) if seen_ms else float("nan")))
EOF
)

# stats PORT NAME — GET /v1/cache/stats with the admin token into $BENCH_TMP/NAME.json
stats() {
    local st
    st=$(curl -sS --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" -o "$BENCH_TMP/$2.json" \
        -w '%{http_code}' "http://127.0.0.1:$1/v1/cache/stats") || bench_die "GET /v1/cache/stats on :$1 failed"
    [[ $st == 200 ]] || bench_die "GET /v1/cache/stats on :$1: status $st: $(head -c 300 "$BENCH_TMP/$2.json")"
}

# wait_bus PORT NAME — until the instance's bus is connected (10 s at most).
wait_bus() {
    local i
    for ((i = 0; i < 100; i++)); do
        stats "$1" "bus-$2"
        [[ $(json_get "$BENCH_TMP/bus-$2.json" bus.connected) == true ]] && return 0
        sleep 0.1
    done
    bench_die "$2 never connected to Redis: $(cat "$BENCH_TMP/bus-$2.json")"
}

# histogram_line JSON — bus.lag_ms.histogram as "<=0.25:721 <=0.5:2651 …"
# when it is a list of {le_ms, count} (empty buckets left out), else as is.
histogram_line() {
    python3 -c '
import json, sys
h = json.loads(sys.argv[1])
try:
    print(" ".join("<=%s:%d" % (b["le_ms"], b["count"]) for b in h if b["count"]) or "(empty)")
except (TypeError, KeyError):
    print(json.dumps(h, separators=(",", ":")))
' "$1"
}

declare -A LAG
measure_lag() {
    local a_port=$1 b_port=$2 k v samples0
    wait_bus "$a_port" a
    wait_bus "$b_port" b
    samples0=$(json_get "$BENCH_TMP/bus-b.json" bus.lag_ms.samples)
    bench_log "(4) $WRITES rounds of PUT + publish of item $LAG_ITEM on A (:$a_port), B (:$b_port) reading it between rounds"
    python3 -c "$LAG_PY" "$a_port" "$b_port" "$TOKEN" "$LAG_ITEM" "$WRITES" "$LAG_MAX_S" >"$BENCH_TMP/lag.out" 2>&1 ||
        fail_result lag_writer "$(tail -n 5 "$BENCH_TMP/lag.out" | tr '\n' ' ')"
    while IFS='=' read -r k v; do
        [[ -n $k ]] && LAG[client_$k]=$v
    done <"$BENCH_TMP/lag.out"
    sleep 0.1 # the last invalidation's lag is recorded after it is applied
    stats "$b_port" stats-b
    stats "$a_port" stats-a
    for k in connected published received applied resets reconnects; do
        LAG[b_$k]=$(json_get "$BENCH_TMP/stats-b.json" "bus.$k")
    done
    LAG[a_published]=$(json_get "$BENCH_TMP/stats-a.json" bus.published)
    LAG[a_publish_failures]=$(json_get "$BENCH_TMP/stats-a.json" bus.publish_failures)
    for k in samples p50 p99 max histogram; do
        LAG[$k]=$(json_get "$BENCH_TMP/stats-b.json" "bus.lag_ms.$k")
    done
    LAG[samples_run]=$((${LAG[samples]:-0} - ${samples0:-0}))
    [[ -n ${LAG[p99]} ]] || fail_result no_lag_stats "B's /v1/cache/stats has no bus.lag_ms.p99: $(head -c 500 "$BENCH_TMP/stats-b.json")"
    bench_log "(4) B applied ${LAG[b_applied]} invalidations; lag p50 ${LAG[p50]} ms, p99 ${LAG[p99]} ms, max ${LAG[max]} ms over ${LAG[samples]} samples"
}

# ---- wait for a quiet machine, then measure ------------------------------------------

# wait_no_tests MAX_WAIT_S — waits (polling every 20 s, at most MAX_WAIT_S)
# until no pytest / `make test` runs, whatever the load; sets QUIET_LAG (1:
# none ran when it stopped waiting, 0: gave up) and LAG_WAITED (seconds).
wait_no_tests() {
    local start=$SECONDS busy
    QUIET_LAG=1 LAG_WAITED=0
    while busy=$(bench_busy_others) && [[ -n $busy ]]; do
        LAG_WAITED=$((SECONDS - start))
        if ((LAG_WAITED + 20 > $1)); then
            QUIET_LAG=0
            bench_log "test runs still going after ${LAG_WAITED}s (pids $busy); measuring (4) anyway"
            return 0
        fi
        bench_log "waiting for test runs to end before (4): pids $busy; ${LAG_WAITED}s of ${1}s"
        sleep 20
    done
    LAG_WAITED=$((SECONDS - start))
}

SETUP_S=$((SECONDS - SCRIPT_START))
LOAD_BEFORE_WAIT=$(bench_load1)
bench_log "setup done in ${SETUP_S}s; waiting (up to ${QUIET_WAIT}s) for load < $QUIET_LOAD and no pytest / make test"
bench_wait_quiet "$QUIET_LOAD" "$QUIET_WAIT" 20
QUIET=$BENCH_QUIET WAITED=$BENCH_QUIET_WAITED
WAIT_NOTE="waited ${BENCH_QUIET_WAITED}s from load $LOAD_BEFORE_WAIT"
if [[ $BENCH_QUIET == 1 ]]; then
    WAIT_NOTE+=", quiet (load $BENCH_QUIET_LOAD < $QUIET_LOAD, no test run)"
else
    WAIT_NOTE+=", NOT quiet (load $BENCH_QUIET_LOAD${BENCH_QUIET_BUSY:+, test runs $BENCH_QUIET_BUSY}): numbers are noisy"
fi
bench_log "$WAIT_NOTE"
MEASURE_START=$SECONDS
LOAD_START=$(bench_load1)

if ((DO_L2)); then
    redis_resetstat
    measure_redis
    read -r GET_CALLS GET_USEC < <(redis_cmdstat get)

    bench_strata_start strata-l2 --redis "$REDIS_URL" --cache-l1 false --cache-warm-items 0
    measure_l2 "$STRATA_PORT"
    redis_resetstat
    ((SPREAD == 0)) || measure_spread "$STRATA_PORT"
    read -r EVALSHA_CALLS EVALSHA_USEC < <(redis_cmdstat evalsha)
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" strata-l2
    read -r VALUE_SIZE_AFTER L2_KEYS_AFTER _ < <(redis_py l2value "$REDIS_PORT" "strata:{$SITE}:v:*" \
        '"slug":"bench-l2"' - 2>"$BENCH_TMP/l2keys-after.txt") || true
    SPREAD_VALUES=$(awk '/ bytes$/ { n = $(NF - 1); if (!c++ || n < lo) lo = n; if (n > hi) hi = n }
        END { if (c) printf "%d-%d (%d keys)\n", lo, hi, c; else print "-" }' "$BENCH_TMP/l2keys-after.txt")
    [[ ${VALUE_SIZE_AFTER:-0} == "$VALUE_SIZE" ]] ||
        bench_log "WARNING: after (2) the L2 value is ${VALUE_SIZE_AFTER:-?} bytes ($VALUE_SIZE measured before, ${L2_KEYS_AFTER:-?} keys)"

    bench_strata_start strata-l1 --redis "$REDIS_URL"
    measure_l1 "$STRATA_PORT"
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" strata-l1
fi
LOAD_END_L2=$(bench_load1)
BUSY_END_L2=$(bench_busy_others)

QUIET_LAG=-
if ((DO_LAG)); then
    if ((DO_L2)); then
        # our own load keeps the load average up: wait only for test runs
        wait_no_tests "$QUIET_WAIT"
        WAITED=$((WAITED + LAG_WAITED))
        ((LAG_WAITED == 0)) || bench_log "waited ${LAG_WAITED}s for test runs to end before (4)"
    else
        QUIET_LAG=$QUIET
    fi
    bench_strata_start strata-a --redis "$REDIS_URL" --cache-item-ttl-s 300
    A_PID=$STRATA_PID A_LOG=$STRATA_LOG A_PORT=$STRATA_PORT
    bench_strata_start strata-b --redis "$REDIS_URL" --cache-item-ttl-s 300
    B_PID=$STRATA_PID B_LOG=$STRATA_LOG B_PORT=$STRATA_PORT
    measure_lag "$A_PORT" "$B_PORT"
    bench_check_alive "$A_PID" strata-a "$A_LOG"
    bench_check_alive "$B_PID" strata-b "$B_LOG"
    bench_strata_stop "$B_PID" "$B_LOG" strata-b
    bench_strata_stop "$A_PID" "$A_LOG" strata-a
fi
LOAD_END=$(bench_load1)
BUSY_END=$(bench_busy_others)
MEASURE_S=$((SECONDS - MEASURE_START))

# ---- report ---------------------------------------------------------------------------

printf '\nl2: %s cores, loopback; strata --threads %s; redis-server %s (no persistence)\n' \
    "$(nproc)" "$SERVE_THREADS" "$REDIS_VERSION"
printf 'strata: %s (%s), tree %s\n' "$STRATA_SRC" "$STRATA_ID" "$GIT_ID"
if ((DO_L2 && DO_LAG)); then
    printf 'load (1 min): %s at start, %s after (1)-(3), %s at the end of (4); quiet wait: %s\n' \
        "$LOAD_START" "$LOAD_END_L2" "$LOAD_END" "$WAIT_NOTE"
    [[ -z $BUSY_END_L2$BUSY_END ]] ||
        printf 'test runs seen: after (1)-(3) pids %s; at the end pids %s\n' "${BUSY_END_L2:--}" "${BUSY_END:--}"
else
    printf 'load (1 min): %s at start, %s at end; quiet wait: %s\n' "$LOAD_START" "$LOAD_END" "$WAIT_NOTE"
    [[ -z $BUSY_END ]] || printf 'test runs seen at the end: pids %s\n' "$BUSY_END"
fi

L2_RATIO=- V_L2=- L1_RATIO=- SPREAD_RATIO=- V_SPREAD=-
if ((DO_L2)); then
    printf 'item %s: %s bytes of JSON; its L2 value: %s bytes (%s)\n' "$ITEM_PATH" "$ITEM_SIZE" "$VALUE_SIZE" "$L2_KEY"
    ((SPREAD == 0)) || printf '(2b): %s items like it, each request the next one (wrk -s); L2 values %s bytes\n' "$SPREAD" "$SPREAD_VALUES"
    printf '(1): redis-benchmark -t get -d %s -c %s -P 1%s -n %s (%ss), warm-up %ss; (2),(2b),(3): wrk -t%s -c%s -d%s --latency, warm-up %s\n' \
        "$VALUE_SIZE" "$CONNS_N" "${RB_THREADS_ARG[*]:+ ${RB_THREADS_ARG[*]}}" "$RB_N" "$RB_SECONDS" "$WARMUP_S" \
        "${THREADS:-2}" "$CONNS_N" "${DURATION:-10s}" "${WARMUP:-2s}"
    printf '%-38s %9s %8s %8s %12s %12s %6s %6s %6s\n' target req/s p50_ms p99_ms strata_us/req redis_us/req steal% non2xx errors
    for k in "${TARGETS[@]}"; do
        printf '%-38s %9s %8s %8s %12s %12s %6s %6s %6s\n' "${LABEL[$k]}" "$(bench_round "${RPS[$k]}" 0)" \
            "${P50[$k]}" "${P99[$k]}" "${SCPU[$k]}" "${RCPU[$k]}" "${STEAL[$k]}" "${NON2XX[$k]}" "${ERRS[$k]}"
    done
    printf '(us/req: CPU time, user+system, of the strata process and of redis-server, per request, over warm-up + run;\n'
    printf ' cache-status of (2): %s; of (2b): %s; of (3): %s)\n' "${STATUS[l2_hit]}" "${STATUS[l2_spread]:--}" "${STATUS[l1_hit]}"
    for k in l2_hit l2_spread; do
        [[ -n ${L2_PER_REQ[$k]:-} ]] || continue
        printf '%s: %s L2 lookups per request, %s%% of requests collapsed onto another request'"'"'s lookup, L2 errors+timeouts %s, database queries %s\n' \
            "${LABEL[$k]%% *}" "${L2_PER_REQ[$k]}" "${COLLAPSED[$k]}" "${L2_ERRS[$k]}" "${DB_QUERIES[$k]}"
    done
    printf 'Redis execution time per command (INFO commandstats, sockets not included): GET %s us over (1) (%s calls)' \
        "$GET_USEC" "$GET_CALLS"
    if ((SPREAD > 0)); then
        printf ', EVALSHA (the L2 lookup) %s us over (2b) (%s calls)\n' "$EVALSHA_USEC" "$EVALSHA_CALLS"
    else
        printf '\n'
    fi
    L2_RATIO=$(bench_ratio "${RPS[l2_hit]}" "${RPS[redis_get]}")
    SPREAD_RATIO=$(bench_ratio "${RPS[l2_spread]:-0}" "${RPS[redis_get]}")
    V_SPREAD=$(bench_verdict_ge "$SPREAD_RATIO" "$L2_TARGET")
    L1_RATIO=$(bench_ratio "${RPS[l1_hit]}" "${RPS[redis_get]}")
    V_L2=$(bench_verdict_ge "$L2_RATIO" "$L2_TARGET")
fi

V_LAG=-
if ((DO_LAG)); then
    printf '(4) lag: %s rounds (PUT + publish) on A in %ss, B read the item between rounds (held in its L1 before %s of them)\n' \
        "${LAG[client_writes]}" "${LAG[client_seconds]}" "${LAG[client_b_held]}"
    printf '    bus on B: applied %s, received %s, resets %s, reconnects %s; A published %s (failures %s)\n' \
        "${LAG[b_applied]}" "${LAG[b_received]}" "${LAG[b_resets]}" "${LAG[b_reconnects]}" \
        "${LAG[a_published]}" "${LAG[a_publish_failures]}"
    printf '    bus.lag_ms on B: p50 %s, p99 %s, max %s, samples %s (%s during the run)\n' \
        "${LAG[p50]}" "${LAG[p99]}" "${LAG[max]}" "${LAG[samples]}" "${LAG[samples_run]}"
    if [[ -n ${LAG[histogram]} ]]; then
        printf '    bus.lag_ms.histogram (count per bucket, upper bound in ms): %s\n' "$(histogram_line "${LAG[histogram]}")"
    else
        printf '    bus.lag_ms.histogram: not in this build\n'
    fi
    printf '    client view: B served the new title %s ms (p50), %s ms (p99), %s ms (max) after A answered the publish;\n' \
        "${LAG[client_seen_p50_ms]}" "${LAG[client_seen_p99_ms]}" "${LAG[client_seen_max_ms]}"
    printf '    first read on B right after the publish answered was stale in %s of %s rounds; not seen within 1 s: %s\n' \
        "${LAG[client_first_read_stale]}" "${LAG[client_writes]}" "${LAG[client_timeouts]}"
    ((${LAG[samples]:-0} <= 4096)) ||
        printf '    (strata keeps the last 4096 lag samples: the percentiles are over those)\n'
    V_LAG=$(bench_verdict_le "${LAG[p99]}" "$LAG_TARGET_MS")
fi

printf 'ratios and issue-4 targets:\n'
if ((DO_L2)); then
    ((SPREAD == 0)) || printf '  (2b)/(1) req/s     %6s   target >= %s (one L2 lookup per request)   %s\n' "$SPREAD_RATIO" "$L2_TARGET" "$V_SPREAD"
    printf '  (2)/(1) req/s      %6s   (information: lookups collapsed)   %s\n' "$L2_RATIO" "$V_L2"
    printf '  (3)/(1) req/s      %6s   (information: the L1 hit)\n' "$L1_RATIO"
fi
if ((DO_LAG)); then
    printf '  lag p99 (ms)       %6s   target <= %s     %s\n' "${LAG[p99]}" "$LAG_TARGET_MS" "$V_LAG"
fi
printf 'measured in %ss (+%ss setup, %ss quiet wait); strata exits on SIGTERM: %s\n' \
    "$MEASURE_S" "$SETUP_S" "$WAITED" "${STRATA_EXITS[*]}"

rps_of() { if [[ -n ${RPS[$1]:-} ]]; then bench_round "${RPS[$1]}" 0; else echo -; fi; }
printf 'RESULT l2 redis_get_rps=%s redis_get_p50_ms=%s redis_get_p99_ms=%s l2_hit_rps=%s l2_hit_p50_ms=%s l2_hit_p99_ms=%s l1_hit_rps=%s l1_hit_p99_ms=%s' \
    "$(rps_of redis_get)" "${P50[redis_get]:--}" "${P99[redis_get]:--}" \
    "$(rps_of l2_hit)" "${P50[l2_hit]:--}" "${P99[l2_hit]:--}" "$(rps_of l1_hit)" "${P99[l1_hit]:--}"
printf ' l2_over_redis=%s l1_over_redis=%s target_l2_redis=%s' "$L2_RATIO" "$L1_RATIO" "$V_L2"
printf ' l2_spread_rps=%s l2_spread_p99_ms=%s l2_spread_over_redis=%s target_l2_spread_redis=%s' \
    "$(rps_of l2_spread)" "${P99[l2_spread]:--}" "$SPREAD_RATIO" "$V_SPREAD"
printf ' l2_lookups_per_req=%s l2_collapsed_pct=%s l2_spread_lookups_per_req=%s l2_spread_collapsed_pct=%s redis_get_usec=%s redis_evalsha_usec=%s' \
    "${L2_PER_REQ[l2_hit]:--}" "${COLLAPSED[l2_hit]:--}" "${L2_PER_REQ[l2_spread]:--}" "${COLLAPSED[l2_spread]:--}" \
    "$GET_USEC" "$EVALSHA_USEC"
printf ' lag_p50_ms=%s lag_p99_ms=%s lag_max_ms=%s lag_samples=%s target_lag_p99=%s writes=%s seen_p99_ms=%s' \
    "${LAG[p50]:--}" "${LAG[p99]:--}" "${LAG[max]:--}" "${LAG[samples]:--}" "$V_LAG" "${LAG[client_writes]:--}" \
    "${LAG[client_seen_p99_ms]:--}"
printf ' non2xx=%s socket_errors=%s strata_exit=%s item_bytes=%s value_bytes=%s quiet=%s quiet_lag=%s load_start=%s load_end=%s duration=%s conns=%s rb_threads=%s\n' \
    "$((${NON2XX[l2_hit]:-0} + ${NON2XX[l2_spread]:-0} + ${NON2XX[l1_hit]:-0}))" \
    "$((${ERRS[l2_hit]:-0} + ${ERRS[l2_spread]:-0} + ${ERRS[l1_hit]:-0}))" \
    "$(printf '%s\n' "${STRATA_EXITS[@]}" | cut -d= -f2 | sort -u | paste -sd, -)" \
    "$ITEM_SIZE" "$VALUE_SIZE" "$QUIET" "$QUIET_LAG" "$LOAD_START" "$LOAD_END" "${DURATION:-10s}" "$CONNS_N" "$RB_THREADS"
