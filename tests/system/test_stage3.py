"""Stage 3 through its real front (issue 14's second "Done when"): Varnish
(deploy/varnish/strata.vcl) → nginx (deploy/nginx/strata.conf) → three
strata instances → Redis and PostgreSQL, all real processes on random
loopback ports (edge_support.Stack), every instance's purge job pointed at
Varnish.

(a) a publish on any instance, then a read through Varnish returns the new
    representation within 100 ms (p99 over 200 rounds, measured and printed);
(b) kill -9 of one instance under a bounded read load through Varnish and
    nginx, cached and uncached URLs: no failed read at the client;
(c) the PostgreSQL primary stopped for 10 s: cached reads keep answering
    200, writes get 503 problem+json, and succeed again once it is back; the
    alert rule's signal (a scrape without `strata_jobs`) shows meanwhile.
"""

import statistics
import threading
import time

import pytest

from edge_support import NGINX, VARNISHD, Stack, needs_nginx, needs_varnish, varnish_state
from pg_support import needs_postgres
from redis_support import needs_redis
from strata_support import DB_BACKEND, Client, assert_problem, publish_title, uniq

# The stack brings its own PostgreSQL cluster whatever the suite's backend:
# run once, in the default pass, not again in tests/run.sh's PostgreSQL pass.
once = pytest.mark.skipif(DB_BACKEND == "postgres",
                          reason="runs its own PostgreSQL cluster: already run in the suite's default pass")
pytestmark = [needs_varnish, needs_nginx, needs_postgres, needs_redis, once]

ROUNDS = 200
VISIBLE_BOUND_S = 0.100  # the bound on a publish reaching a Varnish reader (p99)
GIVE_UP_S = 3.0          # a round not visible after this is a stale copy stuck at the edge


@pytest.fixture
def stack(strata_bin, tmp_path):
    assert VARNISHD and NGINX
    made = Stack(strata_bin, tmp_path / "stack").start()
    yield made
    problems = made.stop()
    assert not problems, "\n".join(problems)


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def test_a_publish_on_any_instance_reaches_a_varnish_reader_within_100ms(stack):
    edge = Client(stack.varnish.port)
    item = edge.get("/v1/main/content?limit=1").json["items"][0]["id"]
    path = f"/v1/main/content/{item}"
    writers = [s.client(token=stack.tokens["write"]) for s in stack.servers]
    latencies, purged_by, cached_before, stuck, slow = [], [], 0, [], []
    for n in range(ROUNDS):
        # Cached at the edge first, so the round measures the purge, not a
        # miss. The last round's read cached it, but a purge arriving after
        # that read may have dropped it again (CI saw 11 of 200 rounds begin
        # with a miss): up to three reads, a miss caching it for the next.
        for _ in range(3):
            before = edge.get(path)
            assert before.status == 200, before
            if varnish_state(before) == "hit":
                break
            time.sleep(0.01)
        cached_before += varnish_state(before) == "hit"
        title = f"round {n} " + uniq()
        publish_title(writers[n % len(writers)], item, title)
        published = time.monotonic()
        seen, polls = None, []
        while time.monotonic() - published < GIVE_UP_S:
            sent = time.monotonic()
            r = edge.get(path)
            if r.status == 200 and r.json["title"] == title:
                seen = time.monotonic() - published
                break
            polls.append(varnish_state(r))
            time.sleep(0.002)
        if seen is None:
            stuck.append((n, r.json.get("title"), r.headers.get("cache-status")))
        else:
            latencies.append(seen)
            # The purge had reached Varnish by the time the read that saw
            # the new version was sent (or it would have been a hit on the
            # old copy): a bound on the purge's own latency.
            purged_by.append(sent - published)
            if seen > VISIBLE_BOUND_S:
                slow.append(slow_round(n, seen, sent - published, polls, r))
    ms = [v * 1000 for v in latencies]
    print(f"\npublish → visible through Varnish, {len(ms)} rounds (instances in turn): "
          f"p50 {percentile(ms, 50):.1f} ms, p90 {percentile(ms, 90):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
          f"max {max(ms):.1f} ms, mean {statistics.mean(ms):.1f} ms; {cached_before} rounds began with a "
          f"Varnish hit; {len(stuck)} never visible within {GIVE_UP_S}s")
    purge_ms = [v * 1000 for v in purged_by]
    print(f"of which publish → the purge had reached Varnish (the successful read was sent): "
          f"p50 {percentile(purge_ms, 50):.1f} ms, p99 {percentile(purge_ms, 99):.1f} ms, max {max(purge_ms):.1f} ms")
    for line in slow[:10]:
        print(line)
    assert not stuck, f"{len(stuck)} publishes never reached the edge (a stale copy stuck): {stuck[:5]}"
    assert cached_before >= ROUNDS * 0.95, f"only {cached_before} rounds measured a purge (the rest a miss)"
    assert percentile(ms, 99) <= VISIBLE_BOUND_S * 1000, f"p99 {percentile(ms, 99):.1f} ms"


