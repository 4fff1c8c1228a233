"""Keyset pagination: every page walk yields each published item exactly
once, even while items are being published between page requests; cursors
are signed and bound to the query that made them."""

import base64
import os
import random
import time

import pytest

from strata_support import (
    assert_json, assert_problem, create_item, list_all, publish, uniq, with_query,
)

SORTS = ["-published_at", "published_at", "-updated_at", "title"]
MAX_PAGES = 100


def walk(client, params, limit, between=None, token=None):
    """Fetches pages until next_cursor is null; calls between() after each
    page. Returns the ids in the order seen."""
    seen = []
    cursor = None
    for _ in range(MAX_PAGES):
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        page = assert_json(client.get(with_query("/v1/main/content", p), token=token))
        assert len(page["items"]) <= limit
        seen.extend(i["id"] for i in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert page["items"], "a page with a next_cursor must not be empty"
        if between:
            between()
    pytest.fail(f"no last page after {MAX_PAGES} pages")


def duplicates(ids):
    seen, dup = set(), set()
    for i in ids:
        (dup if i in seen else seen).add(i)
    return dup


@pytest.fixture(scope="module")
def published_ids(client):
    ids = [i["id"] for i in list_all(client, limit=100)]
    assert len(ids) >= 40
    return set(ids)


@pytest.fixture(scope="module")
def small_set(client, tokens):
    """Seven published items of a fresh type with one fresh tag, for
    filtered walks."""
    typ, tag = uniq("pg"), uniq("tag")
    ids = set()
    for n in range(7):
        d = create_item(client, tokens["admin"], type=typ, tags=[tag], title=f"paged {n}")
        ids.add(publish(client, tokens["admin"], d["id"])["id"])
    return typ, tag, ids


@pytest.mark.parametrize("sort", SORTS)
def test_walking_every_page_yields_each_published_item_once(client, published_ids, sort):
    ids = walk(client, {"sort": sort}, limit=7)
    assert not duplicates(ids), f"duplicated across pages: {duplicates(ids)}"
    assert set(ids) >= published_ids, f"skipped: {published_ids - set(ids)}"


@pytest.mark.parametrize("sort", SORTS)
def test_page_walk_matches_one_big_page(client, published_ids, sort):
    small = walk(client, {"sort": sort}, limit=3)
    big = walk(client, {"sort": sort}, limit=100)
    assert small == big, "the same query must give the same order however it is paged"


@pytest.mark.parametrize("which", ["type", "tag", "type+tag"])
def test_filtered_walk_yields_exactly_the_filtered_items(client, small_set, which):
    typ, tag, expected = small_set
    params = {"type": {"type": typ}, "tag": {"tag": tag}, "type+tag": {"type": typ, "tag": tag}}[which]
    for sort in SORTS:
        ids = walk(client, dict(params, sort=sort), limit=2)
        assert not duplicates(ids)
        assert set(ids) == expected, f"sort {sort}"


def test_a_tag_list_keeps_the_order_of_its_items_after_they_change(client, tokens):
    """A tag's list walks item_tags' own copy of the sort keys (schema
    version 4): after retitles, saves and publishes, every sort of the tag
    list is the order of the same items listed by their type, read from
    the items themselves. Walked in pages of 2, so cursors cross the
    changed keys too."""
    typ, tag = uniq("ord"), uniq("tag")
    admin = tokens["admin"]
    ids = []
    for n in range(6):
        d = create_item(client, admin, type=typ, tags=[tag], title=f"order {n}")
        ids.append(publish(client, admin, d["id"])["id"])
    for n, item_id in enumerate(ids[::-1]):
        draft = client.get(f"/v1/main/content/{item_id}/draft", token=admin)
        r = client.put(f"/v1/main/content/{item_id}", json={"title": f"again {n}"}, token=admin,
                       headers={"If-Match": draft.headers["etag"]})
        assert r.status == 200, r
        if n % 2:  # a new public title, in the reverse order; the others only move updated_at (a draft saved)
            publish(client, admin, item_id)
    for sort in SORTS:
        by_type = walk(client, {"type": typ, "sort": sort}, limit=2)
        by_tag = walk(client, {"tag": tag, "sort": sort}, limit=2)
        assert by_tag == by_type, f"sort {sort}"
        assert sorted(by_tag) == sorted(ids)


def test_last_page_has_null_cursor(client, small_set):
    typ, _, expected = small_set
    page = assert_json(client.get(f"/v1/main/content?type={typ}&limit={len(expected)}"))
    assert len(page["items"]) == len(expected)
    assert page["next_cursor"] is None


@pytest.mark.parametrize("sort", SORTS)
def test_keyset_holds_while_items_are_published_between_pages(client, tokens, sort):
    before = set(walk(client, {"sort": sort}, limit=100))
    inserted = set()
    counter = [0]

    def publish_two():
        for _ in range(2):
            counter[0] += 1
            # random titles land anywhere in title order, before and after the cursor
            title = f"{random.choice('ABCDEFGHIJKLMNOPQRSTUVWXYZ')}{os.urandom(3).hex()} inserted"
            d = create_item(client, tokens["admin"], type=uniq("ins"), title=title)
            inserted.add(publish(client, tokens["admin"], d["id"])["id"])

    ids = walk(client, {"sort": sort}, limit=6, between=publish_two)
    assert not duplicates(ids), f"an item was served twice: {duplicates(ids)}"
    skipped = before - set(ids)
    assert not skipped, f"items that existed at the start were skipped: {sorted(skipped)}"
    strangers = set(ids) - before - inserted
    assert not strangers, f"items from nowhere: {strangers}"


# ---- cursors are signed and bound -------------------------------------------------------

@pytest.fixture(scope="module")
def cursor(client, published_ids):
    page = assert_json(client.get("/v1/main/content?limit=5&sort=title"))
    assert page["next_cursor"]
    return page["next_cursor"]


def test_valid_cursor_works(client, cursor):
    page = assert_json(client.get(with_query("/v1/main/content", {"limit": 5, "sort": "title", "cursor": cursor})))
    assert page["items"]


@pytest.mark.parametrize("forged", [
    lambda c: base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="),
    lambda c: base64.urlsafe_b64encode(os.urandom(len(c))).decode()[:len(c)],
    lambda c: "!!!not-a-cursor!!!",
    lambda c: "x",
    lambda c: c[: len(c) // 2],
    lambda c: c + "AAAA",
    lambda c: "' OR 1=1 --",
    lambda c: "A" * 5000,
], ids=["random", "random-same-length", "garbage", "one-char", "truncated", "extended", "sql", "huge"])
def test_forged_cursor_is_400(client, cursor, forged):
    r = client.get(with_query("/v1/main/content", {"limit": 5, "sort": "title", "cursor": forged(cursor)}))
    assert_problem(r, 400, mentions="cursor")


@pytest.mark.parametrize("position", [0.25, 0.5, 0.75])
def test_cursor_with_one_flipped_character_is_400(client, cursor, position):
    i = min(int(len(cursor) * position), len(cursor) - 2)
    ch = cursor[i]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    flipped = alphabet[(alphabet.index(ch) + 17) % len(alphabet)] if ch in alphabet else "A"
    forged = cursor[:i] + flipped + cursor[i + 1:]
    assert forged != cursor
    r = client.get(with_query("/v1/main/content", {"limit": 5, "sort": "title", "cursor": forged}))
    assert_problem(r, 400, mentions="cursor")


@pytest.mark.parametrize("other_query", [
    {"sort": "-published_at"},
    {"sort": "published_at"},
    {"sort": "-updated_at"},
    {},  # default sort is -published_at
    {"sort": "title", "type": "post"},
    {"sort": "title", "tag": "news"},
    {"sort": "title", "category": "news"},
], ids=["sort-desc-published", "sort-published", "sort-updated", "default-sort", "+type", "+tag", "+category"])
def test_cursor_reused_with_another_query_is_400(client, cursor, other_query):
    r = client.get(with_query("/v1/main/content", dict(other_query, limit=5, cursor=cursor)))
    assert_problem(r, 400, mentions="cursor")


def test_cursor_of_a_filtered_query_is_refused_without_the_filter(client, small_set):
    typ, _, _ = small_set
    page = assert_json(client.get(f"/v1/main/content?type={typ}&limit=2"))
    c = page["next_cursor"]
    assert c
    assert_problem(client.get(with_query("/v1/main/content", {"limit": 2, "cursor": c})), 400)
    assert_problem(client.get(with_query("/v1/main/content", {"limit": 2, "cursor": c, "type": uniq("x")})), 400)
    assert_json(client.get(with_query("/v1/main/content", {"limit": 2, "cursor": c, "type": typ})))


def test_cursor_errors_leave_the_server_well(client):
    t = time.monotonic()
    assert client.get("/healthz").status == 200
    assert time.monotonic() - t < 2
