"""Web Vitals: the public beacon POST /api/performance/metrics, the
percentiles strata keeps per metric and per page (GET
/api/performance/vitals), and the assets it serves for them (/vitals.js,
/dashboard) — docs/web-vitals.md.

The beacon's rate limit is per client. Every test here comes from its own
client address, named in X-Forwarded-For: strata trusts the last address of
that header from a loopback peer (a proxy on the same host), which the
tests are.
"""

import itertools
import json
import re
import time

import pytest

from strata_support import assert_json, assert_problem, uniq

BEACON = "/api/performance/metrics"
_addresses = itertools.count(1)


def new_client_address():
    n = next(_addresses)
    return f"198.51.{n // 250}.{n % 250 + 1}"


def metric(name="LCP", value=1200.0, page="/", **extra):
    m = {"name": name, "value": value, "id": "v5-" + uniq("m"), "page": page, "rating": "good",
         "navigationType": "navigate", "request_id": None}
    m.update(extra)
    return m


def send(client, body, *, address, content_type="application/json"):
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return client.post(BEACON, body=body, content_type=content_type, headers={"X-Forwarded-For": address})


def page_stats(client, token, page):
    return assert_json(client.get(f"/api/performance/vitals?page={page}", token=token))


@pytest.fixture
def address():
    return new_client_address()


@pytest.fixture(scope="module")
def admin(tokens):
    return tokens["admin"]


# ---- accepted -------------------------------------------------------------------

def test_one_metric_is_accepted_with_204(client, admin, address):
    page = "/" + uniq("one")
    r = send(client, metric("LCP", 1800, page), address=address)
    assert r.status == 204, r
    assert r.body == b""
    got = page_stats(client, admin, page)
    assert got["page"] == page
    assert got["metrics"]["LCP"]["count"] == 1
    assert got["metrics"]["LCP"]["p75"] == pytest.approx(1800, rel=0.01)
    assert got["metrics"]["LCP"]["rating"] == "good"
    assert got["metrics"]["INP"]["count"] == 0 and got["metrics"]["INP"]["p75"] is None


def test_text_plain_is_accepted_as_sendbeacon_sends_it(client, admin, address):
    page = "/" + uniq("plain")
    batch = [metric(n, v, page) for n, v in (("FCP", 900), ("TTFB", 120), ("CLS", 0.05), ("INP", 80))]
    r = send(client, batch, address=address, content_type="text/plain;charset=UTF-8")
    assert r.status == 204, r
    got = page_stats(client, admin, page)["metrics"]
    for name in ("FCP", "TTFB", "CLS", "INP"):
        assert got[name]["count"] == 1, got


def test_page_is_normalised_to_its_path(client, admin, address):
    base = "/" + uniq("norm")
    for page in (base + "?utm=1", f"https://example.com{base}#top", base):
        assert send(client, metric("FCP", 500, page), address=address).status == 204
    assert page_stats(client, admin, base)["metrics"]["FCP"]["count"] == 3
    long = "/" + "x" * 600
    assert send(client, metric("FCP", 500, long), address=address).status == 204
    assert page_stats(client, admin, long[:256])["page"] == long[:256]


# ---- refused ----------------------------------------------------------------------

def test_body_over_8_kb_is_413(client, address):
    big = [metric(page="/" + "p" * 200, attribution={"target": "x" * 8000})]
    assert_problem(send(client, big, address=address), 413)


def test_bad_json_is_400(client, address):
    for body in ("{", '{"name": "LCP",}', "", "[1, 2"):
        assert_problem(send(client, body, address=address), 400)


def test_other_content_types_are_415(client, address):
    for ct in ("application/x-www-form-urlencoded", "text/html", "multipart/form-data; boundary=x", None):
        assert_problem(send(client, metric(), address=address, content_type=ct), 415)


