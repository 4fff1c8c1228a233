"""The deploy/ files (issue 14), each run by the tool it is written for:

- deploy/varnish/strata.vcl compiles (varnishd -C), then runs in a real
  varnishd in front of a real strata: a second GET is a Varnish hit, a
  token's request passes, strata's own purge job removes exactly the
  published item's objects (and no other), the purge request as strata
  sends it is obeyed from loopback and refused from another address, and a
  copy past its TTL is served stale-while-revalidate, then stale-if-error
  once strata is gone;
- deploy/nginx/strata.conf passes `nginx -t`, then spreads reads over two
  strata instances and loses none when one is killed with SIGKILL;
- deploy/prometheus/: `promtool check config`, `check rules`, `test rules`;
- deploy/systemd/strata.service: `systemd-analyze verify` with no complaint,
  and strata serves hits, misses and writes under the kernel rule that
  MemoryDenyWriteExecute stands for (PR_SET_MDWE).

Each part is skipped, saying why, only when its tool is not installed.
"""

import ctypes
import errno
import subprocess
import threading
import time

import pytest

from edge_support import (PROMETHEUS, PROMTOOL, SYSTEMD_ANALYZE, SYSTEMD_UNIT, VCL, Nginx, Varnish, compile_vcl,
                          needs_nginx, needs_varnish, purge_as_strata, varnish_state)
from strata_support import (HOST, Client, assert_problem, clean_env, free_port, publish_title, uniq)


# ---- Varnish -------------------------------------------------------------------

@needs_varnish
def test_the_vcl_compiles(tmp_path):
    rc, messages = compile_vcl(VCL, tmp_path / "n")
    assert rc == 0, f"varnishd -C -f {VCL} failed:\n{messages}"


# strata's item lifetimes here: 2 s fresh, 2 s stale-while-revalidate, 60 s
# stale-if-error, so the test can watch a copy age through each.
ITEM_LIFETIMES = ("--cache-item-ttl-s", "2", "--cache-item-swr-s", "2", "--cache-item-grace-s", "60")


@pytest.fixture
def edge(server_factory, fresh_deployment, tmp_path):
    """strata (its purge job pointed at Varnish) and Varnish in front of it."""
    varnish_port = free_port()
    srv = server_factory(fresh_deployment, name="behind-varnish",
                         args=("--cdn-purge-url", f"http://{HOST}:{varnish_port}/", *ITEM_LIFETIMES))
    varnish = Varnish(tmp_path / "varnish", srv.port, port=varnish_port).start()
    yield srv, varnish
    varnish.stop()


def two_items(srv):
    items = srv.client().get("/v1/main/content?limit=2").json["items"]
    return items[0]["id"], items[1]["id"]


def cached(client, path):
    """GETs path through Varnish until Varnish answers it from cache."""
    for _ in range(3):
        r = client.get(path)
        assert r.status == 200, r
        if varnish_state(r) == "hit":
            return r
    raise AssertionError(f"{path} never became a Varnish hit: Cache-Status {r.headers.get('cache-status')!r}")


@needs_varnish
def test_a_second_get_is_a_hit_and_a_token_passes(edge, fresh_deployment):
    srv, varnish = edge
    c = Client(varnish.port)
    a, _ = two_items(srv)
    first = c.get(f"/v1/main/content/{a}")
    assert first.status == 200 and varnish_state(first) == "fwd=miss", first.headers
    second = c.get(f"/v1/main/content/{a}")
    assert second.status == 200 and varnish_state(second) == "hit", second.headers
    assert second.body == first.body
    assert len(second.headers["x-varnish"].split()) == 2, "a hit names the request that stored the object"
    # The xkey copy of the tags stays in Varnish; strata's own headers pass.
    assert "xkey" not in second.headers and "x-strata-swr" not in second.headers
    assert f"main:item:{a}" in second.headers["surrogate-key"]
    # Each request is named anew, also on a hit.
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    token = fresh_deployment.tokens["read"]
    for _ in range(2):
        r = c.get(f"/v1/main/content/{a}", token=token)
        assert r.status == 200 and varnish_state(r) == "fwd=bypass", r.headers
    # The VCL's own notes cannot be forged by a client.
    r = c.get(f"/v1/main/content/{a}", headers={"X-Strata-Cache": "forged", "X-Strata-Grace": "full"})
    assert varnish_state(r) == "hit" and "forged" not in r.headers["cache-status"], r.headers
    # A read naming a write's position goes to strata, never to a cached copy.
    r = c.get(f"/v1/main/content/{a}", headers={"Strata-LSN": "0/1"})
    assert varnish_state(r) == "fwd=bypass", r.headers
    c.close()


