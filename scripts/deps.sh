#!/usr/bin/env bash
# deps.sh — install the Debian packages a make target needs, and only those
# that are missing. Usage: scripts/deps.sh run|test|bench
#
# As root it runs apt-get itself; otherwise it prints the exact command and
# fails, so nothing is ever half-installed behind the user's back.
set -euo pipefail

# libpq-dev: the PostgreSQL driver (src/store/db_postgres.c) is always built.
# postgresql-15 (test, bench): the server binaries tests/pg_cluster.sh runs
# from /usr/lib/postgresql/15/bin, and pgbench, which Debian 12 ships in the
# same package (not in postgresql-contrib).
run_pkgs=(gcc make pkg-config libh2o-evloop-dev libjansson-dev libsqlite3-dev libssl-dev libinih-dev libxxhash-dev libbrotli-dev libdeflate-dev libzstd-dev libhiredis-dev libpq-dev)
test_pkgs=("${run_pkgs[@]}" libcmocka-dev python3 python3-pytest python3-brotli python3-zstandard redis-server curl chromium prometheus patch clang libclang-rt-14-dev python3-h2 postgresql-15 python3-psycopg2)
bench_pkgs=("${run_pkgs[@]}" wrk nghttp2-client nginx-light curl redis-server redis-tools python3 clang libclang-rt-14-dev postgresql-15)

case "${1:-}" in
  run) wanted=("${run_pkgs[@]}") ;;
  test) wanted=("${test_pkgs[@]}") ;;
  bench) wanted=("${bench_pkgs[@]}") ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# nginx-light is one way to have nginx; any installed nginx will do.
if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v nginx >/dev/null; then
  missing=("${missing[@]/nginx-light}")
fi
# node and npm build the browser assets (web/); any installed npm will do.
command -v npm >/dev/null || missing+=(nodejs npm)
read -r -a missing <<<"${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "strata needs these Debian packages: ${missing[*]}" >&2
  echo "run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
$cmd >&2
