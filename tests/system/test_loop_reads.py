"""Reads on the event loop (server.loop_reads; request.c, "reads on the
loop"; docs/architecture.md).

On SQLite an anonymous bounded read (an item by id or slug, a page of a list, the
categories) that the cache does not answer runs on the event loop that
received it, with the loop's own connection, instead of being handed to a
database worker and back. `strata_loop_reads_total` counts them. Writes,
editors' reads, other reads and every read on PostgreSQL (which waits on the network) go
to the workers. The answers are the same bytes either way, and a read on
the loop sees every write answered before it.
"""

import threading
import time

from metrics_support import parse_metrics, scrape, value
from strata_support import DB_BACKEND, WriteLock, assert_json, create_item, publish, publish_title, sqlite_only


def loop_reads(client):
    samples, _ = parse_metrics(scrape(client))
    got = value(samples, "strata_loop_reads_total")
    assert got is not None, "strata_loop_reads_total is missing from /metrics"
    return got


BOUNDED = ["/v1/main/content?limit=5", "/v1/main/content?limit=3&sort=title", "/v1/main/categories"]


def bounded_reads(client, item):
    """The anonymous bounded reads, of the published item among others."""
    paths = BOUNDED + [f"/v1/main/content/{item['id']}", f"/v1/main/content/by-slug/{item['type']}/{item['slug']}",
                       f"/v1/main/content?tag={item['tags'][0]}&sort=title"]
    answers = [client.get(p) for p in paths]
    for resp in answers:
        assert resp.status == 200, resp
    return answers


def test_bounded_reads_run_on_the_loop_on_sqlite_and_on_workers_otherwise(server_factory, tokens):
    srv = server_factory(args=["--cache", "false"])
    client = srv.client()
    item = create_item(client, tokens["write"], tags=["looped"])
    publish(client, tokens["write"], item["id"])
    before = loop_reads(client)
    answers = bounded_reads(client, item)
    counted = loop_reads(client) - before
    expected = len(answers) if DB_BACKEND == "sqlite" else 0
    assert counted == expected, f"{counted} reads ran on the loops, {expected} expected on {DB_BACKEND}"

    # Writes, editors' reads and unbounded reads never run there.
    before = loop_reads(client)
    for path in BOUNDED + [f"/v1/main/content/{item['id']}", "/v1/main/content?status=any&sort=title"]:
        assert client.get(path, token=tokens["write"]).status == 200
    publish_title(srv.client(token=tokens["write"]), item["id"], "Saved and published")
    for path in (f"/v1/main/content/{item['id']}/versions", "/v1/main/popular", "/readyz"):
        assert client.get(path, token=tokens["write"]).status == 200
    assert loop_reads(client) == before


def test_the_answers_are_the_same_bytes_with_reads_on_the_workers(server_factory, tokens):
    on_loops = server_factory(args=["--cache", "false"])
    client = on_loops.client()
    item = create_item(client, tokens["write"], tags=["looped"])
    publish(client, tokens["write"], item["id"])
    loop_answers = bounded_reads(client, item)
    on_loops.stop()

    on_workers = server_factory(args=["--cache", "false", "--loop-reads", "false"])
    client = on_workers.client()
    before = loop_reads(client)
    worker_answers = bounded_reads(client, item)
    assert loop_reads(client) == before == 0
    for a, b in zip(loop_answers, worker_answers):
        assert a.body == b.body
        assert a.headers.get("etag") == b.headers.get("etag")


def test_a_read_on_the_loop_sees_every_write_answered_before_it(server_factory, tokens):
    srv = server_factory(args=["--cache", "false"])
    client = srv.client(token=tokens["write"])
    reader = srv.client()
    item = create_item(client, tokens["write"])
    publish(client, tokens["write"], item["id"])
    for n in range(20):
        title = f"Edition {n}"
        publish_title(client, item["id"], title)
        assert assert_json(reader.get(f"/v1/main/content/{item['id']}"))["title"] == title
        listed = assert_json(reader.get("/v1/main/content?limit=1"))["items"][0]
        assert (listed["id"], listed["title"]) == (item["id"], title)


