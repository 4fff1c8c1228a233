"""Load shedding: a bounded worker queue, a deadline for anonymous jobs,
stale copies or 503 + Retry-After when a request cannot start in time,
editors' writes ahead of public misses, and no fill for a read whose
client has gone.

To make the database path slow on demand, the test holds SQLite's write
lock from its own process (BEGIN IMMEDIATE): an editor's write then keeps
the server's only worker waiting in SQLite's busy handler (up to its 5 s
busy_timeout), and every anonymous job queues behind it. Releasing the
lock lets the write finish. On SQLite the event loops would answer those
reads themselves, with their own connections, without queueing
(server.loop_reads; test_loop_reads.py): the servers here turn that off,
because what is tested is the pool's shedding, which PostgreSQL's reads
and a flood of misses under scarce CPU still go through. Bounds on time are generous (the ASan build on
a shared machine); what is asserted exactly is what came back."""

import http.client
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from cache_support import FAILSAFE, HIT, cache_status, is_miss, item_path, poll, published_item, wait_warmed
from metrics_support import parse_metrics, scrape, value
from strata_support import HOST, WriteLock, assert_json, assert_status, create_item

ITEM_ROUTE = "/v1/:site/content/:id"
LIST_ROUTE = "/v1/:site/content"


def get_timed(port, path, timeout=15.0):
    """(status, headers, body, seconds) of one GET on its own connection."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body, time.monotonic() - started
    finally:
        conn.close()


def flood(port, paths):
    """GETs every path at once, one thread and connection each (bounded by
    the per-request timeout); returns their results in order."""
    results = [None] * len(paths)

    def one(i):
        try:
            results[i] = get_timed(port, paths[i])
        except Exception as e:  # noqa: BLE001 - reported below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(paths))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a request hung"
    bad = [r for r in results if isinstance(r, Exception) or r is None]
    assert not bad, f"requests failed without an answer: {bad[:3]}"
    return results


@contextmanager
def worker_held(srv, token):
    """The server's single worker kept busy: a write waits on the
    database's write lock, held by this process, until the block ends.
    Yields the write's thread result holder; the write must have succeeded
    afterwards."""
    lock = WriteLock(srv.deployment.db).acquire()
    result = {}

    def write():
        client = srv.client(timeout=20)
        result["resp"] = client.post("/v1/main/content", json={"type": "held", "slug": f"held-{time.monotonic_ns()}",
                                                               "title": "held"}, token=token)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.4)  # the write reaches the worker and waits on the lock
        yield result
    finally:
        lock.release()
        writer.join(20)
    assert not writer.is_alive(), "the held write never finished"
    assert_status(result["resp"], 201)


def assert_shed_503(result, *, deadline_s, what):
    status, headers, body, took = result
    assert status == 503, f"{what}: {status} {body[:200]!r}"
    assert headers.get("content-type", "").startswith("application/problem+json"), headers
    assert headers.get("retry-after", "").isdigit() and int(headers["retry-after"]) >= 1, headers
    assert b"overloaded" in body and b"server.queue" in body, body
    assert took < deadline_s + 2.5, f"{what}: answered after {took:.2f} s"


# ---- the queue's bound and the deadline -----------------------------------------------------

QUEUE_MAX, TIMEOUT_MS = 6, 500


@pytest.fixture(scope="module")
def small_queue(deployment):
    srv = deployment.server(name="overload", args=[
        "--loop-reads", "false", "--workers", 1, "--threads", 2, "--queue-max", QUEUE_MAX, "--queue-timeout-ms", TIMEOUT_MS,
        "--cache-item-ttl-s", 1, "--cache-item-swr-s", 0, "--cache-item-grace-s", 600,
        "--cache-ttl-jitter-pct", 0,
    ]).start()
    wait_warmed(srv)
    yield srv
    srv.assert_stops_cleanly()


def test_a_flood_of_misses_is_answered_stale_or_503_within_the_deadline(small_queue, tokens):
    srv = small_queue
    client = srv.client()
    expired = published_item(client, tokens["admin"])
    assert_status(client.get(item_path(expired)), 200)
    time.sleep(1.3)  # past its 1 s lifetime, inside its grace: the cache holds an expired copy

    paths = [f"/v1/main/content?tag=flood{i}" for i in range(30)]
    with worker_held(srv, tokens["write"]):
        results = flood(srv.port, paths + [item_path(expired)])
    deadline_s = TIMEOUT_MS / 1000

    *misses, stale = results
    assert stale[0] == 200, stale
    assert "; ".join(p.strip() for p in stale[1].get("cache-status", "").split(";")) == FAILSAFE, stale[1]
    assert stale[3] < deadline_s + 2.5, f"the stale answer took {stale[3]:.2f} s"
    for i, r in enumerate(misses):
        assert_shed_503(r, deadline_s=deadline_s, what=paths[i])
    waited = [r for r in misses if b"server.queue_timeout_ms" in r[2]]
    refused = [r for r in misses if b"server.queue_max" in r[2]]
    assert 1 <= len(waited) <= QUEUE_MAX, f"{len(waited)} waited for the deadline; the queue holds {QUEUE_MAX}"
    assert len(waited) + len(refused) == len(misses)
    assert all(r[3] >= deadline_s * 0.8 for r in waited), [round(r[3], 2) for r in waited]

    # once the worker is free again, the same reads are answered normally
    assert_status(client.get(paths[0]), 200)

    samples, types = parse_metrics(scrape(client))
    assert types.get("strata_http_shed_total") == "counter"
    full = value(samples, "strata_http_shed_total", route=LIST_ROUTE, reason="queue_full")
    late = value(samples, "strata_http_shed_total", route=LIST_ROUTE, reason="deadline")
    assert full == len(refused) and late == len(waited), (full, late)
    assert (value(samples, "strata_http_shed_total", route=ITEM_ROUTE, reason="deadline") or 0) + \
        (value(samples, "strata_http_shed_total", route=ITEM_ROUTE, reason="queue_full") or 0) == 1
    summary = assert_json(client.get("/api/performance/metrics", token=tokens["admin"]), 200)
    assert summary["shed"]["answered"] == len(misses) + 1, summary["shed"]


def test_clients_that_leave_while_queued_cause_no_fill(deployment, tokens):
    srv = deployment.server(name="overload-gone", args=[
        "--loop-reads", "false", "--workers", 1, "--threads", 1, "--queue-timeout-ms", 8000,
    ]).start()
    try:
        wait_warmed(srv)
        client = srv.client()
        paths = [item_path(published_item(client, tokens["admin"])) for _ in range(6)]
        assert_json(client.delete("/v1/main/cache", token=tokens["admin"]), 200)

        with worker_held(srv, tokens["write"]):
            socks = []
            for p in paths:
                s = socket.create_connection((HOST, srv.port), timeout=5)
                s.sendall(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                socks.append(s)
            time.sleep(0.3)
            for s in socks:
                s.close()
            time.sleep(1.0)  # the probe (every 50 ms) sees them leave

        samples, _ = parse_metrics(scrape(client))
        assert value(samples, "strata_http_shed_total", route=ITEM_ROUTE, reason="client_gone") == len(paths)
        for p in paths:  # not filled: the first read now is a miss
            r = client.get(p)
            assert_status(r, 200)
            assert is_miss(r), f"{p} was filled for a client that had gone: {cache_status(r)}"
            assert cache_status(client.get(p)) == HIT
    finally:
        rc = srv.stop(10)
    assert rc == 0, srv.tail()


# ---- editors first ----------------------------------------------------------------------------

def test_writes_succeed_during_a_read_flood(deployment, tokens):
    """Sixteen readers send distinct misses as fast as they are answered
    (bounded: 4 s) into a public lane of two places, so it is full and
    sheds, while an editor saves ten times: every save succeeds and none
    waits behind the readers."""
    srv = deployment.server(name="overload-writes", args=[
        "--loop-reads", "false", "--workers", 2, "--queue-max", 2, "--queue-timeout-ms", 1000,
    ]).start()
    try:
        wait_warmed(srv)
        stop = time.monotonic() + 4.0
        seen = {}
        lock = threading.Lock()

        def reader(n):
            i = 0
            while time.monotonic() < stop:
                status, headers, _, took = get_timed(srv.port, f"/v1/main/content?tag=r{n}x{i}")
                i += 1
                with lock:
                    seen[status] = seen.get(status, 0) + 1
                    if status == 503:
                        assert "retry-after" in headers
                    assert took < 1.0 + 3.0, took

        readers = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
        for t in readers:
            t.start()
        editor = srv.client(token=tokens["write"], timeout=10)
        times = []
        time.sleep(0.5)
        for i in range(10):
            started = time.monotonic()
            draft = create_item(editor, tokens["write"], title=f"during the flood {i}")
            times.append(time.monotonic() - started)
            assert draft["id"]
        for t in readers:
            t.join(30)
        assert not any(t.is_alive() for t in readers)
        assert set(seen) <= {200, 503}, seen
        assert seen.get(200, 0) > 0 and seen.get(503, 0) > 0, f"the public lane should have been full: {seen}"
        print(f"reads: {seen}; slowest save {max(times):.3f} s")
        assert max(times) < 2.0, f"a save waited {max(times):.2f} s behind the readers ({seen})"
    finally:
        rc = srv.stop(10)
    assert rc == 0, srv.tail()


# ---- the shed_rate budget ----------------------------------------------------------------------

def test_a_read_flood_raises_the_shed_rate_alert(deployment, tokens):
    """Readers flood a public lane of two places (as above) until the
    shed_rate budget (5 %) raises its alert, read with an admin token — an
    editors' lane request, answered during the flood (bounded: 15 s)."""
    srv = deployment.server(name="overload-alert", args=[
        "--loop-reads", "false", "--workers", 2, "--queue-max", 2, "--budget-shed-rate", "0.05", "--alerts-window-s", 4,
        "--alerts-min-requests", 5, "--alerts-interval-ms", 100, "--alerts-raise-after", 3,
    ]).start()
    stop = threading.Event()
    statuses = {}

    def reader(n):
        i = 0
        while not stop.is_set() and i < 20000:
            status = get_timed(srv.port, f"/v1/main/content?tag=a{n}x{i}")[0]
            statuses[status] = statuses.get(status, 0) + 1
            i += 1

    readers = [threading.Thread(target=reader, args=(n,)) for n in range(16)]
    try:
        wait_warmed(srv)
        for t in readers:
            t.start()
        admin = srv.client(token=tokens["admin"])

        def firing():
            doc = assert_json(admin.get("/v1/alerts"), 200)
            return [a for a in doc["active"] if a["quantity"] == "shed_rate"]

        alert = poll(firing, timeout=15, interval=0.2, what="the shed_rate alert in /v1/alerts")
        assert alert[0]["value"] > 0.05 and alert[0]["budget"] == 0.05, alert
    finally:
        stop.set()
        for t in readers:
            t.join(30)
        rc = srv.stop(10)
    assert rc == 0, srv.tail()
    assert statuses.get(503, 0) > 0, statuses
