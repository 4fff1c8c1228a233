"""Lifetimes: fresh for the TTL, then served stale while one background
refresh runs, then kept as a fail-safe copy for when the database fails.

The server runs with item lifetimes of 1 s fresh, 3 s stale and 30 s grace,
no jitter, and fault injection on. Timings are waited for with deadlines
measured from the moment an entry was filled, with margins wide enough for
the sanitizer build."""

import time

import pytest

from cache_support import (
    FAILSAFE, HIT, STALE, assert_cache_status, cache_status, concurrent_gets, db_queries,
    invalidate, is_miss, item_path, poll, published_item, stats_cost, wait_warmed,
)
from strata_support import assert_json, assert_problem, assert_status

TTL_S, SWR_S, GRACE_S = 1, 3, 30
FAULT_MS = 6000


@pytest.fixture(scope="module")
def server(deployment):
    srv = deployment.server(name="lifetimes", args=[
        "--cache-item-ttl-s", TTL_S, "--cache-item-swr-s", SWR_S, "--cache-item-grace-s", GRACE_S,
        "--cache-ttl-jitter-pct", 0, "--debug-fault-injection", "true",
    ]).start()
    wait_warmed(srv)
    yield srv
    srv.assert_stops_cleanly()


def fill(client, path):
    """Reads path until it is a fresh hit; returns the monotonic time just
    before the read that filled it (an upper bound on when it was stored)
    and the body."""
    started = time.monotonic()
    r = client.get(path)
    assert_status(r, 200)
    assert is_miss(r) or cache_status(r) == HIT, cache_status(r)
    return started, r.body


def sleep_until(t):
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def test_headers_announce_the_configured_lifetimes(client, tokens):
    item = published_item(client, tokens["admin"])
    r = client.get(item_path(item))
    cc = r.headers.get("cache-control", "")
    assert f"s-maxage={TTL_S}" in cc and f"stale-while-revalidate={SWR_S}" in cc \
        and f"stale-if-error={GRACE_S}" in cc, cc


def test_after_the_ttl_a_read_is_served_stale_and_refreshed_in_the_background(client, tokens):
    item = published_item(client, tokens["admin"])
    path = item_path(item)
    invalidate(client, tokens["admin"], keys=[path])
    filled_at, body = fill(client, path)
    assert_cache_status(client.get(path), HIT, what="within the TTL")
    # past the TTL (1 s), well inside the stale window (up to 4 s)
    sleep_until(filled_at + TTL_S + 0.3)
    stale = client.get(path)
    assert_status(stale, 200)
    assert time.monotonic() < filled_at + TTL_S + SWR_S, "the test ran too slowly to see the stale window"
    assert_cache_status(stale, STALE, what=f"{time.monotonic() - filled_at:.2f}s after the fill")
    assert stale.body == body
    assert "public" in stale.headers.get("cache-control", "")
    # the background refresh lands: the next reads are fresh hits again
    fresh = poll(lambda: (lambda r: r if cache_status(r) == HIT else None)(client.get(path)),
                 timeout=10, interval=0.05, what="a fresh hit after the background refresh")
    assert_status(fresh, 200)


def test_stale_reads_start_one_refresh_only(server, client, tokens):
    """Sixteen reads of a stale entry at once: all are answered at once from
    the stale copy (or the refreshed one), and the database sees one fill."""
    adm = tokens["admin"]
    item = published_item(client, adm)
    path = item_path(item)
    invalidate(client, adm, keys=[path])
    fill(client, path)  # the row is in the object cache now, as it is for the refresh below
    invalidate(client, adm, keys=[path])
    per_stats = stats_cost(client, adm)
    before = db_queries(client, adm)
    filled_at, body = fill(client, path)
    one_fill = db_queries(client, adm) - before - per_stats
    assert one_fill >= 1

    sleep_until(filled_at + TTL_S + 0.3)
    before = db_queries(client, adm)
    responses = concurrent_gets(server.port, path, 16)
    poll(lambda: cache_status(client.get(path)) == HIT, timeout=10, what="refreshed")
    spent = db_queries(client, adm) - before - per_stats
    statuses = sorted(cache_status(r) for r in responses)
    assert [r.status for r in responses] == [200] * 16
    assert set(statuses) <= {STALE, HIT}, f"stale reads are answered from the cache: {statuses}"
    assert STALE in statuses, f"past the TTL the first read is stale: {statuses}"
    assert all(r.body == body for r in responses)
    assert spent == one_fill, f"{statuses.count(STALE)} stale reads cost {spent} statements; one fill costs {one_fill}"


def test_when_the_database_fails_an_expired_copy_is_served_and_uncached_reads_are_503(
        client, tokens):
    adm = tokens["admin"]
    cached = published_item(client, adm)
    never = published_item(client, adm)
    cached_path, never_path = item_path(cached), item_path(never)
    invalidate(client, adm, keys=[cached_path, never_path])
    filled_at, body = fill(client, cached_path)
    assert_cache_status(client.get(cached_path), HIT, what="filled")

    sent_at = time.monotonic()
    r = client.post("/v1/debug/faults", json={"database_down_ms": FAULT_MS}, token=adm)
    assert_json(r, 200)
    # the server started the fault after we sent the request: it lasts at
    # least until then + FAULT_MS, and not much longer
    fault_ends = sent_at + FAULT_MS / 1000

    # an item never cached cannot be read while the database is down
    down = client.get(never_path)
    assert_problem(down, 503)
    assert down.headers.get("retry-after"), f"a 503 says when to retry: {down.headers}"

    # past fresh + stale: only the fail-safe copy can answer
    sleep_until(filled_at + TTL_S + SWR_S + 0.4)
    assert time.monotonic() < fault_ends - 0.3, "the test ran too slowly to read during the fault"
    r = client.get(cached_path)
    assert_status(r, 200)
    assert time.monotonic() < fault_ends, "the read finished after the fault ended: inconclusive"
    assert_cache_status(r, FAILSAFE, what="an expired copy while the database is down")
    assert r.body == body

    # after the fault, reads recover
    sleep_until(fault_ends)
    recovered = poll(lambda: (lambda x: x if x.status == 200 else None)(client.get(never_path)),
                     timeout=15, interval=0.1, what="reads of the uncached item after the fault")
    assert recovered.json["id"] == never["id"]
    again = poll(lambda: (lambda x: x if x.status == 200 and cache_status(x) != FAILSAFE else None)(
        client.get(cached_path)), timeout=15, interval=0.1, what="a real read of the cached item after the fault")
    assert again.json["id"] == cached["id"]


def test_writes_are_503_while_the_database_is_down(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    sent_at = time.monotonic()
    r = client.post("/v1/debug/faults", json={"database_down_ms": 1500}, token=adm)
    assert_json(r, 200)
    ends = sent_at + 1.5
    w = client.post(f"/v1/main/content/{item['id']}/unpublish", token=adm)
    if time.monotonic() < ends:
        assert_problem(w, 503)
    sleep_until(ends)
    poll(lambda: client.get("/readyz").status == 200, timeout=15, what="ready again after the fault")
    # the item is still published and readable
    assert assert_json(client.get(item_path(item)))["status"] == "published"
