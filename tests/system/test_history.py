"""Version history as docs/api.md ("History") promises it: the version list
(metadata only, newest first, signed cursor bound to the item), one version
(immutable: strong ETag, `Cache-Control: … immutable`, 304), the diff between
any two versions (json, unified, html), restore (a new version copying an old
one), the per-author autosave slot (the history does not grow; If-Match like
PUT), two editors racing on one item (nothing lost), and retention (old
unpublished versions go, published and kept ones stay readable).

Previews are tested in test_previews.py. The tests drive the real binary
over loopback; they know docs/api.md, not the code."""

import difflib
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time

import pytest

from strata_support import (
    assert_json, assert_problem, assert_status, assert_timestamp, create_item,
    db_rows, db_run, etag_version, publish, run_cli, run_ok, save, uniq,
)

VERSION_KEYS = {"item", "site", "number", "kind", "author", "created_at", "size", "hash", "content"}
# docs/api.md: a list entry is number, kind, author, created_at, size, hash,
# plus published and stored_bytes.
META_KEYS = (VERSION_KEYS - {"content", "item", "site"}) | {"published", "stored_bytes"}
CONTENT_KEYS = {"slug", "title", "excerpt", "body", "fields", "category", "tags"}
SLOT_KEYS = {"item", "site", "author", "base_version", "saved_at", "content"}
DIFF_KEYS = {"item", "from", "to", "fields_changed", "lines_added", "lines_removed",
             "fallback", "words_incomplete", "context", "hunks"}
IMMUTABLE = "private, max-age=31536000, immutable"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SECOND_WRITER = "second-writer"


@pytest.fixture(scope="module", autouse=True)
def w2(deployment):
    """A second write token of site main with another name (another author).
    Autouse, so it exists before the module's server starts."""
    proc = run_ok(deployment.binary, "token", "create", "--site", "main", "--role", "write",
                  "--name", SECOND_WRITER, "--db", deployment.db)
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def w(tokens):
    return tokens["write"]


@pytest.fixture(scope="module")
def r(tokens):
    return tokens["read"]


# ---- helpers --------------------------------------------------------------------------

def item_path(item_id, site="main"):
    return f"/v1/{site}/content/{item_id}"


def get_version(client, token, item_id, n, **kw):
    return client.get(f"{item_path(item_id)}/versions/{n}", token=token, **kw)


def version_content(client, token, item_id, n):
    v = assert_json(get_version(client, token, item_id, n), 200)
    return v["content"]


