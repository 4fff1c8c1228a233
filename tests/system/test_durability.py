"""Nothing acknowledged is ever lost: writers hammer the server, the server
is killed with SIGKILL mid-burst, and after a restart on the same database
every write that got its 2xx is there."""

import http.client
import threading
import time

import pytest

from strata_support import (
    Client, TruncatedResponse, assert_json, create_item, list_all, uniq,
)

WRITERS = 8
MAX_REQUESTS = 400
MAX_SECONDS = 3.0
KILL_AFTER = 1.0
CONNECTION_ERRORS = (OSError, http.client.HTTPException, TruncatedResponse)


class Burst:
    """Runs `step(client, thread_no, n)` in WRITERS threads until told to
    stop, an error, MAX_REQUESTS in all or MAX_SECONDS."""

    def __init__(self, port, step):
        self.port = port
        self.step = step
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests = 0
        self.acked = 0
        self.errors = []     # connection-level errors (expected once the server dies)
        self.failures = []   # wrong answers from a live server (test failures)
        self.start = None

    def _run(self, no):
        c = Client(self.port, timeout=5)
        n = 0
        try:
            while not self.stop.is_set() and time.monotonic() - self.start < MAX_SECONDS:
                with self.lock:
                    if self.requests >= MAX_REQUESTS:
                        return
                    self.requests += 1
                n += 1
                try:
                    ok = self.step(c, no, n)
                except CONNECTION_ERRORS as e:
                    with self.lock:
                        self.errors.append(repr(e))
                    return  # the server is gone (or going): stop this writer
                except Exception as e:  # an assertion about an answer
                    with self.lock:
                        self.failures.append(repr(e))
                    return
                if ok:
                    with self.lock:
                        self.acked += 1
        finally:
            c.close()

    def run_and_kill(self, server):
        """Starts the writers, kills the server after KILL_AFTER s (or once
        half the request budget is acknowledged), waits for the writers."""
        self.start = time.monotonic()
        threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(WRITERS)]
        for t in threads:
            t.start()
        while time.monotonic() - self.start < KILL_AFTER and self.acked < MAX_REQUESTS // 2:
            time.sleep(0.01)
        busy = sum(t.is_alive() for t in threads)
        server.kill9()
        killed_at = time.monotonic() - self.start
        assert busy > 0, "every writer had finished before the kill: nothing was in flight"
        time.sleep(0.2)
        self.stop.set()
        for t in threads:
            t.join(timeout=10)
        assert not any(t.is_alive() for t in threads), "a writer hung after the kill"
        assert not self.failures, f"wrong answers before the kill: {self.failures[:5]}"
        return killed_at


def test_every_acknowledged_create_survives_kill_9(server_factory, fresh_deployment):
    tok = fresh_deployment.tokens["write"]
    typ = uniq("dur")
    acked = []  # (id, slug) of every 201
    acked_lock = threading.Lock()

    def create_one(c, no, n):
        slug = f"w{no}-{n}-{uniq('k')}"
        r = c.post("/v1/main/content", token=tok, json={"type": typ, "slug": slug, "title": f"t {no} {n}"})
        if r.status == 201:
            body = r.json
            assert body and body["slug"] == slug
            with acked_lock:
                acked.append((body["id"], slug))
            return True
        assert r.status in (503,), f"unexpected {r.status}: {r.body[:200]!r}"
        return False

    srv = server_factory(name="victim")
    burst = Burst(srv.port, create_one)
    killed_at = burst.run_and_kill(srv)
    assert srv.killed, "the server had already died before the kill"
    assert acked, f"no create was acknowledged before the kill at {killed_at:.2f}s: {burst.errors[:3]}"

    after = server_factory(fresh_deployment, name="restarted")
    c = after.client(token=tok)
    lost = []
    for item_id, slug in acked:
        r = c.get(f"/v1/main/content/{item_id}/draft")
        if r.status != 200 or r.json.get("slug") != slug or r.json.get("type") != typ:
            lost.append((item_id, slug, r.status))
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged creates lost after kill -9: {lost[:10]}"

    # whatever else survived (creates in flight at the kill) is whole, not half-written
    stored = list_all(c, params={"type": typ, "status": "any"}, token=fresh_deployment.tokens["read"])
    assert {i["id"] for i in stored} >= {i for i, _ in acked}
    for s in stored:
        d = assert_json(c.get(f"/v1/main/content/{s['id']}/draft"))
        assert d["version"] == 1 and d["title"].startswith("t ") and d["type"] == typ


def test_every_acknowledged_save_survives_kill_9(server_factory, fresh_deployment):
    tok = fresh_deployment.tokens["write"]
    srv = server_factory(name="victim")
    setup = srv.client(token=tok)
    items = [create_item(setup, tok, type=uniq("dsv"), title="rev 1") for _ in range(WRITERS)]
    setup.close()
    acked = {d["id"]: 1 for d in items}  # item id → highest acknowledged version
    lock = threading.Lock()

    def save_one(c, no, n):
        item_id = items[no]["id"]
        base = acked[item_id]
        r = c.put(f"/v1/main/content/{item_id}", token=tok, headers={"If-Match": f'"v{base}"'},
                  json={"title": f"rev {base + 1}", "body": "b" * 2000})
        if r.status == 200:
            assert r.json["version"] == base + 1
            with lock:
                acked[item_id] = base + 1
            return True
        assert r.status in (503,), f"unexpected {r.status}: {r.body[:200]!r}"
        return False

    burst = Burst(srv.port, save_one)
    burst.run_and_kill(srv)
    assert srv.killed
    assert sum(v - 1 for v in acked.values()) > 0, f"no save acknowledged: {burst.errors[:3]}"

    after = server_factory(fresh_deployment, name="restarted")
    c = after.client(token=tok)
    problems = []
    for item_id, version in acked.items():
        r = c.get(f"/v1/main/content/{item_id}/draft")
        d = r.json if r.status == 200 else None
        if d is None or d["version"] < version:
            problems.append((item_id, "acked", version, "found", d and d["version"], r.status))
        elif d["title"] != f"rev {d['version']}":
            problems.append((item_id, "version", d["version"], "has title", d["title"]))
        elif r.headers.get("etag") != f'"v{d["version"]}"':
            problems.append((item_id, "etag", r.headers.get("etag")))
    assert not problems, f"acknowledged saves lost or torn after kill -9: {problems}"

    # the history continues where it stopped: the next save builds on the latest version
    item_id = items[0]["id"]
    latest = assert_json(c.get(f"/v1/main/content/{item_id}/draft"))["version"]
    r = c.put(f"/v1/main/content/{item_id}", headers={"If-Match": f'"v{latest}"'}, json={"title": "after restart"})
    assert assert_json(r)["version"] == latest + 1
