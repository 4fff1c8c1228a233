"""The editor's life of an item: create, read the draft, save with If-Match,
publish (latest or a chosen version), unpublish, archive, delete; slug
conflicts; categories; tag normalisation. Public reads are checked before and
after each write, so a cached public representation that outlives a write
shows up here."""

import re
import threading

import pytest

from strata_support import (
    DRAFT_KEYS, assert_json, assert_problem, assert_timestamp, create_item,
    etag_version, list_all, publish, save, uniq,
)


@pytest.fixture(scope="module")
def w(tokens):
    return tokens["write"]


def draft_of(client, token, item_id):
    r = client.get(f"/v1/main/content/{item_id}/draft", token=token)
    d = assert_json(r, 200)
    assert etag_version(r) == d["version"]
    return d


def public(client, item_id):
    return client.get(f"/v1/main/content/{item_id}")


def listed_ids(client, typ):
    return [i["id"] for i in list_all(client, params={"type": typ})]


# ---- create and read ----------------------------------------------------------------------

def test_create_returns_201_with_location_etag_and_the_draft(client, w):
    typ, slug = uniq("ed"), uniq("hello")
    r = client.post("/v1/main/content", token=w, json={
        "type": typ, "slug": slug, "title": "Hello", "excerpt": "ex", "body": "text",
        "fields": {"n": 1, "nested": {"list": [1, 2, "three"]}}, "tags": ["a", "b"]})
    d = assert_json(r, 201)
    assert r.headers.get("location") == f"/v1/main/content/{d['id']}"
    assert r.headers.get("etag") == '"v1"'
    missing = DRAFT_KEYS - set(d)
    assert not missing, f"draft lacks {missing}"
    assert isinstance(d["id"], int) and d["id"] > 0
    assert d["site"] == "main" and d["type"] == typ and d["slug"] == slug
    assert d["status"] == "draft" and d["version"] == 1
    assert d["title"] == "Hello"
    assert d["excerpt"] == "ex" and d["body"] == "text"
    assert d["fields"] == {"n": 1, "nested": {"list": [1, 2, "three"]}}
    assert d["tags"] == ["a", "b"]
    assert d["category"] is None
    assert d["author"] == "writer", "the token's name is the author"
    assert d["published_version"] is None
    assert_timestamp(d["saved_at"], "saved_at")


def test_create_fills_defaults(client, w):
    d = create_item(client, w, title="Only required")
    assert d["excerpt"] == "" and d["body"] == "" and d["fields"] == {}
    assert d["tags"] == [] and d["category"] is None


def test_get_draft_returns_the_latest_version_with_its_etag(client, w):
    d = create_item(client, w, body="draft body", title="Draft title")
    r = client.get(f"/v1/main/content/{d['id']}/draft", token=w)
    got = assert_json(r, 200)
    assert r.headers.get("etag") == '"v1"'
    for key in ("id", "slug", "type", "title", "body", "version", "status"):
        assert got[key] == d[key]


def test_new_draft_is_not_public(client, w):
    d = create_item(client, w)
    assert_problem(public(client, d["id"]), 404)
    assert d["id"] not in listed_ids(client, d["type"])


def test_unicode_round_trips(client, w):
    title = "Grüße — 東京 🚀 \"quoted\" \\ back"
    d = create_item(client, w, title=title, body="línea\nzwei\tdrei", fields={"ключ": "значение"})
    got = draft_of(client, w, d["id"])
    assert got["title"] == title
    assert got["body"] == "línea\nzwei\tdrei"
    assert got["fields"] == {"ключ": "значение"}


# ---- saving drafts -------------------------------------------------------------------------

def test_put_with_if_match_appends_a_version_and_keeps_absent_fields(client, w):
    d = create_item(client, w, title="First", excerpt="keep me", body="keep body",
                    tags=["keep"], fields={"k": 1})
    r = client.put(f"/v1/main/content/{d['id']}", token=w, headers={"If-Match": '"v1"'},
                   json={"title": "Second"})
    got = assert_json(r, 200)
    assert r.headers.get("etag") == '"v2"'
    assert got["version"] == 2 and got["title"] == "Second"
    assert got["excerpt"] == "keep me" and got["body"] == "keep body"
    assert got["tags"] == ["keep"] and got["fields"] == {"k": 1}
    assert got["slug"] == d["slug"] and got["type"] == d["type"]
    assert draft_of(client, w, d["id"])["version"] == 2


def test_put_can_clear_the_category(client, w, tokens):
    cat = uniq("c")
    assert_json(client.post("/v1/main/categories", token=w, json={"slug": cat, "name": "C"}), 201)
    d = create_item(client, w, category=cat)
    assert d["category"] == cat
    got = save(client, w, d["id"], 1, {"category": None})
    assert got["category"] is None


