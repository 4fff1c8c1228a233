# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here (WRK_*, BENCH_*) are read by the benches
#
# bench/lib.sh — helpers shared by the benchmark scripts in bench/.
#
# Source it from a bench script (which sets `set -euo pipefail` itself):
#
#     . "$(dirname "$0")/lib.sh"
#     bench_init                     # temp dir in $BENCH_TMP, cleanup trap
#     bench_require wrk nginx curl   # or print the apt-get line and exit 1
#     port=$(bench_free_port)
#     ... start a server ...; bench_track_pid $! "strata"
#     bench_wait_url "http://127.0.0.1:$port/healthz" 10
#     bench_nginx_start "$BENCH_TMP/www" "$(bench_free_port)"
#     bench_wrk strata "http://127.0.0.1:$port/…"   # sets WRK_* variables
#
# Rules every bench keeps, and this file enforces where it can:
#   - loopback only: every server listens on 127.0.0.1, every URL is there;
#   - everything a run writes lives under one temp dir, removed at exit;
#   - only processes the bench started are stopped, by their PID, at exit
#     (TERM, then KILL after a grace period) — never by name;
#   - a reference server (nginx serving the same bytes from a file) is
#     measured in the same run, so results are read as ratios against it:
#     the machines are shared and noisy, absolute numbers drift.
#
# Tunables (environment):
#   DURATION   measured wrk run per target (default 10s)
#   WARMUP     wrk warm-up run per target, not reported (default 2s)
#   THREADS    wrk threads (default 2)
#   CONNS      wrk connections (default 64)
#   BENCH_KEEP_TMP=1  keep the temp dir (logs, configs) for a post-mortem

# ---- messages ----------------------------------------------------------------

bench_log() { printf '%s\n' "bench: $*" >&2; }
bench_die() {
    printf '%s\n' "bench: error: $*" >&2
    exit 1
}

# ---- tools -------------------------------------------------------------------

