#!/usr/bin/env bash
# run.sh — run every test and end with one line "N passed, N failed".
#
# The layering of src/ (scripts/layers.txt, scripts/check_layering.sh and
# its self-test): two tests.
# Unit tests: each build/asan/tests/test_* binary (cmocka, under ASan and
# UBSan), and the store's again on PostgreSQL. Fuzz harnesses: each build/fuzz/fuzz_* for FUZZ_TEST_SECONDS (3)
# from its seeds (tests/fuzz/run.sh). System tests, then browser tests:
# pytest (Debian's python3-pytest, /usr/bin/python3) against
# build/asan/strata, so every request of every system test also runs under
# the sanitizers. Counts come from cmocka's
# summary lines and from pytest's JUnit XML report, not from exit codes alone.
set -uo pipefail
cd "$(dirname "$0")/.."

unit_only=0
[ "${1:-}" = "--unit-only" ] && unit_only=1

passed=0
failed=0
out=build/test-output
mkdir -p "$out"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"

# A throwaway PostgreSQL cluster (tests/pg_cluster.sh) for the tests that
# need one: STRATA_TEST_PG_URL names it, STRATA_TEST_PG_DIR its directory
# (to stop and start it); stopped and removed on exit. A cluster that
# cannot start is one failure (its tests then skip).
pg_dir=""
if [ -x build/asan/tests/test_db_postgres ]; then
  pg_dir=$(mktemp -d /tmp/strata-pg-XXXXXX)
  trap 'tests/pg_cluster.sh stop "$pg_dir" >/dev/null 2>&1' EXIT
  if STRATA_TEST_PG_URL=$(tests/pg_cluster.sh start "$pg_dir" 2>"$out/pg_cluster.log"); then
    export STRATA_TEST_PG_URL STRATA_TEST_PG_DIR=$pg_dir
  else
    echo "pg cluster: could not start"
    cat "$out/pg_cluster.log"
    failed=$((failed + 1))
  fi
fi

# unit_test BINARY NAME — one cmocka binary; its counts from its summary.
unit_test() {
  local t=$1 name=$2 log rc p f
  log="$out/${name//\//-}.log"
  CMOCKA_MESSAGE_OUTPUT=stdout "$t" >"$log" 2>&1
  rc=$?
  p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  f=$(grep -Eo '^\[  FAILED  \] [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  p=${p:-0}
  f=${f:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1 # crashed or a sanitizer stopped it: count the binary as a failure
  fi
  echo "unit $name: $p passed, $f failed"
  [ "$f" -ne 0 ] && tail -n 40 "$log"
  passed=$((passed + p))
  failed=$((failed + f))
}

for t in build/asan/tests/test_* build/tsan/test_*; do
  [ -x "$t" ] || continue
  unit_test "$t" "$(basename "$(dirname "$t")")/$(basename "$t")"
done

# The store's unit tests again on PostgreSQL (store_fixture.h: a database
# of their own, emptied before each test).
if [ -n "${STRATA_TEST_PG_URL:-}" ]; then
  if tests/pg_cluster.sh psql "$pg_dir" -c "CREATE DATABASE strata_unit OWNER strata" >"$out/pg-unit.log" 2>&1; then
    for t in build/asan/tests/test_store build/asan/tests/test_store_jobs; do
      [ -x "$t" ] || continue
      STRATA_TEST_DB_URL="${STRATA_TEST_PG_URL%/*}/strata_unit" unit_test "$t" "postgres/$(basename "$t")"
    done
  else
    echo "unit postgres: could not create its database"
    cat "$out/pg-unit.log"
    failed=$((failed + 1))
  fi
fi

# The layering (scripts/layers.txt): the check's self-test (it must refuse
# a tree that breaks the layering) and the check of src/, one test each.
layering() {
  local p=0 f=0 mode
  for mode in --self-test ""; do
    if scripts/check_layering.sh $mode >"$out/layering${mode}.log" 2>&1; then
      p=$((p + 1))
    else
      f=$((f + 1))
      cat "$out/layering${mode}.log"
    fi
  done
  echo "layering: $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}
layering

# Each libFuzzer harness (build/fuzz/fuzz_*, tests/fuzz) for a few seconds
# from its seed corpus: one test each, so a harness that stops building,
# or a parser that crashes on its seeds or their near mutations, fails.
fuzz_harnesses() {
  local bin name
  for bin in build/fuzz/fuzz_*; do
    [ -x "$bin" ] || continue
    name=${bin#build/fuzz/fuzz_}
    if tests/fuzz/run.sh "${FUZZ_TEST_SECONDS:-3}" "$name" >"$out/fuzz-$name.log" 2>&1; then
      echo "fuzz $name: 1 passed, 0 failed ($(sed -n 2p "$out/fuzz-$name.log" | awk '{print $2}') executions)"
      passed=$((passed + 1))
    else
      echo "fuzz $name: 0 passed, 1 failed"
      tail -n 30 "$out/fuzz-$name.log"
      failed=$((failed + 1))
    fi
  done
}

# One pytest directory against build/asan/strata; its counts from the JUnit XML.
pytest_suite() {
  local name=$1 dir=$2 xml="$out/$1.xml" p f
  rm -f "$xml"
  /usr/bin/python3 -m pytest "$dir" -q -p no:cacheprovider --junitxml="$xml" 2>&1 | tee "$out/$name.log" | tail -n 60
  if [ -f "$xml" ]; then
    read -r p f < <(/usr/bin/python3 - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
tests = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests - bad - skipped, bad)
PY
)
  else
    p=0
    f=1
  fi
  echo "$name: $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}

if [ "$unit_only" -eq 0 ]; then
  fuzz_harnesses
  export STRATA_BIN="$PWD/build/asan/strata"
  pytest_suite system tests/system
  # the whole system suite again with every deployment on PostgreSQL
  if [ -n "${STRATA_TEST_PG_URL:-}" ]; then
    STRATA_TEST_DB=postgres pytest_suite system-postgres tests/system
  fi
  # Debian's chromium driven by playwright-core (web/node_modules): /vitals.js and the dashboard
  pytest_suite browser tests/browser
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
