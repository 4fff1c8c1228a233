"""Token management (issue 16; src/content/tokens.c, docs/api.md "Tokens").

An admin token of a site lists, creates (named, with a role and an optional
lifetime) and revokes the site's tokens; the CLI does the same. Tokens are
looked up in memory after their first use, so an authenticated request runs
no statement for its token; a revocation through the route is in force at
once here and, over the bus, on every instance; an expired token is refused
at its expiry; a token's last use is recorded (to the minute)."""

import time

import pytest

from cache_support import db_queries, stats_cost
from redis_support import needs_redis, redis, wait_bus_connected  # noqa: F401 - redis is a fixture
from strata_support import (
    assert_json, assert_problem, create_item, db_run, publish, run_cli, uniq,
)


def create_token(client, admin, **body):
    body.setdefault("name", uniq("tok"))
    body.setdefault("role", "write")
    return assert_json(client.post("/v1/main/tokens", json=body, token=admin), 201)


def listed(client, admin, token_id):
    tokens = assert_json(client.get("/v1/main/tokens", token=admin))["tokens"]
    assert all("hash" not in t and "token" not in t for t in tokens), "a list must never show a secret"
    return next(t for t in tokens if t["id"] == token_id)


def test_an_admin_creates_lists_and_revokes_a_token(server_factory, tokens):
    srv = server_factory()
    client = srv.client()
    admin = tokens["admin"]
    made = create_token(client, admin, name="ci deploy", role="write")
    assert made["token"].startswith("st_") and made["role"] == "write" and made["expires_at"] is None
    draft = create_item(client, made["token"])
    assert draft["author"] == "ci deploy"
    row = listed(client, admin, made["id"])
    assert (row["name"], row["role"], row["revoked_at"], row["expires_at"]) == ("ci deploy", "write", None, None)
    deadline = time.monotonic() + 5  # written by the periodic flush, within a second or so
    while listed(client, admin, made["id"])["last_used_at"] is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listed(client, admin, made["id"])["last_used_at"] is not None

    assert client.delete(f"/v1/main/tokens/{made['id']}", token=admin).status == 204
    assert_problem(client.get(f"/v1/main/content/{draft['id']}/draft", token=made["token"]), 401)
    assert listed(client, admin, made["id"])["revoked_at"] is not None
    assert client.delete(f"/v1/main/tokens/{made['id']}", token=admin).status == 204  # again: nothing changes


def test_only_an_admin_of_the_site_manages_its_tokens_and_bad_requests_say_why(server_factory, tokens):
    srv = server_factory()
    client = srv.client()
    admin = tokens["admin"]
    assert_problem(client.get("/v1/main/tokens", token=tokens["write"]), 403)
    assert_problem(client.get("/v1/main/tokens"), 401)
    assert_problem(client.get("/v1/other/tokens", token=admin), 401)  # another site's admin is nobody here
    assert_problem(client.get("/v1/main/tokens", token=tokens["other_write"]), 401)
    assert_problem(client.delete("/v1/main/tokens/999999", token=admin), 404)
    for body, mentions in (({"name": "x", "role": "root"}, "role"), ({"name": "", "role": "read"}, "name"),
                           ({"name": "n" * 65, "role": "read"}, "name"),
                           ({"name": "x", "role": "read", "expires_in_s": 5}, "expires_in_s"),
                           ({"name": "x", "role": "read", "expires_in_s": "soon"}, "expires_in_s")):
        assert_problem(client.post("/v1/main/tokens", json=body, token=admin), 422, mentions=mentions)


def test_a_token_expires_at_its_time_even_in_memory(server_factory, fresh_deployment, tokens):
    srv = server_factory()
    client = srv.client()
    made = create_token(client, tokens["admin"], role="read", expires_in_s=3600)
    assert made["expires_at"] is not None
    soon = int(time.time() * 1000) + 1500
    db_run(fresh_deployment.db, [("UPDATE tokens SET expires_at = ? WHERE id = ?", (soon, made["id"]))])
    page = "/v1/main/content?status=any&limit=1"
    assert client.get(page, token=made["token"]).status == 200  # read from the database, kept in memory
    assert client.get(page, token=made["token"]).status == 200
    time.sleep(max(0.0, soon / 1000 - time.time()) + 0.3)
    assert_problem(client.get(page, token=made["token"]), 401)


