"""Preview links: POST /v1/{site}/content/{id}/previews makes a signed,
expiring link to one version; GET /preview/{token} shows that version as a
clean HTML page (or the version JSON); DELETE /v1/{site}/previews/{token}
revokes it. An altered token is refused, an expired or revoked one is
refused on the very next request, and nothing about a link may be cached.

Token layout (src/content/previews.c), before base64url:
format(1) site(8) item(8) version(8) expires_at(8) nonce(16) mac(32)."""

import base64
import datetime
import os
import re
import time

import pytest

from strata_support import (
    assert_json, assert_problem, assert_timestamp, create_item, publish, save, uniq,
)

TOKEN_BYTES = 81
TOKEN_TEXT_LEN = 108
# Byte offsets inside the decoded token, one or more per field.
TAMPER_OFFSETS = {
    "format": [0],
    "site": [1, 8],
    "item": [9, 16],
    "version": [17, 24],
    "expiry": [25, 30, 32],
    "nonce": [33, 40, 48],
    "mac": [49, 64, 80],
}
VERSION_KEYS = {"item", "site", "number", "kind", "author", "created_at", "size", "hash",
                "published", "content"}
CONTENT_KEYS = {"slug", "title", "excerpt", "body", "fields", "category", "tags"}


@pytest.fixture(scope="module")
def w(tokens):
    return tokens["write"]


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(raw):
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def make_preview(client, token, item_id, body=None, *, site="main"):
    kw = {"json": body} if body is not None else {}
    r = client.post(f"/v1/{site}/content/{item_id}/previews", token=token, **kw)
    return assert_json(r, 201)


def view(client, link, *, accept=None):
    headers = {"Accept": accept} if accept else None
    return client.get(link["url"], headers=headers)


