"""Hostile traffic, issue 11 findings 6, 9, 10 and 11:

- view beacons are bounded per client and a client's repeats of one item
  count once (finding 6);
- cursors have one spelling and belong to one site (finding 9);
- every access-log line is JSON whatever bytes a path holds (finding 10);
- a public /metrics does not list the sites, and a token of another site is
  answered exactly as a token that does not exist (finding 11).

Clients are named by X-Forwarded-For from loopback (a trusted proxy by
default), as nginx in front would name them.
"""

import base64
import json
import re
import time

from cache_support import item_path, poll, published_item
from metrics_support import parse_metrics, scrape, value
from strata_support import (
    assert_json, assert_problem, assert_status, create_item, raw_exchange, save, uniq,
)

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
FLUSH = ["--views-flush-interval-ms", "100", "--threads", "1"]


def as_client(addr):
    return {"X-Forwarded-For": addr}


# ---- finding 6: view beacons ---------------------------------------------------------------

def beacon(client, item_id, addr, site="main"):
    return client.post(f"/v1/{site}/content/{item_id}/views", headers=as_client(addr))


def window_views(client, typ):
    body = assert_json(client.get(f"/v1/main/popular?type={typ}&window=1h&limit=100"))
    return {i["id"]: i.get("window_views", 0) for i in body["items"]}


def settle(client, typ, want, what):
    """Waits until popular shows `want` ({id: views}), then checks that it
    stays there for a few more flushes (nothing more is counted later)."""
    poll(lambda: window_views(client, typ) == want, timeout=10, interval=0.1,
         what=f"{what}: {want} (seen {window_views(client, typ)})")
    time.sleep(0.5)
    assert window_views(client, typ) == want, what


def test_one_clients_beacons_for_one_item_count_once(server_factory, fresh_deployment):
    srv = server_factory(args=FLUSH)
    client, adm = srv.client(), fresh_deployment.tokens["admin"]
    typ = uniq("pv")
    target = published_item(client, adm, type=typ, title="Target")
    liked = published_item(client, adm, type=typ, title="Liked by two")
    client.get(item_path(target))
    # the reproduction: 1,900 beacons from one client
    statuses = [beacon(client, target["id"], "203.0.113.1").status for _ in range(1900)]
    assert statuses[0] == 204 and set(statuses) == {204, 429}, sorted(set(statuses))
    # its other spellings of the id are the same item
    assert beacon(client, "000" + str(target["id"]), "203.0.113.1").status in (204, 429)
    # two readers of the other item
    assert beacon(client, liked["id"], "203.0.113.2").status == 204
    assert beacon(client, liked["id"], "198.51.100.3").status == 204
    settle(client, typ, {liked["id"]: 2, target["id"]: 1}, "one count per client and item")
    top = assert_json(client.get(f"/v1/main/popular?type={typ}&window=1h"))["items"][0]
    assert top["id"] == liked["id"], "1,900 beacons of one client no longer make #1"


def test_beacons_beyond_the_clients_bucket_are_429(server_factory, fresh_deployment):
    srv = server_factory(args=FLUSH + ["--views-client-rps", "2", "--views-client-burst", "10"])
    client, adm = srv.client(), fresh_deployment.tokens["admin"]
    typ = uniq("pb")
    items = [published_item(client, adm, type=typ, title=f"n{i}") for i in range(25)]
    for it in items[::2]:
        client.get(item_path(it))  # half of them cached: both paths are bounded
    start = time.monotonic()
    answers = [beacon(client, it["id"], "203.0.113.9") for it in items]
    elapsed = time.monotonic() - start
    accepted = sum(r.status == 204 for r in answers)
    refused = [r for r in answers if r.status != 204]
    assert 10 <= accepted <= 10 + int(2 * elapsed) + 1, (accepted, elapsed)
    assert refused and all(r.status == 429 for r in refused)
    p = assert_problem(refused[0], 429)
    assert p["code"] == "rate_limited" and "view beacons" in p["detail"], p
    assert int(refused[0].headers["retry-after"]) >= 1
    assert refused[0].headers["ratelimit-policy"] == '"views";q=2;w=1;strata-burst=10'
    assert re.fullmatch(r'"views";r=0;t=\d+', refused[0].headers["ratelimit"]), refused[0].headers
    counted = {it["id"]: 1 for it, r in zip(items, answers) if r.status == 204}
    settle(client, typ, counted, "exactly the accepted beacons are counted")


