"""Who may do what: every editor route against every kind of caller, and
the token rule for listing unpublished content. A refused request must leave
everything as it was."""

from types import SimpleNamespace

import pytest

from strata_support import assert_json, assert_problem, create_item, list_all, publish, uniq

# caller → expected outcome ("ok" means the route's success status)
CALLERS = {
    "no-token": 401,
    "garbage-token": 401,
    "read-token": 403,
    "other-site-write-token": 401,  # answered as an unknown token
    "admin-token": "ok",
    "write-token": "ok",
}


def token_for(caller, tokens):
    return {
        "no-token": None,
        "garbage-token": "not-a-real-token-" + uniq("g"),
        "read-token": tokens["read"],
        "other-site-write-token": tokens["other_write"],
        "admin-token": tokens["admin"],
        "write-token": tokens["write"],
    }[caller]


class Route:
    """One editor route: how to prepare for it, call it, what success looks
    like, and how to tell that a refused call changed nothing."""

    def __init__(self, name, ok_status, setup, call, unchanged):
        self.name = name
        self.ok_status = ok_status
        self.setup = setup
        self.call = call
        self.unchanged = unchanged


def _setup_item(publish_it=False):
    def setup(client, adm):
        d = create_item(client, adm, type=uniq("au"), title="original")
        if publish_it:
            publish(client, adm, d["id"])
        return SimpleNamespace(item=d, slug=uniq("new"), cat=uniq("cat"))
    return setup


def _setup_nothing(client, adm):
    return SimpleNamespace(item=None, type=uniq("au"), slug=uniq("new"), cat=uniq("cat"))


def _draft_version(client, adm, ctx):
    r = client.get(f"/v1/main/content/{ctx.item['id']}/draft", token=adm)
    return assert_json(r)["version"]


ROUTES = [
    Route("create", 201, _setup_nothing,
          lambda c, tok, x: c.post("/v1/main/content", token=tok,
                                   json={"type": x.type, "slug": x.slug, "title": "new"}),
          lambda c, adm, rd, x: list_all(c, params={"type": x.type, "status": "any"}, token=rd) == []),
    Route("get-draft", 200, _setup_item(),
          lambda c, tok, x: c.get(f"/v1/main/content/{x.item['id']}/draft", token=tok),
          lambda c, adm, rd, x: True),
    Route("put", 200, _setup_item(),
          lambda c, tok, x: c.put(f"/v1/main/content/{x.item['id']}", token=tok,
                                  headers={"If-Match": '"v1"'}, json={"title": "changed"}),
          lambda c, adm, rd, x: _draft_version(c, adm, x) == 1),
    Route("publish", 200, _setup_item(),
          lambda c, tok, x: c.post(f"/v1/main/content/{x.item['id']}/publish", token=tok),
          lambda c, adm, rd, x: c.get(f"/v1/main/content/{x.item['id']}").status == 404),
    Route("unpublish", 200, _setup_item(publish_it=True),
          lambda c, tok, x: c.post(f"/v1/main/content/{x.item['id']}/unpublish", token=tok),
          lambda c, adm, rd, x: c.get(f"/v1/main/content/{x.item['id']}").status == 200),
    Route("delete", 204, _setup_item(),
          lambda c, tok, x: c.delete(f"/v1/main/content/{x.item['id']}", token=tok),
          lambda c, adm, rd, x: c.get(f"/v1/main/content/{x.item['id']}/draft", token=adm).status == 200),
    Route("create-category", 201, _setup_nothing,
          lambda c, tok, x: c.post("/v1/main/categories", token=tok, json={"slug": x.cat, "name": "N"}),
          lambda c, adm, rd, x: x.cat not in {k["slug"] for k in
                                              assert_json(c.get("/v1/main/categories"))["categories"]}),
]


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_editor_route_by_caller(client, tokens, route, caller):
    adm = tokens["admin"]
    ctx = route.setup(client, adm)
    r = route.call(client, token_for(caller, tokens), ctx)
    expected = CALLERS[caller]
    if expected == "ok":
        assert r.status == route.ok_status, f"{caller} on {route.name}: {r}"
        return
    assert_problem(r, expected)
    if expected == 401:
        www = r.headers.get("www-authenticate", "")
        assert www.lower().startswith("bearer"), f"401 needs WWW-Authenticate: Bearer, got {www!r}"
    assert route.unchanged(client, adm, tokens["read"], ctx), f"refused {route.name} by {caller} changed state"


