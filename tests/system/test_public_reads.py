"""Public reads: lists, filters, sorts, limits, single items, categories,
popular, the view beacon, unknown sites, request ids and the operational
routes — all without a token."""

import time
from types import SimpleNamespace

import pytest

from strata_support import (
    ITEM_KEYS, SANE_REQUEST_ID_RE, SUMMARY_KEYS, assert_json, assert_problem,
    assert_timestamp, create_item, list_all, publish, q, uniq, with_query,
)

SORTS = ["-published_at", "published_at", "-updated_at", "title"]


@pytest.fixture(scope="module")
def catalog(client, tokens):
    """Five published items over two fresh types, one fresh category and two
    fresh tags, plus one never-published draft that matches every filter."""
    adm = tokens["admin"]
    cat = uniq("cat")
    r = client.post("/v1/main/categories", json={"slug": cat, "name": "Catalog"}, token=adm)
    assert_json(r, 201)
    t1, t2 = uniq("ta"), uniq("tb")
    tag_a, tag_b = uniq("tga"), uniq("tgb")
    spec = {
        "a1": (t1, cat, [tag_a]),
        "a2": (t1, cat, [tag_a, tag_b]),
        "a3": (t1, None, [tag_b]),
        "b1": (t2, cat, [tag_a]),
        "b2": (t2, None, [tag_b]),
    }
    items = {}
    for key, (typ, category, tags) in spec.items():
        extra = {"category": category} if category else {}
        d = create_item(client, adm, type=typ, tags=tags, title=f"{key} title",
                        body=f"body of {key}", excerpt=f"excerpt of {key}", **extra)
        items[key] = publish(client, adm, d["id"])
    draft = create_item(client, adm, type=t1, category=cat, tags=[tag_a, tag_b],
                        title="never published")
    return SimpleNamespace(cat=cat, t1=t1, t2=t2, tag_a=tag_a, tag_b=tag_b,
                           items=items, draft=draft,
                           ids={k: v["id"] for k, v in items.items()})


def ids_of(items):
    return [i["id"] for i in items]


# ---- lists -----------------------------------------------------------------------

def test_list_returns_published_summaries_without_body(client, catalog):
    page = assert_json(client.get("/v1/main/content"), 200)
    assert set(page) >= {"items", "next_cursor"}
    assert len(page["items"]) == 20, "default limit is 20 and there are more than 20 items"
    assert isinstance(page["next_cursor"], str) and page["next_cursor"]
    for s in page["items"]:
        assert "body" not in s, f"a summary carries no body: {s}"
        missing = SUMMARY_KEYS - set(s)
        assert not missing, f"summary lacks {missing}: {s}"
        assert s["status"] == "published"
        assert s["site"] == "main"
        assert isinstance(s["id"], int) and s["id"] > 0
        assert isinstance(s["tags"], list) and isinstance(s["fields"], dict)
        for key in ("created_at", "updated_at", "published_at"):
            assert_timestamp(s[key], key)


def test_list_holds_every_seeded_item(client, catalog):
    everything = list_all(client)
    assert len(everything) >= 40 + len(catalog.items)
    assert len(set(ids_of(everything))) == len(everything)


def test_never_published_draft_is_not_listed(client, catalog):
    listed = ids_of(list_all(client))
    assert catalog.draft["id"] not in listed
    assert catalog.draft["id"] not in ids_of(list_all(client, params={"type": catalog.t1}))


@pytest.mark.parametrize("filters, expected", [
    (lambda c: {"type": c.t1}, {"a1", "a2", "a3"}),
    (lambda c: {"type": c.t2}, {"b1", "b2"}),
    (lambda c: {"category": c.cat}, {"a1", "a2", "b1"}),
    (lambda c: {"tag": c.tag_a}, {"a1", "a2", "b1"}),
    (lambda c: {"tag": c.tag_b}, {"a2", "a3", "b2"}),
    (lambda c: {"type": c.t1, "tag": c.tag_b}, {"a2", "a3"}),
    (lambda c: {"type": c.t2, "category": c.cat}, {"b1"}),
    (lambda c: {"type": uniq("none")}, set()),
], ids=["type-a", "type-b", "category", "tag-a", "tag-b", "type+tag", "type+category", "no-match"])
def test_list_filter_returns_exactly_the_matching_published_items(client, catalog, filters, expected):
    got = list_all(client, params=filters(catalog), limit=2)
    assert sorted(ids_of(got)) == sorted(catalog.ids[k] for k in expected)


def _ordered(values, descending):
    pairs = zip(values, values[1:])
    return all(a >= b for a, b in pairs) if descending else all(a <= b for a, b in pairs)


@pytest.mark.parametrize("sort", SORTS)
def test_each_sort_order_is_really_ordered(client, catalog, sort):
    items = list_all(client, params={"sort": sort}, limit=100)
    assert len(items) >= 40
    if sort == "title":
        titles = [i["title"] for i in items]
        # docs/api.md does not say which collation: accept byte order or
        # case-insensitive order, nothing else.
        assert (_ordered([t.encode() for t in titles], False)
                or _ordered([t.casefold() for t in titles], False)), titles
    else:
        key = sort.lstrip("-")
        values = [i[key] for i in items]
        for v in values:
            assert_timestamp(v, key)
        assert _ordered(values, sort.startswith("-")), f"not ordered by {sort}: {values}"


