"""Rate limits of the content API (docs/api.md "Rate limits"): token
buckets per client address for /v1/ (cache hits included) and per token by
role, answered 429 problem+json with Retry-After and the RateLimit /
RateLimit-Policy fields; X-Forwarded-For believed only from
server.trusted_proxies.

The tests run from loopback, a trusted proxy by default: each "client" is
named by X-Forwarded-For, as nginx would name it. A request from loopback
without X-Forwarded-For is the proxy's own and is not limited per client,
which is also why the rest of the suite never meets these limits. Servers
run one event loop (`--threads 1`), so a client's bucket is one bucket and
the counts are exact.
"""

import re
import time

from metrics_support import parse_metrics, scrape, value
from strata_support import assert_json, assert_problem, assert_status, run_cli, uniq

SMALL = ["--threads", "1", "--limits-client-rps", "5", "--limits-client-burst", "10"]
POLICY_RE = re.compile(r'^"([a-z-]+)";q=(\d+);w=1;strata-burst=(\d+)$')
STATE_RE = re.compile(r'^"([a-z-]+)";r=(\d+);t=(\d+)$')


def as_client(addr, **headers):
    return {"X-Forwarded-For": addr, **headers}


def first_refusal(client, path, n, headers=None, token=None):
    """Sends up to n requests; returns (answered before the first 429, that 429)."""
    for i in range(n):
        r = client.get(path, headers=headers, token=token)
        if r.status == 429:
            return i, r
    return n, None


def assert_rate_limited(r, policy, quota, burst):
    p = assert_problem(r, 429)
    assert p["code"] == "rate_limited", p
    retry = int(r.headers["retry-after"])
    assert retry >= 1
    m = POLICY_RE.match(r.headers.get("ratelimit-policy", ""))
    assert m and m.groups() == (policy, str(quota), str(burst)), r.headers
    s = STATE_RE.match(r.headers.get("ratelimit", ""))
    assert s and s.group(1) == policy and int(s.group(2)) == 0, r.headers
    assert 1 <= int(s.group(3)) <= retry, "Retry-After never earlier than the reset"
    assert str(quota) in p["detail"] and str(burst) in p["detail"], p["detail"]
    return p


def test_a_client_gets_its_burst_then_429_with_the_ratelimit_fields(server_factory):
    srv = server_factory(args=SMALL)
    client = srv.client()
    path = "/v1/main/content?limit=1"
    assert_json(client.get(path))  # warm: the rest are cache hits
    start = time.monotonic()
    answered, refused = first_refusal(client, path, 40, headers=as_client("203.0.113.10"))
    elapsed = time.monotonic() - start
    assert refused is not None, "cache hits must be limited too"
    # the burst, plus what refilled meanwhile at 5/s
    assert 10 <= answered <= 10 + int(5 * elapsed) + 1, (answered, elapsed)
    assert_rate_limited(refused, "client", 5, 10)
    samples, _ = parse_metrics(scrape(client))
    assert value(samples, "strata_rate_limited_total", policy="client") == 1, "the 429 is not counted"
    assert value(samples, "strata_rate_limited_total", policy="token-read") == 0
    # another client, and the proxy itself, are not affected
    assert_status(client.get(path, headers=as_client("203.0.113.11")), 200)
    for _ in range(30):
        assert_status(client.get(path), 200)
    # one second refills 5 tokens
    time.sleep(1.3)
    answered, refused = first_refusal(client, path, 20, headers=as_client("203.0.113.10"))
    assert 5 <= answered <= 8, answered
    assert srv.alive()


def test_successful_responses_carry_no_per_client_numbers(server_factory):
    srv = server_factory(args=SMALL)
    r = srv.client().get("/v1/main/content?limit=1", headers=as_client("203.0.113.20"))
    assert_json(r)
    assert "ratelimit" not in r.headers and "ratelimit-policy" not in r.headers, (
        "a cacheable 200 must not carry one client's quota")


def test_only_the_content_api_is_limited(server_factory):
    srv = server_factory(args=SMALL)
    client = srv.client()
    hdrs = as_client("203.0.113.30")
    answered, refused = first_refusal(client, "/v1/main/categories", 40, headers=hdrs)
    assert refused is not None
    for path in ("/healthz", "/openapi.yaml"):
        assert_status(client.get(path, headers=hdrs), 200)


def test_forwarded_for_counts_only_from_trusted_proxies(server_factory):
    # loopback is not a trusted proxy here: every request is from 127.0.0.1,
    # whatever X-Forwarded-For it writes
    srv = server_factory(args=SMALL + ["--trusted-proxies", "10.0.0.0/8"])
    client = srv.client()
    answered = 0
    for i in range(40):
        r = client.get("/v1/main/categories", headers=as_client(f"198.51.100.{i}"))
        if r.status == 429:
            break
        answered += 1
    assert 10 <= answered < 40, "spoofed addresses must not buy fresh buckets"
    assert_rate_limited(r, "client", 5, 10)


