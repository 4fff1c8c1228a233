"""edge_support — nginx and Varnish from deploy/ in front of real strata
instances, for the system tests (test_deploy_configs.py, test_stage3.py).

The configuration files are the ones an operator installs: deploy/nginx/
strata.conf and deploy/varnish/strata.vcl, copied into the test's directory
with their literal ports (the deploy/ convention: nginx 127.0.0.1:8000,
instances 127.0.0.1:8081-8083) rewritten to the test's random ones, exactly
as scripts/stack.sh does. Both run as the current user in the foreground
(so the PID we hold is the master's), with every path they write (pid, logs,
temp files, Varnish's working directory) in that directory, and are stopped
by their PID. Every wait is bounded.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from strata_support import HOST, REPO, free_port

DEPLOY = REPO / "deploy"
VCL = DEPLOY / "varnish" / "strata.vcl"
NGINX_CONF = DEPLOY / "nginx" / "strata.conf"
PROMETHEUS = DEPLOY / "prometheus"
SYSTEMD_UNIT = DEPLOY / "systemd" / "strata.service"

# The instances' ports in deploy/ files, in order.
INSTANCE_PORTS = (8081, 8082, 8083)
NGINX_PORT = 8000
VARNISH_PORT = 6081


def tool(name, *dirs):
    """The path of a program: in the sbin directories Debian installs
    daemons to (not on a normal user's PATH), else on PATH; or None."""
    for d in dirs or ("/usr/sbin", "/usr/bin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which(name)


VARNISHD = tool("varnishd")
NGINX = tool("nginx")
PROMTOOL = tool("promtool")
SYSTEMD_ANALYZE = tool("systemd-analyze")


def xkey_vmod():
    """The xkey vmod's shared object (Debian's varnish-modules), or None."""
    for p in Path("/usr/lib").glob("*/varnish/vmods/libvmod_xkey.so"):
        return p
    p = Path("/usr/lib/varnish/vmods/libvmod_xkey.so")
    return p if p.exists() else None


needs_varnish = pytest.mark.skipif(
    VARNISHD is None or xkey_vmod() is None,
    reason="varnishd or the xkey vmod is not installed (Debian: varnish varnish-modules)")
needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed (Debian: nginx-light)")


def rewrite_ports(text, mapping):
    """Replaces each literal 127.0.0.1:PORT by the mapped port, as sed
    would; every one must occur."""
    for old, new in mapping.items():
        needle = f"{HOST}:{old}"
        assert needle in text, f"{needle} is not in the deploy/ file any more"
        text = text.replace(needle, f"{HOST}:{new}")
    return text


def wait_port(port, proc, what, timeout=20.0, log=None):
    """Until something accepts on HOST:port, or fail (naming the process's
    exit, and the end of its log, if it died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = ""
            if log is not None and Path(log).exists():
                tail = "\n" + "\n".join(Path(log).read_text(errors="replace").splitlines()[-20:])
            raise AssertionError(f"{what} exited with {proc.returncode} before listening on {port}{tail}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} not listening on {port} within {timeout}s")


def stop_pid(proc, sig=signal.SIGTERM, timeout=15.0):
    """Signals our own child by its PID and waits; SIGKILL if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    os.kill(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


# ---- nginx -------------------------------------------------------------------

class Nginx:
    """deploy/nginx/strata.conf wrapped in a minimal main configuration of
    our own (foreground, one worker, every path in `directory`)."""

    def __init__(self, directory, upstream_ports, port=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.upstream_ports = list(upstream_ports)
        self.proc = None
        self.conf = self.write_config()

    def write_config(self):
        ports = list(self.upstream_ports)
        text = NGINX_CONF.read_text()
        mapping = {NGINX_PORT: self.port}
        for i, old in enumerate(INSTANCE_PORTS):
            mapping[old] = ports[i] if i < len(ports) else None
        for old, new in list(mapping.items()):
            if new is None:
                # Fewer instances than the file lists: drop that server line.
                text, n = re.subn(rf"^\s*server {re.escape(HOST)}:{old}\b[^\n]*\n", "", text, flags=re.M)
                assert n == 1, f"no `server {HOST}:{old}` line in {NGINX_CONF}"
                del mapping[old]
        text = rewrite_ports(text, mapping)
        (self.dir / "strata.conf").write_text(text)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / sub).mkdir(exist_ok=True)
        d = self.dir
        # As root nginx would run its workers as `nobody`, which cannot use
        # pytest's 0700 directories; as anyone else `user` is ignored.
        user = "user root;\n" if os.geteuid() == 0 else ""
        main = (f"{user}daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\n"
                f"error_log {d}/error.log notice;\n"
                "events { worker_connections 1024; }\n"
                "http {\n"
                f"    access_log {d}/access.log;\n"
                f"    client_body_temp_path {d}/client_body;\n    proxy_temp_path {d}/proxy;\n"
                f"    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n"
                f"    scgi_temp_path {d}/scgi;\n"
                f"    include {d}/strata.conf;\n"
                "}\n")
        conf = d / "nginx.conf"
        conf.write_text(main)
        return conf

    def check(self):
        """`nginx -t` on the generated configuration: the CompletedProcess."""
        return subprocess.run([NGINX, "-t", "-p", str(self.dir), "-c", str(self.conf)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)

    def start(self):
        self.log = open(self.dir / "stderr.log", "ab")
        self.proc = subprocess.Popen([NGINX, "-p", str(self.dir), "-c", str(self.conf)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        try:
            wait_port(self.port, self.proc, "nginx", log=self.dir / "stderr.log")
        except BaseException:
            self.stop()  # never leave a process behind a failed start
            raise
        return self

    def stop(self):
        # SIGQUIT: nginx's graceful stop (SIGTERM is its fast one).
        stop_pid(self.proc, signal.SIGQUIT)
        if self.proc is not None:
            self.log.close()

    def error_log(self):
        p = self.dir / "error.log"
        return p.read_text(errors="replace") if p.exists() else ""


# ---- Varnish -------------------------------------------------------------------

class Varnish:
    """varnishd -F with deploy/varnish/strata.vcl, its backend rewritten to
    backend_port, listening on a random loopback port, its working
    directory (-n) under `directory`, no privilege separation (-j none: it
    runs as us)."""

    def __init__(self, directory, backend_port, port=None):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.backend_port = backend_port
        self.vcl = self.dir / "strata.vcl"
        self.vcl.write_text(rewrite_ports(VCL.read_text(), {NGINX_PORT: backend_port}))
        self.workdir = self.dir / "varnish-n"
        self.proc = None

    def compile(self):
        """varnishd -C: the VCL compiled to C, or the compiler's complaint."""
        return compile_vcl(self.vcl, self.workdir)

    def start(self, timeout=30.0):
        self.log = open(self.dir / "varnishd.log", "ab")
        self.proc = subprocess.Popen(
            [VARNISHD, "-F", "-j", "none", "-n", str(self.workdir), "-a", f"{HOST}:{self.port}",
             "-T", f"{HOST}:0", "-f", str(self.vcl), "-s", "malloc,64m",
             # Threads: the default pool minimum (100 × 2) is sized for a
             # dedicated machine; a test needs a few.
             "-p", "thread_pools=1", "-p", "thread_pool_min=10"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        try:
            wait_port(self.port, self.proc, "varnishd", timeout, log=self.dir / "varnishd.log")
        except BaseException:
            self.stop()  # never leave a process behind a failed start
            raise
        return self

    def stop(self):
        stop_pid(self.proc, signal.SIGTERM)
        if self.proc is not None:
            self.log.close()

    def tail(self, n=40):
        p = self.dir / "varnishd.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""

    @property
    def url(self):
        return f"http://{HOST}:{self.port}/"


def compile_vcl(vcl, workdir):
    """`varnishd -C -f VCL`: returncode and the compiler's messages (its C
    output is dropped)."""
    proc = subprocess.run([VARNISHD, "-C", "-n", str(workdir), "-f", str(vcl)],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    # varnishd -C prints the generated C on stderr; on failure the messages
    # come first (and there is no C).
    messages = proc.stderr if proc.returncode != 0 else ""
    return proc.returncode, messages


def purge_as_strata(port, keys, *, source=HOST, method="PURGE", header="Surrogate-Key", path="/"):
    """The request strata's purge job sends (src/jobs/purge.c,
    request_build), byte for byte, from `source`; returns (status, head)."""
    req = (f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: strata\r\n"
           f"{header}: {' '.join(keys)}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.bind((source, 0))
        s.connect((HOST, port))
        s.sendall(req)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return int(head.split(" ", 2)[1]), head


def varnish_state(resp):
    """Varnish's own entry of Cache-Status ('hit', 'fwd=miss', …), or None."""
    for part in resp.headers.get("cache-status", "").split(","):
        part = part.strip()
        if part.startswith("varnish;"):
            return part[len("varnish;"):].strip()
    return None


# ---- the whole stage 3 on loopback ----------------------------------------------

class Stack:
    """PostgreSQL (a cluster of its own), Redis, `instances` strata serving
    one database, nginx (deploy/nginx/strata.conf) in front of them and
    Varnish (deploy/varnish/strata.vcl) in front of nginx, every strata's
    purge job pointed at Varnish. stop() stops exactly what start() started,
    by PID, whatever failed on the way."""

    def __init__(self, binary, directory, *, instances=3, strata_args=()):
        self.binary = binary
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.count = instances
        self.strata_args = list(strata_args)
        self.pg = self.redis = self.nginx = self.varnish = None
        self.deployment = None
        self.servers = []

    def start(self):
        from pg_support import PostgresCluster
        from redis_support import Redis
        from strata_support import Deployment, Server, run_ok
        try:
            self.pg = PostgresCluster().start()
            url = self.pg.url
            run_ok(self.binary, "migrate", "--db", url)
            run_ok(self.binary, "seed", "--db", url, "--items", 40)
            tokens = {}
            for role in ("read", "write", "admin"):
                tokens[role] = run_ok(self.binary, "token", "create", "--site", "main", "--role", role,
                                      "--name", role, "--db", url).stdout.strip()
            self.deployment = Deployment(self.binary, self.dir, url, tokens)
            self.redis = Redis(self.dir).start()
            varnish_port = free_port()
            args = ["--redis", self.redis.url, "--cdn-purge-url", f"http://{HOST}:{varnish_port}/",
                    # Every test reader is 127.0.0.1: one "client" to the
                    # per-address and per-token limits, which are off here.
                    "--limits-client-rps", "0", "--limits-read-rps", "0", "--limits-write-rps", "0",
                    "--limits-admin-rps", "0", "--workers", "4", *self.strata_args]
            for n in range(self.count):
                self.servers.append(Server(self.deployment, name=f"strata{n}", args=args))
            for srv in self.servers:
                srv.start(timeout=30)
            self.nginx = Nginx(self.dir / "nginx", [s.port for s in self.servers]).start()
            self.varnish = Varnish(self.dir / "varnish", self.nginx.port, port=varnish_port).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stops everything started; returns the strata exit codes that were
        not 0 after SIGTERM (a killed instance is not counted)."""
        problems = []
        for part in (self.varnish, self.nginx):
            if part is not None:
                part.stop()
        for srv in self.servers:
            if srv.alive():
                rc = srv.stop(15)
                if rc != 0:
                    problems.append(f"{srv.name}: exit {rc} after SIGTERM\n{srv.tail(10)}")
            else:
                srv.close_clients()
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
        self.varnish = self.nginx = self.redis = self.pg = None
        return problems

    @property
    def tokens(self):
        return self.deployment.tokens
