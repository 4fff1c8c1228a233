"""Real redis-server processes for the system tests, and what the tests
read of strata's Redis side (cache stats, waiting for connections).

redis-server is started on a free loopback port, without persistence (a
cache), and stopped by its PID; `pause`/`resume` freeze it with SIGSTOP /
SIGCONT to play a Redis that hangs."""

import shutil
import signal
import subprocess
import time

import pytest

from strata_support import free_port

needs_redis = pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")


class Redis:
    def __init__(self, directory):
        self.port = free_port()
        self.dir = directory
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return self
            time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path).start()
    yield r
    r.stop()


@pytest.fixture
def redis(tmp_path):
    r = Redis(tmp_path).start()
    yield r
    r.resume()
    r.stop()


def stats(srv, admin):
    r = srv.client(token=admin).get("/v1/cache/stats")
    assert r.status == 200, r
    return r.json


def wait_bus_connected(srv, admin, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stats(srv, admin).get("bus", {}).get("connected"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{srv.name} never connected to Redis\n{srv.tail()}")


def wait_l2_connected(srv, admin, timeout=10):
    """Every loop's L2 connection is up (connections_up counts them)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        l2 = stats(srv, admin).get("l2", {})
        if l2.get("connections_up", 0) > 0 and not l2.get("breaker", {}).get("open"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{srv.name}'s L2 never connected to Redis\n{srv.tail()}")