def test_the_client_is_the_nearest_untrusted_hop(server_factory):
    srv = server_factory(args=SMALL)
    client = srv.client()
    # the client writes made-up addresses to the left; the proxy appends
    # the real one: only the real one has a bucket
    answered = 0
    for i in range(40):
        r = client.get("/v1/main/categories", headers=as_client(f"198.51.100.{i}, 203.0.113.40"))
        if r.status == 429:
            break
        answered += 1
    assert 10 <= answered < 40
    # IPv6 clients by their /64
    answered, refused = first_refusal(client, "/v1/main/categories", 40,
                                      headers=as_client("2001:db8:1:2::7"))
    assert refused is not None
    assert_status(client.get("/v1/main/categories", headers=as_client("2001:db8:1:2::8")), 429)
    assert_status(client.get("/v1/main/categories", headers=as_client("2001:db8:1:3::7")), 200)


def test_a_bad_trusted_proxies_setting_is_a_configuration_error(fresh_deployment):
    for bad in ("127.0.0.1/40", "10.0.0.0/8,localhost"):
        proc = run_cli(fresh_deployment.binary, "check-config", "--trusted-proxies", bad)
        assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
        assert "server.trusted_proxies" in proc.stderr and bad.split(",")[-1] in proc.stderr, proc.stderr
    proc = run_cli(fresh_deployment.binary, "serve", "--db", fresh_deployment.db, "--listen", "127.0.0.1:1",
                   "--trusted-proxies", "nonsense")
    assert proc.returncode == 2 and "nonsense" in proc.stderr, (proc.returncode, proc.stderr)


def test_a_token_is_limited_by_its_role(server_factory, fresh_deployment):
    srv = server_factory(args=["--threads", "1", "--limits-write-rps", "2", "--limits-write-burst", "6",
                               "--limits-read-rps", "50", "--limits-admin-rps", "50"])
    tokens = fresh_deployment.tokens
    client = srv.client()
    path = "/v1/main/content?status=any&limit=1"
    answered, refused = first_refusal(client, path, 30, token=tokens["write"])
    assert 6 <= answered <= 8, answered
    assert_rate_limited(refused, "token-write", 2, 6)
    samples, _ = parse_metrics(scrape(client))
    assert value(samples, "strata_rate_limited_total", policy="token-write") == 1
    # other tokens have their own buckets, whatever the address
    assert_json(client.get(path, token=tokens["admin"]))
    assert_json(client.get(path, token=tokens["read"]))
    assert_json(client.get("/v1/other/content?status=any&limit=1", token=tokens["other_write"]))
    # the limited token is refused on every route, writes included
    r = client.post("/v1/main/content", token=tokens["write"],
                    json={"type": "post", "slug": uniq("rl"), "title": "t"})
    assert_status(r, 429)


def test_a_token_used_on_another_site_spends_nothing(server_factory, fresh_deployment):
    # a 429 there would tell that the token is valid somewhere: it is 401
    # like an unknown token, and its own bucket is untouched
    srv = server_factory(args=["--threads", "1", "--limits-write-rps", "1", "--limits-write-burst", "4"])
    tokens = fresh_deployment.tokens
    client = srv.client()
    for _ in range(20):
        assert_problem(client.get("/v1/main/content?status=any", token=tokens["other_write"]), 401)
    answered, refused = first_refusal(client, "/v1/other/content?status=any", 10, token=tokens["other_write"])
    assert answered == 4 and refused is not None, answered


def test_made_up_tokens_are_bounded_by_address(server_factory):
    # each made-up token costs a database lookup: per address, requests
    # with Authorization get the most generous role's allowance, no more
    srv = server_factory(args=["--threads", "1", "--limits-read-rps", "3", "--limits-read-burst", "6",
                               "--limits-write-rps", "3", "--limits-write-burst", "6",
                               "--limits-admin-rps", "4", "--limits-admin-burst", "8"])
    client = srv.client()
    statuses = []
    for i in range(30):
        r = client.get("/v1/main/content?status=draft", token=f"st_{uniq('junk')}",
                       headers=as_client("203.0.113.50"))
        statuses.append(r.status)
        if r.status == 429:
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
    assert 8 <= len(statuses) - 1 <= 10, statuses
    assert_rate_limited(r, "client-token", 4, 8)
    # the same address without a token still has its anonymous bucket
    assert_json(client.get("/v1/main/content?limit=1", headers=as_client("203.0.113.50")))


def test_zero_turns_a_limit_off(server_factory):
    srv = server_factory(args=["--threads", "1", "--limits-client-rps", "0"])
    client = srv.client()
    for _ in range(600):
        assert_status(client.get("/v1/main/categories", headers=as_client("203.0.113.60")), 200)


def test_defaults_let_a_busy_client_through(server_factory):
    # defaults: 100/s with bursts of 400 per address. A page view is a
    # handful of requests; 300 at once from one address pass.
    srv = server_factory(args=["--threads", "1"])
    client = srv.client()
    for _ in range(300):
        assert_status(client.get("/v1/main/content?limit=5", headers=as_client("203.0.113.70")), 200)
    answered, refused = first_refusal(client, "/v1/main/content?limit=5", 400,
                                      headers=as_client("203.0.113.70"))
    assert refused is not None, "the default bound exists"
    assert_rate_limited(refused, "client", 100, 400)
