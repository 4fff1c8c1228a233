#!/usr/bin/env bash
#
# bench/soak.sh — strata under a steady mixed load for a long time (issue
# 17: default 30 minutes), to see what only time shows: memory or
# descriptors that creep up, a WAL that never shrinks, a p99 that drifts.
#
# What runs, bounded by SOAK_S (default 1800):
#   - strata as it ships (SQLite, response and object caches, access log at
#     info), with a Redis L2 and bus; of its log only the events and the
#     answers other than 2xx/3xx are kept (strata.log in the temp dir, its
#     5xx counted by second at the end, the first five printed), so the disk
#     is not the soak's limit;
#   - readers: wrk, READ_CONNS connections (16), each pausing READ_DELAY_MS
#     (1) between requests: items by id, list pages (sorts, tags), and a
#     view beacon now and then (5 %);
#   - editors: wrk, EDIT_CONNS connections (4), each pausing EDIT_DELAY_MS
#     (100): saves (If-Match *), autosaves and publishes of EDIT_ITEMS items;
#   - Redis restarted every REDIS_RESTART_S (180): the bus and the L2 drop
#     and come back;
#   - a sample every SAMPLE_S (10): strata's RSS (and its anonymous part,
#     with the heap's bytes allocated and held free, and of the free bytes
#     those inside pages still in use and the allocator's metadata
#     (jemalloc's statistics, 0 on glibc), from the JSON summary: where
#     growth is) and open descriptors, the
#     caches' bytes (the L1 and object cache; the history cache apart),
#     the WAL's size, the p99 of the requests answered since
#     the previous sample (from /metrics' histograms), and reads answered
#     5xx so far.
# Before the load, the history cache is aged (PREFILL_S, at most 240 s):
# the editors' items are saved (16 connections, no pause) until the
# cache holds 95 % of its bound and the saves' diff jobs have run. Under
# the soak's saves it fills by a rendered diff per save, about 1.2 MB a
# minute here: left to the soak it would still be filling at its end, and
# its growth would read as the process's. A server that has run for a day
# has every bounded cache full of what its traffic puts there; the soak
# measures from there. So the ageing saves are the soak's own, titles of
# the same width ("Soaked" and six digits, in both): a document of another
# size lands in another of the allocator's size classes, and while the
# soak's documents replaced the ageing's (the cache turns over in some 50
# minutes) the class they left kept ever more holes in its pages — 7.3 MB
# of jemalloc's 768-byte class free at the end of a run whose ageing
# titles ("Aged N") were two characters shorter, and RSS growing with it
# (docs/benchmarks.md, session of 2026-12-06 03:17).
# Then the slopes: RSS and descriptors fitted over the samples after the
# warm-up (the first WARMUP_PCT %, 34: ten minutes of the default half
# hour; it was 20 until a run on jemalloc showed the allocator's free
# pages settling only after 10–15 minutes — docs/benchmarks.md, session of
# 2026-12-05 evening: the warm-up was set before the run judged by it),
# as growth per 10 minutes against
# their mean, and the same for RSS less the caches' bytes (what grows
# beyond the bounded caches is what a leak would look like), and the
# largest interval p99 against the largest of the first 5 minutes (or the
# first half of a shorter soak).
#
# Bars (issue 17), printed PASS/FAIL: RSS and fd growth under 1 % per 10
# minutes after warm-up, no read answered 5xx, p99 within 2× of its first
# minutes. The last line is `RESULT soak …`; the exit status is 0 when the
# run completed with no read 5xx (the slopes are for a person to judge on
# a short or sanitizer-built run: `make test` runs 60 s of it on the ASan
# build).
#
# Usage: bench/soak.sh         (needs build/strata, wrk, curl, python3, redis-server)
#   SOAK_S=1800 SAMPLE_S=10 REDIS_RESTART_S=180 READ_CONNS=16 EDIT_CONNS=4
#   READ_DELAY_MS=1 EDIT_DELAY_MS=100 EDIT_ITEMS=40 ITEMS=300 WARMUP_PCT=34
#   SEED_VERSIONS=12 PREFILL_S=240 (0: no ageing of the history cache)
#   STRATA=path BENCH_KEEP_TMP=1
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_DIR/lib.sh"