def parse_time(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def assert_private(resp):
    """What every answer of GET /preview/… carries, errors included."""
    assert resp.headers.get("cache-control") == "private, no-store", resp.headers
    assert resp.headers.get("x-robots-tag") == "noindex", resp.headers
    assert resp.headers.get("referrer-policy") == "no-referrer", resp.headers
    assert "cache-status" not in resp.headers or "hit" not in resp.headers["cache-status"]


def html_of(resp):
    assert resp.status == 200, resp
    assert resp.content_type == "text/html", resp.headers
    assert_private(resp)
    csp = resp.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "style-src 'unsafe-inline'" in csp, csp
    return resp.text


def version_of(resp):
    doc = assert_json(resp, 200)
    assert_private(resp)
    return doc


# ---- making a link ----------------------------------------------------------------------

def test_a_link_defaults_to_the_latest_version_and_an_hour(client, w):
    d = create_item(client, w, title="First")
    save(client, w, d["id"], 1, {"title": "Second"})
    before = time.time()
    r = client.post(f"/v1/main/content/{d['id']}/previews", token=w)
    link = assert_json(r, 201)
    assert set(link) == {"token", "url", "expires_at", "version"}, link
    assert link["version"] == 2
    assert re.fullmatch(r"[A-Za-z0-9_-]{%d}" % TOKEN_TEXT_LEN, link["token"]), link["token"]
    assert link["url"] == "/preview/" + link["token"]
    assert_timestamp(link["expires_at"], "expires_at")
    expires = parse_time(link["expires_at"])
    assert before + 3600 - 5 <= expires <= time.time() + 3600 + 5, link
    assert r.headers.get("cache-control") == "private, no-store", "the answer holds a credential"
    assert "Second" in html_of(view(client, link))


def test_a_link_to_a_chosen_version_with_a_ttl(client, w):
    d = create_item(client, w, title="Old title")
    save(client, w, d["id"], 1, {"title": "New title"})
    link = make_preview(client, w, d["id"], {"version": 1, "ttl": 120})
    assert link["version"] == 1
    assert parse_time(link["expires_at"]) <= time.time() + 125
    page = html_of(view(client, link))
    assert "Old title" in page and "New title" not in page


def test_the_longest_ttl_is_accepted(client, w):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"], {"ttl": 2592000})
    assert parse_time(link["expires_at"]) > time.time() + 2592000 - 60


def test_two_links_to_one_version_are_distinct(client, w):
    d = create_item(client, w)
    a = make_preview(client, w, d["id"])
    b = make_preview(client, w, d["id"])
    assert a["token"] != b["token"]


def test_an_unknown_version_or_item_is_404(client, w, tokens):
    d = create_item(client, w)
    r = client.post(f"/v1/main/content/{d['id']}/previews", token=w, json={"version": 2})
    assert_problem(r, 404, mentions="version 2")
    r = client.post(f"/v1/main/content/{d['id']}/previews", token=w, json={"version": 2 ** 62})
    assert_problem(r, 404)
    assert_problem(client.post("/v1/main/content/999999999/previews", token=w), 404)
    foreign = create_item(client, tokens["other_write"], site="other")
    assert_problem(client.post(f"/v1/main/content/{foreign['id']}/previews", token=w), 404)
    assert_problem(client.post(f"/v1/nosuchsite/content/{d['id']}/previews", token=w), 404)


@pytest.mark.parametrize("body, field", [
    ({"ttl": 0}, "ttl"),
    ({"ttl": -5}, "ttl"),
    ({"ttl": 2592001}, "ttl"),
    ({"ttl": "60"}, "ttl"),
    ({"ttl": 1.5}, "ttl"),
    ({"ttl": None}, "ttl"),
    ({"version": 0}, "version"),
    ({"version": -1}, "version"),
    ({"version": "1"}, "version"),
    ({"version": 1.0}, "version"),
    ({"version": True}, "version"),
    ({"expires": 60}, "expires"),
    ({"version": 1, "Ttl": 60}, "Ttl"),
])
def test_a_bad_body_is_422_naming_the_field(client, w, body, field):
    d = create_item(client, w)
    r = client.post(f"/v1/main/content/{d['id']}/previews", token=w, json=body)
    assert_problem(r, 422, mentions=field)


def test_a_body_that_is_not_an_object_or_not_json_is_refused(client, w):
    d = create_item(client, w)
    path = f"/v1/main/content/{d['id']}/previews"
    assert_problem(client.post(path, token=w, json=[1]), 422)
    assert_problem(client.post(path, token=w, body="{", content_type="application/json"), 400)
    assert_problem(client.post(path, token=w, body="ttl=5", content_type="text/plain"), 415)


def test_making_a_link_needs_a_write_token_of_the_site(client, w, tokens):
    d = create_item(client, w)
    path = f"/v1/main/content/{d['id']}/previews"
    r = client.post(path)
    assert_problem(r, 401)
    assert "bearer" in r.headers.get("www-authenticate", "").lower()
    assert_problem(client.post(path, token="st_" + "x" * 43), 401)
    assert_problem(client.post(path, token=tokens["read"]), 403)
    assert_problem(client.post(path, token=tokens["other_write"]), 401)
    assert_json(client.post(path, token=tokens["admin"]), 201)


# ---- the page and the JSON --------------------------------------------------------------

def test_the_page_shows_the_version_with_every_text_escaped(client, w):
    cat = uniq("cat")
    assert_json(client.post("/v1/main/categories", token=w, json={"slug": cat, "name": "C"}), 201)
    title = "Tom & Jerry <script>alert(\"x\")</script> it's"
    body = "First paragraph,\nsecond line <b>bold?</b>\n\n\nSecond & last paragraph.\r\n"
    d = create_item(client, w, title=title, excerpt="An <i>excerpt</i>", body=body,
                    category=cat, tags=["alpha", "beta"])
    page = html_of(view(client, make_preview(client, w, d["id"])))
    assert page.startswith("<!DOCTYPE html>"), page[:80]
    assert "<script" not in page.lower(), "no script at all may reach the page"
    escaped = "Tom &amp; Jerry &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; it&#39;s"
    assert f"<h1>{escaped}</h1>" in page
    assert f"<title>Preview: {escaped}</title>" in page
    assert '<meta name="robots" content="noindex">' in page
    assert f"Preview — version 1 of item {d['id']}, not published" in page
    assert "An &lt;i&gt;excerpt&lt;/i&gt;" in page
    assert "<p>First paragraph,<br>\nsecond line &lt;b&gt;bold?&lt;/b&gt;</p>" in page
    assert "<p>Second &amp; last paragraph.</p>" in page
    assert cat in page and ">alpha<" in page and ">beta<" in page
    assert "writer" in page, "the version's author"


def test_the_json_is_the_version(client, w, tokens):
    d = create_item(client, w, title="JSON title", body="json body", tags=["t1"],
                    fields={"k": [1, 2]})
    link = make_preview(client, w, d["id"])
    v = version_of(view(client, link, accept="application/json"))
    assert set(v) == VERSION_KEYS, v
    assert v["item"] == d["id"] and v["site"] == "main" and v["number"] == 1
    assert v["kind"] == "draft" and v["author"] == "writer"
    assert v["published"] is False
    assert_timestamp(v["created_at"], "created_at")
    assert re.fullmatch(r"[0-9a-f]{64}", v["hash"]), v["hash"]
    assert isinstance(v["size"], int) and v["size"] > 0
    assert set(v["content"]) == CONTENT_KEYS
    assert v["content"]["title"] == "JSON title" and v["content"]["body"] == "json body"
    assert v["content"]["tags"] == ["t1"] and v["content"]["fields"] == {"k": [1, 2]}
    # The history route shows the same version the same way (it leaves out
    # "published": its answer is immutable, and that flag is not).
    r = client.get(f"/v1/main/content/{d['id']}/versions/1", token=tokens["read"])
    if r.status == 200:
        assert r.json == {k: val for k, val in v.items() if k != "published"}


@pytest.mark.parametrize("accept, wants_json", [
    ("application/json", True),
    ("text/html, application/json;q=0.5", True),
    ("Application/JSON; charset=utf-8", True),
    ("application/json;q=0", False),
    ("application/json; q=0.0, text/html", False),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),
    ("application/jsonx", False),
    ("*/*", False),
])
def test_accept_chooses_json_or_html(client, w, accept, wants_json):
    d = create_item(client, w)
    r = view(client, make_preview(client, w, d["id"]), accept=accept)
    assert r.status == 200
    assert r.content_type == ("application/json" if wants_json else "text/html"), (accept, r.headers)


