"""Real PostgreSQL clusters for the system tests (tests/pg_cluster.sh from
Python): start one, give a test a database of its own, stop the server
under load and bring it back, kill it with SIGKILL for durability tests.

A cluster lives in a directory under /tmp (the `postgres` OS user runs the
server when the tests run as root, and cannot enter pytest's 0700
tmp_path), listens on 127.0.0.1 on a random port, and is removed by
stop(). strata connects as role `strata` with a password (SCRAM), so `url`
carries a secret. Every wait is bounded; the only processes signalled are
the cluster's own server processes, by PID.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tests" / "pg_cluster.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")

needs_postgres = pytest.mark.skipif(not (PG_BIN / "postgres").exists(),
                                    reason="PostgreSQL 15 (Debian's postgresql-15) is not installed")


class PostgresCluster:
    def __init__(self, *, durable=False):
        self.durable = durable  # fsync, synchronous_commit, full_page_writes kept on
        self.dir = None
        self.url = None

    # ---- the cluster ------------------------------------------------------------

    def _script(self, *args, timeout=60):
        proc = subprocess.run([str(SCRIPT), *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"pg_cluster.sh {args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc.stdout

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="strata-pg-", dir="/tmp")
        try:
            args = ["start", self.dir] + (["--durable"] if self.durable else [])
            self.url = self._script(*args).strip()
        except BaseException:
            self.stop()
            raise
        return self

    @classmethod
    def attach(cls, directory):
        """The running cluster of a pg_cluster.sh directory (tests/run.sh's:
        STRATA_TEST_PG_DIR); stop() leaves it to whoever started it."""
        cluster = cls()
        cluster.dir = str(directory)
        cluster.url = (Path(directory) / "url").read_text().strip()
        cluster.attached = True
        return cluster

    attached = False

    def stop(self):
        """Stops the server and removes the directory (idempotent)."""
        if self.attached:
            return
        if self.dir and os.path.exists(os.path.join(self.dir, ".pg_cluster")):
            self._script("stop", self.dir)
        elif self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def stop_server(self):
        """A clean (fast) shutdown; the data stays for start_server()."""
        self._script("stop-server", self.dir)

    def start_server(self):
        """Starts the server again on the same port (after a kill: crash recovery)."""
        self._script("start-server", self.dir)

    def restart(self):
        self._script("restart", self.dir)

    def start_replica(self, apply_delay_ms=0):
        """A hot standby streaming from this cluster (its own directory and
        port, the same role and password), each commit applied
        apply_delay_ms late. Stop it with its stop()."""
        replica = PostgresCluster()
        replica.dir = tempfile.mkdtemp(prefix="strata-pg-replica-", dir="/tmp")
        os.rmdir(replica.dir)  # pg_cluster.sh makes it, owned by the server's user
        try:
            replica.url = replica._script("start-replica", self.dir, replica.dir, str(apply_delay_ms)).strip()
        except BaseException:
            replica.stop()
            raise
        return replica

    def apply_delay(self, ms):
        """A replica's recovery_min_apply_delay, changed by a reload."""
        self._script("apply-delay", self.dir, str(ms))

    def kill(self, timeout=10):
        """SIGKILL to the postmaster and every server process it started, as a
        machine losing power would; waits until all are gone."""
        pids = self._server_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in pids):
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL processes {pids} outlived SIGKILL")
            time.sleep(0.02)

    def _server_pids(self):
        """The postmaster (from postmaster.pid) and its children (from /proc)."""
        pid_file = Path(self.dir) / "data" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split("\n", 1)[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and _parent_pid(entry) == postmaster:
                children.append(int(entry.name))
        return [postmaster, *children]

    # ---- what a test asks of it -----------------------------------------------

    @property
    def port(self):
        return urllib.parse.urlsplit(self.url).port

    @property
    def password(self):
        return urllib.parse.urlsplit(self.url).password

    def psql(self, sql, database="postgres"):
        """Runs sql as the superuser over the unix socket; returns psql's
        unaligned, tuples-only output (fields separated by '|')."""
        return self._script("psql", self.dir, "-d", database, "-A", "-t", "-c", sql).strip()

    def new_database(self):
        """A fresh database owned by strata; returns its URL."""
        name = "strata_" + uuid.uuid4().hex[:12]
        self.psql(f"CREATE DATABASE {name} OWNER strata")
        return self.url.rsplit("/", 1)[0] + "/" + name

    def connections(self, database="strata"):
        """How many sessions are connected to database now."""
        return int(self.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"))


def _alive(pid):
    """Until its parent reaps it, a killed process keeps its PID, and a
    postmaster.pid naming a PID that exists stops the next start."""
    return os.path.exists(f"/proc/{pid}")


def _parent_pid(proc_entry):
    try:
        stat = (proc_entry / "stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(") ", 1)[1].split()[1])


@pytest.fixture(scope="session")
def pg_cluster():
    """One cluster for the whole session, tests/run.sh's if it started one;
    tests take a database each (new_database). A test that stops or kills
    the server starts a PostgresCluster of its own."""
    shared = os.environ.get("STRATA_TEST_PG_DIR")
    if shared:
        yield PostgresCluster.attach(shared)
        return
    if not (PG_BIN / "postgres").exists():
        pytest.skip("PostgreSQL 15 (Debian's postgresql-15) is not installed")
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """The URL of a database of the test's own."""
    return pg_cluster.new_database()