# bench_require TOOL... — every TOOL must be on PATH (nginx is often in
# /usr/sbin, which a non-root PATH may lack: it is added). Otherwise prints
# the apt-get command that installs the missing ones and exits 1.
bench_require() {
    local tool pkgs=() missing=()
    case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        missing+=("$tool")
        case "$tool" in
        nginx) pkgs+=(nginx-light) ;;
        h2o) pkgs+=(h2o) ;;
        h2load) pkgs+=(nghttp2-client) ;;
        redis-server | redis-cli) pkgs+=(redis-server) ;;
        *) pkgs+=("$tool") ;;
        esac
    done
    if ((${#missing[@]})); then
        printf 'bench: missing: %s\n' "${missing[*]}" >&2
        printf 'bench: install with: apt-get install -y %s\n' "${pkgs[*]}" >&2
        exit 1
    fi
}

# ---- temp dir, processes, cleanup --------------------------------------------

BENCH_TMP=""
BENCH_PIDS=()  # PIDs started by this bench, stopped at exit in reverse order
BENCH_NAMES=() # a name for each, for messages

# bench_init — makes $BENCH_TMP and installs the cleanup trap. The temp dir
# is world-readable (0755) so that nginx workers, which drop privileges when
# started as root, can read the files they serve.
bench_init() {
    BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
    chmod 755 "$BENCH_TMP"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# bench_track_pid PID NAME — remember a process to stop at exit.
bench_track_pid() {
    BENCH_PIDS+=("$1")
    BENCH_NAMES+=("${2:-pid $1}")
}

# bench_stop_pid PID [SIGNAL] — stop one process we started: SIGNAL (default
# TERM), wait up to 5 s for it to go, then KILL. Returns 0 even if it was
# already gone; sets BENCH_STOP_STATUS to its exit status as `wait` gives it
# (0 for a clean exit, 128+N for death by signal N; a process that was
# already reaped gives 127).
BENCH_STOP_STATUS=0
bench_stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    BENCH_STOP_STATUS=0
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || BENCH_STOP_STATUS=$?
        return 0
    fi
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        bench_log "pid $pid did not stop on SIG$sig in 5 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || BENCH_STOP_STATUS=$?
}

# bench_untrack_pid PID — forget a PID (after stopping it by hand).
bench_untrack_pid() {
    local i
    for i in "${!BENCH_PIDS[@]}"; do
        if [[ ${BENCH_PIDS[$i]} == "$1" ]]; then BENCH_PIDS[i]=""; fi
    done
    return 0
}

# bench_cleanup — the EXIT trap: stops tracked processes (newest first),
# removes the temp dir unless BENCH_KEEP_TMP=1.
bench_cleanup() {
    local rc=$? i pid
    trap - EXIT
    set +e
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${BENCH_PIDS[$i]}
        [[ -n $pid ]] || continue
        if [[ ${BENCH_NAMES[$i]} == nginx ]]; then
            bench_stop_pid "$pid" QUIT # nginx: graceful shutdown of workers
        else
            bench_stop_pid "$pid" TERM
        fi
    done
    if [[ -n $BENCH_TMP && -d $BENCH_TMP ]]; then
        if [[ ${BENCH_KEEP_TMP:-0} == 1 ]]; then
            bench_log "kept $BENCH_TMP"
        else
            rm -rf -- "$BENCH_TMP"
        fi
    fi
    exit "$rc"
}

# bench_check_alive PID NAME LOG — fails with the tail of LOG if PID is gone.
bench_check_alive() {
    if ! kill -0 "$1" 2>/dev/null; then
        bench_log "$2 (pid $1) exited; last lines of $3:"
        tail -n 20 "$3" >&2 2>/dev/null || true
        exit 1
    fi
}

# ---- ports and readiness -----------------------------------------------------

# bench_port_in_use PORT — true if something listens on 127.0.0.1:PORT.
bench_port_in_use() {
    if command -v ss >/dev/null 2>&1; then
        ss -Htan "sport = :$1" 2>/dev/null | grep -q . && return 0
    fi
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# bench_free_port — prints a free TCP port on 127.0.0.1, chosen at random
# below the kernel's ephemeral range (ip_local_port_range; 10000..32767 on
# Debian): the load generators' thousands of client sockets take their
# ports from that range, and one of them (even closing) would make the
# server's bind fail. Random so concurrent benches rarely collide; a server
# that fails to bind still fails loudly in bench_wait_url.
bench_free_port() {
    local port i low
    low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    ((low > 11000)) || low=32768
    for ((i = 0; i < 100; i++)); do
        port=$((10000 + (RANDOM * 32768 + RANDOM) % (low - 10000)))
        bench_port_in_use "$port" || {
            echo "$port"
            return 0
        }
    done
    bench_die "no free port found in 100 tries"
}

# bench_wait_url URL [TIMEOUT_S] [PID] — waits until URL answers 2xx; fails
# after TIMEOUT_S (default 10), or at once if PID (the server) has exited.
bench_wait_url() {
    local url=$1 timeout=${2:-10} pid=${3:-} deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            bench_die "server (pid $pid) exited before $url answered"
        fi
        sleep 0.1
    done
    bench_die "$url did not answer 2xx within ${timeout}s"
}

# ---- nginx, the reference server ---------------------------------------------

BENCH_NGINX_PID=""

# bench_nginx_start ROOT PORT — serves the directory ROOT on 127.0.0.1:PORT
# with a config of its own under $BENCH_TMP/nginx: not a daemon (a child of
# this shell, tracked by PID), master + 2 workers, no access log, keepalive
# at nginx's defaults, open_file_cache on (so a hit costs no open/stat), files
# served as application/json. Sets BENCH_NGINX_PID, waits until it answers.
bench_nginx_start() {
    local root=$1 port=$2 dir="$BENCH_TMP/nginx" conf
    mkdir -p "$dir/logs" "$dir/temp"
    chmod -R a+rX "$root"
    conf="$dir/nginx.conf"
    cat >"$conf" <<EOF
# generated by bench/lib.sh for one bench run; everything under $dir
daemon off;
master_process on;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    types { }
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path $dir/temp/client_body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        root $root;
    }
}
EOF
    # -e: the error log before the config is read (else the compiled-in
    # /var/log/nginx/error.log); -p: prefix for any relative path.
    nginx -e "$dir/logs/error.log" -p "$dir" -c "$conf" -t -q ||
        bench_die "nginx rejected $conf"
    nginx -e "$dir/logs/error.log" -p "$dir" -c "$conf" \
        >"$dir/logs/stdout.log" 2>&1 </dev/null &
    BENCH_NGINX_PID=$!
    bench_track_pid "$BENCH_NGINX_PID" nginx
    # Any HTTP answer proves it listens (the root may have no index: 403/404).
    local i
    for ((i = 0; i < 100; i++)); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/" && return 0
        bench_check_alive "$BENCH_NGINX_PID" nginx "$dir/logs/error.log"
        sleep 0.1
    done
    bench_die "nginx did not answer on 127.0.0.1:$port"
}

# bench_nginx_stop — graceful stop of the nginx this bench started.
bench_nginx_stop() {
    [[ -n $BENCH_NGINX_PID ]] || return 0
    bench_stop_pid "$BENCH_NGINX_PID" QUIT
    bench_untrack_pid "$BENCH_NGINX_PID"
    BENCH_NGINX_PID=""
}

# ---- wrk ---------------------------------------------------------------------

# bench_wrk_parse FILE — reads wrk --latency output and sets:
#   WRK_RPS       requests/s (float)
#   WRK_P50_MS, WRK_P99_MS   latency percentiles in milliseconds
#   WRK_REQUESTS  requests completed
#   WRK_NON2XX    "Non-2xx or 3xx responses" (0 if wrk printed none)
#   WRK_ERRORS    socket errors: connect+read+write+timeout (0 if none)
bench_wrk_parse() {
    local f=$1
    WRK_RPS=$(awk '/^Requests\/sec:/ {print $2}' "$f")
    WRK_REQUESTS=$(awk '/requests in/ {print $1}' "$f")
    WRK_P50_MS=$(bench_wrk_percentile_ms "$f" 50%)
    WRK_P99_MS=$(bench_wrk_percentile_ms "$f" 99%)
    WRK_NON2XX=$(awk -F: '/Non-2xx or 3xx responses/ {gsub(/ /, "", $2); print $2}' "$f")
    WRK_NON2XX=${WRK_NON2XX:-0}
    WRK_ERRORS=$(awk '/Socket errors:/ {
        n = 0; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i + 0
        print n }' "$f")
    WRK_ERRORS=${WRK_ERRORS:-0}
    [[ -n $WRK_RPS && -n $WRK_P99_MS ]] ||
        bench_die "could not parse wrk output in $f: $(cat "$f")"
}

# bench_wrk_percentile_ms FILE PCT — one line of wrk's "Latency
# Distribution" (e.g. "99%   1.86ms"), converted to milliseconds.
bench_wrk_percentile_ms() {
    awk -v pct="$2" '
        /Latency Distribution/ { in_dist = 1; next }
        in_dist && $1 == pct {
            v = $2
            if (v ~ /us$/)      { sub(/us$/, "", v); v = v / 1000 }
            else if (v ~ /ms$/) { sub(/ms$/, "", v) }
            else if (v ~ /m$/)  { sub(/m$/, "", v); v = v * 60000 }
            else if (v ~ /s$/)  { sub(/s$/, "", v); v = v * 1000 }
            printf "%.3f\n", v
            exit
        }' "$1"
}

# bench_died NAME PID LOG WRK_OUTPUT — the server under test died under
# load: says how (exit status, what wrk saw, the tail of its log), prints
# `RESULT $BENCH_NAME FAILED …` on stdout and exits 1.
bench_died() {
    local name=$1 pid=$2 log=$3 out=$4
    bench_stop_pid "$pid" # reaps it: BENCH_STOP_STATUS tells how it died
    bench_untrack_pid "$pid"
    bench_log "$name (pid $pid) died under load, exit status $BENCH_STOP_STATUS; wrk saw:"
    grep -E 'requests in|Non-2xx|Socket errors|unable to connect' "$out" >&2 || true
    if [[ -s $log ]]; then
        bench_log "last lines of $log:"
        tail -n 5 "$log" >&2 || true
    fi
    printf 'RESULT %s FAILED %s_died exit_status=%s\n' "${BENCH_NAME:-bench}" "$name" "$BENCH_STOP_STATUS"
    exit 1
}

# bench_wrk NAME URL [PID LOG] — a warm-up run of $WARMUP (default 2s, not
# reported) then the measured run of $DURATION (default 10s) with --latency,
# using $THREADS threads (default 2) and $CONNS connections (default 64).
# The raw output is kept in $BENCH_TMP/wrk-NAME.txt; the figures are set as
# in bench_wrk_parse. With PID (the server under test) and LOG (its log), a
# server that dies during either run fails the bench (bench_died). Warns
# (does not fail) on non-2xx answers or socket errors.
bench_wrk() {
    bench_wrk_args "$1" "$2" "${3:-}" "${4:-}" # defined below
}

# bench_ratio A B — A/B with 3 decimals ("nan" if B is 0).
bench_ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.3f\n", a / b }'
}

