# strata — `make run` and `make test` are the whole set-up (see README.md).
#
#   make / make build   build/strata (optimised)
#   make run            install what is missing, build, seed data/strata.db, serve :8080
#   make test           install what is missing, build under ASan+UBSan, run every test
#   make unit           the cmocka unit tests only
#   make bench          the benchmarks under bench/ (a few minutes)
#   make stack          SPEC's stage 3 on loopback (scripts/stack.sh up; README.md)
#   make tsan           the cache engine's tests under ThreadSanitizer
#   make fuzz           every libFuzzer harness for FUZZ_SECONDS (default 60) each
#
# Sources: every src/**/*.c; src/main.c is the program, the rest is linked
# into the unit tests too. A unit test is tests/unit/test_*.c.

SHELL := /bin/bash
CC ?= cc
PKGS := libh2o-evloop jansson sqlite3 libcrypto inih libxxhash libbrotlienc libbrotlidec libdeflate libzstd hiredis libpq

SRC := $(shell find src -name '*.c' | sort)
ASM := $(shell find src -name '*.S' | sort)
LIB_SRC := $(filter-out src/main.c,$(SRC))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

WARN := -Wall -Wextra -Werror
BASE_CFLAGS := -std=gnu11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Isrc -Isrc/http/h2o_compat -MMD -MP $(WARN)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# The invariant checkers (src/core/sanity.h) run in every test build, never
# in the release one.
SANITY := -DSTRATA_SANITY

REL_DIR := build/obj
ASAN_DIR := build/asan

.PHONY: all build run test unit tsan fuzz bench stack clean deps-run deps-test format format-check

all: build
build: build/strata

build/.deps-run: scripts/deps.sh
	@scripts/deps.sh run
	@mkdir -p build && touch $@
build/.deps-test: scripts/deps.sh
	@scripts/deps.sh test
	@mkdir -p build && touch $@

# PKG_* are expanded after the dependency check has run.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

# ---- browser assets (web/; docs/web-vitals.md) -------------------------------
# npm packages come from the committed web/package-lock.json: `npm ci` runs
# when web/node_modules is missing or older than the lockfile, and never
# downloads a browser. The bundles are the packages' prebuilt dist files
# concatenated with our sources from web/src; src/web/assets_blob.S links
# them into the binary.
WEB_OUT := build/web
WEB_ASSETS := $(WEB_OUT)/vitals.js $(WEB_OUT)/dashboard.html $(WEB_OUT)/dashboard.js $(WEB_OUT)/dashboard.css
WEB_MODULES := web/node_modules/.package-lock.json

$(WEB_MODULES): web/package.json web/package-lock.json | build/.deps-run
	@echo "  NPM     web (npm ci)"
	@scripts/deps.sh run # its Node.js check, again: the lockfile may have changed since the stamp
	@cd web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	@touch $@
$(WEB_OUT)/vitals.js: web/src/vitals-beacon.js $(WEB_MODULES)
	@mkdir -p $(@D)
	@echo "  WEB     $@"
	@{ sed '/^\/\/# sourceMappingURL=/d' web/node_modules/web-vitals/dist/web-vitals.attribution.iife.js; cat $<; } >$@
$(WEB_OUT)/dashboard.js: web/src/dashboard.js $(WEB_MODULES)
	@mkdir -p $(@D)
	@echo "  WEB     $@"
	@{ cat web/node_modules/uplot/dist/uPlot.iife.min.js; echo; cat $<; } >$@
$(WEB_OUT)/dashboard.css: web/src/dashboard.css $(WEB_MODULES)
	@mkdir -p $(@D)
	@{ cat web/node_modules/uplot/dist/uPlot.min.css; echo; cat $<; } >$@
$(WEB_OUT)/dashboard.html: web/src/dashboard.html
	@mkdir -p $(@D)
	@cp $< $@
$(REL_DIR)/src/web/assets_blob.o $(ASAN_DIR)/src/web/assets_blob.o: $(WEB_ASSETS)

