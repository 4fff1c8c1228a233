#!/usr/bin/env bash
#
# bench/writes.sh — editors' writes at newsroom concurrency on SQLite (issue
# 15), in one run, on loopback, strata at its default configuration.
#
# Data: ITEMS (32) draft posts with a ~1.5 KB body, made through the API.
# Measured (wrk --latency; each connection's requests go to its own items:
# wrk thread k saves items k, k+T, k+2T … in turn, If-Match "*"):
#   one_writer   PUT …/content/{id}, wrk -t1 -c1: the reference, one save
#                at a time (each waits for its own fsync)
#   saves        PUT …/content/{id}, wrk -t2 -c16, after a warm-up
#   after_burst  the same, at once after `saves` — while the diff jobs that
#                burst queued (one per save) are run by the job runner;
#                the jobs pending at its start and end are printed
#   autosave     POST …/content/{id}/autosave, If-Match the item's current
#                version, wrk -t2 -c16
# and the disk's fsync rate (a 4 KB pwrite + fdatasync loop on the same
# filesystem for 2 s), so that saves/s can be read as saves per fsync.
#
# Targets of issue 15, printed PASS/FAIL (the script exits 0 either way; it
# fails when something breaks): saves and after_burst ≥ 2,000 saves/s with
# p99 ≤ 50 ms and no answer other than 2xx (If-Match "*" never answers
# 412); autosave p99 ≤ 10 ms.
#
# Usage: bench/writes.sh   (needs build/strata, wrk, python3, curl, cc)
#   DURATION=10s WARMUP=2s ITEMS=32 SERVE_THREADS=2 STRATA=path
#   QUIET_LOAD=0.7 QUIET_WAIT=120 BENCH_KEEP_TMP=1
# Time: about 5 × DURATION + 30 s.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

BENCH_NAME=writes
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ITEMS=${ITEMS:-32}
QUIET_LOAD=${QUIET_LOAD:-0.7}
QUIET_WAIT=${QUIET_WAIT:-120}
BENCH_LOG_LEVEL=${BENCH_LOG_LEVEL:-info} # strata as it ships
STRATA=${STRATA:-$REPO/build/strata}
SITE=main

