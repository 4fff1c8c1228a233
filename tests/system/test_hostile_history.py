"""Hostile history documents (issue 11, finding 1): what a diff or a preview
renders is bounded by history.max_render_bytes (docs/history.md, "Limits"),
and a rendered document too large for one shard of the history cache
(64 MB / 16 shards: 4 MiB) is sent but not kept, without a crash.

Each of the three ways a rendering once crashed the server (a double free
when the history cache refused a document over 4 MiB) runs twice, with
documents well over 4 MiB:
  - with history.max_render_bytes raised to 64 MiB, so the document is
    built, answered 200, and refused by the cache (X-History-Cache stays
    "miss");
  - with the default bound (8 MiB), so the rendering stops at the bound and
    the request is answered 422 too_large_to_render naming the limit;
and after each the server is alive and answers. The three: the background
diff job after one large save; GET …/diff?format=html with a read token;
GET /preview/{token} of a version whose body is all `&` (5 bytes each once
escaped). The version as JSON (GET …/versions/{n}, and the preview with
Accept: application/json) is bounded the same way: a control character is
six bytes in JSON.

Jobs: a restarted server with such a diff job queued stays up and the job
ends; a job that was running when its server was killed (kill -9) runs at
most jobs.max_attempts times, then the next claim buries it (GET /v1/jobs
shows it failed) and the restarted server stays up.

Run under the ASan build (make test does): a double free aborts the server.
"""

import re
import socket
import time

import pytest

from strata_support import HOST, assert_json, assert_problem, create_item, db_rows, save, wait_for

MiB = 1 << 20
SHARD_BYTES = 4 * MiB            # 64 MB history cache / 16 shards
DEFAULT_LIMIT = 8 * MiB          # history.max_render_bytes' default
RAISED_LIMIT = 64 * MiB          # over every document of this file
BODY_LIMIT = 16 * MiB            # server.max_body_bytes for the large saves

# "x\n" lines replaced by "y\n" lines: nothing in common, and every line of
# both sides shows in the diff (JSON ~38 bytes a line, HTML ~105).
JOB_LINES = 150_000              # 300 KB a side: a JSON diff of ~11 MB
HTML_LINES = 48_000              # 96 KB a side: an HTML diff of ~10 MB
AMP_SMALL = 1_000_000            # 1 MB of '&': a ~5 MB preview page
AMP_LARGE = 2_000_000            # 2 MB of '&': a ~10 MB preview page
CONTROL = 1_600_000              # 1.6 MB of U+0001: JSON of ~9.6 MB ("\u0001" each)


def env_with(limit=None, **extra):
    env = {"STRATA_MAX_BODY_BYTES": str(BODY_LIMIT)}
    if limit is not None:
        env["STRATA_HISTORY_MAX_RENDER_BYTES"] = str(limit)
    env.update(extra)
    return env


LIMITS = pytest.mark.parametrize("limit", [RAISED_LIMIT, None], ids=["over-a-shard", "default-limit"])


def assert_alive(srv, token):
    """The server still runs and answers a health check and a real read."""
    assert srv.alive(), f"{srv.name} died:\n{srv.tail(30)}"
    client = srv.client()
    assert client.get("/healthz").status == 200
    assert client.get("/v1/main/content?limit=3").status == 200
    assert client.get("/v1/main/content/1/versions?limit=1", token=token).status == 200


def lines_item(srv, token, line, count):
    """An item whose v1 body is `count` copies of "x\\n" and v2 of line."""
    client = srv.client(timeout=60)
    draft = create_item(client, token, body="x\n" * count)
    saved = save(client, token, draft["id"], 1, {"body": line * count})
    assert saved["version"] == 2, {k: saved[k] for k in saved if k != "body"}
    return draft["id"]


def jobs_doc(srv, deployment):
    return assert_json(srv.client().get("/v1/jobs", token=deployment.tokens["admin"]), 200)


def wait_queue_drained(srv, deployment, runs_before):
    """Until this instance ran a job more and nothing is queued."""
    def drained():
        doc = jobs_doc(srv, deployment)
        return doc if doc["queued"] == 0 and doc["runner"]["jobs_run"] > runs_before else None
    return wait_for("the diff job done, the queue empty", drained, 60)


def check_refused(resp, what):
    p = assert_problem(resp, 422, mentions=str(DEFAULT_LIMIT))
    assert "history.max_render_bytes" in p["detail"], p
    assert what in p["detail"], p
    assert p["code"] == "too_large_to_render", p
    return p


# ---- (a) the background diff job after one large save --------------------------------