def test_a_repeat_after_the_window_counts_again(server_factory, fresh_deployment):
    srv = server_factory(args=FLUSH + ["--views-dedupe-window-s", "1"])
    client, adm = srv.client(), fresh_deployment.tokens["admin"]
    typ = uniq("pw")
    item = published_item(client, adm, type=typ)
    assert beacon(client, item["id"], "203.0.113.4").status == 204
    assert beacon(client, item["id"], "203.0.113.4").status == 204
    settle(client, typ, {item["id"]: 1}, "within the window")
    time.sleep(1.1)
    assert beacon(client, item["id"], "203.0.113.4").status == 204
    settle(client, typ, {item["id"]: 2}, "after the window")


# ---- finding 9: cursors ------------------------------------------------------------------------

def respellings(text):
    """The other texts whose base64url decoding (ignoring unused bits, as
    lax decoders do) gives the same bytes: the last character with other
    unused low bits."""
    unused = {0: 0, 2: 4, 3: 2}[len(text) % 4]
    last = ALPHABET.index(text[-1])
    return [text[:-1] + c for i, c in enumerate(ALPHABET)
            if c != text[-1] and i >> unused == last >> unused]


def b64_lax(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_a_list_cursor_has_one_spelling(client):
    first = assert_json(client.get("/v1/main/content?limit=2"))
    cursor = first["next_cursor"]
    assert cursor, "the seeded site has more than two items"
    others = respellings(cursor)
    assert len(others) == 2 ** {0: 0, 2: 4, 3: 2}[len(cursor) % 4] - 1 and others, cursor
    for other in others:
        assert b64_lax(other) == b64_lax(cursor), "the same bytes to a lax decoder"
        p = assert_problem(client.get(f"/v1/main/content?limit=2&cursor={other}"), 400)
        assert p["code"] == "bad_cursor", p
    page = assert_json(client.get(f"/v1/main/content?limit=2&cursor={cursor}"))
    assert [i["id"] for i in page["items"]] and page["items"][0]["id"] not in [i["id"] for i in first["items"]]


def test_a_cursor_of_one_site_is_refused_on_another(client, tokens):
    cursor = assert_json(client.get("/v1/main/content?limit=1"))["next_cursor"]
    p = assert_problem(client.get(f"/v1/other/content?limit=1&cursor={cursor}"), 400)
    assert p["code"] == "bad_cursor" and "site" in p["detail"], p
    # and the other way round
    w = tokens["other_write"]
    for i in range(2):
        d = create_item(client, w, site="other", title=f"o{i}")
        assert_json(client.post(f"/v1/other/content/{d['id']}/publish", token=w))
    theirs = assert_json(client.get("/v1/other/content?limit=1"))["next_cursor"]
    assert theirs
    assert_problem(client.get(f"/v1/main/content?limit=1&cursor={theirs}"), 400)
    assert_json(client.get(f"/v1/other/content?limit=1&cursor={theirs}"))


def test_history_cursors_and_preview_links_have_one_spelling(client, tokens):
    w = tokens["write"]
    d = create_item(client, w, title="v1")
    save(client, w, d["id"], 1, {"title": "v2"})
    save(client, w, d["id"], 2, {"title": "v3"})
    page = assert_json(client.get(f"/v1/main/content/{d['id']}/versions?limit=1", token=w))
    cursor = page["next_cursor"]
    # a whole number of 3-byte groups: no unused bits, so no other spelling
    assert len(cursor) % 4 == 0 and respellings(cursor) == [], cursor
    for c in ALPHABET.replace(cursor[-1], "")[:8]:
        r = client.get(f"/v1/main/content/{d['id']}/versions?limit=1&cursor={cursor[:-1]}{c}", token=w)
        assert_problem(r, 400)
    assert_json(client.get(f"/v1/main/content/{d['id']}/versions?limit=1&cursor={cursor}", token=w))
    link = assert_json(client.post(f"/v1/main/content/{d['id']}/previews", token=w), 201)
    token = link["token"]
    assert len(token) % 4 == 0 and respellings(token) == [], token
    for c in ALPHABET.replace(token[-1], "")[:8]:
        assert_problem(client.get(f"/preview/{token[:-1]}{c}"), 404)
    assert_status(client.get(link["url"]), 200)


# ---- finding 10: the access log -------------------------------------------------------------------

RAW_PATHS = [
    b"/v1/main/content/\xff\xfe",            # bytes that are never UTF-8
    b"/v1/main/content?q=\xc3",              # a cut sequence
    b"/v1/main/content/\xc0\xaf..\xc0\xaf",  # overlong '/'
    b"/v1/main/by-slug/\xed\xa0\x80",        # a surrogate
    b"/v1/main/\xf4\x90\x80\x80x",           # above U+10FFFF
    b"/v1/main/caf\xc3\xa9/\xe2\x82\xac",    # valid UTF-8: kept as it is
]


def test_every_access_log_line_is_json(server_factory):
    srv = server_factory()
    for path in RAW_PATHS:
        r = raw_exchange(srv.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert r is not None and r.status < 500, (path, r)
    assert srv.alive()
    srv.stop()
    raw = srv.log_path.read_bytes()
    records = []
    for line in raw.splitlines():
        text = line.decode("utf-8")  # strict: a byte of no UTF-8 fails here
        records.append(json.loads(text))
    paths = [rec.get("path") for rec in records if rec.get("msg") == "request"]
    assert "/v1/main/content/\u00ff\u00fe" in paths, paths
    assert "/v1/main/content?q=\u00c3" in paths, paths
    assert "/v1/main/content/\u00c0\u00af..\u00c0\u00af" in paths, paths
    assert "/v1/main/by-slug/\u00ed\u00a0\u0080" in paths, paths
    assert "/v1/main/\u00f4\u0090\u0080\u0080x" in paths, paths
    assert "/v1/main/caf\u00e9/\u20ac" in paths, paths
    assert b"caf\xc3\xa9/\xe2\x82\xac" in raw, "valid UTF-8 is written raw"
    assert b"\\u00ff\\u00fe" in raw, "invalid bytes as \\u00XX of the byte"


# ---- finding 11: who learns what ---------------------------------------------------------------------

def cache_some_reads(client):
    for site in ("main", "other"):
        for _ in range(3):
            client.get(f"/v1/{site}/content?limit=1")


def site_labels(text):
    return set(re.findall(r'site="([^"]*)"', text))


def test_public_metrics_do_not_name_the_sites(server_factory):
    srv = server_factory()
    client = srv.client()
    cache_some_reads(client)
    text = scrape(client)
    assert site_labels(text) == {"_all"}, site_labels(text)
    samples, _ = parse_metrics(text)
    assert value(samples, "strata_cache_hits_total", tier="l1", site="_all") >= 4


def test_site_labels_when_the_operator_says_so(server_factory, fresh_deployment):
    srv = server_factory(args=["--metrics-public-site-labels", "true"])
    client = srv.client()
    cache_some_reads(client)
    assert {"main", "other"} <= site_labels(scrape(client))


def test_site_labels_for_an_admin_when_metrics_need_a_token(server_factory, fresh_deployment):
    srv = server_factory(args=["--metrics-token-required", "true"])
    client = srv.client()
    cache_some_reads(client)
    assert_problem(client.get("/metrics"), 401)
    assert {"main", "other"} <= site_labels(scrape(client, token=fresh_deployment.tokens["admin"]))


def comparable(resp):
    """What a caller sees of a refusal, without what differs per request."""
    p = dict(resp.json)
    p.pop("request_id", None)
    return resp.status, resp.headers.get("www-authenticate"), resp.content_type, p


def test_another_sites_token_is_answered_as_no_token_at_all(client, tokens):
    d = create_item(client, tokens["write"], title="secret")
    unknown = "st_" + "A" * 43  # the shape of a real token
    routes = [
        ("GET", f"/v1/main/content/{d['id']}/draft", None),
        ("GET", "/v1/main/content?status=draft", None),
        ("GET", f"/v1/main/content/{d['id']}/versions", None),
        ("PUT", f"/v1/main/content/{d['id']}", {"title": "x"}),
        ("POST", f"/v1/main/content/{d['id']}/previews", {}),
        ("POST", "/v1/main/cache/invalidate", {"tags": ["x"]}),
    ]
    for method, path, body in routes:
        kw = {"json": body} if body is not None else {}
        theirs = client.request(method, path, token=tokens["other_write"], **kw)
        nobodys = client.request(method, path, token=unknown, **kw)
        assert_problem(theirs, 401)
        assert comparable(theirs) == comparable(nobodys), (method, path, theirs.body, nobodys.body)
        assert "secret" not in theirs.text