def list_page(client, token, item_id, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    path = f"{item_path(item_id)}/versions" + (f"?{query}" if query else "")
    return client.get(path, token=token)


def all_versions(client, token, item_id, limit=100, max_pages=100):
    """Walks every page of the version list; returns the metas, in order."""
    out, cursor = [], None
    for _ in range(max_pages):
        params = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        page = assert_json(list_page(client, token, item_id, **params), 200)
        out.extend(page["versions"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("the version list never ends")


def diff(client, token, item_id, a, b, fmt=None, **kw):
    path = f"{item_path(item_id)}/diff?from={a}&to={b}" + (f"&format={fmt}" if fmt else "")
    return client.get(path, token=token, **kw)


def autosave(client, token, item_id, if_match, body, **kw):
    headers = {"If-Match": if_match} if if_match is not None else None
    return client.post(f"{item_path(item_id)}/autosave", token=token, json=body, headers=headers, **kw)


def get_autosave(client, token, item_id):
    return client.get(f"{item_path(item_id)}/autosave", token=token)


def restore(client, token, item_id, n, if_match=None):
    headers = {"If-Match": if_match} if if_match is not None else None
    return client.post(f"{item_path(item_id)}/versions/{n}/restore", token=token, headers=headers)


def content_of(draft):
    return {k: draft[k] for k in CONTENT_KEYS}


def new_category(client, token):
    slug = uniq("cat")
    assert_json(client.post("/v1/main/categories", token=token, json={"slug": slug, "name": slug}), 201)
    return slug


def article(paragraphs, seed, words_per_paragraph=40):
    """A deterministic text of paragraphs of lowercase words, one paragraph a
    line (each line ends with a newline)."""
    rnd = random.Random(seed)
    vocab = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
             "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
             "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray"]
    lines = []
    for p in range(paragraphs):
        lines.append(f"p{p} " + " ".join(rnd.choice(vocab) for _ in range(words_per_paragraph)))
    return "\n".join(lines) + "\n"


def snapshot_text(content):
    """A version rendered as one text, as docs/api.md describes it (for
    contents whose fields are {})."""
    assert content["fields"] == {}, "snapshot_text renders only empty fields"
    return (f"title: {content['title']}\nslug: {content['slug']}\nexcerpt: {content['excerpt']}\n"
            f"category: {content['category'] or ''}\ntags: {', '.join(content['tags'])}\n"
            f"fields: {{}}\n\n{content['body']}")


def apply_json_hunks(a_text, hunks):
    """Applies the hunks of a JSON diff to text a; returns the result, checking
    that every equal and deleted line is the line of a it claims to be."""
    a_lines = a_text.split("\n")
    a_lines = [line + "\n" for line in a_lines[:-1]] + ([a_lines[-1]] if a_lines[-1] else [])
    out, pos = [], 0

    def with_nl(line):
        return line["text"] + ("" if line.get("no_newline") else "\n")

    for h in hunks:
        first_a = next((line["a"] for line in h["lines"] if "a" in line), None)
        assert first_a is not None, f"hunk without a line of a: {h}"
        assert first_a - 1 >= pos, f"hunks overlap or go backwards at a line {first_a}"
        out.extend(a_lines[pos:first_a - 1])
        pos = first_a - 1
        for line in h["lines"]:
            if line["op"] in ("equal", "delete"):
                assert line["a"] == pos + 1, f"line numbers skip: {line} at a line {pos + 1}"
                assert a_lines[pos] == with_nl(line), f"{line} is not line {pos + 1} of a: {a_lines[pos]!r}"
                if line["op"] == "equal":
                    out.append(a_lines[pos])
                pos += 1
            else:
                assert line["op"] == "insert", f"unknown op in {line}"
                out.append(with_nl(line))
    out.extend(a_lines[pos:])
    return "".join(out)


def assert_words_concatenate(line):
    if "words" in line:
        assert "".join(s["text"] for s in line["words"]) == line["text"], line


# ---- the version list -------------------------------------------------------------------

def test_version_list_is_metadata_only_newest_first_with_latest(client, w):
    d = create_item(client, w, body="one", tags=["x"])
    for n in range(1, 4):
        save(client, w, d["id"], n, {"body": f"body {n + 1}"})
    resp = list_page(client, w, d["id"])
    page = assert_json(resp, 200)
    cc = resp.headers.get("cache-control", "")
    assert "private" in cc and "public" not in cc, f"a token's read is private: {cc!r}"
    assert set(page) == {"item", "latest", "versions", "next_cursor"}, page.keys()
    assert page["item"] == d["id"] and page["latest"] == 4 and page["next_cursor"] is None
    assert [v["number"] for v in page["versions"]] == [4, 3, 2, 1]
    for v in page["versions"]:
        assert META_KEYS <= set(v) <= META_KEYS | {"item", "site"}, (
            f"meta should be a version without content, plus stored_bytes: {sorted(v)}")
        assert "content" not in v and "body" not in v
        assert v["kind"] == "draft" and v["author"] == "writer"
        assert_timestamp(v["created_at"], "created_at")
        assert isinstance(v["size"], int) and v["size"] > 0
        assert isinstance(v["stored_bytes"], int) and v["stored_bytes"] > 0
        assert HEX64.match(v["hash"]), v["hash"]
        assert v["published"] is False
    assert len({v["hash"] for v in page["versions"]}) == 4, "different contents, different hashes"
    times = [v["created_at"] for v in page["versions"]]
    assert times == sorted(times, reverse=True)


def test_version_list_published_flag_is_true_only_on_the_published_version(client, w):
    d = create_item(client, w)
    for n in range(1, 4):
        save(client, w, d["id"], n, {"title": f"title {n + 1}"})
    publish(client, w, d["id"], version=2)
    flags = {v["number"]: v["published"] for v in all_versions(client, w, d["id"])}
    assert flags == {4: False, 3: False, 2: True, 1: False}
    publish(client, w, d["id"])  # the latest
    flags = {v["number"]: v["published"] for v in all_versions(client, w, d["id"])}
    assert flags == {4: True, 3: False, 2: False, 1: False}


def test_long_article_small_edits_are_stored_as_small_deltas(client, w):
    body = article(120, seed=7, words_per_paragraph=25)
    assert len(body) > 18000
    d = create_item(client, w, body=body)
    lines = body.split("\n")
    for n in range(1, 31):
        lines[(n * 37) % 120] += f" edit{n}"
        save(client, w, d["id"], n, {"body": "\n".join(lines)})
    metas = all_versions(client, w, d["id"])
    assert [m["number"] for m in metas] == list(range(31, 0, -1))
    ratios = [m["stored_bytes"] / m["size"] for m in metas]
    assert all(m["size"] > 18000 and m["stored_bytes"] > 0 for m in metas), metas[:3]
    median = statistics.median(m["stored_bytes"] for m in metas)
    assert median < metas[0]["size"] / 10, (
        f"median stored_bytes {median} should be far below the size {metas[0]['size']}: {ratios}")
    assert sum(1 for x in ratios if x < 0.1) >= 25, f"most versions should be small deltas: {ratios}"
    # and each one still reads back exactly
    for n in (1, 16, 31):
        assert version_content(client, w, d["id"], n)["body"].count(" edit") == n - 1


@pytest.mark.parametrize("limit", ["0", "101", "x", "-1", "1.5", ""])
def test_version_list_limit_out_of_range_is_400(client, w, limit):
    d = create_item(client, w)
    assert_problem(list_page(client, w, d["id"], limit=limit), 400)


def test_version_list_limit_bounds_and_default(client, w):
    d = create_item(client, w)
    for n in range(1, 25):
        save(client, w, d["id"], n, {"title": f"t{n}"})
    page = assert_json(list_page(client, w, d["id"]), 200)
    assert len(page["versions"]) == 20 and page["next_cursor"], "default limit is 20"
    page = assert_json(list_page(client, w, d["id"], limit=1), 200)
    assert [v["number"] for v in page["versions"]] == [25] and page["next_cursor"]
    page = assert_json(list_page(client, w, d["id"], limit=100), 200)
    assert len(page["versions"]) == 25 and page["next_cursor"] is None


@pytest.fixture(scope="module")
def forty(client, w):
    """An item with 40 versions (saved through PUT with If-Match)."""
    d = create_item(client, w, body="v1")
    for n in range(1, 40):
        save(client, w, d["id"], n, {"body": f"v{n + 1}"})
    return d["id"]


def test_cursor_paging_walks_every_version_exactly_once(client, w, forty):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 7} if cursor is None else {"limit": 7, "cursor": cursor}
        page = assert_json(list_page(client, w, forty, **params), 200)
        pages += 1
        assert page["latest"] == 40
        assert 1 <= len(page["versions"]) <= 7
        seen.extend(v["number"] for v in page["versions"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 20, "the cursor never ends"
    assert pages == 6, f"40 versions at 7 a page are 6 pages, got {pages}"
    assert seen == list(range(40, 0, -1)), "every version once, newest first"


def test_cursor_altered_by_one_character_is_400(client, w, forty):
    cursor = assert_json(list_page(client, w, forty, limit=7), 200)["next_cursor"]
    assert cursor
    for i in (0, len(cursor) // 3, len(cursor) // 2, len(cursor) - 1):
        ch = cursor[i]
        swapped = "A" if ch != "A" else "B"
        bad = cursor[:i] + swapped + cursor[i + 1:]
        assert_problem(list_page(client, w, forty, limit=7, cursor=bad), 400)
    assert_problem(list_page(client, w, forty, limit=7, cursor=cursor[:-1]), 400)
    assert_problem(list_page(client, w, forty, limit=7, cursor="garbage"), 400)
    # the untouched cursor still works
    assert_json(list_page(client, w, forty, limit=7, cursor=cursor), 200)


def test_cursor_of_another_item_is_400(client, w, forty):
    cursor = assert_json(list_page(client, w, forty, limit=7), 200)["next_cursor"]
    other = create_item(client, w)
    for n in range(1, 10):
        save(client, w, other["id"], n, {"title": f"o{n}"})
    assert_problem(list_page(client, w, other["id"], limit=7, cursor=cursor), 400)


def test_version_list_of_an_unknown_item_is_404(client, w):
    assert_problem(list_page(client, w, 987654321), 404)
    assert_problem(list_page(client, w, "abc"), 400)


def test_version_list_of_another_sites_item_is_404(client, tokens):
    theirs = create_item(client, tokens["other_write"], site="other")
    assert_problem(list_page(client, tokens["write"], theirs["id"]), 404)
    assert_problem(get_version(client, tokens["write"], theirs["id"], 1), 404)
    assert_problem(diff(client, tokens["write"], theirs["id"], 1, 1), 404)
    # and its own site sees it
    r = client.get(f"/v1/other/content/{theirs['id']}/versions", token=tokens["other_write"])
    assert [v["number"] for v in assert_json(r, 200)["versions"]] == [1]


def test_history_reads_need_a_token_of_the_site_any_role(client, tokens):
    d = create_item(client, tokens["write"])
    save(client, tokens["write"], d["id"], 1, {"title": "two"})
    reads = [f"{item_path(d['id'])}/versions", f"{item_path(d['id'])}/versions/1",
             f"{item_path(d['id'])}/diff?from=1&to=2"]
    for path in reads:
        resp = client.get(path)
        assert_problem(resp, 401)
        assert resp.headers.get("www-authenticate", "").lower().startswith("bearer"), resp.headers
        assert_problem(client.get(path, token="not-a-token"), 401)
        assert_problem(client.get(path, token=tokens["other_read"]), 401)
        for role in ("read", "write", "admin"):
            assert_status(client.get(path, token=tokens[role]), 200)


# ---- one version ------------------------------------------------------------------------------

def test_version_content_is_what_was_saved_at_that_version(client, w):
    cat1, cat2 = new_category(client, w), new_category(client, w)
    d = create_item(client, w, slug=uniq("first"), title="First", excerpt="ex one",
                    body="body one\nline two", fields={"n": 1, "deep": {"a": [1, "b"]}},
                    category=cat1, tags=["alpha", "beta"])
    expected = {1: content_of(d)}
    d2 = save(client, w, d["id"], 1, {"title": "Second", "tags": ["gamma"], "category": cat2})
    expected[2] = content_of(d2)
    d3 = save(client, w, d["id"], 2, {"slug": uniq("renamed"), "excerpt": "ex three",
                                      "body": "body three", "fields": {"n": 3}, "category": None})
    expected[3] = content_of(d3)
    d4 = save(client, w, d["id"], 3, {"tags": [], "title": "Grüße 東京 🚀"})
    expected[4] = content_of(d4)
    assert expected[1]["category"] == cat1 and expected[3]["category"] is None
    for n, want in expected.items():
        resp = get_version(client, w, d["id"], n)
        v = assert_json(resp, 200)
        assert set(v["content"]) == CONTENT_KEYS, sorted(v["content"])
        assert v["content"] == want, f"version {n}"
        assert v["item"] == d["id"] and v["site"] == "main" and v["number"] == n
        assert v["kind"] == "draft" and v["author"] == "writer"
        assert_timestamp(v["created_at"], "created_at")
        assert HEX64.match(v["hash"])
    metas = {m["number"]: m for m in all_versions(client, w, d["id"])}
    for n in expected:
        v = assert_json(get_version(client, w, d["id"], n), 200)
        for key in ("kind", "author", "created_at", "size", "hash"):
            assert v[key] == metas[n][key], f"version {n}: {key} differs between GET and the list"


def test_version_has_every_documented_member(client, w):
    """docs/api.md's Version: immutable, so `published` is not in it (the
    version list says which version is published)."""
    d = create_item(client, w)
    save(client, w, d["id"], 1, {"title": "two"})
    publish(client, w, d["id"], version=2)
    v1 = assert_json(get_version(client, w, d["id"], 1), 200)
    assert set(v1) == VERSION_KEYS, f"members: {sorted(v1)}; documented: {sorted(VERSION_KEYS)}"
    listed = assert_json(client.get(f"/v1/main/content/{d['id']}/versions", token=w), 200)["versions"]
    assert [(v["number"], v["published"]) for v in listed] == [(2, True), (1, False)]


def test_version_etag_is_strong_and_the_version_immutable(client, w):
    d = create_item(client, w)
    save(client, w, d["id"], 1, {"title": "two"})
    resp = get_version(client, w, d["id"], 2)
    assert_json(resp, 200)
    assert resp.headers.get("cache-control") == IMMUTABLE
    etag = resp.headers.get("etag")
    assert etag and etag.startswith('"') and etag.endswith('"'), f"a strong ETag: {etag!r}"
    other = assert_json(get_version(client, w, d["id"], 1), 200)
    assert get_version(client, w, d["id"], 1).headers.get("etag") != etag, "two versions, two ETags"
    assert other["number"] == 1


def test_version_if_none_match_is_304_without_a_body(client, w):
    d = create_item(client, w)
    first = get_version(client, w, d["id"], 1)
    assert_json(first, 200)
    etag = first.headers.get("etag")
    assert etag and not etag.startswith("W/"), f"a strong ETag: {etag!r}"
    assert first.headers.get("cache-control") == IMMUTABLE
    again = get_version(client, w, d["id"], 1, headers={"If-None-Match": etag})
    assert again.status == 304, again
    assert again.body == b""
    assert again.headers.get("etag") == etag
    other = get_version(client, w, d["id"], 1, headers={"If-None-Match": '"nope"'})
    assert other.status == 200 and other.body == first.body


def test_a_version_is_byte_identical_after_more_saves_and_a_publish(client, w, server):
    d = create_item(client, w, body="original body")
    save(client, w, d["id"], 1, {"body": "second body"})
    before = get_version(client, w, d["id"], 2)
    assert_json(before, 200)
    for n in range(2, 6):
        save(client, w, d["id"], n, {"body": f"body {n + 1}", "title": f"t{n + 1}"})
    publish(client, w, d["id"])  # version 6, not 2
    fresh = server.client(token=w)  # another connection
    after = get_version(fresh, w, d["id"], 2)
    assert_json(after, 200)
    assert after.body == before.body
    assert after.headers.get("etag") == before.headers.get("etag")


@pytest.mark.parametrize("n", ["0", "abc", "-1", "1x", "99999999999999999999999"])
def test_version_number_not_a_positive_integer_is_400(client, w, n):
    d = create_item(client, w)
    assert_problem(get_version(client, w, d["id"], n), 400)


def test_version_beyond_the_latest_is_404(client, w):
    d = create_item(client, w)
    save(client, w, d["id"], 1, {"title": "two"})
    assert_problem(get_version(client, w, d["id"], 3), 404)
    assert_problem(get_version(client, w, d["id"], 1000), 404)
    assert_problem(get_version(client, w, 987654321, 1), 404)


def test_versions_are_gone_after_the_item_is_deleted_even_when_fetched_before(client, w):
    d = create_item(client, w, body="doomed")
    save(client, w, d["id"], 1, {"body": "doomed too"})
    for _ in range(2):  # the second read may come from a cache
        assert_json(get_version(client, w, d["id"], 1), 200)
        assert_json(get_version(client, w, d["id"], 2), 200)
        assert_json(diff(client, w, d["id"], 1, 2), 200)
    assert client.delete(item_path(d["id"]), token=w).status == 204
    assert_problem(get_version(client, w, d["id"], 1), 404)
    assert_problem(get_version(client, w, d["id"], 2), 404)
    assert_problem(diff(client, w, d["id"], 1, 2), 404)
    assert_problem(list_page(client, w, d["id"]), 404)
    assert_problem(get_autosave(client, w, d["id"]), 404)


def test_a_new_item_never_shows_a_deleted_items_cached_versions(client, w):
    """If the database reuses the id of a deleted item, its history must still
    be the new item's."""
    d = create_item(client, w, body="old item's body")
    assert_json(get_version(client, w, d["id"], 1), 200)
    assert_json(get_version(client, w, d["id"], 1), 200)
    assert client.delete(item_path(d["id"]), token=w).status == 204
    e = create_item(client, w, body="new item's body")
    v = assert_json(get_version(client, w, e["id"], 1), 200)
    assert v["content"] == content_of(e)


# ---- diff -----------------------------------------------------------------------------------

def test_diff_json_default_shape_and_fields_changed(client, w):
    d = create_item(client, w, title="Old title", body="same body\n")
    save(client, w, d["id"], 1, {"title": "New title"})
    resp = diff(client, w, d["id"], 1, 2)
    doc = assert_json(resp, 200)
    assert set(doc) == DIFF_KEYS, sorted(doc)
    assert doc["item"] == d["id"] and doc["from"] == 1 and doc["to"] == 2
    assert doc["fields_changed"] == ["title"]
    assert doc["lines_added"] == 1 and doc["lines_removed"] == 1
    assert doc["fallback"] is False and isinstance(doc["words_incomplete"], bool)
    assert doc["context"] == 3
    lines = [line for h in doc["hunks"] for line in h["lines"]]
    assert [line["text"] for line in lines if line["op"] == "delete"] == ["title: Old title"]
    assert [line["text"] for line in lines if line["op"] == "insert"] == ["title: New title"]
    for h in doc["hunks"]:
        assert {"a_start", "a_count", "b_start", "b_count", "lines"} <= set(h)
    assert diff(client, w, d["id"], 1, 2, "json").body == resp.body


def test_diff_fields_changed_lists_exactly_the_changed_members(client, w):
    cat = new_category(client, w)
    d = create_item(client, w, body="b", tags=["t1"], excerpt="e")
    save(client, w, d["id"], 1, {"tags": ["t1", "t2"], "body": "b2"})
    save(client, w, d["id"], 2, {"category": cat, "fields": {"k": "v"}, "excerpt": "e2"})
    save(client, w, d["id"], 3, {"slug": uniq("moved")})
    save(client, w, d["id"], 4, {"body": "b2"})  # the same body again: nothing changed
    expect = {(1, 2): {"tags", "body"}, (2, 3): {"category", "fields", "excerpt"},
              (3, 4): {"slug"}, (4, 5): set(),
              (1, 4): {"tags", "body", "category", "fields", "excerpt", "slug"}}
    for (a, b), members in expect.items():
        doc = assert_json(diff(client, w, d["id"], a, b), 200)
        assert len(doc["fields_changed"]) == len(set(doc["fields_changed"]))
        assert set(doc["fields_changed"]) == members, f"{a}->{b}: {doc['fields_changed']}"
    doc = assert_json(diff(client, w, d["id"], 4, 5), 200)
    assert doc["hunks"] == [] and doc["lines_added"] == 0 and doc["lines_removed"] == 0


def test_diff_one_word_edit_is_refined_word_by_word(client, w):
    body = "first line stays\nthe quick brown fox jumps over the lazy dog\nlast line stays\n"
    d = create_item(client, w, body=body)
    save(client, w, d["id"], 1, {"body": body.replace("quick", "sluggish")})
    doc = assert_json(diff(client, w, d["id"], 1, 2), 200)
    assert doc["fields_changed"] == ["body"]
    assert doc["lines_added"] == 1 and doc["lines_removed"] == 1
    lines = [line for h in doc["hunks"] for line in h["lines"]]
    deleted = [line for line in lines if line["op"] == "delete"]
    inserted = [line for line in lines if line["op"] == "insert"]
    assert len(deleted) == 1 and len(inserted) == 1
    assert "words" in deleted[0] and "words" in inserted[0], "a refined replacement has word segments"
    for line in lines:
        assert_words_concatenate(line)
    assert [s["text"].strip() for s in deleted[0]["words"] if s["op"] == "delete"] == ["quick"]
    assert [s["text"].strip() for s in inserted[0]["words"] if s["op"] == "insert"] == ["sluggish"]
    assert "brown fox" in "".join(s["text"] for s in inserted[0]["words"] if s["op"] == "equal")
    equal = [line["text"] for line in lines if line["op"] == "equal"]
    assert "first line stays" in equal and "last line stays" in equal


def test_diff_unified_is_text_plain_like_diff_u(client, w):
    body = "alpha\nbeta\nthe quick brown fox\ngamma\n"
    d = create_item(client, w, body=body)
    save(client, w, d["id"], 1, {"body": body.replace("quick", "sluggish")})
    resp = diff(client, w, d["id"], 1, 2, "unified")
    assert_status(resp, 200)
    assert resp.content_type == "text/plain", resp.headers.get("content-type")
    text = resp.text
    assert text.startswith("--- v1\n+++ v2\n"), text[:80]
    assert re.search(r"^@@ -\d+(,\d+)? \+\d+(,\d+)? @@", text, re.M), text
    minus = [x for x in text.split("\n")[2:] if x.startswith("-")]
    plus = [x for x in text.split("\n")[2:] if x.startswith("+")]
    assert minus == ["-the quick brown fox"] and plus == ["+the sluggish brown fox"], text
    assert resp.headers.get("cache-control") == IMMUTABLE
    rev = diff(client, w, d["id"], 2, 1, "unified").text
    assert rev.startswith("--- v2\n+++ v1\n"), rev[:80]


def test_diff_html_is_an_escaped_table_fragment(client, w):
    d = create_item(client, w, body="harmless\n")
    save(client, w, d["id"], 1, {"body": "harmless\n<script>alert('x')</script> & <b>bold</b>\n",
                                 "title": "<img src=x onerror=alert(1)>"})
    resp = diff(client, w, d["id"], 1, 2, "html")
    assert_status(resp, 200)
    assert resp.content_type == "text/html", resp.headers.get("content-type")
    text = resp.text
    assert '<table class="diff' in text
    assert "<script" not in text.lower() and "<img" not in text.lower() and "<b>" not in text
    assert "&lt;script&gt;" in text and "&lt;img" in text
    assert resp.headers.get("cache-control") == IMMUTABLE


def test_diff_reverse_swaps_added_and_removed(client, w):
    d = create_item(client, w, body="a\nb\nc\nd\n")
    save(client, w, d["id"], 1, {"body": "a\nB\nc\nnew1\nnew2\nd\nnew3\n"})
    fwd = assert_json(diff(client, w, d["id"], 1, 2), 200)
    rev = assert_json(diff(client, w, d["id"], 2, 1), 200)
    assert rev["from"] == 2 and rev["to"] == 1
    assert fwd["lines_added"] == rev["lines_removed"] == 4
    assert fwd["lines_removed"] == rev["lines_added"] == 1
    assert set(fwd["fields_changed"]) == set(rev["fields_changed"]) == {"body"}


def test_diff_of_a_version_with_itself_has_no_hunks(client, w):
    d = create_item(client, w, body="x\ny\n")
    save(client, w, d["id"], 1, {"body": "x\nz\n"})
    doc = assert_json(diff(client, w, d["id"], 2, 2), 200)
    assert doc["hunks"] == [] and doc["fields_changed"] == []
    assert doc["lines_added"] == 0 and doc["lines_removed"] == 0
    resp = diff(client, w, d["id"], 1, 1, "unified")
    assert_status(resp, 200)
    assert resp.body == b"", f"diff -u prints nothing for equal texts: {resp.body[:200]!r}"


@pytest.mark.parametrize("query", [
    "", "from=1", "to=1", "from=0&to=1", "from=1&to=x", "from=-1&to=1", "from=1&to=1.0",
    "from=&to=1", "from=1&to=1&format=xml", "from=1&to=1&format=", "from=1&to=1&format=JSON",
])
def test_diff_bad_query_is_400(client, w, query):
    d = create_item(client, w)
    assert_problem(client.get(f"{item_path(d['id'])}/diff?{query}", token=w), 400)


def test_diff_of_an_unknown_version_or_item_is_404(client, w):
    d = create_item(client, w)
    save(client, w, d["id"], 1, {"title": "two"})
    assert_problem(diff(client, w, d["id"], 1, 3), 404)
    assert_problem(diff(client, w, d["id"], 9, 1), 404)
    assert_problem(diff(client, w, 987654321, 1, 2), 404)


@pytest.mark.parametrize("fmt", ["json", "unified", "html"])
def test_diff_etag_immutable_and_304(client, w, fmt):
    d = create_item(client, w, body="one\n")
    save(client, w, d["id"], 1, {"body": "two\n"})
    first = diff(client, w, d["id"], 1, 2, fmt)
    assert_status(first, 200)
    etag = first.headers.get("etag")
    assert etag and etag.startswith('"') and not etag.startswith("W/"), f"strong ETag: {etag!r}"
    assert first.headers.get("cache-control") == IMMUTABLE
    again = diff(client, w, d["id"], 1, 2, fmt, headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b"", again
    # the same diff later, after more saves, is the same document
    save(client, w, d["id"], 2, {"body": "three\n"})
    later = diff(client, w, d["id"], 1, 2, fmt)
    assert later.body == first.body and later.headers.get("etag") == etag
    other = diff(client, w, d["id"], 2, 1, fmt)
    assert other.headers.get("etag") != etag


def test_large_diff_is_fast_and_exact(client, w, strata_bin):
    a_body = article(700, seed=1, words_per_paragraph=12)
    rnd = random.Random(2)
    b_lines = []
    for i, line in enumerate(a_body.split("\n")[:-1]):
        roll = rnd.random()
        if roll < 0.15:
            b_lines.append(line.replace(" ", " changed ", 1))   # a word inserted
        elif roll < 0.22:
            continue                                             # a line deleted
        elif roll < 0.30:
            b_lines.append(f"inserted line {i}")                 # a line added
            b_lines.append(line)
        else:
            b_lines.append(line)
    b_body = "\n".join(b_lines) + "\n"
    assert len(a_body) > 45000 and len(b_body) > 45000
    d = create_item(client, w, body=a_body)
    v2 = save(client, w, d["id"], 1, {"body": b_body})
    limit = 3.0 if "asan" in str(strata_bin) else 1.0
    started = time.monotonic()
    resp = diff(client, w, d["id"], 1, 2)
    elapsed = time.monotonic() - started
    doc = assert_json(resp, 200)
    assert elapsed < limit, f"a diff of two 50 KB texts took {elapsed:.2f}s"
    assert isinstance(doc["fallback"], bool) and isinstance(doc["words_incomplete"], bool)
    assert doc["lines_added"] >= 100 and doc["lines_removed"] >= 100, "many changes"
    lines = [line for h in doc["hunks"] for line in h["lines"]]
    assert doc["lines_added"] == sum(1 for x in lines if x["op"] == "insert")
    assert doc["lines_removed"] == sum(1 for x in lines if x["op"] == "delete")
    a_text, b_text = snapshot_text(content_of(d)), snapshot_text(content_of(v2))
    assert apply_json_hunks(a_text, doc["hunks"]) == b_text, "the JSON hunks turn version 1 into version 2"
    if not doc["fallback"]:
        # minimal: no more changed lines than difflib's (not always minimal) script
        sm = difflib.SequenceMatcher(None, a_text.split("\n"), b_text.split("\n"), autojunk=False)
        dl_removed = sum(i2 - i1 for op, i1, i2, _, _ in sm.get_opcodes() if op in ("replace", "delete"))
        assert doc["lines_removed"] <= dl_removed
    for line in lines:
        assert_words_concatenate(line)
    started = time.monotonic()
    uni = diff(client, w, d["id"], 1, 2, "unified")
    assert_status(uni, 200)
    assert time.monotonic() - started < limit
    body_lines = uni.text.split("\n")
    assert sum(1 for x in body_lines[2:] if x.startswith("+")) == doc["lines_added"]
    assert sum(1 for x in body_lines[2:] if x.startswith("-")) == doc["lines_removed"]
    assert shutil.which("patch"), "patch(1) is a test dependency (scripts/deps.sh test)"
    with tempfile.TemporaryDirectory() as tmp:
        a_path, p_path, out_path = (os.path.join(tmp, n) for n in ("a.txt", "d.patch", "out.txt"))
        with open(a_path, "w") as f:
            f.write(a_text)
        with open(p_path, "wb") as f:
            f.write(uni.body)
        proc = subprocess.run(["patch", "-s", "-o", out_path, a_path, p_path],
                              stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        with open(out_path) as f:
            assert f.read() == b_text, "patch(1) with the unified diff turns version 1 into version 2"
    html = diff(client, w, d["id"], 1, 2, "html")
    assert_status(html, 200)
    assert '<table class="diff' in html.text


# ---- restore ------------------------------------------------------------------------------------

def test_restore_appends_a_restore_version_with_the_old_content(client, w):
    cat = new_category(client, w)
    d = create_item(client, w, title="Original", body="original body", tags=["keep"],
                    category=cat, fields={"a": 1})
    save(client, w, d["id"], 1, {"title": "Changed", "body": "changed", "tags": [], "category": None})
    save(client, w, d["id"], 2, {"fields": {"b": 2}, "excerpt": "later"})
    resp = restore(client, w, d["id"], 1)
    got = assert_json(resp, 200)
    assert resp.headers.get("etag") == '"v4"'
    assert got["version"] == 4 and got["status"] == "draft" and got["id"] == d["id"]
    assert content_of(got) == content_of(d)
    v4 = assert_json(get_version(client, w, d["id"], 4), 200)
    v1 = assert_json(get_version(client, w, d["id"], 1), 200)
    assert v4["content"] == content_of(d)
    assert v4["kind"] == "restore" and v4["author"] == "writer"
    assert v4["hash"] == v1["hash"] and v4["size"] == v1["size"], "same content, same hash"
    metas = all_versions(client, w, d["id"])
    assert [(m["number"], m["kind"]) for m in metas] == [(4, "restore"), (3, "draft"), (2, "draft"), (1, "draft")]
    draft = client.get(f"{item_path(d['id'])}/draft", token=w)
    assert etag_version(draft) == 4 and content_of(assert_json(draft)) == content_of(d)


def test_restore_with_if_match(client, w):
    d = create_item(client, w, title="one")
    save(client, w, d["id"], 1, {"title": "two"})
    save(client, w, d["id"], 2, {"title": "three"})
    assert_problem(restore(client, w, d["id"], 1, if_match='"v2"'), 412)
    assert len(all_versions(client, w, d["id"])) == 3, "a refused restore writes nothing"
    resp = restore(client, w, d["id"], 1, if_match='"v3"')
    assert assert_json(resp, 200)["title"] == "one"
    assert resp.headers.get("etag") == '"v4"'
    assert_problem(restore(client, w, d["id"], 2, if_match='"v3"'), 412)


def test_restore_of_an_unknown_version_or_item_is_404(client, w):
    d = create_item(client, w)
    assert_problem(restore(client, w, d["id"], 2), 404)
    assert_problem(restore(client, w, 987654321, 1), 404)
    assert_problem(restore(client, w, d["id"], "zero"), 400)
    assert len(all_versions(client, w, d["id"])) == 1


def test_restore_needs_a_write_token(client, tokens):
    d = create_item(client, tokens["write"])
    assert_problem(restore(client, tokens["read"], d["id"], 1), 403)
    assert_problem(restore(client, None, d["id"], 1), 401)
    assert_problem(restore(client, tokens["other_write"], d["id"], 1), 401)
    assert len(all_versions(client, tokens["write"], d["id"])) == 1
    assert_json(restore(client, tokens["admin"], d["id"], 1), 200)


def test_restore_does_not_change_the_published_item_until_publish(client, w):
    d = create_item(client, w, title="first public", body="first")
    save(client, w, d["id"], 1, {"title": "second public", "body": "second"})
    publish(client, w, d["id"])  # version 2
    public = assert_json(client.get(item_path(d["id"])), 200)
    assert public["title"] == "second public"
    got = assert_json(restore(client, w, d["id"], 1), 200)
    assert got["version"] == 3
    public = assert_json(client.get(item_path(d["id"])), 200)
    assert public["title"] == "second public" and public["body"] == "second"
    assert public["published_version"] == 2
    flags = {m["number"]: m["published"] for m in all_versions(client, w, d["id"])}
    assert flags == {3: False, 2: True, 1: False}
    publish(client, w, d["id"])
    public = assert_json(client.get(item_path(d["id"])), 200)
    assert public["title"] == "first public" and public["body"] == "first"
    assert public["published_version"] == 3


# ---- autosave ---------------------------------------------------------------------------------

def test_autosave_writes_the_slot_merged_over_the_base_version(client, w):
    d = create_item(client, w, title="base title", body="base body", tags=["t"], fields={"f": 1})
    save(client, w, d["id"], 1, {"excerpt": "saved excerpt"})
    resp = autosave(client, w, d["id"], '"v2"', {"body": "typing…", "tags": ["t", "u"]})
    slot = assert_json(resp, 200)
    assert set(slot) == SLOT_KEYS, sorted(slot)
    assert slot["item"] == d["id"] and slot["site"] == "main" and slot["author"] == "writer"
    assert slot["base_version"] == 2
    assert_timestamp(slot["saved_at"], "saved_at")
    want = dict(version_content(client, w, d["id"], 2), body="typing…", tags=["t", "u"])
    assert slot["content"] == want
    assert assert_json(get_autosave(client, w, d["id"]), 200) == slot
    draft = client.get(f"{item_path(d['id'])}/draft", token=w)
    assert etag_version(draft) == 2 and assert_json(draft)["body"] == "base body", "an autosave is not a save"


def test_autosave_never_grows_the_history_and_get_returns_the_last(client, w):
    d = create_item(client, w)
    save(client, w, d["id"], 1, {"title": "two"})
    before = all_versions(client, w, d["id"])
    for i in range(20):
        assert_json(autosave(client, w, d["id"], '"v2"', {"body": f"draft {i}"}), 200)
    assert all_versions(client, w, d["id"]) == before
    page = assert_json(list_page(client, w, d["id"]), 200)
    assert page["latest"] == 2
    slot = assert_json(get_autosave(client, w, d["id"]), 200)
    assert slot["content"]["body"] == "draft 19" and slot["base_version"] == 2


def test_autosave_if_match_star_means_the_latest(client, w):
    d = create_item(client, w)
    save(client, w, d["id"], 1, {"title": "two"})
    slot = assert_json(autosave(client, w, d["id"], "*", {"title": "star"}), 200)
    assert slot["base_version"] == 2 and slot["content"]["title"] == "star"


def test_autosave_without_if_match_is_428_and_stale_is_412(client, w):
    d = create_item(client, w)
    assert_json(autosave(client, w, d["id"], '"v1"', {"body": "kept"}), 200)
    assert_problem(autosave(client, w, d["id"], None, {"body": "blind"}), 428)
    save(client, w, d["id"], 1, {"title": "two"})  # clears the slot
    assert_json(autosave(client, w, d["id"], '"v2"', {"body": "kept 2"}), 200)
    assert_problem(autosave(client, w, d["id"], '"v1"', {"body": "stale"}), 412)
    assert_problem(autosave(client, w, d["id"], '"v3"', {"body": "future"}), 412)
    slot = assert_json(get_autosave(client, w, d["id"]), 200)
    assert slot["content"]["body"] == "kept 2" and slot["base_version"] == 2
    assert len(all_versions(client, w, d["id"])) == 2


def test_get_autosave_is_404_when_there_is_none(client, w):
    d = create_item(client, w)
    assert_problem(get_autosave(client, w, d["id"]), 404)
    assert_problem(get_autosave(client, w, 987654321), 404)
    assert_problem(autosave(client, w, 987654321, '"v1"', {"body": "x"}), 404)


def test_a_save_by_the_same_author_clears_the_slot(client, w, w2):
    d = create_item(client, w)
    assert_json(autosave(client, w, d["id"], '"v1"', {"body": "mine"}), 200)
    assert_json(autosave(client, w2, d["id"], '"v1"', {"body": "theirs"}), 200)
    save(client, w, d["id"], 1, {"body": "saved for real"})
    assert_problem(get_autosave(client, w, d["id"]), 404)
    theirs = assert_json(get_autosave(client, w2, d["id"]), 200)
    assert theirs["content"]["body"] == "theirs", "another author's slot is not cleared by my save"


def test_a_restore_by_the_same_author_clears_the_slot(client, w):
    d = create_item(client, w, body="one")
    save(client, w, d["id"], 1, {"body": "two"})
    assert_json(autosave(client, w, d["id"], '"v2"', {"body": "typing"}), 200)
    assert_json(restore(client, w, d["id"], 1), 200)
    assert_problem(get_autosave(client, w, d["id"]), 404)


def test_two_authors_have_separate_slots(client, w, w2):
    d = create_item(client, w, title="shared")
    a = assert_json(autosave(client, w, d["id"], '"v1"', {"body": "writer's words"}), 200)
    b = assert_json(autosave(client, w2, d["id"], '"v1"', {"body": "second's words"}), 200)
    assert a["author"] == "writer" and b["author"] == SECOND_WRITER
    for _ in range(3):
        assert_json(autosave(client, w, d["id"], '"v1"', {"body": "writer's words"}), 200)
    mine = assert_json(get_autosave(client, w, d["id"]), 200)
    theirs = assert_json(get_autosave(client, w2, d["id"]), 200)
    assert mine["author"] == "writer" and mine["content"]["body"] == "writer's words"
    assert theirs["author"] == SECOND_WRITER and theirs["content"]["body"] == "second's words"
    assert len(all_versions(client, w, d["id"])) == 1


def test_autosave_from_two_tabs_last_write_wins_and_a_save_makes_the_other_reload(server, w):
    tab1, tab2 = server.client(token=w), server.client(token=w)
    d = create_item(tab1, w, body="start")
    n = save(tab1, w, d["id"], 1, {"body": "base"})["version"]
    assert n == 2
    last = None
    for i in range(6):
        for name, tab in (("tab1", tab1), ("tab2", tab2)):
            last = {"body": f"{name} autosave {i}", "title": f"{name} {i}"}
            slot = assert_json(autosave(tab, w, d["id"], f'"v{n}"', last), 200)
            assert slot["base_version"] == n
    for tab in (tab1, tab2):
        slot = assert_json(get_autosave(tab, w, d["id"]), 200)
        assert slot["content"]["body"] == last["body"] and slot["content"]["title"] == last["title"]
    assert len(all_versions(tab1, w, d["id"])) == n, "autosaves add no version"
    saved = assert_json(tab1.put(item_path(d["id"]), json={"body": "tab1's final text", "title": "tab1 final"},
                                 headers={"If-Match": f'"v{n}"'}), 200)
    assert saved["version"] == n + 1
    assert_problem(autosave(tab2, w, d["id"], f'"v{n}"', {"body": "tab2 still typing"}), 412)
    v = assert_json(get_version(tab2, w, d["id"], n + 1), 200)
    assert v["content"]["body"] == "tab1's final text" and v["content"]["title"] == "tab1 final"
    draft = tab2.get(f"{item_path(d['id'])}/draft")
    assert etag_version(draft) == n + 1 and assert_json(draft)["body"] == "tab1's final text"
    # tab 2 reloads and autosaves on the new base
    assert_json(autosave(tab2, w, d["id"], f'"v{n + 1}"', {"body": "tab2 after reload"}), 200)


def test_autosave_needs_a_write_token(client, tokens):
    d = create_item(client, tokens["write"])
    assert_problem(autosave(client, tokens["read"], d["id"], '"v1"', {"body": "x"}), 403)
    assert_problem(autosave(client, None, d["id"], '"v1"', {"body": "x"}), 401)
    assert_problem(autosave(client, tokens["other_write"], d["id"], '"v1"', {"body": "x"}), 401)
    assert_problem(get_autosave(client, None, d["id"]), 401)
    assert_problem(get_autosave(client, tokens["other_write"], d["id"]), 401)


def test_autosave_bad_input(client, w):
    d = create_item(client, w)
    assert_json(autosave(client, w, d["id"], '"v1"', {"body": "good"}), 200)
    path = f"{item_path(d['id'])}/autosave"
    hdr = {"If-Match": '"v1"'}
    assert_problem(client.post(path, token=w, body=b'{"body": "unterminated', headers=hdr,
                               content_type="application/json"), 400)
    assert_problem(client.post(path, token=w, body=b'[1,2]', headers=hdr, content_type="application/json"),
                   (400, 422))
    assert_problem(client.post(path, token=w, json={"bdy": "typo"}, headers=hdr), 422, mentions="bdy")
    assert_problem(client.post(path, token=w, json={"title": 5}, headers=hdr), 422)
    assert_problem(client.post(path, token=w, json={"slug": "Not A Slug"}, headers=hdr), 422)
    assert_problem(client.post(path, token=w, body=b'{"body": "x"}', headers=hdr, content_type="text/plain"), 415)
    slot = assert_json(get_autosave(client, w, d["id"]), 200)
    assert slot["content"]["body"] == "good", "refused autosaves change nothing"
    assert len(all_versions(client, w, d["id"])) == 1


# ---- two editors racing --------------------------------------------------------------------------

def test_two_editors_racing_lose_nothing(server, w, w2):
    setup = server.client(token=w)
    d = create_item(setup, w, body="")
    editors = {"A": server.client(token=w), "B": server.client(token=w2)}
    base_version, base_body = 1, ""
    saved = {1: ""}  # version -> body, from every 200
    rounds = 20
    for rnd in range(rounds):
        barrier = threading.Barrier(2, timeout=10)
        results = {}

        def edit(name, rnd=rnd, barrier=barrier, base_version=base_version, base_body=base_body):
            c = editors[name]
            body = base_body + f"round {rnd} by {name}\n"
            barrier.wait()
            results[name] = c.put(item_path(d["id"]), json={"body": body},
                                  headers={"If-Match": f'"v{base_version}"'})

        threads = [threading.Thread(target=edit, args=(name,)) for name in editors]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert not any(t.is_alive() for t in threads), "a racing PUT did not answer"
        statuses = sorted(resp.status for resp in results.values())
        assert statuses == [200, 412], f"round {rnd}: {[(n, r.status, r.body[:200]) for n, r in results.items()]}"
        winner = next(n for n, resp in results.items() if resp.status == 200)
        loser = "B" if winner == "A" else "A"
        won = assert_json(results[winner])
        assert won["version"] == base_version + 1
        saved[won["version"]] = won["body"]
        assert_problem(results[loser], 412)
        # the loser reloads and saves its edit on top
        c = editors[loser]
        draft_resp = c.get(f"{item_path(d['id'])}/draft")
        draft = assert_json(draft_resp)
        assert etag_version(draft_resp) == base_version + 1
        body = draft["body"] + f"round {rnd} by {loser}\n"
        again = assert_json(c.put(item_path(d["id"]), json={"body": body},
                                  headers={"If-Match": draft_resp.headers["etag"]}), 200)
        assert again["version"] == base_version + 2
        saved[again["version"]] = again["body"]
        base_version, base_body = again["version"], again["body"]
    metas = all_versions(setup, w, d["id"])
    assert [m["number"] for m in metas] == list(range(2 * rounds + 1, 0, -1)), "contiguous version numbers"
    for number, body in saved.items():
        assert version_content(setup, w, d["id"], number)["body"] == body, f"version {number}"
    final = version_content(setup, w, d["id"], 2 * rounds + 1)["body"].splitlines()
    for rnd in range(rounds):
        for name in editors:
            assert final.count(f"round {rnd} by {name}") == 1, f"round {rnd}: {name}'s edit lost or doubled"
    assert len(final) == 2 * rounds


def test_eight_editors_racing_if_match_one_wins_each_round(server, w):
    """8 editors save one item at once, If-Match the same version, 20
    rounds: exactly one 200 a round, seven 412, and the history holds every
    winner's edit in order (on PostgreSQL the savers run in parallel: no
    single writer to lean on)."""
    editors, rounds = 8, 20
    setup = server.client(token=w)
    d = create_item(setup, w, body="")
    clients = [server.client(token=w) for _ in range(editors)]
    version, won_bodies = 1, {}
    for rnd in range(rounds):
        barrier = threading.Barrier(editors, timeout=10)
        results = [None] * editors

        def edit(k, rnd=rnd, barrier=barrier, version=version):
            barrier.wait()
            results[k] = clients[k].put(item_path(d["id"]), json={"body": f"round {rnd} by {k}\n"},
                                        headers={"If-Match": f'"v{version}"'})

        threads = [threading.Thread(target=edit, args=(k,)) for k in range(editors)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert not any(t.is_alive() for t in threads), "a racing PUT did not answer"
        statuses = sorted(r.status for r in results)
        assert statuses == [200] + [412] * (editors - 1), f"round {rnd}: {[(r.status, r.body[:120]) for r in results]}"
        won = assert_json(next(r for r in results if r.status == 200))
        assert won["version"] == version + 1
        version = won["version"]
        won_bodies[version] = won["body"]
    metas = all_versions(setup, w, d["id"])
    assert [m["number"] for m in metas] == list(range(rounds + 1, 0, -1)), "contiguous version numbers"
    for number, body in won_bodies.items():
        assert version_content(setup, w, d["id"], number)["body"] == body, f"version {number}"


def test_autosaves_if_match_star_are_never_412_while_saves_with_star_race_them(server_factory, w):
    """If-Match: * means whatever is current (RFC 9110): an autosave with
    it, racing two editors who save the same item with * too, is based on
    the latest draft at the moment it is written, never refused as stale."""
    server = server_factory(args=["--limits-write-rps", "0"])  # one token's saves: its rate limit is not tested here
    d = create_item(server.client(token=w), w, body="")
    stop = time.monotonic() + 4
    results = {"save": [], "autosave": []}

    def saver(k):
        c = server.client(token=w)
        n = 0
        while time.monotonic() < stop:
            n += 1
            resp = c.put(item_path(d["id"]), json={"body": f"save {k}.{n}"}, headers={"If-Match": "*"})
            results["save"].append((resp.status, resp.body[:200]))

    def autosaver():
        c = server.client(token=w)
        n = 0
        while time.monotonic() < stop:
            n += 1
            resp = autosave(c, w, d["id"], "*", {"body": f"typing {n}"})
            results["autosave"].append((resp.status, resp.body[:200]))

    threads = [threading.Thread(target=saver, args=(k,)) for k in range(2)] + [threading.Thread(target=autosaver)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert not any(t.is_alive() for t in threads), "a racing request did not answer"
    failed = [r for r in results["save"] if r[0] != 200]
    assert not failed, f"{len(failed)} of {len(results['save'])} saves: {failed[:3]}"
    refused = [r for r in results["autosave"] if r[0] != 200]
    assert len(results["autosave"]) > 20 and not refused, f"{len(refused)} of {len(results['autosave'])}: {refused[:3]}"


# ---- wrong methods -------------------------------------------------------------------------------

@pytest.mark.parametrize("method,suffix,allowed", [
    ("POST", "/versions", {"GET"}),
    ("DELETE", "/versions/1", {"GET"}),
    ("PUT", "/versions/1", {"GET"}),
    ("GET", "/versions/1/restore", {"POST"}),
    ("POST", "/diff?from=1&to=1", {"GET"}),
    ("DELETE", "/autosave", {"GET", "POST"}),
    ("PUT", "/autosave", {"GET", "POST"}),
])
def test_wrong_method_on_a_history_route_is_405_with_allow(client, w, method, suffix, allowed):
    d = create_item(client, w)
    resp = client.request(method, item_path(d["id"]) + suffix, token=w, json={})
    assert_problem(resp, 405)
    allow = {m.strip().upper() for m in resp.headers.get("allow", "").split(",") if m.strip()}
    assert allowed <= allow, f"Allow should list {allowed}: {resp.headers.get('allow')!r}"
    assert len(all_versions(client, w, d["id"])) == 1


# ---- the OpenAPI document ----------------------------------------------------------------------------

def test_openapi_document_describes_the_history_routes(client):
    """docs/api.md: docs/openapi.yaml (served at /openapi.yaml) is the
    machine-readable version of this contract."""
    resp = client.get("/openapi.yaml")
    assert_status(resp, 200)
    text = resp.text
    for path in (r"/versions", r"/versions/\{[A-Za-z_]+\}", r"/versions/\{[A-Za-z_]+\}/restore",
                 r"/diff", r"/autosave"):
        pattern = r"^  /v1/\{site\}/content/\{id\}" + path + r":\s*$"
        assert re.search(pattern, text, re.M), f"/openapi.yaml lacks {pattern}"


# ---- the keyframe interval setting ----------------------------------------------------------------

def test_keyframe_interval_setting_takes_effect(server_factory, fresh_deployment):
    """history.keyframe_interval (--history-keyframe-interval): every Nth
    version is stored self-contained. With 4, versions 1, 5 and 9 of a long
    article cost about what the article compresses to alone; the others are
    small deltas (seen through stored_bytes)."""
    srv = server_factory(args=["--history-keyframe-interval", "4"])
    w = fresh_deployment.tokens["write"]
    c = srv.client(token=w)
    body = article(100, seed=11, words_per_paragraph=25)
    d = create_item(c, w, body=body)
    lines = body.split("\n")
    for n in range(1, 10):
        lines[n * 7] += f" edit{n}"
        save(c, w, d["id"], n, {"body": "\n".join(lines)})
    stored = {m["number"]: m["stored_bytes"] for m in all_versions(c, w, d["id"])}
    keyframes = {n: stored[n] for n in (1, 5, 9)}
    deltas = {n: b for n, b in stored.items() if n not in keyframes}
    assert min(keyframes.values()) > 4 * max(deltas.values()), (
        f"with a keyframe interval of 4, versions 1, 5, 9 are self-contained: {stored}")


# ---- retention -----------------------------------------------------------------------------------

RETENTION_FLAGS = ["--history-draft-max-age-s", "1", "--history-keep-latest", "3",
                   "--history-keyframe-interval", "4", "--history-autosave-max-age-s", "1",
                   "--jobs-schedule-retention", "@every 1s"]


def test_retention_removes_old_unpublished_versions_and_keeps_the_rest_readable(server_factory, fresh_deployment):
    srv = server_factory(args=RETENTION_FLAGS)
    w = fresh_deployment.tokens["write"]
    c = srv.client(token=w)
    d = create_item(c, w, title="v1", body="body 1\n")
    for n in range(1, 11):
        save(c, w, d["id"], n, {"title": f"v{n + 1}", "body": f"body {n + 1}\nsecond line\n"})
    publish(c, w, d["id"], version=5)
    # 11 versions; keep the latest 3 (9, 10, 11) and the published one (5)
    original = {}
    for n in range(1, 12):
        resp = get_version(c, w, d["id"], n)  # (also fills any cache of versions)
        original[n] = (resp.body, assert_json(resp)["hash"], assert_json(resp)["content"])
    slotted = create_item(c, w)
    assert_json(autosave(c, w, slotted["id"], '"v1"', {"body": "forgotten"}), 200)
    public_before = assert_json(c.get(item_path(d["id"]), token=None), 200)

    # retention runs every second and each run removes what is older than a
    # second at that moment: the versions can go in one run and the autosave,
    # written after them, in the next, so the test waits for both
    expected = [11, 10, 9, 5]
    deadline = time.monotonic() + 8.0
    listed = slot_status = None
    while time.monotonic() < deadline:
        listed = [m["number"] for m in all_versions(c, w, d["id"])]
        slot_status = get_autosave(c, w, slotted["id"]).status
        if listed == expected and slot_status == 404:
            break
        time.sleep(0.25)
    assert listed == expected, f"after retention the list should be {expected}, got {listed}"
    assert slot_status == 404, "retention should have removed the old autosave slot"
    page = assert_json(list_page(c, w, d["id"]), 200)
    assert page["latest"] == 11
    assert {m["number"]: m["published"] for m in page["versions"]} == {11: False, 10: False, 9: False, 5: True}
    for n in expected:
        v = assert_json(get_version(c, w, d["id"], n), 200)
        assert v["hash"] == original[n][1] and v["content"] == original[n][2], f"version {n} changed"
    for n in set(range(1, 12)) - set(expected):
        p = assert_problem(get_version(c, w, d["id"], n), 404)
        assert "retention" in p["detail"], f"version {n}: the detail should say retention removed it: {p}"
        assert_problem(diff(c, w, d["id"], n, 11), 404)
    public_after = assert_json(c.get(item_path(d["id"]), token=None), 200)
    assert public_after["title"] == public_before["title"] == "v5"
    # the old autosave slot went too, with a problem document
    assert_problem(get_autosave(c, w, slotted["id"]), 404)
    # saving goes on, and the diff to the previous version is right
    v12 = save(c, w, d["id"], 11, {"body": "body 12\nsecond line\n"})
    assert v12["version"] == 12 and v12["title"] == "v11"
    doc = assert_json(diff(c, w, d["id"], 11, 12), 200)
    assert doc["fields_changed"] == ["body"]
    assert doc["lines_added"] == 1 and doc["lines_removed"] == 1
    changed = [(x["op"], x["text"]) for h in doc["hunks"] for x in h["lines"] if x["op"] != "equal"]
    assert changed == [("delete", "body 11"), ("insert", "body 12")]
    for n in (9, 10, 11, 12):
        assert_json(get_version(c, w, d["id"], n), 200)
    assert_json(diff(c, w, d["id"], 5, 12), 200)


# ---- background jobs of history ------------------------------------------------------------------

def wait_for_log(srv, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in srv.log_records() if predicate(r)]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"within {timeout}s: {what}\n{srv.tail()}")


def test_the_diff_to_the_previous_version_is_computed_on_save(server_factory, fresh_deployment):
    """An event job: each save queues the diff to the previous version, so
    the editor's first look at it is already a hit."""
    srv = server_factory(args=["--log-level", "debug"])
    w = fresh_deployment.tokens["write"]
    c = srv.client(token=w)
    d = create_item(c, w, body="one\ntwo\n")
    save(c, w, d["id"], 1, {"body": "one\nthree\n"})
    wait_for_log(srv, lambda r: r.get("msg") == "job done" and r.get("kind") == "diff", 10,
                 "the diff job ran")
    first = diff(c, w, d["id"], 1, 2)
    doc = assert_json(first, 200)
    assert first.headers.get("x-history-cache") == "hit", "computed by the job, not by this request"
    assert doc["lines_added"] == 1 and doc["lines_removed"] == 1
    other = diff(c, w, d["id"], 2, 1)
    assert other.headers.get("x-history-cache") == "miss", "only the diff to the previous version is precomputed"


def test_versions_stored_before_compression_are_compressed_at_start(server_factory, fresh_deployment):
    """The "compress" job: rows an older binary wrote as plain JSON
    (encoding 0) are rewritten compressed when a server starts, and read
    back the same."""
    import hashlib
    import json as jsonlib
    srv = server_factory()
    w = fresh_deployment.tokens["write"]
    c = srv.client(token=w)
    body = article(60, seed=5, words_per_paragraph=30)
    d = create_item(c, w, body=body)
    contents = {1: assert_json(get_version(c, w, d["id"], 1))["content"]}
    for n in range(2, 6):
        body = body.replace("\n", f" legacy{n}\n", 1)
        contents[n] = dict(contents[1], body=body)
    srv.stop()
    rows = []
    for n in range(2, 6):
        text = jsonlib.dumps({k: contents[n][k] for k in
                              ("slug", "title", "excerpt", "body", "fields", "category", "tags")},
                             separators=(",", ":"), ensure_ascii=False).encode()
        rows.append(("INSERT INTO versions(item_id, number, kind, author, created_at, size, hash, encoding, data)"
                     " VALUES (?, ?, 'draft', 'writer', 1, ?, ?, 0, ?)",
                     (d["id"], n, len(text), hashlib.sha256(text).digest(), text)))
    rows.append(("UPDATE items SET draft_version = 5 WHERE id = ?", (d["id"],)))
    db_run(fresh_deployment.db, rows)
    srv = server_factory(args=["--log-level", "debug"])
    c = srv.client(token=w)
    wait_for_log(srv, lambda r: r.get("msg") == "job done" and r.get("kind") == "compress", 10,
                 "the compress job ran")
    left = db_rows(fresh_deployment.db, "SELECT count(*) FROM versions WHERE encoding = 0")[0][0]
    sizes = db_rows(fresh_deployment.db, "SELECT number, size, length(data) FROM versions WHERE item_id = ? "
                    "ORDER BY number", (d["id"],))
    assert left == 0, "every plain row was rewritten"
    assert all(stored < size for _, size, stored in sizes), sizes
    for n in range(1, 6):
        assert assert_json(get_version(c, w, d["id"], n))["content"] == contents[n], f"version {n}"
