"""The process: graceful shutdown on SIGTERM, the command line (--help,
version, check-config, site and token commands), configuration precedence
(flag > environment > file) and the JSON request log."""

import http.client
import json
import os
import signal
import subprocess
import socket
import threading
import time

import pytest

from metrics_support import parse_metrics, scrape, value
from strata_support import (
    HOST, Client, TruncatedResponse, assert_json, clean_env, free_port, raw_connect,
    read_response, run_cli, uniq,
)


# ---- graceful shutdown -----------------------------------------------------------------------

NOT_ACCEPTED = (ConnectionRefusedError, ConnectionResetError, BrokenPipeError,
                http.client.RemoteDisconnected, socket.timeout)


def test_sigterm_lets_in_flight_requests_finish_and_exits_0(server_factory, fresh_deployment):
    tok = fresh_deployment.tokens["write"]
    srv = server_factory(name="draining")
    typ = uniq("term")
    acked, failures, lock = [], [], threading.Lock()
    stop = threading.Event()
    counts = {"answered": 0, "refused": 0}

    def worker(no):
        c = Client(srv.port, timeout=10)
        n = 0
        deadline = time.monotonic() + 4
        try:
            while not stop.is_set() and time.monotonic() < deadline and n < 200:
                n += 1
                try:
                    if n % 2:
                        slug = f"w{no}-{n}"
                        r = c.post("/v1/main/content", token=tok,
                                   json={"type": typ, "slug": slug, "title": "t", "body": "x" * 20000})
                        if r.status == 201:
                            with lock:
                                acked.append((r.json["id"], slug))
                    else:
                        r = c.get("/v1/main/content?limit=100")
                        if r.status == 200:
                            assert len(r.json["items"]) >= 40, "a full page, not a cut one"
                    assert r.status in (200, 201, 503), f"answer during shutdown: {r}"
                    with lock:
                        counts["answered"] += 1
                except NOT_ACCEPTED:
                    with lock:
                        counts["refused"] += 1
                    return
                except TruncatedResponse as e:
                    with lock:
                        failures.append(f"truncated response: {e}")
                    return
                except Exception as e:
                    with lock:
                        failures.append(repr(e))
                    return
        finally:
            c.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.7 and counts["answered"] < 150:
        time.sleep(0.01)
    busy = sum(t.is_alive() for t in threads)
    srv.signal(signal.SIGTERM)
    rc = srv.wait(10)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert rc == 0, f"exit code after SIGTERM: {rc}\n{srv.tail()}"
    assert not failures, f"requests broken by the shutdown: {failures[:5]}"
    assert busy == len(threads), "the burst was over before SIGTERM: nothing was in flight"
    assert counts["answered"] > 0

    after = server_factory(fresh_deployment, name="after")
    c = after.client(token=tok)
    lost = [(i, s) for i, s in acked if c.get(f"/v1/main/content/{i}/draft").status != 200]
    assert not lost, f"creates answered 201 during shutdown are missing: {lost}"


