"""Scheduled publishing (issue 16; src/content/schedules.c, docs/api.md
"Scheduled publishing").

PUT /v1/{site}/content/{id}/schedule sets an item's publish_at and
unpublish_at; at each moment a job makes the change the publish or
unpublish route would, and invalidates every tier and purges the CDN then:
readers see it within a second of its time through a warm L1, another
instance's L1 and L2 (Redis, the bus) and a CDN (the purge receiver), not
when their copies expire."""

import datetime
import time

import pytest

from redis_support import needs_redis, redis, wait_bus_connected  # noqa: F401 - redis is a fixture
from strata_support import HOST, assert_json, assert_problem, create_item, db_rows, db_run, free_port, uniq, wait_for
from test_jobs import PurgeReceiver

BOUND_S = 1.0  # the bound: visible within a second of its time


def rfc3339(epoch_s):
    return datetime.datetime.fromtimestamp(epoch_s, datetime.timezone.utc).isoformat(timespec="milliseconds")


def schedule(client, token, item_id, **times):
    return client.put(f"/v1/main/content/{item_id}/schedule", json=times, token=token)


def watch(readers, path, present, timeout):
    """Polls path on every reader until each answers as `present` says (200
    or 404); returns the wall time when the last one did."""
    deadline = time.time() + timeout
    pending = list(readers)
    while pending:
        assert time.time() < deadline, f"{path} still {'absent' if present else 'present'} after {timeout} s"
        pending = [r for r in pending if (r.get(path).status == 200) != present]
        if pending:
            time.sleep(0.02)
    return time.time()


@pytest.fixture
def purge_receiver():
    made = PurgeReceiver(free_port())
    yield made
    made.close()


@needs_redis
def test_a_scheduled_publish_and_unpublish_reach_every_tier_and_the_cdn_at_their_time(
        server_factory, fresh_deployment, redis, purge_receiver):
    admin = fresh_deployment.tokens["admin"]
    args = ("--redis", redis.url, "--cdn-purge-url", f"http://{HOST}:{purge_receiver.httpd.server_port}/purge",
            "--cdn-repurge-ms", "0", "--cache-item-ttl-s", "300", "--cache-list-ttl-s", "300",
            "--cache-negative-ttl-s", "300")
    a = server_factory(fresh_deployment, name="a", args=args)
    b = server_factory(fresh_deployment, name="b", args=args)
    wait_bus_connected(a, admin)
    wait_bus_connected(b, admin)
    editor = a.client(token=admin)
    typ = uniq("emb")
    draft = create_item(editor, admin, type=typ, title="Embargoed")
    item, listing = f"/v1/main/content/{draft['id']}", f"/v1/main/content?type={typ}"
    readers = [a.client(), b.client()]
    for r in readers:  # warm: each instance's L1 (and the L2) holds the 404 and the empty page
        for _ in range(2):
            assert r.get(item).status == 404
            assert_json(r.get(listing))

    at = time.time() + 2.0
    resp = schedule(editor, admin, draft["id"], publish_at=rfc3339(at))
    body = assert_json(resp)
    assert body["publish_at"].startswith(rfc3339(at)[:19]) and body["unpublish_at"] is None
    assert all(r.get(item).status == 404 for r in readers), "published before its time"
    seen = watch(readers, item, True, at - time.time() + 3)
    print(f"published: visible on both instances {seen - at:.3f} s after its time")
    assert seen - at <= BOUND_S, f"visible {seen - at:.3f} s after its time"
    assert seen >= at - 0.05, f"visible {at - seen:.3f} s before its time"
    for r in readers:
        assert [i["id"] for i in assert_json(r.get(listing))["items"]] == [draft["id"]]
    purged = wait_for("the purge", lambda: [q for q in purge_receiver.received()
                                            if f"main:item:{draft['id']}" in q["headers"].get("surrogate-key", "")], 2)
    assert purged

    at = time.time() + 2.0
    assert_json(schedule(editor, admin, draft["id"], unpublish_at=rfc3339(at)))
    assert all(r.get(item).status == 200 for r in readers)
    gone = watch(readers, item, False, at - time.time() + 3)
    print(f"unpublished: gone from both instances {gone - at:.3f} s after its time")
    assert gone - at <= BOUND_S, f"still visible {gone - at:.3f} s after its time"
    for r in readers:
        assert assert_json(r.get(listing))["items"] == []
    assert assert_json(editor.get(f"{item}/schedule")) == {"id": draft["id"], "publish_at": None, "unpublish_at": None}


