"""strata_support — what the system tests share: the binary, a deployment
(a database with sites and tokens), a running server, an HTTP client, raw
sockets, and the assertions every area repeats.

The tests drive the real `build/strata` over real loopback sockets. Nothing
here knows the server's internals: it only knows docs/api.md and the CLI
contract. Every wait is bounded by a timeout, every process is one we started
and is stopped by its PID.
"""

import http.client
import json as jsonlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

# RFC 3339 UTC with milliseconds, as docs/api.md promises.
TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SANE_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

ITEM_KEYS = {
    "id", "site", "type", "slug", "status", "title", "excerpt", "body", "fields",
    "category", "tags", "author", "created_at", "updated_at", "published_at",
    "views", "draft_version", "published_version",
}
SUMMARY_KEYS = ITEM_KEYS - {"body"}
DRAFT_KEYS = {
    "id", "site", "type", "slug", "status", "version", "title", "excerpt", "body",
    "fields", "category", "tags", "author", "saved_at", "published_version",
}


# ---- the binary and its command line ---------------------------------------

def binary_path():
    env = os.environ.get("STRATA_BIN")
    if env:
        return Path(env).resolve()
    return REPO / "build" / "strata"


def clean_env(extra=None):
    """The test process's environment without any STRATA_* variable, so a
    developer's shell cannot change what a test observes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATA_")}
    if extra:
        env.update(extra)
    return env


def run_cli(binary, *args, env=None, timeout=60):
    """Runs `strata ARGS…` to completion; returns the CompletedProcess (text)."""
    return subprocess.run(
        [str(binary), *[str(a) for a in args]],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
        timeout=timeout,
    )


def run_ok(binary, *args, env=None, timeout=60):
    proc = run_cli(binary, *args, env=env, timeout=timeout)
    assert proc.returncode == 0, (
        f"`strata {' '.join(map(str, args))}` exited {proc.returncode}\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}")
    return proc


def ephemeral_low():
    """The lowest port of the kernel's range for outgoing connections."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_FREE_PORT_FLOOR = 10000
_ports_handed_out = set()


def free_port():
    """A port on 127.0.0.1 nothing listens on now, for a server a test is about
    to start. It is chosen below the kernel's ephemeral range: a port picked
    by bind(0) comes from that range, and any outgoing connection made before
    the server binds (a health poll, strata's own Redis or PostgreSQL
    connection) may be given the same number, so the server's bind fails
    (varnishd: "Could not get socket: Address already in use", CI 2026-12-06).
    A port is handed out once per test process."""
    high = ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(_FREE_PORT_FLOOR, high)
        if port in _ports_handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        _ports_handed_out.add(port)
        return port
    raise AssertionError(f"no free port in {_FREE_PORT_FLOOR}-{high - 1} after 200 tries")


def uniq(prefix="t"):
    """A fresh lowercase word valid as a slug, type, tag or category slug."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---- the database backend -------------------------------------------------
#
# The suite runs on the embedded SQLite by default. With STRATA_TEST_DB=postgres
# (tests/run.sh's second pass) every deployment is a database of its own in
# the PostgreSQL cluster at STRATA_TEST_PG_URL (a role allowed to create
# databases), made from the template deployment's database with CREATE
# DATABASE … TEMPLATE (a file copy, as the SQLite deployments copy a file)
# and dropped when the deployment is done with.

DB_BACKEND = "postgres" if os.environ.get("STRATA_TEST_DB") == "postgres" else "sqlite"


def pg_admin(sql, *, url=None, timeout=60):
    """Runs sql with psql on the cluster (its maintenance database by
    default); returns stdout, unaligned and without headers."""
    url = url or pg_url("postgres")
    proc = subprocess.run(["psql", url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"psql {sql!r} failed: {proc.stderr.strip()}"
    return proc.stdout


def pg_url(database):
    """STRATA_TEST_PG_URL with its database replaced."""
    parts = urllib.parse.urlsplit(os.environ["STRATA_TEST_PG_URL"])
    return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def pg_database_of(url):
    return urllib.parse.urlsplit(url).path.lstrip("/")


def db_connect(db):
    """A DB-API connection to a deployment's database, whichever the engine:
    sqlite3 for a file, psycopg2 (Debian's python3-psycopg2) for a
    postgres:// URL. For what a test sets or reads behind the API's back."""
    if str(db).startswith(("postgres://", "postgresql://")):
        import psycopg2
        return psycopg2.connect(str(db))
    import sqlite3
    return sqlite3.connect(str(db), timeout=10)


def _paramstyle(conn, sql):
    """sqlite3 takes '?', psycopg2 '%s': the tests write '?'."""
    return sql if conn.__class__.__module__.startswith("sqlite3") else sql.replace("?", "%s")


def db_rows(db, sql, params=()):
    """The rows of one query, as tuples (blobs as bytes)."""
    conn = db_connect(db)
    try:
        cur = conn.cursor()
        cur.execute(_paramstyle(conn, sql), params)
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cur.fetchall()]
    finally:
        conn.close()