# ---- release build ---------------------------------------------------------
REL_OBJ := $(SRC:%.c=$(REL_DIR)/%.o) $(ASM:%.S=$(REL_DIR)/%.o)

# The release build runs on jemalloc (src/core/heap.c says why); the test
# builds keep the sanitizers' allocator.
$(REL_DIR)/%.o: %.c build/.deps-run
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(BASE_CFLAGS) -DSTRATA_JEMALLOC -O2 -g $(PKG_CFLAGS) -c $< -o $@
$(REL_DIR)/%.o: %.S docs/openapi.yaml
	@mkdir -p $(@D)
	@$(CC) -c $< -o $@

build/strata: $(REL_OBJ)
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(PKG_LIBS) -ljemalloc

# ---- sanitizer build for tests ----------------------------------------------
ASAN_OBJ := $(SRC:%.c=$(ASAN_DIR)/%.o) $(ASM:%.S=$(ASAN_DIR)/%.o)
ASAN_LIB_OBJ := $(filter-out $(ASAN_DIR)/src/main.o,$(ASAN_OBJ))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(ASAN_DIR)/tests/%)

$(ASAN_DIR)/%.o: %.c build/.deps-test
	@mkdir -p $(@D)
	@echo "  CC asan $<"
	@$(CC) $(BASE_CFLAGS) $(SANITY) -O1 -g $(SAN) $(PKG_CFLAGS) -c $< -o $@
$(ASAN_DIR)/%.o: %.S docs/openapi.yaml
	@mkdir -p $(@D)
	@$(CC) -c $< -o $@

$(ASAN_DIR)/strata: $(ASAN_OBJ)
	@echo "  LD asan $@"
	@$(CC) $(SAN) -o $@ $^ $(PKG_LIBS)