@pytest.mark.parametrize("authorization", [
    "Basic dXNlcjpwYXNz",
    "Bearer",
    "Bearer ",
    "Token {admin}",
    "{admin}",
    "Bearer {admin}x",
    "Bearer x{admin}",
], ids=["basic", "bearer-empty", "bearer-space", "wrong-scheme", "no-scheme", "suffixed", "prefixed"])
def test_malformed_authorization_is_401(client, tokens, authorization):
    typ = uniq("au")
    r = client.post("/v1/main/content", token=None,
                    headers={"Authorization": authorization.format(admin=tokens["admin"])},
                    json={"type": typ, "slug": uniq("s"), "title": "t"})
    assert_problem(r, 401)
    assert list_all(client, params={"type": typ, "status": "any"}, token=tokens["read"]) == []


def test_other_site_token_cannot_read_a_draft_of_main(client, tokens):
    d = create_item(client, tokens["admin"], title="secret")
    r = client.get(f"/v1/main/content/{d['id']}/draft", token=tokens["other_write"])
    p = assert_problem(r, 401)
    assert "secret" not in r.text and "secret" not in str(p)


def test_the_token_name_is_recorded_as_author(client, tokens):
    d = create_item(client, tokens["admin"])
    assert d["author"] == "admin"
    got = client.put(f"/v1/main/content/{d['id']}", token=tokens["write"],
                     headers={"If-Match": '"v1"'}, json={"title": "by writer"})
    assert assert_json(got)["author"] == "writer"


# ---- listing unpublished content --------------------------------------------------------------

@pytest.fixture(scope="module")
def mixed(client, tokens):
    """One draft, one published and one archived item of a fresh type."""
    adm = tokens["admin"]
    typ = uniq("st")
    draft = create_item(client, adm, type=typ, title="draft")
    pub = create_item(client, adm, type=typ, title="published")
    publish(client, adm, pub["id"])
    arch = create_item(client, adm, type=typ, title="archived")
    publish(client, adm, arch["id"])
    assert_json(client.post(f"/v1/main/content/{arch['id']}/unpublish", token=adm, json={"archive": True}))
    return SimpleNamespace(type=typ, draft=draft["id"], pub=pub["id"], arch=arch["id"])


@pytest.mark.parametrize("status", ["draft", "archived", "any"])
def test_listing_unpublished_needs_a_token(client, mixed, status):
    r = client.get(f"/v1/main/content?type={mixed.type}&status={status}")
    assert_problem(r, 401)
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


@pytest.mark.parametrize("status", ["draft", "archived", "any"])
@pytest.mark.parametrize("who", ["other_read", "other_write"])
def test_listing_unpublished_with_another_sites_token_is_401(client, tokens, mixed, status, who):
    r = client.get(f"/v1/main/content?type={mixed.type}&status={status}", token=tokens[who])
    assert_problem(r, 401)


@pytest.mark.parametrize("status", ["draft", "archived", "any"])
def test_listing_unpublished_with_a_garbage_token_is_401(client, mixed, status):
    assert_problem(client.get(f"/v1/main/content?type={mixed.type}&status={status}", token="nope"), 401)


@pytest.mark.parametrize("status, expected", [
    ("draft", {"draft"}),
    ("archived", {"arch"}),
    ("any", {"draft", "pub", "arch"}),
    ("published", {"pub"}),
])
@pytest.mark.parametrize("who", ["read", "write", "admin"])
def test_listing_by_status_with_a_token_of_the_site(client, tokens, mixed, status, expected, who):
    items = list_all(client, params={"type": mixed.type, "status": status}, token=tokens[who])
    assert sorted(i["id"] for i in items) == sorted(getattr(mixed, k) for k in expected)
    for i in items:
        assert "body" not in i
        if status != "any":
            assert i["status"] == status


def test_published_listing_needs_no_token(client, mixed):
    items = list_all(client, params={"type": mixed.type, "status": "published"})
    assert [i["id"] for i in items] == [mixed.pub]


def test_unknown_status_is_400(client, tokens, mixed):
    assert_problem(client.get("/v1/main/content?status=bogus", token=tokens["read"]), 400, mentions="status")