@LIMITS
def test_diff_job_of_a_large_save_ends_and_the_server_stays_up(server_factory, fresh_deployment, limit):
    srv = server_factory(env=env_with(limit))
    w, r = fresh_deployment.tokens["write"], fresh_deployment.tokens["read"]
    runs_before = jobs_doc(srv, fresh_deployment)["runner"]["jobs_run"]
    item = lines_item(srv, w, "y\n", JOB_LINES)
    doc = wait_queue_drained(srv, fresh_deployment, runs_before)
    assert doc["failed"] == 0, doc  # ended, not retried or buried
    assert_alive(srv, r)

    client = srv.client(timeout=60)
    resp = client.get(f"/v1/main/content/{item}/diff?from=1&to=2", token=r)
    if limit == RAISED_LIMIT:
        assert resp.status == 200, resp
        assert len(resp.body) > SHARD_BYTES, len(resp.body)
        diff = resp.json
        assert diff["lines_removed"] == JOB_LINES and diff["lines_added"] == JOB_LINES
        # Too large for a shard: the job's rendering was not kept, nor is this one.
        assert resp.headers["x-history-cache"] == "miss"
        assert client.get(f"/v1/main/content/{item}/diff?from=1&to=2", token=r).headers["x-history-cache"] == "miss"
    else:
        check_refused(resp, "JSON diff of versions 1 and 2")
        skipped = [x for x in srv.log_records() if x.get("msg") == "diff too large to precompute"]
        assert skipped and skipped[0]["item"] == item, srv.tail(20)
    assert_alive(srv, r)


# ---- (b) GET …/diff?format=html on a ~100 KB edit, read token ------------------------------

@LIMITS
def test_html_diff_of_a_small_edit(server_factory, fresh_deployment, limit):
    srv = server_factory(env=env_with(limit, STRATA_JOBS="false"))  # only the request renders
    w, r = fresh_deployment.tokens["write"], fresh_deployment.tokens["read"]
    item = lines_item(srv, w, "y\n", HTML_LINES)
    client = srv.client(timeout=60)
    path = f"/v1/main/content/{item}/diff?from=1&to=2&format=html"
    for attempt in range(2):
        resp = client.get(path, token=r)
        if limit == RAISED_LIMIT:
            assert resp.status == 200, resp
            assert resp.headers["content-type"].startswith("text/html")
            assert len(resp.body) > 2 * SHARD_BYTES, len(resp.body)
            assert resp.body.count(b"<tr class=\"diff-insert\">") == HTML_LINES
            assert resp.headers["x-history-cache"] == "miss"  # refused by the cache, both times
        else:
            check_refused(resp, "HTML diff of versions 1 and 2")
        assert_alive(srv, r)
    # The same edit as unified text is small, and kept.
    unified = client.get(f"/v1/main/content/{item}/diff?from=1&to=2&format=unified", token=r)
    assert unified.status == 200 and len(unified.body) < SHARD_BYTES
    assert client.get(f"/v1/main/content/{item}/diff?from=1&to=2&format=unified",
                      token=r).headers["x-history-cache"] == "hit"


# ---- (c) GET /preview/{token} of a body of '&' --------------------------------------------

@LIMITS
def test_preview_of_a_body_of_ampersands(server_factory, fresh_deployment, limit):
    srv = server_factory(env=env_with(limit, STRATA_JOBS="false"))
    w, r = fresh_deployment.tokens["write"], fresh_deployment.tokens["read"]
    client = srv.client(timeout=60)
    for count in (AMP_SMALL, AMP_LARGE):
        draft = create_item(client, w, body="&" * count)
        link = assert_json(client.post(f"/v1/main/content/{draft['id']}/previews", token=w), 201)
        page_len = None
        for attempt in range(2):
            resp = client.get(link["url"])
            expect_page = limit == RAISED_LIMIT or count * 5 < DEFAULT_LIMIT
            if expect_page:
                assert resp.status == 200, resp
                assert resp.headers["content-type"].startswith("text/html")
                assert resp.body.count(b"&amp;") == count
                assert len(resp.body) > SHARD_BYTES  # built, sent, not kept
                assert page_len in (None, len(resp.body))
                page_len = len(resp.body)
            else:
                p = check_refused(resp, f"preview page of version {draft['version']}")
                source = re.search(r"from (\d+) bytes of text", p["detail"])
                assert source and count <= int(source.group(1)) < count + 100, p  # what it was rendered from
                assert resp.headers["cache-control"] == "private, no-store"
            assert_alive(srv, r)
        # JSON escapes no '&': the version as JSON is well under every bound.
        as_json = client.get(link["url"], headers={"Accept": "application/json"})
        assert as_json.status == 200 and len(as_json.json["content"]["body"]) == count


# ---- the version as JSON: six bytes a control character ----------------------------------

