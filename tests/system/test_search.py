"""Full-text search, GET /v1/{site}/content?q= (docs/api.md, "Search"), on
the engine the suite runs on (SQLite FTS5 by default; PostgreSQL tsvector
with STRATA_TEST_DB=postgres): found by title and by body, a title match
ranked above a body match, an unpublished or deleted item gone from the
very next search with the cache on and warm, cursors that neither repeat
nor skip while items are published between pages, the list filters
combined with q, bad queries refused with a 400 that says what and where,
and no draft text ever found by a public search."""

import uuid

import pytest

from cache_support import HIT, MISS_STORED, assert_cache_status, published_item
from strata_support import (
    assert_json, assert_problem, create_item, db_rows, db_run, publish, save, uniq, with_query,
)

MAX_PAGES = 50


def word():
    """A fresh word of letters only: one token on both engines' parsers."""
    return "zq" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])


def search(client, q, token=None, **params):
    return assert_json(client.get(with_query("/v1/main/content", dict(params, q=q)), token=token))


def ids(page):
    return [i["id"] for i in page["items"]]


def test_finds_by_title_and_by_body_and_ranks_the_title_first(client, tokens):
    w = word()
    # the body match repeats the word: however often, a title match ranks above
    in_body = published_item(client, tokens["admin"], title="Harbour report",
                             body=f"The {w} rose. {w} again, {w} and {w}.")
    in_title = published_item(client, tokens["admin"], title=f"Tides and {w} today", body="Nothing more.")
    in_excerpt = published_item(client, tokens["admin"], title="Weekly notes", excerpt=f"About {w} this week")
    page = search(client, w)
    assert ids(page) == [in_title["id"], in_excerpt["id"], in_body["id"]], page
    snippets = {i["id"]: i["snippet"] for i in page["items"]}
    assert snippets[in_title["id"]] == f"Tides and «{w}» today"
    assert snippets[in_excerpt["id"]] == f"About «{w}» this week"
    assert snippets[in_body["id"]].startswith(f"The «{w}» rose.")
    assert all("body" not in i for i in page["items"]), "hits are summaries"
    # relevance is the default with q, and may be asked for by name
    assert ids(search(client, w, sort="relevance")) == ids(page)
    # the usual sorts order the same hits otherwise
    assert sorted(ids(search(client, w, sort="title"))) == sorted(ids(page))
    assert ids(search(client, w, sort="published_at")) == [in_body["id"], in_title["id"], in_excerpt["id"]]


def test_query_syntax(client, tokens):
    a, b, c = word(), word(), word()
    both = published_item(client, tokens["admin"], title=f"{a} {b}", body=f"first {c} second")
    only_a = published_item(client, tokens["admin"], title=f"{a} alone")
    only_b = published_item(client, tokens["admin"], title=f"{b} alone", excerpt=f"{c} first")
    assert ids(search(client, f"{a} {b}")) == [both["id"]]
    assert set(ids(search(client, f"{a} OR {b}"))) == {both["id"], only_a["id"], only_b["id"]}
    assert ids(search(client, f"{a} -{b}")) == [only_a["id"]]
    assert set(ids(search(client, f"{a[:7]}*"))) == {both["id"], only_a["id"]}
    assert ids(search(client, f'"first {c}"')) == [both["id"]]
    assert ids(search(client, f'"{c} first"')) == [only_b["id"]]
    assert set(ids(search(client, f"{a.upper()} -\"{c} first\""))) == {both["id"], only_a["id"]}
    # punctuation is no syntax: engine operators are words, not a 500
    assert ids(search(client, f"{a} AND NEAR({b}")) == []
    assert ids(search(client, f"{a}^ {b}:")) == [both["id"]]


def test_an_unpublished_or_deleted_item_leaves_the_results_at_once_cache_warm(client, tokens):
    w = word()
    keep = published_item(client, tokens["admin"], title=f"Kept {w}")
    gone = published_item(client, tokens["admin"], title=f"Unpublished {w}")
    deleted = published_item(client, tokens["admin"], title=f"Deleted {w}")
    path = with_query("/v1/main/content", {"q": w})
    first = client.get(path)
    assert_cache_status(first, MISS_STORED, what="the first search")
    warm = client.get(path)
    assert_cache_status(warm, HIT, what="the same search again")
    assert set(ids(warm.json)) == {keep["id"], gone["id"], deleted["id"]}

    r = client.post(f"/v1/main/content/{gone['id']}/unpublish", token=tokens["admin"])
    assert r.status == 200, r
    after = assert_json(client.get(path))
    assert set(ids(after)) == {keep["id"], deleted["id"]}, "the unpublished item is still found"
    assert_cache_status(client.get(path), HIT, what="the search refilled after the unpublish")

    r = client.delete(f"/v1/main/content/{deleted['id']}", token=tokens["admin"])
    assert r.status in (200, 204), r
    assert ids(assert_json(client.get(path))) == [keep["id"]], "the deleted item is still found"

    # a publish of a new title takes the old words out of the index
    draft = assert_json(client.get(f"/v1/main/content/{keep['id']}/draft", token=tokens["admin"]))
    save(client, tokens["admin"], keep["id"], draft["version"], {"title": "Renamed entirely"})
    assert ids(assert_json(client.get(path))) == [keep["id"]], "a saved draft changed what the public finds"
    publish(client, tokens["admin"], keep["id"])
    assert ids(assert_json(client.get(path))) == [], "the old title is still found after the publish"
    assert keep["id"] in ids(search(client, '"renamed entirely"', limit=100))