def test_put_with_stale_if_match_is_412_and_changes_nothing(client, w):
    d = create_item(client, w, title="v1 title")
    save(client, w, d["id"], 1, {"title": "v2 title"})
    r = client.put(f"/v1/main/content/{d['id']}", token=w, headers={"If-Match": '"v1"'},
                   json={"title": "lost update"})
    p = assert_problem(r, 412)
    assert re.search(r"(?<![0-9])2(?![0-9])", p["detail"]), f"detail should name the latest version 2: {p['detail']}"
    got = draft_of(client, w, d["id"])
    assert got["version"] == 2 and got["title"] == "v2 title"


@pytest.mark.parametrize("if_match", ['"v99"', '"v0"', "v1", '"1"', "garbage", '"v-1"'])
def test_put_with_an_if_match_that_is_not_the_latest_version_is_412(client, w, if_match):
    d = create_item(client, w, title="keep")
    save(client, w, d["id"], 1, {"title": "latest"})
    r = client.put(f"/v1/main/content/{d['id']}", token=w, headers={"If-Match": if_match},
                   json={"title": "nope"})
    assert_problem(r, (400, 412))
    assert draft_of(client, w, d["id"])["version"] == 2


def test_put_without_if_match_is_428_and_changes_nothing(client, w):
    d = create_item(client, w, title="untouched")
    r = client.put(f"/v1/main/content/{d['id']}", token=w, json={"title": "blind write"})
    assert_problem(r, 428)
    got = draft_of(client, w, d["id"])
    assert got["version"] == 1 and got["title"] == "untouched"


def test_concurrent_puts_with_if_match_star_all_apply(server, client, w):
    """If-Match: * means "whatever is current" (RFC 9110 13.1.1): saves
    racing each other with it never answer 412, each makes one version,
    and none is lost."""
    d = create_item(client, w, title="star 0")
    threads_n, saves_n = 6, 5
    answers, lock = [], threading.Lock()

    def saver(k):
        c = server.client(timeout=30)
        for n in range(saves_n):
            r = c.put(f"/v1/main/content/{d['id']}", token=w, headers={"If-Match": "*"},
                      json={"title": f"star {k}.{n}"})
            with lock:
                answers.append((r.status, etag_version(r) if r.status == 200 else r.body[:200]))

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bad = [a for a in answers if a[0] != 200]
    assert not bad, f"{len(bad)} of {len(answers)} saves with If-Match: * failed: {bad[:3]}"
    versions = sorted(v for _, v in answers)
    assert versions == list(range(2, 2 + threads_n * saves_n)), versions
    assert draft_of(client, w, d["id"])["version"] == 1 + threads_n * saves_n


def test_put_new_slug_takes_effect_at_once(client, w):
    typ = uniq("ty")
    a = create_item(client, w, type=typ)
    new_slug = uniq("renamed")
    got = save(client, w, a["id"], 1, {"slug": new_slug})
    assert got["slug"] == new_slug
    # the old slug is free again, the new one is taken
    assert_json(client.post("/v1/main/content", token=w,
                            json={"type": typ, "slug": a["slug"], "title": "reuses old slug"}), 201)
    assert_problem(client.post("/v1/main/content", token=w,
                               json={"type": typ, "slug": new_slug, "title": "clash"}), 409)


# ---- publishing ---------------------------------------------------------------------------

def test_publish_makes_the_item_public(client, w):
    d = create_item(client, w, title="to publish", body="public body")
    assert_problem(public(client, d["id"]), 404)           # warm any cache with the 404
    assert d["id"] not in listed_ids(client, d["type"])
    item = publish(client, w, d["id"])
    assert item["status"] == "published"
    assert item["published_version"] == 1 and item["draft_version"] == 1
    assert_timestamp(item["published_at"], "published_at")
    assert item["body"] == "public body"
    got = assert_json(public(client, d["id"]))
    assert got["title"] == "to publish" and got["status"] == "published"
    by_slug = assert_json(client.get(f"/v1/main/content/by-slug/{d['type']}/{d['slug']}"))
    assert by_slug["id"] == d["id"]
    assert d["id"] in listed_ids(client, d["type"])


def test_publish_does_not_add_a_version(client, w):
    d = create_item(client, w)
    publish(client, w, d["id"])
    r = client.get(f"/v1/main/content/{d['id']}/draft", token=w)
    assert r.headers.get("etag") == '"v1"'
    assert r.json["published_version"] == 1