def test_a_changed_or_cleared_schedule_leaves_its_old_time_without_effect(server_factory, fresh_deployment):
    srv = server_factory()
    admin = fresh_deployment.tokens["admin"]
    editor = srv.client(token=admin)
    draft = create_item(editor, admin)
    item = f"/v1/main/content/{draft['id']}"
    first = time.time() + 1.0
    assert_json(schedule(editor, admin, draft["id"], publish_at=rfc3339(first)))
    later = time.time() + 2.5
    assert_json(schedule(editor, admin, draft["id"], publish_at=rfc3339(later)))  # moved later
    time.sleep(max(0.0, first - time.time()) + 0.8)
    assert srv.client().get(item).status == 404, "the old time published it"
    watch([srv.client()], item, True, later - time.time() + 2)

    other = create_item(editor, admin)
    soon = time.time() + 1.0
    assert_json(schedule(editor, admin, other["id"], publish_at=rfc3339(soon)))
    cleared = assert_json(schedule(editor, admin, other["id"], publish_at=None, unpublish_at=None))
    assert cleared["publish_at"] is None
    time.sleep(max(0.0, soon - time.time()) + 0.8)
    assert srv.client().get(f"/v1/main/content/{other['id']}").status == 404, "a cleared schedule published it"


def test_a_bad_schedule_is_refused_and_says_why(server_factory, fresh_deployment):
    srv = server_factory()
    admin, reader = fresh_deployment.tokens["admin"], fresh_deployment.tokens["read"]
    editor = srv.client(token=admin)
    draft = create_item(editor, admin)
    soon, later = rfc3339(time.time() + 60), rfc3339(time.time() + 120)
    for body, mentions in (({"publish_at": rfc3339(time.time() - 5)}, "not in the future"),
                           ({"publish_at": "tomorrow"}, "RFC 3339"),
                           ({"publish_at": "2026-02-30T10:00:00Z"}, "RFC 3339"),
                           ({"publish_at": 1796464800}, "RFC 3339"),
                           ({"publish_at": later, "unpublish_at": soon}, "after"),
                           ({"publish_on": soon}, "unknown field")):
        assert_problem(schedule(editor, admin, draft["id"], **body), 422, mentions=mentions)
    assert_problem(schedule(editor, reader, draft["id"], publish_at=soon), 403)
    assert_problem(schedule(editor, admin, 999999999, publish_at=soon), 404)
    assert_problem(srv.client().put(f"/v1/other/content/{draft['id']}/schedule", json={"publish_at": soon},
                                    token=fresh_deployment.tokens["other_write"]), 404)
    got = assert_json(editor.get(f"/v1/main/content/{draft['id']}/schedule"))
    assert got == {"id": draft["id"], "publish_at": None, "unpublish_at": None}
    assert_json(schedule(editor, admin, draft["id"], publish_at=soon, unpublish_at=later))
    got = assert_json(editor.get(f"/v1/main/content/{draft['id']}/schedule"))
    assert got["publish_at"].startswith(soon[:19]) and got["unpublish_at"].startswith(later[:19])


def test_a_scheduled_publish_is_on_time_behind_a_backlog_of_background_jobs(server_factory, fresh_deployment):
    """Thousands of background jobs due before it (a burst of saves queues a
    diff per save) do not hold up a scheduled publish: it is in the queue's
    punctual lane, run by a runner of its own (store_jobs.h)."""
    backlog = 4000
    past = int(time.time() * 1000) - 1000
    db_run(fresh_deployment.db, [("INSERT INTO jobs(kind, payload, run_at, created_at) VALUES ('rollup', '{}', ?, ?)",
                                  (past + i, past)) for i in range(backlog)])
    srv = server_factory(fresh_deployment)
    admin = fresh_deployment.tokens["admin"]
    editor = srv.client(token=admin)
    draft = create_item(editor, admin)
    item = f"/v1/main/content/{draft['id']}"
    at = time.time() + 1.5
    assert_json(schedule(editor, admin, draft["id"], publish_at=rfc3339(at)))
    seen = watch([srv.client()], item, True, at - time.time() + 5)
    left = db_rows(fresh_deployment.db, "SELECT count(*) FROM jobs WHERE kind = 'rollup'")[0][0]
    print(f"published {seen - at:.3f} s after its time, {left} of {backlog} background jobs still queued")
    assert left > 0, "the backlog drained before the publish was due: the test proves nothing"
    assert seen - at <= BOUND_S, f"visible {seen - at:.3f} s after its time, behind the background backlog"