@pytest.mark.parametrize("change, field", [
    ({"name": "FID"}, "name"),
    ({"name": "lcp"}, "name"),
    ({"name": None}, "name"),
    ({"value": "1200"}, "value"),
    ({"value": None}, "value"),
    ({"value": -1}, "value"),
    ({"value": 60001}, "value"),
    ({"name": "CLS", "value": 10.5}, "value"),
    ({"name": "INP", "value": 1e308}, "value"),
    ({"id": ""}, "id"),
    ({"id": 7}, "id"),
    ({"id": "a b"}, "id"),
    ({"id": "x" * 129}, "id"),
    ({"page": "relative/path"}, "page"),
    ({"page": 3}, "page"),
    ({"page": "/with space"}, "page"),
    ({"request_id": "has space"}, "request_id"),
    ({"request_id": "r" * 65}, "request_id"),
    ({"rating": "excellent"}, "rating"),
    ({"navigationType": "NAVIGATE"}, "navigationType"),
])
def test_bad_fields_are_422_naming_the_field(client, admin, address, change, field):
    page = "/" + uniq("bad")
    m = metric(page=page)
    m.update(change)
    p = assert_problem(send(client, m, address=address), 422, mentions=field)
    assert p["status"] == 422
    r = client.get(f"/api/performance/vitals?page={page}", token=admin)
    assert r.status == 404, "nothing of a refused beacon is recorded"


def test_a_batch_with_one_bad_metric_records_nothing(client, admin, address):
    page = "/" + uniq("batch")
    batch = [metric("TTFB", 100, page), metric("TTFB", 100, page), metric("TTFB", -3, page)]
    assert_problem(send(client, batch, address=address), 422, mentions="[2].value")
    assert client.get(f"/api/performance/vitals?page={page}", token=admin).status == 404


def test_batches_are_bounded(client, address):
    assert_problem(send(client, [], address=address), 422)
    assert_problem(send(client, [metric() for _ in range(21)], address=address), 422, mentions="1..20")
    assert_problem(send(client, "42", address=address), 400)


# ---- rate limit ----------------------------------------------------------------------

def test_rate_limit_per_client_then_recovery(client, admin):
    address = new_client_address()
    page = "/" + uniq("rate")
    statuses = [send(client, metric("FCP", 300, page), address=address).status for _ in range(80)]
    assert statuses[:60] == [204] * 60, statuses
    limited = send(client, metric("FCP", 300, page), address=address)
    p = assert_problem(limited, 429)
    retry_after = int(limited.headers["retry-after"])
    assert 1 <= retry_after <= 2, limited.headers
    assert "per second" in p["detail"]
    # another client is not limited
    assert send(client, metric("FCP", 300, page), address=new_client_address()).status == 204
    # the bucket refills at 30 per second
    time.sleep(retry_after + 0.1)
    assert send(client, metric("FCP", 300, page), address=address).status == 204
    summary = assert_json(client.get("/api/performance/vitals", token=admin))
    assert summary["beacons"]["rate_limited"] >= 1


def test_a_batch_costs_one_token_per_metric(client):
    address = new_client_address()
    page = "/" + uniq("cost")
    for _ in range(3):
        assert send(client, [metric("FCP", 300, page) for _ in range(20)], address=address).status == 204
    assert_problem(send(client, [metric("FCP", 300, page) for _ in range(2)], address=address), 429)


# ---- dedupe ------------------------------------------------------------------------------

def test_a_repeated_metric_id_updates_nothing(client, admin, address):
    page = "/" + uniq("dupe")
    m = metric("CLS", 0.02, page)
    assert send(client, m, address=address).status == 204
    again = dict(m, value=0.9)  # web-vitals may report the same instance again
    assert send(client, again, address=address).status == 204
    assert send(client, [again, again], address=address).status == 204
    got = page_stats(client, admin, page)["metrics"]["CLS"]
    assert got["count"] == 1
    assert got["p75"] == pytest.approx(0.02, rel=0.01)
    # the same id under another metric is another instance
    assert send(client, dict(m, name="LCP", value=100), address=address).status == 204
    assert page_stats(client, admin, page)["metrics"]["LCP"]["count"] == 1


# ---- percentiles ---------------------------------------------------------------------------

def test_p75_of_known_values_within_one_percent(client, admin):
    page = "/" + uniq("p75")
    values = list(range(1, 101))  # 1..100 ms
    for chunk in range(0, 100, 20):
        batch = [metric("LCP", float(v), page) for v in values[chunk:chunk + 20]]
        assert send(client, batch, address=new_client_address()).status == 204
    got = page_stats(client, admin, page)["metrics"]["LCP"]
    assert got["count"] == 100
    assert got["p75"] == pytest.approx(75, rel=0.01)
    assert got["p50"] == pytest.approx(50, rel=0.01)
    assert got["p95"] == pytest.approx(95, rel=0.01)
    assert got["unit"] == "ms"
    assert got["thresholds"] == {"good": 2500, "poor": 4000}


