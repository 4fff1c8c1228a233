"""A full disk (issue 17): the embedded database's file system fills while
strata serves. Writes answer 507 with a problem+json detail and write
nothing; reads go on from the caches and the database; /readyz and the
db_disk_full alert say why; once space is freed, writes succeed again
without a restart, and the database verifies.

The file system is a tmpfs with a size limit that the test mounts (root:
CI runs as root); the database lives there, the logs elsewhere. A filler
file takes all but a few pages, then goes."""

import os
import shutil
import subprocess
import uuid

import pytest

from metrics_support import parse_metrics, scrape, value
from strata_support import Deployment, assert_json, assert_problem, run_cli, sqlite_only, wait_for

pytestmark = sqlite_only("it fills the file system of the SQLite file; PostgreSQL's disk_full (53100) maps to "
                         "the same 507 (docs/operations.md)")

FS_BYTES = 24 * 1024 * 1024
LEFT_BYTES = 48 * 1024  # what the filler leaves: a few pages, less than one write below
BODY = "x" * 60000      # a write that cannot fit in LEFT_BYTES


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(mount)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:  # root without CAP_SYS_ADMIN (an unprivileged container)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(mount):
    """Takes all but LEFT_BYTES of the file system with a filler file."""
    free = shutil.disk_usage(mount).free
    with open(mount / "filler", "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        left = free - LEFT_BYTES
        while left > 0:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
    return mount / "filler"


def create(client, token, slug):
    return client.post("/v1/main/content", token=token,
                       json={"type": "post", "slug": slug, "title": "Full disk", "body": BODY})


def test_a_full_disk_refuses_writes_cleanly_serves_reads_says_why_and_recovers(
        template, tmp_path, small_disk, server_factory):
    on_disk = template.copy_to(small_disk)
    deployment = Deployment(template.binary, tmp_path / "logs", on_disk.db, template.tokens)
    deployment.dir.mkdir()
    srv = server_factory(deployment, args=("--alerts-interval-ms", "200", "--alerts-raise-after", "2",
                                           "--alerts-clear-after", "2"))
    admin = deployment.tokens["admin"]
    editor, reader = srv.client(token=admin), srv.client()
    page = assert_json(reader.get("/v1/main/content?limit=5"))
    warm = page["items"][0]["id"]
    assert_json(reader.get(f"/v1/main/content/{warm}"))
    cold = page["items"][-1]["id"]

    filler = fill(small_disk)
    answers, refused = [], None
    for n in range(40):
        slug = f"full-{n}-{uuid.uuid4().hex[:6]}"
        r = create(editor, admin, slug)
        answers.append(r.status)
        if r.status == 507:
            refused = (slug, r)
            break
        assert r.status == 201, r
    assert refused is not None, f"no write was refused on a full disk: {answers}"
    slug, r = refused
    problem = assert_problem(r, 507, mentions="disk is full")
    assert problem["code"] == "insufficient_storage" and r.headers.get("retry-after"), problem
    # nothing of the refused write is there; other writes are refused alike
    drafts = assert_json(editor.get("/v1/main/content?status=any&limit=100"))["items"]
    assert slug not in {i["slug"] for i in drafts}
    assert_problem(editor.post(f"/v1/main/content/{cold}/publish"), 507)

    # reads go on: a cached item, a list, an item read from the database
    assert assert_json(reader.get(f"/v1/main/content/{warm}"))["id"] == warm
    assert_json(reader.get("/v1/main/content?limit=5"))
    assert assert_json(reader.get(f"/v1/main/content/{cold}?select=id,title"))["id"] == cold

    samples, _ = parse_metrics(scrape(reader))
    assert value(samples, "strata_db_disk_full") == 1
    ready = assert_json(reader.get("/readyz"))
    assert ready["status"] == "degraded" and ready["reason"] == "disk_full" and ready["since"], ready
    wait_for("the db_disk_full alert",
             lambda: [a for a in assert_json(reader.get("/v1/alerts", token=admin))["active"]
                      if a["quantity"] == "db_disk_full"], 10)

    filler.unlink()
    created = assert_json(create(editor, admin, f"after-{uuid.uuid4().hex[:6]}"), 201)
    assert assert_json(editor.get(f"/v1/main/content/{created['id']}/draft"))["slug"] == created["slug"]
    # ready again once no write has been refused for 10 s (it does not flap with the odd small write)
    wait_for("/readyz ready", lambda: assert_json(reader.get("/readyz")) == {"status": "ready"}, 20)
    wait_for("the alert cleared",
             lambda: not [a for a in assert_json(reader.get("/v1/alerts", token=admin))["active"]
                          if a["quantity"] == "db_disk_full"], 5)
    srv.stop()
    verified = run_cli(template.binary, "verify", on_disk.db)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "integrity ok" in verified.stdout, verified.stdout
