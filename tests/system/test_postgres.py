"""What only PostgreSQL brings (issue 12): a database server that can go
away and come back, a URL with a password in it, and several instances
migrating one database at once.

Each test has a cluster or a database of its own (tests/system/pg_support.py),
so stopping the server here disturbs no other test. They run in the suite's
PostgreSQL pass (STRATA_TEST_DB=postgres).
"""

import subprocess
import threading
import time

import pytest

from pg_support import PostgresCluster
from strata_support import (DB_BACKEND, Deployment, Server, assert_json, binary_path, run_cli, run_ok, uniq,
                            wait_for)

pytestmark = pytest.mark.skipif(DB_BACKEND != "postgres", reason="PostgreSQL pass only (STRATA_TEST_DB=postgres)")


@pytest.fixture
def own_cluster():
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


def deployment_on(binary, directory, url):
    run_ok(binary, "migrate", "--db", url)
    run_ok(binary, "seed", "--db", url, "--items", 20)
    token = run_ok(binary, "token", "create", "--site", "main", "--role", "admin", "--name", "ops",
                   "--db", url).stdout.strip()
    return Deployment(binary, directory, url, {"admin": token})


class Load:
    """Readers of warmed keys and a writer creating items, in threads, until
    stopped; every answer recorded with the time it came."""

    def __init__(self, srv, token, paths):
        self.srv, self.token, self.paths = srv, token, paths
        self.reads, self.writes, self.created = [], [], []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.read, daemon=True) for _ in range(2)]
        self.threads.append(threading.Thread(target=self.write, daemon=True))

    def read(self):
        c = self.srv.client(timeout=10)
        i = 0
        while not self.stopping.is_set():
            r = c.get(self.paths[i % len(self.paths)])
            self.reads.append((time.monotonic(), r.status))
            i += 1

    def write(self):
        c = self.srv.client(timeout=10)
        while not self.stopping.is_set():
            slug = uniq("pg")
            r = c.post("/v1/main/content", token=self.token, json={"type": "post", "slug": slug, "title": slug})
            self.writes.append((time.monotonic(), r.status, r.json if r.status >= 400 else None))
            if r.status == 201:
                self.created.append(r.json["id"])
            time.sleep(0.01)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(15)


def test_postgresql_stopped_under_load(strata_bin, tmp_path, own_cluster):
    deployment = deployment_on(strata_bin, tmp_path, own_cluster.new_database())
    token = deployment.tokens["admin"]
    srv = Server(deployment, name="on-pg").start()
    try:
        c = srv.client()
        items = assert_json(c.get("/v1/main/content?limit=10"))["items"]
        paths = [f"/v1/main/content/{i['id']}" for i in items] + ["/v1/main/content?limit=10"]
        for p in paths:
            assert_json(c.get(p))  # warmed: these are the cached keys
        with Load(srv, token, paths) as load:
            time.sleep(1.0)
            own_cluster.stop_server()
            down_at = time.monotonic()
            wait_for("/readyz to say not ready", lambda: c.get("/readyz").status == 503, 15)
            time.sleep(2.0)
            own_cluster.start_server()
            up_at = time.monotonic()
            wait_for("/readyz to say ready again", lambda: c.get("/readyz").status == 200, 30)
            wait_for("a write to succeed again", lambda: any(t > up_at and s == 201 for t, s, _ in load.writes), 30)
        reads_5xx = [s for _, s in load.reads if s >= 500]
        assert not reads_5xx, f"{len(reads_5xx)} reads of cached keys answered 5xx ({set(reads_5xx)})"
        during = [(s, body) for t, s, body in load.writes if t >= down_at and s != 201]
        assert during, "no write was tried while PostgreSQL was down"
        assert all(s == 503 for s, _ in during), f"writes while down answered {set(s for s, _ in during)}, not 503"
        assert {(b or {}).get("code") for _, b in during} <= {"database_unavailable", "database_busy"}, during[:3]
        assert srv.alive()
        # nothing acknowledged is lost (each worker's connection comes back on
        # its own, within its backoff of at most 1 s: a read may meet one
        # that has not yet, and is answered 503 meanwhile)
        for item_id in load.created:
            wait_for(f"item {item_id}'s draft", lambda i=item_id: c.get(f"/v1/main/content/{i}/draft",
                                                                        token=token).status == 200, 10)
    finally:
        srv.stop()


def test_the_password_never_reaches_logs_metrics_or_messages(strata_bin, tmp_path, own_cluster):
    url = own_cluster.new_database()
    secret = own_cluster.password
    assert secret and secret in url
    deployment = deployment_on(strata_bin, tmp_path, url)
    srv = Server(deployment, name="secret", args=["--log-level", "debug"]).start()
    try:
        c = srv.client()
        assert_json(c.get("/v1/main/content?limit=3"))
        seen = [c.get("/metrics").text, c.get("/api/performance/metrics", token=deployment.tokens["admin"]).text]
        own_cluster.stop_server()
        seen.append(c.post("/v1/main/content", token=deployment.tokens["admin"],
                           json={"type": "post", "slug": uniq("s"), "title": "t"}).text)
        own_cluster.start_server()
    finally:
        srv.stop()
    seen.append(srv.log_text())
    wrong = url.replace(f":{own_cluster.port}/", ":1/")
    for command in (["migrate", "--db", wrong], ["seed", "--db", wrong], ["check-config", "--db", wrong]):
        p = run_cli(strata_bin, *command, timeout=30)
        seen += [p.stdout, p.stderr]
    assert "***" in "".join(seen), "the URL is never shown at all: nothing tells the operator which database"
    for text in seen:
        assert secret not in text


def test_instances_migrating_one_database_at_once(strata_bin, own_cluster):
    url = own_cluster.new_database()
    procs = [subprocess.Popen([str(binary_path()), "migrate", "--db", url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    versions = own_cluster.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations",
                                database=url.rsplit("/", 1)[1])
    assert versions == "1,2,3,4,5,6,7,8", versions
