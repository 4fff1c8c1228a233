"""History in the monitoring (issue 16; content/history.c, docs/monitoring.md):
each site's versions and the bytes they take as stored, and the history
cache's lookups, in the JSON summary, in /metrics and on the dashboard's
History panel (tests/browser)."""

from metrics_support import parse_metrics, scrape, value
from strata_support import assert_json, create_item, save


def summary(client, admin):
    return assert_json(client.get("/api/performance/metrics", token=admin))["history"]


def test_versions_stored_bytes_and_history_cache_lookups_are_reported(server_factory, tokens):
    srv = server_factory()
    client = srv.client()
    admin = tokens["admin"]
    before = summary(client, admin)
    assert set(before["cache"]) >= {"hits", "misses", "hit_ratio", "entries", "bytes", "max_bytes"}
    assert before["sites"]["main"]["versions"] >= 0 and before["counted_at"]

    draft = create_item(client, admin, body="words " * 400)
    for n in range(3):
        draft = save(client, admin, draft["id"], draft["version"], {"title": f"edition {n}"})
    for _ in range(3):  # the first read renders the version, the next two are the history cache's
        assert client.get(f"/v1/main/content/{draft['id']}/versions/2", token=admin).status == 200
    after = summary(client, admin)
    assert after["cache"]["hits"] - before["cache"]["hits"] >= 2
    assert after["cache"]["misses"] - before["cache"]["misses"] >= 1
    assert 0 < after["cache"]["hit_ratio"] <= 1
    # the per-site counts are read again at most once a minute: a fresh server counts the new versions
    srv.stop()
    again = server_factory()
    counted = summary(again.client(), admin)["sites"]
    assert counted["main"]["versions"] >= before["sites"]["main"]["versions"] + 4
    assert counted["main"]["stored_bytes"] > 0
    assert "other" in counted

    samples, types = parse_metrics(scrape(again.client()))
    assert types["strata_history_versions"] == "gauge"
    assert types["strata_history_cache_lookups_total"] == "counter"
    assert value(samples, "strata_history_versions", site="_all") >= counted["main"]["versions"]  # public: summed
    assert value(samples, "strata_history_stored_bytes", site="main") is None, "a public /metrics names no site"
    assert value(samples, "strata_history_cache_lookups_total", result="hit") is not None