@needs_varnish
def test_the_purge_job_removes_exactly_the_published_items_objects(edge, fresh_deployment):
    srv, varnish = edge
    c = Client(varnish.port)
    a, b = two_items(srv)
    for path in (f"/v1/main/content/{a}", f"/v1/main/content/{b}", "/v1/main/content?limit=5"):
        cached(c, path)
    title = "published " + uniq()
    # The write goes to strata directly: only its purge job can tell Varnish.
    publish_title(srv.client(token=fresh_deployment.tokens["write"]), a, title)

    def fresh_a():
        r = c.get(f"/v1/main/content/{a}")
        return r if r.json["title"] == title else None

    deadline = time.monotonic() + 10
    r = None
    while r is None and time.monotonic() < deadline:
        r = fresh_a()
        if r is None:
            time.sleep(0.02)
    assert r is not None, f"Varnish still serves the old item {a} 10 s after its publish\n{srv.tail()}"
    assert varnish_state(r) == "fwd=miss", r.headers
    # The list carries main:lists, which a publish purges; item b carries
    # only main:all and its own key, which it does not.
    assert varnish_state(c.get("/v1/main/content?limit=5")) == "fwd=miss"
    rb = c.get(f"/v1/main/content/{b}")
    assert varnish_state(rb) == "hit", f"item {b} was purged by item {a}'s publish: {rb.headers}"
    c.close()


@needs_varnish
def test_the_purge_request_as_strata_sends_it(edge):
    srv, varnish = edge
    c = Client(varnish.port)
    a, b = two_items(srv)
    cached(c, f"/v1/main/content/{a}")
    cached(c, f"/v1/main/content/{b}")
    # From another loopback address (not in the ACL): refused, nothing gone.
    status, head = purge_as_strata(varnish.port, [f"main:item:{b}"], source="127.0.0.2")
    assert status == 403, head
    assert varnish_state(c.get(f"/v1/main/content/{b}")) == "hit"
    # No keys: refused as a bad request rather than read as "purge nothing".
    status, head = purge_as_strata(varnish.port, [], header="X-Nothing")
    assert status == 400, head
    # From loopback, exactly as src/jobs/purge.c writes it: b goes, a stays.
    status, head = purge_as_strata(varnish.port, [f"main:item:{b}", "main:no-such-key"])
    assert status == 200 and "Purged 1 objects" in head, head
    assert varnish_state(c.get(f"/v1/main/content/{b}")) == "fwd=miss"
    assert varnish_state(c.get(f"/v1/main/content/{a}")) == "hit"
    c.close()


@needs_varnish
def test_stale_while_revalidate_then_stale_if_error(edge):
    srv, varnish = edge
    c = Client(varnish.port)
    ids = [i["id"] for i in srv.client().get("/v1/main/content?limit=3").json["items"]]
    kept, never_cached = f"/v1/main/content/{ids[0]}", f"/v1/main/content/{ids[2]}"
    first = c.get(kept)
    assert varnish_state(first) == "fwd=miss"
    filled = time.monotonic()
    # Past its 2 s TTL, within its 2 s stale-while-revalidate: served at
    # once, refreshed behind.
    time.sleep(max(0.0, filled + 2.8 - time.monotonic()))
    r = c.get(kept)
    assert r.status == 200 and varnish_state(r) == "hit; detail=stale-while-revalidate", r.headers
    refreshed = time.monotonic()
    srv.kill9()
    # Past TTL + stale-while-revalidate of the refreshed copy, strata gone:
    # within stale-if-error (60 s) the copy is still served.
    time.sleep(max(0.0, refreshed + 4.8 - time.monotonic()))
    r = c.get(kept)
    assert r.status == 200, f"{r}\n{varnish.tail()}"
    assert varnish_state(r) == "fwd=stale; detail=stale-if-error", r.headers
    assert r.json["id"] == ids[0]
    # Nothing cached and nobody to ask: a 503, in problem+json.
    assert_problem_from_varnish(c.get(never_cached))
    c.close()


def assert_problem_from_varnish(r):
    assert r.status == 503, r
    assert r.content_type == "application/problem+json", r.headers
    assert r.json["status"] == 503 and r.json["detail"], r.json


# ---- nginx ---------------------------------------------------------------------

@needs_nginx
def test_nginx_accepts_the_config(tmp_path):
    ng = Nginx(tmp_path / "nginx", [free_port(), free_port(), free_port()])
    proc = ng.check()
    assert proc.returncode == 0, f"nginx -t:\n{proc.stderr}"
    assert "syntax is ok" in proc.stderr


def strata_requests(srv):
    """Requests strata counted, from its own /metrics (asked directly)."""
    text = Client(srv.port).get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("strata_http_requests_total{") and 'route="/metrics"' not in line)


