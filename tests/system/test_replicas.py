"""PostgreSQL streaming replicas (issue 14): reads routed by WAL position,
read-your-writes by token and by the Strata-LSN header, every replica
checked, a stopped replica never a 5xx, lag in /metrics and the JSON
summary, a replica lagging past db.replica_max_lag_ms skipped.

These tests start their own primary and replicas (tests/pg_cluster.sh
through pg_support), so they run on every pass of the suite, SQLite or
PostgreSQL; they are skipped only when PostgreSQL is not installed. The
test clusters run with synchronous_commit = off, so WAL reaches a replica
up to wal_writer_delay late even without an apply delay: realistic lag.

Staleness is judged by the draft's version: every save answers the
version it made (ETag "vN"), and a read of the draft that answers an
older one is stale.
"""

import re
import threading
import time
import urllib.parse

import pytest

from metrics_support import parse_metrics, scrape, value
from pg_support import PostgresCluster, needs_postgres
from strata_support import DB_BACKEND, Deployment, binary_path, create_item, etag_version, run_ok, uniq

pytestmark = needs_postgres

# The tests with a primary and replicas of their own would only run again
# on the suite's PostgreSQL pass: they run once, in the first.
own_cluster = pytest.mark.skipif(DB_BACKEND == "postgres", reason="runs once, in the first pass: it starts its own "
                                 "PostgreSQL primary and replicas")

DELAY_MS = 500


def same_database(replica_url, primary_url):
    """The replica's URL naming the primary's database (a replica holds all)."""
    path = urllib.parse.urlsplit(primary_url).path
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(replica_url)._replace(path=path))


@pytest.fixture(scope="module")
def primary(tmp_path_factory):
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def primary_deployment(primary, tmp_path_factory):
    """A deployment on the primary's database, made before any replica is
    copied from it."""
    binary = binary_path()
    db = primary.url
    run_ok(binary, "migrate", "--db", db)
    run_ok(binary, "seed", "--db", db, "--items", 10)
    tokens = {}
    for key, role in (("write", "write"), ("admin", "admin")):
        proc = run_ok(binary, "token", "create", "--site", "main", "--role", role, "--name", uniq(key), "--db", db)
        tokens[key] = proc.stdout.strip()
    return Deployment(binary, tmp_path_factory.mktemp("replicas"), db, tokens)


@pytest.fixture(scope="module")
def delayed(primary, primary_deployment):
    """A replica applying each commit DELAY_MS late."""
    replica = primary.start_replica(DELAY_MS)
    replica.url = same_database(replica.url, primary.url)
    yield replica
    replica.stop()


STARTED = []


@pytest.fixture(autouse=True)
def stop_servers():
    """Every server a test started is stopped when it ends, passed or not."""
    yield
    while STARTED:
        server = STARTED.pop()
        if server.alive():
            server.stop()


def serve(primary_deployment, replicas, *extra):
    """A server reading from replicas. Without the cache: warming (at start
    and by the job) would read too, and the tests count reads."""
    args = ["--db-replicas", ",".join(r.url for r in replicas), "--workers", "4", "--threads", "1", "--cache",
            "false", *extra]
    server = primary_deployment.server(args=args)
    STARTED.append(server)
    return server.start(timeout=30)


def summary(client, token):
    resp = client.get("/api/performance/metrics", token=token)
    assert resp.status == 200, resp
    return resp.json


def reads(client):
    samples, _ = parse_metrics(scrape(client))
    return (value(samples, "strata_db_reads_total", target="primary"),
            value(samples, "strata_db_reads_total", target="replica"))


def replica_reads(client, token):
    return [r["reads"] for r in summary(client, token)["replicas"]]


def save_title(client, token, item_id, version):
    """Saves a new title on the draft at version; returns (new version, Strata-LSN)."""
    resp = client.put(f"/v1/main/content/{item_id}", json={"title": uniq("title")}, token=token,
                      headers={"If-Match": f'"v{version}"'})
    assert resp.status == 200, resp
    return etag_version(resp), resp.headers.get("strata-lsn")