def test_a_page_is_never_kept(client, w):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"])
    for _ in range(3):
        r = view(client, link)
        html_of(r)
        assert "etag" not in r.headers and "surrogate-key" not in r.headers


def test_the_access_log_never_holds_a_token(client, w, server):
    """A link is a credential: the request log keeps the path only up to it."""
    d = create_item(client, w)
    link = make_preview(client, w, d["id"])
    token = link["token"]
    html_of(view(client, link))
    assert client.delete(f"/v1/main/previews/{token}", token=w).status == 204
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "/v1/main/previews/" not in server.log_text():
        time.sleep(0.05)
    text = server.log_text()
    assert "/preview/\u2026" in text or "/preview/…" in text, "the preview GET is logged, cut"
    assert "/v1/main/previews/" in text
    assert token not in text and token[:20] not in text


# ---- refused links ----------------------------------------------------------------------------

@pytest.mark.parametrize("field", sorted(TAMPER_OFFSETS))
def test_one_flipped_bit_anywhere_is_404(client, w, field):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"])
    raw = b64url_decode(link["token"])
    assert len(raw) == TOKEN_BYTES
    for offset in TAMPER_OFFSETS[field]:
        for bit in (0, 7):
            altered = bytearray(raw)
            altered[offset] ^= 1 << bit
            r = client.get("/preview/" + b64url_encode(bytes(altered)))
            assert_problem(r, 404)
            assert_private(r)
    assert "html" in html_of(view(client, link)), "the genuine link still works"


