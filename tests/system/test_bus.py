"""Two strata instances sharing one database and one real redis-server: an
invalidation on one reaches the other's L1 (pub/sub), its lag is measured,
and a Redis outage never leaves a stale read behind once Redis is back.
(The L2 itself: test_l2.py.)"""

import re
import subprocess
import time

import pytest

from redis_support import needs_redis, redis, stats, wait_bus_connected  # noqa: F401 - redis is a fixture
from strata_support import publish_title

pytestmark = needs_redis

# Once the bus has carried an invalidation, a read on the other instance this
# long after the write's response must see the write (the lag on loopback is a
# few milliseconds, more under the sanitizers).
PROPAGATION_BOUND_S = 0.2


@pytest.fixture
def pair(server_factory, fresh_deployment, redis):
    args = ("--redis", redis.url, "--cache-item-ttl-s", "300", "--cache-list-ttl-s", "300")
    a = server_factory(fresh_deployment, name="a", args=args)
    b = server_factory(fresh_deployment, name="b", args=args)
    wait_bus_connected(b, fresh_deployment.tokens["admin"])
    wait_bus_connected(a, fresh_deployment.tokens["admin"])
    return a, b


def public_title(client, item_id):
    r = client.get(f"/v1/main/content/{item_id}")
    assert r.status == 200, r
    return r.json["title"], r.headers.get("cache-status", "")


def cache_on(client, item_id):
    """Reads until the item is an L1 hit on that instance."""
    for _ in range(3):
        _, status = public_title(client, item_id)
        if "hit" in status:
            return
    raise AssertionError("the item never became a hit")


def test_a_write_on_one_instance_reaches_the_others_cache(pair, fresh_deployment):
    a, b = pair
    writer = a.client(token=fresh_deployment.tokens["write"])
    reader = b.client()
    item_id = reader.get("/v1/main/content?limit=1").json["items"][0]["id"]
    stale = 0
    rounds = 60
    for n in range(rounds):
        cache_on(reader, item_id)
        title = f"round {n} from a"
        publish_title(writer, item_id, title)
        time.sleep(PROPAGATION_BOUND_S)
        seen, status = public_title(reader, item_id)
        stale += seen != title
    assert stale == 0, f"{stale} of {rounds} reads on b were stale {PROPAGATION_BOUND_S}s after a's write"
    bus = stats(b, fresh_deployment.tokens["admin"])["bus"]
    assert bus["applied"] >= rounds
    lag = bus["lag_ms"]
    print(f"\npropagation lag a→b over {lag['samples']} invalidations: p50 {lag['p50']:.3f} ms, "
          f"p99 {lag['p99']:.3f} ms, max {lag['max']:.3f} ms")
    assert lag["p99"] < PROPAGATION_BOUND_S * 1000


def test_lists_on_the_other_instance_follow_a_publish(pair, fresh_deployment):
    a, b = pair
    writer = a.client(token=fresh_deployment.tokens["write"])
    reader = b.client()
    first = reader.get("/v1/main/content?limit=5")
    assert first.status == 200
    item_id = first.json["items"][0]["id"]
    assert "hit" in reader.get("/v1/main/content?limit=5").headers["cache-status"]
    publish_title(writer, item_id, "a new title for the list")
    time.sleep(PROPAGATION_BOUND_S)
    titles = [i["title"] for i in reader.get("/v1/main/content?limit=5").json["items"]]
    assert "a new title for the list" in titles


def test_a_redis_outage_leaves_no_stale_read(pair, fresh_deployment, redis):
    a, b = pair
    admin = fresh_deployment.tokens["admin"]
    writer = a.client(token=fresh_deployment.tokens["write"])
    reader = b.client()
    item_id = reader.get("/v1/main/content?limit=1").json["items"][0]["id"]
    cache_on(reader, item_id)

    redis.kill()
    # Writes still succeed (the database is the truth) and reads never fail.
    publish_title(writer, item_id, "written while redis was down")
    for _ in range(20):
        r = reader.get(f"/v1/main/content/{item_id}")
        assert r.status == 200, r
        r = writer.get(f"/v1/main/content/{item_id}")
        assert r.status < 500, r

    redis.start()
    wait_bus_connected(b, admin)
    wait_bus_connected(a, admin)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        title, _ = public_title(reader, item_id)
        if title == "written while redis was down":
            break
        time.sleep(0.05)
    assert title == "written while redis was down", "b kept a stale entry after Redis came back"
    assert stats(b, admin)["bus"]["reconnects"] >= 2


def test_flushall_by_an_operator_leaves_no_stale_read(pair, fresh_deployment, redis):
    a, b = pair
    writer = a.client(token=fresh_deployment.tokens["write"])
    reader = b.client()
    item_id = reader.get("/v1/main/content?limit=1").json["items"][0]["id"]
    cache_on(reader, item_id)
    subprocess.run(["redis-cli", "-p", str(redis.port), "flushall"], check=True, capture_output=True)
    publish_title(writer, item_id, "after flushall")
    time.sleep(PROPAGATION_BOUND_S)
    assert public_title(reader, item_id)[0] == "after flushall"


def test_invalidations_travel_on_their_sites_channel(pair, fresh_deployment, redis):
    a, _ = pair
    writer = a.client(token=fresh_deployment.tokens["write"])
    item_id = a.client().get("/v1/main/content?limit=1").json["items"][0]["id"]
    listener = subprocess.Popen(["redis-cli", "-p", str(redis.port), "--raw", "SUBSCRIBE", "strata:invalidate:main",
                                 "strata:invalidate:other"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        publish_title(writer, item_id, "on the main channel")
        time.sleep(0.3)
    finally:
        listener.terminate()
        out, _ = listener.communicate(timeout=10)
    lines = out.splitlines()
    main_messages = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line == "strata:invalidate:main"]
    # <instance>|<µs>|t|<the write's WAL position, 16 hex digits>|<tag> (cache_bus.c)
    shape = re.compile(rf"^[0-9a-f]{{16}}\|\d+\|t\|[0-9a-f]{{16}}\|main:item:{item_id}$")
    assert any(shape.match(m) for m in main_messages), out
    other = [lines[i + 1] for i, line in enumerate(lines[:-1]) if line == "message" and lines[i + 1] != "strata:invalidate:main"]
    assert not other, f"nothing of site main on another site's channel: {out}"
    assert redis.cli("PUBSUB", "NUMPAT") == "1", "the instances subscribe to the pattern strata:invalidate:*"
