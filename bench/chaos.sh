#!/usr/bin/env bash
#
# bench/chaos.sh — the chaos drill (issue 17): on the stage-3 stack
# (scripts/stack.sh: PostgreSQL primary + streaming replica, Redis, three
# strata, nginx, Varnish) a client load logs every write and every read
# while a seeded schedule, one fault at a time every 20–60 s, kills -9 a
# strata instance (restarted with the argv and environment it had), kills
# and restarts Redis, stops the replica and starts it again, and restarts
# the primary (pg_ctl restart -m fast). When the load has stopped and every
# part is back, an independent audit reads the logs and the primary (psql)
# and checks: every acknowledged write is in the database with its exact
# content, no read was staler than its bound, no read answered 5xx. The
# checks, and why writers talk to the instances directly, are in
# bench/chaos.py's opening comment.
#
# Usage: bench/chaos.sh   (needs build/strata and what scripts/stack.sh needs; as root
#                          PostgreSQL runs as the postgres user)
#   CHAOS_S=600      seconds of load and faults (the whole run: CHAOS_S + about a
#                    minute of setup and audit; every wait bounded)
#   CHAOS_SEED=17    the fault schedule's and the clients' RNG seed
#   CHAOS_WRITERS=4 CHAOS_ITEMS=3   writers, items each
#   STRATA=path      the binary (default build/strata)
#   CHAOS_CONTROL=1  the negative control, to show the audit can fail: Redis
#                    is killed for good at 10 s without the audit being told
#                    (the bus is gone: stale reads), and one item's published
#                    content is put back in the database before the audit (a
#                    lost write). The audit must then FAIL with lost >= 1 and
#                    viol_c > 0; this script exits 0 only if it does.
#   BENCH_KEEP_TMP=1 keep the logs (writes.jsonl, reads.jsonl, faults.jsonl,
#                    the stack's logs) for a post-mortem
# Output: the schedule, the fault log, the counts, the audit, then
# `RESULT chaos … verdict=PASS|FAIL`; exit status 0 only on PASS.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

CHAOS_S=${CHAOS_S:-600}
STRATA=${STRATA:-$REPO/build/strata}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export CHAOS_S PG_BIN
case ":$PATH:" in *:"$PG_BIN":*) ;; *) PATH="$PATH:$PG_BIN" ;; esac

bench_require curl redis-server redis-cli nginx varnishd pg_isready
[[ -x /usr/bin/python3 ]] || bench_die "/usr/bin/python3 is missing"
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make\` first"
if ! [[ $CHAOS_S =~ ^[0-9]+$ ]] || ((CHAOS_S < 30 || CHAOS_S > 7200)); then
    bench_die "CHAOS_S=$CHAOS_S: 30..7200 seconds"
fi

bench_init
STACK_DIR=$BENCH_TMP/stack
OUT=$BENCH_TMP/out
mkdir -p "$OUT"
ports=()
while ((${#ports[@]} < 8)); do
    p=$(bench_free_port)
    [[ " ${ports[*]} " == *" $p "* ]] || ports+=("$p")
done
export STACK_DIR STRATA_BIN=$STRATA STACK_PG_PORT=${ports[0]} STACK_REPLICA_PORT=${ports[1]} \
    STACK_REDIS_PORT=${ports[2]} STACK_STRATA1_PORT=${ports[3]} STACK_STRATA2_PORT=${ports[4]} \
    STACK_STRATA3_PORT=${ports[5]} STACK_NGINX_PORT=${ports[6]} STACK_VARNISH_PORT=${ports[7]}
# Every client is 127.0.0.1: the per-address limits would answer the
# drill's own load 429. The instances take these from the environment (and
# keep them across a restart: the drill restarts them with their environ).
export STRATA_LIMITS_CLIENT_RPS=0 STRATA_LIMITS_WRITE_RPS=0

# shellcheck disable=SC2317 # called from the EXIT trap
stack_down() {
    local purge=--purge
    [[ ${BENCH_KEEP_TMP:-0} == 1 ]] && purge=""
    timeout 120 "$REPO/scripts/stack.sh" down ${purge:+"$purge"} >>"$BENCH_TMP/stack.log" 2>&1 || true
}
# bench_cleanup exits with the status it finds in $?: keep the script's
# shellcheck disable=SC2154 # chaos_rc is set by the trap itself
trap 'chaos_rc=$?; stack_down; (exit "$chaos_rc"); bench_cleanup' EXIT

bench_log "scripts/stack.sh up (state in $STACK_DIR)"
timeout 300 "$REPO/scripts/stack.sh" up >"$BENCH_TMP/stack.log" 2>&1 ||
    bench_die "scripts/stack.sh up failed: $(tail -n 5 "$BENCH_TMP/stack.log")"

bench_log "load and faults for ${CHAOS_S}s"
# bounded: the load, a fault's recovery (≤ 3 min), the readers' tail
timeout $((CHAOS_S + 400)) /usr/bin/python3 "$BENCH_DIR/chaos.py" run "$OUT" ||
    bench_die "the load driver failed (exit $?)"

# The audit runs once every part is back (status exits 0 when all are healthy).
for ((i = 0; i < 60; i++)); do
    timeout 30 "$REPO/scripts/stack.sh" status >"$BENCH_TMP/status.txt" 2>&1 && break
    [[ ${CHAOS_CONTROL:-0} == 1 ]] && break # Redis is down for good
    sleep 1
done
bench_log "stack after the drill:"
sed 's/^/  /' "$BENCH_TMP/status.txt" >&2
# what the instances logged at error level, for the report (request ids)
for n in 1 2 3; do
    c=$(grep -c '"level":"error"' "$STACK_DIR/logs/strata$n.log" || true)
    bench_log "strata$n.log: $c error lines"
done

if [[ ${CHAOS_CONTROL:-0} == 1 ]]; then
    timeout 60 /usr/bin/python3 "$BENCH_DIR/chaos.py" sabotage "$OUT" || bench_die "the control's sabotage failed"
fi
rc=0
timeout 300 /usr/bin/python3 "$BENCH_DIR/chaos.py" audit "$OUT" | tee "$BENCH_TMP/audit.txt" || rc=$?
printf 'date %s, commit %s, %s cores, load %s\n' "$(date -u +%FT%TZ)" \
    "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo -)" "$(nproc)" "$(bench_load1)"
if [[ ${CHAOS_CONTROL:-0} == 1 ]]; then
    result=$(grep '^RESULT chaos' "$BENCH_TMP/audit.txt" || true)
    if [[ $result == *verdict=FAIL* && $result != *" lost=0 "* && $result != *" viol_c=0 "* ]]; then
        bench_log "control: the audit found the lost write and the stale reads, as it must"
        exit 0
    fi
    bench_die "control: the audit did not find the planted faults: $result"
fi
exit "$rc"