def test_an_altered_character_or_length_is_404(client, w):
    d = create_item(client, w)
    token = make_preview(client, w, d["id"])["token"]
    swap = {c: ("B" if c == "A" else "A") for c in set(token)}
    for i in (0, 1, 50, 106, 107):
        altered = token[:i] + swap[token[i]] + token[i + 1:]
        assert_problem(client.get("/preview/" + altered), 404)
    for altered in (token[:-1], token + "A", token + "AAAA", token[:-4], token.lower(),
                    token[:50] + "." + token[51:], token[:50] + "%00" + token[51:],
                    token[:50] + "+" + token[51:]):
        r = client.get("/preview/" + altered)
        assert_problem(r, 404)
        assert_private(r)


@pytest.mark.parametrize("text", ["x", "not-a-token", "A" * TOKEN_TEXT_LEN,
                                  b64url_encode(os.urandom(TOKEN_BYTES)), "%FF%FE", "a" * 4000])
def test_a_random_string_is_404(client, text):
    r = client.get("/preview/" + text)
    assert_problem(r, 404)
    assert_private(r)


def test_a_link_forged_with_another_secret_is_404(client, w):
    d = create_item(client, w)
    raw = bytearray(b64url_decode(make_preview(client, w, d["id"])["token"]))
    raw[49:] = os.urandom(32)
    assert_problem(client.get("/preview/" + b64url_encode(bytes(raw))), 404)


def test_an_expired_link_is_410_at_once(client, w):
    d = create_item(client, w, title="Short lived")
    link = make_preview(client, w, d["id"], {"ttl": 2})
    expires = parse_time(link["expires_at"])
    last_ok = None
    refused = None
    deadline = time.time() + 4.5
    while time.time() < deadline:
        sent = time.time()
        r = view(client, link)
        if r.status == 200:
            assert "Short lived" in html_of(r)
            last_ok = sent
        else:
            refused = r
            break
        time.sleep(0.05)
    assert last_ok is not None, "the link worked before it expired"
    assert refused is not None, "the link never expired"
    p = assert_problem(refused, 410, mentions="expired")
    assert link["expires_at"] in p["detail"]
    assert_private(refused)
    # Pages served up to the expiry kept nothing alive: refused within a
    # moment of the expiry, and from then on, in both representations.
    assert time.time() <= expires + 1.0
    assert last_ok >= expires - 1.0, "it was served until shortly before expiring"
    assert_problem(view(client, link, accept="application/json"), 410)
    r = client.delete(f"/v1/main/previews/{link['token']}", token=w)
    assert r.status == 204, "an expired link can still be revoked"
    assert_problem(view(client, link), 410)


def test_ttl_one_second_expires(client, w):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"], {"ttl": 1})
    deadline = time.time() + 2.5
    r = view(client, link)
    while r.status == 200 and time.time() < deadline:
        time.sleep(0.1)
        r = view(client, link)
    assert_problem(r, 410, mentions="expired")


# ---- revocation ------------------------------------------------------------------------------

def test_revocation_is_immediate_and_idempotent(client, w, tokens):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"])
    other = make_preview(client, w, d["id"])
    html_of(view(client, link))
    path = f"/v1/main/previews/{link['token']}"
    r = client.delete(path, token=w)
    assert r.status == 204 and r.body == b""
    r = view(client, link)
    assert_problem(r, 410, mentions="revoked")
    assert_private(r)
    assert_problem(view(client, link, accept="application/json"), 410)
    assert client.delete(path, token=w).status == 204, "revoking again is 204"
    assert client.delete(path, token=tokens["admin"]).status == 204
    html_of(view(client, other))  # another link to the same version still works