@sqlite_only("reads on the loop are SQLite's")
def test_reads_do_not_queue_behind_a_writer_holding_every_worker(server_factory, tokens):
    """With SQLite's write lock held by another process, a save keeps the
    only worker waiting in SQLite's busy handler; reads are answered all the
    same, at once, by the loops (with reads on the workers they would queue
    behind it: test_overload.py)."""
    srv = server_factory(args=["--cache", "false", "--workers", 1])
    client = srv.client(token=tokens["write"], timeout=20)
    item = create_item(client, tokens["write"])
    publish(client, tokens["write"], item["id"])
    lock = WriteLock(srv.deployment.db).acquire()
    result = {}
    writer = threading.Thread(target=lambda: result.update(
        resp=client.post("/v1/main/content", json={"type": "held", "slug": "held", "title": "held"})))
    try:
        writer.start()
        time.sleep(0.4)  # the save holds the worker, waiting on the lock
        reader = srv.client(timeout=5)
        for _ in range(20):
            started = time.monotonic()
            assert reader.get(f"/v1/main/content/{item['id']}").status == 200
            assert reader.get("/v1/main/content?limit=5").status == 200
            assert time.monotonic() - started < 1.0
        assert writer.is_alive(), "the save should still be waiting on the lock"
    finally:
        lock.release()
        writer.join(20)
    assert result["resp"].status == 201, result["resp"]


@sqlite_only("reads run on the loops only on the embedded database")
def test_a_flood_of_misses_alone_waits_on_the_loops_and_is_answered_there(server_factory):
    """With the cache off every read is a miss, so the loops run them. Once a
    turn has run reads for its slice, the rest wait on the loop for its next
    turns (strata_loop_reads_deferred_total) instead of going to workers ten
    nice steps down: each is answered there, or shed (503 with Retry-After)
    once it has waited the queue's target — never left hanging."""
    srv = server_factory(args=["--cache", "false", "--queue-target-ms", "2000"])
    deferred_before = value(parse_metrics(scrape(srv.client()))[0], "strata_loop_reads_deferred_total")
    assert deferred_before is not None, "strata_loop_reads_deferred_total is missing from /metrics"
    statuses, slowest, errors = [], [0.0], []

    def reader(n):
        client = srv.client()
        end = time.monotonic() + 3
        try:
            while time.monotonic() < end:
                started = time.monotonic()
                r = client.get(f"/v1/main/content?limit={60 + n}&sort=title")
                slowest[0] = max(slowest[0], time.monotonic() - started)
                statuses.append(r.status)
                if r.status == 200:
                    assert len(r.json["items"]) > 0
                else:
                    assert r.status == 503 and r.headers.get("retry-after"), r
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    deferred = value(parse_metrics(scrape(srv.client()))[0], "strata_loop_reads_deferred_total") - deferred_before
    assert statuses.count(200) > 0 and set(statuses) <= {200, 503}, sorted(set(statuses))
    assert deferred > 0, f"no read waited for a later turn in {len(statuses)} concurrent misses"
    # the target (2 s) bounds a wait; the sanitizers and a shared machine the rest
    assert slowest[0] < 10, f"a read took {slowest[0]:.1f} s"


def test_a_range_runs_on_the_loop_unless_it_must_sort_its_matches(server_factory, tokens):
    """A range on a declared field with few values is read value by value,
    a bounded read: on SQLite the loop runs it. One with more values than
    ordered walks pay for sorts every match: the loop hands it to a worker
    (strata_loop_reads_to_workers_total) and the answer is the same."""
    srv = server_factory(args=["--cache", "false"])
    client, admin = srv.client(), tokens["admin"]
    typ = f"ranged{int(time.monotonic() * 1000) % 100000}"
    for n in range(12):
        item = create_item(client, admin, type=typ, slug=f"r-{n}", title=f"R {n}", fields={"n": n})
        publish(client, admin, item["id"])
    assert_json(client.post("/v1/main/field-indexes", json={"type": typ, "field": "n", "kind": "number"}, token=admin),
                201)

    def counters():
        samples, _ = parse_metrics(scrape(client))
        handed = value(samples, "strata_loop_reads_to_workers_total")
        assert handed is not None, "strata_loop_reads_to_workers_total is missing from /metrics"
        return value(samples, "strata_loop_reads_total"), handed

    def ns(query):
        return [i["fields"]["n"] for i in assert_json(client.get(f"/v1/main/content?type={typ}&{query}"))["items"]]

    looped, handed = counters()
    assert ns("fields.n[gte]=9&limit=5") == [11, 10, 9]  # 3 values: walked
    after = counters()
    assert after == ((looped + 1, handed) if DB_BACKEND == "sqlite" else (looped, handed)), after

    assert ns("fields.n[gte]=0&limit=4") == [11, 10, 9, 8]  # 12 values: sorted, on a worker
    assert ns("fields.n[in]=1,2&limit=4") == [2, 1]  # an [in] always sorts: a worker at once
    final = counters()
    assert final == ((after[0] + 1, after[1] + 1) if DB_BACKEND == "sqlite" else after), final
