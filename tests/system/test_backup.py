"""Backups of the embedded database (issue 17; src/store/backup.c,
docs/operations.md "Backups"): `strata backup` copies it online while
strata serves and writers write, `strata verify` checks a copy whole, and
`strata restore` puts one back. A backup holds every write acknowledged
before it began, and writers are not held up by it."""

import sqlite3
import threading
import time

from urllib.parse import urlsplit

from strata_support import DB_BACKEND, run_cli, sqlite_only, uniq

EMBEDDED_ONLY = "strata backup is for the embedded database (PostgreSQL: pg_basebackup)"


def test_verify_checks_a_database_of_either_engine_and_never_shows_a_password(fresh_deployment, strata_bin):
    verified = run_cli(strata_bin, "verify", str(fresh_deployment.db))
    assert verified.returncode == 0 and "verifies" in verified.stdout and "hashes match" in verified.stdout, verified
    if DB_BACKEND == "postgres":
        password = urlsplit(str(fresh_deployment.db)).password
        assert password and password not in verified.stdout + verified.stderr
        refused = run_cli(strata_bin, "backup", "--db", str(fresh_deployment.db), "--to", "/tmp/never.db")
        assert refused.returncode == 2 and "pg_basebackup" in refused.stderr, refused


@sqlite_only(EMBEDDED_ONLY)
def test_a_backup_taken_under_eight_writers_restores_with_every_write_acknowledged_before_it(
        server_factory, fresh_deployment, strata_bin, tmp_path):
    srv = server_factory(args=["--limits-write-rps", "0"])  # eight writers of one token: its rate limit is not tested here
    token = fresh_deployment.tokens["write"]
    acked, failures = [], []
    stop = threading.Event()
    lock = threading.Lock()

    def writer(n):
        client = srv.client(token=token, timeout=20)
        for i in range(100000):
            if stop.is_set():
                return
            title = f"w{n} #{i}"
            resp = client.post("/v1/main/content", json={"type": "bk", "slug": uniq("bk"), "title": title})
            with lock:
                if resp.status == 201:
                    acked.append((time.monotonic(), resp.json["id"], title))
                else:
                    failures.append(resp.status)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        began = time.monotonic()
        backup = run_cli(strata_bin, "backup", "--db", str(fresh_deployment.db), "--to", str(tmp_path / "b.db"),
                         timeout=120)
        time.sleep(0.5)  # writers go on after it
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert backup.returncode == 0, backup.stderr
    assert "verifies" in backup.stdout and "hashes match" in backup.stdout, backup.stdout
    assert not failures, f"writes failed beside the backup: {failures[:5]}"
    before = [(i, title) for at, i, title in acked if at < began]
    assert len(before) >= 20 and len(acked) > len(before), (len(before), len(acked))

    copy = sqlite3.connect(f"file:{tmp_path / 'b.db'}?mode=ro", uri=True)
    try:
        titles = dict(copy.execute("SELECT id, title FROM items WHERE type = 'bk'").fetchall())
    finally:
        copy.close()
    lost = [(i, t) for i, t in before if titles.get(i) != t]
    assert not lost, f"{len(lost)} acknowledged writes missing from the backup: {lost[:5]}"

    verified = run_cli(strata_bin, "verify", str(tmp_path / "b.db"))
    assert verified.returncode == 0 and "verifies" in verified.stdout, verified
    target = tmp_path / "restored.db"
    restored = run_cli(strata_bin, "restore", "--db", str(target), "--from", str(tmp_path / "b.db"))
    assert restored.returncode == 0, restored.stderr
    again = run_cli(strata_bin, "restore", "--db", str(target), "--from", str(tmp_path / "b.db"))
    assert again.returncode == 1 and "--force true" in again.stderr, again
    assert run_cli(strata_bin, "verify", str(target)).returncode == 0


@sqlite_only(EMBEDDED_ONLY)
def test_a_damaged_copy_does_not_verify_and_is_not_restored(fresh_deployment, strata_bin, tmp_path):
    good = tmp_path / "good.db"
    assert run_cli(strata_bin, "backup", "--db", str(fresh_deployment.db), "--to", str(good)).returncode == 0
    damaged = tmp_path / "damaged.db"
    data = bytearray(good.read_bytes())
    with sqlite3.connect(str(good)) as db:  # a page of the versions table, overwritten
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'versions'").fetchone()[0]
    start = (root - 1) * page_size + 100
    data[start:start + 200] = b"\xff" * 200
    damaged.write_bytes(bytes(data))
    verify = run_cli(strata_bin, "verify", str(damaged))
    assert verify.returncode == 1 and ("does not verify" in verify.stderr or "cannot open" in verify.stderr), verify
    target = tmp_path / "target.db"
    restore = run_cli(strata_bin, "restore", "--db", str(target), "--from", str(damaged))
    assert restore.returncode != 0 and not target.exists(), restore
    missing = run_cli(strata_bin, "verify", str(tmp_path / "absent.db"))
    assert missing.returncode == 1 and "cannot open" in missing.stderr, missing


@sqlite_only(EMBEDDED_ONLY)
def test_the_scheduled_backup_keeps_exactly_backup_keep_files(server_factory, fresh_deployment, strata_bin, tmp_path):
    folder = tmp_path / "backups"
    srv = server_factory(args=["--backup-schedule", "@every 1s", "--backup-dir", str(folder), "--backup-keep", "2"])
    deadline = time.monotonic() + 15
    while len([r for r in srv.log_records() if r.get("msg") == "backup made"]) < 4:
        assert time.monotonic() < deadline, f"fewer than 4 backups in 15 s: {srv.tail()}"
        time.sleep(0.1)
    made = sorted(p.name for p in folder.iterdir())
    assert len(made) == 2 and all(n.startswith("strata-") and n.endswith(".db") for n in made), made
    for name in made:
        assert run_cli(strata_bin, "verify", str(folder / name)).returncode == 0


def test_a_backup_schedule_on_postgresql_is_a_configuration_error(strata_bin):
    proc = run_cli(strata_bin, "check-config", "--db", "postgres://strata@127.0.0.1:1/none",
                   "--backup-schedule", "@every 1h")
    assert proc.returncode == 2 and "backup.schedule" in proc.stderr and "pg_basebackup" in proc.stderr, proc