# bench_round N DECIMALS — a number printed with DECIMALS decimals.
bench_round() {
    awk -v n="$1" -v d="$2" 'BEGIN { printf "%.*f\n", d, n }'
}

# ---- added for bench/hot_path.sh ---------------------------------------------

# bench_wrk_args NAME URL PID LOG [WRK_ARG...] — bench_wrk with extra wrk
# arguments (e.g. -H 'Accept-Encoding: br'), given to both the warm-up and
# the measured run. PID and LOG may be "" (no liveness check). Same output
# file ($BENCH_TMP/wrk-NAME.txt), same WRK_* variables as bench_wrk.
bench_wrk_args() {
    local name=$1 url=$2 pid=${3:-} log=${4:-} out="$BENCH_TMP/wrk-$1.txt"
    shift 4
    local warm="$BENCH_TMP/wrk-$name-warmup.txt" rc
    local t=${THREADS:-2} c=${CONNS:-64} d=${DURATION:-10s} w=${WARMUP:-2s}
    case "$url" in
    http://127.0.0.1:* | http://localhost:* | http://\[::1\]:*) ;;
    *) bench_die "refusing to load a non-loopback URL: $url" ;;
    esac
    bench_log "$name: warm-up $w, then wrk -t$t -c$c -d$d --latency ${*:+$* }$url"
    rc=0
    wrk -t"$t" -c"$c" -d"$w" "$@" "$url" >"$warm" 2>&1 || rc=$?
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
        bench_died "$name" "$pid" "$log" "$warm"
    fi
    ((rc == 0)) || bench_die "wrk warm-up against $name failed: $(cat "$warm")"
    wrk -t"$t" -c"$c" -d"$d" --latency "$@" "$url" >"$out" 2>&1 || rc=$?
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
        bench_died "$name" "$pid" "$log" "$out"
    fi
    ((rc == 0)) || bench_die "wrk against $name failed: $(cat "$out")"
    bench_wrk_parse "$out"
    if [[ $WRK_NON2XX != 0 || $WRK_ERRORS != 0 ]]; then
        bench_log "WARNING: $name: $WRK_NON2XX non-2xx/3xx responses, $WRK_ERRORS socket errors:"
        grep -E 'Non-2xx|Socket errors' "$out" >&2 || true
    fi
}

