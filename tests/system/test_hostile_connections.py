"""Hostile connections (issue 11, findings 2 and 3): a head that never ends
is answered 431 (or 414) as soon as it passes its bound, connections are
capped in total and per client, memory goes back after a flood, and a
server out of file descriptors rests instead of spinning.

Every load loop here is bounded in count and in time; all traffic is to
127.0.0.1. The memory figures are measured on the binary under test; under
ASan (`make test`) the sanitizer's allocator keeps freed memory, so the
issue's figures are checked on the release build (see
test_trickling_heads_are_bounded_and_memory_comes_back)."""

import collections
import json
import os
import resource
import socket
import time

import pytest

from strata_support import Server, fresh_release_binary, raw_connect, read_response, wait_closed

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def runnable_threads(pid):
    """How many of the process's threads are running or waiting for a CPU."""
    count = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                count += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except OSError:
            pass  # the thread ended
    return count


def raise_own_fd_limit(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"this process may open only {hard} files; the test needs {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def metric(port, name, labels=""):
    """A sample of /metrics. Tried for up to 5 s: right after a test closes
    its connections the server may not have counted them out yet, and a
    new connection is then still over a cap."""
    deadline = time.monotonic() + 5
    resp = None
    while resp is None and time.monotonic() < deadline:
        s = raw_connect(port)
        try:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            resp = read_response(s, 10)
        except (BrokenPipeError, ConnectionResetError):
            resp = None
        finally:
            s.close()
        if resp is None:
            time.sleep(0.1)
    assert resp is not None and resp.status == 200, resp
    wanted = name + labels
    for line in resp.body.decode().splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{wanted} not in /metrics")


def healthz(port, timeout=5.0):
    s = raw_connect(port, timeout)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        return read_response(s, timeout)
    finally:
        s.close()


def pad_line(n, size=4096):
    return b"X-Pad-%04d: " % n + b"a" * (size - 14) + b"\r\n"


# ---- the head bound ----------------------------------------------------------------

LIMIT = 4096
BOUND = LIMIT + 8192  # server.max_header_bytes + the request line allowance


@pytest.fixture(scope="module")
def small_heads(deployment):
    srv = deployment.server(args=["--max-header-bytes", str(LIMIT)], name="small-heads").start()
    yield srv
    srv.stop()


def assert_raw_problem(resp, status):
    assert resp is not None, "the server closed without answering"
    assert resp.status == status, resp
    assert resp.headers.get("content-type") == "application/problem+json", resp
    body = json.loads(resp.body)
    assert body["status"] == status and body["detail"], body
    return body


def assert_head_refused(resp, status, code):
    body = assert_raw_problem(resp, status)
    assert body["code"] == code, body
    assert "server.max_header_bytes" in body["detail"], body
    assert resp.headers.get("x-request-id"), resp.headers
    assert body["request_id"] == resp.headers["x-request-id"], (body, resp.headers)
    assert resp.headers.get("connection") == "close", resp.headers


def test_unfinished_head_over_the_bound_is_answered_431_before_it_ends(small_heads):
    s = raw_connect(small_heads.port)
    try:
        s.sendall(b"GET /v1/main/content HTTP/1.1\r\nHost: t\r\n")
        sent = 0
        while sent <= BOUND:  # never the empty line that would end the head
            s.sendall(pad_line(sent // 4096))
            sent += 4096
        resp = read_response(s, 5)
        assert_head_refused(resp, 431, "headers_too_large")
        assert wait_closed(s, 5) is not None, "the connection stayed open after the 431"
    finally:
        s.close()
    assert healthz(small_heads.port).status == 200


def test_request_line_that_never_ends_is_answered_414(small_heads):
    s = raw_connect(small_heads.port)
    try:
        s.sendall(b"GET /" + b"a" * (BOUND + 100))
        assert_head_refused(read_response(s, 5), 414, "uri_too_long")
    finally:
        s.close()


def test_the_bound_holds_on_the_second_request_of_a_keep_alive_connection(small_heads):
    s = raw_connect(small_heads.port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert read_response(s, 5).status == 200
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        try:
            for i in range(BOUND // 4096 + 2):
                s.sendall(pad_line(i))
                time.sleep(0.01)  # arrives over several reads, as a trickle does
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused once past the bound: the 431 is waiting to be read
        assert_head_refused(read_response(s, 5), 431, "headers_too_large")
    finally:
        s.close()


def test_a_head_that_ends_within_the_bound_keeps_the_exact_limits(small_heads):
    # Over server.max_header_bytes but within the allowance: request.c's
    # exact check answers, with its own detail.
    s = raw_connect(small_heads.port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + pad_line(0, LIMIT + 100) + b"\r\n")
        body = assert_raw_problem(read_response(s, 5), 431)
        assert "request headers total" in body["detail"], body
    finally:
        s.close()


def test_a_body_larger_than_the_bound_is_not_taken_for_a_head(small_heads):
    body = b'{"title": "' + b"b" * (3 * BOUND) + b'"}'
    s = raw_connect(small_heads.port)
    try:
        s.sendall(b"POST /v1/main/content HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 4096):  # over several reads
            s.sendall(body[i:i + 4096])
            time.sleep(0.002)
        resp = read_response(s, 10)
        assert resp is not None and resp.status == 401, resp  # no token: the route answered
    finally:
        s.close()


def test_pipelined_requests_past_the_bound_together_are_each_served(small_heads):
    # Eight complete heads of ~2 KB in one write: more than the bound in the
    # buffer, but each head ends well within it.
    one = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + pad_line(0, 2000) + b"\r\n"
    s = raw_connect(small_heads.port)
    try:
        s.sendall(one * 8)
        for i in range(8):
            resp = read_response_keep(s)
            assert resp is not None and resp.status == 200, (i, resp)
    finally:
        s.close()


Reply = collections.namedtuple("Reply", "status body")


def read_response_keep(sock):
    """One response of several on a keep-alive connection (read_response
    would read the next ones' bytes into this one's body): byte by byte up
    to the head, then the Content-Length."""
    sock.settimeout(5)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        c = sock.recv(1)
        if not c:
            return None
        head += c
    lines = head.decode("latin-1").split("\r\n")
    length = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
    body = b""
    while len(body) < length:
        body += sock.recv(length - len(body))
    return Reply(int(lines[0].split()[1]), body)


# ---- connection caps ----------------------------------------------------------------------


def open_and_use(port, count):
    """count keep-alive connections, each having had one response: the
    server has accepted and counted every one."""
    socks = []
    for _ in range(count):
        s = raw_connect(port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = read_response(s, 5)
        assert resp is not None and resp.status == 200, resp
        socks.append(s)
    return socks


def assert_refused(port):
    s = raw_connect(port)
    try:
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return
        assert read_response(s, 5) is None, "a connection over the cap was served"
    finally:
        s.close()


def served_again(port, deadline_s=5.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            resp = healthz(port, 2)
            if resp is not None and resp.status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def test_connections_per_client_are_capped(server_factory):
    srv = server_factory(args=["--max-connections-per-client", "8"])
    time.sleep(0.3)  # wait_healthy's connection is closed and counted out
    socks = open_and_use(srv.port, 8)
    try:
        assert_refused(srv.port)
        socks.pop().close()
        assert served_again(srv.port), "a freed place was not given to a new connection"
    finally:
        for s in socks:
            s.close()
    assert metric(srv.port, "strata_connections_refused_total", '{reason="max_connections_per_client"}') >= 1


def test_connections_are_capped_in_total(server_factory):
    srv = server_factory(args=["--max-connections", "6", "--max-connections-per-client", "0"])
    time.sleep(0.3)
    socks = open_and_use(srv.port, 6)
    try:
        assert_refused(srv.port)
        socks.pop().close()
        assert served_again(srv.port)
    finally:
        for s in socks:
            s.close()
    assert metric(srv.port, "strata_connections_refused_total", '{reason="max_connections"}') >= 1
    log = srv.log_text()
    assert "server.max_connections reached" in log


# ---- 2,000 trickling heads ----------------------------------------------------------------

FLOOD = 2000
MB = 1 << 20


def trickle_flood(port, pid, rounds):
    """FLOOD connections each trickle 4 KB header lines, one line per
    connection per round, never ending the head. Returns (peak RSS, 431s)."""
    socks = []
    peak = rss_bytes(pid)
    deadline = time.monotonic() + 120
    try:
        for _ in range(FLOOD):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setblocking(False)
            socks.append(s)
        start = b"GET /v1/main/content HTTP/1.1\r\nHost: t\r\n"
        for s in socks:
            s.send(start)
        for r in range(rounds):
            assert time.monotonic() < deadline, "the flood took too long"
            line = pad_line(r)
            for s in socks:
                try:
                    s.send(line)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
            time.sleep(0.2)
            peak = max(peak, rss_bytes(pid))
        refused = 0
        for s in socks:
            s.setblocking(True)
            s.settimeout(2)
            try:
                resp = read_response(s, 2)
            except (OSError, AssertionError):
                resp = None
            refused += resp is not None and resp.status == 431
        peak = max(peak, rss_bytes(pid))
        return peak, refused
    finally:
        for s in socks:
            s.close()


def is_asan(binary):
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def flood_once(srv):
    """(RSS before, peak, after, 431s): warm, flood, close, then wait up to
    15 s for RSS to come back within 10 % of where it was."""
    pid = srv.proc.pid
    for _ in range(50):  # warm: the route, the cache, h2o's allocators
        assert healthz(srv.port).status == 200
    time.sleep(0.5)
    before = rss_bytes(pid)
    # 16 KiB of headers + 8 KiB for the line: the 7th 4 KB line passes the bound.
    peak, refused = trickle_flood(srv.port, pid, rounds=8)
    after = rss_bytes(pid)
    deadline = time.monotonic() + 15
    while after > before * 1.10 and time.monotonic() < deadline:
        time.sleep(0.25)
        after = rss_bytes(pid)
    print(f"\nRSS before {before / MB:.1f} MB, peak {peak / MB:.1f} MB (+{(peak - before) / MB:.1f}), "
          f"after {after / MB:.1f} MB; 431s {refused}/{FLOOD}")
    return before, peak, after, refused


@pytest.mark.parametrize("build", ["under_test", "release"])
def test_trickling_heads_are_bounded_and_memory_comes_back(server_factory, build):
    """The issue's figures (growth <= 100 MB, back within 10 %) are for the
    release build: run on it directly, or on build/strata beside the ASan
    build under test when it is up to date. Under ASan (redzones, shadow
    memory, an allocator that keeps what it freed) the bound is 200 MB and
    the check is that a second flood reuses the first one's memory."""
    raise_own_fd_limit(FLOOD + 200)
    binary = server_factory.default_deployment.binary
    asan = is_asan(binary)
    if build == "release":
        if not asan:
            pytest.skip("the binary under test is the release build: measured as under_test")
        binary = fresh_release_binary()
        if binary is None:
            pytest.skip("build/strata is missing or older than src/: `make build/strata` to measure it")
        asan = False
    # ASan's quarantine would hold every freed buffer (up to 256 MB) out of
    # reuse: off, so that reuse is what the second flood shows.
    env = {"ASAN_OPTIONS": "quarantine_size_mb=0:thread_local_quarantine_size_kb=0"} if asan else {}
    srv = Server(server_factory.default_deployment, args=["--max-connections-per-client", str(FLOOD + 100)],
                 env=env)
    srv.binary = binary
    server_factory.servers.append(srv)
    srv.start()
    before, peak, after, refused = flood_once(srv)
    assert refused >= FLOOD * 0.9, f"only {refused} of {FLOOD} connections were answered 431"
    if asan:
        assert peak - before <= 200 * MB, f"RSS grew by {(peak - before) / MB:.1f} MB (ASan)"
        _, peak2, _, _ = flood_once(srv)
        assert peak2 <= peak * 1.10, f"a second flood took RSS from {peak / MB:.1f} to {peak2 / MB:.1f} MB"
    else:
        assert peak - before <= 100 * MB, f"RSS grew by {(peak - before) / MB:.1f} MB during the flood"
        assert after <= before * 1.10, f"RSS {after / MB:.1f} MB after the flood, {before / MB:.1f} MB before"
    assert metric(srv.port, "strata_connections_refused_total", '{reason="head_too_large"}') >= refused
    assert healthz(srv.port).status == 200


# ---- out of file descriptors -----------------------------------------------------------------


class LimitedServer(Server):
    """A server whose open-file limit is hard=soft=256 (prlimit execs it, so
    the PID is the server's)."""

    def argv(self):
        return ["prlimit", "--nofile=256:256", "--"] + super().argv()


def hold_400_connections(srv):
    """400 connections to a server that may open 256 files: it must rest,
    not spin, and serve again once some close. Returns nothing; asserts."""
    raise_own_fd_limit(1000)
    pid = srv.proc.pid
    socks = []
    try:
        for _ in range(400):
            socks.append(socket.create_connection(("127.0.0.1", srv.port), timeout=5))
        time.sleep(1.0)  # the server accepts what it can
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        runnable = []
        for _ in range(150):  # 3 s
            runnable.append(runnable_threads(pid))
            time.sleep(0.02)
        used = (cpu_seconds(pid) - cpu0) / (time.monotonic() - t0)
        mean_runnable = sum(runnable) / len(runnable)
        print(f"\n400 connections, 256 files: {used:.3f} CPU-seconds per second, "
              f"{mean_runnable:.2f} threads runnable on average")
        assert used < 0.5, f"{used:.2f} CPU-seconds per second with 400 connections and 256 files"
        # On a busy machine a spinning loop gets less than a whole CPU, but
        # it is always runnable (the old code: 2.0, both loops); a resting
        # one sleeps.
        assert mean_runnable < 0.5, f"{mean_runnable:.2f} threads runnable on average: the loops spin"
        for s in socks[:200]:  # the oldest, which the server holds
            s.close()
        del socks[:200]
        assert served_again(srv.port, 5), "no /healthz on a freed descriptor within 5 s"
    finally:
        for s in socks:
            s.close()


def limited_server(server_factory, *args):
    srv = LimitedServer(server_factory.default_deployment,
                        args=["--max-connections-per-client", "0", "--threads", "2", *args])
    server_factory.servers.append(srv)
    return srv.start()


def test_by_default_connections_leave_the_server_its_own_descriptors(server_factory):
    # server.max_connections = 0: 256 - 64 connections, the rest refused.
    srv = limited_server(server_factory)
    hold_400_connections(srv)
    assert metric(srv.port, "strata_connections_refused_total", '{reason="max_connections"}') >= 1
    caps = [r for r in srv.log_records() if r.get("msg") == "connection caps"]
    assert caps and caps[0]["max_connections"] == 256 - 64, caps
    assert "unable to open" not in srv.log_text()  # the job runner, the workers had their files


def test_out_of_descriptors_rests_instead_of_spinning(server_factory):
    srv = limited_server(server_factory, "--max-connections", "1000")
    hold_400_connections(srv)
    assert metric(srv.port, "strata_accept_paused_total") >= 1
    lines = [r for r in srv.log_records() if "accepting paused" in r.get("msg", "")]
    assert 1 <= len(lines) <= 3, lines  # once per 10 s interval
