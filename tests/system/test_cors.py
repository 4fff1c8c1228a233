"""CORS per site (cors.origins, cors.max_age_s; src/http/cors.c).

A site with a list of origins answers each listed origin with its own
Access-Control-Allow-Origin and says Vary: Origin on every response (with
the header or without it: a CDN must not hand one origin's answer to
another); a `*` site answers `*` to all and varies by nothing; a site
without a policy gets no CORS header. The headers are added as a response
leaves, never stored with a cached representation: two origins reading the
same item share one L1 entry. Preflights get 204 with the path's methods,
the headers strata reads and Access-Control-Max-Age, or 403 with the
reason."""

import pytest

from strata_support import assert_json, assert_problem, create_item, publish, run_cli

NEWS, APP, EVIL = "https://news.example", "https://app.example:8443", "https://evil.example"
POLICY = f"main={NEWS} {APP.upper()};other=*"


@pytest.fixture(scope="module")
def cors(deployment):
    srv = deployment.server(name="cors", args=["--cors-origins", POLICY, "--cors-max-age-s", "600"]).start()
    yield srv
    srv.stop()


def vary(resp):
    return [v.strip().lower() for v in resp.headers.get("vary", "").split(",") if v.strip()]


def allow_origin(resp):
    return resp.headers.get("access-control-allow-origin")


def test_a_listed_origin_is_answered_with_itself_and_the_response_varies_by_origin(cors, tokens):
    client = cors.client()
    item = create_item(client, tokens["write"])
    publish(client, tokens["write"], item["id"])
    path = f"/v1/main/content/{item['id']}"
    first = client.get(path, headers={"Origin": NEWS})
    assert first.status == 200 and allow_origin(first) == NEWS
    assert "origin" in vary(first) and "accept-encoding" in vary(first)
    assert "etag" in first.headers["access-control-expose-headers"]
    second = client.get(path, headers={"Origin": APP})
    assert allow_origin(second) == APP  # listed in capitals, sent lowercase by browsers
    assert "hit" in second.headers.get("cache-status", ""), "the second origin should share the first's L1 entry"
    assert second.body == first.body
    for headers in ({"Origin": EVIL}, {}):
        other = client.get(path, headers=headers)
        assert other.status == 200 and allow_origin(other) is None
        assert "origin" in vary(other), "a CDN must not give a response made without an allowed Origin to one"


def test_a_wildcard_site_answers_any_origin_and_does_not_vary(cors):
    client = cors.client()
    for headers in ({"Origin": EVIL}, {}):
        resp = client.get("/v1/other/content?limit=1", headers=headers)
        assert resp.status == 200, resp
        assert allow_origin(resp) == "*"
        assert "origin" not in vary(resp)


def test_errors_and_304s_carry_the_headers_too(cors, tokens):
    client = cors.client()
    missing = client.get("/v1/main/content/999999999", headers={"Origin": NEWS})
    assert_problem(missing, 404)
    assert allow_origin(missing) == NEWS
    page = client.get("/v1/main/content?limit=1", headers={"Origin": NEWS})
    again = client.get("/v1/main/content?limit=1", headers={"Origin": NEWS, "If-None-Match": page.headers["etag"]})
    assert again.status == 304 and allow_origin(again) == NEWS


def test_a_site_without_a_policy_and_the_operator_routes_get_no_cors_header(deployment, cors, tokens):
    plain = deployment.server(name="no-cors").start()
    try:
        resp = plain.client().get("/v1/main/content?limit=1", headers={"Origin": NEWS})
        assert resp.status == 200 and allow_origin(resp) is None and "origin" not in vary(resp)
    finally:
        plain.stop()
    health = cors.client().get("/healthz", headers={"Origin": NEWS})
    assert allow_origin(health) is None


def preflight(client, path, origin, method, headers="authorization, if-match"):
    return client.request("OPTIONS", path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                                    "Access-Control-Request-Headers": headers})


def test_a_preflight_of_an_allowed_origin_and_method_is_204_with_what_may_follow(cors):
    client = cors.client()
    resp = preflight(client, "/v1/main/content/12", NEWS, "PUT")
    assert resp.status == 204, resp
    assert allow_origin(resp) == NEWS and "origin" in vary(resp)
    assert [m.strip() for m in resp.headers["access-control-allow-methods"].split(",")] == ["GET", "HEAD", "PUT",
                                                                                             "DELETE"]
    allowed = [h.strip() for h in resp.headers["access-control-allow-headers"].split(",")]
    for needed in ("authorization", "content-type", "if-match", "if-none-match", "strata-lsn"):
        assert needed in allowed
    assert resp.headers["access-control-max-age"] == "600"
    anyone = preflight(client, "/v1/other/content", EVIL, "POST")
    assert anyone.status == 204 and allow_origin(anyone) == "*"


def test_a_preflight_that_may_not_follow_is_403_with_the_reason(cors):
    client = cors.client()
    resp = preflight(client, "/v1/main/content/12", EVIL, "GET")
    assert_problem(resp, 403, mentions="cors.origins")
    assert allow_origin(resp) is None
    resp = preflight(client, "/v1/main/content/12", NEWS, "PATCH")
    assert_problem(resp, 403, mentions="PATCH")
    assert allow_origin(resp) == NEWS, "the browser may read why"
    resp = preflight(client, "/v1/nosuchsite/content", NEWS, "GET")
    assert_problem(resp, 403, mentions="cors.origins")
    assert client.request("OPTIONS", "/v1/main/content/12").status == 405  # not a preflight


@pytest.mark.parametrize("policy, mentions", [
    ("main=https://news.example/path", "not an origin"),
    ("main=ftp://news.example", "not an origin"),
    ("main=", "no origin"),
    ("main=https://a.example;main=*", "twice"),
    ("https://a.example", "SITE=ORIGIN"),
])
def test_a_bad_policy_is_a_configuration_error(strata_bin, policy, mentions):
    proc = run_cli(strata_bin, "check-config", "--cors-origins", policy)
    assert proc.returncode == 2, proc
    assert "cors.origins" in proc.stderr and mentions in proc.stderr, proc.stderr
