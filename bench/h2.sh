#!/usr/bin/env bash
#
# bench/h2.sh — HTTP/2 (issue 15): strata answering L1 hits over cleartext
# HTTP/2 with many streams per connection, against the bare h2o server
# (bench/h2o_bare.c, the same library) sending the same bytes over h2c, in
# one run, on loopback, with h2load.
#
# HTTP/2 is opt-in in strata (server.http2; SPEC: production puts nginx or a
# CDN in front for TLS and HTTP/2) and its stream-reset flood defence is
# server.http2_max_resets (issue 11), so this measures what a client that
# speaks h2c to strata directly gets: h2load -t THREADS -c CONNS -m STREAMS
# (16 concurrent streams per connection by default) for DURATION after a
# warm-up, prior-knowledge h2c ("Application protocol: h2c" is checked).
#
# Targets, alternated ROUNDS times (h2o_bare, strata, h2o_bare, strata …) so
# the machine's drift falls on both alike:
#   h2o_bare  bench/h2o_bare.c: 2 loop threads, the 2 KB item from memory;
#   strata    strata --http2 true at its defaults otherwise (access log on),
#             GET of the 2 KB item: an L1 hit, identity.
# Printed: req/s per round, the server's CPU µs per request, and the ratio
# strata / h2o_bare per round and of the medians.
#
# Usage: bench/h2.sh   (needs build/strata, h2load from nghttp2-client, cc,
#                      libh2o-evloop-dev)
#   DURATION=10 WARMUP=2 THREADS=2 CONNS=32 STREAMS=16 ROUNDS=3 ITEM_BYTES=2048
# Output: a table and a `RESULT h2 …` line.
# Time: ROUNDS × 2 × (WARMUP + DURATION) + ~5 s (≈ 75 s by default).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_NAME=h2
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
THREADS=${THREADS:-2}
CONNS=${CONNS:-32}
STREAMS=${STREAMS:-16}
ROUNDS=${ROUNDS:-3}
ITEM_BYTES=${ITEM_BYTES:-2048}
SERVE_THREADS=${SERVE_THREADS:-2}
STRATA=${STRATA:-$REPO/build/strata}
SITE=main
H2O_BARE="$REPO/build/bench/h2o_bare"