SOAK_S=${SOAK_S:-1800}
SAMPLE_S=${SAMPLE_S:-10}
REDIS_RESTART_S=${REDIS_RESTART_S:-180}
READ_CONNS=${READ_CONNS:-16}
EDIT_CONNS=${EDIT_CONNS:-4}
READ_DELAY_MS=${READ_DELAY_MS:-1}
EDIT_DELAY_MS=${EDIT_DELAY_MS:-100}
EDIT_ITEMS=${EDIT_ITEMS:-40}
ITEMS=${ITEMS:-300}
WARMUP_PCT=${WARMUP_PCT:-34}
SEED_VERSIONS=${SEED_VERSIONS:-12}
PREFILL_S=${PREFILL_S:-240}
STRATA=${STRATA:-$REPO/build/strata}

bench_require wrk curl python3 redis-server redis-cli
[[ -x $STRATA ]] || bench_die "$STRATA not found: run \`make\` first"
bench_init
DB=$BENCH_TMP/soak.db

# ---- data and tokens ------------------------------------------------------------

"$STRATA" seed --db "$DB" --items "$ITEMS" --versions "$SEED_VERSIONS" >"$BENCH_TMP/seed.log" 2>&1 || bench_die "seed failed: $(tail -3 "$BENCH_TMP/seed.log")"
WRITE_TOKEN=$("$STRATA" token create --db "$DB" --site main --role write --name soak-editor)
ADMIN_TOKEN=$("$STRATA" token create --db "$DB" --site main --role admin --name soak-admin)

# ---- Redis and strata --------------------------------------------------------------

REDIS_PORT=$(bench_free_port)
redis_start() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >>"$BENCH_TMP/redis.log" 2>&1 </dev/null &
    REDIS_PID=$!
    bench_track_pid "$REDIS_PID" redis
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
    bench_die "redis-server did not start"
}
redis_start

STRATA_PORT=$(bench_free_port)
"$STRATA" serve --db "$DB" --listen "127.0.0.1:$STRATA_PORT" --redis "redis://127.0.0.1:$REDIS_PORT" \
    --limits-client-rps 0 --limits-read-rps 0 --limits-write-rps 0 --limits-admin-rps 0 </dev/null >/dev/null \
    2> >(grep --line-buffered -v '"msg":"request".*"status":[23]' >"$BENCH_TMP/strata.log") &
STRATA_PID=$!
bench_track_pid "$STRATA_PID" strata
BASE="http://127.0.0.1:$STRATA_PORT"
bench_wait_url "$BASE/healthz" 15 "$STRATA_PID"

IDS=$(curl -fsS "$BASE/v1/main/content?limit=100" | python3 -c 'import json,sys; print(" ".join(str(i["id"]) for i in json.load(sys.stdin)["items"]))')
[[ -n $IDS ]] || bench_die "no published items"
EDIT_IDS=$(tr ' ' '\n' <<<"$IDS" | head -n "$EDIT_ITEMS" | tr '\n' ' ')

# ---- the history cache aged to its bound ---------------------------------------------

# Prints "bytes max_bytes bytes_coming jobs_due": the history cache's bytes and
# bound, what the diff jobs still due will add (as many documents again of
# the cache's mean size: 1 KB before it holds any) and how many they are.
history_fill() {
    curl -fsS -H "Authorization: Bearer $ADMIN_TOKEN" "$BASE/api/performance/metrics" |
        python3 -c 'import json,sys; m=json.load(sys.stdin); c=m["history"]["cache"]; j=m.get("jobs") or {}
due = int(j.get("due", 0)) + int(j.get("running", 0))
mean = c["bytes"] // c["entries"] if c["entries"] else 1024
print(c["bytes"], c["max_bytes"], due * mean, due)'
}
if ((PREFILL_S > 0)); then
    cat >"$BENCH_TMP/prefill.lua" <<EOF
