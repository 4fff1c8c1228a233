"""Coherence: once a write has answered, no read returns what it replaced —
however the read is answered (hit, miss, collapsed onto another's fill).
Unpublish, delete, the operator's invalidations, flush and warm, and
requests with a token bypassing the cache."""

import threading
import time

import pytest

from cache_support import (
    BYPASS, HIT, assert_cache_status, cache_status, flush, invalidate, is_miss,
    item_path, published_item, site_entries, slug_path, warm, wait_warmed,
)
from strata_support import (
    assert_json, assert_problem, assert_status, create_item, etag_version, uniq,
)

THREADS = 4
ROUNDS = 30
READERS = 2
FILLER = 20  # more items on the shared list page: a longer fill


@pytest.fixture(scope="module", autouse=True)
def warmed(server):
    wait_warmed(server)


def test_a_read_after_a_write_sees_the_write_under_concurrency(server, tokens):
    """THREADS writers, each owning one item of a shared type, save and
    publish a new title ROUNDS times; right after each publish answers, the
    writer reads its item and the shared list page anonymously and must see
    its new title. The others' writes, and READERS threads reading the list
    page and the items all along, keep invalidating and refilling the same
    entries meanwhile (long excerpts make each list fill take a while)."""
    adm = tokens["admin"]
    setup = server.client()
    typ = uniq("coh")
    for k in range(FILLER):
        published_item(setup, adm, type=typ, title=f"filler {k}", excerpt=f"{k} " + "f" * 1900)
    items = [published_item(setup, adm, type=typ, title=f"w{i} r-1", excerpt=f"{i} " + "e" * 1900)
             for i in range(THREADS)]
    list_path = f"/v1/main/content?type={typ}&limit=50"
    stale = []
    errors = []
    done = threading.Event()
    barrier = threading.Barrier(THREADS + READERS, timeout=30)

    def reader(k):
        c = server.client()
        try:
            barrier.wait()
            n = 0
            deadline = time.monotonic() + 120
            while not done.is_set() and time.monotonic() < deadline:
                n += 1
                path = list_path if n % 2 else item_path(items[(n // 2 + k) % THREADS])
                assert_status(c.get(path, headers={"Accept-Encoding": "br, gzip"}), 200)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()

    def writer(i, item):
        c = server.client()
        try:
            version = item["draft_version"]
            barrier.wait()
            for rnd in range(ROUNDS):
                title = f"w{i} r{rnd}"
                r = c.put(f"/v1/main/content/{item['id']}", json={"title": title}, token=adm,
                          headers={"If-Match": f'"v{version}"'})
                assert_status(r, 200)
                version = etag_version(r)
                assert_status(c.post(f"/v1/main/content/{item['id']}/publish", token=adm), 200)
                got = c.get(f"/v1/main/content/{item['id']}")
                assert_status(got, 200)
                if got.json["title"] != title:
                    stale.append(("item", i, rnd, title, got.json["title"], cache_status(got)))
                page = c.get(list_path)
                assert_status(page, 200)
                mine = [s for s in page.json["items"] if s["id"] == item["id"]]
                seen = mine[0]["title"] if mine else None
                if seen != title:
                    stale.append(("list", i, rnd, title, seen, cache_status(page)))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            barrier.abort()

    writers = [threading.Thread(target=writer, args=(i, it), daemon=True) for i, it in enumerate(items)]
    readers = [threading.Thread(target=reader, args=(k,), daemon=True) for k in range(READERS)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(120)
    done.set()
    for t in readers:
        t.join(30)
    assert not any(t.is_alive() for t in writers + readers), "a writer or reader thread is stuck"
    if errors:
        raise errors[0]
    assert not stale, (
        f"{len(stale)} reads after a publish returned the old title "
        f"(what, writer, round, expected, seen, Cache-Status): {stale[:8]}")


def test_a_publish_is_visible_by_id_by_slug_and_in_lists_at_once(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm, title="Before")
    typ_list = f"/v1/main/content?type={item['type']}"
    for path in (item_path(item), slug_path(item), typ_list):
        assert_status(client.get(path), 200)
        assert_cache_status(client.get(path), HIT, what=f"{path} is cached before the write")
    draft = assert_json(client.get(f"/v1/main/content/{item['id']}/draft", token=adm))
    r = client.put(f"/v1/main/content/{item['id']}", json={"title": "After"}, token=adm,
                   headers={"If-Match": f'"v{draft["version"]}"'})
    assert_status(r, 200)
    assert_status(client.post(f"/v1/main/content/{item['id']}/publish", token=adm), 200)
    assert assert_json(client.get(item_path(item)))["title"] == "After"
    assert assert_json(client.get(slug_path(item)))["title"] == "After"
    assert [s["title"] for s in assert_json(client.get(typ_list))["items"]] == ["After"]


def test_unpublish_makes_a_cached_item_404_at_once(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    for path in (item_path(item), slug_path(item)):
        client.get(path)
        assert_cache_status(client.get(path), HIT, what=f"{path} is cached")
    assert_status(client.post(f"/v1/main/content/{item['id']}/unpublish", token=adm), 200)
    assert_problem(client.get(item_path(item)), 404)
    assert_problem(client.get(slug_path(item)), 404)
    listed = assert_json(client.get(f"/v1/main/content?type={item['type']}"))["items"]
    assert listed == [], f"an unpublished item is not listed: {listed}"


def test_delete_makes_a_cached_item_404_at_once(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    for path in (item_path(item), slug_path(item)):
        client.get(path)
        assert_cache_status(client.get(path), HIT, what=f"{path} is cached")
    r = client.delete(f"/v1/main/content/{item['id']}", token=adm)
    assert r.status == 204, r
    assert_problem(client.get(item_path(item)), 404)
    assert_problem(client.get(slug_path(item)), 404)


def test_a_slug_change_frees_the_old_slug_at_once(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    old = slug_path(item)
    client.get(old)
    assert_cache_status(client.get(old), HIT, what="the old slug is cached")
    new_slug = uniq("moved")
    r = client.put(f"/v1/main/content/{item['id']}", json={"slug": new_slug}, token=adm,
                   headers={"If-Match": f'"v{item["draft_version"]}"'})
    assert_status(r, 200)
    assert_problem(client.get(old), 404)
    moved = assert_json(client.get(f"/v1/main/content/by-slug/{item['type']}/{new_slug}"))
    assert moved["id"] == item["id"]


def test_operator_invalidation_by_tag_makes_the_next_read_a_miss(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    path = item_path(item)
    client.get(path)
    assert_cache_status(client.get(path), HIT, what="cached")
    out = invalidate(client, adm, tags=[f"item:{item['id']}"])
    assert out.get("tagged_entries_removed", 0) >= 1, out
    r = client.get(path)
    assert_status(r, 200)
    assert is_miss(r), f"after invalidating its tag the item is read anew, got {cache_status(r)!r}"
    assert_cache_status(client.get(path), HIT, what="and then cached again")


def test_operator_invalidation_of_a_site_qualified_tag_works_too(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    path = slug_path(item)
    client.get(path)
    assert_cache_status(client.get(path), HIT, what="cached")
    invalidate(client, adm, tags=[f"main:item:{item['id']}"])
    assert is_miss(client.get(path))


def test_operator_invalidation_by_key_makes_the_next_read_a_miss(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    path = item_path(item)
    client.get(path)
    assert_cache_status(client.get(path), HIT, what="cached")
    out = invalidate(client, adm, keys=[path])
    assert out.get("keys_removed") == 1, out
    r = client.get(path)
    assert_status(r, 200)
    assert is_miss(r), f"after invalidating its key the item is read anew, got {cache_status(r)!r}"


def test_flushing_a_site_drops_only_that_sites_entries(client, tokens):
    adm = tokens["admin"]
    mine = published_item(client, adm)
    theirs = published_item(client, tokens["other_write"], site="other")
    paths_main = [item_path(mine), "/v1/main/categories"]
    path_other = item_path(theirs, "other")
    for p in paths_main + [path_other]:
        client.get(p)
        assert_cache_status(client.get(p), HIT, what=f"{p} cached before the flush")
    out = flush(client, adm)
    assert out.get("removed", 0) >= 2, out
    assert site_entries(client, adm) == 0, "a flushed site holds no entries"
    for p in paths_main:
        r = client.get(p)
        assert_status(r, 200)
        assert is_miss(r), f"{p} after the flush: {cache_status(r)!r}"
    r = client.get(path_other)
    assert_cache_status(r, HIT, what="another site's entry survives the flush")


def test_warming_fills_the_default_list_categories_and_popular(client, tokens):
    adm = tokens["admin"]
    flush(client, adm)
    assert site_entries(client, adm) == 0
    out = warm(client, adm)
    assert out.get("warmed", 0) >= 3, f"warm fills at least the list, categories and popular: {out}"
    assert site_entries(client, adm) >= 3
    for p in ("/v1/main/content", "/v1/main/categories", "/v1/main/popular"):
        r = client.get(p)
        assert_status(r, 200)
        assert_cache_status(r, HIT, what=f"{p} right after warming")


def test_a_token_bypasses_the_cache(client, tokens):
    adm = tokens["admin"]
    item = published_item(client, adm)
    path = item_path(item)
    client.get(path)
    assert_cache_status(client.get(path), HIT, what="cached for the public")
    for tok in (tokens["read"], adm):
        r = client.get(path, token=tok)
        assert_status(r, 200)
        assert_cache_status(r, BYPASS, what="a read with Authorization")
        cc = [d.strip() for d in r.headers.get("cache-control", "").split(",")]
        assert "private" in cc and "no-store" in cc, f"Cache-Control: {r.headers.get('cache-control')!r}"
        assert r.json["id"] == item["id"]


def test_a_token_sees_a_draft_the_public_cannot(client, tokens):
    adm = tokens["admin"]
    draft = create_item(client, adm, title="Only a draft")
    path = f"/v1/main/content/{draft['id']}"
    for _ in range(2):
        assert_problem(client.get(path), 404)
    r = client.get(path, token=tokens["read"])
    assert_status(r, 200)
    assert_cache_status(r, BYPASS, what="a token read of a draft")
    assert r.json["title"] == "Only a draft"
    assert "private" in r.headers.get("cache-control", "")
    # and the draft did not leak into the public cache
    assert_problem(client.get(path), 404)


def test_a_token_read_of_a_list_sees_drafts_and_is_not_cached(client, tokens):
    adm = tokens["admin"]
    typ = uniq("byp")
    published_item(client, adm, type=typ, title="Public one")
    create_item(client, adm, type=typ, title="Draft one")
    path = f"/v1/main/content?type={typ}&status=any"
    r = client.get(path, token=tokens["read"])
    assert_status(r, 200)
    assert_cache_status(r, BYPASS, what="a token list read")
    assert sorted(s["title"] for s in r.json["items"]) == ["Draft one", "Public one"]
    # the public may not list drafts, cached or not
    assert_problem(client.get(path), 401)
    public = assert_json(client.get(f"/v1/main/content?type={typ}"))
    assert [s["title"] for s in public["items"]] == ["Public one"]
