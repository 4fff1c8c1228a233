"""scripts/stack.sh (issue 14): stage 3 on loopback in one command.

One module-scoped stack, started by the script itself with its state in a
temp dir under /tmp (PostgreSQL runs as the `postgres` user when the tests
run as root, and must reach it) and every port moved off the convention's
defaults by the script's environment overrides, so a developer's own
`make stack` is never disturbed. Checked: `up` refuses a taken port before
starting anything, comes up within the issue's minute, refuses a second
`up`; `status` exits 0 with every part healthy; demo content is served
through Varnish (and cached there), and a publish reaches Varnish through
strata's purge; `down` leaves none of the recorded PIDs running and
`status` then exits non-zero.

The strata binary is the one every system test uses (strata_support's
binary_path: $STRATA_BIN, else build/strata): under `make test` that is the
ASan+UBSan build, so the three instances of a real multi-instance deployment
run under the sanitizers too, and their logs are checked for a report.

Skipped (with the reason) only when a program the stack needs is missing.
"""

import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from strata_support import REPO, binary_path, free_port

SCRIPT = REPO / "scripts" / "stack.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PARTS = ["primary", "replica", "redis", "strata1", "strata2", "strata3", "nginx", "varnish"]
PORT_VARS = ["STACK_PG_PORT", "STACK_REPLICA_PORT", "STACK_REDIS_PORT", "STACK_STRATA1_PORT",
             "STACK_STRATA2_PORT", "STACK_STRATA3_PORT", "STACK_NGINX_PORT", "STACK_VARNISH_PORT"]
UP_LIMIT_S = 60  # the "brings the stack up in under a minute" (it takes ~5 s alone)


def missing_tools():
    tools = ["redis-server", "redis-cli", "nginx", "varnishd", "curl", "pg_isready"]
    missing = [t for t in tools if shutil.which(t, path=os.environ.get("PATH", "") + ":/usr/sbin") is None]
    missing += [str(PG_BIN / t) for t in ("initdb", "pg_ctl", "pg_basebackup", "postgres")
                if not (PG_BIN / t).exists()]
    if not glob.glob("/usr/lib/*/varnish/vmods/libvmod_xkey.so"):
        missing.append("the xkey vmod (varnish-modules)")
    return missing


pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"stage 3 needs {', '.join(missing_tools())} "
                                "(scripts/deps.sh stack installs them)")


def distinct_free_ports(n):
    return sorted(free_port() for _ in range(n))  # free_port never hands a port out twice


def stack(env, *args, timeout=120):
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def recorded_pids(state):
    return {p.stem: int(p.read_text()) for p in (state / "run").glob("*.pid")}