# bench_load1 — the 1-minute load average (first field of /proc/loadavg).
bench_load1() {
    cut -d' ' -f1 /proc/loadavg
}

# bench_busy_others — prints the PIDs of test runs that would disturb a
# measurement (`pytest`, `make test`), other than this shell; nothing if none.
bench_busy_others() {
    { pgrep -f pytest || true; pgrep -f 'make test' || true; } |
        { grep -vx -e "$$" -e "${BASHPID:-$$}" || true; } | sort -un | tr '\n' ' ' | sed 's/ $//'
}

# bench_wait_quiet MAX_LOAD MAX_WAIT_S [POLL_S] — waits until the 1-minute
# load is below MAX_LOAD and no pytest / `make test` runs (bench_busy_others),
# polling every POLL_S seconds (default 20), for at most MAX_WAIT_S seconds.
# Never fails: sets BENCH_QUIET=1 if the machine became quiet, 0 if it gave
# up; BENCH_QUIET_WAITED (seconds waited), BENCH_QUIET_LOAD (load when it
# stopped waiting), BENCH_QUIET_BUSY (disturbing PIDs then, "" if none).
bench_wait_quiet() {
    local max_load=$1 max_wait=$2 poll=${3:-20} start=$SECONDS
    BENCH_QUIET=0
    while :; do
        BENCH_QUIET_LOAD=$(bench_load1)
        BENCH_QUIET_BUSY=$(bench_busy_others)
        BENCH_QUIET_WAITED=$((SECONDS - start))
        if [[ -z $BENCH_QUIET_BUSY ]] &&
            awk -v l="$BENCH_QUIET_LOAD" -v m="$max_load" 'BEGIN { exit !(l + 0 < m + 0) }'; then
            BENCH_QUIET=1
            return 0
        fi
        if ((BENCH_QUIET_WAITED + poll > max_wait)); then
            bench_log "machine still busy after ${BENCH_QUIET_WAITED}s (load $BENCH_QUIET_LOAD${BENCH_QUIET_BUSY:+, test runs: $BENCH_QUIET_BUSY}); measuring anyway"
            return 0
        fi
        bench_log "waiting for a quiet machine: load $BENCH_QUIET_LOAD (< $max_load wanted)${BENCH_QUIET_BUSY:+, test runs: $BENCH_QUIET_BUSY}; ${BENCH_QUIET_WAITED}s of ${max_wait}s"
        sleep "$poll"
    done
}

