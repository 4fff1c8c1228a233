#!/usr/bin/env bash
# stack.sh — SPEC's stage 3 on loopback, in one command, with Debian's
# packages only: a PostgreSQL 15 primary and one streaming replica (made by
# pg_basebackup -R, on a replication slot), Redis, three strata instances,
# nginx in front of them and Varnish in front of nginx, whose purges strata
# sends to Varnish.
#
#   scripts/stack.sh up              start it all (refuses if it already runs)
#   scripts/stack.sh status          every part: pid, port, healthy or not;
#                                    exits 1 if any part is down
#   scripts/stack.sh down [--purge]  stop exactly what `up` started, by the
#                                    PIDs it recorded; --purge removes the data
#
# Everything lives under one state directory, STACK_DIR (default
# build/stack): the databases, Redis's dir, the generated nginx and Varnish
# configs, every log (logs/), the recorded PIDs (run/) and the secrets
# (secrets, mode 0600: the database password and the demo tokens). A second
# `up` on the same directory reuses the data: the database is made, migrated
# and seeded once.
#
# The nginx and Varnish configs are the repository's deploy/nginx/strata.conf
# (an http-level include) and deploy/varnish/strata.vcl, written for the port
# convention (strata 127.0.0.1:8081-8083, nginx 127.0.0.1:8000, Varnish
# 127.0.0.1:6081); this script rewrites those literal addresses to the ports
# it uses. STACK_NGINX_CONF and STACK_VCL name other files.
#
# Ports (environment; defaults in brackets): STACK_VARNISH_PORT [6081],
# STACK_NGINX_PORT [8000], STACK_STRATA1_PORT [8081], STACK_STRATA2_PORT
# [8082], STACK_STRATA3_PORT [8083], STACK_PG_PORT [5441] (the primary),
# STACK_REPLICA_PORT [5442], STACK_REDIS_PORT [6389]. A port already taken
# fails `up` before anything starts, naming it and its variable.
#
# Other settings: STRATA_BIN (default build/strata, the release build),
# STACK_PURGE_HEADER (the header strata's purges carry its keys in, default
# Surrogate-Key: what deploy/varnish/strata.vcl reads), STACK_SEED_ITEMS
# (300, as `make run`). Any STRATA_* variable in the environment reaches
# the three instances (e.g. STRATA_LOG_LEVEL=debug); the replica's URL is
# given to them as STRATA_DB_REPLICAS (db.replicas).
#
# As root, PostgreSQL runs as the `postgres` OS user (initdb refuses root),
# as tests/pg_cluster.sh does; everything else runs as the caller. Every
# wait is bounded; a failed `up` stops whatever it had started.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac

STACK_DIR=${STACK_DIR:-$REPO/build/stack}
STRATA_BIN=${STRATA_BIN:-$REPO/build/strata}
STACK_NGINX_CONF=${STACK_NGINX_CONF:-$REPO/deploy/nginx/strata.conf}
STACK_VCL=${STACK_VCL:-$REPO/deploy/varnish/strata.vcl}
STACK_PURGE_HEADER=${STACK_PURGE_HEADER:-Surrogate-Key}
STACK_SEED_ITEMS=${STACK_SEED_ITEMS:-300}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
START_TIMEOUT=30 # seconds, for each part to answer
STOP_TIMEOUT=15  # seconds, for each part to exit before SIGKILL

VARNISH_PORT=${STACK_VARNISH_PORT:-6081}
NGINX_PORT=${STACK_NGINX_PORT:-8000}
STRATA_PORTS=("${STACK_STRATA1_PORT:-8081}" "${STACK_STRATA2_PORT:-8082}" "${STACK_STRATA3_PORT:-8083}")
PG_PORT=${STACK_PG_PORT:-5441}
REPLICA_PORT=${STACK_REPLICA_PORT:-5442}
REDIS_PORT=${STACK_REDIS_PORT:-6389}

# The parts, in start order; `down` stops them in reverse.
PARTS=(primary replica redis strata1 strata2 strata3 nginx varnish)

die() {
  echo "stack.sh: $*" >&2
  exit 1
}
say() { echo "stack.sh: [${SECONDS}s] $*" >&2; }

# ---- helpers -------------------------------------------------------------------

# Runs a PostgreSQL command as the owner of the clusters.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_of() {
  case "$1" in
    primary) echo "$PG_PORT" ;;
    replica) echo "$REPLICA_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    strata[123]) echo "${STRATA_PORTS[${1#strata} - 1]}" ;;
    nginx) echo "$NGINX_PORT" ;;
    varnish) echo "$VARNISH_PORT" ;;
  esac
}

port_var() {
  case "$1" in
    primary) echo STACK_PG_PORT ;;
    replica) echo STACK_REPLICA_PORT ;;
    redis) echo STACK_REDIS_PORT ;;
    strata[123]) echo "STACK_STRATA${1#strata}_PORT" ;;
    nginx) echo STACK_NGINX_PORT ;;
    varnish) echo STACK_VARNISH_PORT ;;
  esac
}

# The program a part's recorded PID must still be running: a PID reused by
# another process after a reboot or a crash is never signalled.
exe_of() {
  case "$1" in
    primary | replica) echo "$PG_BIN/postgres" ;;
    redis) command -v redis-server ;;
    strata*) readlink -f "$STRATA_BIN" ;;
    nginx) command -v nginx ;;
    varnish) command -v varnishd ;;
  esac
}

port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pid_file() { echo "$STACK_DIR/run/$1.pid"; }

# `up` records its ports and binary in run/stack.env; status and down read
# them, so they look at what up started whatever the caller's environment.
record_settings() {
  {
    printf 'PG_PORT=%q REPLICA_PORT=%q REDIS_PORT=%q NGINX_PORT=%q VARNISH_PORT=%q\n' \
      "$PG_PORT" "$REPLICA_PORT" "$REDIS_PORT" "$NGINX_PORT" "$VARNISH_PORT"
    printf 'STRATA_PORTS=(%q %q %q) STRATA_BIN=%q\n' "${STRATA_PORTS[@]}" "$STRATA_BIN"
  } >"$STACK_DIR/run/stack.env"
}

load_recorded_settings() {
  # shellcheck source=/dev/null
  [ -f "$STACK_DIR/run/stack.env" ] && . "$STACK_DIR/run/stack.env"
  return 0
}

recorded_pid() {
  local f
  f=$(pid_file "$1")
  [ -s "$f" ] && cat "$f"
  return 0
}

# True if PID is alive and runs the program PART was started as.
pid_is_part() {
  local pid=$1 part=$2 exe
  [ -n "$pid" ] && [ -e "/proc/$pid" ] || return 1
  exe=$(readlink -f "/proc/$pid/exe" 2>/dev/null) || return 1
  # a zombie, or an exe since replaced by a package upgrade, reads "(deleted)";
  # the wanted program resolved too (Debian's redis-server is a symlink)
  [ "${exe% (deleted)}" = "$(readlink -f "$(exe_of "$part")")" ]
}

part_running() { pid_is_part "$(recorded_pid "$1")" "$1"; }

http_ok() { curl -fsS -o /dev/null --max-time 2 "$1"; }

secret() { sed -n "s/^$1=//p" "$STACK_DIR/secrets"; }

pg_url() { echo "postgresql://strata:$(secret pg_password)@127.0.0.1:$1/strata"; }

# psql as the superuser over the unix socket (trust) on the primary.
pg_sql() {
  as_pg timeout "$START_TIMEOUT" "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$STACK_DIR/pg" -p "$PG_PORT" -U postgres -d postgres -c "$1"
}

# ---- up ------------------------------------------------------------------------

check_tools() {
  local missing=() t
  for t in "$PG_BIN/initdb" "$PG_BIN/pg_basebackup" redis-server redis-cli nginx varnishd curl pg_isready; do
    command -v "$t" >/dev/null 2>&1 || missing+=("$t")
  done
  [ ${#missing[@]} -eq 0 ] ||
    die "missing: ${missing[*]} (scripts/deps.sh stack installs varnish varnish-modules nginx-light postgresql-15 redis-server)"
  [ -x "$STRATA_BIN" ] || die "$STRATA_BIN not found: run \`make\` (or set STRATA_BIN)"
  [ -f "$STACK_NGINX_CONF" ] || die "no nginx config at $STACK_NGINX_CONF (deploy/nginx/strata.conf, or set STACK_NGINX_CONF)"
  [ -f "$STACK_VCL" ] || die "no Varnish VCL at $STACK_VCL (deploy/varnish/strata.vcl, or set STACK_VCL)"
}

check_ports() {
  local part port seen=" "
  for part in "${PARTS[@]}"; do
    port=$(port_of "$part")
    { [[ $port =~ ^[0-9]+$ ]] && ((port > 0 && port < 65536)); } || die "$(port_var "$part")=$port is not a port"
    [[ $seen != *" $port "* ]] || die "port $port is given to two parts (see $(port_var "$part"))"
    seen+="$port "
    if port_in_use "$port"; then
      die "port $port ($part) is already taken on 127.0.0.1: free it or set $(port_var "$part")"
    fi
  done
}

refuse_if_running() {
  local part running=()
  for part in "${PARTS[@]}"; do
    part_running "$part" && running+=("$part=$(recorded_pid "$part")")
  done
  [ ${#running[@]} -eq 0 ] ||
    die "a stack is already running in $STACK_DIR (${running[*]}): \`scripts/stack.sh down\` first"
}

make_dirs() {
  mkdir -p "$STACK_DIR"
  STACK_DIR=$(cd "$STACK_DIR" && pwd)
  touch "$STACK_DIR/.stack" # down --purge removes only a directory holding this
  mkdir -p "$STACK_DIR/run" "$STACK_DIR/logs" "$STACK_DIR/pg" "$STACK_DIR/redis" \
    "$STACK_DIR/nginx/temp" "$STACK_DIR/varnish"
  chmod 755 "$STACK_DIR" "$STACK_DIR/logs"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$STACK_DIR/pg"
    as_pg test -w "$STACK_DIR/pg" ||
      die "$STACK_DIR/pg is not reachable by the postgres user: use a STACK_DIR whose parents it may enter"
  fi
  if [ ! -s "$STACK_DIR/secrets" ]; then
    (umask 077 && echo "pg_password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >"$STACK_DIR/secrets")
  fi
}

# The settings both clusters share; the replica's copy gets its own port.
write_pg_conf() {
  local data=$1 port=$2
  as_pg tee "$data/stack.conf" >/dev/null <<CONF
# written by scripts/stack.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$STACK_DIR/pg'
max_connections = 200
shared_buffers = 64MB
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
hot_standby = on
hot_standby_feedback = on
log_min_messages = warning
timezone = 'UTC'
CONF
  as_pg grep -q "^include_if_exists = 'stack.conf'" "$data/postgresql.conf" ||
    echo "include_if_exists = 'stack.conf'" | as_pg tee -a "$data/postgresql.conf" >/dev/null
}

pg_start() {
  local part=$1 data=$STACK_DIR/pg/$1 log=$STACK_DIR/pg/$1.log # pg/: the postgres user writes it
  as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t "$START_TIMEOUT" start >/dev/null || {
    tail -n 20 "$log" >&2 || true
    die "PostgreSQL ($part) did not start within ${START_TIMEOUT}s (log: $log)"
  }
  as_pg head -n 1 "$data/postmaster.pid" >"$(pid_file "$part")"
}

primary_up() {
  local data=$STACK_DIR/pg/primary
  if [ ! -f "$data/PG_VERSION" ]; then
    say "initdb: the primary in $data"
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres -E UTF8 --locale=C --auth-local=trust \
      --auth-host=scram-sha-256 --no-sync >"$STACK_DIR/logs/initdb.log" 2>&1 ||
      {
        tail -n 20 "$STACK_DIR/logs/initdb.log" >&2
        die "initdb failed"
      }
  fi
  write_pg_conf "$data" "$PG_PORT"
  pg_start primary
  # each once, checked rather than assumed: an earlier up may have stopped
  # between the two
  if ! { [ "$(pg_sql "SELECT count(*) FROM pg_roles WHERE rolname = 'strata'")" = 1 ] ||
    pg_sql "CREATE ROLE strata LOGIN PASSWORD '$(secret pg_password)'" >/dev/null; } ||
    ! { [ "$(pg_sql "SELECT count(*) FROM pg_database WHERE datname = 'strata'")" = 1 ] ||
      pg_sql "CREATE DATABASE strata OWNER strata" >/dev/null; }; then
    die "creating the role and database strata on the primary failed (or took over ${START_TIMEOUT}s)"
  fi
}

# The replica: a base backup of the primary over its unix socket (local
# replication is trusted), -R writes standby.signal and primary_conninfo,
# -C -S makes the slot that keeps the WAL the replica has not received.
replica_up() {
  local data=$STACK_DIR/pg/replica
  if [ ! -f "$data/PG_VERSION" ]; then
    say "pg_basebackup -R: the replica in $data"
    as_pg "$PG_BIN/pg_basebackup" -h "$STACK_DIR/pg" -p "$PG_PORT" -U postgres -D "$data" -R -X stream -c fast \
      -C -S stack_replica --no-sync >"$STACK_DIR/logs/basebackup.log" 2>&1 ||
      {
        tail -n 20 "$STACK_DIR/logs/basebackup.log" >&2
        die "pg_basebackup failed"
      }
  fi
  write_pg_conf "$data" "$REPLICA_PORT"
  pg_start replica
}

# migrate and seed once, and the demo tokens, kept in the secrets file.
database_seed() {
  local url
  url=$(pg_url "$PG_PORT")
  grep -q '^editor_token=' "$STACK_DIR/secrets" && return 0
  say "migrating and seeding $STACK_SEED_ITEMS demo items"
  if ! STRATA_DB=$url "$STRATA_BIN" migrate >>"$STACK_DIR/logs/seed.log" 2>&1 ||
    ! STRATA_DB=$url "$STRATA_BIN" seed --items "$STACK_SEED_ITEMS" >>"$STACK_DIR/logs/seed.log" 2>&1; then
    die "seeding failed: $(tail -n 3 "$STACK_DIR/logs/seed.log")"
  fi
  local editor admin
  editor=$(STRATA_DB=$url "$STRATA_BIN" token create --site main --role write --name stack-editor 2>>"$STACK_DIR/logs/seed.log")
  admin=$(STRATA_DB=$url "$STRATA_BIN" token create --site main --role admin --name stack-operator 2>>"$STACK_DIR/logs/seed.log")
  printf 'editor_token=%s\nadmin_token=%s\n' "$editor" "$admin" >>"$STACK_DIR/secrets"
}

# start_bg PART LOG COMMAND... — COMMAND in a session of its own (so the
# caller's terminal or test harness going away does not stop it), its PID
# recorded. setsid does not fork here (a background job is no group
# leader), so $! is the program itself.
start_bg() {
  local part=$1 log=$2
  shift 2
  setsid "$@" >>"$log" 2>&1 </dev/null &
  local pid=$! deadline=$((SECONDS + 10))
  echo "$pid" >"$(pid_file "$part")"
  # Until the fork has exec'd, /proc/PID/exe is bash's or setsid's (a
  # window a loaded machine widens): wait for the program itself, so every
  # later check of the PID is against what it runs.
  until pid_is_part "$pid" "$part"; do
    kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)) || return 0 # gone: wait_part says so
    sleep 0.05
  done
}

# wait_part PART CHECK... — waits for CHECK; fails with the log's tail if
# the part exits first or does not answer in time.
wait_part() {
  local part=$1 log=$STACK_DIR/logs/$1.log deadline=$((SECONDS + START_TIMEOUT))
  shift
  until "$@" >/dev/null 2>&1; do
    if ! part_running "$part"; then
      tail -n 20 "$log" >&2 2>/dev/null || true
      die "$part exited before it answered on 127.0.0.1:$(port_of "$part") (log: $log)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$log" >&2 2>/dev/null || true
      die "$part did not answer on 127.0.0.1:$(port_of "$part") within ${START_TIMEOUT}s (log: $log)"
    fi
    sleep 0.1
  done
}

redis_up() {
  start_bg redis "$STACK_DIR/logs/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$STACK_DIR/redis" --daemonize no
  wait_part redis redis_ping
}

redis_ping() { [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

# The primary's URL in STRATA_DB rather than --db: a flag is visible to
# every user in ps, and the URL carries the password. STRATA_DB_REPLICAS is
# the replica (db.replicas).
strata_up() {
  local n=$1 port=${STRATA_PORTS[$1 - 1]}
  STRATA_DB=$(pg_url "$PG_PORT") STRATA_DB_REPLICAS=$(pg_url "$REPLICA_PORT") \
    start_bg "strata$n" "$STACK_DIR/logs/strata$n.log" "$STRATA_BIN" serve --listen "127.0.0.1:$port" \
    --redis "redis://127.0.0.1:$REDIS_PORT" --cdn-purge-url "http://127.0.0.1:$VARNISH_PORT/" \
    --cdn-purge-header "$STACK_PURGE_HEADER"
}

# The deploy/ file with the convention's addresses rewritten to ours.
rewrite_ports() {
  sed -e "s/127\.0\.0\.1:8081\b/127.0.0.1:${STRATA_PORTS[0]}/g" \
    -e "s/127\.0\.0\.1:8082\b/127.0.0.1:${STRATA_PORTS[1]}/g" \
    -e "s/127\.0\.0\.1:8083\b/127.0.0.1:${STRATA_PORTS[2]}/g" \
    -e "s/127\.0\.0\.1:8000\b/127.0.0.1:$NGINX_PORT/g" \
    -e "s/127\.0\.0\.1:6081\b/127.0.0.1:$VARNISH_PORT/g" \
    -e "s/\(\.port *= *\"\)8000\"/\1$NGINX_PORT\"/g" "$1"
}

nginx_up() {
  local dir=$STACK_DIR/nginx
  rewrite_ports "$STACK_NGINX_CONF" >"$dir/strata.conf"
  cat >"$dir/nginx.conf" <<CONF
# written by scripts/stack.sh: the process-level settings; the site is
# $STACK_NGINX_CONF (ports rewritten) in strata.conf
daemon off;
master_process on;
worker_processes 2;
pid $dir/nginx.pid;
error_log $STACK_DIR/logs/nginx.log warn;
events {
    worker_connections 1024;
}
http {
    access_log off;
    client_body_temp_path $dir/temp/client_body;
    proxy_temp_path $dir/temp/proxy;
    fastcgi_temp_path $dir/temp/fastcgi;
    uwsgi_temp_path $dir/temp/uwsgi;
    scgi_temp_path $dir/temp/scgi;
    include $dir/strata.conf;
}
CONF
  nginx -e "$STACK_DIR/logs/nginx.log" -p "$dir" -c "$dir/nginx.conf" -t -q 2>"$STACK_DIR/logs/nginx-check.log" ||
    die "nginx rejected $dir/nginx.conf: $(tail -n 3 "$STACK_DIR/logs/nginx-check.log")"
  start_bg nginx "$STACK_DIR/logs/nginx.log" nginx -e "$STACK_DIR/logs/nginx.log" -p "$dir" -c "$dir/nginx.conf"
  wait_part nginx http_ok "http://127.0.0.1:$NGINX_PORT/readyz"
}

varnish_up() {
  local dir=$STACK_DIR/varnish
  rewrite_ports "$STACK_VCL" >"$dir/strata.vcl"
  mkdir -p "$dir/work"
  # -F: in the foreground, so the recorded PID is the manager's; -T none:
  # no management port (nothing here uses varnishadm).
  start_bg varnish "$STACK_DIR/logs/varnish.log" varnishd -F -a "127.0.0.1:$VARNISH_PORT" \
    -f "$dir/strata.vcl" -n "$dir/work" -s malloc,128m -T none
  wait_part varnish http_ok "http://127.0.0.1:$VARNISH_PORT/readyz"
}

print_summary() {
  local editor admin v=http://127.0.0.1:$VARNISH_PORT n env=""
  # status and down must find this directory again
  [ "$STACK_DIR" = "$REPO/build/stack" ] || env="STACK_DIR=$STACK_DIR "
  editor=$(secret editor_token)
  admin=$(secret admin_token)
  cat <<MSG

  strata stage 3 is running, up in ${SECONDS}s (state in $STACK_DIR)
  Varnish:      $v/
  nginx:        http://127.0.0.1:$NGINX_PORT/
MSG
  for n in 1 2 3; do
    printf '  strata %s:     http://127.0.0.1:%s/   (log %s)\n' "$n" "${STRATA_PORTS[$n - 1]}" "$STACK_DIR/logs/strata$n.log"
  done
  cat <<MSG
  PostgreSQL:   primary 127.0.0.1:$PG_PORT, replica 127.0.0.1:$REPLICA_PORT (streaming, slot stack_replica)
  Redis:        127.0.0.1:$REDIS_PORT
  dashboard:    http://127.0.0.1:$NGINX_PORT/dashboard#token=$admin
  editor token: $editor   (site main, role write)
  admin token:  $admin   (site main, role admin)

  try:  curl -i $v/v1/main/content?limit=3
        curl -H "Authorization: Bearer $editor" -H 'Content-Type: application/json' \\
             -d '{"type":"post","slug":"hello","title":"Hello"}' $v/v1/main/content
        ${env}scripts/stack.sh status
        ${env}scripts/stack.sh down

MSG
}

# On a failed up, stop what this run started.
up_failed() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    say "up failed: stopping what it started"
    stop_parts || true
  fi
  exit "$rc"
}

cmd_up() {
  [ -d "$STACK_DIR" ] && (load_recorded_settings && refuse_if_running)
  check_tools
  check_ports
  make_dirs
  record_settings
  trap up_failed EXIT
  primary_up
  database_seed
  replica_up
  redis_up
  local n
  for n in 1 2 3; do strata_up "$n"; done
  for n in 1 2 3; do wait_part "strata$n" http_ok "http://127.0.0.1:${STRATA_PORTS[$n - 1]}/readyz"; done
  nginx_up
  varnish_up
  trap - EXIT
  print_summary
}

# ---- down ----------------------------------------------------------------------

# stop_part PART — the signal each program takes as "shut down now, cleanly"
# (PostgreSQL: SIGINT, its fast shutdown; nginx: SIGQUIT, graceful), then
# SIGKILL after STOP_TIMEOUT. Only the recorded PID, and only while it still
# runs the part's program.
stop_part() {
  local part=$1 pid sig=TERM deadline
  pid=$(recorded_pid "$part")
  if ! pid_is_part "$pid" "$part"; then
    rm -f "$(pid_file "$part")"
    return 0
  fi
  case "$part" in
    primary | replica) sig=INT ;;
    nginx) sig=QUIT ;;
  esac
  kill "-$sig" "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while pid_is_part "$pid" "$part" && ((SECONDS < deadline)); do sleep 0.1; done
  if pid_is_part "$pid" "$part"; then
    say "$part (pid $pid) did not stop within ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  say "stopped $part (pid $pid)"
  STOPPED+=("$pid")
  rm -f "$(pid_file "$part")"
}

# Each part has exited when stop_part returns (a zombie holds no port and no
# file); it is gone from the process table once its parent, init (setsid,
# pg_ctl), reaps it, which here can take a second or two: waited for once,
# for all of them, at the end.
stop_parts() {
  local i pid deadline
  STOPPED=()
  for ((i = ${#PARTS[@]} - 1; i >= 0; i--)); do stop_part "${PARTS[$i]}"; done
  deadline=$((SECONDS + 5))
  for pid in "${STOPPED[@]}"; do
    while [ -e "/proc/$pid" ] && ((SECONDS < deadline)); do sleep 0.05; done
  done
}

cmd_down() {
  local purge=0
  [ "${1:-}" = "--purge" ] && purge=1
  [ -d "$STACK_DIR/run" ] || { [ "$purge" -eq 0 ] && { say "nothing recorded in $STACK_DIR"; return 0; }; }
  if [ -d "$STACK_DIR/run" ]; then
    load_recorded_settings
    stop_parts
  fi
  if [ "$purge" -eq 1 ] && [ -d "$STACK_DIR" ]; then
    [ -f "$STACK_DIR/.stack" ] || die "$STACK_DIR was not made by stack.sh: not removing it"
    rm -rf -- "$STACK_DIR"
    say "removed $STACK_DIR"
  fi
}

# ---- status --------------------------------------------------------------------

replica_lag() {
  pg_sql "SELECT s.state || ', lag ' || coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.replay_lsn), 0)::bigint
            || ' bytes, ' || coalesce(round(extract(epoch FROM s.replay_lag) * 1000), 0) || ' ms'
          FROM pg_stat_replication s JOIN pg_replication_slots r ON r.active_pid = s.pid
          WHERE r.slot_name = 'stack_replica'" 2>/dev/null
}

part_health() {
  local part=$1 port
  port=$(port_of "$part")
  case "$part" in
    primary) pg_isready -q -h 127.0.0.1 -p "$port" -t 2 && echo "accepting connections" ;;
    replica)
      pg_isready -q -h 127.0.0.1 -p "$port" -t 2 || return 1
      local lag
      lag=$(replica_lag) || return 1
      [[ $lag == streaming* ]] || return 1
      echo "$lag"
      ;;
    redis) redis_ping && echo PONG ;;
    strata*) http_ok "http://127.0.0.1:$port/readyz" && echo "/readyz 200" ;;
    nginx | varnish) http_ok "http://127.0.0.1:$port/readyz" && echo "/readyz 200 through it" ;;
  esac
}

cmd_status() {
  [ -d "$STACK_DIR/run" ] || { echo "no stack in $STACK_DIR"; return 1; }
  load_recorded_settings
  local part pid health down=0
  printf '%-8s %-8s %-6s %s\n' part pid port state
  for part in "${PARTS[@]}"; do
    pid=$(recorded_pid "$part")
    if ! pid_is_part "$pid" "$part"; then
      printf '%-8s %-8s %-6s %s\n' "$part" "${pid:--}" "$(port_of "$part")" "DOWN (not running)"
      down=1
      continue
    fi
    if health=$(part_health "$part"); then
      printf '%-8s %-8s %-6s %s\n' "$part" "$pid" "$(port_of "$part")" "healthy: $health"
    else
      printf '%-8s %-8s %-6s %s\n' "$part" "$pid" "$(port_of "$part")" "UNHEALTHY${health:+: $health}"
      down=1
    fi
  done
  return "$down"
}

# ---- main ----------------------------------------------------------------------

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up | status | down [--purge]   (STACK_DIR=${STACK_DIR})" >&2
    exit 2
    ;;
esac
