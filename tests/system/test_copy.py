"""`strata copy` (issue 12): a SQLite database into PostgreSQL and back,
with every row, every version and the secret, checked on the way.

A seeded SQLite deployment is given some of everything (versions, an
autosave, a preview link, tokens, views, jobs), then copied into an empty
PostgreSQL database and from there into a new SQLite file. The round trip
must give back the same rows, byte for byte (so the same item JSON and the
same version hashes), and the PostgreSQL copy must serve what the original
serves. Needs the PostgreSQL cluster of the suite's PostgreSQL pass
(STRATA_TEST_PG_URL); skipped without one.
"""

import json
import os
import sqlite3

import pytest

from strata_support import (Deployment, Server, assert_json, assert_status, pg_admin, pg_url, publish, run_cli,
                            run_ok, save, uniq)

pytestmark = pytest.mark.skipif(not os.environ.get("STRATA_TEST_PG_URL"),
                                reason="needs a PostgreSQL cluster (STRATA_TEST_PG_URL)")

TABLES = ["meta", "sites", "tokens", "categories", "items", "item_tags", "versions", "publications", "autosaves",
          "previews", "jobs", "views_hourly"]


def sqlite_rows(path):
    """Every row of every table; items.fields as parsed JSON (PostgreSQL
    keeps it as jsonb, which spells an object its own way: the same
    object, other bytes — what the API serves of it is checked apart)."""
    db = sqlite3.connect(path)
    try:
        out = {}
        for table in TABLES:
            columns = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            if table == "items":
                at = columns.index("fields")
                rows = [r[:at] + (json.loads(r[at]),) + r[at + 1:] for r in rows]
            out[table] = sorted(rows, key=repr)
        return out
    finally:
        db.close()


@pytest.fixture
def pg_database():
    name = "strata_copy_" + uniq("t").replace("-", "_")
    pg_admin(f"CREATE DATABASE {name}")
    yield pg_url(name)
    pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def give_it_everything(binary, directory):
    """A SQLite deployment with rows in every table."""
    db = directory / "original.db"
    run_ok(binary, "migrate", "--db", db)
    run_ok(binary, "seed", "--db", db, "--items", 30, "--versions", 4)
    run_ok(binary, "site", "create", "other", "--db", db)
    token = run_ok(binary, "token", "create", "--site", "main", "--role", "admin", "--name", "copier",
                   "--db", db).stdout.strip()
    return db, token


def test_sqlite_to_postgresql_and_back_keeps_every_row(strata_bin, tmp_path, pg_database):
    db, token = give_it_everything(strata_bin, tmp_path)
    deployment = Deployment(strata_bin, tmp_path, db, {"admin": token})
    srv = Server(deployment, name="original").start()
    try:
        c = srv.client()
        items = assert_json(c.get("/v1/main/content?limit=5"))["items"]
        item = items[0]["id"]
        draft = assert_json(c.get(f"/v1/main/content/{item}/draft", token=token))
        save(c, token, item, draft["version"], {"title": "copied title"})
        publish(c, token, item)
        latest = draft["version"] + 1
        assert_status(c.post(f"/v1/main/content/{item}/autosave", token=token,
                             headers={"If-Match": f'"v{latest}"'}, json={"title": "autosaved"}), 200)
        assert_status(c.post(f"/v1/main/content/{item}/previews", token=token, json={}), 201)
        for _ in range(3):
            c.post(f"/v1/main/content/{items[1]['id']}/views")
    finally:
        srv.stop()  # the views are written at the stop
    # what the original serves now, everything written
    srv = Server(deployment, name="original-again").start()
    try:
        c = srv.client()
        originals = {i["id"]: c.get(f"/v1/main/content/{i['id']}") for i in items}
    finally:
        srv.stop()

    copied = run_ok(strata_bin, "copy", "--from", db, "--to", pg_database, timeout=120)
    assert "verified" in copied.stdout, copied.stdout
    back = tmp_path / "back.db"
    run_ok(strata_bin, "copy", "--from", pg_database, "--to", back, timeout=120)

    before, after = sqlite_rows(db), sqlite_rows(back)
    for table in TABLES:
        assert len(after[table]) == len(before[table]), f"{table}: {len(before[table])} rows, {len(after[table])} back"
        assert after[table] == before[table], f"{table} differs after SQLite → PostgreSQL → SQLite"
    assert before["versions"] and before["autosaves"] and before["previews"], "the original lacks rows to copy"

    # the PostgreSQL copy serves what the original served, with the same tokens
    on_pg = Server(Deployment(strata_bin, tmp_path, pg_database, {"admin": token}), name="copy").start()
    try:
        c = on_pg.client()
        for item_id, original in originals.items():
            copied = c.get(f"/v1/main/content/{item_id}")
            assert copied.json == original.json, item_id
            assert copied.body == original.body, f"item {item_id}: the same JSON, spelled otherwise"
        assert_json(c.get(f"/v1/main/content/{item}/versions", token=token))
    finally:
        on_pg.stop()


def test_copy_refuses_a_destination_with_data(strata_bin, tmp_path, pg_database):
    db, _ = give_it_everything(strata_bin, tmp_path)
    run_ok(strata_bin, "copy", "--from", db, "--to", pg_database, timeout=120)
    again = run_cli(strata_bin, "copy", "--from", db, "--to", pg_database, timeout=120)
    assert again.returncode == 1, again
    assert "empty" in again.stderr, again.stderr
    assert "strata:" in again.stderr and "***" not in again.stdout