def draft_version(client, token, item_id, headers=None):
    """The draft's version; 0 when the item is not found (a replica that
    lacks its creation: the stalest read of all)."""
    resp = client.get(f"/v1/main/content/{item_id}/draft", token=token, headers=headers or {})
    assert resp.status in (200, 404), resp
    return etag_version(resp) if resp.status == 200 else 0


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def write_then_read(writer, reader, token, item_id, rounds, *, header, pause_every=20, pause=DELAY_MS / 1000 + 0.3):
    """rounds of save-then-read; every pause_every-th round waits long
    enough for the replica to have the write before reading, so some reads
    may go to it. Returns the stale reads as (expected, got)."""
    version = draft_version(writer, token, item_id)
    stale = []
    for i in range(rounds):
        version, lsn = save_title(writer, token, item_id, version)
        assert lsn and "/" in lsn, f"a write on PostgreSQL answers Strata-LSN, got {lsn!r}"
        if i % pause_every == pause_every - 1:
            time.sleep(pause)
        got = draft_version(reader, token, item_id, {"Strata-LSN": lsn} if header else None)
        if got < version:
            stale.append((version, got))
    return stale


def test_writes_answer_their_position_on_postgresql_only(server, tokens):
    """The suite's own server (SQLite or PostgreSQL, no replicas): a write
    answers Strata-LSN only on PostgreSQL; a malformed Strata-LSN on a
    read is a 400 naming it on either."""
    c = server.client()
    resp = c.post("/v1/main/content", json={"type": uniq("ty"), "slug": uniq("s"), "title": "T"},
                  token=tokens["write"])
    assert resp.status == 201, resp
    lsn = resp.headers.get("strata-lsn")
    if DB_BACKEND == "sqlite":
        assert lsn is None, lsn
    else:
        assert lsn and re.fullmatch(r"[0-9A-F]{1,8}/[0-9A-F]{1,8}", lsn), lsn
    item_id = resp.json["id"]
    ok = c.get(f"/v1/main/content/{item_id}/draft", token=tokens["write"], headers={"Strata-LSN": "0/1"})
    assert ok.status == 200, ok
    for bad in ("0/", "x/1", "0/123456789", "1"):
        resp = c.get("/v1/main/content?limit=1", headers={"Strata-LSN": bad})
        assert resp.status == 400 and resp.json["code"] == "bad_header" and "Strata-LSN" in resp.json["detail"], resp


@own_cluster
def test_read_your_writes_by_token_with_a_delayed_replica(primary_deployment, delayed):
    """(a) 200 rounds of write-then-read by one token: never stale, and
    the reads that came after the replica had the write went to it."""
    server = serve(primary_deployment, [delayed])
    c = server.client()
    token, admin = primary_deployment.tokens["write"], primary_deployment.tokens["admin"]
    item = create_item(c, token)
    before = replica_reads(c, admin)[0]
    stale = write_then_read(c, c, token, item["id"], 200, header=False)
    assert stale == [], f"{len(stale)} stale reads of 200 (expected, got): {stale[:5]}"
    used = replica_reads(c, admin)[0] - before
    assert used >= 5, f"reads made after the replica had the write should go to it; {used} did"
    server.assert_stops_cleanly()


@own_cluster
def test_read_your_writes_by_header_on_another_instance(primary_deployment, delayed):
    """(b) the position travels only in the Strata-LSN header, to a second
    instance that has no memory of the token's writes."""
    writer = serve(primary_deployment, [delayed])
    reader = serve(primary_deployment, [delayed])
    w, r = writer.client(), reader.client()
    token, admin = primary_deployment.tokens["write"], primary_deployment.tokens["admin"]
    item = create_item(w, token)
    before = replica_reads(r, admin)[0]
    stale = write_then_read(w, r, token, item["id"], 100, header=True)
    assert stale == [], f"{len(stale)} stale reads of 100 on the second instance: {stale[:5]}"
    assert replica_reads(r, admin)[0] - before >= 3, "reads carrying a replayed position should use the replica"
    bad = r.get(f"/v1/main/content/{item['id']}", headers={"Strata-LSN": "not-a-position"})
    assert bad.status == 400 and "Strata-LSN" in bad.json["detail"], bad
    writer.assert_stops_cleanly()
    reader.assert_stops_cleanly()


