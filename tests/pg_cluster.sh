#!/usr/bin/env bash
# pg_cluster.sh — a throwaway PostgreSQL cluster for the tests.
#
#   tests/pg_cluster.sh start DIR [--durable]   prints postgresql://strata:PASS@127.0.0.1:PORT/strata
#   tests/pg_cluster.sh restart DIR             fast shutdown, then start again on the same port
#   tests/pg_cluster.sh stop-server DIR         fast shutdown; the data stays (start-server brings it back)
#   tests/pg_cluster.sh start-server DIR        starts a stopped (or killed: crash recovery) cluster
#   tests/pg_cluster.sh psql DIR ARGS…          psql as the superuser over the unix socket
#   tests/pg_cluster.sh stop DIR                stops it and removes DIR
#   tests/pg_cluster.sh start-replica PRIMARY_DIR DIR [APPLY_DELAY_MS]
#                                               a streaming replica of PRIMARY_DIR's cluster
#                                               (pg_basebackup -R, hot standby) in DIR; prints
#                                               its URL (same role and password)
#   tests/pg_cluster.sh apply-delay DIR MS      the replica applies each commit MS ms late
#                                               (recovery_min_apply_delay; 0: at once)
#
# Debian's postgresql-15 binaries (/usr/lib/postgresql/15/bin) run a cluster
# in DIR/data that listens on 127.0.0.1 only, on a random free port, with
# its unix socket inside DIR (never /var/run/postgresql). initdb refuses to
# run as root, so as root every server command runs as the `postgres` OS
# user, which then owns DIR; DIR must be reachable by that user (under
# /tmp, not under a 0700 directory such as pytest's tmp_path).
#
# The cluster is for tests, so by default it gives up durability for speed
# (fsync, synchronous_commit and full_page_writes off); --durable keeps
# them on for the tests that kill the server and count what survived.
# strata connects over TCP as role `strata` with a random password checked
# by SCRAM, so the URL carries a secret: the tests that no secret reaches
# logs or /metrics have one to look for. The role may create databases, so
# a test can have one of its own. Every wait is bounded (start: 30 s).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
START_TIMEOUT=30

die() {
  echo "pg_cluster.sh: $*" >&2
  exit 1
}

# Runs a PostgreSQL command as the owner of the cluster.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The test settings, in their own file that postgresql.conf includes, so a
# second attempt on another port rewrites rather than appends.
write_conf() {
  local dir=$1 port=$2 durable=$3 sync=off
  [ "$durable" -eq 1 ] && sync=on
  cat >"$dir/data/pg_cluster.conf" <<CONF
# written by tests/pg_cluster.sh
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 64MB
fsync = $sync
synchronous_commit = $sync
full_page_writes = $sync
log_min_messages = warning
timezone = 'UTC'
CONF
  grep -q "^include_if_exists = 'pg_cluster.conf'" "$dir/data/postgresql.conf" ||
    echo "include_if_exists = 'pg_cluster.conf'" >>"$dir/data/postgresql.conf"
}

server_start() {
  local dir=$1
  as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$START_TIMEOUT" start >/dev/null ||
    {
      tail -n 20 "$dir/server.log" >&2 || true
      die "the server in $dir did not start within ${START_TIMEOUT}s"
    }
}

# As the superuser over the unix socket (trust): the role and the database.
create_role_and_database() {
  local dir=$1 port=$2 password=$3
  as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres <<SQL >/dev/null
CREATE ROLE strata LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE strata OWNER strata;
SQL
}