def db_run(db, statements):
    """[(sql, params), …] in one transaction."""
    conn = db_connect(db)
    try:
        cur = conn.cursor()
        for sql, params in statements:
            cur.execute(_paramstyle(conn, sql), params)
        conn.commit()
    finally:
        conn.close()


# The tables a write of strata touches (PostgreSQL's WriteLock locks them all).
WRITE_TABLES = ("sites", "tokens", "categories", "items", "item_tags", "versions", "publications", "autosaves",
                "previews", "jobs", "views_hourly")


class WriteLock:
    """The database's write lock, held by another process as a long
    transaction would hold it: strata's writers wait until release().
    SQLite: BEGIN IMMEDIATE. PostgreSQL: LOCK TABLE … IN EXCLUSIVE MODE on
    every table strata writes (reads go on; strata's own lock_timeout
    answers a write that waits longer than 5 s)."""

    def __init__(self, db):
        self.db = db
        self.conn = None

    def acquire(self):
        self.conn = db_connect(self.db)
        if DB_BACKEND == "postgres" and str(self.db).startswith("postgres"):
            self.conn.cursor().execute(f"LOCK TABLE {', '.join(WRITE_TABLES)} IN EXCLUSIVE MODE")
        else:
            self.conn.isolation_level = None
            self.conn.execute("BEGIN IMMEDIATE")
        return self

    def release(self):
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def sqlite_only(reason):
    """Marks a test about the SQLite file itself (its locks, its WAL, its
    path on disk): skipped on the PostgreSQL pass, saying why."""
    import pytest
    return pytest.mark.skipif(DB_BACKEND != "sqlite", reason=f"SQLite only: {reason}")


# ---- a deployment: one database with sites `main` and `other` and tokens ---

