#!/usr/bin/env bash
# deps.sh — install the Debian packages a make target needs, and only those
# that are missing. Usage: scripts/deps.sh run|test|bench|format|stack
#
# As root it runs apt-get itself; otherwise it prints the exact command and
# fails, so nothing is ever half-installed behind the user's back.
set -euo pipefail

# libpq-dev: the PostgreSQL driver (src/store/db_postgres.c) is always built.
# postgresql-15 (test, bench): the server binaries tests/pg_cluster.sh runs
# from /usr/lib/postgresql/15/bin, and pgbench, which Debian 12 ships in the
# same package (not in postgresql-contrib).
# clang-format (test, format): `make format-check`, which .ci/run runs before
# `make test`, and `make format`.
# varnish, varnish-modules (xkey), nginx-light (test): the deploy/ configs
# run for real in tests/system/test_deploy_configs.py and test_stage3.py.
# wrk, redis-tools (test): the short soak (tests/system/test_soak.py runs
# bench/soak.sh for 60 s: its load is wrk, its Redis restarts redis-cli).
run_pkgs=(gcc make pkg-config libh2o-evloop-dev libjansson-dev libsqlite3-dev libssl-dev libinih-dev libxxhash-dev libbrotli-dev libdeflate-dev libzstd-dev libhiredis-dev libpq-dev libjemalloc-dev)
test_pkgs=("${run_pkgs[@]}" libcmocka-dev python3 python3-pytest python3-brotli python3-zstandard redis-server curl chromium prometheus patch clang libclang-rt-14-dev python3-h2 postgresql-15 python3-psycopg2 clang-format varnish varnish-modules nginx-light wrk redis-tools)
bench_pkgs=("${run_pkgs[@]}" wrk nghttp2-client nginx-light curl redis-server redis-tools python3 clang libclang-rt-14-dev postgresql-15)
format_pkgs=(clang-format)
# stack: scripts/stack.sh (`make stack`), SPEC's stage 3 on loopback;
# varnish-modules brings the xkey vmod deploy/varnish/strata.vcl imports.
stack_pkgs=("${run_pkgs[@]}" varnish varnish-modules nginx-light postgresql-15 redis-server redis-tools curl)

case "${1:-}" in
  run) wanted=("${run_pkgs[@]}") ;;
  test) wanted=("${test_pkgs[@]}") ;;
  bench) wanted=("${bench_pkgs[@]}") ;;
  format) wanted=("${format_pkgs[@]}") ;;
  stack) wanted=("${stack_pkgs[@]}") ;;
  *) echo "usage: $0 run|test|bench|format|stack" >&2; exit 2 ;;
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
[ "$1" = format ] || command -v npm >/dev/null || missing+=(nodejs npm)
read -r -a missing <<<"${missing[*]}"

# node_check — fails, in one line, if this node is older than what a package
# of web/package-lock.json declares (engines.node): npm ci only warns, and
# the package would fail later, deep in a test. The pins there run on
# Debian 12's own nodejs (18); a bump that needs more is named here.
# Understands the forms packages use: ">=A.B.C", "^A.B.C", joined by "||".
node_check() {
  [ "$1" = format ] && return 0
  node - "$(dirname "$0")/../web/package-lock.json" <<'JS'
const lock = require(require('path').resolve(process.argv[2]));
const have = process.versions.node.split('.').map(Number);
const older = (a, b) => { for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] < b[i]; return false; };
const allows = (range) => range.split('||').some((alt) => {
  const m = /^\s*(>=|\^)\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*$/.exec(alt);
  if (!m) return true; // a form not understood here: npm ci has the last word
  const want = [m[2], m[3] || 0, m[4] || 0].map(Number);
  return !older(have, want) && (m[1] === '>=' || have[0] === want[0]);
});
const refused = Object.entries(lock.packages || {})
  .filter(([, p]) => p.engines && p.engines.node && !allows(p.engines.node))
  .map(([path, p]) => `${path.replace(/^.*node_modules\//, '')}@${p.version} (node ${p.engines.node})`);
if (refused.length) {
  console.error(`strata's web/ needs a newer Node.js than ${process.version} for ${refused.join(', ')}: ` +
                'install that Node.js, or pin releases whose engines allow this one in web/package.json');
  process.exit(1);
}
JS
}

if [ ${#missing[@]} -eq 0 ]; then
  node_check "$1"
  exit 0
fi

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
node_check "$1"