def test_default_sort_is_newest_published_first(client, catalog):
    default = ids_of(assert_json(client.get("/v1/main/content?limit=50"))["items"])
    explicit = ids_of(assert_json(client.get("/v1/main/content?limit=50&sort=-published_at"))["items"])
    assert default == explicit


@pytest.mark.parametrize("sort", ["bogus", "published", "+title", "-title_x"])
def test_unknown_sort_is_400(client, sort):
    assert_problem(client.get(with_query("/v1/main/content", {"sort": sort})), 400)


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "99999999999999999999"])
def test_limit_out_of_range_is_400(client, limit):
    assert_problem(client.get(with_query("/v1/main/content", {"limit": limit})), 400, mentions="limit")


def test_limit_one_returns_one_item_and_a_cursor(client, catalog):
    page = assert_json(client.get("/v1/main/content?limit=1"))
    assert len(page["items"]) == 1
    assert page["next_cursor"]


def test_limit_hundred_returns_up_to_a_hundred(client, catalog):
    total = len(list_all(client))
    page = assert_json(client.get("/v1/main/content?limit=100"))
    assert len(page["items"]) == min(total, 100)
    assert (page["next_cursor"] is None) == (total <= 100)


def test_unknown_query_parameters_are_ignored(client, catalog):
    plain = ids_of(assert_json(client.get("/v1/main/content?limit=5"))["items"])
    extra = ids_of(assert_json(client.get("/v1/main/content?limit=5&frobnicate=1&x="))["items"])
    assert plain == extra


# ---- single items --------------------------------------------------------------------

def test_get_by_id_returns_the_published_item_with_its_body(client, catalog):
    a1 = catalog.items["a1"]
    item = assert_json(client.get(f"/v1/main/content/{a1['id']}"))
    missing = ITEM_KEYS - set(item)
    assert not missing, f"item lacks {missing}"
    assert item["id"] == a1["id"]
    assert item["status"] == "published"
    assert item["type"] == catalog.t1
    assert item["title"] == "a1 title"
    assert item["body"] == "body of a1"
    assert item["excerpt"] == "excerpt of a1"
    assert item["category"] == catalog.cat
    assert item["tags"] == [catalog.tag_a]
    assert item["author"] == "admin"
    assert item["published_version"] == 1 and item["draft_version"] == 1
    for key in ("created_at", "updated_at", "published_at"):
        assert_timestamp(item[key], key)


def test_get_by_slug_returns_the_same_item(client, catalog):
    a2 = catalog.items["a2"]
    by_id = assert_json(client.get(f"/v1/main/content/{a2['id']}"))
    by_slug = assert_json(client.get(f"/v1/main/content/by-slug/{a2['type']}/{a2['slug']}"))
    assert by_slug["id"] == a2["id"]
    for key in ("slug", "title", "body", "tags", "category", "published_version"):
        assert by_slug[key] == by_id[key]


def test_slug_is_scoped_by_type(client, catalog):
    a1 = catalog.items["a1"]
    assert_problem(client.get(f"/v1/main/content/by-slug/{catalog.t2}/{a1['slug']}"), 404)


def test_unpublished_item_is_404_by_id_and_by_slug(client, catalog):
    d = catalog.draft
    assert_problem(client.get(f"/v1/main/content/{d['id']}"), 404)
    assert_problem(client.get(f"/v1/main/content/by-slug/{d['type']}/{d['slug']}"), 404)


def test_absent_item_is_404(client):
    assert_problem(client.get("/v1/main/content/987654321"), 404)
    assert_problem(client.get(f"/v1/main/content/by-slug/post/{uniq('absent')}"), 404)


# ---- categories -----------------------------------------------------------------------

def test_categories_list_names_parents_and_published_counts(client, catalog, tokens):
    child = uniq("child")
    r = client.post("/v1/main/categories", json={"slug": child, "name": "Child", "parent": catalog.cat},
                    token=tokens["admin"])
    assert_json(r, 201)
    body = assert_json(client.get("/v1/main/categories"))
    cats = {c["slug"]: c for c in body["categories"]}
    assert catalog.cat in cats and child in cats
    assert cats[catalog.cat]["name"] == "Catalog"
    assert cats[catalog.cat]["parent"] is None
    # a1, a2 and b1 are published in it; the draft does not count
    assert cats[catalog.cat]["items"] == 3
    assert cats[child]["parent"] == catalog.cat
    assert cats[child]["items"] == 0


# ---- popular and the view beacon --------------------------------------------------------