class Deployment:
    """A directory holding one strata database, the tokens made for it, and
    the servers started on it."""

    TOKEN_SPECS = {
        # key: (site, role, name)
        "read": ("main", "read", "reader"),
        "write": ("main", "write", "writer"),
        "admin": ("main", "admin", "admin"),
        "other_write": ("other", "write", "other-writer"),
        "other_read": ("other", "read", "other-reader"),
    }

    def __init__(self, binary, directory, db, tokens):
        self.binary = binary
        self.dir = Path(directory)
        self.db = str(db)
        self.tokens = dict(tokens)

    @classmethod
    def create(cls, binary, directory, items=40):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        db = directory / "strata.db"
        if DB_BACKEND == "postgres":
            name = "strata_" + uuid.uuid4().hex[:16]
            pg_admin(f"CREATE DATABASE {name}")
            db = pg_url(name)
        run_ok(binary, "migrate", "--db", db)
        run_ok(binary, "seed", "--db", db, "--items", items)
        run_ok(binary, "site", "create", "other", "--db", db)
        tokens = {}
        for key, (site, role, name) in cls.TOKEN_SPECS.items():
            proc = run_ok(binary, "token", "create", "--site", site, "--role", role,
                          "--name", name, "--db", db)
            lines = proc.stdout.strip().splitlines()
            assert len(lines) == 1 and lines[0].strip(), (
                f"token create should print exactly the token on one line, got {proc.stdout!r}")
            tokens[key] = lines[0].strip()
        return cls(binary, directory, db, tokens)

    @classmethod
    def on_database(cls, binary, directory, url, items=10):
        """A small deployment on a database of its own (a test's own
        PostgreSQL cluster): migrated, `items` seeded in site main, and an
        admin and a write token."""
        run_ok(binary, "migrate", "--db", url)
        run_ok(binary, "seed", "--db", url, "--items", items)
        tokens = {}
        for key, role in (("admin", "admin"), ("write", "write")):
            tokens[key] = run_ok(binary, "token", "create", "--site", "main", "--role", role, "--name", key,
                                 "--db", url).stdout.strip()
        return cls(binary, directory, url, tokens)

    def copy_to(self, directory):
        """A copy of this (stopped) deployment in another directory: the same
        data and the same tokens, but its own database files."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if DB_BACKEND == "postgres":
            name = "strata_" + uuid.uuid4().hex[:16]
            pg_admin(f"CREATE DATABASE {name} TEMPLATE {pg_database_of(self.db)} STRATEGY FILE_COPY")
            return Deployment(self.binary, directory, pg_url(name), self.tokens)
        src = Path(self.db)
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(src) + suffix)
            if p.exists():
                shutil.copy2(p, directory / (src.name + suffix))
        return Deployment(self.binary, directory, directory / src.name, self.tokens)

    def drop(self):
        """Gives the database back (PostgreSQL: the cluster keeps every
        database until dropped; a SQLite file goes with its directory)."""
        if DB_BACKEND != "postgres":
            return
        # WITH (FORCE) cannot end a backend of a role the test's is not a
        # member of — an autovacuum worker on the database, for the moment
        # it runs (seen once in a full run): try again, a bounded few times.
        for attempt in range(20):
            try:
                pg_admin(f"DROP DATABASE IF EXISTS {pg_database_of(self.db)} WITH (FORCE)")
                return
            except AssertionError as e:
                if "must be a member of the role" not in str(e) or attempt == 19:
                    raise
                time.sleep(0.25)

    def cli(self, *args, **kw):
        return run_cli(self.binary, *args, **kw)

    def server(self, *, args=(), env=None, listen=True, port=None, name=None, db=True):
        """A Server (not started) for this deployment."""
        return Server(self, args=args, env=env, listen=listen, port=port, name=name, db=db)


# ---- a running `strata serve` ----------------------------------------------

def fresh_release_binary():
    """build/strata when it is at least as new as every source file."""
    path = REPO / "build" / "strata"
    if not path.is_file():
        return None
    newest = max(p.stat().st_mtime for p in (REPO / "src").rglob("*.[ch]"))
    return path if path.stat().st_mtime >= newest else None


class Server:
    """One `strata serve` process: started with a free port, ready once
    GET /healthz answers 200, stopped by SIGTERM to its PID."""

    _counter = 0
    _lock = threading.Lock()

    def __init__(self, deployment, *, args=(), env=None, listen=True, port=None,
                 name=None, db=True):
        with Server._lock:
            Server._counter += 1
            n = Server._counter
        self.deployment = deployment
        self.binary = deployment.binary
        self.extra_args = [str(a) for a in args]
        self.env = dict(env or {})
        self.listen = listen          # pass --listen 127.0.0.1:PORT
        self.pass_db = db             # pass --db PATH
        self.port = port
        self.name = name or f"server{n}"
        self.log_path = deployment.dir / f"{self.name}.stderr.log"
        self.out_path = deployment.dir / f"{self.name}.stdout.log"
        self.proc = None
        self.returncode = None
        self.killed = False
        self._clients = []

    # -- lifecycle --

    def argv(self):
        argv = [str(self.binary), "serve"]
        if self.pass_db:
            argv += ["--db", self.deployment.db]
        if self.listen:
            argv += ["--listen", f"{HOST}:{self.port}"]
        return argv + self.extra_args

    def start(self, timeout=10.0):
        if self.port is None:
            self.port = free_port()
        self._err = open(self.log_path, "ab")
        self._out = open(self.out_path, "ab")
        self.proc = subprocess.Popen(
            self.argv(), stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
            env=clean_env(self.env))
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} before it was healthy\n"
                    f"argv: {self.argv()}\n--- stderr tail ---\n{self.tail()}")
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                resp.read()
                conn.close()
                if resp.status == 200:
                    return
                last = f"status {resp.status}"
            except OSError as e:
                last = repr(e)
            except http.client.HTTPException as e:
                last = repr(e)
            time.sleep(0.05)
        raise AssertionError(
            f"{self.name} not healthy on port {self.port} within {timeout}s ({last})\n"
            f"argv: {self.argv()}\n--- stderr tail ---\n{self.tail()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout=10.0):
        """Waits for the process to exit; returns its exit code or None."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._close_files()
        return self.returncode

    def stop(self, timeout=10.0):
        """SIGTERM, then wait up to `timeout` s. Returns the exit code, or None
        if it did not exit in time (it is then SIGKILLed so nothing leaks)."""
        self.close_clients()
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
            self._close_files()
            return self.returncode
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill9()
        return rc

    def kill9(self):
        """SIGKILL by PID (a crash, as far as the server can tell)."""
        self.close_clients()
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.killed = True
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.returncode = self.proc.returncode
        self._close_files()

    def _close_files(self):
        for f in (getattr(self, "_err", None), getattr(self, "_out", None)):
            if f is not None and not f.closed:
                f.close()

    def assert_stops_cleanly(self, timeout=10.0):
        rc = self.stop(timeout)
        assert rc == 0, (
            f"{self.name}: SIGTERM should make strata exit 0 within {timeout}s, "
            f"got {'no exit' if rc is None else rc}\n--- stderr tail ---\n{self.tail(8)}")

    # -- logs --

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines=40):
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:]) if text else "(stderr empty)"

    def log_records(self):
        """The JSON lines of stderr, parsed (other lines skipped)."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                out.append(jsonlib.loads(line))
            except ValueError:
                pass
        return out

    # -- clients --

    def client(self, token=None, timeout=10.0):
        c = Client(self.port, token=token, timeout=timeout)
        self._clients.append(c)
        return c

    def close_clients(self):
        for c in self._clients:
            c.close()
        self._clients.clear()


# ---- HTTP client -------------------------------------------------------------

class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.json = None
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype in ("application/json", "application/problem+json") and body:
            try:
                self.json = jsonlib.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                self.json = None

    @property
    def content_type(self):
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self):
        return f"<Response {self.status} {self.content_type} {self.body[:300]!r}>"


class TruncatedResponse(Exception):
    """The status line arrived but the rest of the response did not."""


class _Connection(http.client.HTTPConnection):
    """http.client with TCP_NODELAY, so a request's latency is the server's."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_NOTSET = object()