def test_no_draft_text_is_found_by_a_public_search(client, tokens):
    published, unsaved, never = word(), word(), word()
    autosaved = word()
    item = published_item(client, tokens["admin"], title=f"Public {published}")
    draft = assert_json(client.get(f"/v1/main/content/{item['id']}/draft", token=tokens["admin"]))
    save(client, tokens["admin"], item["id"], draft["version"], {"title": f"Draft {unsaved}"})
    r = client.post(f"/v1/main/content/{item['id']}/autosave", json={"title": f"Auto {autosaved}"},
                    token=tokens["admin"], headers={"If-Match": "*"})
    assert r.status in (200, 201, 204), r
    hidden = create_item(client, tokens["admin"], title=f"Never published {never}", body=f"{never} body")

    assert ids(search(client, published)) == [item["id"]]
    for w in (unsaved, never, autosaved):
        assert ids(search(client, w)) == [], f"a public search found draft text {w}"
        # a token's search is of published items too unless it asks for a status
        assert ids(search(client, w, token=tokens["admin"])) == []
    # token holders may search drafts: the item rows' text (a never-published
    # draft's latest save), never an autosave
    assert ids(search(client, never, token=tokens["admin"], status="draft")) == [hidden["id"]]
    assert ids(search(client, never, token=tokens["admin"], status="any")) == [hidden["id"]]
    assert ids(search(client, autosaved, token=tokens["admin"], status="any")) == []
    r = client.get(with_query("/v1/main/content", {"q": never, "status": "draft"}))
    assert_problem(r, 401)


def walk(client, params, limit, between=None):
    seen, cursor = [], None
    for _ in range(MAX_PAGES):
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        page = assert_json(client.get(with_query("/v1/main/content", p)))
        seen.extend(ids(page))
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert page["items"], "a page with a next_cursor must not be empty"
        if between:
            between()
    pytest.fail(f"no last page after {MAX_PAGES} pages")


@pytest.mark.parametrize("sort", ["relevance", "-published_at", "title"])
def test_cursors_neither_repeat_nor_skip_while_items_are_published(client, tokens, sort):
    w = word()
    original = []
    for n in range(12):  # ranks of every kind: title, excerpt, body, some twice
        fields = [{"title": f"T{n} {w}"}, {"title": f"E{n}", "excerpt": f"{w} {w}"},
                  {"title": f"B{n}", "body": f"x {w}"}][n % 3]
        original.append(published_item(client, tokens["admin"], **fields)["id"])
    added = []

    def publish_more():
        # one that ranks first and one that ranks last: before and after the position
        n = len(added)
        added.append(published_item(client, tokens["admin"], title=f"New {n} {w}")["id"])
        added.append(published_item(client, tokens["admin"], title=f"Z{n}", body=f"{w}")["id"])

    seen = walk(client, {"q": w, "sort": sort}, 4, between=publish_more)
    assert len(seen) == len(set(seen)), f"repeated: {sorted(i for i in seen if seen.count(i) > 1)}"
    missing = set(original) - set(seen)
    assert not missing, f"items there all along were skipped: {sorted(missing)}"
    assert set(seen) <= set(original) | set(added)
    if sort == "relevance":
        titles = [i for i in seen if i in original[0::3]]
        bodies = [i for i in seen if i in original[2::3]]
        assert max(seen.index(i) for i in titles) < min(seen.index(i) for i in bodies)


def test_a_cursor_belongs_to_its_query(client, tokens):
    w, other = word(), word()
    for n in range(3):
        published_item(client, tokens["admin"], title=f"{w} {other} {n}")
    page = search(client, w, limit=1)
    assert page["next_cursor"]
    r = client.get(with_query("/v1/main/content", {"q": other, "limit": 1, "cursor": page["next_cursor"]}))
    assert_problem(r, 400, mentions="cursor")
    r = client.get(with_query("/v1/main/content", {"limit": 1, "cursor": page["next_cursor"]}))
    assert_problem(r, 400, mentions="cursor")


def test_filters_combine_with_q(client, tokens):
    w, typ, tag, cat = word(), uniq("st"), uniq("sg"), uniq("sc")
    r = client.post("/v1/main/categories", json={"slug": cat, "name": "Search cat"}, token=tokens["admin"])
    assert r.status == 201, r
    a = published_item(client, tokens["admin"], type=typ, title=f"A {w}", tags=[tag], category=cat)
    b = published_item(client, tokens["admin"], type=typ, title=f"B {w}")
    c = published_item(client, tokens["admin"], title=f"C {w}", tags=[tag])
    assert set(ids(search(client, w))) == {a["id"], b["id"], c["id"]}
    assert set(ids(search(client, w, type=typ))) == {a["id"], b["id"]}
    assert set(ids(search(client, w, tag=tag))) == {a["id"], c["id"]}
    assert ids(search(client, w, type=typ, tag=tag)) == [a["id"]]
    assert ids(search(client, w, category=cat)) == [a["id"]]
    assert ids(search(client, w, type=typ, select="title")) == ids(search(client, w, type=typ))
    shaped = search(client, w, type=typ, select="title")
    assert set(shaped["items"][0]) == {"id", "title", "snippet"}, "select keeps the snippet"


