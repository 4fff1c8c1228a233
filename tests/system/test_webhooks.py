"""Content webhooks (issue 16; src/content/webhooks.c, src/jobs/webhooks.c,
src/store/webhooks.c; docs/api.md "Webhooks").

A receiver on loopback (WebhookReceiver: a ThreadingHTTPServer that
records every request with its body and answers the statuses it is told,
in turn) stands in for a site's endpoint. Each test checks what arrived:
the events of item writes (and of a scheduled publish), each signed the
Standard Webhooks way, verified here with the secret the subscription was
created with (hmac); a failed delivery retried and logged; each message
delivered once, even with two instances running jobs; the test send; and
that only a site's admin reaches the routes, with precise 422s for bad
input.
"""

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from strata_support import (HOST, assert_json, assert_problem, assert_timestamp, create_item, free_port, publish,
                            save, wait_for)

# Retries come quickly, and an idle runner looks at the queue often (the
# second instance's jobs are seen at its polls).
FAST_JOBS = ("--jobs-retry-base-ms", "200", "--jobs-poll-interval-ms", "100")
EVENTS = ["created", "saved", "published", "unpublished", "deleted"]


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records each request (path,
    headers, body) and answers statuses[0], statuses[1], … for the
    successive requests of one Webhook-Id, then 200."""

    def __init__(self, statuses=()):
        self.port = free_port()
        self.requests = []
        self.lock = threading.Lock()
        self.statuses = list(statuses)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(min(length, 1 << 20))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver.lock:
                    seen = sum(1 for r in receiver.requests if r["headers"].get("webhook-id") == headers.get("webhook-id"))
                    status = receiver.statuses[seen] if seen < len(receiver.statuses) else 200
                    receiver.requests.append({"path": self.path, "headers": headers, "body": body,
                                              "status": status, "at": time.time()})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((HOST, self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}/hooks/strata"

    def received(self):
        with self.lock:
            return list(self.requests)

    def messages(self):
        """The JSON bodies received, in order."""
        return [json.loads(r["body"]) for r in self.received()]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(statuses=()):
        r = WebhookReceiver(statuses)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def verify(secret, request):
    """The signature is v1,base64(HMAC-SHA256(key, "id.timestamp.body")),
    key being the base64 bytes after "whsec_"; the timestamp is now."""
    assert secret.startswith("whsec_")
    key = base64.b64decode(secret[len("whsec_"):])
    assert len(key) == 32
    h = request["headers"]
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + request["body"]
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert h["webhook-signature"] == f"v1,{expected}", f"a signature that does not verify: {h}"
    assert abs(int(h["webhook-timestamp"]) - time.time()) < 60
    assert h["content-type"] == "application/json"
    assert json.loads(request["body"])["id"] == h["webhook-id"]


def subscribe(client, token, url, events=EVENTS, site="main", **extra):
    return client.post(f"/v1/{site}/webhooks", json={"url": url, "events": events, **extra}, token=token)


def subscribed(client, token, url, events=EVENTS, site="main", **extra):
    hook = assert_json(subscribe(client, token, url, events, site, **extra), 201)
    assert set(hook) == {"id", "url", "events", "active", "created_at", "secret"}, hook
    return hook


def deliveries(client, token, hook_id, site="main"):
    return assert_json(client.get(f"/v1/{site}/webhooks/{hook_id}/deliveries", token=token))["deliveries"]


def rfc3339(t):
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---- events -----------------------------------------------------------------------------------

def test_each_item_event_is_delivered_signed_to_the_subscriptions_that_want_it(server_factory, fresh_deployment,
                                                                               receivers):
    srv = server_factory(args=FAST_JOBS)
    admin, writer = fresh_deployment.tokens["admin"], fresh_deployment.tokens["write"]
    c = srv.client()
    everything, only_published, paused = receivers(), receivers(), receivers()
    hook = subscribed(c, admin, everything.url)
    assert hook["events"] == EVENTS and hook["active"] is True and hook["url"] == everything.url
    assert_timestamp(hook["created_at"])
    narrow = subscribed(c, admin, only_published.url, ["published"])
    subscribed(c, admin, paused.url, active=False)
    listed = assert_json(c.get("/v1/main/webhooks", token=admin))["webhooks"]
    assert [h["id"] for h in listed] == sorted(h["id"] for h in listed) and len(listed) == 3
    assert all("secret" not in h for h in listed), "the secret is shown once, at creation"

    draft = create_item(c, writer, type="post")
    item = draft["id"]
    save(c, writer, item, 1, {"title": "Second"})
    publish(c, writer, item)
    assert_json(c.post(f"/v1/main/content/{item}/unpublish", token=writer))
    assert c.delete(f"/v1/main/content/{item}", token=writer).status == 204

    got = wait_for("five messages", lambda: len(everything.received()) >= 5 and everything.received(), 15)
    time.sleep(0.5)
    assert len(everything.received()) == 5, [m["event"] for m in everything.messages()]
    for request in got:
        verify(hook["secret"], request)
        assert request["path"] == "/hooks/strata"
    messages = everything.messages()
    assert [m["event"] for m in messages] == EVENTS
    assert len({m["id"] for m in messages}) == 5
    for m in messages:
        assert set(m) == {"id", "event", "site", "item", "occurred_at"}
        assert m["site"] == "main"
        assert_timestamp(m["occurred_at"])
        assert m["item"]["id"] == item and m["item"]["type"] == "post" and m["item"]["slug"] == draft["slug"]
    assert [m["item"]["status"] for m in messages] == ["draft", "draft", "published", "draft", "draft"]
    assert [m["item"]["version"] for m in messages] == [1, 2, 2, 2, 2]
    assert messages[2]["item"]["published_version"] == 2

    narrow_got = wait_for("the published event", only_published.received, 5)
    assert [json.loads(r["body"])["event"] for r in narrow_got] == ["published"]
    verify(narrow["secret"], narrow_got[0])
    assert not paused.received(), "an inactive subscription is sent nothing"

    log = deliveries(c, admin, hook["id"])
    assert [d["event"] for d in log] == list(reversed(EVENTS)), "newest first"
    assert all(d["delivered"] and d["state"] == "delivered" and d["attempts"] == 1 and d["status_code"] == 200
               for d in log), log


def test_a_scheduled_publish_is_a_published_event(server_factory, fresh_deployment, receivers):
    srv = server_factory(args=FAST_JOBS)
    admin, writer = fresh_deployment.tokens["admin"], fresh_deployment.tokens["write"]
    c = srv.client()
    r = receivers()
    hook = subscribed(c, admin, r.url, ["published", "unpublished"])
    draft = create_item(c, writer)
    at = time.time() + 1.5
    assert_json(c.put(f"/v1/main/content/{draft['id']}/schedule", json={"publish_at": rfc3339(at)}, token=writer))
    got = wait_for("the scheduled publish's event", r.received, 10)
    assert got[0]["at"] >= at - 0.05, "sent at the scheduled time, not before"
    verify(hook["secret"], got[0])
    m = json.loads(got[0]["body"])
    assert m["event"] == "published" and m["item"]["id"] == draft["id"] and m["item"]["status"] == "published"


def test_a_write_to_another_site_or_an_unsubscribed_event_sends_nothing(server_factory, fresh_deployment,
                                                                         receivers):
    srv = server_factory(args=FAST_JOBS)
    admin, tokens = fresh_deployment.tokens["admin"], fresh_deployment.tokens
    c = srv.client()
    r = receivers()
    subscribed(c, admin, r.url, ["deleted"])
    create_item(c, tokens["other_write"], site="other")
    draft = create_item(c, tokens["write"])
    publish(c, tokens["write"], draft["id"])
    time.sleep(1.0)
    assert not r.received(), [m["event"] for m in r.messages()]


# ---- retries, the log, once -------------------------------------------------------------------

def test_a_failed_delivery_is_retried_with_the_same_id_and_body_and_both_attempts_are_logged(
        server_factory, fresh_deployment, receivers):
    srv = server_factory(args=FAST_JOBS)
    admin, writer = fresh_deployment.tokens["admin"], fresh_deployment.tokens["write"]
    c = srv.client()
    r = receivers(statuses=[500])
    hook = subscribed(c, admin, r.url, ["created"])
    create_item(c, writer)
    got = wait_for("two attempts", lambda: len(r.received()) >= 2 and r.received(), 10)
    first, second = got[0], got[1]
    assert first["status"] == 500 and second["status"] == 200
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert first["body"] == second["body"], "the same bytes on every attempt"
    assert second["at"] - first["at"] >= 0.15, "retried after the queue's backoff (jobs.retry_base_ms 200 ±10 %)"
    verify(hook["secret"], first)
    verify(hook["secret"], second)
    time.sleep(1.0)
    assert len(r.received()) == 2, "nothing more once delivered"
    (log,) = deliveries(c, admin, hook["id"])
    assert log["id"] == first["headers"]["webhook-id"]
    assert log["attempts"] == 2 and log["delivered"] and log["state"] == "delivered" and log["status_code"] == 200
    assert [(a["attempt"], a["status_code"], a["error"] is None) for a in log["attempt_log"]] == [
        (1, 500, False), (2, 200, True)]
    assert "answered 500" in log["attempt_log"][0]["error"]
    for a in log["attempt_log"]:
        assert_timestamp(a["at"])
        assert isinstance(a["ms"], int) and 0 <= a["ms"] < 5000
    assert_timestamp(log["delivered_at"])


def test_an_unreachable_receiver_ends_failed_after_the_bounded_attempts(server_factory, fresh_deployment):
    srv = server_factory(args=(*FAST_JOBS, "--jobs-max-attempts", "2"))
    admin, writer = fresh_deployment.tokens["admin"], fresh_deployment.tokens["write"]
    c = srv.client()
    closed_port = free_port()  # nothing listens there
    hook = subscribed(c, admin, f"http://{HOST}:{closed_port}/x", ["created"])
    create_item(c, writer)

    def failed():
        log = deliveries(c, admin, hook["id"])
        return log and log[0]["state"] == "failed" and log

    (log,) = wait_for("the delivery failed for good", failed, 10)
    assert log["attempts"] == 2 and not log["delivered"] and log["status_code"] is None
    assert "connecting to" in log["error"], log
    time.sleep(1.0)
    assert deliveries(c, admin, hook["id"])[0]["attempts"] == 2, "no attempt past jobs.max_attempts"


def test_two_instances_deliver_each_message_once(server_factory, fresh_deployment, receivers):
    """Both instances run the queue; every message's first attempt fails,
    so retries are up for grabs by either runner: still one 2xx per
    Webhook-Id, and nothing sent for an id after its 2xx."""
    a = server_factory(args=FAST_JOBS, name="instance-a")
    b = server_factory(args=FAST_JOBS, name="instance-b")
    admin, writer = fresh_deployment.tokens["admin"], fresh_deployment.tokens["write"]
    r = receivers(statuses=[503])
    hook = subscribed(a.client(), admin, r.url, ["created", "saved"])
    writes = 0
    for i in range(6):
        client = (a if i % 2 == 0 else b).client()
        draft = create_item(client, writer)
        save(client, writer, draft["id"], 1, {"title": f"Again {i}"})
        writes += 2

    def all_delivered():
        ok = {q["headers"]["webhook-id"] for q in r.received() if q["status"] == 200}
        return len(ok) >= writes and ok

    wait_for(f"{writes} messages delivered", all_delivered, 30)
    time.sleep(1.5)
    got = r.received()
    by_id = {}
    for q in got:
        by_id.setdefault(q["headers"]["webhook-id"], []).append(q["status"])
        verify(hook["secret"], q)
    assert len(by_id) == writes
    assert all(statuses == [503, 200] for statuses in by_id.values()), by_id
    log = deliveries(b.client(), admin, hook["id"], )
    assert len(log) == writes and all(d["attempts"] == 2 and d["delivered"] for d in log), log


def test_an_acknowledged_writes_event_survives_a_crash_before_its_delivery(server_factory, fresh_deployment,
                                                                            receivers):
    """The deliveries are queued in the write's transaction: an instance
    that runs no jobs answers the writes and is killed (SIGKILL); another
    one started later delivers every event."""
    r = receivers()
    writer_only = server_factory(env={"STRATA_JOBS": "false"}, name="no-jobs")
    admin, writer = fresh_deployment.tokens["admin"], fresh_deployment.tokens["write"]
    c = writer_only.client()
    hook = subscribed(c, admin, r.url, ["created", "published"])
    made = [create_item(c, writer) for _ in range(3)]
    publish(c, writer, made[0]["id"])
    time.sleep(0.3)
    assert not r.received(), "this instance runs no jobs"
    writer_only.kill9()
    server_factory(args=FAST_JOBS, name="runner")
    got = wait_for("four messages", lambda: len(r.received()) >= 4 and r.received(), 15)
    for request in got:
        verify(hook["secret"], request)
    messages = [json.loads(q["body"]) for q in got]
    assert sorted((m["event"], m["item"]["id"]) for m in messages) == sorted(
        [("created", d["id"]) for d in made] + [("published", made[0]["id"])])


# ---- the test send and the routes ---------------------------------------------------------------

def test_the_test_send_is_delivered_like_any_other(server_factory, fresh_deployment, receivers):
    srv = server_factory(args=FAST_JOBS)
    admin = fresh_deployment.tokens["admin"]
    c = srv.client()
    r = receivers()
    hook = subscribed(c, admin, r.url, ["deleted"], active=False)
    sent = assert_json(c.post(f"/v1/main/webhooks/{hook['id']}/test", token=admin), 202)
    assert sent["event"] == "test" and sent["id"].startswith("msg_")
    (got,) = wait_for("the test message", r.received, 5)
    verify(hook["secret"], got)
    assert got["headers"]["webhook-id"] == sent["id"]
    m = json.loads(got["body"])
    assert m["event"] == "test" and m["item"] is None and m["site"] == "main"
    (log,) = deliveries(c, admin, hook["id"])
    assert log["id"] == sent["id"] and log["event"] == "test" and log["delivered"]
    assert_problem(c.post("/v1/main/webhooks/999999/test", token=admin), 404)


def test_only_the_sites_admin_reaches_the_webhook_routes(server_factory, fresh_deployment, receivers):
    other_admin = fresh_deployment.cli("token", "create", "--site", "other", "--role", "admin",
                                       "--db", fresh_deployment.db).stdout.strip()
    srv = server_factory(args=FAST_JOBS)
    tokens = fresh_deployment.tokens
    c = srv.client()
    r = receivers()
    hook = subscribed(c, tokens["admin"], r.url)
    base = f"/v1/main/webhooks/{hook['id']}"
    routes = [("GET", "/v1/main/webhooks"), ("POST", "/v1/main/webhooks"), ("GET", base), ("DELETE", base),
              ("POST", f"{base}/test"), ("GET", f"{base}/deliveries")]
    for method, path in routes:
        body = {"json": {"url": r.url, "events": ["created"]}} if method == "POST" else {}
        for role in ("read", "write"):
            assert_problem(c.request(method, path, token=tokens[role], **body), 403, mentions="admin")
        for token in (None, tokens["other_write"], other_admin):  # no token, or another site's
            assert_problem(c.request(method, path, token=token, **body), 401)
        other_path = path.replace("/v1/main/", "/v1/other/")
        if other_path != "/v1/other/webhooks":
            assert_problem(c.request(method, other_path, token=other_admin, **body), 404,
                           mentions=f"no webhook {hook['id']}")
    assert assert_json(c.get("/v1/other/webhooks", token=other_admin)) == {"webhooks": []}
    got = assert_json(c.get(base, token=tokens["admin"]))
    assert got == {k: v for k, v in hook.items() if k != "secret"}
    assert c.get(base, token=tokens["admin"]).headers.get("cache-control") == "private, no-store"
    assert c.delete(base, token=tokens["admin"]).status == 204
    assert_problem(c.get(base, token=tokens["admin"]), 404)
    assert_problem(c.delete(base, token=tokens["admin"]), 404)


def test_bad_input_is_refused_with_a_precise_detail(server_factory, fresh_deployment, receivers):
    srv = server_factory(args=FAST_JOBS)
    admin = fresh_deployment.tokens["admin"]
    c = srv.client()
    url = receivers().url
    cases = [
        ({"url": "ftp://example.org/x", "events": ["created"]}, "is not http://HOST[:PORT][/PATH]"),
        ({"url": "https://example.org/hook", "events": ["created"]}, "https is not supported"),
        ({"url": "http://", "events": ["created"]}, "is not http://HOST[:PORT][/PATH]"),
        ({"url": "http://host:99999/", "events": ["created"]}, "is not http://HOST[:PORT][/PATH]"),
        ({"url": "http://a b/", "events": ["created"]}, "is not http://HOST[:PORT][/PATH]"),
        ({"url": "http://h/" + "x" * 1100, "events": ["created"]}, "1 to 1024 bytes"),
        ({"url": 7, "events": ["created"]}, "\"url\" is required"),
        ({"events": ["created"]}, "\"url\" is required"),
        ({"url": url, "events": ["created", "bogus"]}, "\"events\"[1] is not an event: 'bogus'"),
        ({"url": url, "events": ["test"]}, "\"events\"[0] is not an event: 'test'"),
        ({"url": url, "events": [3]}, "\"events\"[0] is not an event: not a string"),
        ({"url": url, "events": []}, "\"events\" is required"),
        ({"url": url, "events": "created"}, "\"events\" is required"),
        ({"url": url}, "\"events\" is required"),
        ({"url": url, "events": ["created"], "active": "yes"}, "\"active\" must be true or false"),
        ({"url": url, "events": ["created"], "secret": "mine"}, "unknown field 'secret'"),
    ]
    for body, mentions in cases:
        assert_problem(c.post("/v1/main/webhooks", json=body, token=admin), 422, mentions=mentions)
    assert_problem(c.post("/v1/main/webhooks", body=b"", token=admin, content_type="application/json"), 400)
    assert_problem(c.post("/v1/main/webhooks", body=b"{", token=admin, content_type="application/json"), 400)
    assert_problem(c.get("/v1/main/webhooks/abc", token=admin), 400)
    assert_problem(c.get("/v1/main/webhooks/1/deliveries?limit=0", token=admin), 400)
    assert assert_json(c.get("/v1/main/webhooks", token=admin)) == {"webhooks": []}, "nothing half-made"
    for _ in range(20):
        subscribed(c, admin, url, ["created"])
    assert_problem(subscribe(c, admin, url, ["created"]), 409, mentions="at most 20 webhooks")
