"""Budgets and alerts (docs/alerts.md): a budget broken on purpose raises an
alert — seen in GET /v1/alerts, in the log and at a webhook receiver the
test runs on loopback — and clears when traffic recovers.

Two honest ways to break a budget: the database made to fail for a few
seconds (POST /v1/debug/faults) breaks the error-rate budget of uncached
reads; SQLite's write lock held by the test, as a long transaction of
another process would, makes autosaves wait and breaks their route's p95
budget. Short windows and intervals (flags) keep each test to seconds.
"""

import http.server
import json
import threading
import time

import pytest

from cache_support import poll
from strata_support import HOST, WriteLock, create_item, free_port, run_cli

FAST = ("--alerts-interval-ms", "100", "--alerts-raise-after", "3", "--alerts-clear-after", "5",
        "--jobs-poll-interval-ms", "100", "--jobs-retry-base-ms", "100")


class WebhookReceiver:
    """An HTTP server on loopback that keeps the JSON body of every POST."""

    def __init__(self):
        self.port = free_port()
        self.bodies = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.bodies.append({"type": self.headers.get("Content-Type"),
                                            "path": self.path, "json": json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}/hooks/strata"

    def received(self, status, quantity):
        with self.lock:
            return [b for b in self.bodies
                    if b["json"].get("status") == status and b["json"].get("quantity") == quantity]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


class Traffic:
    """Sends request() in a loop on a thread of its own until stopped;
    counts the statuses it got."""

    def __init__(self, request):
        self.statuses = {}
        self.stopping = threading.Event()

        def run():
            while not self.stopping.is_set():
                status = request()
                self.statuses[status] = self.statuses.get(status, 0) + 1
                time.sleep(0.005)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(10)


def alerts_doc(srv, token):
    """GET /v1/alerts, or None while the database cannot check the token."""
    resp = srv.client().get("/v1/alerts", token=token)
    if resp.status == 503:
        return None
    assert resp.status == 200, resp
    assert resp.headers.get("cache-control") == "private, no-store"
    return resp.json


def active(srv, token, quantity):
    doc = alerts_doc(srv, token)
    return doc is not None and [a for a in doc["active"] if a["quantity"] == quantity]


def log_lines(srv, msg, quantity):
    return [r for r in srv.log_records() if r.get("msg") == msg and r.get("quantity") == quantity]


def test_alerts_need_an_admin_token_and_list_the_budgets(server_factory, fresh_deployment):
    srv = server_factory(args=("--budget-error-rate", "0.05", "--budget-memory-mb", "100000",
                               "--budget-lcp-p75-ms", "2500"))
    c = srv.client()
    assert c.get("/v1/alerts").status == 401
    assert c.get("/v1/alerts", token=fresh_deployment.tokens["write"]).status == 403
    doc = alerts_doc(srv, fresh_deployment.tokens["admin"])
    assert doc["active"] == [] and doc["recent"] == []
    budgets = {b["quantity"]: b for b in doc["budgets"]}
    assert set(budgets) == {"error_rate", "memory_bytes", "lcp_p75_ms", "db_disk_full"}, budgets
    assert budgets["error_rate"]["budget"] == 0.05 and budgets["error_rate"]["state"] == "ok"
    assert budgets["memory_bytes"]["budget"] == 100000 * 1048576
    assert budgets["memory_bytes"]["source"] is True
    # memory is measured at the first evaluation (1 s by default)
    admin = fresh_deployment.tokens["admin"]
    poll(lambda: [b for b in alerts_doc(srv, admin)["budgets"] if b["quantity"] == "memory_bytes" and b["value"]],
         timeout=5, what="memory measured")
    # the JSON summary carries the budgets and the active alerts too
    summary = c.get("/api/performance/metrics", token=admin)
    assert summary.status == 200, summary
    assert {b["quantity"] for b in summary.json["budgets"]} == {"error_rate", "memory_bytes", "lcp_p75_ms",
                                                                "db_disk_full"}
    assert summary.json["alerts"] is not None


def test_bad_budgets_are_refused_naming_the_key(fresh_deployment):
    cases = [
        (("--budget-error-rate", "1.5"), "--budget-error-rate"),
        (("--budget-api-p95-routes", "/v1/:site/nowhere=5"), "budget.api_p95_routes"),
        (("--budget-api-p95-routes", "/v1/:site/content=fast"), "budget.api_p95_routes"),
        (("--alerts-webhook-url", "https://hooks.example/x"), "alerts.webhook_url"),
        (("--alerts-clear-margin", "1"), "alerts.clear_margin"),
        (("--alerts-window-s", "0"), "--alerts-window-s"),
    ]
    for args, key in cases:
        proc = run_cli(fresh_deployment.binary, "check-config", *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert key in proc.stderr, (args, proc.stderr)
    ok = run_cli(fresh_deployment.binary, "check-config", "--budget-api-p95-routes",
                 "/v1/:site/content=50, /v1/:site/content/:id=2.5", "--budget-cls-p75", "0.1")
    assert ok.returncode == 0, ok.stderr


def test_failing_reads_raise_the_error_rate_alert_and_recovery_clears_it(server_factory, fresh_deployment,
                                                                          receiver):
    admin = fresh_deployment.tokens["admin"]
    srv = server_factory(args=("--cache", "false", "--debug-fault-injection", "true",
                               "--budget-error-rate", "0.2", "--alerts-window-s", "4",
                               "--alerts-min-requests", "5", "--alerts-webhook-url", receiver.url,
                               "--log-level", "info", *FAST))
    reader = srv.client()
    traffic = Traffic(lambda: reader.get("/v1/main/content?limit=5").status)
    try:
        time.sleep(0.5)
        assert active(srv, admin, "error_rate") == []
        resp = srv.client().post("/v1/debug/faults", token=admin, json={"database_down_ms": 2500})
        assert resp.status == 200, resp

        firing = poll(lambda: active(srv, admin, "error_rate"), timeout=10,
                      what="the error_rate alert in /v1/alerts")
        assert firing[0]["value"] > 0.2 and firing[0]["budget"] == 0.2, firing
        assert firing[0]["id"].startswith("error_rate@")
        hook = poll(lambda: receiver.received("firing", "error_rate"), timeout=10, what="'firing' at the webhook")
        body = hook[0]["json"]
        assert hook[0]["type"] == "application/json" and hook[0]["path"] == "/hooks/strata"
        assert body["id"] == firing[0]["id"] and body["value"] > 0.2 and body["budget"] == 0.2
        assert body["window_s"] == 4 and "over its budget" in body["summary"], body
        raised = log_lines(srv, "alert raised", "error_rate")
        assert raised and raised[0]["level"] == "warn" and raised[0]["window_s"] == 4, raised

        # the database is back (the fault ends by itself): the reads succeed again
        poll(lambda: active(srv, admin, "error_rate") == [], timeout=15, what="the alert cleared")
        resolved = poll(lambda: receiver.received("resolved", "error_rate"), timeout=10,
                        what="'resolved' at the webhook")
        assert resolved[0]["json"]["id"] == body["id"] and resolved[0]["json"]["value"] <= 0.18, resolved
        cleared = log_lines(srv, "alert cleared", "error_rate")
        assert cleared and cleared[0]["level"] == "info", cleared
    finally:
        traffic.stop()

    doc = alerts_doc(srv, admin)
    assert [e["status"] for e in doc["recent"] if e["quantity"] == "error_rate"] == ["resolved", "firing"]
    assert len(receiver.received("firing", "error_rate")) == 1, "raised once: no flapping"
    assert len(receiver.received("resolved", "error_rate")) == 1
    assert traffic.statuses.get(503, 0) > 0 and traffic.statuses.get(200, 0) > 0, traffic.statuses


class WriteLockHolder:
    """Holds the database's write lock in bursts, as a long transaction of
    another process would: strata's writers wait for it."""

    def __init__(self, db, hold_s=0.25, gap_s=0.02):
        self.stopping = threading.Event()

        def run():
            while not self.stopping.is_set():
                with WriteLock(db):
                    time.sleep(hold_s)
                time.sleep(gap_s)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(10)


def test_slow_writes_raise_their_route_budget_and_clear_when_fast_again(server_factory, fresh_deployment,
                                                                        receiver):
    admin, writer = fresh_deployment.tokens["admin"], fresh_deployment.tokens["write"]
    route = "/v1/:site/content/:id/autosave"
    quantity = f"api_p95_ms:{route}"
    srv = server_factory(args=("--budget-api-p95-routes", f"{route}=50", "--alerts-window-s", "2",
                               "--alerts-min-requests", "3", "--alerts-webhook-url", receiver.url, *FAST))
    item = create_item(srv.client(), writer)
    editor = srv.client()

    def autosave():
        return editor.post(f"/v1/main/content/{item['id']}/autosave", token=writer, headers={"If-Match": "*"},
                           json={"body": "typing " + str(time.monotonic())}).status

    traffic = Traffic(autosave)
    lock = WriteLockHolder(fresh_deployment.db)
    try:
        firing = poll(lambda: active(srv, admin, quantity), timeout=10, what=f"{quantity} in /v1/alerts")
        assert firing[0]["value"] > 50 and firing[0]["budget"] == 50, firing
        lock.stop()
        hook = poll(lambda: receiver.received("firing", quantity), timeout=10, what="'firing' at the webhook")
        assert hook[0]["json"]["value"] > 50
        # every other route is untouched by this budget
        doc = alerts_doc(srv, admin)
        assert [b["quantity"] for b in doc["budgets"]] == [quantity, "db_disk_full"]

        poll(lambda: active(srv, admin, quantity) == [], timeout=10, what="the alert cleared")
        resolved = poll(lambda: receiver.received("resolved", quantity), timeout=10, what="'resolved' at the webhook")
        assert resolved[0]["json"]["value"] <= 45, resolved
    finally:
        lock.stop()
        traffic.stop()
    assert traffic.statuses.get(200, 0) > 0, traffic.statuses


def test_slow_pages_in_readers_browsers_raise_the_lcp_budget_and_fast_ones_clear_it(server_factory,
                                                                                      fresh_deployment, receiver):
    """The Web Vitals budgets: LCP p75 over the window, from the beacons
    readers' browsers send (POST /api/performance/metrics)."""
    admin = fresh_deployment.tokens["admin"]
    srv = server_factory(args=("--budget-lcp-p75-ms", "2500", "--alerts-window-s", "3",
                               "--alerts-min-requests", "5", "--alerts-webhook-url", receiver.url, *FAST))
    client = srv.client()
    sent = [0]

    def beacons(value, n=10):
        body = [{"name": "LCP", "value": value, "id": f"v5-lcp-{sent[0] + i}", "page": "/slow",
                 "rating": "poor", "navigationType": "navigate"} for i in range(n)]
        sent[0] += n
        resp = client.post("/api/performance/metrics", body=json.dumps(body), content_type="text/plain",
                           headers={"X-Forwarded-For": f"203.0.113.{sent[0] % 250 + 1}"})
        assert resp.status == 204, resp

    beacons(4000.0)
    firing = poll(lambda: (beacons(4000.0, 2), active(srv, admin, "lcp_p75_ms"))[1], timeout=10, interval=0.2,
                  what="the lcp_p75_ms alert in /v1/alerts")
    assert 4000 <= firing[0]["value"] <= 4000 * 1.03 and firing[0]["budget"] == 2500, firing
    poll(lambda: receiver.received("firing", "lcp_p75_ms"), timeout=10, what="'firing' at the webhook")
    # The pages got fast: once the slow ones leave the 3 s window, p75 is low.
    poll(lambda: (beacons(900.0, 4), active(srv, admin, "lcp_p75_ms") == [])[1], timeout=15, interval=0.2,
         what="the lcp_p75_ms alert cleared")
    resolved = poll(lambda: receiver.received("resolved", "lcp_p75_ms"), timeout=10, what="'resolved' at the webhook")
    assert resolved[0]["json"]["value"] <= 2500 * 0.9, resolved
