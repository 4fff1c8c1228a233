"""Metrics (docs/monitoring.md): the numbers match the traffic a test sent;
the exposition passes `promtool check metrics`; routes are named by their
pattern, never by an id; the JSON summary agrees with /metrics; slow
queries are logged and kept with their plan; the switches work; bad input
on these routes is answered, never crashes.

Each test starts its own server so the counts it reads are its own.
"""

import json
import subprocess

import pytest

from metrics_support import parse_metrics, scrape, value, wait_for_value
from strata_support import Server, fresh_release_binary

ITEM_ROUTE = "/v1/:site/content/:id"
N_HITS = 37
N_ITEM_404 = 3
N_UNMATCHED = 5


def a_published_id(client):
    resp = client.get("/v1/main/content?limit=1")
    assert resp.status == 200, resp
    return resp.json["items"][0]["id"]


def send_known_traffic(client):
    item = a_published_id(client)  # one list request, counted on its own route
    for _ in range(N_HITS):
        assert client.get(f"/v1/main/content/{item}").status == 200
    for i in range(N_ITEM_404):
        assert client.get(f"/v1/main/content/{9000000 + i}").status == 404
    for i in range(N_UNMATCHED):
        assert client.get(f"/no/such/route/{i}").status == 404
    return item


def test_counts_match_the_requests_sent(server_factory):
    srv = server_factory()
    client = srv.client()
    item = send_known_traffic(client)
    samples = wait_for_value(client, "strata_http_requests_total", N_HITS, route=ITEM_ROUTE, method="GET",
                             code_class="2xx")
    assert value(samples, "strata_http_requests_total", route=ITEM_ROUTE, method="GET", code_class="2xx") == N_HITS
    assert value(samples, "strata_http_requests_total", route=ITEM_ROUTE, method="GET",
                 code_class="4xx") == N_ITEM_404
    assert value(samples, "strata_http_requests_total", route="unmatched", method="GET",
                 code_class="4xx") == N_UNMATCHED
    assert value(samples, "strata_http_requests_total", route="/v1/:site/content", method="GET",
                 code_class="2xx") == 1

    # the histogram: every answered request once, buckets cumulative, +Inf = count
    labels = dict(route=ITEM_ROUTE, method="GET")
    count = value(samples, "strata_http_request_duration_seconds_count", **labels)
    assert count == N_HITS + N_ITEM_404
    buckets = sorted(
        (float(dict(k[1])["le"]), v) for k, v in samples.items()
        if k[0] == "strata_http_request_duration_seconds_bucket"
        and dict(k[1]).get("route") == ITEM_ROUTE and dict(k[1]).get("method") == "GET")
    assert buckets[-1] == (float("inf"), count)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets
    total_s = value(samples, "strata_http_request_duration_seconds_sum", **labels)
    assert 0 < total_s < 10 * count, total_s  # plausible: neither zero nor seconds per request
    assert buckets[-2] == (10.0, count)  # nothing took 10 s

    # routes by pattern: no item id, no site, no raw path in any label
    text = scrape(client)
    assert f"/content/{item}" not in text and "/v1/main" not in text and "/no/such" not in text

    # the JSON summary tells the same story
    admin = srv.deployment.tokens["admin"]
    resp = client.get("/api/performance/metrics", token=admin)
    assert resp.status == 200, resp
    summary = resp.json
    route = next(r for r in summary["api"]["routes"] if r["route"] == ITEM_ROUTE and r["method"] == "GET")
    assert route["count"] == N_HITS + N_ITEM_404
    assert route["status"] == {"2xx": N_HITS, "4xx": N_ITEM_404}
    assert route["errors"] == 0 and route["error_rate"] == 0
    lat = route["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["p999"] <= lat["max"] * 1.01, lat
    assert lat["max"] < 10000
    unmatched = next(r for r in summary["api"]["routes"] if r["route"] == "unmatched")
    assert unmatched["count"] == N_UNMATCHED
    for key in ("cache", "db", "pool", "jobs", "memory", "web_vitals", "alerts"):
        assert key in summary, key
    assert summary["cache"]["l1"]["hits"] >= N_HITS - 1  # the first read may have been the fill
    assert 0 < summary["cache"]["l1"]["hit_ratio"] <= 1
    assert summary["db"]["queries"] > 0 and summary["db"]["top_statements"]
    top = summary["db"]["top_statements"]
    assert all(a["total_ms"] >= b["total_ms"] for a, b in zip(top, top[1:]))
    assert summary["pool"]["workers"] >= 1
    assert summary["memory"]["rss_bytes"] > 1 << 20
    # the heap's bytes (glibc's mallinfo2; the sanitizers' allocator keeps its own, so only their presence here)
    assert summary["memory"]["heap_in_use_bytes"] >= 0 and summary["memory"]["heap_free_bytes"] >= 0
    assert summary["memory"]["allocator"] == "glibc"  # test builds are not linked with jemalloc


def test_the_release_build_runs_on_jemalloc_and_reports_its_heap(server_factory):
    """The release build links jemalloc (src/core/heap.c): its heap's bytes
    come from jemalloc's statistics, in the JSON summary and /metrics."""
    binary = fresh_release_binary()
    if binary is None:
        pytest.skip("build/strata is missing or older than src/: `make build/strata` to check it")
    srv = Server(server_factory.default_deployment)
    srv.binary = binary
    server_factory.servers.append(srv)
    srv.start()
    client = srv.client()
    send_known_traffic(client)
    memory = client.get("/api/performance/metrics", token=srv.deployment.tokens["admin"]).json["memory"]
    assert memory["allocator"] == "jemalloc", memory
    assert 1 << 20 < memory["heap_in_use_bytes"] < memory["rss_bytes"], memory
    assert 0 <= memory["heap_free_bytes"] < memory["rss_bytes"], memory
    # where the free bytes are: jemalloc's own bookkeeping is never empty
    assert 0 < memory["heap_metadata_bytes"] < memory["rss_bytes"], memory
    assert 0 <= memory["heap_fragmented_bytes"] < memory["rss_bytes"], memory
    samples, _ = parse_metrics(scrape(client))
    assert value(samples, "strata_heap_bytes", state="in_use") > 1 << 20


def test_promtool_accepts_the_live_exposition(server_factory):
    srv = server_factory()
    client = srv.client()
    send_known_traffic(client)
    client.get("/v1/main/categories")
    text = scrape(client)
    proc = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"promtool: {proc.stdout}{proc.stderr}\n--- exposition ---\n{text[:3000]}"
    samples, types = parse_metrics(text)
    assert types["strata_http_request_duration_seconds"] == "histogram"
    assert types["strata_http_requests_total"] == "counter"
    assert types["strata_db_query_duration_seconds_total"] == "counter"
    for name, kind in types.items():
        assert (kind == "counter") == name.endswith("_total"), name
    # statements by a short stable name, one series per statement
    statements = {dict(k[1])["statement"] for k in samples if k[0] == "strata_db_queries_total"}
    assert statements and all(len(s) < 48 and " " not in s for s in statements), statements
    assert value(samples, "strata_cache_hits_total", tier="l1", site="_all") >= N_HITS - 1  # public: sites summed
    assert value(samples, "strata_worker_pool_workers") >= 1
    assert value(samples, "strata_process_resident_memory_bytes") > 1 << 20
    assert types["strata_heap_bytes"] == "gauge"
    assert value(samples, "strata_heap_bytes", state="in_use") >= 0 and value(samples, "strata_heap_bytes", state="free") >= 0


def test_slow_queries_are_logged_and_kept_with_their_plan(server_factory):
    # a threshold of 0 ms makes every statement slow: an honest way to see
    # the log and the ring without slowing anything down on purpose
    srv = server_factory(args=["--db-slow-query-ms", "0"])
    client = srv.client()
    assert client.get("/v1/main/content?limit=3").status == 200  # a miss: the list query runs
    admin = srv.deployment.tokens["admin"]
    resp = client.get("/v1/slow-queries", token=admin)
    assert resp.status == 200, resp
    assert resp.json["slow_query_ms"] == 0
    queries = resp.json["queries"]
    assert 0 < len(queries) <= 50
    assert resp.json["total"] >= len(queries)
    # the list's own statement (a background job's statement, such as the
    # category counts, can read items too and be kept in the ring before it)
    listing = [q for q in queries if q["statement"].startswith("select_items_") and "FROM items" in q["sql"]
               and q["plan"]]
    assert listing, queries[:5]
    # the engine's own plan: SQLite's EXPLAIN QUERY PLAN, PostgreSQL's EXPLAIN
    plan_words = ("SCAN", "SEARCH", "Index Scan", "Index Only Scan", "Seq Scan", "Bitmap")
    assert any(word in listing[0]["plan"] for word in plan_words), listing[0]
    assert listing[0]["ms"] >= 0
    logged = [r for r in srv.log_records() if r.get("msg") == "slow query"]
    assert logged and all(r["level"] == "warn" and "sql" in r and "plan" in r for r in logged)
    assert any(any(word in r["plan"] for word in plan_words) for r in logged)

    # more than the ring holds: still the newest 50 (each list distinct, so
    # each one is a miss that runs its query)
    for i in range(60):
        assert client.get(f"/v1/main/content?limit=2&type=nothing-{i}").status == 200
    resp = client.get("/v1/slow-queries", token=admin)
    assert len(resp.json["queries"]) == 50 and resp.json["total"] > 50


def test_default_threshold_keeps_fast_queries_out(server_factory):
    srv = server_factory()
    client = srv.client()
    client.get("/v1/main/content?limit=3")
    resp = client.get("/v1/slow-queries", token=srv.deployment.tokens["admin"])
    assert resp.status == 200 and resp.json["slow_query_ms"] == 50
    assert all(q["ms"] >= 50 for q in resp.json["queries"])


def test_who_may_read(server_factory):
    srv = server_factory()
    client = srv.client()
    tokens = srv.deployment.tokens
    assert client.get("/metrics").status == 200  # public by default
    for path in ("/api/performance/metrics", "/v1/slow-queries"):
        assert client.get(path).status == 401
        assert client.get(path, token=tokens["read"]).status == 403
        assert client.get(path, token="not-a-token").status == 401
    assert client.post("/metrics", body=b"x").status == 405
    assert client.request("HEAD", "/metrics").status == 200
    assert client.get("/metrics?format=%00%ff&name[]=1").status == 200  # the query is ignored

    locked = server_factory(args=["--metrics-token-required", "true"])
    lc = locked.client()
    assert lc.get("/metrics").status == 401
    assert lc.get("/metrics", token=tokens["write"]).status == 403
    assert lc.get("/metrics", token=tokens["admin"]).status == 200


def test_switched_off_records_nothing(server_factory):
    srv = server_factory(args=["--metrics-enabled", "false"])
    client = srv.client()
    send_known_traffic(client)
    samples, _ = parse_metrics(scrape(client))
    assert value(samples, "strata_metrics_enabled") == 0
    assert not [k for k in samples if k[0] == "strata_http_requests_total"]
    assert not [k for k in samples if k[0] == "strata_db_queries_total"]
    summary = client.get("/api/performance/metrics", token=srv.deployment.tokens["admin"]).json
    assert summary["enabled"] is False and summary["api"]["requests"] == 0
    json.dumps(summary)  # well-formed all the same