# ---- responses, verdicts, the machine -----------------------------------------

# bench_header FILE NAME — the value of response header NAME in a curl -D dump.
bench_header() {
    awk -v n="$(tr '[:upper:]' '[:lower:]' <<<"$2")" -F': ' '
        { k = tolower($1) } k == n { sub(/\r$/, ""); sub(/^[^:]*: /, ""); print; exit }' "$1"
}

# bench_fetch NAME URL [CURL_ARG...] — GET into $BENCH_TMP/NAME.body and
# .headers; sets F_STATUS, F_BODY (body bytes), F_HEAD (header bytes).
bench_fetch() {
    local name=$1 url=$2 w
    shift 2
    w=$(curl -sS --max-time 10 "$@" -o "$BENCH_TMP/$name.body" -D "$BENCH_TMP/$name.headers" \
        -w '%{http_code} %{size_download} %{size_header}' "$url") || bench_die "GET $url failed"
    read -r F_STATUS F_BODY F_HEAD <<<"$w"
}

# bench_ge A B — true if A >= B (numbers, awk); bench_verdict_ge/le A B —
# PASS or FAIL (FAIL for "nan" or nothing).
bench_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
bench_verdict_ge() { if [[ $1 != nan && -n $1 ]] && bench_ge "$1" "$2"; then echo PASS; else echo FAIL; fi; }
bench_verdict_le() { if [[ $1 != nan && -n $1 ]] && bench_ge "$2" "$1"; then echo PASS; else echo FAIL; fi; }

# bench_machine_ticks — "STEAL TOTAL" clock ticks of all CPUs so far
# (/proc/stat): steal is the time the hypervisor gave this VM's CPUs to
# someone else.
bench_machine_ticks() {
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t; exit }' /proc/stat
}

# bench_cpu_ticks PID — user and system clock ticks used so far by PID (all
# its threads) and its direct children (nginx's workers), as "TOTAL USER".
bench_cpu_ticks() {
    local p total=0 user=0 f
    for p in "$1" $(pgrep -P "$1" || true); do
        # fields after the ")" that ends the command name: utime is the 12th, stime the 13th
        f=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        read -r _ _ _ _ _ _ _ _ _ _ _ ut st _ <<<"$f"
        total=$((total + ut + st)) user=$((user + ut))
    done
    echo "$total $user"
}

# ---- strata ------------------------------------------------------------------

STRATA_PID="" STRATA_LOG="" STRATA_PORT="" STRATA_EXIT=0
STRATA_EXITS=() # "name=status" of every strata stopped, in order