@needs_nginx
def test_nginx_loses_no_read_when_an_instance_is_killed(server_factory, fresh_deployment, tmp_path):
    # Every reader here is 127.0.0.1, which the per-address limit would
    # count as one client: it is turned off (a real site's readers differ).
    args = ("--limits-client-rps", "0")
    a = server_factory(fresh_deployment, name="a", args=args)
    b = server_factory(fresh_deployment, name="b", args=args)
    ng = Nginx(tmp_path / "nginx", [a.port, b.port]).start()
    try:
        c = Client(ng.port)
        items = c.get("/v1/main/content?limit=8").json["items"]
        paths = [f"/v1/main/content/{i['id']}" for i in items] + ["/v1/main/content?limit=8"]
        # X-Request-Id: the client's is passed on; without one nginx makes one.
        r = c.get(paths[0], headers={"X-Request-Id": "edge-test-1"})
        assert r.headers["x-request-id"] == "edge-test-1"
        assert len(c.get(paths[0]).headers["x-request-id"]) == 32
        before = {s.name: strata_requests(s) for s in (a, b)}
        results, lock = [], threading.Lock()
        stop = threading.Event()

        def reader(n):
            cl = Client(ng.port, timeout=10)
            i = n
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline and i < 20000:
                try:
                    status = cl.get(paths[i % len(paths)]).status
                except Exception as e:  # a failed read at the client, whatever its form
                    status = repr(e)
                with lock:
                    results.append((time.monotonic(), status))
                i += 4
            cl.close()

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        spread = {s.name: strata_requests(s) - before[s.name] for s in (a, b)}
        killed_at = time.monotonic()
        a.kill9()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(30)
        failed = [s for _, s in results if s != 200]
        after = [s for t, s in results if t > killed_at]
        print(f"\nnginx: {len(results)} reads, {len(after)} after the kill, {len(failed)} failed; "
              f"before it: {spread}")
        assert all(v > 0 for v in spread.values()), f"nginx did not use both instances: {spread}"
        assert len(after) > 50, "too few reads after the kill to show anything"
        assert not failed, f"{len(failed)} reads failed: {failed[:5]}\n{ng.error_log()[-2000:]}"
    finally:
        ng.stop()


# ---- Prometheus ------------------------------------------------------------------

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")


def promtool(*args):
    return subprocess.run([PROMTOOL, *args], cwd=PROMETHEUS, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


@needs_promtool
def test_promtool_checks_the_scrape_config_and_rules():
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "strata.rules.yml")):
        p = promtool(*args)
        assert p.returncode == 0 and "SUCCESS" in p.stdout, f"promtool {' '.join(args)}:\n{p.stdout}{p.stderr}"


@needs_promtool
def test_promtool_unit_tests_of_the_alert_rules():
    p = promtool("test", "rules", "strata.rules.test.yml")
    assert p.returncode == 0 and "SUCCESS" in p.stdout, f"promtool test rules:\n{p.stdout}{p.stderr}"


# ---- systemd -----------------------------------------------------------------------

@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian: systemd)")
def test_systemd_analyze_verifies_the_unit(strata_bin, tmp_path):
    # verify checks that ExecStart's binary exists: point it at this build.
    unit = tmp_path / "strata.service"
    text = SYSTEMD_UNIT.read_text()
    assert "ExecStart=/usr/local/bin/strata serve" in text
    unit.write_text(text.replace("/usr/local/bin/strata", str(strata_bin)))
    p = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=60)
    # An unknown key or a bad value is only a warning (exit 0): any output fails.
    complaints = [line for line in (p.stdout + p.stderr).splitlines() if line.strip()]
    assert p.returncode == 0 and not complaints, "\n".join(complaints)


PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1


def deny_write_execute():
    """In the child before exec: no mapping may become writable and
    executable (the kernel's form of MemoryDenyWriteExecute=yes)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def mdwe_supported():
    probe = subprocess.run(["python3", "-c", "import mmap; mmap.mmap(-1, 4096, prot=7)"],
                           preexec_fn=deny_write_execute, capture_output=True, text=True, timeout=30)
    return probe.returncode != 0 and "PermissionError" in probe.stderr


def test_strata_runs_under_memory_deny_write_execute(fresh_deployment, tmp_path):
    try:
        supported = mdwe_supported()
    except subprocess.SubprocessError as e:
        if isinstance(e.__cause__, OSError) and e.__cause__.errno == errno.EINVAL:
            supported = False
        else:
            raise
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        supported = False
    if not supported:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+), so MemoryDenyWriteExecute cannot be tried here")
    srv = fresh_deployment.server(name="mdwe")
    srv.port = free_port()
    srv._err = open(srv.log_path, "ab")
    srv._out = open(srv.out_path, "ab")
    srv.proc = subprocess.Popen(srv.argv(), stdin=subprocess.DEVNULL, stdout=srv._out, stderr=srv._err,
                                env=clean_env(), preexec_fn=deny_write_execute)
    try:
        srv.wait_healthy(20)
        c = srv.client()
        ids = [i["id"] for i in c.get("/v1/main/content?limit=3").json["items"]]
        for item in ids:
            for enc in ("br", "gzip", "zstd", "identity"):
                r = c.get(f"/v1/main/content/{item}", headers={"Accept-Encoding": enc})
                assert r.status == 200, r
        writer = srv.client(token=fresh_deployment.tokens["write"])
        publish_title(writer, ids[0], "written under MDWE")
        assert c.get(f"/v1/main/content/{ids[0]}").json["title"] == "written under MDWE"
        assert c.get("/metrics").status == 200
        assert_problem(c.get("/v1/main/content/999999999"), 404)
        assert srv.alive()
    finally:
        rc = srv.stop(10)
    assert rc == 0, f"strata under MDWE exited {rc}\n{srv.tail()}"