def test_later_draft_save_does_not_change_the_public_item_until_publish(client, w):
    d = create_item(client, w, title="public v1", body="body v1")
    publish(client, w, d["id"])
    assert assert_json(public(client, d["id"]))["title"] == "public v1"
    save(client, w, d["id"], 1, {"title": "draft v2", "body": "body v2"})
    got = assert_json(public(client, d["id"]))
    assert got["title"] == "public v1" and got["body"] == "body v1"
    assert got["published_version"] == 1 and got["draft_version"] == 2
    listed = {i["id"]: i for i in list_all(client, params={"type": d["type"]})}
    assert listed[d["id"]]["title"] == "public v1"
    item = publish(client, w, d["id"])
    assert item["published_version"] == 2 and item["title"] == "draft v2"
    got = assert_json(public(client, d["id"]))
    assert got["title"] == "draft v2" and got["body"] == "body v2"
    listed = {i["id"]: i for i in list_all(client, params={"type": d["type"]})}
    assert listed[d["id"]]["title"] == "draft v2"


def test_publish_an_older_version(client, w):
    d = create_item(client, w, title="one")
    save(client, w, d["id"], 1, {"title": "two"})
    save(client, w, d["id"], 2, {"title": "three"})
    publish(client, w, d["id"])
    assert assert_json(public(client, d["id"]))["title"] == "three"
    item = publish(client, w, d["id"], version=1)
    assert item["published_version"] == 1 and item["title"] == "one"
    got = assert_json(public(client, d["id"]))
    assert got["title"] == "one" and got["published_version"] == 1
    draft = draft_of(client, w, d["id"])
    assert draft["version"] == 3 and draft["title"] == "three", "publishing adds no version"


@pytest.mark.parametrize("version", [99, 0, -1])
def test_publish_an_unknown_version_is_rejected(client, w, version):
    d = create_item(client, w)
    r = client.post(f"/v1/main/content/{d['id']}/publish", token=w, json={"version": version})
    assert_problem(r, (404, 422) if version == 99 else (400, 404, 422))
    assert_problem(public(client, d["id"]), 404)


def test_unpublish_hides_the_item_and_a_second_unpublish_is_409(client, w):
    d = create_item(client, w)
    publish(client, w, d["id"])
    assert_json(public(client, d["id"]))
    assert d["id"] in listed_ids(client, d["type"])
    item = assert_json(client.post(f"/v1/main/content/{d['id']}/unpublish", token=w), 200)
    assert item["status"] == "draft"
    assert_problem(public(client, d["id"]), 404)
    assert_problem(client.get(f"/v1/main/content/by-slug/{d['type']}/{d['slug']}"), 404)
    assert d["id"] not in listed_ids(client, d["type"])
    assert_problem(client.post(f"/v1/main/content/{d['id']}/unpublish", token=w), 409)


def test_unpublish_a_never_published_item_is_409(client, w):
    d = create_item(client, w)
    assert_problem(client.post(f"/v1/main/content/{d['id']}/unpublish", token=w), 409)


def test_unpublish_with_archive_archives(client, w, tokens):
    d = create_item(client, w)
    publish(client, w, d["id"])
    item = assert_json(client.post(f"/v1/main/content/{d['id']}/unpublish", token=w,
                                   json={"archive": True}), 200)
    assert item["status"] == "archived"
    assert_problem(public(client, d["id"]), 404)
    archived = list_all(client, params={"type": d["type"], "status": "archived"}, token=tokens["read"])
    assert [i["id"] for i in archived] == [d["id"]]
    assert list_all(client, params={"type": d["type"], "status": "draft"}, token=tokens["read"]) == []


def test_republish_after_unpublish(client, w):
    d = create_item(client, w, title="again")
    publish(client, w, d["id"])
    client.post(f"/v1/main/content/{d['id']}/unpublish", token=w)
    assert_problem(public(client, d["id"]), 404)
    publish(client, w, d["id"])
    assert assert_json(public(client, d["id"]))["title"] == "again"


# ---- delete ---------------------------------------------------------------------------------

def test_delete_removes_the_item(client, w):
    d = create_item(client, w)
    publish(client, w, d["id"])
    assert_json(public(client, d["id"]))
    r = client.delete(f"/v1/main/content/{d['id']}", token=w)
    assert r.status == 204 and r.body == b""
    assert_problem(public(client, d["id"]), 404)
    assert_problem(client.get(f"/v1/main/content/{d['id']}/draft", token=w), 404)
    assert_problem(client.get(f"/v1/main/content/by-slug/{d['type']}/{d['slug']}"), 404)
    assert d["id"] not in listed_ids(client, d["type"])
    assert_problem(client.delete(f"/v1/main/content/{d['id']}", token=w), 404)
    assert_problem(client.put(f"/v1/main/content/{d['id']}", token=w, headers={"If-Match": '"v1"'},
                              json={"title": "zombie"}), 404)
    assert_problem(client.post(f"/v1/main/content/{d['id']}/views"), 404)