# bench_strata_start NAME [FLAG...] — `$STRATA serve` on $BENCH_DB (default
# $BENCH_TMP/bench.db), with --log-level $BENCH_LOG_LEVEL (default warn: no
# access log; bench/hot_path.sh measures strata as it ships, at info)
# on a free port with $SERVE_THREADS loops (default 2); sets STRATA_PID,
# STRATA_LOG, STRATA_PORT once it answers /healthz and is still alive (a
# strata that lost the port to another server exits: not it that answered).
bench_strata_start() {
    local name=$1
    shift
    STRATA_PORT=$(bench_free_port)
    STRATA_LOG="$BENCH_TMP/$name.log"
    "$STRATA" serve --db "${BENCH_DB:-$BENCH_TMP/bench.db}" --listen "127.0.0.1:$STRATA_PORT" \
        --threads "${SERVE_THREADS:-2}" --log-level "${BENCH_LOG_LEVEL:-warn}" "$@" >"$STRATA_LOG" 2>&1 </dev/null &
    STRATA_PID=$!
    bench_track_pid "$STRATA_PID" "$name"
    bench_wait_url "http://127.0.0.1:$STRATA_PORT/healthz" 15 "$STRATA_PID"
    sleep 0.1
    bench_check_alive "$STRATA_PID" "$name" "$STRATA_LOG"
}

# bench_strata_stop PID LOG NAME — SIGTERM; STRATA_EXIT is its exit status
# (0 expected, else a warning with the end of LOG), appended to STRATA_EXITS.
bench_strata_stop() {
    bench_stop_pid "$1" TERM
    bench_untrack_pid "$1"
    STRATA_EXIT=$BENCH_STOP_STATUS
    STRATA_EXITS+=("$3=$STRATA_EXIT")
    if [[ $STRATA_EXIT != 0 ]]; then
        bench_log "WARNING: $3 exited with status $STRATA_EXIT on SIGTERM (0 expected); last lines of its log:"
        tail -n 5 "$2" >&2 || true
    fi
}

# bench_api_post PATH JSON — POST $BASE/PATH with the token $TOKEN; the body
# lands in $BENCH_TMP/post.body; sets F_STATUS.
bench_api_post() {
    F_STATUS=$(curl -sS --max-time 10 -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data "$2" -o "$BENCH_TMP/post.body" -w '%{http_code}' "$BASE$1") || bench_die "POST $BASE$1 failed"
}