@pytest.fixture(scope="module")
def viewed(client, catalog):
    """a3 viewed five times, a1 twice; waits (bounded) until popular shows it,
    since views are counted write-behind."""
    for key, n in (("a3", 5), ("a1", 2)):
        for _ in range(n):
            r = client.post(f"/v1/main/content/{catalog.ids[key]}/views")
            assert r.status == 204, r
    deadline = time.monotonic() + 10
    body = None
    while time.monotonic() < deadline:
        body = assert_json(client.get(f"/v1/main/popular?type={catalog.t1}&window=1h"))
        top = [(i["id"], i.get("window_views")) for i in body["items"][:2]]
        if top == [(catalog.ids["a3"], 5), (catalog.ids["a1"], 2)]:
            return catalog
        time.sleep(0.2)
    pytest.fail(f"popular never showed a3 (5 views) then a1 (2 views) within 10 s: {body}")


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "all"])
def test_popular_ranks_the_most_viewed_first(client, viewed, window):
    body = assert_json(client.get(f"/v1/main/popular?type={viewed.t1}&window={window}"))
    assert body["window"] == window
    items = body["items"]
    assert items[0]["id"] == viewed.ids["a3"] and items[0]["window_views"] == 5
    assert items[1]["id"] == viewed.ids["a1"] and items[1]["window_views"] == 2
    counts = [i["window_views"] for i in items]
    assert counts == sorted(counts, reverse=True)
    for i in items:
        assert "body" not in i
        assert i["type"] == viewed.t1


def test_popular_default_window_is_24h(client, viewed):
    body = assert_json(client.get(f"/v1/main/popular?type={viewed.t1}"))
    assert body["window"] == "24h"
    assert body["items"][0]["id"] == viewed.ids["a3"]


def test_popular_limit_cuts_the_list(client, viewed):
    body = assert_json(client.get(f"/v1/main/popular?type={viewed.t1}&limit=1"))
    assert [i["id"] for i in body["items"]] == [viewed.ids["a3"]]


def test_views_show_on_the_item(client, viewed):
    deadline = time.monotonic() + 10
    while True:
        item = assert_json(client.get(f"/v1/main/content/{viewed.ids['a3']}"))
        if item["views"] >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert item["views"] == 5


@pytest.mark.parametrize("window", ["2h", "1d", "ALL", "forever", "24"])
def test_popular_bad_window_is_400(client, window):
    assert_problem(client.get(f"/v1/main/popular?window={window}"), 400, mentions="window")


@pytest.mark.parametrize("limit", ["0", "101", "-3", "x"])
def test_popular_bad_limit_is_400(client, limit):
    assert_problem(client.get(f"/v1/main/popular?limit={limit}"), 400)


def test_view_beacon_on_unknown_item_is_404(client):
    assert_problem(client.post("/v1/main/content/987654321/views"), 404)


def test_view_beacon_on_unpublished_item_is_404(client, catalog):
    assert_problem(client.post(f"/v1/main/content/{catalog.draft['id']}/views"), 404)


# ---- unknown site -------------------------------------------------------------------------

@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/{site}/content"),
    ("GET", "/v1/{site}/content/{id}"),
    ("GET", "/v1/{site}/content/by-slug/{type}/{slug}"),
    ("GET", "/v1/{site}/popular"),
    ("GET", "/v1/{site}/categories"),
    ("POST", "/v1/{site}/content/{id}/views"),
])
def test_unknown_site_is_404_on_every_public_route(client, catalog, method, path):
    a1 = catalog.items["a1"]
    url = path.format(site="nosuchsite", id=a1["id"], type=a1["type"], slug=a1["slug"])
    assert_problem(client.request(method, url), 404)


# ---- request ids -----------------------------------------------------------------------------

def test_request_id_is_generated_when_absent(client):
    a = client.get("/healthz").headers.get("x-request-id")
    b = client.get("/healthz").headers.get("x-request-id")
    assert a and SANE_REQUEST_ID_RE.match(a), a
    assert b and a != b, "each request gets its own id"


@pytest.mark.parametrize("rid", ["client-id.42_ABC", "x", "A" * 64])
def test_sane_request_id_is_echoed(client, rid):
    assert client.get("/healthz", headers={"X-Request-Id": rid}).headers.get("x-request-id") == rid
    r = client.get("/v1/main/content/987654321", headers={"X-Request-Id": rid})
    assert r.status == 404 and r.headers.get("x-request-id") == rid


@pytest.mark.parametrize("rid", ["has space", "A" * 65, "semi;colon", "slash/x", "quote\"d", "", "ünï"])
def test_insane_request_id_is_replaced(client, rid):
    r = client.get("/healthz", headers={"X-Request-Id": rid.encode("utf-8").decode("latin-1")})
    got = r.headers.get("x-request-id")
    assert got and got != rid, f"{rid!r} should have been replaced, got {got!r}"
    assert SANE_REQUEST_ID_RE.match(got), got


# ---- operations ------------------------------------------------------------------------------

def test_healthz(client):
    assert assert_json(client.get("/healthz")) == {"status": "ok"}


def test_readyz(client):
    assert assert_json(client.get("/readyz")) == {"status": "ready"}


def test_openapi_document_is_served(client):
    r = client.get("/openapi.yaml")
    assert r.status == 200
    assert r.body.startswith(b"openapi: 3"), r.body[:80]
    assert b"/v1/{site}/content" in r.body
