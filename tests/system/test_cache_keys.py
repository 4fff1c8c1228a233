"""Cache keys: the parameters a route reads make the key (order, junk and
integer spelling do not), junk parameters cannot grow the cache, and one
site's entry is never served for another site."""

import time

import pytest

from cache_support import (
    HIT, MISS_STORED, assert_cache_status, cache_status, flush, invalidate, item_path,
    published_item, site_entries, slug_path, stats, wait_warmed,
)
from strata_support import assert_json, assert_problem, assert_status, create_item, uniq


@pytest.fixture(scope="module", autouse=True)
def warmed(server):
    wait_warmed(server)


def fresh_list_path(client, token, query):
    """A list query on a type of its own, so no earlier test cached it."""
    typ = uniq("kt")
    for i in range(3):
        published_item(client, token, type=typ, title=f"Key test {i}")
    return f"/v1/main/content?type={typ}&{query}", typ


def test_parameter_order_and_unknown_parameters_share_one_entry(client, tokens):
    path, typ = fresh_list_path(client, tokens["admin"], "a=1&limit=5&sort=title")
    first = client.get(path)
    assert_status(first, 200)
    assert_cache_status(first, MISS_STORED, what=path)
    second = client.get(f"/v1/main/content?sort=title&limit=5&junk=x&type={typ}")
    assert_status(second, 200)
    assert_cache_status(second, HIT, what="the same query reordered, with junk")
    assert second.body == first.body


def test_integer_spelling_shares_one_entry(client, tokens):
    path, typ = fresh_list_path(client, tokens["admin"], "limit=5")
    first = client.get(path)
    assert_cache_status(first, MISS_STORED, what=path)
    second = client.get(f"/v1/main/content?type={typ}&limit=05")
    assert_status(second, 200)
    assert_cache_status(second, HIT, what="limit=05 after limit=5")
    assert second.body == first.body


def test_default_values_share_the_entry_of_the_bare_query(client, tokens):
    path, typ = fresh_list_path(client, tokens["admin"], "limit=20")
    first = client.get(f"/v1/main/content?type={typ}")
    assert_cache_status(first, MISS_STORED, what="the bare query")
    # the list's default sort is spelled "relevance": by rank with q, -published_at without
    second = client.get(path + "&sort=relevance&status=published")
    assert_cache_status(second, HIT, what="the defaults spelled out")
    assert second.body == first.body


def test_a_different_value_of_a_read_parameter_is_a_different_entry(client, tokens):
    path, typ = fresh_list_path(client, tokens["admin"], "limit=2")
    two = client.get(path)
    three = client.get(f"/v1/main/content?type={typ}&limit=3")
    assert_cache_status(two, MISS_STORED, what="limit=2")
    assert_cache_status(three, MISS_STORED, what="limit=3 is another query")
    assert len(assert_json(two)["items"]) == 2
    assert len(assert_json(three)["items"]) == 3


def test_junk_parameters_add_no_entries(client, tokens):
    adm = tokens["admin"]
    path, typ = fresh_list_path(client, adm, "limit=5&sort=title")
    first = client.get(path)
    assert_status(first, 200)
    before = site_entries(client, adm)
    statuses = []
    for i in range(50):
        r = client.get(f"{path}&junk{i}=x{i}&utm_source=n{i}")
        assert_status(r, 200)
        assert r.body == first.body
        statuses.append(cache_status(r))
    after = site_entries(client, adm)
    assert statuses == [HIT] * 50, f"every junk variant is a hit: {sorted(set(statuses))}"
    assert after == before, f"junk parameters added {after - before} entries"


def test_a_limit_the_route_rejects_is_rejected_even_when_its_value_is_cached(client, tokens):
    """limit=5 is cached; a limit of the same value spelled with 41 digits is
    400 when the handler reads it (longer than the parameter may be), so the
    cache must not answer it 200 either: a response may not depend on what
    happens to be cached."""
    path, typ = fresh_list_path(client, tokens["admin"], "limit=7")
    padded = f"/v1/main/content?type={typ}&limit={'0' * 40}7"
    uncached = client.get(padded)
    assert_problem(uncached, 400, mentions="limit")
    assert_status(client.get(path), 200)
    again = client.get(padded)
    assert again.status == uncached.status, (
        f"the same request was {uncached.status} before limit=7 was cached and {again.status} "
        f"({cache_status(again)!r}) after: {again.body[:120]!r}")


def test_invalidating_a_list_by_key_matches_any_spelling_of_it(client, tokens):
    adm = tokens["admin"]
    path, typ = fresh_list_path(client, adm, "limit=4&sort=title")
    assert_cache_status(client.get(path), MISS_STORED, what=path)
    out = invalidate(client, adm, keys=[f"/v1/main/content?sort=title&x=1&limit=04&type={typ}"])
    assert out.get("keys_removed") == 1, f"the key should name the cached entry: {out}"
    assert "fwd=miss" in cache_status(client.get(path)), "the entry was removed"


# ---- sites ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def twins(client, tokens):
    """One type+slug published in both sites, with different titles."""
    typ, slug = uniq("tw"), uniq("same")
    main = published_item(client, tokens["admin"], site="main", type=typ, slug=slug, title="Main twin")
    other = published_item(client, tokens["other_write"], site="other", type=typ, slug=slug,
                           title="Other twin")
    return main, other


