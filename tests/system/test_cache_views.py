"""View beacons with the cache: a beacon for a cached item is answered
without the database, the counts are written behind (every
--views-flush-interval-ms) and then show in the item and in popular, and a
beacon for an item that is not published is 404 whether or not it was
cached."""

import pytest

from cache_support import (
    HIT, assert_cache_status, item_path, poll, published_item, wait_warmed,
)
from strata_support import assert_json, assert_problem, create_item, uniq

FLUSH_MS = 200
BEACONS = 7


@pytest.fixture(scope="module")
def server(deployment):
    srv = deployment.server(name="views", args=["--views-flush-interval-ms", FLUSH_MS]).start()
    wait_warmed(srv)
    yield srv
    srv.assert_stops_cleanly()


def beacon(client, item, site="main"):
    return client.post(f"/v1/{site}/content/{item['id']}/views")


def test_beacons_on_a_cached_item_are_204_and_show_in_the_item_after_a_flush(client, tokens):
    item = published_item(client, tokens["admin"])
    path = item_path(item)
    client.get(path)
    assert_cache_status(client.get(path), HIT, what="the item is cached")
    assert assert_json(client.get(path))["views"] == 0
    for _ in range(BEACONS):
        r = beacon(client, item)
        assert r.status == 204, r
        assert r.body == b""
    seen = []

    def counted():
        v = assert_json(client.get(path))["views"]
        seen.append(v)
        return v == BEACONS

    poll(counted, timeout=10, interval=0.1, what=f"views == {BEACONS} (seen {sorted(set(seen))})")
    assert max(seen) == BEACONS, f"views never exceed the beacons sent: {sorted(set(seen))}"


def test_beacons_show_in_popular_after_a_flush(client, tokens):
    adm = tokens["admin"]
    typ = uniq("pop")
    hot = published_item(client, adm, type=typ, title="Hot")
    cold = published_item(client, adm, type=typ, title="Cold")
    path = f"/v1/main/popular?type={typ}&window=1h"
    before = assert_json(client.get(path))
    assert_cache_status(client.get(path), HIT, what="popular is cached")
    assert all(i.get("window_views", 0) == 0 for i in before["items"]), before
    for _ in range(BEACONS):
        assert beacon(client, hot).status == 204
    assert beacon(client, cold).status == 204

    def ranked():
        items = assert_json(client.get(path))["items"]
        views = {i["id"]: i.get("window_views") for i in items}
        return items if views.get(hot["id"]) == BEACONS and views.get(cold["id"]) == 1 else None

    items = poll(ranked, timeout=10, interval=0.1, what="popular reflecting the beacons")
    assert [i["id"] for i in items][:2] == [hot["id"], cold["id"]], "most viewed first"


def test_a_beacon_for_a_never_published_item_is_404(client, tokens):
    draft = create_item(client, tokens["admin"])
    assert_problem(client.post(f"/v1/main/content/{draft['id']}/views"), 404)


def test_a_beacon_for_an_unknown_item_is_404(client):
    assert_problem(client.post("/v1/main/content/987654321/views"), 404)


def test_a_beacon_for_an_item_unpublished_after_it_was_cached_is_404(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    path = item_path(item)
    client.get(path)
    assert_cache_status(client.get(path), HIT, what="the item is cached")
    assert beacon(client, item).status == 204
    r = client.post(f"/v1/main/content/{item['id']}/unpublish", token=adm)
    assert r.status == 200, r
    assert_problem(beacon(client, item), 404)


def test_a_beacon_for_a_deleted_item_is_404(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    client.get(item_path(item))
    assert client.delete(f"/v1/main/content/{item['id']}", token=adm).status == 204
    assert_problem(beacon(client, item), 404)


def test_a_beacon_for_another_sites_cached_item_is_404(client, tokens):
    item = published_item(client, tokens["admin"])
    client.get(item_path(item))
    assert_cache_status(client.get(item_path(item)), HIT, what="cached in main")
    assert_problem(beacon(client, item, site="other"), 404)