def test_a_request_with_a_known_token_runs_no_statement_for_it(server_factory, fresh_deployment, tokens):
    srv = server_factory(args=["--workers", "1"])
    client = srv.client()
    admin = tokens["admin"]
    item = create_item(client, admin)
    publish(client, admin, item["id"])
    path = f"/v1/main/content/{item['id']}"
    assert client.get(path, token=tokens["read"]).status == 200  # the token is read once
    per_stats = stats_cost(client, admin)
    seen = []
    for _ in range(5):  # a background write (the last-use flush) only adds: the fewest is the reads' own
        before = db_queries(client, admin)
        for _ in range(4):
            assert client.get(path, token=tokens["read"]).status == 200
        seen.append(db_queries(client, admin) - before - per_stats)
        if seen[-1] == 4:
            break
    assert min(seen) == 4, f"4 item reads with a token ran {min(seen)} statements (the item's own: 4)"


def test_the_cli_lists_and_revokes(server_factory, fresh_deployment, strata_bin, tokens):
    env_db = ["--db", str(fresh_deployment.db)]
    made = run_cli(strata_bin, "token", "create", "--site", "main", "--role", "read", "--name", "cli one",
                   "--expires-days", "30", *env_db)
    assert made.returncode == 0, made.stderr
    text = made.stdout.strip()
    listing = run_cli(strata_bin, "token", "list", "--site", "main", *env_db)
    assert listing.returncode == 0 and "cli one" in listing.stdout, listing
    line = next(ln for ln in listing.stdout.splitlines() if "cli one" in ln)
    token_id = line.split()[0]
    srv = server_factory()
    assert srv.client().get("/v1/main/content?status=any&limit=1", token=text).status == 200
    srv.stop()
    revoked = run_cli(strata_bin, "token", "revoke", "--site", "main", "--id", token_id, *env_db)
    assert revoked.returncode == 0, revoked.stderr
    srv = server_factory()
    assert_problem(srv.client().get("/v1/main/content?status=any&limit=1", token=text), 401)
    bad = run_cli(strata_bin, "token", "revoke", "--site", "main", "--id", "999999", *env_db)
    assert bad.returncode == 1 and "no token" in bad.stderr


def test_a_site_never_sees_or_revokes_another_sites_tokens(server_factory, fresh_deployment, strata_bin, tokens):
    env_db = ["--db", str(fresh_deployment.db)]
    theirs = run_cli(strata_bin, "token", "create", "--site", "other", "--role", "read", "--name", "theirs", *env_db)
    assert theirs.returncode == 0, theirs.stderr
    listing = run_cli(strata_bin, "token", "list", "--site", "other", *env_db).stdout
    their_id = next(ln for ln in listing.splitlines() if "theirs" in ln).split()[0]
    srv = server_factory()
    client = srv.client()
    assert all(t["name"] != "theirs" for t in assert_json(client.get("/v1/main/tokens", token=tokens["admin"]))["tokens"])
    assert_problem(client.delete(f"/v1/main/tokens/{their_id}", token=tokens["admin"]), 404)
    assert client.get("/v1/other/content?status=any&limit=1", token=theirs.stdout.strip()).status == 200


@needs_redis
def test_a_revocation_reaches_another_instance_within_the_bus_bound(server_factory, fresh_deployment, redis):
    admin = fresh_deployment.tokens["admin"]
    args = ("--redis", redis.url)
    a = server_factory(fresh_deployment, name="a", args=args)
    b = server_factory(fresh_deployment, name="b", args=args)
    wait_bus_connected(a, admin)
    wait_bus_connected(b, admin)
    made = create_token(a.client(), admin, role="read")
    page = "/v1/main/content?status=any&limit=1"
    on_b = b.client()
    assert on_b.get(page, token=made["token"]).status == 200  # b holds it in memory now
    assert a.client().delete(f"/v1/main/tokens/{made['id']}", token=admin).status == 204
    deadline = time.monotonic() + 1.0
    while on_b.get(page, token=made["token"]).status == 200:
        assert time.monotonic() < deadline, "b still accepts the token a second after its revocation"
        time.sleep(0.01)
    assert_problem(on_b.get(page, token=made["token"]), 401)