local ids = { $(sed 's/ \+/, /g; s/, *$//' <<<"$EDIT_IDS") }
local n = 0
local h = { ["Authorization"] = "Bearer $WRITE_TOKEN", ["Content-Type"] = "application/json", ["If-Match"] = "*" }
function request()
  n = n + 1
  return wrk.format("PUT", "/v1/main/content/" .. ids[math.random(#ids)], h, '{"title":"Soaked ' .. 100000 + n .. '"}')
end
EOF
    prefill_end=$((SECONDS + PREFILL_S))
    read -r hist_bytes hist_max hist_coming jobs_due < <(history_fill)
    while ((SECONDS < prefill_end)) && ((hist_bytes * 100 < hist_max * 95 || jobs_due > 0)); do
        if (((hist_bytes + hist_coming) * 100 < hist_max * 95)); then
            wrk -t1 -c16 -d2s -s "$BENCH_TMP/prefill.lua" "$BASE" >>"$BENCH_TMP/prefill.wrk" 2>&1 || true
        else
            sleep 1 # the saves' diff jobs still running: the writer is theirs now
        fi
        read -r hist_bytes hist_max hist_coming jobs_due < <(history_fill)
    done
    bench_log "history cache aged: $((hist_bytes >> 20)) of $((hist_max >> 20)) MB in $((SECONDS - prefill_end + PREFILL_S)) s" \
        "($(grep -h 'requests in' "$BENCH_TMP/prefill.wrk" | awk '{n += $1} END {print n + 0}') saves; $jobs_due diff jobs left)"
fi

# ---- the load ------------------------------------------------------------------------

cat >"$BENCH_TMP/read.lua" <<EOF
local ids = { $(sed 's/ \+/, /g; s/, *$//' <<<"$IDS") }
local sorts = { "-published_at", "title", "-updated_at", "published_at" }
local n = 0
function delay() return $READ_DELAY_MS end
function request()
  n = n + 1
  local id = ids[math.random(#ids)]
  local r = n % 20
  if r == 0 then
    return wrk.format("POST", "/v1/main/content/" .. id .. "/views")
  elseif r < 6 then
    return wrk.format("GET", "/v1/main/content?limit=20&sort=" .. sorts[r % #sorts + 1])
  end
  return wrk.format("GET", "/v1/main/content/" .. id)
end
EOF
cat >"$BENCH_TMP/edit.lua" <<EOF
local ids = { $(sed 's/ \+/, /g; s/, *$//' <<<"$EDIT_IDS") }
local n = 0
local auth = "Bearer $WRITE_TOKEN"
function delay() return $EDIT_DELAY_MS end
function request()
  n = n + 1
  local id = ids[math.random(#ids)]
  local h = { ["Authorization"] = auth, ["Content-Type"] = "application/json", ["If-Match"] = "*" }
  local r = n % 10
  if r < 6 then
    return wrk.format("PUT", "/v1/main/content/" .. id, h, '{"title":"Soaked ' .. 500000 + n .. '"}')
  elseif r < 9 then
    return wrk.format("POST", "/v1/main/content/" .. id .. "/autosave", h, '{"body":"autosaved ' .. 500000 + n .. '"}')
  end
  return wrk.format("POST", "/v1/main/content/" .. id .. "/publish", h)
end
EOF

bench_log "soak: ${SOAK_S}s, readers -c$READ_CONNS (${READ_DELAY_MS} ms apart), editors -c$EDIT_CONNS (${EDIT_DELAY_MS} ms apart), Redis restarted every ${REDIS_RESTART_S}s"
wrk -t1 -c"$READ_CONNS" -d"${SOAK_S}s" --timeout 10s -s "$BENCH_TMP/read.lua" "$BASE" >"$BENCH_TMP/read.wrk" 2>&1 &
READ_PID=$!
bench_track_pid "$READ_PID" wrk-read
wrk -t1 -c"$EDIT_CONNS" -d"${SOAK_S}s" --timeout 10s -s "$BENCH_TMP/edit.lua" "$BASE" >"$BENCH_TMP/edit.wrk" 2>&1 &
EDIT_PID=$!
bench_track_pid "$EDIT_PID" wrk-edit

# Redis restarts, in the background, bounded by the soak's end.
(
    end=$((SECONDS + SOAK_S))
    while ((SECONDS + REDIS_RESTART_S < end)); do
        sleep "$REDIS_RESTART_S"
        redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        sleep 1
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >>"$BENCH_TMP/redis.log" 2>&1 </dev/null &
        echo $! >"$BENCH_TMP/redis.pid"
        echo "$SECONDS" >>"$BENCH_TMP/redis.restarts"
    done
) &
RESTARTER_PID=$!
bench_track_pid "$RESTARTER_PID" redis-restarter

# ---- the samples and the verdict ---------------------------------------------------------------

set +e
python3 - "$STRATA_PID" "$BASE" "$ADMIN_TOKEN" "$DB-wal" "$SOAK_S" "$SAMPLE_S" "$WARMUP_PCT" <<'EOF' | tee "$BENCH_TMP/samples.txt"
import http.client, json, os, re, sys, time
pid, base, admin, wal, soak_s, sample_s, warmup_pct = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], \
    int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
host, port = base.split("//")[1].split(":")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

def get(path, token=None):
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
    r = c.getresponse(); body = r.read(); c.close()
    return body.decode()

def histogram_and_5xx():
    buckets, reads_5xx = {}, 0
    for line in get("/metrics", admin).splitlines():
        m = SAMPLE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(3) or ""))
        if m.group(1) == "strata_http_request_duration_seconds_bucket":
            le = float(labels["le"]) if labels["le"] != "+Inf" else float("inf")
            buckets[le] = buckets.get(le, 0) + float(m.group(4))
        elif m.group(1) == "strata_http_requests_total" and labels.get("method") == "GET" and labels.get("code_class") == "5xx":
            reads_5xx += float(m.group(4))
    return buckets, reads_5xx

def p99(now, before):
    les = sorted(now)
    counts = [now[le] - before.get(le, 0) for le in les]
    total = counts[-1] if counts else 0
    if total <= 0:
        return 0.0, 0
    for le, c in zip(les, counts):
        if c >= 0.99 * total:
            return le * 1000, int(total)
    return les[-1] * 1000, int(total)

def status_kb():  # VmRSS and its anonymous part (the heap; the rest is the binary and mapped files)
    kb = {}
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(("VmRSS:", "RssAnon:")):
            kb[line.split(":")[0]] = int(line.split()[1])
    return kb["VmRSS"], kb["RssAnon"]

def cache_bytes():
    s = json.loads(get("/v1/cache/stats", admin))
    return s.get("all_sites", {}).get("bytes", 0) + s.get("objects", {}).get("bytes", 0)

def summary_bytes():  # the history cache's bytes; the heap's bytes allocated, held free, and of those fragmented and metadata
    s = json.loads(get("/api/performance/metrics", admin))
    memory = s.get("memory", {})
    return (s.get("history", {}).get("cache", {}).get("bytes", 0), memory.get("heap_in_use_bytes", 0),
            memory.get("heap_free_bytes", 0), memory.get("heap_fragmented_bytes", 0),
            memory.get("heap_metadata_bytes", 0))

samples, started, before = [], time.monotonic(), None
print(f"{'t_s':>6} {'rss_MB':>8} {'anon_MB':>8} {'heap_MB':>8} {'free_MB':>8} {'frag_MB':>8} {'meta_MB':>8} {'fds':>5} {'cache_MB':>9} {'hist_MB':>8} {'wal_MB':>7} {'p99_ms':>8} {'requests':>9} {'read_5xx':>8}")
while time.monotonic() - started < soak_s - 1:
    time.sleep(min(sample_s, max(0.5, soak_s - 1 - (time.monotonic() - started))))
    try:
        buckets, reads_5xx = histogram_and_5xx()
        t = time.monotonic() - started
        ms, n = p99(buckets, before or {})
        before = buckets
        rss, anon = status_kb()
        hist, heap, heap_free, frag, meta = summary_bytes()
        row = {"t": t, "rss": rss / 1024, "anon": anon / 1024, "heap": heap / 2**20, "free": heap_free / 2**20,
               "frag": frag / 2**20, "meta": meta / 2**20,
               "fds": len(os.listdir(f"/proc/{pid}/fd")), "cache": cache_bytes() / 2**20, "hist": hist / 2**20,
               "wal": (os.path.getsize(wal) if os.path.exists(wal) else 0) / 2**20, "p99": ms, "n": n, "r5xx": reads_5xx}
    except (OSError, ValueError, KeyError, http.client.HTTPException) as e:
        print(f"sample failed: {e}", file=sys.stderr)
        continue
    row["rest"] = row["rss"] - row["cache"] - row["hist"]  # what no bounded cache explains
    samples.append(row)
    print(f"{row['t']:6.0f} {row['rss']:8.1f} {row['anon']:8.1f} {row['heap']:8.1f} {row['free']:8.1f} {row['frag']:8.1f} {row['meta']:8.1f} {row['fds']:5d} {row['cache']:9.1f} {row['hist']:8.1f} {row['wal']:7.1f} {row['p99']:8.2f} {row['n']:9d} {int(row['r5xx']):8d}", flush=True)

def growth_per_10min(key):
    pts = [(s["t"], s[key]) for s in samples[int(len(samples) * warmup_pct / 100):]]
    if len(pts) < 3:
        return float("nan")
    mt = sum(t for t, _ in pts) / len(pts); mv = sum(v for _, v in pts) / len(pts)
    slope = sum((t - mt) * (v - mv) for t, v in pts) / max(1e-9, sum((t - mt) ** 2 for t, _ in pts))
    return 100 * slope * 600 / mv if mv else float("nan")

rss_g, fds_g, rest_g = growth_per_10min("rss"), growth_per_10min("fds"), growth_per_10min("rest")
first_window = min(300, soak_s / 2)
early = [s["p99"] for s in samples if s["t"] <= first_window and s["n"] > 0] or [0.0]
late = [s["p99"] for s in samples if s["t"] > first_window and s["n"] > 0] or [0.0]
p99_ratio = max(late) / max(early) if max(early) > 0 else float("nan")
reads_5xx = int(samples[-1]["r5xx"]) if samples else -1
verdict = lambda ok: "PASS" if ok else "FAIL"
print(f"RSS growth after warm-up: {rss_g:+.2f} %/10 min  {verdict(abs(rss_g) < 1)} (bar ±1 %)")
print(f"  of which not the caches (RSS − L1, object and history caches' bytes, each bounded): {rest_g:+.2f} %/10 min")
heap_detail = (f"the heap's bytes allocated {growth_per_10min('heap'):+.2f} %/10 min, held free "
               f"{growth_per_10min('free'):+.2f} %/10 min (inside pages in use {growth_per_10min('frag'):+.2f}, "
               f"metadata {growth_per_10min('meta'):+.2f})" if any(s["heap"] for s in samples)
               else "no allocator statistics (not built on jemalloc: a sanitizer's build)")
print(f"  anonymous (the heap): {growth_per_10min('anon'):+.2f} %/10 min; {heap_detail}")
print(f"fd growth after warm-up:  {fds_g:+.2f} %/10 min  {verdict(abs(fds_g) < 1)} (bar ±1 %)")
print(f"p99: largest {max(late):.2f} ms after {first_window:.0f} s, {max(early):.2f} ms before: {p99_ratio:.2f}×  {verdict(p99_ratio <= 2)} (bar 2×)")
print(f"reads answered 5xx: {reads_5xx}  {verdict(reads_5xx == 0)}")
print(f"RESULT soak seconds={soak_s} samples={len(samples)} rss_growth_pct_10min={rss_g:.3f} fds_growth_pct_10min={fds_g:.3f} "
      f"p99_ratio={p99_ratio:.2f} reads_5xx={reads_5xx} rss_mb_last={samples[-1]['rss'] if samples else 0:.1f} "
      f"rest_growth_pct_10min={rest_g:.3f} hist_mb_last={samples[-1]['hist'] if samples else 0:.1f}")
sys.exit(0 if samples and reads_5xx == 0 else 1)
EOF
STATUS=${PIPESTATUS[0]}
set -e
wait "$READ_PID" "$EDIT_PID" 2>/dev/null || true
bench_untrack_pid "$READ_PID"
bench_untrack_pid "$EDIT_PID"
bench_log "readers: $(grep -E 'requests in|Non-2xx' "$BENCH_TMP/read.wrk" | tr -s ' ' | tr '\n' ';')"
bench_log "editors: $(grep -E 'requests in|Non-2xx' "$BENCH_TMP/edit.wrk" | tr -s ' ' | tr '\n' ';')"
bench_log "strata's log (events and answers other than 2xx/3xx): $(wc -l <"$BENCH_TMP/strata.log") lines; its 5xx answers by second:" \
    "$(grep '"msg":"request"' "$BENCH_TMP/strata.log" | grep '"status":5' | cut -c8-26 | uniq -c | head -20 | tr -s ' \n' ' ')"
grep '"msg":"request"' "$BENCH_TMP/strata.log" | grep '"status":5' | head -5 | cut -c1-400 | while read -r line; do bench_log "  $line"; done || true
bench_log "Redis restarts at: $(cat "$BENCH_TMP/redis.restarts" 2>/dev/null | tr '\n' ' ' | grep . || echo none)"
if [[ -s $BENCH_TMP/redis.pid ]]; then
    RESTARTED=$(cat "$BENCH_TMP/redis.pid")
    bench_track_pid "$RESTARTED" redis-restarted
fi
kill -0 "$STRATA_PID" 2>/dev/null || bench_die "strata died during the soak"
exit "$STATUS"