def test_same_slug_in_two_sites_reads_each_sites_own_item(client, twins):
    main, other = twins
    for _ in range(3):  # the first round may fill; the others are hits
        m = assert_json(client.get(slug_path(main, "main")))
        o = assert_json(client.get(slug_path(other, "other")))
        assert (m["site"], m["title"], m["id"]) == ("main", "Main twin", main["id"])
        assert (o["site"], o["title"], o["id"]) == ("other", "Other twin", other["id"])
    assert cache_status(client.get(slug_path(main, "main"))) == HIT
    assert cache_status(client.get(slug_path(other, "other"))) == HIT


def test_a_cached_item_of_one_site_is_not_found_in_another(client, twins):
    main, other = twins
    assert_status(client.get(item_path(main, "main")), 200)
    assert cache_status(client.get(item_path(main, "main"))) == HIT
    for _ in range(2):
        assert_problem(client.get(f"/v1/other/content/{main['id']}"), 404)
        assert_problem(client.get(f"/v1/main/content/{other['id']}"), 404)


def test_each_site_counts_its_own_entries(client, tokens, twins):
    main, _ = twins
    adm = tokens["admin"]
    s = stats(client, adm)
    assert s["site_name"] == "main"
    assert s["site"]["entries"] >= 1
    assert s["all_sites"]["entries"] > s["site"]["entries"], (
        f"`other` has entries too, so all sites hold more than main: {s}")


# ---- one source of truth for each route's defaults (issue 13) -----------------------------
#
# The cache keys a request on its route's parameter table (routes.c), and
# the handler reads its defaults from the same rows. If they drifted apart,
# a request without a parameter and one with the key's default spelled out
# would share an entry while the handler answered them differently. Each
# answer below is the handler's own (the site's cache flushed first), so
# the two bodies compared are two fills, never one entry served twice.

DEFAULTS_SPELLED_OUT = [
    ("content", "limit=20"), ("content", "sort=relevance"), ("content", "status=published"),
    ("popular", "limit=10"), ("popular", "window=24h"),
]


@pytest.fixture(scope="module")
def many_viewed(client, tokens):
    """More items of one type than either default limit, each viewed a
    different number of times, published at different moments (so every
    sort and window orders them differently): a default that differed
    from the key's would change the answer. Waits (bounded) until popular
    counts every view, since views are written behind."""
    typ = uniq("dt")
    ids = [published_item(client, tokens["admin"], type=typ, title=f"Default {i:02d}")["id"] for i in range(23)]
    for n, item_id in enumerate(ids[:12]):
        for _ in range(n % 4 + 1):
            r = client.post(f"/v1/main/content/{item_id}/views")
            assert r.status == 204, r
    deadline = time.monotonic() + 15
    body = None
    while time.monotonic() < deadline:
        flush(client, tokens["admin"])
        body = assert_json(client.get(f"/v1/main/popular?type={typ}&limit=100&window=1h"))
        if sum(i.get("window_views", 0) for i in body["items"]) == sum(n % 4 + 1 for n in range(12)):
            return typ
        time.sleep(0.2)
    pytest.fail(f"popular never counted the 30 views within 15 s: {body}")


def handler_answer(client, token, path):
    flush(client, token)
    r = client.get(path)
    assert_status(r, 200)
    assert_cache_status(r, MISS_STORED, what=f"{path} after a flush")
    return r


@pytest.mark.parametrize("route, spelled", DEFAULTS_SPELLED_OUT)
def test_the_handler_assumes_the_default_the_key_assumes(client, tokens, many_viewed, route, spelled):
    bare = f"/v1/main/{route}?type={many_viewed}"
    bare_answer = handler_answer(client, tokens["admin"], bare)
    spelled_answer = handler_answer(client, tokens["admin"], f"{bare}&{spelled}")
    assert spelled_answer.body == bare_answer.body, f"{route}: the handler's default is not {spelled}"
    again = client.get(bare)
    assert_cache_status(again, HIT, what=f"{bare} after {spelled} was stored: one key")
    assert again.body == bare_answer.body


@pytest.mark.parametrize("route, spelled", DEFAULTS_SPELLED_OUT)
def test_another_value_than_the_default_is_answered_differently(client, tokens, many_viewed, route, spelled):
    """The data above tells each default from another value: without this,
    the comparison before could not fail."""
    bare = f"/v1/main/{route}?type={many_viewed}"
    if spelled == "status=published":  # the other statuses are listed with a token only
        draft = create_item(client, tokens["admin"], type=many_viewed, title="Default draft")
        listed = assert_json(client.get(f"{bare}&status=any&limit=100", token=tokens["admin"]))
        public = assert_json(handler_answer(client, tokens["admin"], f"{bare}&limit=100"))
        assert draft["id"] in [i["id"] for i in listed["items"]]
        assert draft["id"] not in [i["id"] for i in public["items"]]
        return
    others = {"limit=20": "limit=21", "sort=relevance": "sort=published_at", "limit=10": "limit=11",
              "window=24h": "window=7d"}
    default_answer = handler_answer(client, tokens["admin"], bare)
    other_answer = handler_answer(client, tokens["admin"], f"{bare}&{others[spelled]}")
    assert other_answer.body != default_answer.body, f"{route}: {others[spelled]} answered as {spelled}"
