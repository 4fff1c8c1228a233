"""A real browser, a page that embeds strata's /vitals.js, and the
dashboard (issue 6, "Web Vitals" and "dashboard").

The test page is served by a tiny static server on another loopback port,
not by strata: that is how a site embeds /vitals.js in production (another
origin, so the beacon goes cross-origin as text/plain, without a
preflight), and strata needs no demo page. The static server names its
response's request id in Server-Timing (`reqid;desc=…`), as a site's own
server would, so the test can check that the beacons carry it.

Debian's chromium (headless) is driven by playwright-core from
web/node_modules through drive.mjs; this side starts the servers, judges
what strata received, and keeps the dashboard's screenshot in
build/test-output/.
"""

import json
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from conftest import SCREENSHOTS
from strata_support import HOST, REPO, assert_json

HERE = Path(__file__).resolve().parent
VITALS = ["LCP", "INP", "CLS", "FCP", "TTFB"]
SCREENSHOT = REPO / "build" / "test-output" / "browser-dashboard.png"


class StaticSite:
    """Serves vitals-test.html with strata's origin filled in and a
    Server-Timing request id of its own; everything else is 404."""

    def __init__(self, strata_origin):
        self.request_id = "site-" + uuid.uuid4().hex[:16]
        page = (HERE / "vitals-test.html").read_text().replace("{{STRATA}}", strata_origin).encode()
        request_id = self.request_id

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.split("?")[0] != "/articles/vitals-test.html":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.send_header("Server-Timing", f'reqid;desc="{request_id}"')
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def drive(node, config, timeout=120):
    proc = subprocess.run([node, str(HERE / "drive.mjs"), json.dumps(config)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"drive.mjs printed no result (exit {proc.returncode})\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    seen = json.loads(lines[-1])
    assert seen.get("ok"), f"the browser run failed: {seen.get('error')}\nconsole: {seen.get('console')}"
    return seen


def test_a_page_sends_its_vitals_and_the_dashboard_draws_them(server, tokens, browser_tools):
    tokens_admin = tokens["admin"]
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    strata = f"http://{HOST}:{server.port}"
    with StaticSite(strata) as site:
        seen = drive(browser_tools, {
            "page": f"http://{HOST}:{site.port}/articles/vitals-test.html",
            "dashboard": f"{strata}/dashboard",
            "token": tokens_admin,
            "screenshot": str(SCREENSHOT),
            "timeout_ms": 40000,
        })
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 10000
    SCREENSHOTS.append(SCREENSHOT)

    # the page learnt its own request id from Server-Timing, and so did the dashboard
    assert seen["page_request_id"] == site.request_id
    assert seen["dashboard_request_id"], "GET /dashboard should name its request id in Server-Timing"

    # strata received all five metrics for the test page, tagged with its request id
    c = server.client()
    page = assert_json(c.get("/api/performance/vitals?page=/articles/vitals-test.html", token=tokens_admin))
    for name in VITALS:
        m = page["metrics"][name]
        assert m["count"] >= 1, f"{name} was not received: {page}"
        assert m["rating"] in ("good", "needs-improvement", "poor")
    assert page["metrics"]["CLS"]["p75"] > 0, "the banner shifted the layout"
    assert page["metrics"]["INP"]["p75"] >= 100, "the click handler ran for 150 ms"
    summary = assert_json(c.get("/api/performance/vitals", token=tokens_admin))
    tagged = [s for s in summary["recent"] if s["page"] == "/articles/vitals-test.html"]
    assert tagged and all(s["request_id"] == site.request_id for s in tagged), summary["recent"]

    # the dashboard drew them, and a non-zero request rate
    dash = seen["dashboard"]
    assert not dash["login_shown"], dash
    for name in VITALS:
        assert dash["vitals"][name]["chart_max"] > 0 or name == "CLS" and dash["vitals"][name]["p75"] >= 0, dash
        assert dash["vitals"][name]["rating"] in ("good", "needs-improvement", "poor"), dash
    assert dash["vitals"]["LCP"]["chart_max"] > 0
    # the object cache's hit ratio (issue 15): a figure, not the placeholder
    float(dash["objects_tile"])
    assert "main" in dash["history_sites"], f"the History panel lists the sites' versions: {dash}"
    for chart in ("chart-rps", "chart-latency"):
        assert dash["charts"][chart]["canvas"], dash
        assert dash["charts"][chart]["max"] > 0, f"{chart} drew nothing above zero: {dash}"