# bench_make_item BYTES TITLE [SLUG] — a published post (slug SLUG, default
# bench-2k) whose public JSON is BYTES,
# made through the API at $BASE with $TOKEN (a write token): a probe with an
# empty body measures the JSON around it (timestamps and ids have fixed
# widths), then version 2 (PUT, If-Match "v1") gets a body of plain ASCII
# of exactly the rest, and is published. Sets BENCH_ITEM_ID, and
# BENCH_ITEM_TEXT to that body (for more items like it).
bench_make_item() {
    local bytes=$1 title=$2 slug=${3:-bench-2k} id overhead body_len text i w
    bench_api_post /content "{\"type\":\"post\",\"slug\":\"$slug\",\"title\":\"$title\",\"body\":\"\"}"
    id=$(grep -o '"id": *[0-9]*' "$BENCH_TMP/post.body" | head -n1 | grep -o '[0-9]*$' || true)
    [[ $F_STATUS == 201 && -n $id ]] || bench_die "creating the bench item failed ($F_STATUS): $(cat "$BENCH_TMP/post.body")"
    bench_api_post "/content/$id/publish" ""
    [[ $F_STATUS == 200 ]] || bench_die "publishing the bench item failed ($F_STATUS): $(cat "$BENCH_TMP/post.body")"
    bench_fetch probe "$BASE/content/$id"
    overhead=$F_BODY
    body_len=$((bytes - overhead))
    ((body_len > 0)) || bench_die "an item of $bytes bytes is below its JSON overhead of $overhead bytes"
    text=""
    for ((i = 1; ${#text} < body_len; i++)); do
        text+="Paragraph $i of the benchmark item: plain ASCII text, no escapes. "
    done
    w=$(curl -sS --max-time 10 -X PUT -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -H 'If-Match: "v1"' --data "{\"body\":\"${text:0:body_len}\"}" -o "$BENCH_TMP/put.body" -w '%{http_code}' \
        "$BASE/content/$id") || bench_die "PUT $BASE/content/$id failed"
    [[ $w == 200 ]] || bench_die "updating the bench item failed ($w): $(cat "$BENCH_TMP/put.body")"
    bench_api_post "/content/$id/publish" ""
    [[ $F_STATUS == 200 ]] || bench_die "publishing the bench item failed ($F_STATUS): $(cat "$BENCH_TMP/post.body")"
    BENCH_ITEM_ID=$id
    BENCH_ITEM_TEXT=${text:0:body_len}
}

# bench_spread_lua OUT PATH... — a wrk script GETting the paths in turn:
# wrk thread k of THREADS (default 2) takes paths k, k+T, k+2T …, so two
# requests in flight are for the same path only if one connection falls
# (paths / T) requests behind the others of its thread: no lookup is
# collapsed onto another's.
bench_spread_lua() {
    local out=$1 path
    shift
    {
        printf -- '-- generated by bench_spread_lua (bench/lib.sh)\nlocal threads = %s\nlocal paths = {\n' "${THREADS:-2}"
        for path in "$@"; do printf '  "%s",\n' "$path"; done
        cat <<'EOF'
}
local started = 0
function setup(thread)
  thread:set("index", started)
  started = started + 1
end
local mine = {}
local i = 0
function init(args)
  local k = tonumber(index) or 0
  for j = k + 1, #paths, threads do mine[#mine + 1] = paths[j] end
  if #mine == 0 then mine = paths end
end
function request()
  i = i % #mine + 1
  return wrk.format("GET", mine[i])
end
EOF
    } >"$out"
}

# bench_make_items PORT TOKEN COUNT TEXT_FILE SLUG_PREFIX TITLE — COUNT
# published posts whose body is TEXT_FILE's text, made through the API of
# the strata on PORT (slugs SLUG_PREFIX00000, …); prints their ids,
# space-separated, on one line. Fails (status 1, the reason on stderr) on
# the first answer that is not a success.
bench_make_items() {
    python3 - "$@" <<'EOF'
import http.client, json, sys
port, token, count, text, prefix, title = sys.argv[1], sys.argv[2], int(sys.argv[3]), open(sys.argv[4]).read(), \
    sys.argv[5], sys.argv[6]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
h = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
ids = []
for n in range(count):
    body = json.dumps({"type": "post", "slug": "%s%05d" % (prefix, n), "title": title, "body": text})
    c.request("POST", "/v1/main/content", body=body, headers=h)
    r = c.getresponse(); data = r.read()
    if r.status != 201:
        sys.exit("POST /v1/main/content: %d %s" % (r.status, data[:200]))
    i = json.loads(data)["id"]
    c.request("POST", "/v1/main/content/%d/publish" % i, headers=h)
    r = c.getresponse(); data = r.read()
    if r.status != 200:
        sys.exit("publish %d: %d %s" % (i, r.status, data[:200]))
    ids.append(str(i))
print(" ".join(ids))
EOF
}

# bench_build_h2o_bare OUT — compiles bench/h2o_bare.c (the bare h2o server
# the hot-path benches measure strata against) into OUT, if OUT is missing
# or older than the source.
bench_build_h2o_bare() {
    local out=$1 src
    src="$(dirname "${BASH_SOURCE[0]}")/h2o_bare.c"
    mkdir -p "$(dirname "$out")"
    [[ ! -x $out || $src -nt $out ]] || return 0
    bench_log "compiling $out"
    # shellcheck disable=SC2046 # pkg-config output is a list of flags
    cc -O2 -std=gnu11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Wall -Wextra \
        $(pkg-config --cflags libh2o-evloop) "$src" -o "$out.tmp" \
        $(pkg-config --libs libh2o-evloop) -lssl -lcrypto -lpthread ||
        bench_die "cannot compile bench/h2o_bare.c"
    mv -f "$out.tmp" "$out"
}