def test_pages_are_kept_apart_and_rated(client, admin):
    fast, slow = "/" + uniq("fast"), "/" + uniq("slow")
    address = new_client_address()
    assert send(client, [metric("INP", 120, fast) for _ in range(10)], address=address).status == 204
    assert send(client, [metric("INP", 800, slow) for _ in range(10)], address=new_client_address()).status == 204
    assert send(client, [metric("INP", 300, slow) for _ in range(5)], address=new_client_address()).status == 204
    f = page_stats(client, admin, fast)["metrics"]["INP"]
    s = page_stats(client, admin, slow)["metrics"]["INP"]
    assert (f["count"], s["count"]) == (10, 15)
    assert f["p75"] == pytest.approx(120, rel=0.01) and f["rating"] == "good"
    assert s["p75"] == pytest.approx(800, rel=0.01) and s["rating"] == "poor"
    assert s["p50"] == pytest.approx(800, rel=0.01)
    summary = assert_json(client.get("/api/performance/vitals", token=admin))
    assert summary["metrics"]["INP"]["count"] >= 25
    assert summary["metrics"]["INP"]["rating"] in ("good", "needs-improvement", "poor")


def test_pages_are_bounded_least_recent_first(client, admin):
    prefix = "/" + uniq("many")
    n = 600
    for start in range(0, n, 20):
        batch = [metric("TTFB", 50, f"{prefix}/{i}") for i in range(start, start + 20)]
        assert send(client, batch, address=new_client_address()).status == 204
    summary = assert_json(client.get("/api/performance/vitals", token=admin))
    assert summary["pages_max"] == 500
    assert summary["pages_tracked"] == 500
    assert len(summary["pages"]) <= 20
    assert client.get(f"/api/performance/vitals?page={prefix}/0", token=admin).status == 404
    assert page_stats(client, admin, f"{prefix}/{n - 1}")["metrics"]["TTFB"]["count"] == 1


def test_recent_samples_carry_the_page_request_id(client, admin, address):
    page = "/" + uniq("joined")
    m = metric("LCP", 2600, page, request_id="ab12cd34-00-77", attribution={"target": "main>img.hero"})
    assert send(client, m, address=address).status == 204
    recent = assert_json(client.get("/api/performance/vitals", token=admin))["recent"]
    mine = [s for s in recent if s["page"] == page]
    assert mine, recent
    assert mine[0]["request_id"] == "ab12cd34-00-77"
    assert mine[0]["target"] == "main>img.hero"
    assert mine[0]["rating"] == "needs-improvement"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", mine[0]["at"])


def test_the_vitals_summary_needs_an_admin_token(client, tokens):
    assert_problem(client.get("/api/performance/vitals"), 401)
    assert_problem(client.get("/api/performance/vitals", token=tokens["read"]), 403)


# ---- the assets --------------------------------------------------------------------------------

def test_vitals_js_is_web_vitals_plus_the_beacon(client):
    r = client.get("/vitals.js")
    assert r.status == 200
    assert r.content_type == "text/javascript"
    assert b"webVitals" in r.body and b"sendBeacon" in r.body and b"/api/performance/metrics" in r.body
    assert b"sourceMappingURL" not in r.body
    assert r.headers["access-control-allow-origin"] == "*"
    assert "max-age" in r.headers["cache-control"]
    again = client.get("/vitals.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status == 304 and again.body == b""


def test_dashboard_is_self_contained_and_names_its_request_id(client):
    r = client.get("/dashboard")
    assert r.status == 200 and r.content_type == "text/html"
    rid = r.headers["x-request-id"]
    assert f'reqid;desc="{rid}"' in r.headers["server-timing"]
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    html = r.text
    assert "<script>" not in html, "no inline script"
    assert not re.search(r'(src|href)="(https?:)?//', html), "no external request"
    for asset, ctype in (("/dashboard.js", "text/javascript"), ("/dashboard.css", "text/css")):
        a = client.get(asset)
        assert a.status == 200 and a.content_type == ctype
    assert b"uPlot" in client.get("/dashboard.js").body


def test_json_api_responses_carry_no_reqid_timing(client):
    """Only HTML pages name their request id in Server-Timing: a cache hit
    (JSON) stays as it was."""
    for _ in range(2):
        r = client.get("/v1/main/content?limit=1")
    assert r.status == 200
    assert "reqid" not in r.headers.get("server-timing", "")