def test_revoking_needs_a_write_token_of_the_links_site(client, w, tokens):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"])
    path = f"/v1/main/previews/{link['token']}"
    assert_problem(client.delete(path), 401)
    assert_problem(client.delete(path, token=tokens["read"]), 403)
    assert_problem(client.delete(path, token=tokens["other_write"]), 401)
    # The other site's own route: not a link of that site.
    r = client.delete(f"/v1/other/previews/{link['token']}", token=tokens["other_write"])
    assert_problem(r, 404)
    assert_problem(client.delete(f"/v1/nosuchsite/previews/{link['token']}", token=w), 404)
    html_of(view(client, link))


def test_revoking_a_malformed_or_unknown_token_is_404(client, w):
    d = create_item(client, w)
    raw = bytearray(b64url_decode(make_preview(client, w, d["id"])["token"]))
    raw[60] ^= 1
    for token in ("x", "A" * TOKEN_TEXT_LEN, b64url_encode(bytes(raw)), "%00"):
        assert_problem(client.delete(f"/v1/main/previews/{token}", token=w), 404)


# ---- what a link shows -------------------------------------------------------------------------

def test_a_draft_is_previewed_while_the_public_sees_the_published_version(client, w):
    d = create_item(client, w, title="Public title", body="public body")
    draft_link = make_preview(client, w, d["id"])
    assert_problem(client.get(f"/v1/main/content/{d['id']}"), 404)
    assert "Public title" in html_of(view(client, draft_link)), "a never-published item"

    publish(client, w, d["id"])
    save(client, w, d["id"], 1, {"title": "Secret draft", "body": "draft body"})
    link = make_preview(client, w, d["id"])
    assert link["version"] == 2
    page = html_of(view(client, link))
    assert "Secret draft" in page and "draft body" in page and "not published" in page
    public = assert_json(client.get(f"/v1/main/content/{d['id']}"), 200)
    assert public["title"] == "Public title"
    v = version_of(view(client, link, accept="application/json"))
    assert v["published"] is False and v["content"]["title"] == "Secret draft"
    v1 = version_of(view(client, draft_link, accept="application/json"))
    assert v1["published"] is True and v1["number"] == 1
    assert "the published version" in html_of(view(client, draft_link))


def test_a_link_keeps_showing_its_version_after_later_saves(client, w):
    d = create_item(client, w, title="Version one", body="one")
    link = make_preview(client, w, d["id"], {"version": 1})
    save(client, w, d["id"], 1, {"title": "Version two", "body": "two"})
    save(client, w, d["id"], 2, {"title": "Version three"})
    page = html_of(view(client, link))
    assert "Version one" in page and "Version two" not in page
    v = version_of(view(client, link, accept="application/json"))
    assert v["number"] == 1 and v["content"]["body"] == "one"


def test_deleting_the_item_makes_its_links_404(client, w):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"])
    html_of(view(client, link))
    assert client.delete(f"/v1/main/content/{d['id']}", token=w).status == 204
    r = view(client, link)
    assert_problem(r, 404)
    assert_private(r)
    assert_problem(client.delete(f"/v1/main/previews/{link['token']}", token=w), 404)


def test_a_link_of_another_site_shows_that_sites_name(client, tokens):
    ow = tokens["other_write"]
    d = create_item(client, ow, site="other", title="Elsewhere")
    link = make_preview(client, ow, d["id"], site="other")
    v = version_of(view(client, link, accept="application/json"))
    assert v["site"] == "other" and v["content"]["title"] == "Elsewhere"
    r = client.delete(f"/v1/other/previews/{link['token']}", token=ow)
    assert r.status == 204


def test_wrong_methods_on_preview_routes_are_405(client, w):
    d = create_item(client, w)
    link = make_preview(client, w, d["id"])
    r = client.post(link["url"])
    assert_problem(r, 405)
    assert "GET" in r.headers.get("allow", "")
    assert_problem(client.get(f"/v1/main/previews/{link['token']}", token=w), 405)
    assert_problem(client.get(f"/v1/main/content/{d['id']}/previews", token=w), 405)