def pid_running(pid):
    """Alive and not a zombie (a stopped part's parent is init, which reaps it
    when it gets to it; a zombie holds no port and runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def get(url, headers=None, timeout=5):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


def call(url, method, token, body=None, headers=None):
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read() or b"null")


@pytest.fixture(scope="module")
def stack_env():
    # /tmp, 0755: as root the postgres user must enter it (pytest's tmp_path is 0700)
    state = Path(tempfile.mkdtemp(prefix="strata-stack-", dir="/tmp"))
    state.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATA_", "STACK_"))}
    # the nginx and Varnish configs may be pointed elsewhere (deploy/ by default)
    for k in ("STACK_NGINX_CONF", "STACK_VCL"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(dict(zip(PORT_VARS, map(str, distinct_free_ports(len(PORT_VARS))))))
    env.update(STACK_DIR=str(state / "stack"), STRATA_BIN=str(binary_path()), STACK_SEED_ITEMS="40")
    yield env, state / "stack"
    # whatever a failed test left: down by the recorded PIDs, then the data
    if (state / "stack").exists():
        stack(env, "down", "--purge")
    shutil.rmtree(state, ignore_errors=True)


def test_up_refuses_a_taken_port_before_starting_anything(stack_env):
    env, state = stack_env
    with socket.socket() as s:
        s.bind(("127.0.0.1", int(env["STACK_VARNISH_PORT"])))
        s.listen(1)
        r = stack(env, "up")
    assert r.returncode != 0
    assert f"port {env['STACK_VARNISH_PORT']} (varnish) is already taken" in r.stderr
    assert "STACK_VARNISH_PORT" in r.stderr
    assert not (state / "run").exists() or not recorded_pids(state), "nothing may start when a port is taken"


@pytest.fixture(scope="module")
def running(stack_env):
    env, state = stack_env
    t0, load0 = time.monotonic(), os.getloadavg()[0]
    r = stack(env, "up", timeout=300)
    elapsed, load1 = time.monotonic() - t0, os.getloadavg()[0]
    assert r.returncode == 0, f"up failed ({r.returncode}):\n{r.stderr[-3000:]}"
    # The minute is for a machine to itself: when others keep its CPUs
    # oversubscribed (load above the core count), every step waits its turn
    # that many times over, so the bound scales with it.
    oversubscribed = max(1.0, max(load0, load1) / (os.cpu_count() or 1))
    assert elapsed < UP_LIMIT_S * oversubscribed, \
        f"up took {elapsed:.1f}s (load {load0:.1f} → {load1:.1f} on {os.cpu_count()} cores)"
    secrets = dict(line.split("=", 1) for line in (state / "secrets").read_text().split())
    return env, state, r.stdout, secrets


def test_up_prints_urls_and_tokens(running):
    env, _, out, secrets = running
    assert f"http://127.0.0.1:{env['STACK_VARNISH_PORT']}/" in out
    assert f"http://127.0.0.1:{env['STACK_NGINX_PORT']}/dashboard#token={secrets['admin_token']}" in out
    for var in ("STACK_STRATA1_PORT", "STACK_STRATA2_PORT", "STACK_STRATA3_PORT"):
        assert f"http://127.0.0.1:{env[var]}/" in out
    assert secrets["editor_token"] in out and secrets["editor_token"].startswith("st_")


def test_status_is_healthy(running):
    env, state, _, _ = running
    r = stack(env, "status", timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()[1:]}
    assert sorted(lines) == sorted(PARTS)
    for part in PARTS:
        assert "healthy:" in lines[part] and "UNHEALTHY" not in lines[part], lines[part]
    assert "streaming" in lines["replica"]
    pids = recorded_pids(state)
    assert sorted(pids) == sorted(PARTS)
    assert all(pid_running(p) for p in pids.values())


def test_second_up_refuses(running):
    env, state, _, _ = running
    before = recorded_pids(state)
    r = stack(env, "up")
    assert r.returncode != 0
    assert "already running" in r.stderr
    assert recorded_pids(state) == before


def test_demo_content_through_varnish(running):
    env, _, _, _ = running
    url = f"http://127.0.0.1:{env['STACK_VARNISH_PORT']}/v1/main/content?limit=3"
    status, _, body = get(url)
    assert status == 200
    items = json.loads(body)["items"]
    assert len(items) == 3 and all(i["title"] and i["status"] == "published" for i in items)
    # the second answer comes from Varnish's cache: X-Varnish names two requests
    status, headers, body2 = get(url)
    assert status == 200 and json.loads(body2)["items"] == items
    assert len(headers["x-varnish"].split()) == 2, headers


def test_publish_reaches_varnish(running):
    env, _, _, secrets = running
    api = f"http://127.0.0.1:{env['STACK_VARNISH_PORT']}/v1/main"
    token = secrets["editor_token"]
    status, item = call(f"{api}/content", "POST", token,
                        {"type": "post", "slug": f"stack-{os.getpid()}", "title": "Before"})
    assert status == 201
    assert call(f"{api}/content/{item['id']}/publish", "POST", token)[0] == 200
    get(f"{api}/content/{item['id']}")
    _, headers, body = get(f"{api}/content/{item['id']}")
    assert json.loads(body)["title"] == "Before" and len(headers["x-varnish"].split()) == 2
    assert call(f"{api}/content/{item['id']}", "PUT", token, {"title": "After"},
                {"If-Match": '"v1"'})[0] == 200
    assert call(f"{api}/content/{item['id']}/publish", "POST", token)[0] == 200
    deadline = time.monotonic() + 10  # the purge job polls every second
    while True:
        _, _, body = get(f"{api}/content/{item['id']}")
        if json.loads(body)["title"] == "After":
            break
        assert time.monotonic() < deadline, "Varnish still serves the old version 10 s after the publish"
        time.sleep(0.1)


def test_down_leaves_nothing(running):
    env, state, _, _ = running
    pids = recorded_pids(state)
    r = stack(env, "down")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 10
    while any(pid_running(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [f"{n}={p}" for n, p in pids.items() if pid_running(p)] == []
    r = stack(env, "status", timeout=60)
    assert r.returncode != 0 and "DOWN" in r.stdout
    for n in (1, 2, 3):
        log = (state / "logs" / f"strata{n}.log").read_text(errors="replace")
        assert "Sanitizer" not in log, log[-3000:]
    # the data stays until --purge
    assert (state / "pg" / "primary").is_dir()
    assert stack(env, "down", "--purge").returncode == 0
    assert not state.exists()