def slow_round(n, seen, sent_after, polls, last):
    """Where a slow round's time went, from what Varnish said meanwhile:
    old copies still served as hits mean the purge had not arrived; old
    copies fetched anew (fwd=miss) mean the purge came but an instance
    still answered the old version (its L1 or the L2 not yet invalidated);
    the rest is the successful read itself (a fill through nginx)."""
    waiting = sum(1 for p in polls if p and p.startswith("hit"))
    refilled = sum(1 for p in polls if p and not p.startswith("hit"))
    return (f"  slow round {n}: {seen * 1000:.0f} ms; {waiting} polls saw the old copy still cached "
            f"(purge not yet there), {refilled} saw an old copy fetched anew (an instance not yet invalidated); "
            f"the read that saw the new version was sent after {sent_after * 1000:.0f} ms and took "
            f"{(seen - sent_after) * 1000:.0f} ms ({last.headers.get('cache-status')}; "
            f"{last.headers.get('server-timing')})")


class Readers:
    """Bounded read load through Varnish in threads: cached URLs (anonymous),
    uncached ones (a read token's requests pass Varnish; lists with a new
    limit miss it once). Every answer is recorded with its time."""

    def __init__(self, port, token, cached_paths, item_ids, threads=4, max_seconds=30, max_requests=40000):
        self.port, self.token = port, token
        self.cached_paths, self.item_ids = cached_paths, item_ids
        self.results, self.lock = [], threading.Lock()
        self.stopping = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.max_requests = max_requests
        self.threads = [threading.Thread(target=self.run, args=(n,), daemon=True) for n in range(threads)]

    def request(self, c, i):
        kind = i % 3
        if kind == 0:
            path, token = self.cached_paths[i % len(self.cached_paths)], None
        elif kind == 1:
            path, token = f"/v1/main/content/{self.item_ids[i % len(self.item_ids)]}", self.token
        else:
            path, token = f"/v1/main/content?limit={1 + (i // 3) % 100}&type=post", None
        return path, c.get(path, token=token) if token else c.get(path)

    def run(self, n):
        c = Client(self.port, timeout=15)
        i = n
        while not self.stopping.is_set() and time.monotonic() < self.deadline and len(self.results) < self.max_requests:
            try:
                path, r = self.request(c, i)
                status = r.status
            except Exception as e:  # a failed read at the client, whatever its form
                path, status = "?", repr(e)
            with self.lock:
                self.results.append((time.monotonic(), status, path))
            i += len(self.threads)
        c.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for t in self.threads:
            t.join(30)


def test_kill9_of_an_instance_under_read_load_fails_no_read(stack):
    edge = Client(stack.varnish.port)
    items = edge.get("/v1/main/content?limit=20").json["items"]
    ids = [i["id"] for i in items]
    cached = [f"/v1/main/content/{i}" for i in ids[:10]] + ["/v1/main/content?limit=20"]
    for p in cached:
        edge.get(p)
    victim = stack.servers[1]
    with Readers(stack.varnish.port, stack.tokens["read"], cached, ids) as load:
        time.sleep(1.5)
        killed_at = time.monotonic()
        victim.kill9()
        time.sleep(3.0)
    results = load.results
    failed = [(s, p) for _, s, p in results if s != 200]
    after = [r for r in results if r[0] > killed_at]
    print(f"\nkill -9 under load: {len(results)} reads through Varnish, {len(after)} after the kill, "
          f"{len(failed)} failed")
    assert len(after) > 100, "too few reads after the kill to show anything"
    assert not failed, f"{len(failed)} reads failed: {failed[:5]}\n{stack.nginx.error_log()[-2000:]}"


