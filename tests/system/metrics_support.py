"""metrics_support — reading strata's Prometheus exposition in tests
(docs/monitoring.md): a small parser of the text format 0.0.4, and waiting
for a counter to reach what the test sent.

A request is counted when h2o lets it go, just after its response's last
byte was written, so a test that reads /metrics at once (from another
connection, maybe another loop thread) may be a few microseconds early:
`wait_for_value` polls briefly until the value is there, then the test
asserts it is exactly that.
"""

import re
import time

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} and {name: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(LABEL_RE.findall(m.group(3) or ""))
        samples[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return samples, types


def value(samples, name, **labels):
    """The sample's value, or None when it is absent."""
    return samples.get((name, frozenset(labels.items())))


def scrape(client, **kw):
    resp = client.get("/metrics", **kw)
    assert resp.status == 200, resp
    assert resp.headers.get("content-type", "").startswith("text/plain; version=0.0.4"), resp.headers
    return resp.text


def wait_for_value(client, name, want, timeout=3.0, **labels):
    """Scrapes until the sample equals want (bounded); returns the samples."""
    deadline = time.monotonic() + timeout
    while True:
        samples, _ = parse_metrics(scrape(client))
        got = value(samples, name, **labels)
        if got == want or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)