$(ASAN_DIR)/tests/%: tests/unit/%.c $(ASAN_LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  LD asan $@"
	@$(CC) $(BASE_CFLAGS) $(SANITY) -O1 -g $(SAN) $(PKG_CFLAGS) -o $@ $< $(ASAN_LIB_OBJ) $(PKG_LIBS) -lcmocka

# ---- fuzzing (tests/fuzz, docs/fuzzing.md) --------------------------------------
# Every tests/fuzz/fuzz_NAME.c is a libFuzzer harness linked against the
# whole library, compiled a third time by clang with coverage
# instrumentation (fuzzer-no-link) under ASan and UBSan. `make fuzz` runs
# each from a copy of its committed corpus for FUZZ_SECONDS; `make test`
# runs each for a few seconds, so a harness that stops building fails it.
FUZZ_CC := clang
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_BIN := $(FUZZ_NAMES:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o) $(ASM:%.S=$(FUZZ_DIR)/obj/%.o)

$(FUZZ_DIR)/obj/%.o: %.c build/.deps-test
	@mkdir -p $(@D)
	@echo "  CC fuzz $<"
	@$(FUZZ_CC) $(BASE_CFLAGS) $(SANITY) -O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(PKG_CFLAGS) -c $< -o $@
$(FUZZ_DIR)/obj/%.o: %.S docs/openapi.yaml
	@mkdir -p $(@D)
	@$(FUZZ_CC) -c $< -o $@
$(FUZZ_DIR)/obj/src/web/assets_blob.o: $(WEB_ASSETS)
# made by a pattern rule for pattern rules: kept, not deleted as intermediate
.SECONDARY: $(FUZZ_OBJ)

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJ)
	@echo "  LD fuzz $@"
	@$(FUZZ_CC) $(BASE_CFLAGS) $(SANITY) -Itests/fuzz -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) $(PKG_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(PKG_LIBS)

fuzz: $(FUZZ_BIN)
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

# ---- the two commands ----------------------------------------------------------
DB ?= data/strata.db
LISTEN ?= 127.0.0.1:8080

# The cache engine's concurrency under ThreadSanitizer (its own build: TSan
# cannot be combined with ASan).
TSAN_DIR := build/tsan
$(TSAN_DIR)/test_cache: tests/unit/test_cache.c src/cache/cache.c src/cache/cache.h src/core/sanity.c build/.deps-test
	@mkdir -p $(@D)
	@echo "  LD tsan $@"
	@$(CC) $(BASE_CFLAGS) $(SANITY) -O1 -g -fsanitize=thread $(PKG_CFLAGS) -o $@ tests/unit/test_cache.c src/cache/cache.c src/core/sanity.c $(PKG_LIBS) -lcmocka

# The log's writer thread and the threads that hand it lines.
$(TSAN_DIR)/test_log_writer: tests/unit/test_log_writer.c src/core/log.c src/core/log_writer.c src/core/fmt.c src/core/utf8.c src/core/log.h build/.deps-test
	@mkdir -p $(@D)
	@echo "  LD tsan $@"
	@$(CC) $(BASE_CFLAGS) -O1 -g -fsanitize=thread -o $@ tests/unit/test_log_writer.c src/core/log.c src/core/log_writer.c src/core/fmt.c src/core/utf8.c -lcmocka -lpthread

tsan: $(TSAN_DIR)/test_cache $(TSAN_DIR)/test_log_writer
	TSAN_OPTIONS=halt_on_error=1 $(TSAN_DIR)/test_cache
	TSAN_OPTIONS=halt_on_error=1 $(TSAN_DIR)/test_log_writer

run: build/strata
	@scripts/run.sh "$(DB)" "$(LISTEN)"

# Stage 3 (PostgreSQL primary + replica, Redis, three instances, nginx,
# Varnish) on loopback, in build/stack; `scripts/stack.sh status|down`.
stack: build/strata
	@scripts/deps.sh stack
	@scripts/stack.sh up

unit: $(UNIT_BIN)
	@tests/run.sh --unit-only

# build/strata too: the head-flood test measures the release binary against
# the issue's memory figures (tests/system/test_hostile_connections.py).
test: build/.deps-test build/strata $(ASAN_DIR)/strata $(UNIT_BIN) $(TSAN_DIR)/test_cache $(TSAN_DIR)/test_log_writer $(FUZZ_BIN)
	@tests/run.sh

# Loopback load benches, each bounded in time (see docs/benchmarks.md).
bench: build/strata
	@scripts/deps.sh bench
	@bench/item_get.sh
	@bench/hot_path.sh
	@bench/h2.sh
	@bench/miss.sh
	@bench/l2.sh
	@bench/cache_bench.sh
	@bench/history.sh
	@bench/monitoring.sh
	@bench/overload.sh
	@bench/pg.sh
	@scripts/deps.sh stack
	@bench/stack.sh

# Style is .clang-format, applied by Debian's clang-format (14) to every C
# file under src/ and tests/unit/. `make format` rewrites them; `make
# format-check` changes nothing and fails naming each file that differs
# (.ci/run runs it before `make test`, so style never drifts).
FORMAT_FILES = $(SRC) $(UNIT_SRC) $(shell find src -name '*.h' | sort)

format:
	@scripts/deps.sh format
	clang-format -i $(FORMAT_FILES)

format-check:
	@scripts/deps.sh format
	@out=$$(clang-format --dry-run -Werror $(FORMAT_FILES) 2>&1); rc=$$?; \
	bad=$$(sed -n 's/^\([^: ]*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' <<<"$$out" | sort -u); \
	if [ -n "$$bad" ]; then \
	  sed 's/^/  unformatted: /' <<<"$$bad"; \
	  echo "format-check: $$(wc -l <<<"$$bad") of $(words $(FORMAT_FILES)) files differ from .clang-format: run make format"; \
	  exit 1; \
	elif [ $$rc -ne 0 ]; then \
	  echo "$$out"; echo "format-check: clang-format failed"; exit 1; \
	fi; \
	echo "format-check: $(words $(FORMAT_FILES)) files formatted"

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