bench_require wrk curl python3 cc
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make build\` in $REPO first"
bench_init
cp "$STRATA" "$BENCH_TMP/strata"
STRATA_ID="$(sha256sum "$STRATA" | cut -c1-12), built $(date -u -r "$STRATA" +%Y-%m-%dT%H:%M:%SZ)"
STRATA="$BENCH_TMP/strata"
GIT_ID=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)
DB="$BENCH_TMP/bench.db"

# ---- the disk's fsync rate ------------------------------------------------------

cat >"$BENCH_TMP/fsync_rate.c" <<'EOF'
/* 4 KB pwrite + fdatasync in a loop for 2 s; prints fsyncs per second. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    static char block[4096] = {1};
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return 1;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long n = 0;
    double elapsed = 0;
    do {
        if (pwrite(fd, block, sizeof block, (n % 64) * 4096) != sizeof block || fdatasync(fd) != 0)
            return 1;
        n++;
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed = (now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    } while (elapsed < 2);
    printf("%.0f\n", n / elapsed);
    return 0;
}
EOF
cc -O2 -o "$BENCH_TMP/fsync_rate" "$BENCH_TMP/fsync_rate.c" || bench_die "cannot compile the fsync probe"

# ---- data ---------------------------------------------------------------------

{ "$STRATA" migrate --db "$DB" && "$STRATA" site create "$SITE" --db "$DB"; } >"$BENCH_TMP/migrate.log" 2>&1 ||
    bench_die "preparing the database failed: $(cat "$BENCH_TMP/migrate.log")"
# One write token (one editor) per item: the per-token rate limit
# (limits.write_rps) stays at its default, as each editor's own.
declare -a TOKENS
for ((n = 0; n < ITEMS; n++)); do
    TOKENS[n]=$("$STRATA" token create --db "$DB" --site "$SITE" --role write --name "editor$n" 2>"$BENCH_TMP/token.log") ||
        bench_die "strata token create failed: $(cat "$BENCH_TMP/token.log")"
done
TOKEN=${TOKENS[0]}

bench_strata_start strata
BASE="http://127.0.0.1:$STRATA_PORT/v1/$SITE"

# ITEMS drafts; prints their ids on one line.
IDS=$(python3 - "$STRATA_PORT" "$TOKEN" "$ITEMS" <<'EOF'
import http.client, json, sys
port, token, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
text = " ".join("Paragraph %d of an article being edited in the newsroom." % i for i in range(25))
ids = []
for n in range(count):
    c.request("POST", "/v1/main/content", headers=h,
              body=json.dumps({"type": "post", "slug": "writes-%05d" % n, "title": "Article %d" % n, "body": text}))
    r = c.getresponse(); data = r.read()
    if r.status != 201:
        sys.exit("POST /v1/main/content: %d %s" % (r.status, data[:200]))
    ids.append(str(json.loads(data)["id"]))
print(" ".join(ids))
EOF
) || bench_die "making the items failed"

# A wrk script: thread k of THREADS takes items k, k+T, …, and PUTs (save)
# or POSTs (autosave, If-Match each item's current version) them in turn.
write_lua() { # OUT KIND ID...
    local out=$1 kind=$2
    shift 2
    {
        printf -- '-- generated by bench/writes.sh\nlocal kind = "%s"\nlocal threads = %s\nlocal items = {\n' \
            "$kind" "${THREADS:-2}"
        local id version n=0
        for id in "$@"; do
            version=1
            if [[ $kind == autosave ]]; then
                version=$(curl -sS --max-time 10 -o /dev/null -D - -H "Authorization: Bearer ${TOKENS[n]}" "$BASE/content/$id/draft" |
                    tr -d '\r' | awk -F'"v' 'tolower($0) ~ /^etag:/ { sub(/".*/, "", $2); print $2 }')
                [[ $version =~ ^[0-9]+$ ]] || bench_die "reading item $id's version failed"
            fi
            printf '  {id = %s, version = %s, auth = "Bearer %s"},\n' "$id" "$version" "${TOKENS[n]}"
            n=$((n + 1))
        done
        cat <<'EOF'
}
local started = 0
function setup(thread)
  thread:set("index", started)
  started = started + 1
end
local mine, i, n = {}, 0, 0
function init(args)
  local k = tonumber(index) or 0
  for j = k + 1, #items, threads do mine[#mine + 1] = items[j] end
  if #mine == 0 then mine = items end
end
function request()
  i = i % #mine + 1
  n = n + 1
  local it = mine[i]
  local h = {["Authorization"] = it.auth, ["Content-Type"] = "application/json"}
  if kind == "save" then
    h["If-Match"] = "*"
    return wrk.format("PUT", "/v1/main/content/" .. it.id, h,
      '{"title":"Edit ' .. n .. '","excerpt":"Saved by bench/writes.sh, edit ' .. n .. ' of this connection"}')
  end
  h["If-Match"] = '"v' .. it.version .. '"'
  return wrk.format("POST", "/v1/main/content/" .. it.id .. "/autosave", h,
    '{"title":"Typing ' .. n .. '","body":"Autosaved text, keystroke ' .. n .. '"}')
end
EOF
    } >"$out"
}
read -r -a ID_LIST <<<"$IDS"
write_lua "$BENCH_TMP/save.lua" save "${ID_LIST[@]}"

# Jobs queued and not yet run (diff jobs have no unique key: a finished one
# is deleted), read beside the server (WAL: readers never block it).
jobs_pending() {
    python3 -c 'import sqlite3,sys
c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=5)
print(c.execute("SELECT count(*) FROM jobs WHERE unique_key IS NULL AND failed_at IS NULL").fetchone()[0])' "$DB"
}

# Runs the runner's queue empty (bounded: 120 s).
jobs_drain() {
    local deadline=$((SECONDS + 120))
    while (($(jobs_pending) > 0 && SECONDS < deadline)); do sleep 0.5; done
}

bench_wait_quiet "$QUIET_LOAD" "$QUIET_WAIT"
LOAD_START=$(bench_load1)
FSYNC_RATE=$("$BENCH_TMP/fsync_rate" "$BENCH_TMP/fsync.probe") || bench_die "the fsync probe failed"

declare -A RPS P50 P99 MAX NON2XX
record() { # NAME
    RPS[$1]=$WRK_RPS P50[$1]=$WRK_P50_MS P99[$1]=$WRK_P99_MS NON2XX[$1]=$((WRK_NON2XX + WRK_ERRORS))
    MAX[$1]=$(awk '/^ *Latency/ && !done { v = $4; done = 1
        if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) sub(/ms$/, "", v)
        else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
        printf "%.3f\n", v }' "$BENCH_TMP/wrk-$1.txt")
}
# A measured wrk run without a warm-up (after_burst must start at once).
wrk_now() { # NAME SCRIPT
    local out="$BENCH_TMP/wrk-$1.txt"
    bench_log "$1: wrk -t${THREADS:-2} -c${CONNS:-16} -d$DURATION --latency (no warm-up)"
    wrk -t"${THREADS:-2}" -c"${CONNS:-16}" -d"$DURATION" --latency -s "$2" "$BASE/content" >"$out" 2>&1 ||
        bench_die "wrk failed: $(cat "$out")"
    bench_check_alive "$STRATA_PID" strata "$STRATA_LOG"
    bench_wrk_parse "$out"
}

THREADS=1 CONNS=1 bench_wrk_args one_writer "$BASE/content" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/save.lua"
record one_writer
jobs_drain
THREADS=2 CONNS=16 bench_wrk_args saves "$BASE/content" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/save.lua"
record saves
PENDING_START=$(jobs_pending)
THREADS=2 CONNS=16 wrk_now after_burst "$BENCH_TMP/save.lua"
record after_burst
PENDING_END=$(jobs_pending)
jobs_drain
write_lua "$BENCH_TMP/autosave.lua" autosave "${ID_LIST[@]}"
THREADS=2 CONNS=16 bench_wrk_args autosave "$BASE/content" "$STRATA_PID" "$STRATA_LOG" -s "$BENCH_TMP/autosave.lua"
record autosave
LOAD_END=$(bench_load1)
bench_strata_stop "$STRATA_PID" "$STRATA_LOG" strata
# The commit group's own count, logged when it closes at shutdown: the
# writes (saves, autosaves, the job runner's) its commits carried.
GROUP=$(python3 -c 'import json,sys
for line in open(sys.argv[1]):
    try: r = json.loads(line)
    except ValueError: continue
    if r.get("msg") == "commit group closed":
        print("%d %d %.2f" % (r["writes"], r["commits"], r["writes"] / r["commits"]))' "$STRATA_LOG")
read -r GROUP_WRITES GROUP_COMMITS WRITES_PER_COMMIT <<<"${GROUP:-n/a n/a n/a}"

# ---- report ---------------------------------------------------------------------

printf '\nwrites: strata %s, tree %s; %s items; disk %s fsyncs/s; load %s at start, %s at end\n' \
    "$STRATA_ID" "$GIT_ID" "$ITEMS" "$FSYNC_RATE" "$LOAD_START" "$LOAD_END"
printf '%-12s %10s %9s %9s %9s %8s   %s\n' target req/s p50_ms p99_ms max_ms non2xx wrk
for t in one_writer saves after_burst autosave; do
    conc="-t2 -c16"
    [[ $t == one_writer ]] && conc="-t1 -c1"
    printf '%-12s %10s %9s %9s %9s %8s   %s\n' "$t" "${RPS[$t]}" "${P50[$t]}" "${P99[$t]}" "${MAX[$t]}" "${NON2XX[$t]}" "$conc"
done
printf 'diff jobs pending: %s when after_burst started, %s when it ended\n' "$PENDING_START" "$PENDING_END"
printf 'saves/s per disk fsync/s: one writer %s, 16 connections %s\n' \
    "$(bench_ratio "${RPS[one_writer]}" "$FSYNC_RATE")" "$(bench_ratio "${RPS[saves]}" "$FSYNC_RATE")"
printf 'commit group, whole run: %s writes in %s commits, %s writes per commit (fsync)\n' \
    "$GROUP_WRITES" "$GROUP_COMMITS" "$WRITES_PER_COMMIT"
verdict_saves() { # NAME
    if [[ ${NON2XX[$1]} == 0 && $(bench_verdict_ge "${RPS[$1]}" 2000) == PASS && $(bench_verdict_le "${P99[$1]}" 50) == PASS ]]; then
        echo PASS
    else
        echo FAIL
    fi
}
V_SAVES=$(verdict_saves saves)
V_BURST=$(verdict_saves after_burst)
V_AUTOSAVE=$(bench_verdict_le "${P99[autosave]}" 10)
[[ ${NON2XX[autosave]} == 0 ]] || V_AUTOSAVE=FAIL
printf 'targets of issue 15:\n'
printf '  saves, 16 connections        %8s/s p99 %6s ms  target >= 2000/s, p99 <= 50 ms, all 2xx   %s\n' \
    "${RPS[saves]}" "${P99[saves]}" "$V_SAVES"
printf '  saves while jobs run         %8s/s p99 %6s ms  target >= 2000/s, p99 <= 50 ms, all 2xx   %s\n' \
    "${RPS[after_burst]}" "${P99[after_burst]}" "$V_BURST"
printf '  autosave, 16 connections     p99 %6s ms            target <= 10 ms, all 2xx                 %s\n' \
    "${P99[autosave]}" "$V_AUTOSAVE"
printf 'RESULT writes saves_rps=%s saves_p50_ms=%s saves_p99_ms=%s saves_max_ms=%s saves_non2xx=%s burst_rps=%s burst_p99_ms=%s burst_max_ms=%s burst_non2xx=%s jobs_pending_start=%s jobs_pending_end=%s autosave_rps=%s autosave_p99_ms=%s autosave_non2xx=%s one_writer_rps=%s fsyncs_per_s=%s writes_per_commit=%s target_saves=%s target_burst=%s target_autosave=%s load_start=%s load_end=%s quiet=%s\n' \
    "${RPS[saves]}" "${P50[saves]}" "${P99[saves]}" "${MAX[saves]}" "${NON2XX[saves]}" \
    "${RPS[after_burst]}" "${P99[after_burst]}" "${MAX[after_burst]}" "${NON2XX[after_burst]}" \
    "$PENDING_START" "$PENDING_END" "${RPS[autosave]}" "${P99[autosave]}" "${NON2XX[autosave]}" \
    "${RPS[one_writer]}" "$FSYNC_RATE" "$WRITES_PER_COMMIT" "$V_SAVES" "$V_BURST" "$V_AUTOSAVE" "$LOAD_START" "$LOAD_END" "$BENCH_QUIET"
