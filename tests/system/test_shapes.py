"""Sparse fieldsets and includes (issue 16; src/content/shape.c,
docs/api.md "Sparse fieldsets and includes"): ?select= keeps only the named
members of an item and of each item of a list page (its id always), and
?include=category puts the category object in place of its slug. Both are
part of the cache key as a set, in any order and case, and a shaped entry
goes with its item's and its list's invalidations."""

from cache_support import HIT, cache_status
from strata_support import assert_json, assert_problem, create_item, publish, publish_title, uniq


def test_select_keeps_the_named_members_and_the_id(server, tokens):
    client = server.client()
    typ = uniq("shp")
    draft = create_item(client, tokens["admin"], type=typ, category="news", tags=["a"], body="words")
    publish(client, tokens["admin"], draft["id"])
    item = assert_json(client.get(f"/v1/main/content/{draft['id']}?select=title,slug"))
    assert item == {"id": draft["id"], "slug": draft["slug"], "title": draft["title"]}
    by_slug = assert_json(client.get(f"/v1/main/content/by-slug/{typ}/{draft['slug']}?select=views"))
    assert set(by_slug) == {"id", "views"}
    page = assert_json(client.get(f"/v1/main/content?type={typ}&select=tags,status"))
    assert page["items"] == [{"id": draft["id"], "status": "published", "tags": ["a"]}]
    assert "next_cursor" in page


def test_include_category_gives_the_category_object(server, tokens):
    client = server.client()
    typ = uniq("shp")
    draft = create_item(client, tokens["admin"], type=typ, category="news")
    publish(client, tokens["admin"], draft["id"])
    item = assert_json(client.get(f"/v1/main/content/{draft['id']}?include=category"))
    assert item["category"]["slug"] == "news" and "name" in item["category"] and "parent" in item["category"]
    assert item["title"] == draft["title"]  # everything else as it was
    page = assert_json(client.get(f"/v1/main/content?type={typ}&include=category&select=category"))
    assert page["items"] == [{"id": draft["id"], "category": item["category"]}]


def test_a_shape_is_one_cache_entry_whatever_its_order_and_goes_with_its_item(server, tokens):
    client = server.client()
    writer = server.client(token=tokens["write"])
    draft = create_item(client, tokens["admin"])
    publish(client, tokens["admin"], draft["id"])
    path = f"/v1/main/content/{draft['id']}"
    first = client.get(f"{path}?select=title,slug")
    assert first.status == 200
    again = client.get(f"{path}?select=SLUG,title,slug")
    assert cache_status(again) == HIT and again.body == first.body
    publish_title(writer, draft["id"], "Shaped anew")
    assert assert_json(client.get(f"{path}?select=slug,title"))["title"] == "Shaped anew"


def test_a_bad_select_or_include_names_what_may_be_asked(server):
    client = server.client()
    assert_problem(client.get("/v1/main/content?select=title,secret"), 400, mentions="published_version")
    assert_problem(client.get("/v1/main/content/1?select=password"), 400, mentions="select from")
    assert_problem(client.get("/v1/main/content?include=author"), 400, mentions="category")
