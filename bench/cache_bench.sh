#!/usr/bin/env bash
#
# bench/cache_bench.sh — the cache engine's own benchmarks, without HTTP:
# builds bench/cache_sim.c and bench/cache_micro.c against the engine,
# src/cache/cache.c (not the L2 and the bus beside it, which need h2o), into
# build/bench/ (-O2) and runs them, each under a time limit.
#
#   cache_sim    hit ratio of the engine (S3-FIFO, at 1 and 64 shards) against a
#                plain LRU of the same object capacity, on a Zipf 0.99 trace
#                (cache at 0.1 % and 1 % of the keys) and a Zipf + one-off
#                scans trace (1 %). Deterministic: the same numbers every run.
#   cache_micro  nanoseconds per cache_get hit at 1 and 2 threads: random
#                keys over 100,000 (memory-bound), over 1,000 (in the CPU
#                caches) and all threads on the same 16 keys (contention),
#                plus a cache-free loop whose 2-thread speed-up is the
#                machine's ceiling. Timing is noisy on the shared 2-core
#                machines: read its cpu% column (below ~95 % a thread was
#                preempted or asleep on a lock) and its cpu ns/get, which
#                leaves preemption out.
#
# Usage: bench/cache_bench.sh        (from anywhere; needs gcc and libxxhash-dev)
#   SIM_REQUESTS=10000000   requests per trace for cache_sim
#   MICRO_SECONDS=2         seconds per cache_micro run (also capped at 20M gets/thread)
#   MICRO_REPEATS=2         cache_micro runs per case, the best reported
#   SIM_TIMEOUT=120 MICRO_TIMEOUT=120   seconds before a program is stopped
#   CC=gcc
#
# Output: both programs' tables and their RESULT lines:
#   RESULT cache_sim trace=zipf0.99 capacity_pct=0.1 shards=1 … strata=… lru=… delta=…
#   RESULT cache_micro threads=1 keys=uniform ns_per_get=… mops=…
# Whole run: about 10–20 s for cache_sim, and at most 8 cases × MICRO_SECONDS
# × MICRO_REPEATS (≤ 32 s by default) for cache_micro.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
cd "$REPO"

CC=${CC:-gcc}
SIM_REQUESTS=${SIM_REQUESTS:-10000000}
MICRO_SECONDS=${MICRO_SECONDS:-2}
MICRO_REPEATS=${MICRO_REPEATS:-2}
SIM_TIMEOUT=${SIM_TIMEOUT:-120}
MICRO_TIMEOUT=${MICRO_TIMEOUT:-120}

# src/cache/cache.c hashes with XXH3 from libxxhash.
CACHE_LIBS=(-lpthread -lm -lxxhash)

mkdir -p build/bench
for program in cache_sim cache_micro; do
    printf 'bench: building build/bench/%s\n' "$program" >&2
    "$CC" -std=gnu11 -D_GNU_SOURCE -O2 -g -Isrc -Wall -Wextra -Werror \
        "bench/$program.c" src/cache/cache.c "${CACHE_LIBS[@]}" -o "build/bench/$program"
done

# A program that overruns its limit is stopped and fails the script (124).
echo
timeout "$SIM_TIMEOUT" build/bench/cache_sim "$SIM_REQUESTS"
echo
timeout "$MICRO_TIMEOUT" build/bench/cache_micro "$MICRO_SECONDS" "$MICRO_REPEATS"