bench_require h2load curl cc pkg-config
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build\` in $REPO first"
bench_init
bench_build_h2o_bare "$H2O_BARE"
cp "$STRATA" "$BENCH_TMP/strata"
STRATA="$BENCH_TMP/strata"

# ---- the item --------------------------------------------------------------------

"$STRATA" seed --db "$BENCH_TMP/bench.db" --items 20 >"$BENCH_TMP/seed.log" 2>&1 || bench_die "strata seed failed"
TOKEN=$("$STRATA" token create --db "$BENCH_TMP/bench.db" --site "$SITE" --role write 2>"$BENCH_TMP/token.log") ||
    bench_die "strata token create failed: $(cat "$BENCH_TMP/token.log")"
bench_strata_start strata-setup
BASE="http://127.0.0.1:$STRATA_PORT/v1/$SITE"
bench_make_item "$ITEM_BYTES" "HTTP/2 bench item" bench-h2
ITEM_PATH="/v1/$SITE/content/$BENCH_ITEM_ID"
bench_fetch item "$BASE/content/$BENCH_ITEM_ID"
[[ $F_STATUS == 200 ]] || bench_die "GET $ITEM_PATH: status $F_STATUS"
cp "$BENCH_TMP/item.body" "$BENCH_TMP/item.json"
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" strata-setup

# ---- one round --------------------------------------------------------------------

declare -A RPS CPU
# h2round KEY URL PID — h2load for WARMUP + DURATION s; RPS[KEY] and the
# server's CPU µs per request over the whole round.
h2round() {
    local key=$1 url=$2 pid=$3 before after out="$BENCH_TMP/h2load-$1.txt"
    read -r before _ < <(bench_cpu_ticks "$pid")
    h2load -t "$THREADS" -c "$CONNS" -m "$STREAMS" --warm-up-time="$WARMUP" -D "$DURATION" "$url" >"$out" 2>&1 ||
        bench_die "h2load against $key failed: $(tail -n 5 "$out")"
    read -r after _ < <(bench_cpu_ticks "$pid")
    grep -q "Application protocol: h2c" "$out" || bench_die "$key did not speak h2c: $(head -n 20 "$out")"
    grep -q "status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx" "$out" ||
        bench_log "WARNING: $key answered other than 2xx: $(grep 'status codes' "$out")"
    RPS[$key]=$(awk '/^finished in/ {print $4}' "$out")
    # h2load counts the measured part only; the CPU spans the warm-up too,
    # taken at the same rate
    CPU[$key]=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v rps="${RPS[$key]}" \
        -v s=$((WARMUP + DURATION)) 'BEGIN { printf "%.2f", (rps > 0 ? t / hz * 1e6 / (rps * s) : 0) }')
    bench_log "$key: ${RPS[$key]} req/s, ${CPU[$key]} µs CPU/request"
}

for ((r = 1; r <= ROUNDS; r++)); do
    port=$(bench_free_port)
    "$H2O_BARE" "$BENCH_TMP/item.json" "127.0.0.1:$port" "$SERVE_THREADS" >"$BENCH_TMP/h2o_bare.log" 2>&1 </dev/null &
    hpid=$!
    bench_track_pid "$hpid" h2o_bare
    bench_wait_url "http://127.0.0.1:$port/item.json" 10 "$hpid"
    h2round "h2o_bare.$r" "http://127.0.0.1:$port/item.json" "$hpid"
    bench_stop_pid "$hpid" TERM
    bench_untrack_pid "$hpid"

    BENCH_LOG_LEVEL=info bench_strata_start "strata-h2-$r" --http2 true
    url="http://127.0.0.1:$STRATA_PORT$ITEM_PATH"
    bench_fetch hit "$url"
    bench_fetch hit "$url"
    [[ $(bench_header "$BENCH_TMP/hit.headers" cache-status) == "strata; hit" ]] || bench_die "$ITEM_PATH is not an L1 hit"
    cmp -s "$BENCH_TMP/hit.body" "$BENCH_TMP/item.json" || bench_die "strata does not send the item's bytes"
    h2round "strata.$r" "$url" "$STRATA_PID"
    bench_strata_stop "$STRATA_PID" "$STRATA_LOG" "strata-h2-$r"
done

# ---- report ---------------------------------------------------------------------------

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
printf '\nh2: h2load -t%s -c%s -m%s, %ss after %ss warm-up, prior-knowledge h2c; a %s-byte item; %s cores\n' \
    "$THREADS" "$CONNS" "$STREAMS" "$DURATION" "$WARMUP" "$(stat -c %s "$BENCH_TMP/item.json")" "$(nproc)"
printf '%-7s %14s %10s %14s %10s %8s\n' round h2o_bare_rps cpu_us strata_rps cpu_us ratio
bare_all=() strata_all=()
for ((r = 1; r <= ROUNDS; r++)); do
    printf '%-7s %14s %10s %14s %10s %8s\n' "$r" "${RPS[h2o_bare.$r]}" "${CPU[h2o_bare.$r]}" "${RPS[strata.$r]}" \
        "${CPU[strata.$r]}" "$(bench_ratio "${RPS[strata.$r]}" "${RPS[h2o_bare.$r]}")"
    bare_all+=("${RPS[h2o_bare.$r]}")
    strata_all+=("${RPS[strata.$r]}")
done
BARE_MED=$(median "${bare_all[@]}")
STRATA_MED=$(median "${strata_all[@]}")
RATIO=$(bench_ratio "$STRATA_MED" "$BARE_MED")
printf 'medians: h2o_bare %s, strata %s req/s: strata / h2o_bare %s\n' "$BARE_MED" "$STRATA_MED" "$RATIO"
printf 'RESULT h2 rounds=%s conns=%s streams=%s h2o_bare_rps=%s strata_rps=%s ratio=%s load=%s\n' \
    "$ROUNDS" "$CONNS" "$STREAMS" "$BARE_MED" "$STRATA_MED" "$RATIO" "$(bench_load1)"
