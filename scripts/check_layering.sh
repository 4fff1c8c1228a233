#!/bin/sh
# check_layering.sh — fails when a file under src/X includes a header of a
# folder that scripts/layers.txt does not put below X (one that is above X,
# a sibling, or not listed); names the file, the line and both folders.
#
#   scripts/check_layering.sh [ROOT]   check ROOT/src against ROOT/scripts/layers.txt
#   scripts/check_layering.sh --self-test
#
# The self-test builds two small trees in a temporary directory, one that
# keeps the layering and one that breaks it each way, and checks that the
# check passes the first and names every violation of the second: a check
# that cannot fail proves nothing. Only `#include "folder/…"` lines count;
# an include without a folder is the file's own folder, and src/main.c,
# the composition root, may include anything.
set -u

check_tree() {
    root=$1
    layers=$root/scripts/layers.txt
    if [ ! -r "$layers" ]; then
        echo "check_layering: cannot read $layers" >&2
        return 2
    fi
    find "$root/src" -mindepth 2 -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort |
        while IFS= read -r file; do
            grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"/]*/' "$file"
        done |
        awk -v layers="$layers" -v root="$root/" '
            BEGIN {
                while ((getline line < layers) > 0) {
                    sub(/#.*/, "", line)
                    if ((c = index(line, ":")) == 0)
                        continue
                    name = substr(line, 1, c - 1); gsub(/[[:space:]]/, "", name)
                    n = split(substr(line, c + 1), deps, " ")
                    for (i = 1; i <= n; i++) {
                        if (!(deps[i] in known)) {
                            printf "scripts/layers.txt: %s may include %s, which is not on an earlier line\n", name, deps[i]
                            bad++
                        }
                        allowed[name, deps[i]] = 1
                    }
                    known[name] = 1
                }
            }
            {
                # FILE:LINE:#include "dir/header.h"
                n = index($0, ":"); file = substr($0, 1, n - 1); rest = substr($0, n + 1)
                n = index(rest, ":"); lineno = substr(rest, 1, n - 1); text = substr(rest, n + 1)
                rel = substr(file, length(root) + 1)            # src/X/...
                split(rel, parts, "/"); from = parts[2]
                q = index(text, "\""); target = substr(text, q + 1)
                to = substr(target, 1, index(target, "/") - 1)
                if (to == from)
                    next
                if (!(from in known)) {
                    printf "%s:%s: folder %s is not in scripts/layers.txt\n", rel, lineno, from; bad++
                } else if (!(to in known)) {
                    printf "%s:%s: %s includes %s, a folder not in scripts/layers.txt\n", rel, lineno, from, to; bad++
                } else if (!((from, to) in allowed)) {
                    printf "%s:%s: %s includes %s, which scripts/layers.txt does not put below %s\n",
                        rel, lineno, from, to, from; bad++
                }
            }
            END { exit bad > 0 }'
}

# A tree with core < store, metrics < http (store a sibling), and the includes given as
# "path|include" lines on stdin.
make_tree() {
    dir=$1
    mkdir -p "$dir/scripts"
    printf 'core: # a comment\nstore: core\nmetrics: core\nhttp: core metrics\n' >"$dir/scripts/layers.txt"
    while IFS='|' read -r path include; do
        mkdir -p "$dir/$(dirname "$path")"
        printf '#include <stdio.h>\n#include "%s"\n' "$include" >>"$dir/$path"
    done
}

self_test() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-layering-XXXXXX") || return 1
    trap 'rm -rf "$tmp"' EXIT
    make_tree "$tmp/good" <<'TREE'
src/core/a.c|core/a.h
src/store/db.c|core/log.h
src/http/server.c|metrics/metrics.h
src/store/db.c|store/db.h
src/main.c|http/http.h
TREE
    make_tree "$tmp/bad" <<'TREE'
src/store/db.c|metrics/metrics.h
src/core/log.c|http/http.h
src/http/server.c|store/store.h
src/http/x.c|nowhere/n.h
src/extra/y.c|core/a.h
src/http/ok.c|core/a.h
TREE
    ok=0
    if ! out=$(check_tree "$tmp/good"); then
        echo "self-test: a tree that keeps the layering was refused:"
        echo "$out"
        ok=1
    fi
    if out=$(check_tree "$tmp/bad"); then
        echo "self-test: a tree that breaks the layering passed"
        ok=1
    fi
    for want in 'src/store/db.c:2: store includes metrics, which scripts/layers.txt does not put below store' \
        'src/core/log.c:2: core includes http, which' \
        'src/http/server.c:2: http includes store, which' \
        'src/http/x.c:2: http includes nowhere, a folder not in' \
        'src/extra/y.c:2: folder extra is not in'; do
        case $out in
        *"$want"*) ;;
        *)
            echo "self-test: expected \"$want\" in:"
            echo "$out"
            ok=1
            ;;
        esac
    done
    [ "$(printf '%s\n' "$out" | wc -l)" -eq 5 ] || {
        echo "self-test: expected exactly 5 violations, got:"
        echo "$out"
        ok=1
    }
    return $ok
}

if [ "${1:-}" = "--self-test" ]; then
    self_test
else
    check_tree "${1:-$(cd "$(dirname "$0")/.." && pwd)}"
fi