def _half_sent_creates(srv, tok, n):
    """n connections, each having sent the head and half the body of a create."""
    socks = []
    for i in range(n):
        body = json.dumps({"type": "post", "slug": uniq("slow"), "title": f"slow {i}"}).encode()
        s = raw_connect(srv.port, timeout=10)
        s.sendall((f"POST /v1/main/content HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {tok}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body[:len(body) // 2])
        socks.append((s, body))
    return socks


def test_sigterm_waits_for_a_request_whose_body_is_still_arriving(server_factory, fresh_deployment):
    tok = fresh_deployment.tokens["write"]
    srv = server_factory(name="slow-bodies")
    socks = _half_sent_creates(srv, tok, 3)
    time.sleep(0.3)
    srv.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert srv.alive(), (f"strata exited ({srv.proc.returncode}) 0.5 s after SIGTERM while three accepted "
                         f"requests were still receiving their bodies\n{srv.tail(6)}")
    created = []
    for s, body in socks:
        s.sendall(body[len(body) // 2:])
    for s, body in socks:
        r = read_response(s, timeout=10)
        s.close()
        assert r is not None, "an in-flight request was dropped by the shutdown"
        assert r.status == 201, r
        created.append(json.loads(r.body)["id"])
    rc = srv.wait(10)
    assert rc == 0, f"exit code {rc}\n{srv.tail()}"

    after = server_factory(fresh_deployment, name="after")
    c = after.client(token=tok)
    for item_id in created:
        assert c.get(f"/v1/main/content/{item_id}/draft").status == 200


def test_after_sigterm_new_connections_are_not_served(server_factory, fresh_deployment):
    tok = fresh_deployment.tokens["write"]
    srv = server_factory(name="closing")
    socks = _half_sent_creates(srv, tok, 1)  # keeps the server draining
    time.sleep(0.3)
    srv.signal(signal.SIGTERM)
    time.sleep(0.5)
    served = None
    try:
        r = Client(srv.port, timeout=3).get("/healthz")
        served = r.status
    except (OSError, http.client.HTTPException):
        served = None
    finally:
        for s, body in socks:
            try:
                s.sendall(body[len(body) // 2:])
                read_response(s, timeout=10)
            except OSError:
                pass
            s.close()
    assert srv.wait(10) == 0, srv.tail()
    assert served in (None, 503), f"a connection opened after SIGTERM was served ({served})"


def test_sigterm_on_an_idle_server_exits_0_quickly(server_factory):
    srv = server_factory(name="idle")
    c = srv.client()
    assert c.get("/healthz").status == 200  # leave one idle keep-alive connection open
    t = time.monotonic()
    srv.signal(signal.SIGTERM)
    rc = srv.wait(10)
    assert rc == 0, srv.tail()
    assert time.monotonic() - t < 5, "an idle keep-alive connection should not hold up the shutdown"


# ---- command line ---------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["--help"], ["serve", "--help"], ["migrate", "--help"], ["seed", "--help"],
    ["site", "create", "--help"], ["token", "create", "--help"], ["check-config", "--help"],
    ["version", "--help"],
], ids=lambda a: " ".join(a))
def test_every_command_has_help(strata_bin, argv):
    p = run_cli(strata_bin, *argv, timeout=10)
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr}"
    assert p.stdout.strip(), "usage goes to stdout"
    command = " ".join(argv[:-1]) or "serve"
    assert f"strata {command}" in p.stdout, f"the usage should show `strata {command} …`:\n{p.stdout[:500]}"


def test_top_level_help_names_every_command(strata_bin):
    out = run_cli(strata_bin, "--help", timeout=10).stdout
    for cmd in ("serve", "migrate", "seed", "site", "token", "check-config", "version"):
        assert cmd in out, f"`strata --help` should mention {cmd}"


def test_serve_help_names_its_flags(strata_bin):
    out = run_cli(strata_bin, "serve", "--help", timeout=10).stdout
    for flag in ("--db", "--listen", "--threads", "--config"):
        assert flag in out, f"`strata serve --help` should mention {flag}"


def test_version(strata_bin):
    p = run_cli(strata_bin, "version", timeout=10)
    assert p.returncode == 0
    assert any(ch.isdigit() for ch in p.stdout), p.stdout


@pytest.mark.parametrize("argv", [
    ["frobnicate"],
    ["serve", "--no-such-flag", "--listen", "{listen}", "--db", "{db}"],
    ["token", "create", "--site", "main", "--role", "god", "--db", "{db}"],
    ["seed", "--items", "lots", "--db", "{db}"],
], ids=["unknown-command", "unknown-flag", "bad-role", "bad-number"])
def test_bad_command_lines_fail_with_a_message(strata_bin, fresh_deployment, argv):
    argv = [a.format(db=fresh_deployment.db, listen=f"{HOST}:{free_port()}") for a in argv]
    p = run_cli(strata_bin, *argv, timeout=10)
    assert p.returncode != 0
    assert (p.stderr + p.stdout).strip(), "say what was wrong"


def test_serve_on_a_busy_port_fails_with_a_message(strata_bin, fresh_deployment):
    with socket.socket() as busy:
        busy.bind((HOST, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        p = run_cli(strata_bin, "serve", "--db", fresh_deployment.db, "--listen", f"{HOST}:{port}", timeout=15)
    assert p.returncode != 0
    assert str(port) in p.stderr or "address" in p.stderr.lower(), p.stderr[-500:]


def test_migrate_is_idempotent(strata_bin, fresh_deployment):
    for _ in range(2):
        p = run_cli(strata_bin, "migrate", "--db", fresh_deployment.db)
        assert p.returncode == 0, p.stderr


def test_site_create_twice_fails_with_a_message(strata_bin, fresh_deployment):
    name = uniq("site")
    assert run_cli(strata_bin, "site", "create", name, "--db", fresh_deployment.db).returncode == 0
    p = run_cli(strata_bin, "site", "create", name, "--db", fresh_deployment.db)
    assert p.returncode != 0
    assert name in p.stderr + p.stdout


def test_token_create_prints_only_a_working_token(server_factory, fresh_deployment):
    p = run_cli(fresh_deployment.binary, "token", "create", "--site", "main", "--role", "write",
                "--name", "cli-made", "--db", fresh_deployment.db)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 1 and lines[0].strip() == lines[0] and " " not in lines[0], p.stdout
    srv = server_factory()
    r = srv.client().post("/v1/main/content", token=lines[0],
                          json={"type": "post", "slug": uniq("cli"), "title": "by cli token"})
    assert assert_json(r, 201)["author"] == "cli-made"


def test_token_for_an_unknown_site_fails(strata_bin, fresh_deployment):
    p = run_cli(strata_bin, "token", "create", "--site", "nosuchsite", "--role", "read", "--db", fresh_deployment.db)
    assert p.returncode != 0
    assert p.stdout.strip() == "", "no token printed on failure"


def test_seed_on_a_fresh_database_makes_a_servable_site(server_factory, strata_bin, tmp_path):
    from strata_support import Deployment
    db = tmp_path / "seeded" / "s.db"
    db.parent.mkdir()
    assert run_cli(strata_bin, "seed", "--db", db, "--items", 5).returncode == 0
    dep = Deployment(strata_bin, db.parent, db, {})
    srv = server_factory(dep, name="seeded")
    items = assert_json(srv.client().get("/v1/main/content?limit=100"))["items"]
    assert len(items) == 5


# ---- check-config ------------------------------------------------------------------------------

def write(path, text):
    path.write_text(text)
    return path


def test_check_config_accepts_a_valid_file(strata_bin, tmp_path):
    cfg = write(tmp_path / "ok.ini", "[server]\nlisten = 127.0.0.1:8080\nthreads = 2\nworkers = 2\n"
                                     "max_body_bytes = 1048576\nidle_timeout_ms = 1000\n"
                                     f"[db]\npath = {tmp_path / 'x.db'}\n[log]\nlevel = info\n")
    p = run_cli(strata_bin, "check-config", "--config", cfg, timeout=10)
    assert p.returncode == 0, p.stdout + p.stderr


def test_check_config_without_a_file_checks_the_defaults(strata_bin):
    p = run_cli(strata_bin, "check-config", timeout=10)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("text, key", [
    ("[server]\nlistne = 127.0.0.1:8080\n", "listne"),
    ("[server]\nthreads = 2\nbogus_key = 1\n", "bogus_key"),
    ("[nosuchsection]\nlisten = 1\n", "nosuchsection"),
    ("[server]\nthreads = many\n", "threads"),
    ("[server]\nmax_body_bytes = -5\n", "max_body_bytes"),
    ("[log]\nlevel = loud\n", "level"),
], ids=["typo", "unknown-key", "unknown-section", "bad-number", "negative-size", "bad-level"])
def test_check_config_rejects_a_bad_key_with_exit_2_and_names_it(strata_bin, tmp_path, text, key):
    cfg = write(tmp_path / "bad.ini", text)
    p = run_cli(strata_bin, "check-config", "--config", cfg, timeout=10)
    assert p.returncode == 2, f"exit {p.returncode}: {p.stdout}{p.stderr}"
    assert key in p.stdout + p.stderr, f"the message should name {key!r}: {p.stdout}{p.stderr}"


def test_check_config_of_a_missing_file_fails(strata_bin, tmp_path):
    p = run_cli(strata_bin, "check-config", "--config", tmp_path / "absent.ini", timeout=10)
    assert p.returncode != 0
    assert "absent.ini" in p.stdout + p.stderr


def test_serve_refuses_a_bad_config(strata_bin, fresh_deployment, tmp_path):
    cfg = write(tmp_path / "bad.ini", "[server]\nlistne = 127.0.0.1:1\n")
    p = run_cli(strata_bin, "serve", "--config", cfg, "--db", fresh_deployment.db,
                "--listen", f"{HOST}:{free_port()}", timeout=15)
    assert p.returncode != 0
    assert "listne" in p.stderr + p.stdout


# ---- precedence: flag > environment > file ------------------------------------------------------

def refused(port):
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return False
    except OSError:
        return True


@pytest.fixture
def ports():
    a, b, c = free_port(), free_port(), free_port()
    assert len({a, b, c}) == 3
    return a, b, c


def test_listen_flag_beats_env_beats_file(server_factory, fresh_deployment, tmp_path, ports):
    a, b, c = ports
    cfg = write(tmp_path / "listen.ini", f"[server]\nlisten = {HOST}:{a}\n[db]\npath = {fresh_deployment.db}\n")
    srv = server_factory(listen=False, db=False, port=c, name="flag",
                         args=["--config", cfg, "--listen", f"{HOST}:{c}"],
                         env={"STRATA_LISTEN": f"{HOST}:{b}"})
    assert refused(a) and refused(b), "only the flag's port is listened on"
    assert srv.stop() == 0

    srv = server_factory(listen=False, db=False, port=b, name="env", args=["--config", cfg],
                         env={"STRATA_LISTEN": f"{HOST}:{b}"})
    assert refused(a) and refused(c)
    assert srv.stop() == 0

    srv = server_factory(listen=False, db=False, port=a, name="file", args=["--config", cfg])
    assert refused(b) and refused(c)
    assert len(assert_json(srv.client().get("/v1/main/content?limit=100"))["items"]) >= 40, "[db] path used"


def test_db_flag_beats_env_beats_file(server_factory, fresh_deployment, tmp_path):
    nowhere = tmp_path / "no" / "such" / "dir" / "x.db"
    cfg = write(tmp_path / "db.ini", f"[db]\npath = {nowhere}\n")
    srv = server_factory(db=False, name="db-env", args=["--config", cfg],
                         env={"STRATA_DB": fresh_deployment.db})
    assert len(assert_json(srv.client().get("/v1/main/content?limit=100"))["items"]) >= 40
    assert srv.stop() == 0
    srv = server_factory(name="db-flag", args=["--config", cfg], env={"STRATA_DB": str(nowhere)})
    assert len(assert_json(srv.client().get("/v1/main/content?limit=100"))["items"]) >= 40


# ---- the request log ------------------------------------------------------------------------------

def request_lines(srv):
    return [r for r in srv.log_records() if r.get("msg") == "request"]


def test_each_request_is_logged_as_a_json_line(server_factory):
    srv = server_factory(name="logging", args=["--log-level", "info"])
    c = srv.client()
    r = c.get("/v1/main/content?limit=1", headers={"X-Request-Id": "logtest-123"})
    assert r.status == 200
    c.get("/v1/main/content/987654321", headers={"X-Request-Id": "logtest-404"})
    assert srv.stop() == 0
    by_id = {rec.get("request_id"): rec for rec in request_lines(srv)}
    assert "logtest-123" in by_id, f"no request line for logtest-123 in:\n{srv.tail()}"
    rec = by_id["logtest-123"]
    assert rec["level"] == "info" and rec["method"] == "GET"
    assert rec["path"].startswith("/v1/main/content")
    assert rec["status"] == 200
    assert isinstance(rec["bytes"], int) and rec["bytes"] > 0
    assert isinstance(rec["us"], int) and rec["us"] >= 0
    assert rec.get("ts")
    assert by_id["logtest-404"]["status"] == 404


def test_a_stalled_log_sink_never_stops_serving(server_factory):
    """stderr is a pipe nobody reads: it is full after ~300 access lines.
    Writing each line from the loop would stop the loop there; strata
    goes on answering, drops the lines it cannot write, counts them, and
    still stops cleanly."""
    srv = server_factory(name="stalled-log", start=False, args=["--log-buffer-bytes", "65536"])
    read_end, write_end = os.pipe()
    try:
        srv.port = free_port()
        srv.proc = subprocess.Popen(srv.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=write_end, env=clean_env({}))
        os.close(write_end)
        write_end = None
        srv.wait_healthy(15)
        c = srv.client(timeout=10)
        answered = 0
        deadline = time.monotonic() + 60
        while answered < 5000 and time.monotonic() < deadline:
            assert c.get("/v1/main/content?limit=1").status == 200
            answered += 1
        assert answered == 5000, f"only {answered} requests answered in 60 s"
        # the writer gives the full pipe a second before it drops what waits
        dropped = 0
        deadline = time.monotonic() + 10
        while dropped == 0 and time.monotonic() < deadline:
            samples, _ = parse_metrics(scrape(c))
            dropped = value(samples, "strata_log_lines_total", outcome="dropped")
            time.sleep(0.1)
        assert dropped > 0, "lines the pipe could not take are counted as dropped"
        assert srv.stop(15) == 0
    finally:
        if write_end is not None:
            os.close(write_end)
        os.close(read_end)


def test_hit_sampling_logs_one_hit_in_n_and_every_miss(server_factory):
    srv = server_factory(name="sampled", args=["--log-sample-hits", "10"])
    c = srv.client()
    for _ in range(101):
        assert c.get("/v1/main/content?limit=2").status == 200  # one miss, then 100 hits
    assert c.get("/v1/main/content/987654321").status == 404
    assert srv.stop() == 0
    lines = request_lines(srv)
    hits = [r for r in lines if r["path"] == "/v1/main/content?limit=2"]
    assert len(hits) == 1 + 10, f"the miss and one hit in ten: {len(hits)}"
    assert any(r["path"] == "/v1/main/content/987654321" and r["status"] == 404 for r in lines)


def test_log_level_flag_beats_env_beats_file(server_factory, tmp_path):
    quiet = write(tmp_path / "quiet.ini", "[log]\nlevel = warn\n")

    def logged(**kw):
        srv = server_factory(**kw)
        srv.client().get("/v1/main/content?limit=1")
        assert srv.stop() == 0
        return bool(request_lines(srv))

    assert not logged(name="file-warn", args=["--config", quiet])
    assert logged(name="env-info", args=["--config", quiet], env={"STRATA_LOG_LEVEL": "info"})
    assert not logged(name="flag-warn", args=["--log-level", "warn"], env={"STRATA_LOG_LEVEL": "info"})
    assert logged(name="flag-info", args=["--config", quiet, "--log-level", "info"], env={"STRATA_LOG_LEVEL": "warn"})