def test_deleted_slug_can_be_reused(client, w):
    d = create_item(client, w)
    assert client.delete(f"/v1/main/content/{d['id']}", token=w).status == 204
    again = create_item(client, w, type=d["type"], slug=d["slug"])
    assert again["version"] == 1 and again["slug"] == d["slug"]


# ---- slug uniqueness ---------------------------------------------------------------------------

def test_slug_conflict_is_409_and_writes_nothing(client, w, tokens):
    typ, slug = uniq("ty"), uniq("dup")
    first = create_item(client, w, type=typ, slug=slug, title="first")
    r = client.post("/v1/main/content", token=w, json={"type": typ, "slug": slug, "title": "second"})
    assert_problem(r, 409, mentions=slug)
    everything = list_all(client, params={"type": typ, "status": "any"}, token=tokens["read"])
    assert [(i["id"], i["title"]) for i in everything] == [(first["id"], "first")]


def test_same_slug_in_another_type_is_fine(client, w):
    slug = uniq("shared")
    create_item(client, w, type=uniq("ta"), slug=slug)
    create_item(client, w, type=uniq("tb"), slug=slug)


def test_same_slug_in_another_site_is_fine(client, tokens):
    typ, slug = uniq("ty"), uniq("shared")
    create_item(client, tokens["write"], type=typ, slug=slug)
    create_item(client, tokens["other_write"], site="other", type=typ, slug=slug)


def test_put_to_a_taken_slug_is_409_and_changes_nothing(client, w):
    typ = uniq("ty")
    a = create_item(client, w, type=typ)
    b = create_item(client, w, type=typ, title="b title")
    r = client.put(f"/v1/main/content/{b['id']}", token=w, headers={"If-Match": '"v1"'},
                   json={"slug": a["slug"], "title": "should not stick"})
    assert_problem(r, 409)
    got = draft_of(client, w, b["id"])
    assert got["version"] == 1 and got["slug"] == b["slug"] and got["title"] == "b title"


# ---- categories and tags --------------------------------------------------------------------------

def test_category_create_duplicate_and_unknown_parent(client, w):
    slug = uniq("cat")
    r = client.post("/v1/main/categories", token=w, json={"slug": slug, "name": "News"})
    c = assert_json(r, 201)
    assert c["slug"] == slug and c["name"] == "News" and c["parent"] is None
    assert_problem(client.post("/v1/main/categories", token=w, json={"slug": slug, "name": "Again"}), 409)
    child = uniq("child")
    r = client.post("/v1/main/categories", token=w, json={"slug": child, "name": "Kid", "parent": slug})
    assert assert_json(r, 201)["parent"] == slug
    orphan = uniq("orphan")
    r = client.post("/v1/main/categories", token=w,
                    json={"slug": orphan, "name": "Orphan", "parent": uniq("nope")})
    assert_problem(r, 422, mentions="parent")
    cats = {c["slug"]: c for c in assert_json(client.get("/v1/main/categories"))["categories"]}
    assert cats[slug]["name"] == "News"
    assert cats[child]["parent"] == slug
    assert orphan not in cats


def test_categories_are_per_site(client, w, tokens):
    slug = uniq("cat")
    assert_json(client.post("/v1/main/categories", token=w, json={"slug": slug, "name": "Main"}), 201)
    other = {c["slug"] for c in assert_json(client.get("/v1/other/categories"))["categories"]}
    assert slug not in other
    r = client.post("/v1/other/content", token=tokens["other_write"],
                    json={"type": "post", "slug": uniq("s"), "title": "t", "category": slug})
    assert_problem(r, 422, mentions="category")


def test_item_with_unknown_category_is_422(client, w):
    typ = uniq("ty")
    r = client.post("/v1/main/content", token=w,
                    json={"type": typ, "slug": uniq("s"), "title": "t", "category": uniq("nope")})
    assert_problem(r, 422, mentions="category")


def test_tags_are_stored_lowercase(client, w):
    d = create_item(client, w, tags=["Foo", "BAR", "baz", "MiXeD-Case_1"])
    assert sorted(d["tags"]) == ["bar", "baz", "foo", "mixed-case_1"]
    got = draft_of(client, w, d["id"])
    assert sorted(got["tags"]) == ["bar", "baz", "foo", "mixed-case_1"]
    publish(client, w, d["id"])
    found = list_all(client, params={"tag": "foo", "type": d["type"]})
    assert [i["id"] for i in found] == [d["id"]]