def test_q_with_filters_on_fields_is_refused_not_ignored(client, tokens):
    """The search's tiers know no field filter yet: a search with one is
    a 400 saying so, never a page that silently ignores the filter."""
    typ = uniq("sf")
    r = client.post("/v1/main/field-indexes", json={"type": typ, "field": "featured", "kind": "bool"},
                    token=tokens["admin"])
    assert r.status in (200, 201), r
    assert_json(client.get(with_query("/v1/main/content", {"type": typ, "fields.featured": "true"})))
    r = client.get(with_query("/v1/main/content", {"q": word(), "type": typ, "fields.featured": "true"}))
    assert_problem(r, 400, mentions="does not combine with filters on fields")


@pytest.mark.parametrize("q, detail", [
    ('"climate', "the '\"' at byte 0 is never closed"),
    ("OR climate", "the 'OR' at byte 0 has no term before it"),
    ("climate OR", "the 'OR' at byte 8 has no term after it"),
    ("-climate", "only excludes"),
    ("climate - x", "the '-' at byte 8 excludes nothing"),
    ("climate OR -x", "the 'OR' at byte 8 is followed by an excluded term"),
    ("&& !!", "no words"),
    (" ".join(f"w{n}" for n in range(17)), "more than 16 words"),
    ("x" * 65, "longer than 64 bytes"),
    ("a " * 129, "longer than 256 bytes"),
])
def test_bad_queries_are_400_with_what_and_where(client, q, detail):
    r = client.get(with_query("/v1/main/content", {"q": q}))
    assert_problem(r, 400, mentions=detail)
    assert "'q'" in r.json["detail"]


def test_bytes_that_are_not_utf8_are_400(client):
    r = client.get("/v1/main/content?q=ab%FF")
    assert_problem(r, 400, mentions="byte 2 of the query is not valid UTF-8")
    r = client.get("/v1/main/content?q=ab%00")
    assert_problem(r, 400)


def test_an_empty_q_is_no_search(client):
    plain = assert_json(client.get("/v1/main/content?limit=5"))
    empty = assert_json(client.get("/v1/main/content?limit=5&q="))
    assert empty == plain
    assert all("snippet" not in i for i in empty["items"])


def test_snippets_are_json_safe_and_bounded(client, tokens):
    w = word()
    title = f'Quotes " and \\ and <mark> & \u2028 {w}'
    body = ("lorem ipsum " * 400) + f" the {w} here " + ("dolor " * 400)
    a = published_item(client, tokens["admin"], title=title)
    b = published_item(client, tokens["admin"], title="Long body", body=body)
    page = search(client, w)
    snippets = {i["id"]: i["snippet"] for i in page["items"]}
    assert snippets[a["id"]] == title.replace(w, f"«{w}»")
    s = snippets[b["id"]]
    assert f"the «{w}» here" in s and s.startswith("…") and s.endswith("…")
    assert len(s.encode()) <= 200


# Undoing schema version 8 by hand gives a database as version 7 left it,
# with items already in it: the migration must index them.
UNDO_V8 = {
    "sqlite": ["DROP TRIGGER items_fts_inserted", "DROP TRIGGER items_fts_deleted", "DROP TRIGGER items_fts_updated",
               "DROP TABLE items_fts", "DELETE FROM schema_migrations WHERE version = 8"],
    "postgres": ["DROP TRIGGER items_search ON items", "DROP FUNCTION items_search_sync()",
                 "DROP FUNCTION items_search_vector(TEXT, TEXT, TEXT)", "DROP INDEX items_by_search",
                 "ALTER TABLE items DROP COLUMN search", "DELETE FROM schema_migrations WHERE version = 8"],
}


def test_the_migration_indexes_the_items_already_there(fresh_deployment, server_factory):
    d = fresh_deployment
    engine = "postgres" if d.db.startswith("postgres") else "sqlite"
    db_run(d.db, [(sql, ()) for sql in UNDO_V8[engine]])
    (title,) = db_rows(d.db, "SELECT title FROM items WHERE status = 'published' ORDER BY id LIMIT 1")[0]
    w = word()
    db_run(d.db, [("UPDATE items SET title = ? WHERE title = ?", (f"{title} {w}", title))])
    out = d.cli("migrate", "--db", d.db)
    assert out.returncode == 0, out.stderr
    srv = server_factory(d)
    page = assert_json(srv.client().get(with_query("/v1/main/content", {"q": w})))
    assert len(page["items"]) >= 1 and all(w in i["title"] for i in page["items"]), page
