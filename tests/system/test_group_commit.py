"""Editors' saves at once, through the group commit (src/store/commit_group.c
on SQLite; PostgreSQL groups commits itself): many connections saving at the
same moment share commits, yet each answer is its own — every 2xx save is in
the item's history with its own content, a save that fails (a lost base, a
taken slug, an absent item) answers its own problem while the saves committed
beside it stay, and the diff job and the autosave clearing ride in the save's
own transaction."""

import threading

from metrics_support import parse_metrics, scrape, value
from strata_support import DB_BACKEND, assert_json, assert_problem, create_item, etag_version, uniq

THREADS = 16
SAVES = 6


def run_threads(target, n):
    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a saver never finished"


def version_title(client, token, item_id, n):
    r = client.get(f"/v1/main/content/{item_id}/versions/{n}", token=token)
    return assert_json(r, 200)["content"]["title"]


def test_concurrent_star_saves_all_answer_2xx_and_are_in_the_history(server, client, tokens):
    """16 connections, each saving its own item with If-Match: *, and all of
    them one shared item too: never a 412, and every acknowledged version
    holds what its save wrote."""
    w = tokens["write"]
    own = [create_item(client, w, title=f"own {k}")["id"] for k in range(THREADS)]
    shared = create_item(client, w, title="shared")["id"]
    answers, lock = [], threading.Lock()

    def saver(k):
        c = server.client(timeout=60)
        for n in range(SAVES):
            for item in (own[k], shared):
                title = f"t{k}.{n}.{item}"
                r = c.put(f"/v1/main/content/{item}", token=w, headers={"If-Match": "*"}, json={"title": title})
                with lock:
                    answers.append((item, title, r.status, etag_version(r) if r.status == 200 else r.body[:200]))

    run_threads(saver, THREADS)
    # On PostgreSQL sixteen SERIALIZABLE saves of one row conflict, and each
    # runs again at most DB_RETRY_MAX times: under a loaded machine one may
    # still answer 503 database_busy (retry) — never a 412, and nothing it
    # answered 2xx lost. SQLite's group commit queues them: all 2xx.
    busy = [a for a in answers if a[2] == 503 and a[0] == shared and DB_BACKEND == "postgres"
            and b"database_busy" in a[3]]
    bad = [a for a in answers if a[2] != 200 and a not in busy]
    assert not bad, f"{len(bad)} of {len(answers)} saves with If-Match: * failed: {bad[:3]}"
    assert len(busy) <= THREADS, f"{len(busy)} saves of the shared item were refused busy"
    answers = [a for a in answers if a[2] == 200]
    for item in own:
        mine = sorted(v for i, _, _, v in answers if i == item)
        assert mine == list(range(2, 2 + SAVES)), (item, mine)
    shared_versions = sorted(v for i, _, _, v in answers if i == shared)
    assert shared_versions == list(range(2, 2 + THREADS * SAVES - len(busy))), \
        "a version of the shared item was lost or doubled"
    for item, title, _, version in answers:
        assert version_title(client, w, item, version) == title, f"item {item} v{version} is not what its save wrote"


