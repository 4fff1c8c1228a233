#!/usr/bin/python3
"""bench/history_data.py — the data and the one-request-at-a-time
measurements of bench/history.sh (issue 5), through strata's HTTP API.

  build   creates, through real saves (PUT with If-Match, like an editor's
          tool): item A, a ~20 KB article with 10 versions; item B, the same
          kind of article with 10,000 versions, each one small edit (a word
          replaced, inserted or deleted, or a sentence added) from the last;
          item C, a ~50 KB article with 60 versions, each about ten edits
          apart. Prints one JSON line: the ids, a cursor deep in B's version
          list, the save latencies, and B's bytes per version (from the
          version list's size and stored_bytes).
  cold    requests that no cache can answer, one at a time: B's first
          and deep version list pages at every limit 1..100 (each one a new
          page), diffs of C between pairs of versions never asked before,
          and versions of B never read before. Prints their latency
          percentiles as JSON.

Deterministic (seeded), bounded (every request has a timeout), loopback
only. Standard library only (Debian's python3).
"""

import argparse
import http.client
import json
import random
import statistics
import sys
import time

WORDS = (
    "council budget museum students climate rural urban coastal flood defences research grant data rules "
    "energy deal housing reform school funding transport strategy health programme pension changes "
    "festival trade agreement broadband rollout water policy digital tax ministers voters farmers "
    "engineers architects teachers doctors unions courts regulators investors startups artists "
    "approve reject debate delay review launch fund expand question defend welcome rethink test unveil"
).split()


class Api:
    def __init__(self, port, token, site="main"):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.token = token
        self.base = f"/v1/{site}"

    def call(self, method, path, body=None, headers=None):
        h = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body)
        h.update(headers or {})
        start = time.perf_counter()
        self.conn.request(method, self.base + path, body=body, headers=h)
        resp = self.conn.getresponse()
        data = resp.read()
        elapsed = (time.perf_counter() - start) * 1000
        return resp.status, dict((k.lower(), v) for k, v in resp.getheaders()), data, elapsed