@own_cluster
def test_a_public_read_naming_an_unheard_write_skips_the_cache(primary_deployment, delayed):
    """A reader that carries the position of a write made on another
    instance (no bus between them here: the second instance never hears of
    it) is not answered from that instance's cache, which predates the
    write; without the header, or with a position it has heard of, the
    cache answers."""
    writer = serve(primary_deployment, [delayed])
    reader = primary_deployment.server(args=["--db-replicas", delayed.url, "--cache-item-ttl-s", "300"])
    STARTED.append(reader)
    reader.start(timeout=30)
    w, r = writer.client(), reader.client()
    token = primary_deployment.tokens["write"]
    item_id = r.get("/v1/main/content?limit=1").json["items"][0]["id"]
    path = f"/v1/main/content/{item_id}"
    assert r.get(path).status == 200
    cached = r.get(path)
    assert "hit" in cached.headers["cache-status"], cached.headers
    draft = w.get(f"{path}/draft", token=token)
    title = uniq("title")
    assert w.put(path, json={"title": title}, token=token, headers={"If-Match": draft.headers["etag"]}).status == 200
    published = w.post(f"{path}/publish", token=token)
    assert published.status == 200, published
    lsn = published.headers["strata-lsn"]
    assert r.get(path).json["title"] != title, "the reader's cache should still hold the old version"
    fresh = r.get(path, headers={"Strata-LSN": lsn})
    assert fresh.status == 200 and fresh.json["title"] == title, (fresh, fresh.headers)
    assert "hit" not in fresh.headers.get("cache-status", ""), fresh.headers
    heard = r.get(path, headers={"Strata-LSN": "0/0"})
    assert "hit" in heard.headers["cache-status"], "a position the reader has heard of lets the cache answer"
    writer.assert_stops_cleanly()
    reader.assert_stops_cleanly()


@own_cluster
def test_every_replica_is_checked(primary, primary_deployment, delayed):
    """(c) one replica caught up, one 2 s behind (and usable: the lag limit
    is raised): a read that must see a write never lands on the one
    lacking it, whichever the rotation tries first; the caught-up one
    serves."""
    fresh = primary.start_replica(0)
    fresh.url = same_database(fresh.url, primary.url)
    delayed.apply_delay(2000)
    try:
        server = serve(primary_deployment, [delayed, fresh], "--db-replica-max-lag-ms", "10000")
        c = server.client()
        token, admin = primary_deployment.tokens["write"], primary_deployment.tokens["admin"]
        item = create_item(c, token)
        version = draft_version(c, token, item["id"])
        before = replica_reads(c, admin)
        stale = []
        for _ in range(30):
            version, _ = save_title(c, token, item["id"], version)
            for pause in (0, 0.1, 0.1, 0.1):  # 0.3 s in all: well within the delayed replica's 2 s
                time.sleep(pause)
                got = draft_version(c, token, item["id"])
                if got < version:
                    stale.append((version, got))
        after = replica_reads(c, admin)
        assert stale == [], f"{len(stale)} stale reads: {stale[:5]}"
        assert after[0] == before[0], "the delayed replica never had the write when it was read"
        assert after[1] - before[1] >= 10, f"the caught-up replica should serve: {before} → {after}"
        assert summary(c, admin)["replicas"][0]["usable"], "the delayed replica was a candidate throughout"
        server.assert_stops_cleanly()
    finally:
        delayed.apply_delay(DELAY_MS)
        fresh.stop()


