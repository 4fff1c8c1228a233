"""cache_support — what the response-cache system tests share: reading the
Cache-Status header, the operator routes (stats, invalidate, flush, warm),
waiting for the start-up cache warming, decoding compressed bodies, bounded
polling, and firing many requests at once, each on its own connection.

Like strata_support it only knows the HTTP contract: the headers the cache
sends (Cache-Status, ETag, Vary, Cache-Control, Surrogate-Key, …) and the
operator routes' JSON.
"""

import gzip
import socket
import threading
import time

import pytest

from strata_support import Client, assert_json, create_item, publish, raw_connect

try:  # Debian: python3-brotli
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the machine
    _brotli = None

try:  # Debian: python3-zstandard
    import zstandard as _zstandard
except ImportError:  # pragma: no cover
    _zstandard = None

try:  # Debian: python3-zstd (an alternative binding)
    import zstd as _zstd
except ImportError:  # pragma: no cover
    _zstd = None

ALL_ENCODINGS = "br, zstd, gzip"

# Cache-Status values (RFC 9211) the server sends.
HIT = "strata; hit"
HIT_L2 = "strata; hit; detail=l2"
STALE_L2 = "strata; hit; detail=l2-stale-while-revalidate"
STALE_WAITING = "strata; hit; detail=stale-while-another-instance-fills"
STALE = "strata; hit; detail=stale-while-revalidate"
MISS_STORED = "strata; fwd=miss; stored"
MISS = "strata; fwd=miss"
COLLAPSED = "strata; fwd=miss; collapsed"
FAILSAFE = "strata; fwd=stale; detail=stale-if-error"
BYPASS = "strata; fwd=bypass; detail=authorization"


def cache_status(resp):
    """The Cache-Status header, whitespace-normalised ("" if absent)."""
    value = resp.headers.get("cache-status", "")
    return "; ".join(part.strip() for part in value.split(";")) if value else ""


def is_miss(resp):
    """fwd=miss in any form (stored, plain, collapsed)."""
    return "fwd=miss" in cache_status(resp)


def assert_cache_status(resp, *expected, what=""):
    got = cache_status(resp)
    assert got in expected, (
        f"{what}: expected Cache-Status {' or '.join(map(repr, expected))}, got {got!r} "
        f"(status {resp.status}, body {resp.body[:200]!r})")


# ---- waiting ---------------------------------------------------------------------

def poll(fn, *, timeout, interval=0.05, what="condition"):
    """Calls fn() until it returns a truthy value or `timeout` s pass; returns
    that value, or fails naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s (last: {last!r})")
        time.sleep(interval)


def wait_warmed(server, timeout=30.0):
    """Waits for the start-up warming's log line {"msg":"cache warmed"}."""
    def warmed():
        return any(r.get("msg") == "cache warmed" for r in server.log_records())
    poll(warmed, timeout=timeout, what=f"{server.name}: the 'cache warmed' log line")


# ---- operator routes -------------------------------------------------------------

def stats(client, token):
    """GET /v1/cache/stats with an admin token."""
    return assert_json(client.get("/v1/cache/stats", token=token), 200)


def db_queries(client, token):
    s = stats(client, token)
    assert isinstance(s.get("db"), dict) and isinstance(s["db"].get("queries"), int), (
        f"stats should carry db.queries: {s}")
    return s["db"]["queries"]


def stats_cost(client, token):
    """Statements one stats call itself executes: the difference between two
    readings, once three pairs in a row agree. A background task (a CDN
    purge job a write enqueued, the view flush) may run statements between
    two readings; such a burst only adds, and passes, so a fixed cost shows
    three times running within 20 pairs."""
    run = []
    for _ in range(20):
        a = db_queries(client, token)
        cost = db_queries(client, token) - a
        run = run + [cost] if run and run[-1] == cost else [cost]
        if len(run) == 3:
            return cost
    assert False, f"a stats call should cost a fixed number of statements; the last pairs saw {run}"


