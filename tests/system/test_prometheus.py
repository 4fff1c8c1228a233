"""Prometheus scrapes strata (docs/monitoring.md): Debian's `prometheus`
runs with a temporary configuration scraping one strata on loopback every
second, its storage in the test's temp dir, its web API on a free port; the
test sends a known number of requests and reads the counter back through
Prometheus's query API.

CI installs prometheus with `scripts/deps.sh test`; nothing here is skipped.
"""

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request

from strata_support import HOST, free_port

N = 23
ROUTE = "/v1/:site/content/:id"


class Prometheus:
    """One `prometheus` process we started, stopped by its PID."""

    def __init__(self, directory, target_port, token=None):
        self.dir = directory
        self.port = free_port()
        config = directory / "prometheus.yml"
        auth = f"    authorization:\n      credentials: {token}\n" if token else ""
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: strata\n"
            f"{auth}"
            "    static_configs:\n"
            f"      - targets: ['{HOST}:{target_port}']\n")
        self.log = open(directory / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={directory / 'tsdb'}",
             f"--web.listen-address={HOST}:{self.port}", "--log.level=warn"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def query(self, promql):
        url = f"http://{HOST}:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=5) as resp:
            doc = json.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def wait_for(self, promql, predicate, timeout=30.0):
        """Polls the query until predicate(result) holds; returns the result."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {self.tail()}"
            try:
                last = self.query(promql)
                if predicate(last):
                    return last
            except OSError as e:  # not listening yet
                last = repr(e)
            time.sleep(0.25)
        raise AssertionError(f"{promql}: still {last!r} after {timeout}s\n{self.tail()}")

    def tail(self):
        self.log.flush()
        return (self.dir / "prometheus.log").read_text(errors="replace")[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


def scalar(result):
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_prometheus_reads_back_the_requests_sent(server_factory, tmp_path):
    srv = server_factory()
    client = srv.client()
    item = client.get("/v1/main/content?limit=1").json["items"][0]["id"]
    for _ in range(N):
        assert client.get(f"/v1/main/content/{item}").status == 200

    prom = Prometheus(tmp_path, srv.port)
    try:
        prom.wait_for('up{job="strata"}', lambda r: scalar(r) == 1.0)
        query = f'strata_http_requests_total{{route="{ROUTE}",method="GET",code_class="2xx"}}'
        result = prom.wait_for(query, lambda r: scalar(r) == N)
        assert result[0]["metric"]["job"] == "strata"
        # the histogram arrives too, and agrees
        count = prom.wait_for(f'strata_http_request_duration_seconds_count{{route="{ROUTE}"}}',
                              lambda r: scalar(r) == N)
        assert scalar(count) == N
        p99 = prom.wait_for(
            f'histogram_quantile(0.99, strata_http_request_duration_seconds_bucket{{route="{ROUTE}"}})',
            lambda r: scalar(r) is not None)
        assert 0 < scalar(p99) <= 10
    finally:
        prom.stop()


def test_prometheus_sends_the_token_when_one_is_required(server_factory, tmp_path):
    srv = server_factory(args=["--metrics-token-required", "true"])
    prom = Prometheus(tmp_path, srv.port, token=srv.deployment.tokens["admin"])
    try:
        prom.wait_for('up{job="strata"}', lambda r: scalar(r) == 1.0)
        prom.wait_for('strata_worker_pool_workers{job="strata"}', lambda r: (scalar(r) or 0) >= 1)
    finally:
        prom.stop()