def test_a_failing_save_answers_its_own_problem_and_leaves_the_others(server, client, tokens):
    """Saves that must fail (a stale base: 412; a slug another item holds:
    409; an absent item: 404) race saves that must not: each caller gets
    its own answer, and the good saves are all committed."""
    w = tokens["write"]
    typ = uniq("gc")
    taken = create_item(client, w, type=typ, slug=uniq("taken"))
    goods = [create_item(client, w, type=typ, title=f"good {k}")["id"] for k in range(THREADS)]
    victims = [create_item(client, w, type=typ, title=f"victim {k}")["id"] for k in range(THREADS)]
    results, lock = {}, threading.Lock()

    def saver(k):
        c = server.client(timeout=60)
        got = []
        for n in range(SAVES):
            got.append(("good", c.put(f"/v1/main/content/{goods[k]}", token=w, headers={"If-Match": f'"v{n + 1}"'},
                                      json={"title": f"good {k}.{n}"})))
            bad = n % 3
            if bad == 0:  # the victim is at version 1
                got.append(("stale", c.put(f"/v1/main/content/{victims[k]}", token=w,
                                           headers={"If-Match": '"v99"'}, json={"title": "never"})))
            elif bad == 1:
                got.append(("slug", c.put(f"/v1/main/content/{victims[k]}", token=w, headers={"If-Match": "*"},
                                          json={"slug": taken["slug"]})))
            else:
                got.append(("absent", c.put("/v1/main/content/987654321", token=w, headers={"If-Match": "*"},
                                            json={"title": "nobody"})))
        with lock:
            results[k] = got

    run_threads(saver, THREADS)
    expected = {"good": 200, "stale": 412, "slug": 409, "absent": 404}
    for got in results.values():
        for kind, r in got:
            if kind == "good":
                assert_json(r, 200)
            else:
                assert_problem(r, expected[kind])
            if kind == "stale":
                assert "version 1" in r.json["detail"] and "99" in r.json["detail"], r.json
    for k, item in enumerate(goods):
        r = client.get(f"/v1/main/content/{item}/draft", token=w)
        assert assert_json(r, 200)["version"] == 1 + SAVES
        assert r.json["title"] == f"good {k}.{SAVES - 1}"
        assert version_title(client, w, item, 2) == f"good {k}.0"
    for item in victims:
        d = assert_json(client.get(f"/v1/main/content/{item}/draft", token=w), 200)
        assert d["version"] == 1 and d["slug"] != taken["slug"], "a failed save left a trace"


def test_a_save_clears_the_autosave_it_supersedes(server, client, tokens):
    """The author's autosave a save supersedes is cleared in the save's own
    transaction: gone when the save answers. (The diff job queued in it too
    is test_history's test_the_diff_to_the_previous_version_is_computed_on_save.)"""
    w = tokens["write"]
    d = create_item(client, w, title="typing")
    r = client.post(f"/v1/main/content/{d['id']}/autosave", token=w, headers={"If-Match": '"v1"'},
                    json={"title": "half typed"})
    assert_json(r, 200)
    assert_json(client.get(f"/v1/main/content/{d['id']}/autosave", token=w), 200)
    r = client.put(f"/v1/main/content/{d['id']}", token=w, headers={"If-Match": '"v1"'}, json={"title": "typed"})
    assert etag_version(r) == 2
    assert_problem(client.get(f"/v1/main/content/{d['id']}/autosave", token=w), 404)


def test_the_group_commit_counts_its_commits_and_writes_in_metrics(server, client, tokens):
    """/metrics shows how many writes each fsync carried (SQLite only: on
    PostgreSQL writes commit alone and the family is absent), and whether
    the disk is full."""
    w = tokens["write"]
    before, _ = parse_metrics(scrape(client))
    item = create_item(client, w)["id"]

    def saver(k):
        c = server.client()
        for n in range(5):
            r = c.put(f"/v1/main/content/{item}", token=w, headers={"If-Match": "*"}, json={"title": f"m{k}.{n}"})
            assert r.status in (200, 503), r  # 503: PostgreSQL's busy retry, as above

    run_threads(saver, 8)
    after, types = parse_metrics(scrape(client))
    assert value(after, "strata_db_disk_full") == 0 and types["strata_db_disk_full"] == "gauge"
    if DB_BACKEND == "postgres":
        assert value(after, "strata_db_group_commits_total") is None
        return
    writes = value(after, "strata_db_group_writes_total", **{"class": "request"}) - \
        (value(before, "strata_db_group_writes_total", **{"class": "request"}) or 0)
    commits = value(after, "strata_db_group_commits_total") - (value(before, "strata_db_group_commits_total") or 0)
    assert writes >= 41, f"{writes} request writes counted for 41 made"
    assert 1 <= commits <= writes, (commits, writes)
    assert types["strata_db_group_writes_total"] == "counter"