def site_entries(client, token):
    s = stats(client, token)
    return s["site"]["entries"]


def invalidate(client, token, *, site="main", tags=None, keys=None):
    body = {}
    if tags is not None:
        body["tags"] = tags
    if keys is not None:
        body["keys"] = keys
    return assert_json(client.post(f"/v1/{site}/cache/invalidate", json=body, token=token), 200)


def flush(client, token, *, site="main"):
    return assert_json(client.delete(f"/v1/{site}/cache", token=token), 200)


def warm(client, token, *, site="main"):
    return assert_json(client.post(f"/v1/{site}/cache/warm", token=token), 200)


# ---- content ---------------------------------------------------------------------

def published_item(client, token, *, site="main", **fields):
    """Creates and publishes an item; returns the published item (which the
    publish also stored in the cache, write-through)."""
    draft = create_item(client, token, site=site, **fields)
    return publish(client, token, draft["id"], site=site)


def item_path(item, site="main"):
    return f"/v1/{site}/content/{item['id']}"


def slug_path(item, site="main"):
    return f"/v1/{site}/content/by-slug/{item['type']}/{item['slug']}"


# ---- bodies -----------------------------------------------------------------------

def decoder(encoding):
    """A function decoding `encoding`, or pytest.skip when no Debian Python
    package for it is installed."""
    if encoding == "gzip":
        return gzip.decompress
    if encoding == "br":
        if _brotli is None:
            pytest.skip("no brotli decoder: install the Debian package python3-brotli")
        return _brotli.decompress
    if encoding == "zstd":
        if _zstandard is not None:
            def dec(data):
                # stream reader: the frame may not record its content size
                return _zstandard.ZstdDecompressor().decompressobj().decompress(data)
            return dec
        if _zstd is not None:
            return _zstd.decompress
        pytest.skip("no zstd decoder: install the Debian package python3-zstandard (or python3-zstd)")
    raise ValueError(encoding)


# ---- many requests at once -------------------------------------------------------

def concurrent_gets(port, path, n, *, headers=None, timeout=30.0):
    """Sends GET `path` from n threads, each on its own already-open
    connection, released together by a barrier. `port` may be a list: the
    connections are spread over the servers in turn. Returns the n
    Responses, in connection order (or raises the first exception a thread
    met)."""
    ports = port if isinstance(port, (list, tuple)) else [port]
    clients = [Client(ports[i % len(ports)], timeout=timeout) for i in range(n)]
    try:
        for c in clients:
            c._connection().connect()
        barrier = threading.Barrier(n, timeout=timeout)
        results = [None] * n
        errors = []

        def run(i):
            try:
                barrier.wait()
                results[i] = clients[i].get(path, headers=headers)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 5)
        assert not any(t.is_alive() for t in threads), f"a GET {path} thread is still running after {timeout}s"
        if errors:
            raise errors[0]
        return results
    finally:
        for c in clients:
            c.close()


# ---- raw HEAD -------------------------------------------------------------------

def raw_head(port, path, extra_headers="", timeout=5.0):
    """Sends HEAD `path` with Connection: close and reads until the server
    closes. Returns (status, headers dict, bytes after the head)."""
    with raw_connect(port, timeout) as s:
        s.sendall((f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}"
                   f"Connection: close\r\n\r\n").encode("latin-1"))
        s.settimeout(timeout)
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            except socket.timeout:
                raise AssertionError(
                    f"HEAD {path}: the server neither closed nor sent more within {timeout}s: "
                    f"{buf[:300]!r}") from None
            if not chunk:
                break
            buf += chunk
        else:
            raise AssertionError(f"HEAD {path}: the server did not close within {timeout}s: {buf[:300]!r}")
    assert b"\r\n\r\n" in buf, f"HEAD {path}: no complete response head: {buf[:300]!r}"
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest
