"""Hostile traffic at the protocol level (issue 11, findings 4, 7 and 8):

- request smuggling: a head whose body length could be read two ways (two
  Content-Lengths, Content-Length with Transfer-Encoding) is refused with a
  400 problem and the connection is closed, so the request hidden behind it
  is never parsed, let alone run;
- h2o's own early errors (a head it cannot parse) are problem+json with a
  request id, like every other error;
- HTTP/2 rapid reset (CVE-2023-44487): a connection that opens and resets
  streams by the thousand is sent GOAWAY and closed after
  server.http2_max_resets, and the database work it causes stays bounded
  by that number, not by the number of streams it sent.

This module's server runs with HTTP/2 on (prior knowledge, h2c) and
server.max_header_bytes at its maximum, so the head-size test reaches h2o's
own limit.
"""

import json
import socket
import struct
import time

import pytest

from metrics_support import parse_metrics, scrape, value
from strata_support import Client, assert_json, assert_survived, raw_connect, uniq, with_query

MAX_RESETS = 100       # server.http2_max_resets in this module
RESET_WINDOW_MS = 10000
H2O_MAX_REQLEN = 8192 + 4096 * 100  # h2o 2.2.5: the longest head it buffers


@pytest.fixture(scope="module")
def server(deployment):
    cfg = deployment.dir / "protocol.ini"
    # no job runner: its polling would blur the count of database work
    cfg.write_text("[server]\nhttp2 = true\nmax_header_bytes = 1048576\n"
                   f"http2_max_resets = {MAX_RESETS}\nhttp2_reset_window_ms = {RESET_WINDOW_MS}\n"
                   "[jobs]\nenabled = false\n")
    srv = deployment.server(name="protocol-server", args=["--config", cfg]).start()
    yield srv
    srv.assert_stops_cleanly()


@pytest.fixture(autouse=True)
def still_healthy(server):
    yield
    assert_survived(server)


# ---- raw HTTP/1.1 ------------------------------------------------------------------------

class Parsed:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:200]!r}>"


def exchange_until_closed(port, data, timeout=5.0):
    """Sends data on one connection and reads until the server closes it.
    Returns (every response, in order; whether it closed within timeout)."""
    received = b""
    with raw_connect(port, timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        deadline = time.monotonic() + timeout
        closed = False
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed = True
                break
            received += chunk
    return parse_responses(received), closed


def parse_responses(data):
    """Splits a byte stream into HTTP/1.1 responses (Content-Length framed)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"an incomplete response head: {data[:300]!r}"
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        assert len(rest) >= n, f"a truncated body: {rest[:300]!r}"
        out.append(Parsed(int(lines[0].split(" ")[1]), headers, rest[:n]))
        data = rest[n:]
    return out


def assert_early_problem(resp, status, code, mentions):
    """An early error as docs/api.md promises: problem+json, a precise
    detail, a request id in the header and the body, and the close."""
    assert resp.status == status, resp
    assert resp.headers.get("content-type") == "application/problem+json", resp
    p = resp.json
    assert p["status"] == status and p["code"] == code, p
    assert mentions in p["detail"], f"detail should name {mentions!r}: {p['detail']!r}"
    rid = resp.headers.get("x-request-id")
    assert rid and p.get("request_id") == rid, f"X-Request-Id {rid!r} vs body {p.get('request_id')!r}"
    assert resp.headers.get("connection") == "close", resp
    return p


# ---- finding 7: request smuggling ---------------------------------------------------------

def smuggled_create(token, item_type):
    """A request that leaves a trace if it ever runs: an item of a new type."""
    body = json.dumps({"type": item_type, "slug": uniq("s"), "title": "smuggled"}).encode()
    return (f"POST /v1/main/content HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def items_of_type(port, token, item_type):
    c = Client(port, timeout=5)
    try:
        page = assert_json(c.get(with_query("/v1/main/content", {"type": item_type, "status": "any"}),
                                 token=token))
        return len(page["items"])
    finally:
        c.close()


def front_request(kind, hidden):
    """A POST whose body length a proxy in front may read one way and h2o
    (before this fix) the other, the hidden request being the difference."""
    head = "POST /v1/main/content HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    if kind == "two-content-lengths":      # h2o took the first (0): the hidden request was parsed next
        return (head + f"Content-Length: 0\r\nContent-Length: {len(hidden)}\r\n\r\n").encode() + hidden
    if kind == "content-length-then-te":   # h2o read chunked (empty): the hidden request was parsed next
        body = b"0\r\n\r\n" + hidden
        return (head + f"Content-Length: {len(body)}\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + body
    if kind == "te-then-content-length":
        body = b"0\r\n\r\n" + hidden
        return (head + f"Transfer-Encoding: chunked\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    raise AssertionError(kind)


def test_the_hidden_request_runs_when_sent_in_the_open(server, tokens):
    """The trace the smuggling tests look for is real: the same request,
    sent on its own, creates the item."""
    item_type = uniq("open")
    responses, _ = exchange_until_closed(
        server.port, smuggled_create(tokens["write"], item_type) +
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert [r.status for r in responses] == [201, 200], responses
    assert items_of_type(server.port, tokens["read"], item_type) == 1


@pytest.mark.parametrize("kind", ["two-content-lengths", "content-length-then-te", "te-then-content-length"])
@pytest.mark.parametrize("behind", [False, True], ids=["first", "pipelined-after-a-good-request"])
def test_ambiguous_framing_is_refused_and_the_hidden_request_never_runs(server, tokens, kind, behind):
    item_type = uniq("smuggled")
    hidden = smuggled_create(tokens["write"], item_type)
    # a GET after the hidden request: its response must not arrive either
    data = front_request(kind, hidden) + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    if behind:  # the check must not depend on the head being the first read of the connection
        data = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + data
    responses, closed = exchange_until_closed(server.port, data)
    assert closed, f"the connection stayed open after an ambiguous head: {responses}"
    if behind:
        assert responses and responses[0].status == 200, responses
        responses = responses[1:]
    assert len(responses) == 1, f"a response to something after the refused head: {responses}"
    p = assert_early_problem(responses[0], 400, "ambiguous_framing", "RFC 9112")
    assert ("Content-Length" in p["detail"]) and (kind == "two-content-lengths" or "Transfer-Encoding" in p["detail"])
    # the item the hidden request would have created does not exist
    time.sleep(0.2)
    assert items_of_type(server.port, tokens["read"], item_type) == 0, "the smuggled request ran"


def test_a_single_content_length_and_pipelining_still_work(server):
    body = b'{"ok":1}'
    data = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            b"POST /v1/main/content HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") % (len(body), body)
    responses, closed = exchange_until_closed(server.port, data)
    # the POST has no token: 401, and the connection goes on to the last GET
    assert [r.status for r in responses] == [200, 401, 200] and closed, responses


# ---- finding 8: h2o's early errors ---------------------------------------------------------------

EARLY_ERRORS = [
    # (id, raw head, status, code, a word the detail must name)
    ("malformed-request-line", b"HELLO\r\n\r\n", 400, "bad_request_line", "HELLO"),
    ("bad-version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, "bad_request_line", "HTTP/9.9"),
    ("header-without-colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "bad_header",
     "no colon"),
    ("space-in-name", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400, "bad_header", "0x20"),
    ("control-byte", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, "bad_header", "0x01"),
    ("binary", b"\x00\x01\x02garbage\xff\r\n\r\n", 400, "bad_request_line", "0x00"),
    ("over-100-headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
     b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n", 431, "too_many_headers", "100"),
    ("obs-fold", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, "ambiguous_framing",
     "folding"),
    ("content-length-not-a-number", b"POST /v1/main/content HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n",
     400, "bad_content_length", "5x"),
    ("unknown-transfer-encoding", b"POST /v1/main/content HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
     501, "unsupported_transfer_encoding", "gzip"),
    # these two h2o answers through h2o_send_error_* (filters.c)
    ("broken-chunk", b"POST /v1/main/content HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
     400, "bad_request", "chunk"),
    ("body-over-the-limit", b"POST /v1/main/content HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
     413, "body_too_large", "server.max_body_bytes"),
]


@pytest.mark.parametrize("raw,status,code,mentions", [e[1:] for e in EARLY_ERRORS], ids=[e[0] for e in EARLY_ERRORS])
def test_early_errors_are_problems_with_a_request_id(server, raw, status, code, mentions):
    responses, closed = exchange_until_closed(server.port, raw)
    assert len(responses) == 1 and closed, responses
    assert_early_problem(responses[0], status, code, mentions)


def test_a_head_over_h2os_limit_is_a_431_problem(server):
    # exactly h2o's limit, never ended: h2o has read it all when it answers,
    # so the close is clean (no unread bytes, no RST eating the response)
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
    filler = b"".join(b"X-F%02d: %s\r\n" % (i, b"a" * 8000) for i in range(60))
    data = (head + filler + b"X-Last: " + b"b" * H2O_MAX_REQLEN)[:H2O_MAX_REQLEN]
    responses, closed = exchange_until_closed(server.port, data, timeout=10)
    assert len(responses) == 1 and closed, responses
    assert_early_problem(responses[0], 431, "headers_too_large", "bytes")


def test_early_errors_are_logged_with_their_request_id(server):
    responses, _ = exchange_until_closed(server.port, b"HELLO\r\n\r\n")
    rid = responses[0].headers["x-request-id"]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        refused = [r for r in server.log_records() if r.get("msg") == "request refused"]
        if any(r.get("request_id") == rid for r in refused):
            return
        time.sleep(0.05)
    raise AssertionError(f"no 'request refused' log line with request_id {rid}")


# ---- finding 4: HTTP/2 rapid reset ----------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GOAWAY, ENHANCE_YOUR_CALM = 0x7, 0xb


def h2_frames(data):
    """(type, flags, stream id, payload) of each complete frame in data."""
    frames, i = [], 0
    while i + 9 <= len(data):
        length = int.from_bytes(data[i:i + 3], "big")
        if i + 9 + length > len(data):
            break
        ftype, flags = data[i + 3], data[i + 4]
        stream = int.from_bytes(data[i + 5:i + 9], "big") & 0x7FFFFFFF
        frames.append((ftype, flags, stream, data[i + 9:i + 9 + length]))
        i += 9 + length
    return frames


def h2_connect(port):
    import h2.config
    import h2.connection
    s = raw_connect(port, timeout=10)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    s.sendall(conn.data_to_send())
    return s, conn


def h2_get(s, conn, path, token=None, timeout=5.0):
    """One request on an open connection; returns (status, body)."""
    import h2.events
    sid = conn.get_next_available_stream_id()
    headers = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path)]
    if token:
        headers.append(("authorization", f"Bearer {token}"))
    conn.send_headers(sid, headers, end_stream=True)
    s.sendall(conn.data_to_send())
    status, body, deadline = None, b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = s.recv(65536)
        assert data, "the server closed the HTTP/2 connection"
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                status = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived) and ev.stream_id == sid:
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, sid)
            elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                s.sendall(conn.data_to_send())
                return status, body
        s.sendall(conn.data_to_send())
    raise AssertionError(f"no complete response to {path} within {timeout}s")


def item_reads(port):
    """Item reads the server has run: the strata_db_queries_total samples of
    its select_items_* statements (one per content read it began)."""
    c = Client(port, timeout=5)
    try:
        samples, _ = parse_metrics(scrape(c))
    finally:
        c.close()
    return sum(v for (name, labels), v in samples.items()
               if name == "strata_db_queries_total" and dict(labels)["statement"].startswith("select_items_"))


def item_reads_settled(port, timeout=10.0):
    """The count once the jobs in flight have finished (it stops moving)."""
    last, deadline = item_reads(port), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = item_reads(port)
        if now == last:
            return now
        last = now
    raise AssertionError(f"item reads still moving after {timeout}s")


def test_http2_prior_knowledge_serves_requests(server, tokens):
    s, conn = h2_connect(server.port)
    with s:
        for _ in range(3):
            status, body = h2_get(s, conn, "/v1/main/content/1", token=tokens["read"])
            assert status == 200 and json.loads(body)["id"] == 1


def test_a_few_resets_do_not_close_the_connection(server, tokens):
    s, conn = h2_connect(server.port)
    with s:
        for _ in range(MAX_RESETS // 2):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
                                    (":path", "/v1/main/content/2"),
                                    ("authorization", f"Bearer {tokens['read']}")], end_stream=True)
            conn.reset_stream(sid)
        s.sendall(conn.data_to_send())
        status, _ = h2_get(s, conn, "/healthz")
        assert status == 200, "a client under the reset limit was refused"


def drain(s, wait):
    """What the peer has sent within `wait` seconds; b"" and True once it closed."""
    out, deadline = b"", time.monotonic() + wait
    while True:
        s.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = s.recv(1 << 16)
        except (socket.timeout, BlockingIOError):
            return out, False
        except ConnectionResetError:
            return out, True
        if not chunk:
            return out, True
        out += chunk
        if time.monotonic() >= deadline:
            return out, False


def rapid_reset(port, token, streams, batch=1000):
    """Opens `streams` streams on one connection, each reset right after its
    HEADERS (CVE-2023-44487), reading what the server sends meanwhile.
    Returns (streams sent, frames received, whether the server closed)."""
    import hpack
    encoder = hpack.Encoder()

    def frame(ftype, flags, sid, payload):
        return len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + sid.to_bytes(4, "big") + payload

    sent, received, closed = 0, b"", False
    with raw_connect(port, timeout=10) as s:
        s.sendall(PREFACE + frame(0x4, 0, 0, b""))  # the preface and an empty SETTINGS
        while sent < streams and not closed:
            out = b""
            for _ in range(min(batch, streams - sent)):
                sid = 2 * sent + 1
                block = encoder.encode([(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"),
                                        (":path", f"/v1/main/content/{sent % 40 + 1}"),
                                        ("authorization", f"Bearer {token}")])
                out += frame(0x1, 0x5, sid, block) + frame(0x3, 0, sid, (8).to_bytes(4, "big"))  # RST CANCEL
                sent += 1
            try:
                s.sendall(out)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            data, closed_now = drain(s, 0.001)
            received, closed = received + data, closed or closed_now
        deadline = time.monotonic() + 10
        while not closed and time.monotonic() < deadline:
            data, closed = drain(s, 0.2)
            received += data
    return sent, h2_frames(received), closed


def rapid_reset_closes(port):
    c = Client(port, timeout=5)
    try:
        samples, _ = parse_metrics(scrape(c))
    finally:
        c.close()
    return value(samples, "strata_http2_rapid_reset_closes_total")


def test_rapid_reset_closes_the_connection_and_bounds_the_database_work(server, tokens):
    # what one request of this kind costs in item reads (it bypasses the
    # cache: a token is sent)
    c = Client(server.port, timeout=5)
    before = item_reads_settled(server.port)
    for i in range(20):
        assert c.get(f"/v1/main/content/{i % 40 + 1}", token=tokens["read"]).status == 200
    c.close()
    per_request = (item_reads_settled(server.port) - before) / 20
    assert per_request >= 1, "an authorised read should reach the database"

    streams = 5000
    closes_before = rapid_reset_closes(server.port)
    before = item_reads_settled(server.port)
    t0 = time.monotonic()
    sent, frames, closed = rapid_reset(server.port, tokens["read"], streams)
    took = time.monotonic() - t0
    fills = item_reads_settled(server.port) - before

    assert closed, "the connection that reset thousands of streams was left open"
    goaways = [f for f in frames if f[0] == GOAWAY]
    assert goaways, f"no GOAWAY before the close ({len(frames)} frames)"
    assert struct.unpack(">I", goaways[0][3][4:8])[0] == ENHANCE_YOUR_CALM, goaways[0]
    # the streams the server began are those under the limit (and the one
    # refused past it); their database work is all the connection caused
    bound = per_request * (MAX_RESETS + 1) + 5
    assert fills <= bound, f"{fills} item reads for {sent} reset streams (bound {bound:.0f})"
    assert sent >= 1000 and fills * 5 < sent * per_request, f"{fills} item reads for {sent} streams"
    print(f"rapid reset: {sent} streams written in {took:.2f}s until the close, {fills:.0f} item reads "
          f"({per_request:.1f} per request)")
    logged = [r for r in server.log_records() if "rapid reset" in r.get("msg", "")]
    assert logged, "the close is not logged"
    assert rapid_reset_closes(server.port) == closes_before + 1, "the close is not counted in /metrics"
    # the server goes on serving HTTP/2 on new connections
    s, conn = h2_connect(server.port)
    with s:
        assert h2_get(s, conn, "/healthz")[0] == 200