# DIR, new, marked as this script's and owned by the cluster's owner.
cluster_dir_make() {
  local dir=$1
  [ -e "$dir/data" ] && die "$dir already holds a cluster"
  mkdir -p "$dir"
  touch "$dir/.pg_cluster" # stop may remove DIR from here on, even if start fails half-way
  [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
  as_owner test -w "$dir" || die "$dir is not writable by the cluster's owner (use a directory under /tmp)"
}

# Starts DIR's server on a free port (set in `port`), with write_conf's
# settings and then EXTRA_CONF's lines. A port found free can be taken
# before the server binds it: try again.
start_on_a_free_port() {
  local dir=$1 durable=$2 extra_conf=$3 attempt
  for attempt in 1 2 3; do
    port=$(free_port)
    write_conf "$dir" "$port" "$durable"
    [ -n "$extra_conf" ] && printf '%s\n' "$extra_conf" >>"$dir/data/pg_cluster.conf"
    if as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$START_TIMEOUT" start >/dev/null; then
      return
    fi
  done
  tail -n 20 "$dir/server.log" >&2 || true
  die "the server in $dir did not start"
}

cluster_start() {
  local dir=$1 durable=$2
  cluster_dir_make "$dir"
  local password port
  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C --auth-local=trust \
    --auth-host=scram-sha-256 --no-sync >"$dir/initdb.log" 2>&1 ||
    {
      tail -n 20 "$dir/initdb.log" >&2
      die "initdb failed"
    }
  start_on_a_free_port "$dir" "$durable" ""
  create_role_and_database "$dir" "$port" "$password"
  local url="postgresql://strata:$password@127.0.0.1:$port/strata"
  (umask 077 && echo "$url" >"$dir/url")
  echo "$url"
}

# The data directory of DIR, refusing anything this script did not make.
cluster_data() {
  local dir=$1
  [ -f "$dir/.pg_cluster" ] || die "$dir is not a cluster made by pg_cluster.sh"
}

cluster_stop() {
  local dir=$1
  cluster_data "$dir"
  [ -f "$dir/data/postmaster.pid" ] &&
    { as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t "$START_TIMEOUT" stop >/dev/null 2>&1 || true; }
  rm -rf -- "$dir"
}

cluster_stop_server() {
  local dir=$1
  cluster_data "$dir"
  as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t "$START_TIMEOUT" stop >/dev/null
}

cluster_port() {
  sed -n 's/^port = //p' "$1/data/pg_cluster.conf"
}

# A hot standby of the primary in PRIMARY_DIR, streaming over the
# primary's unix socket (local replication is trusted, as initdb set it);
# the roles, and so the URL's password, are the primary's. write_conf
# rewrites the settings file copied from the primary, and the replica's
# own lines follow it.
replica_start() {
  local primary=$1 dir=$2 delay_ms=${3:-0}
  cluster_data "$primary"
  cluster_dir_make "$dir"
  as_owner "$PG_BIN/pg_basebackup" -h "$primary" -p "$(cluster_port "$primary")" -U postgres -D "$dir/data" \
    -R -X stream --checkpoint=fast --no-sync >"$dir/basebackup.log" 2>&1 ||
    {
      tail -n 20 "$dir/basebackup.log" >&2
      die "pg_basebackup from $primary failed"
    }
  local port
  start_on_a_free_port "$dir" 0 "hot_standby = on
recovery_min_apply_delay = '${delay_ms}ms'"
  local url
  url=$(sed "s/@127.0.0.1:[0-9]*\//@127.0.0.1:$port\//" "$primary/url")
  (umask 077 && echo "$url" >"$dir/url")
  echo "$url"
}

replica_apply_delay() {
  local dir=$1 delay_ms=$2
  cluster_data "$dir"
  [[ "$delay_ms" =~ ^[0-9]+$ ]] || die "apply-delay takes milliseconds, not '$delay_ms'"
  [ -f "$dir/data/standby.signal" ] || die "$dir is not a replica"
  sed -i "s/^recovery_min_apply_delay = .*/recovery_min_apply_delay = '${delay_ms}ms'/" "$dir/data/pg_cluster.conf"
  as_owner "$PG_BIN/pg_ctl" -D "$dir/data" reload >/dev/null
}

cluster_psql() {
  local dir=$1
  shift
  cluster_data "$dir"
  as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$(cluster_port "$dir")" -U postgres -d postgres "$@"
}

command=${1:-}
[ $# -ge 2 ] || die "usage: $0 start DIR [--durable] | restart|stop-server|start-server|stop DIR | psql DIR ARGS…"
dir=$2
case "$command" in
  start)
    durable=0
    [ "${3:-}" = "--durable" ] && durable=1
    cluster_start "$dir" "$durable"
    ;;
  restart)
    cluster_stop_server "$dir"
    server_start "$dir"
    ;;
  stop-server) cluster_stop_server "$dir" ;;
  start-server)
    cluster_data "$dir"
    server_start "$dir"
    ;;
  psql)
    shift 2
    cluster_psql "$dir" "$@"
    ;;
  stop) cluster_stop "$dir" ;;
  start-replica)
    [ $# -ge 3 ] || die "usage: $0 start-replica PRIMARY_DIR DIR [APPLY_DELAY_MS]"
    replica_start "$dir" "$3" "${4:-0}"
    ;;
  apply-delay)
    [ $# -ge 3 ] || die "usage: $0 apply-delay DIR MS"
    replica_apply_delay "$dir" "$3"
    ;;
  *) die "unknown command $command" ;;
esac