@own_cluster
def test_stopped_replica_is_never_a_5xx(primary, primary_deployment):
    """(d) a replica stopped under a read load (public and token reads):
    no 5xx, the primary answers, and the replica is used again once it is
    back."""
    replica = primary.start_replica(0)
    replica.url = same_database(replica.url, primary.url)
    try:
        server = serve(primary_deployment, [replica])
        token, admin = primary_deployment.tokens["write"], primary_deployment.tokens["admin"]
        c = server.client()
        item = create_item(c, token)
        failures, counts, stop = [], [0], threading.Event()

        def load(tok):
            cl = server.client()
            path = "/v1/main/content?limit=5" if tok is None else f"/v1/main/content/{item['id']}/draft"
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                resp = cl.get(path, token=tok)
                counts[0] += 1
                if resp.status >= 500:
                    failures.append(resp.status)

        threads = [threading.Thread(target=load, args=(t,)) for t in (None, None, token)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        replica.stop_server()
        time.sleep(0.5)
        primary_before = summary(c, admin)["db_reads"]["primary"]
        time.sleep(1.0)
        stopped = summary(c, admin)
        down, primary_during = stopped["replicas"][0], stopped["db_reads"]["primary"]
        replica.start_server()
        wait_until(lambda: summary(c, admin)["replicas"][0]["up"], 20, "the replica to be up again")
        back = replica_reads(c, admin)[0]
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(35)
        assert not down["up"], f"a stopped replica is down: {down}"
        assert primary_during - primary_before >= 10, "reads go on, from the primary, while the replica is stopped"
        assert failures == [], f"{len(failures)} 5xx of {counts[0]} reads while the replica was stopped"
        assert replica_reads(c, admin)[0] > back, "the replica should be read again once it is back"
        server.assert_stops_cleanly()
    finally:
        replica.stop()


@own_cluster
def test_lag_in_metrics_and_summary(primary_deployment, delayed):
    """(e) the delayed replica's lag under writes, in /metrics and the
    JSON summary (its URL without the password)."""
    server = serve(primary_deployment, [delayed])
    c = server.client()
    token, admin = primary_deployment.tokens["write"], primary_deployment.tokens["admin"]
    item = create_item(c, token)
    version = draft_version(c, token, item["id"])
    lag_bytes = lag_seconds = 0.0
    deadline = time.monotonic() + 10
    while (lag_bytes == 0 or lag_seconds == 0) and time.monotonic() < deadline:
        version, _ = save_title(c, token, item["id"], version)
        time.sleep(0.1)
        samples, types = parse_metrics(scrape(c))
        lag_bytes = max(lag_bytes, value(samples, "strata_db_replica_lag_bytes", replica="0") or 0)
        lag_seconds = max(lag_seconds, value(samples, "strata_db_replica_lag_seconds", replica="0") or 0)
    assert lag_bytes > 0 and lag_seconds > 0, (lag_bytes, lag_seconds)
    assert value(samples, "strata_db_replica_up", replica="0") == 1
    assert types["strata_db_replica_lag_seconds"] == "gauge" and types["strata_db_reads_total"] == "counter"
    replicas = summary(c, admin)["replicas"]
    assert replicas[0]["index"] == 0 and replicas[0]["up"] and "/" in replicas[0]["replayed"]
    assert delayed.password not in replicas[0]["url"] and "***" in replicas[0]["url"]
    assert delayed.password not in scrape(c) and delayed.password not in server.log_text()
    server.assert_stops_cleanly()


@own_cluster
def test_replica_lagging_past_the_limit_is_skipped(primary, primary_deployment, delayed):
    """(f) with db.replica_max_lag_ms below the replica's apply delay, a
    replica kept behind by writes is not read (reads that need no
    position included); once writes stop and it catches up it is read."""
    server = serve(primary_deployment, [delayed], "--db-replica-max-lag-ms", "200")
    c = server.client()
    token, admin = primary_deployment.tokens["write"], primary_deployment.tokens["admin"]
    item = create_item(c, token)  # a draft: its saves invalidate nothing public
    version = draft_version(c, token, item["id"])
    warm_until = time.monotonic() + 1.0
    while time.monotonic() < warm_until:  # writes 50 ms apart: the replica lags ~500 ms behind them
        version, _ = save_title(c, token, item["id"], version)
        time.sleep(0.05)
    before = replica_reads(c, admin)[0]
    lagging_seen = False
    for _ in range(30):
        version, _ = save_title(c, token, item["id"], version)
        assert c.get("/v1/main/content?limit=3").status == 200
        lagging_seen = lagging_seen or not summary(c, admin)["replicas"][0]["usable"]
        time.sleep(0.05)
    assert lagging_seen
    assert replica_reads(c, admin)[0] == before, "a replica further behind than the limit must be skipped"
    time.sleep(DELAY_MS / 1000 + 0.5)
    wait_until(lambda: summary(c, admin)["replicas"][0]["usable"], 10, "the replica to catch up")
    for _ in range(10):
        assert c.get("/v1/main/content?limit=3").status == 200
    assert replica_reads(c, admin)[0] > before, "a replica that caught up is read again"
    server.assert_stops_cleanly()


@own_cluster
def test_replica_lag_budget_raises_and_clears(primary_deployment, delayed):
    """budget.replica_lag_ms: raised while writes keep the delayed replica
    ~500 ms behind, cleared once it has caught up."""
    server = serve(primary_deployment, [delayed], "--budget-replica-lag-ms", "300", "--alerts-interval-ms", "100",
                   "--alerts-raise-after", "3", "--alerts-clear-after", "5")
    c = server.client()
    token, admin = primary_deployment.tokens["write"], primary_deployment.tokens["admin"]
    item = create_item(c, token)
    version = draft_version(c, token, item["id"])

    def active():
        resp = c.get("/v1/alerts", token=admin)
        assert resp.status == 200, resp
        return [a for a in resp.json["active"] if a["quantity"] == "replica_lag_ms"]

    firing = []
    deadline = time.monotonic() + 15
    while not firing and time.monotonic() < deadline:
        version, _ = save_title(c, token, item["id"], version)
        time.sleep(0.05)
        firing = active()
    assert firing and firing[0]["value"] > 300 and firing[0]["budget"] == 300, firing
    wait_until(lambda: active() == [], 15, "the replica_lag_ms alert to clear")
    server.assert_stops_cleanly()