def article(rng, size):
    paragraphs, length = [], 0
    while length < size:
        sentences = []
        for _ in range(rng.randint(3, 7)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        p = " ".join(sentences)
        paragraphs.append(p)
        length += len(p) + 2
    return "\n\n".join(paragraphs)[:size]


def small_edit(rng, body):
    """One edit inside one paragraph (paragraph breaks are kept, as an
    editor's typing keeps them)."""
    paragraphs = body.split("\n\n")
    p = rng.randrange(len(paragraphs))
    words = paragraphs[p].split(" ")
    i = rng.randrange(len(words))
    kind = rng.randrange(4)
    if kind == 0:
        words[i] = rng.choice(WORDS)
    elif kind == 1:
        words.insert(i, rng.choice(WORDS))
    elif kind == 2 and len(words) > 10:
        del words[i]
    else:  # a phrase rewritten: up to ten words replaced
        for j in range(i, min(i + 10, len(words))):
            words[j] = rng.choice(WORDS)
    paragraphs[p] = " ".join(words)
    return "\n\n".join(paragraphs)


def create(api, slug, title, body):
    status, _, data, _ = api.call("POST", "/content", {"type": "post", "slug": slug, "title": title, "body": body})
    if status != 201:
        sys.exit(f"history_data: create {slug}: {status} {data[:200]!r}")
    return json.loads(data)["id"]


def save(api, item, version, body):
    status, headers, data, ms = api.call("PUT", f"/content/{item}", {"body": body},
                                         {"If-Match": f'"v{version}"'})
    if status != 200:
        sys.exit(f"history_data: save {item} v{version}: {status} {data[:200]!r}")
    return ms


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def build(api, versions_b, seed):
    rng = random.Random(seed)
    tag = f"{seed}-{int(time.time())}"
    ids, save_ms = {}, []
    for name, size, count, edits_per_version in (("a", 20000, 10, 1), ("b", 20000, versions_b, 1),
                                                  ("c", 50000, 60, 10)):
        body = article(rng, size)
        item = create(api, f"history-{name}-{tag}", f"History bench item {name}", body)
        for version in range(1, count):
            for _ in range(edits_per_version):
                body = small_edit(rng, body)
            save_ms.append(save(api, item, version, body))
        ids[name] = item
        print(f"history_data: item {name} = {item}: {count} versions of ~{size // 1000} KB", file=sys.stderr)
    # B's version list, walked to the end: bytes per version, and a cursor
    # deep in it (the page that starts about 100 versions above version 1).
    size_total = stored_total = listed = 0
    cursor, deep_cursor = None, None
    while True:
        path = f"/content/{ids['b']}/versions?limit=100" + (f"&cursor={cursor}" if cursor else "")
        status, _, data, _ = api.call("GET", path)
        if status != 200:
            sys.exit(f"history_data: {path}: {status} {data[:200]!r}")
        page = json.loads(data)
        for v in page["versions"]:
            size_total += v["size"]
            stored_total += v["stored_bytes"]
            listed += 1
        cursor = page["next_cursor"]
        if cursor and page["versions"][-1]["number"] <= 200 and deep_cursor is None:
            deep_cursor = cursor
        if not cursor:
            break
    print(json.dumps({
        "a": ids["a"], "b": ids["b"], "c": ids["c"], "deep_cursor": deep_cursor,
        "b_versions": listed, "b_bytes_per_version": round(stored_total / listed, 1),
        "b_json_bytes_per_version": round(size_total / listed, 1),
        "saves": len(save_ms), "save_p50_ms": round(statistics.median(save_ms), 3),
        "save_p99_ms": round(percentile(save_ms, 99), 3),
    }))


def cold(api, item_b, item_c, versions_b, samples, seed, deep_cursor):
    rng = random.Random(seed)
    diff_ms, version_ms = [], []
    # Version list pages no cache holds: each limit 1..100 once, on B's
    # first page and on the deep page, interleaved.
    list_ms = {"first": [], "deep": []}
    limits = list(range(1, 101))
    rng.shuffle(limits)
    for limit in limits:
        for where, suffix in (("first", ""), ("deep", f"&cursor={deep_cursor}")):
            status, headers, data, ms = api.call("GET", f"/content/{item_b}/versions?limit={limit}{suffix}")
            if status != 200:
                sys.exit(f"history_data: list {where} limit {limit}: {status} {data[:200]!r}")
            list_ms[where].append(ms)
    pairs = set()
    while len(pairs) < samples:
        a, b = rng.randrange(1, 61), rng.randrange(1, 61)
        if abs(a - b) >= 2:
            pairs.add((a, b))
    for a, b in sorted(pairs):
        status, headers, data, ms = api.call("GET", f"/content/{item_c}/diff?from={a}&to={b}")
        if status != 200 or headers.get("x-history-cache") != "miss":
            sys.exit(f"history_data: diff {a}..{b}: {status} cache {headers.get('x-history-cache')}")
        diff_ms.append(ms)
    numbers = rng.sample(range(1, versions_b + 1), min(samples, versions_b))
    for n in numbers:
        status, headers, data, ms = api.call("GET", f"/content/{item_b}/versions/{n}")
        if status != 200 or headers.get("x-history-cache") != "miss":
            sys.exit(f"history_data: version {n}: {status} cache {headers.get('x-history-cache')}")
        version_ms.append(ms)
    print(json.dumps({
        "diff_cold_n": len(diff_ms), "diff_cold_p50_ms": round(statistics.median(diff_ms), 3),
        "diff_cold_p99_ms": round(percentile(diff_ms, 99), 3), "diff_cold_max_ms": round(max(diff_ms), 3),
        "version_cold_n": len(version_ms), "version_cold_p50_ms": round(statistics.median(version_ms), 3),
        "version_cold_p99_ms": round(percentile(version_ms, 99), 3),
        "list_cold_first_p50_ms": round(statistics.median(list_ms["first"]), 3),
        "list_cold_first_p99_ms": round(percentile(list_ms["first"], 99), 3),
        "list_cold_deep_p50_ms": round(statistics.median(list_ms["deep"]), 3),
        "list_cold_deep_p99_ms": round(percentile(list_ms["deep"], 99), 3),
    }))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("build", "cold"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--versions", type=int, default=10000)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--item-b", type=int)
    p.add_argument("--item-c", type=int)
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--deep-cursor")
    args = p.parse_args()
    api = Api(args.port, args.token)
    if args.mode == "build":
        build(api, args.versions, args.seed)
    else:
        cold(api, args.item_b, args.item_c, args.versions, args.samples, args.seed, args.deep_cursor)


if __name__ == "__main__":
    main()