@LIMITS
def test_version_json_of_control_characters(server_factory, fresh_deployment, limit):
    srv = server_factory(env=env_with(limit, STRATA_JOBS="false"))
    w, r = fresh_deployment.tokens["write"], fresh_deployment.tokens["read"]
    client = srv.client(timeout=60)
    draft = create_item(client, w, body="\x01" * CONTROL)
    link = assert_json(client.post(f"/v1/main/content/{draft['id']}/previews", token=w), 201)
    for attempt in range(2):
        version = client.get(f"/v1/main/content/{draft['id']}/versions/1", token=r)
        preview = client.get(link["url"], headers={"Accept": "application/json"})
        if limit == RAISED_LIMIT:
            for resp in (version, preview):
                assert resp.status == 200, resp
                assert len(resp.body) > 2 * SHARD_BYTES
                assert resp.json["content"]["body"] == "\x01" * CONTROL
            assert version.headers["x-history-cache"] == "miss"  # built, sent, not kept
        else:
            check_refused(version, "version 1 as JSON")
            check_refused(preview, "JSON preview of version 1")
        assert_alive(srv, r)


# ---- restarts -------------------------------------------------------------------------------

@LIMITS
def test_a_restarted_server_with_the_large_diff_job_queued_stays_up(server_factory, fresh_deployment, limit):
    first = server_factory(env=env_with(limit, STRATA_JOBS="false"), name="queued")
    w, r = fresh_deployment.tokens["write"], fresh_deployment.tokens["read"]
    lines_item(first, w, "y\n", JOB_LINES)
    assert jobs_doc(first, fresh_deployment)["queued"] >= 1
    first.kill9()

    second = server_factory(env=env_with(limit), name="restarted")
    doc = wait_queue_drained(second, fresh_deployment, 0)
    assert doc["failed"] == 0, doc
    time.sleep(0.5)  # whatever the job did, the server must outlive it
    assert_alive(second, r)


def hung_listener():
    """A socket that accepts connections into its backlog and never answers:
    a purge job sent there runs until its 5 s timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((HOST, 0))
    s.listen(8)
    return s


def purge_records(srv, msg):
    return [x for x in srv.log_records() if x.get("msg") == msg and x.get("kind") == "purge"]


def test_a_job_whose_server_dies_running_it_is_buried_after_its_attempts(server_factory, fresh_deployment):
    """A purge job hangs on a CDN that never answers; its server is killed
    (kill -9) while running it, twice. With jobs.max_attempts 2, the next
    server does not run it a third time: its claim buries the job, which
    GET /v1/jobs then shows failed, and the server stays up."""
    cdn = hung_listener()
    try:
        args = ("--cdn-purge-url", f"http://{HOST}:{cdn.getsockname()[1]}/purge", "--cdn-repurge-ms", "0",
                "--log-level", "debug",
                "--jobs-max-attempts", "2", "--jobs-lease-ms", "300")
        admin, r = fresh_deployment.tokens["admin"], fresh_deployment.tokens["read"]
        first = server_factory(args=args, name="run1")
        resp = first.client().post("/v1/main/cache/invalidate", token=admin, json={"tags": ["item:3"]})
        assert resp.status == 200, resp
        for n, srv in enumerate([first, server_factory(args=args, name="run2", start=False)], start=1):
            if not srv.alive():
                srv.start()
            started = wait_for(f"the purge job running (attempt {n})",
                               lambda: purge_records(srv, "job started"), 10)
            assert started[0]["attempt"] == n, started
            srv.kill9()  # while the job runs: it never records an outcome

        third = server_factory(args=args, name="run3")
        buried = wait_for("the poison job buried",
                          lambda: [x for x in third.log_records() if x.get("msg", "").startswith("jobs buried")], 10)
        assert buried[0]["jobs"] == 1, buried
        doc = jobs_doc(third, fresh_deployment)
        failures = [f for f in doc["recent_failures"] if f["kind"] == "purge"]
        assert failures and failures[0]["attempts"] == 2, doc
        assert "claimed 2 times" in failures[0]["error"], failures
        assert doc["failed"] >= 1 and doc["queued"] == 0, doc
        time.sleep(1.0)  # a few more turns of the runner: it never runs the job again
        assert purge_records(third, "job started") == [], third.tail(20)
        assert_alive(third, r)

        # The row as a crashed runner left it, then as the claim buried it.
        rows = db_rows(fresh_deployment.db, "SELECT attempts, CASE WHEN failed_at IS NULL THEN 0 ELSE 1 END "
                       "FROM jobs WHERE kind = 'purge'")
        assert rows == [(2, 1)], rows
    finally:
        cdn.close()