_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Client:
    """A keep-alive HTTP/1.1 client on one http.client connection, reopened
    after any error. Not thread-safe: give each thread its own."""

    def __init__(self, port, host=HOST, token=None, timeout=10.0):
        self.host = host
        self.port = port
        self.token = token
        self.timeout = timeout
        self.conn = None
        self.requests_on_conn = 0

    def _connection(self):
        if self.conn is None:
            self.conn = _Connection(self.host, self.port, timeout=self.timeout)
            self.requests_on_conn = 0
        return self.conn

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.conn = None
        self.requests_on_conn = 0

    def request(self, method, path, *, body=None, json=_NOTSET, headers=None,
                token=_NOTSET, content_type=_NOTSET):
        hdrs = {"Connection": "keep-alive"}
        if json is not _NOTSET:
            body = jsonlib.dumps(json).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        if content_type is not _NOTSET:
            if content_type is None:
                hdrs.pop("Content-Type", None)
            else:
                hdrs["Content-Type"] = content_type
        tok = self.token if token is _NOTSET else token
        if tok is not None:
            hdrs["Authorization"] = f"Bearer {tok}"
        if headers:
            hdrs.update(headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
        for attempt in (0, 1):
            conn = self._connection()
            reused = conn.sock is not None and self.requests_on_conn > 0
            try:
                conn.request(method, path, body=body, headers=hdrs)
                resp = conn.getresponse()
            except _RETRYABLE:
                # A keep-alive connection the server closed while idle: the
                # request never reached a handler, so one retry is safe.
                self.close()
                if reused and attempt == 0:
                    continue
                raise
            except Exception:
                self.close()
                raise
            try:
                data = resp.read()
            except Exception as e:
                self.close()
                raise TruncatedResponse(f"{method} {path}: status {resp.status} then {e!r}") from e
            self.requests_on_conn += 1
            headers_out = {}
            for k, v in resp.getheaders():
                k = k.lower()
                headers_out[k] = f"{headers_out[k]}, {v}" if k in headers_out else v
            if resp.will_close:
                self.close()
            return Response(resp.status, resp.reason, headers_out, data)
        raise AssertionError("unreachable")

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def q(s):
    """Percent-encodes one path segment or query value completely."""
    return urllib.parse.quote(s, safe="")


def qs(params):
    return urllib.parse.urlencode(params, quote_via=urllib.parse.quote) if params else ""


def with_query(path, params):
    s = qs(params)
    return f"{path}?{s}" if s else path


# ---- raw sockets -------------------------------------------------------------

class RawResponse:
    def __init__(self, status, headers, body, raw):
        self.status = status
        self.headers = headers
        self.body = body
        self.raw = raw

    def __repr__(self):
        return f"<RawResponse {self.status} {self.raw[:300]!r}>"


def read_response(sock, timeout=5.0):
    """Reads one HTTP/1.1 response from sock. Returns a RawResponse, or None
    if the peer closed (or reset) before sending a status line. Raises
    socket.timeout if nothing complete arrives within `timeout`."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline:
            raise socket.timeout("no complete response head")
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            if buf:
                raise AssertionError(f"connection closed inside a response head: {buf[:300]!r}")
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        v = v.strip()
        headers[k] = f"{headers[k]}, {v}" if k in headers else v

    def more():
        if time.monotonic() > deadline:
            raise socket.timeout("response body incomplete")
        try:
            return sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return b""

    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            c = more()
            if not c:
                raise AssertionError(f"body truncated at {len(rest)}/{n} bytes")
            rest += c
        body = rest[:n]
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            while b"\r\n" not in rest:
                c = more()
                if not c:
                    raise AssertionError("chunked body truncated")
                rest += c
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                c = more()
                if not c:
                    raise AssertionError("chunked body truncated")
                rest += c
            body += rest[:size]
            rest = rest[size + 2:]
            if size == 0:
                break
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = rest
        while True:
            c = more()
            if not c:
                break
            body += c
    return RawResponse(status, headers, body, head)


def raw_connect(port, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_exchange(port, data, timeout=5.0):
    """Sends `data` on a new connection and reads one response (or None)."""
    with raw_connect(port, timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(s, timeout)


def wait_closed(sock, timeout):
    """Reads and discards until the peer closes; returns the seconds it took,
    or None if the connection was still open after `timeout` s."""
    start = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - start < timeout:
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start
    return None


# ---- assertions ----------------------------------------------------------------

def assert_status(resp, expected):
    allowed = {expected} if isinstance(expected, int) else set(expected)
    assert resp.status in allowed, (
        f"expected status {sorted(allowed)}, got {resp.status}: "
        f"{resp.headers.get('content-type')} {resp.body[:600]!r}")


def assert_problem(resp, expected, *, mentions=None):
    """The response is an RFC 9457 problem with one of the expected statuses,
    `status` equal to the HTTP status, and a detail (naming `mentions`)."""
    assert_status(resp, expected)
    assert resp.content_type == "application/problem+json", (
        f"{resp.status} should be application/problem+json, got "
        f"{resp.headers.get('content-type')!r}: {resp.body[:300]!r}")
    p = resp.json
    assert isinstance(p, dict), f"problem body is not a JSON object: {resp.body[:300]!r}"
    for key in ("type", "title", "status", "detail"):
        assert key in p, f"problem lacks {key!r}: {p}"
    assert p["status"] == resp.status, f"problem status {p['status']} != HTTP {resp.status}"
    assert isinstance(p["detail"], str) and p["detail"].strip(), f"empty detail: {p}"
    assert isinstance(p["title"], str) and p["title"], f"empty title: {p}"
    rid = resp.headers.get("x-request-id")
    assert rid, f"no X-Request-Id on {resp.status}"
    if "request_id" in p:
        assert p["request_id"] == rid, f"problem request_id {p['request_id']} != header {rid}"
    if mentions is not None:
        assert mentions in p["detail"], f"detail should name {mentions!r}: {p['detail']!r}"
    return p


def assert_json(resp, expected=200):
    assert_status(resp, expected)
    assert resp.content_type == "application/json", (
        f"expected application/json, got {resp.headers.get('content-type')!r}")
    assert resp.json is not None, f"body is not JSON: {resp.body[:300]!r}"
    return resp.json


def assert_timestamp(value, what="timestamp"):
    assert isinstance(value, str) and TIMESTAMP_RE.match(value), (
        f"{what} should be RFC 3339 UTC with milliseconds, got {value!r}")


def etag_version(resp):
    etag = resp.headers.get("etag")
    assert etag, f"no ETag on {resp.status}"
    m = re.fullmatch(r'"v(\d+)"', etag.strip())
    assert m, f'ETag should look like "vN", got {etag!r}'
    return int(m.group(1))


# ---- content helpers -------------------------------------------------------------

def create_item(client, token, *, site="main", type=None, slug=None, title=None, **fields):
    """Creates an item (of a fresh type unless told) and returns its draft."""
    body = {"type": type or uniq("ty"), "slug": slug or uniq("s"),
            "title": title or "Title " + uuid.uuid4().hex[:6]}
    body.update(fields)
    resp = client.post(f"/v1/{site}/content", json=body, token=token)
    draft = assert_json(resp, 201)
    return draft


def publish(client, token, item_id, *, site="main", version=None):
    kw = {"json": {"version": version}} if version is not None else {}
    resp = client.post(f"/v1/{site}/content/{item_id}/publish", token=token, **kw)
    return assert_json(resp, 200)


def publish_title(client, item_id, title, *, site="main"):
    """With a write token's client: saves a new title as a draft (If-Match
    the draft's ETag) and publishes it — three requests."""
    draft = client.get(f"/v1/{site}/content/{item_id}/draft")
    assert draft.status == 200, draft
    r = client.put(f"/v1/{site}/content/{item_id}", json={"title": title},
                   headers={"If-Match": draft.headers["etag"]})
    assert r.status == 200, r
    r = client.post(f"/v1/{site}/content/{item_id}/publish")
    assert r.status == 200, r


def save(client, token, item_id, version, changes, *, site="main"):
    resp = client.put(f"/v1/{site}/content/{item_id}", json=changes, token=token,
                      headers={"If-Match": f'"v{version}"'})
    return assert_json(resp, 200)


def list_all(client, *, site="main", params=None, token=None, limit=100, max_pages=200):
    """Walks every page of GET /v1/{site}/content; returns the summaries."""
    params = dict(params or {})
    params["limit"] = limit
    out = []
    cursor = None
    for _ in range(max_pages):
        p = dict(params)
        if cursor is not None:
            p["cursor"] = cursor
        resp = client.get(with_query(f"/v1/{site}/content", p), token=token)
        page = assert_json(resp, 200)
        assert isinstance(page.get("items"), list), f"no items list: {page}"
        assert "next_cursor" in page, f"no next_cursor key: {list(page)}"
        out.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError(f"more than {max_pages} pages: the cursor never ends")


def healthy(client):
    resp = client.get("/healthz")
    return resp.status == 200


def assert_survived(srv):
    """The server still answers /healthz: what a test of hostile input checks
    after each case."""
    c = Client(srv.port, timeout=5)
    try:
        assert c.get("/healthz").status == 200, "the server must survive this"
    finally:
        c.close()


def wait_for(what, predicate, timeout, interval=0.05):
    """Polls predicate() until it returns something true; returns that, or
    fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout}s: {what}")
        time.sleep(interval)
