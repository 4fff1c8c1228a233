"""Background jobs (docs/jobs.md): a schedule runs its job; a job survives
a crash and retries with growing delays; two instances on one database run
each tick once; the purge request carries the configured method, header and
keys; a job that keeps failing ends failed; a slow job never holds up a
request; a bad schedule or purge URL stops `strata serve` at once.

What a job did is read from the JSON log (--log-level debug: "job
scheduled", "job done", "job failed; will retry", "job failed for good")
and, for purges, from a small HTTP receiver the test runs on loopback.
"""

import http.server
import socket
import threading
import time

import pytest

from strata_support import HOST, free_port, run_cli, wait_for

DEBUG = ("--log-level", "debug")


# ---- helpers ----------------------------------------------------------------------------------

class PurgeReceiver:
    """An HTTP server on 127.0.0.1:port that records every request (method,
    path, headers) and answers `status`."""

    def __init__(self, port, status=200):
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one_request(self):
                self.raw_requestline = self.rfile.readline(65537)
                if not self.raw_requestline or not self.parse_request():
                    self.close_connection = True
                    return
                with receiver.lock:
                    receiver.requests.append(
                        {"method": self.command, "path": self.path,
                         "headers": {k.lower(): v for k, v in self.headers.items()}})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def received(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver_factory():
    made = []

    def make(port, status=200):
        r = PurgeReceiver(port, status)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def job_records(srv, msg, kind=None):
    return [r for r in srv.log_records()
            if r.get("msg") == msg and (kind is None or r.get("kind") == kind)]


def invalidate(srv, deployment, tags):
    resp = srv.client().post("/v1/main/cache/invalidate", token=deployment.tokens["admin"],
                             json={"tags": tags})
    assert resp.status == 200, resp
    return resp


def purge_args(port, *extra):
    """A purge endpoint; each purge sent once (the second send, cdn.repurge_ms, has its own test)."""
    return ("--cdn-purge-url", f"http://{HOST}:{port}/purge", "--cdn-repurge-ms", "0", *DEBUG, *extra)


# ---- schedules ----------------------------------------------------------------------------------

def test_a_scheduled_job_runs_at_each_tick(server_factory):
    srv = server_factory(args=("--jobs-schedule-warm", "@every 1s", *DEBUG))
    done = wait_for("two warm jobs done", lambda: len(job_records(srv, "job done", "warm")) >= 2 and
                    job_records(srv, "job done", "warm"), 8)
    assert all(r["attempt"] == 1 for r in done), done
    keys = [r["key"] for r in job_records(srv, "job scheduled", "warm")]
    ticks = [int(k.split("@")[1]) for k in keys]
    assert all(t % 1000 == 0 for t in ticks), f"@every 1s ticks are whole seconds: {keys}"
    assert len(set(ticks)) == len(ticks), f"each tick is scheduled once: {keys}"
    warmed = [r for r in srv.log_records() if r.get("msg") == "cache warmed"]
    assert len(warmed) >= 3, "the start's warming and at least two scheduled ones"


def test_two_instances_on_one_database_run_each_tick_once(server_factory, fresh_deployment):
    args = ("--jobs-schedule-rollup", "@every 1s", "--jobs-poll-interval-ms", "50", *DEBUG)
    a = server_factory(args=args, name="instance-a")
    b = server_factory(args=args, name="instance-b")

    def ticks_seen_by_both():
        keys_a = {r["key"] for r in job_records(a, "job scheduled", "rollup") +
                  job_records(a, "job already scheduled", "rollup")}
        keys_b = {r["key"] for r in job_records(b, "job scheduled", "rollup") +
                  job_records(b, "job already scheduled", "rollup")}
        both = keys_a & keys_b
        return both if len(both) >= 3 else None

    wait_for("three ticks reached by both instances", ticks_seen_by_both, 12)
    time.sleep(0.5)  # the last tick's job finishes
    a.assert_stops_cleanly()
    b.assert_stops_cleanly()

    scheduled = job_records(a, "job scheduled", "rollup") + job_records(b, "job scheduled", "rollup")
    by_key = {}
    for r in scheduled:
        by_key.setdefault(r["key"], []).append(r["job"])
    assert all(len(ids) == 1 for ids in by_key.values()), f"a tick queued twice: {by_key}"
    done = job_records(a, "job done", "rollup") + job_records(b, "job done", "rollup")
    done_ids = [r["job"] for r in done]
    assert len(done_ids) == len(set(done_ids)), f"a job ran twice: {sorted(done_ids)}"
    assert set(done_ids) <= {ids[0] for ids in by_key.values()}
    assert len(done_ids) >= 3, done_ids


def test_a_bad_schedule_or_purge_url_stops_serve_with_exit_2(fresh_deployment):
    cases = [
        (("--jobs-schedule-warm", "61 * * * *"), "jobs.schedule_warm"),
        (("--jobs-schedule-rollup", "@every 0s"), "jobs.schedule_rollup"),
        (("--jobs-schedule-retention", "0 0 30 2 *"), "jobs.schedule_retention"),
        (("--cdn-purge-url", "https://cdn.example/purge"), "cdn.purge_url"),
        (("--cdn-purge-url", f"http://{HOST}:1/", "--cdn-purge-method", "PUR GE"), "cdn.purge_method"),
    ]
    for args, key in cases:
        for command in (("serve", "--db", fresh_deployment.db, "--listen", f"{HOST}:{free_port()}"),
                        ("check-config",)):
            proc = run_cli(fresh_deployment.binary, *command, *args, timeout=20)
            assert proc.returncode == 2, f"{command[0]} {args}: exit {proc.returncode}\n{proc.stderr}"
            assert key in proc.stderr, f"{command[0]} {args}: the error should name {key}: {proc.stderr!r}"


# ---- purges and retries --------------------------------------------------------------------------

def test_a_purge_carries_the_method_header_and_keys(server_factory, fresh_deployment, receiver_factory):
    port = free_port()
    receiver = receiver_factory(port)
    srv = server_factory(args=purge_args(port, "--cdn-purge-header", "xkey"))
    invalidate(srv, fresh_deployment, ["item:3", "main:list", "category:news"])
    got = wait_for("the purge request", receiver.received, 10)
    time.sleep(0.3)
    assert len(receiver.received()) == 1, f"one request for one invalidation: {receiver.received()}"
    req = got[0]
    assert req["method"] == "PURGE"
    assert req["path"] == "/purge"
    assert req["headers"]["xkey"] == "main:item:3 main:list main:category:news"
    assert req["headers"]["host"] == f"{HOST}:{port}"
    assert req["headers"]["connection"].lower() == "close"
    wait_for("the purge job done", lambda: job_records(srv, "job done", "purge"), 5)


def test_each_purge_is_sent_again_after_cdn_repurge_ms(server_factory, fresh_deployment, receiver_factory):
    """An instance that had not yet heard of a write may hand the CDN the
    old copy right after the purge: the same keys are purged again
    cdn.repurge_ms later (and only then)."""
    port = free_port()
    receiver = receiver_factory(port)
    srv = server_factory(args=(*purge_args(port), "--cdn-repurge-ms", "700"))
    started = time.monotonic()
    invalidate(srv, fresh_deployment, ["item:5"])
    first = wait_for("the first purge", receiver.received, 5)
    first_at = time.monotonic() - started
    assert first_at < 0.6 and len(first) == 1, first
    both = wait_for("the second purge", lambda: len(receiver.received()) >= 2 and receiver.received(), 5)
    assert time.monotonic() - started >= 0.7
    assert [r["headers"]["surrogate-key"] for r in both] == ["main:item:5", "main:item:5"]
    time.sleep(0.8)
    assert len(receiver.received()) == 2, "twice, not more"


def test_every_write_to_a_published_item_purges_its_surrogate_keys(server_factory, fresh_deployment,
                                                                    receiver_factory):
    """An event job: publish, save (of a published item), unpublish and
    delete each queue one purge of the keys the write made stale; the write
    is answered without waiting for it."""
    port = free_port()
    receiver = receiver_factory(port)
    srv = server_factory(args=purge_args(port))
    client = srv.client(token=fresh_deployment.tokens["write"])
    created = client.post("/v1/main/content", json={"type": "post", "slug": "purged", "title": "Purged"})
    assert created.status == 201, created
    item = created.json["id"]
    expected = f"main:item:{item} main:lists main:popular main:categories"
    steps = [
        ("publish", lambda: client.post(f"/v1/main/content/{item}/publish")),
        ("save", lambda: client.put(f"/v1/main/content/{item}", json={"title": "Purged again"},
                                    headers={"If-Match": '"v1"'})),
        ("unpublish", lambda: client.post(f"/v1/main/content/{item}/unpublish")),
        ("delete", lambda: client.delete(f"/v1/main/content/{item}")),
    ]
    for n, (name, write) in enumerate(steps, 1):
        resp = write()
        assert resp.status in (200, 204), (name, resp)
        got = wait_for(f"the purge after {name}", lambda: len(receiver.received()) >= n and receiver.received(), 10)
        assert got[n - 1]["method"] == "PURGE"
        assert got[n - 1]["headers"]["surrogate-key"] == expected, (name, got[n - 1])
    assert len(receiver.received()) == len(steps)


def test_a_job_survives_a_crash_and_retries_with_backoff(server_factory, fresh_deployment, receiver_factory):
    port = free_port()  # nothing listens there yet
    args = purge_args(port, "--jobs-retry-base-ms", "300", "--jobs-lease-ms", "2000")
    first = server_factory(args=args, name="before-crash")
    invalidate(first, fresh_deployment, ["item:7"])
    failed = wait_for("three failed attempts",
                      lambda: len(job_records(first, "job failed; will retry", "purge")) >= 3 and
                      job_records(first, "job failed; will retry", "purge"), 10)
    assert [r["attempt"] for r in failed[:3]] == [1, 2, 3]
    assert all("refused" in r["error"].lower() for r in failed), failed
    delays = [r["retry_in_ms"] for r in failed[:3]]
    for n, delay in enumerate(delays):
        nominal = 300 * 2 ** n
        assert 0.9 * nominal - 1 <= delay <= 1.1 * nominal + 1, f"retry {n + 1}: {delay} ms, not {nominal} ±10 %"
    job_id = failed[0]["job"]
    first.kill9()

    receiver = receiver_factory(port)
    second = server_factory(args=args, name="after-crash")
    got = wait_for("the purge after the restart", receiver.received, 10)
    assert got[0]["headers"]["surrogate-key"] == "main:item:7"
    done = wait_for("the job done", lambda: job_records(second, "job done", "purge"), 5)
    assert done[0]["job"] == job_id and done[0]["attempt"] >= 4, done
    time.sleep(1.0)
    assert len(receiver.received()) == 1, f"delivered exactly once: {receiver.received()}"


def test_a_job_that_keeps_failing_ends_failed(server_factory, fresh_deployment, receiver_factory):
    port = free_port()
    receiver_factory(port, status=503)
    srv = server_factory(args=purge_args(port, "--jobs-max-attempts", "2", "--jobs-retry-base-ms", "50"))
    invalidate(srv, fresh_deployment, ["item:1"])
    buried = wait_for("the job failed for good", lambda: job_records(srv, "job failed for good", "purge"), 10)
    assert buried[0]["attempt"] == 2
    assert "503" in buried[0]["error"], buried
    retried = job_records(srv, "job failed; will retry", "purge")
    assert [r["attempt"] for r in retried] == [1], retried
    time.sleep(0.5)
    attempts = [r for r in srv.log_records() if r.get("msg") == "job started" and r.get("kind") == "purge"]
    assert len(attempts) == 2, f"no third attempt: {attempts}"
    # The operator sees it: GET /v1/jobs (an admin token of any site).
    client = srv.client()
    stats = client.get("/v1/jobs", token=fresh_deployment.tokens["admin"])
    assert stats.status == 200, stats
    doc = stats.json
    assert doc["failed"] >= 1 and "runner" in doc, doc
    assert stats.headers.get("cache-control") == "private, no-store"
    assert client.get("/v1/jobs", token=fresh_deployment.tokens["write"]).status == 403
    assert client.get("/v1/jobs").status == 401


def test_a_hung_purge_endpoint_never_holds_up_requests(server_factory, fresh_deployment):
    # a socket that accepts connections (the kernel's backlog) but never answers
    hung = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hung.bind((HOST, 0))
    hung.listen(8)
    try:
        port = hung.getsockname()[1]
        srv = server_factory(args=purge_args(port))
        invalidate(srv, fresh_deployment, ["item:2"])
        wait_for("the purge job running", lambda: job_records(srv, "job started", "purge"), 5)
        client = srv.client()
        slowest = 0.0
        for n in range(20):
            start = time.monotonic()
            resp = client.get(f"/v1/main/content?limit={1 + n % 5}")
            slowest = max(slowest, time.monotonic() - start)
            assert resp.status == 200, resp
        start = time.monotonic()
        invalidate(srv, fresh_deployment, ["item:4"])  # a write that queues another purge
        slowest = max(slowest, time.monotonic() - start)
        assert slowest < 1.0, f"a request took {slowest:.2f}s while a job waited on the CDN"
        failed = wait_for("the purge timing out", lambda: job_records(srv, "job failed; will retry", "purge"), 8)
        assert "no HTTP answer within 5000 ms" in failed[0]["error"], failed
    finally:
        hung.close()
