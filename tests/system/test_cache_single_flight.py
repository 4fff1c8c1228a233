"""Single flight: many concurrent misses of one key cost the database what
one miss costs, and every one of them gets the same answer."""

import random

import pytest

from cache_support import (
    COLLAPSED, HIT, MISS_STORED, assert_cache_status, cache_status, concurrent_gets, db_queries,
    invalidate, item_path, published_item, stats_cost, wait_warmed,
)
from strata_support import assert_status, uniq

CONCURRENCY = 64


def varied_text(n_bytes, seed):
    """Words that compress, but slowly enough (tens of ms for brotli and
    friends) that the 64 requests really meet while the fill runs."""
    rnd = random.Random(seed)
    return " ".join(f"w{rnd.randrange(5000)}" for _ in range(n_bytes // 6))


@pytest.fixture(scope="module")
def server(deployment):
    """Default threads and workers; nothing but the lists warmed at start,
    so no background filling runs while the database is being counted."""
    srv = deployment.server(name="single-flight", args=["--cache-warm-items", "0"]).start()
    wait_warmed(srv)
    yield srv
    srv.assert_stops_cleanly()


@pytest.fixture(scope="module")
def two_uncached_items(client, tokens):
    """Two published items of the same shape, then dropped from the cache
    (publishing stores an item write-through)."""
    adm = tokens["admin"]
    typ = uniq("sf")
    items = [published_item(client, adm, type=typ, title=f"Single flight {i}",
                            body=varied_text(80000, i), tags=["one", "two"]) for i in range(2)]
    out = invalidate(client, adm, keys=[item_path(i) for i in items])
    assert out["keys_removed"] == 2, out
    return items


def test_concurrent_misses_of_one_key_cost_one_fill(server, client, tokens, two_uncached_items):
    adm = tokens["admin"]
    probe, target = two_uncached_items
    per_stats = stats_cost(client, adm)

    before = db_queries(client, adm)
    r = client.get(item_path(probe))
    assert_status(r, 200)
    assert_cache_status(r, MISS_STORED, what="the probe item was uncached")
    one_miss = db_queries(client, adm) - before - per_stats
    assert one_miss >= 1, f"a miss reads the database: measured {one_miss} statements"

    before = db_queries(client, adm)
    responses = concurrent_gets(server.port, item_path(target), CONCURRENCY)
    spent = db_queries(client, adm) - before - per_stats

    statuses = [cache_status(r) for r in responses]
    assert [r.status for r in responses] == [200] * CONCURRENCY, (
        f"statuses: {sorted(set(r.status for r in responses))}")
    bodies = {r.body for r in responses}
    assert len(bodies) == 1, f"{len(bodies)} different bodies for one key"
    assert statuses.count(MISS_STORED) == 1, (
        f"exactly one request fills and stores: {sorted(statuses)}")
    others = set(statuses) - {MISS_STORED}
    assert others <= {COLLAPSED, HIT}, f"the others wait for the fill or hit it: {sorted(statuses)}"
    if COLLAPSED not in others:
        print("note: no request was collapsed (all hits): the fill was faster than the burst")
    assert spent == one_miss, (
        f"{CONCURRENCY} concurrent misses executed {spent} statements; one miss costs {one_miss}")
    # and the key is now simply cached
    assert_cache_status(client.get(item_path(target)), HIT, what="after the flight")


def test_concurrent_misses_of_a_missing_item_all_get_404(server, tokens):
    """A 404 is a negative answer: one fill stores it (briefly, see
    test_cache_pollution.py); the others wait for that fill or hit it."""
    responses = concurrent_gets(server.port, "/v1/main/content/987654321", 16)
    assert [r.status for r in responses] == [404] * 16
    statuses = [cache_status(r) for r in responses]
    assert statuses.count(MISS_STORED) == 1, f"one request fills: {sorted(statuses)}"
    assert set(statuses) - {MISS_STORED} <= {COLLAPSED, HIT}, sorted(statuses)