def test_postgresql_stopped_for_10s_reads_answer_and_writes_503_then_succeed(stack):
    edge = Client(stack.varnish.port)
    token = stack.tokens["write"]
    items = edge.get("/v1/main/content?limit=10").json["items"]
    cached = [f"/v1/main/content/{i['id']}" for i in items] + ["/v1/main/content?limit=10"]
    for p in cached:
        edge.get(p)
    # In every instance's L1 too, for the reads that go to nginx directly.
    for srv in stack.servers:
        for p in cached:
            assert srv.client().get(p).status == 200
    metrics_of = stack.servers[0]
    assert "strata_jobs{" in Client(metrics_of.port).get("/metrics").text
    reads, writes = [], []
    stopping = threading.Event()

    def read():
        c = Client(stack.varnish.port, timeout=15)
        i = 0
        while not stopping.is_set() and i < 20000:
            try:
                status = c.get(cached[i % len(cached)]).status
            except Exception as e:
                status = repr(e)
            reads.append((time.monotonic(), status))
            i += 1
            time.sleep(0.002)

    def write():
        c = Client(stack.varnish.port, timeout=15)
        i = 0
        while not stopping.is_set() and i < 2000:
            slug = uniq("pg")
            sent = time.monotonic()
            r = c.post("/v1/main/content", token=token, json={"type": "post", "slug": slug, "title": slug})
            writes.append((time.monotonic(), r, sent))
            i += 1
            time.sleep(0.05)

    def read_nginx():
        """Through nginx alone (what Varnish asks on a miss): a copy strata
        holds is answered 200; a miss it cannot fill is strata's own 503 —
        never nginx's 502 "no live upstreams" from instances marked down
        for answering 503 (why deploy/nginx/strata.conf does not retry
        http_503)."""
        c = Client(stack.nginx.port, timeout=15)
        i = 0
        while not stopping.is_set() and i < 4000:
            path = cached[i % len(cached)] if i % 2 else f"/v1/main/content?type={uniq('miss')}"
            try:
                r = c.get(path)
                nginx_reads.append((time.monotonic(), path, r.status, r))
            except Exception as e:
                nginx_reads.append((time.monotonic(), path, repr(e), None))
            i += 1
            time.sleep(0.01)

    nginx_reads = []
    threads = [threading.Thread(target=read, daemon=True) for _ in range(2)]
    threads.append(threading.Thread(target=write, daemon=True))
    threads.append(threading.Thread(target=read_nginx, daemon=True))
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        stack.pg.stop_server()
        down_at = time.monotonic()
        time.sleep(5.0)
        scrape_while_down = Client(metrics_of.port).get("/metrics").text
        time.sleep(max(0.0, down_at + 10.0 - time.monotonic()))
        starting_at = time.monotonic()
        stack.pg.start_server()
        up_at = time.monotonic()
        deadline = up_at + 30
        while time.monotonic() < deadline and not any(t > up_at and r.status == 201 for t, r, _ in writes):
            time.sleep(0.1)
    finally:
        stopping.set()
        for t in threads:
            t.join(30)
    failed_reads = [s for _, s in reads if s != 200]
    # Sent while PostgreSQL was down. A write sent before the stop may have
    # committed just before it and be answered late: 201 is then right (it
    # is checked below to be there), so only what was sent after counts.
    # And only what was answered before the start began: PostgreSQL accepts
    # connections before `pg_ctl start` returns, so a write waiting for a
    # connection may rightly commit in between (CI saw one).
    during = [r for t, r, sent in writes if down_at + 1.0 < sent and t < starting_at]
    late = [r for t, r, sent in writes if sent <= down_at + 1.0 < t and r.status == 201]
    print(f"\nPostgreSQL down {up_at - down_at:.1f} s: {len(reads)} cached reads ({len(failed_reads)} not 200), "
          f"{len(during)} writes while down ({sorted({r.status for r in during})}), "
          f"{sum(1 for t, r, _ in writes if t > up_at and r.status == 201)} succeeded after, "
          f"{len(late)} sent before the stop answered 201 after it")
    assert not failed_reads, f"{len(failed_reads)} cached reads failed: {failed_reads[:5]}"
    held = [(p, s) for t, p, s, _ in nginx_reads if "type=" not in p and s != 200]
    misses_down = [(s, r) for t, p, s, r in nginx_reads if "type=" in p and down_at + 1.0 < t < starting_at]
    print(f"through nginx alone: {len(nginx_reads)} reads, {len(held)} of strata's cached ones not 200, "
          f"{len(misses_down)} misses while down ({sorted({str(s) for s, _ in misses_down})})")
    assert not held, f"{len(held)} reads strata holds failed through nginx: {held[:5]}"
    assert misses_down, "no miss was tried through nginx while PostgreSQL was down"
    for status, r in misses_down:
        assert r is not None, status
        assert_problem(r, 503)
    assert during, "no write was tried while PostgreSQL was down"
    for r in during:
        p = assert_problem(r, 503)
        assert p.get("code") in ("database_unavailable", "database_busy"), p
    assert any(t > up_at and r.status == 201 for t, r, _ in writes), "no write succeeded after PostgreSQL came back"
    for r in late:  # acknowledged, so kept
        item = r.json["id"]
        assert Client(metrics_of.port).get(f"/v1/main/content/{item}/draft", token=token).status == 200, item
    # deploy/prometheus/strata.rules.yml's StrataDatabaseUnavailable: the
    # instance answers /metrics but without the job queue's gauges.
    assert "strata_uptime_seconds" in scrape_while_down
    assert "strata_jobs{" not in scrape_while_down, "the database-unavailable alert would not fire"
