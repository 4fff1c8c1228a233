"""A PostgreSQL replica behind a write never puts the old version back into
any cache tier (issue 14; docs/caching.md, "No old version put back by a
lagging replica").

The replica applies every commit 500 ms late. Instances share one Redis:

  a  the writer (publishes a new title each round)
  b  an instance that reads the replica and never hears of a's writes (it
     listens on another bus channel) and keeps nothing in its own memory:
     right after each write it fills from the lagging replica and offers
     the old version to the L2, again and again
  c  an instance with no L1: every read it answers is the L2's value, or
     its own fill
  d  an ordinary instance (L1 on, on the bus)

What must hold: the L2 never gives c the old version once the write is
answered (the store of b's old value is refused by the tags' write
positions), and neither c nor d serves it once the bus has had its bound to
carry the invalidation (their fills read at or past the write, from the
primary while the replica lags). b is there to try, and does: it reads the
old version for about half a second after each write.
"""

import threading
import time

import pytest

from pg_support import PostgresCluster, needs_postgres
from redis_support import needs_redis, redis, stats, wait_bus_connected  # noqa: F401 - redis is a fixture
from strata_support import DB_BACKEND, Deployment, binary_path, publish_title

# It starts its own primary and replica, so the suite's PostgreSQL pass
# would only run it again.
pytestmark = [needs_postgres, needs_redis,
              pytest.mark.skipif(DB_BACKEND == "postgres", reason="runs once, in the first pass: it has its own "
                                 "PostgreSQL primary and replica")]

APPLY_DELAY_MS = 500
ROUNDS = 12
# as tests/system/test_bus.py: the bus carries an invalidation within this
PROPAGATION_BOUND_S = 0.2


@pytest.fixture
def lagging_cluster():
    primary = PostgresCluster().start()
    replica = None
    try:
        replica = primary.start_replica(APPLY_DELAY_MS)
        yield primary, replica
    finally:
        if replica is not None:
            replica.stop()
        primary.stop()


def deployment_on(directory, url):
    return Deployment.on_database(binary_path(), directory, url)


class Reader(threading.Thread):
    """Reads one item in a loop until stopped; records (start time, title,
    Cache-Status) of every answer."""

    def __init__(self, srv, path):
        super().__init__(daemon=True)
        self.client = srv.client(timeout=10)
        self.path = path
        self.seen = []
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            r = self.client.get(self.path)
            assert r.status == 200, r
            self.seen.append((started, r.json["title"], r.headers.get("cache-status", "")))


def test_a_lagging_replica_never_refills_a_tier_with_the_old_version(server_factory, lagging_cluster, redis,
                                                                      tmp_path):
    primary, replica = lagging_cluster
    dep = deployment_on(tmp_path, primary.url)
    common = ("--redis", redis.url, "--db-replicas", replica.url, "--cache-item-ttl-s", "300")
    a = server_factory(dep, name="a", args=common)
    # b reads the replica however far behind it falls (a loaded machine
    # makes the lag pass the default 1 s bound, and b would read the
    # primary instead: the test would prove nothing; seen once in CI)
    b = server_factory(dep, name="b", args=common + ("--redis-channel", "strata:elsewhere", "--cache-l1", "false",
                                                     "--db-replica-max-lag-ms", "60000"))
    c = server_factory(dep, name="c", args=common + ("--cache-l1", "false"))
    d = server_factory(dep, name="d", args=common)
    for srv in (a, b, c, d):
        wait_bus_connected(srv, dep.tokens["admin"])
    writer = a.client(token=dep.tokens["write"])
    item_id = a.client().get("/v1/main/content?limit=1").json["items"][0]["id"]
    path = f"/v1/main/content/{item_id}"
    time.sleep(APPLY_DELAY_MS / 1000 + 0.3)  # the replica has the seed
    refused_before = stats(b, dep.tokens["admin"])["l2"]["refused"]

    readers = {name: Reader(srv, path) for name, srv in (("b", b), ("c", c), ("d", d))}
    for r in readers.values():
        r.start()
    written = []  # (answered at, title)
    try:
        for n in range(ROUNDS):
            title = f"round {n}"
            publish_title(writer, item_id, title)
            written.append((time.monotonic(), title))
            time.sleep(APPLY_DELAY_MS / 1000 + 0.1)
    finally:
        for r in readers.values():
            r.stopping.set()
        for r in readers.values():
            r.join(15)

    def expected_at(t):
        """The title answered last before t (None before the first write)."""
        titles = [title for at, title in written if at <= t]
        return titles[-1] if titles else None

    order = {title: n for n, (_, title) in enumerate(written)}

    def stale(name, *, bound_s, only=lambda status: True):
        """Reads that began bound_s or more after a write was answered and
        returned something older (a read may return a newer title: its
        write committed before it was answered)."""
        bad = []
        for started, title, status in readers[name].seen:
            want = expected_at(started - bound_s)
            if want is not None and only(status) and order.get(title, -1) < order[want]:
                bad.append((round(started, 3), title, want, status))
        return bad

    l2_hits = lambda status: "detail=l2" in status  # noqa: E731
    c_l2_stale = stale("c", bound_s=0, only=l2_hits)
    c_stale = stale("c", bound_s=PROPAGATION_BOUND_S)
    d_stale = stale("d", bound_s=PROPAGATION_BOUND_S)
    b_old = stale("b", bound_s=0)
    counts = {name: len(r.seen) for name, r in readers.items()}
    c_l2 = sum(1 for _, _, status in readers["c"].seen if l2_hits(status))
    refused = stats(b, dep.tokens["admin"])["l2"]["refused"] - refused_before
    floors = {name: stats(srv, dep.tokens["admin"])["lsn_floor"] for name, srv in (("a", a), ("b", b), ("d", d))}
    print(f"\nreads: {counts}; c's L2 hits {c_l2}; b's reads of the old version {len(b_old)}; "
          f"b's L2 stores refused {refused}; fill floors {floors}")
    # b read the old version (its client saw it) or offered it to the L2 (a
    # refused store: a refresh of b's may have had no client to show it
    # to): either shows the replica's lag reached the tiers' door. Seen in
    # CI under load: no read of b's showed it, c and d filled the L2 first.
    assert b_old or refused > 0, "b should have read the lagging replica's old version (the test would prove nothing)"
    assert c_l2 > 0, "c should have been answered from the L2"
    assert refused > 0, "the L2 should have refused b's old versions"
    assert not c_l2_stale, f"the L2 gave c an old version after the write was answered: {c_l2_stale[:5]}"
    assert not c_stale, f"c served an old version {PROPAGATION_BOUND_S}s after the write: {c_stale[:5]}"
    assert not d_stale, f"d served an old version {PROPAGATION_BOUND_S}s after the write: {d_stale[:5]}"
    assert floors["d"] == floors["a"] != "0/0", "the bus carries each write's position to d's floor"
    assert floors["b"] == "0/0", "b hears of no write"
