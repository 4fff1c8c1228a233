#!/usr/bin/python3
"""bench/chaos.py — the chaos drill's driver (issue 17), run by bench/chaos.sh.

Two commands, so that the audit is independent of the load:

  chaos.py run OUT    on a running scripts/stack.sh stack (STACK_DIR and the
                      STACK_*_PORT variables in the environment): writers,
                      readers and a seeded fault schedule for CHAOS_S
                      seconds; every request and every fault is logged as a
                      JSON line under OUT (writes.jsonl, reads.jsonl,
                      faults.jsonl, items.json).
  chaos.py audit OUT  after the load stopped and every part recovered: reads
                      the logs and the primary (psql as the postgres user
                      over the unix socket), checks them, prints the counts
                      and a final `RESULT chaos …` line.

Writers talk to the strata instances directly, rotating to the next one
when a request fails: each request then has exactly one instance and one
outcome. Through nginx a PUT (idempotent to nginx) is retried on another
instance after a reset, so a save that committed before its instance died
would be applied twice and answered 412 — the log could not say which
attempt did what. (nginx never retries the POST publish: proxy_next_upstream
without non_idempotent.) Readers read public GETs directly (one reader per
instance, sticky), through nginx, and through Varnish.

Every write carries (writer, item, seq) in its title and body; a read's seq
is parsed from what it got. The checks (audit):
  (a) per reader monotonic: a reader never sees a seq older than one it saw
      before — strictly for a reader of one instance; for a reader behind
      nginx or Varnish (several instances behind it) once the newer seq's
      bound has passed (its acknowledgement + BOUND, or for a write whose
      outcome was unknown, the moment it became unknown + BOUND);
  (b) a writer's own reads after its acknowledged publish see it: with its
      token on the instance it wrote to, and without a token on the next
      instance with the publish's Strata-LSN;
  (c) a read that started more than BOUND after a publish was acknowledged
      sees it or a later one (BOUND 0.2 s direct/nginx, 2.5 s Varnish). The
      bus is Redis: while Redis is down an invalidation cannot cross
      instances (docs/caching.md, "When Redis fails": a reset drops every
      L1 once Redis answers again), so for a write acknowledged in a Redis
      outage, or whose bound overlaps one, the deadline is Redis answering
      again + REDIS_GRACE + BOUND. Such reads are counted apart (never
      silently): `c_redis` in the output;
  (d) no 5xx on a read unless no database and no cached copy could answer:
      with one fault at a time a database is always up, so every read 5xx
      is a violation; each is listed with the faults active at its time.
  Audit of the database: each item's published title and body equal the
  last acknowledged publish's, or a later attempted publish whose outcome
  was unknown (connection lost, or a 5xx: strata answers 503 when a COMMIT's
  outcome is unknown); every acknowledged version exists in `versions`;
  every acknowledged publish has its row in `publications`.
"""

import bisect
import http.client as httpc
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

SITE = "main"
BOUND = {"direct": 0.2, "nginx": 0.2, "varnish": 2.5}
REDIS_GRACE = 1.0  # s after Redis answers again: the bus reconnects (≤ 200 ms backoff) and resets
TIMEOUT = 10.0  # s, every HTTP request
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
CONTROL = os.environ.get("CHAOS_CONTROL") == "1"
TITLE_RE = re.compile(r"^chaos (\S+) w(\d+) i(\d+) s(\d+)$")


def now():
    return time.time()


def env_int(name, default):
    return int(os.environ.get(name, default))


# ---- HTTP -----------------------------------------------------------------------------


def call(port, method, path, headers=None, body=None):
    """One request on a new connection; (status, headers, body bytes) or
    (None, error text, None) when no answer came."""
    conn = httpc.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = dict(headers or {})
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except (OSError, httpc.HTTPException) as e:
        return None, "%s: %s" % (type(e).__name__, e), None
    finally:
        conn.close()


def json_or_none(data):
    try:
        return json.loads(data)
    except (ValueError, TypeError):
        return None


def parse_seq(body_bytes, run, item_meta):
    """(seq, content_ok) of an item JSON; seq None if unreadable."""
    try:
        doc = json.loads(body_bytes)
    except (ValueError, TypeError):
        return None, False
    m = TITLE_RE.match(doc.get("title", "") or "")
    if not m or m.group(1) != run:
        return None, False
    seq = int(m.group(4))
    w, k = int(m.group(2)), int(m.group(3))
    ok = (w, k) == (item_meta["writer"], item_meta["k"]) and doc.get("body") == content(run, w, k, seq)[1]
    return seq, ok


def content(run, w, k, seq):
    title = "chaos %s w%d i%d s%d" % (run, w, k, seq)
    body = ("chaos body %s w%d i%d s%d. " % (run, w, k, seq)) * 6
    return title, body


# ---- the stack ------------------------------------------------------------------------


class Stack:
    def __init__(self):
        self.dir = os.environ["STACK_DIR"]
        self.strata = [env_int("STACK_STRATA%d_PORT" % n, 0) for n in (1, 2, 3)]
        self.nginx = env_int("STACK_NGINX_PORT", 0)
        self.varnish = env_int("STACK_VARNISH_PORT", 0)
        self.pg = env_int("STACK_PG_PORT", 0)
        self.replica = env_int("STACK_REPLICA_PORT", 0)
        self.redis = env_int("STACK_REDIS_PORT", 0)
        self.secrets = dict(
            line.strip().split("=", 1) for line in open(os.path.join(self.dir, "secrets")) if "=" in line
        )

    def pidfile(self, part):
        return os.path.join(self.dir, "run", part + ".pid")

    def pid(self, part):
        with open(self.pidfile(part)) as f:
            return int(f.read().split()[0])


def as_pg(args, timeout=60):
    cmd = (["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []) + args
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


# ---- logs -----------------------------------------------------------------------------


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, rec):
        line = json.dumps(rec, separators=(",", ":"))
        with self.lock:
            self.f.write(line + "\n")


# ---- faults ---------------------------------------------------------------------------


def process_spec(pid):
    """argv and environment of a running process, read before it is killed."""
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    with open("/proc/%d/environ" % pid, "rb") as f:
        env = dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)
    return argv, env


def wait_until(check, limit):
    deadline = now() + limit
    while now() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def pid_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ", 1)[1][0] == "Z"  # a zombie holds no port
    except OSError:
        return True


class Faults:
    def __init__(self, stack, log, rng, duration):
        self.stack, self.log, self.rng = stack, log, rng
        self.schedule = self.plan(duration)

    def plan(self, duration):
        kinds = ["kill_strata1", "kill_strata2", "kill_strata3", "restart_redis", "stop_replica", "restart_primary"]
        t, out = 15.0, []
        order = kinds[:]
        self.rng.shuffle(order)  # every kind once first, then at random
        while True:
            t += self.rng.uniform(20, 60) if out else 0
            if t > duration - 20:
                return out
            kind = order.pop() if order else self.rng.choice(kinds)
            out.append({"at": round(t, 1), "kind": kind, "down_s": round(self.rng.uniform(1, 8), 1)})

    def restart_process(self, rec, part, down_s, ready, argv=None):
        """kill -9 PART, and after down_s start it again with the argv (unless
        given), environment and directory it had; rec gets the times."""
        pid = self.stack.pid(part)
        old_argv, env = process_spec(pid)
        argv = argv or old_argv
        cwd = os.readlink("/proc/%d/cwd" % pid)
        rec.update(pid_was=pid, argv=argv)
        os.kill(pid, signal.SIGKILL)
        rec["killed"] = now()
        rec["exited"] = wait_until(lambda: pid_gone(pid), 10)
        time.sleep(down_s)
        logname = os.path.join(self.stack.dir, "logs", part + ".log")
        with open(logname, "ab") as logf:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True
            )
        with open(self.stack.pidfile(part), "w") as f:
            f.write("%d\n" % proc.pid)
        rec.update(pid=proc.pid, started=now())
        rec["ready"] = now() if wait_until(ready, 60) else None

    def redis_argv(self):
        """Redis rewrites its process title ("redis-server 127.0.0.1:PORT"):
        its argv is scripts/stack.sh's (redis_up), not /proc's."""
        return ["redis-server", "--port", str(self.stack.redis), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                "no", "--dir", os.path.join(self.stack.dir, "redis"), "--daemonize", "no"]

    def strata_ready(self, n):
        port = self.stack.strata[n - 1]
        return lambda: call(port, "GET", "/readyz")[0] == 200

    def redis_ready(self):
        def check():
            r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.stack.redis), "ping"],
                               capture_output=True, text=True, timeout=5)
            return r.stdout.strip() == "PONG"
        return check

    def pg_ready(self, port):
        return lambda: subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "2"]).returncode == 0

    def pg_pidfile(self, part):
        with open(os.path.join(self.stack.dir, "pg", part, "postmaster.pid")) as f:
            pid = f.readline().strip()
        with open(self.stack.pidfile(part), "w") as f:
            f.write(pid + "\n")
        return int(pid)

    def apply(self, fault):
        kind = fault["kind"]
        rec = {"kind": kind, "planned_at": fault["at"], "begin": now()}
        try:
            self.inflict(fault, rec)
        except Exception as e:  # noqa: BLE001 - recorded; the drill goes on and the audit shows it
            rec["error"] = repr(e)
            print("chaos: fault %s failed: %r" % (kind, e), file=sys.stderr, flush=True)
        # recovered: every instance ready again (a write needs the primary)
        rec["recovered"] = now() if all(wait_until(self.strata_ready(n), 60) for n in (1, 2, 3)) else None
        self.log.write(rec)
        print("chaos: fault %-16s at %6.1fs, recovered in %.1fs" % (
            kind, rec["begin"] - T0, (rec["recovered"] or now()) - rec["begin"]), file=sys.stderr, flush=True)

    def inflict(self, fault, rec):
        kind, down_s = fault["kind"], fault["down_s"]
        if kind.startswith("kill_strata"):
            n = int(kind[-1])
            self.restart_process(rec, "strata%d" % n, down_s, self.strata_ready(n))
            rec["end"] = rec["ready"]
        elif kind == "restart_redis":
            self.restart_process(rec, "redis", down_s, self.redis_ready(), self.redis_argv())
            rec["end"] = rec["ready"]
        elif kind == "stop_replica":
            data = os.path.join(self.stack.dir, "pg", "replica")
            r = as_pg([PG_BIN + "/pg_ctl", "-D", data, "-m", "fast", "-w", "stop"])
            rec["stopped"] = now()
            rec["stop_rc"] = r.returncode
            time.sleep(down_s * 2)  # a replica down for a while: the reads it took go elsewhere
            r = as_pg([PG_BIN + "/pg_ctl", "-D", data, "-l", data + ".log", "-w", "-t", "60", "start"])
            rec["start_rc"] = r.returncode
            rec["pid"] = self.pg_pidfile("replica")
            rec["end"] = now() if wait_until(self.pg_ready(self.stack.replica), 60) else None
        elif kind == "restart_primary":
            data = os.path.join(self.stack.dir, "pg", "primary")
            r = as_pg([PG_BIN + "/pg_ctl", "-D", data, "-l", data + ".log", "-m", "fast", "-w", "-t", "60", "restart"])
            rec["restart_rc"] = r.returncode
            rec["pid"] = self.pg_pidfile("primary")
            rec["end"] = now() if wait_until(self.pg_ready(self.stack.pg), 60) else None

    def run(self, stop):
        if CONTROL:
            # the negative control: Redis killed for good at 10 s, logged
            # nowhere the audit reads — the bus is gone and the audit does
            # not know, so it must find stale reads
            if stop.wait(10):
                return
            os.kill(self.stack.pid("redis"), signal.SIGKILL)
            print("chaos: control: Redis killed for good (not logged as a fault)", file=sys.stderr, flush=True)
        for fault in self.schedule:
            while now() - T0 < fault["at"]:
                if stop.wait(0.1):
                    return
            self.apply(fault)


# ---- writers --------------------------------------------------------------------------


class Writer:
    def __init__(self, w, token, items, stack, run, log, rng):
        self.w, self.token, self.items, self.stack = w, token, items, stack
        self.run_id, self.log, self.rng = run, log, rng
        self.inst = w % 3
        self.n = 0

    def request(self, kind, method, path, item, seq, body=None, headers=None, inst=None, token=True):
        inst = self.inst if inst is None else inst
        self.n += 1
        rid = "chaos-w%d-%d" % (self.w, self.n)
        hdrs = {"X-Request-Id": rid}
        if token:
            hdrs["Authorization"] = "Bearer " + self.token
        hdrs.update(headers or {})
        t0 = now()
        status, h, data = call(self.stack.strata[inst], method, path, hdrs, body)
        rec = {"kind": kind, "writer": self.w, "item": item["id"], "seq": seq, "inst": inst + 1, "t0": t0,
               "t1": now(), "status": status, "rid": rid}
        if status is None:
            rec["error"] = h
        elif not 200 <= status < 300:
            rec["body"] = (data or b"")[:400].decode("utf-8", "replace")
        return rec, status, h, data

    def rotate(self):
        self.inst = (self.inst + 1) % 3

    def resync(self, item):
        """The item's latest version and its seq, from the draft (retried on
        the next instance until one answers)."""
        for _ in range(30):
            rec, status, h, data = self.request("draft", "GET", "/v1/%s/content/%d/draft" % (SITE, item["id"]), item,
                                                None)
            doc = json_or_none(data) if status == 200 else None
            if doc:
                m = TITLE_RE.match(doc.get("title", ""))
                rec["version"] = doc.get("version")
                self.log.write(rec)
                item["version"] = doc["version"]
                return int(m.group(4)) if m else None
            self.log.write(rec)
            self.rotate()
            time.sleep(0.3)
        return None

    def write_one(self, item):
        item["seq"] += 1
        seq = item["seq"]
        title, body = content(self.run_id, self.w, item["k"], seq)
        path = "/v1/%s/content/%d" % (SITE, item["id"])
        rec, status, h, data = self.request("save", "PUT", path, item, seq, {"title": title, "body": body},
                                            {"If-Match": '"v%d"' % item["version"]})
        doc = json_or_none(data) if status == 200 else None
        if doc:
            rec["version"] = doc.get("version")
            self.log.write(rec)
            item["version"] = doc["version"]
        else:
            self.log.write(rec)
            if status is None or status >= 500:
                self.rotate()
            # did it commit? The draft says (a save whose answer was lost, or a 503 at COMMIT)
            latest = self.resync(item)
            if latest != seq:
                return
        version = item["version"]
        rec, status, h, data = self.request("publish", "POST", path + "/publish", item, seq, {"version": version})
        rec["version"] = version
        doc = json_or_none(data) if status == 200 else None
        if doc:
            rec["published_version"] = doc.get("published_version")
            rec["lsn"] = h.get("strata-lsn")
            self.log.write(rec)
            self.own_reads(item, seq, h.get("strata-lsn"))
        else:
            self.log.write(rec)
            if status is None or status >= 500:
                self.rotate()

    def own_reads(self, item, seq, lsn):
        """(b): the writer's token on the instance it wrote to; a public read
        with the publish's Strata-LSN on the next instance."""
        path = "/v1/%s/content/%d" % (SITE, item["id"])
        rec, status, h, data = self.request("own_token", "GET", path, item, seq)
        self.log_read(rec, status, h, data, item)
        if lsn:
            rec, status, h, data = self.request("own_lsn", "GET", path, item, seq, headers={"Strata-LSN": lsn},
                                                inst=(self.inst + 1) % 3, token=False)
            self.log_read(rec, status, h, data, item)

    def log_read(self, rec, status, h, data, item):
        if status == 200:
            rec["seen"], rec["content_ok"] = parse_seq(data, self.run_id, item)
        elif status is not None:
            rec["cache"] = h.get("cache-status", "")
        self.log.write(rec)

    def run(self, stop):
        while not stop.is_set():
            item = self.items[self.rng.randrange(len(self.items))]
            self.write_one(item)
            stop.wait(self.rng.uniform(0.05, 0.3))


# ---- readers --------------------------------------------------------------------------


class Reader:
    def __init__(self, name, path_kind, port, items, run, log, rng):
        self.name, self.kind, self.port = name, path_kind, port
        self.items, self.run_id, self.log, self.rng = items, run, log, rng
        self.n = 0

    def run(self, stop):
        while not stop.is_set():
            item = self.items[self.rng.randrange(len(self.items))]
            self.n += 1
            rid = "chaos-%s-%d" % (self.name, self.n)
            t0 = now()
            status, h, data = call(self.port, "GET", "/v1/%s/content/%d" % (SITE, item["id"]), {"X-Request-Id": rid})
            rec = {"reader": self.name, "path": self.kind, "item": item["id"], "t0": t0, "t1": now(),
                   "status": status, "rid": rid}
            if status is None:
                rec["error"] = h
            else:
                rec["cache"] = h.get("cache-status") or h.get("x-cache") or ""
                if status == 200:
                    rec["seq"], rec["content_ok"] = parse_seq(data, self.run_id, item)
                else:
                    rec["body"] = (data or b"")[:400].decode("utf-8", "replace")
            self.log.write(rec)
            stop.wait(self.rng.uniform(0.005, 0.03))


# ---- run ------------------------------------------------------------------------------


def setup_items(stack, run, writers, per_writer):
    admin = stack.secrets["admin_token"]
    port = stack.strata[0]
    tokens, items = [], []
    for w in range(writers):
        status, _, data = call(port, "POST", "/v1/%s/tokens" % SITE, {"Authorization": "Bearer " + admin},
                               {"name": "chaos-%s-w%d" % (run, w), "role": "write"})
        if status != 201:
            sys.exit("chaos: creating writer %d's token answered %s: %r" % (w, status, data))
        tokens.append(json.loads(data)["token"])
        for k in range(per_writer):
            title, body = content(run, w, k, 0)
            auth = {"Authorization": "Bearer " + tokens[w]}
            status, h, data = call(port, "POST", "/v1/%s/content" % SITE, auth,
                                   {"type": "post", "slug": "chaos-%s-w%d-i%d" % (run, w, k), "title": title,
                                    "body": body})
            if status != 201:
                sys.exit("chaos: creating an item answered %s: %r" % (status, data))
            doc = json.loads(data)
            status, _, data = call(port, "POST", "/v1/%s/content/%d/publish" % (SITE, doc["id"]), auth,
                                   {"version": doc["version"]})
            if status != 200:
                sys.exit("chaos: publishing an item answered %s: %r" % (status, data))
            items.append({"id": doc["id"], "writer": w, "k": k, "version": doc["version"], "seq": 0,
                          "published_at": now()})
    return tokens, items


def cmd_run(out):
    global T0
    duration = env_int("CHAOS_S", 600)
    seed = env_int("CHAOS_SEED", 17)
    writers = env_int("CHAOS_WRITERS", 4)
    per_writer = env_int("CHAOS_ITEMS", 3)
    stack = Stack()
    rng = random.Random(seed)
    run = "%x" % int(now())
    tokens, items = setup_items(stack, run, writers, per_writer)
    time.sleep(0.5)  # the creates' invalidations have crossed the bus
    with open(os.path.join(out, "items.json"), "w") as f:
        json.dump({"run": run, "seed": seed, "duration": duration, "items": items, "bound": BOUND,
                   "redis_grace": REDIS_GRACE, "ports": {"strata": stack.strata, "nginx": stack.nginx,
                   "varnish": stack.varnish}}, f)
    wlog, rlog, flog = (Log(os.path.join(out, n)) for n in ("writes.jsonl", "reads.jsonl", "faults.jsonl"))
    T0 = now()
    faults = Faults(stack, flog, random.Random(seed * 7919 + 1), duration)
    print("chaos: run %s, seed %d, %ds; fault schedule:" % (run, seed, duration), file=sys.stderr)
    for f in faults.schedule:
        down = "pg_ctl restart -m fast" if f["kind"] == "restart_primary" else "down %.1fs" % (
            f["down_s"] * (2 if f["kind"] == "stop_replica" else 1))
        print("chaos:   at %6.1fs %-16s (%s)" % (f["at"], f["kind"], down), file=sys.stderr)
    with open(os.path.join(out, "schedule.json"), "w") as f:
        json.dump({"t0": T0, "schedule": faults.schedule}, f)
    sys.stderr.flush()
    stop_writes, stop_reads, stop_faults = threading.Event(), threading.Event(), threading.Event()
    threads = []
    for w in range(writers):
        mine = [i for i in items if i["writer"] == w]
        wr = Writer(w, tokens[w], mine, stack, run, wlog, random.Random(seed * 31 + w))
        threads.append(("w", threading.Thread(target=wr.run, args=(stop_writes,), daemon=True)))
    paths = [("s%d" % (n + 1), "direct", stack.strata[n]) for n in range(3)]
    paths += [("nginx1", "nginx", stack.nginx), ("nginx2", "nginx", stack.nginx)]
    paths += [("varnish1", "varnish", stack.varnish), ("varnish2", "varnish", stack.varnish)]
    for i, (name, kind, port) in enumerate(paths):
        rd = Reader(name, kind, port, items, run, rlog, random.Random(seed * 101 + i))
        threads.append(("r", threading.Thread(target=rd.run, args=(stop_reads,), daemon=True)))
    ft = threading.Thread(target=faults.run, args=(stop_faults,), daemon=True)
    for _, t in threads:
        t.start()
    ft.start()
    while now() - T0 < duration:
        time.sleep(0.5)
    stop_faults.set()
    ft.join(timeout=180)  # a fault under way finishes its recovery
    stop_writes.set()
    for kind, t in threads:
        if kind == "w":
            t.join(timeout=60)
    tail = max(BOUND.values()) + 2.5  # readers go on past every bound (and a re-purge)
    time.sleep(tail)
    stop_reads.set()
    for _, t in threads:
        t.join(timeout=30)
    print("chaos: load stopped after %.0fs" % (now() - T0), file=sys.stderr)



# ---- audit ----------------------------------------------------------------------------


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def psql_json(stack, sql):
    r = as_pg([PG_BIN + "/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", os.path.join(stack.dir, "pg"),
               "-p", str(stack.pg), "-U", "postgres", "-d", "strata", "-c", sql])
    if r.returncode != 0:
        sys.exit("chaos: audit query failed: %s" % r.stderr.strip())
    return json.loads(r.stdout.strip() or "null") or []


class Windows:
    """Fault windows from faults.jsonl: [begin, recovered] per fault; Redis
    outages [killed, ready]."""

    def __init__(self, faults):
        self.faults = [f for f in faults if "begin" in f]
        self.redis = [(f["killed"], f.get("ready") or float("inf")) for f in faults
                      if f["kind"] == "restart_redis" and "killed" in f]

    def active(self, t):
        """The faults under way at t (or recovered < 3 s before), else the
        last one and how long before t it recovered."""
        on = [f["kind"] for f in self.faults if f["begin"] - 0.5 <= t <= (f.get("recovered") or float("inf")) + 3]
        past = [f for f in self.faults if f.get("recovered") and f["recovered"] < t]
        if on or not past:
            return on
        last = max(past, key=lambda f: f["recovered"])
        return ["none (last: %s, recovered %.1fs before)" % (last["kind"], t - last["recovered"])]

    def deadline(self, t_ack, bound):
        """When every path must show a write acknowledged at t_ack: t_ack +
        bound, unless a Redis outage overlaps: then Redis back + grace + bound."""
        dl = t_ack + bound
        for k, e in self.redis:
            if k < dl and e + REDIS_GRACE > t_ack:
                dl = max(dl, e + REDIS_GRACE + bound)
        return dl


def outcome(status):
    if status is None or status >= 500:
        return "unknown"
    return "ack" if 200 <= status < 300 else "failed"


def audit_db(stack, meta, writes, out_lines):
    ids = [i["id"] for i in meta["items"]]
    idlist = ",".join(str(i) for i in ids)
    rows = psql_json(stack, "SELECT json_agg(row_to_json(t)) FROM (SELECT id, status, published_version, title, body "
                            "FROM items WHERE id IN (%s)) t" % idlist)
    versions = {tuple(v) for v in psql_json(stack, "SELECT json_agg(json_build_array(item_id, number)) FROM versions "
                                                   "WHERE item_id IN (%s)" % idlist)}
    pubs = {tuple(v) for v in psql_json(stack, "SELECT json_agg(json_build_array(item_id, version)) FROM publications "
                                               "WHERE item_id IN (%s)" % idlist)}
    db = {r["id"]: r for r in rows}
    run = meta["run"]
    lost, unexpected, missing_versions, missing_pubs = [], [], [], []
    by_item = {i["id"]: i for i in meta["items"]}
    for w in writes:
        if w["kind"] == "save" and w["status"] == 200 and (w["item"], w["version"]) not in versions:
            missing_versions.append(w)
        if w["kind"] == "publish" and w["status"] == 200:
            if (w["item"], w["version"]) not in versions:
                missing_versions.append(w)
            if (w["item"], w["version"]) not in pubs:
                missing_pubs.append(w)
    for item_id, item in by_item.items():
        pubs_of = [w for w in writes if w["kind"] == "publish" and w["item"] == item_id]
        acked = [w for w in pubs_of if outcome(w["status"]) == "ack"]
        last = max(acked, key=lambda w: w["seq"]) if acked else {"seq": 0, "version": item["version"]}
        cands = {last["seq"]: last["version"]}
        for w in pubs_of:
            if outcome(w["status"]) == "unknown" and w["seq"] > last["seq"]:
                cands[w["seq"]] = w["version"]
        row = db.get(item_id)
        got = None
        if row:
            m = TITLE_RE.match(row["title"])
            got = int(m.group(4)) if m and m.group(1) == run else None
        ok = (row is not None and got in cands and row["status"] == "published"
              and (row["title"], row["body"]) == content(run, item["writer"], item["k"], got)
              and row["published_version"] == cands[got])
        line = "item %d (w%d i%d): database seq %s v%s; last acknowledged seq %d v%d%s" % (
            item_id, item["writer"], item["k"], got, row and row["published_version"], last["seq"], last["version"],
            "; later unknown: %s" % sorted(s for s in cands if s != last["seq"]) if len(cands) > 1 else "")
        out_lines.append(("ok    " if ok else "WRONG ") + line)
        if not ok:
            (lost if got is None or got < last["seq"] else unexpected).append(line)
    return lost, unexpected, missing_versions, missing_pubs


def prefix_max(pairs):
    """[(deadline, seq)] sorted by deadline -> (deadlines, highest seq so far)."""
    top, out = 0, []
    for _, sq in pairs:
        top = max(top, sq)
        out.append(top)
    return [d for d, _ in pairs], out


def due_by(table, t):
    """The highest seq whose deadline is before t (0: the first publish)."""
    deadlines, tops = table
    i = bisect.bisect_left(deadlines, t)
    return tops[i - 1] if i else 0


def audit_reads(meta, writes, reads, win):
    """(a), (c), (d) and wrong answers over the readers' log; (b) over the
    writers' own reads."""
    bound = meta["bound"]
    acks, unknown = {}, {}  # item -> [(t1, seq)] in order
    for i in meta["items"]:
        acks[i["id"]] = [(i["published_at"], 0)]
    for w in writes:
        if w["kind"] != "publish":
            continue
        o = outcome(w["status"])
        if o == "ack":
            acks[w["item"]].append((w["t1"], w["seq"]))
        elif o == "unknown":
            unknown.setdefault(w["item"], []).append((w["t1"], w["seq"]))
    for v in acks.values():
        v.sort()
    # per item and bound: deadlines (strict, and with Redis outages) in order,
    # with the highest seq due by each, for a bisect per read
    due = {}
    for item, v in acks.items():
        for b in set(bound.values()):
            due[(item, b)] = (prefix_max(sorted((t + b, s) for t, s in v)),
                              prefix_max(sorted((win.deadline(t, b), s) for t, s in v)))
    seq_time = {}  # (item, seq) -> the moment it was acknowledged or became unknown
    for item, v in list(acks.items()) + list(unknown.items()):
        for t, s in v:
            seq_time[(item, s)] = min(t, seq_time.get((item, s), t))
    viol = {"a": [], "c": [], "c_redis": [], "d": [], "wrong": []}
    unavailable = {}
    statuses = {}
    seen = {}  # (reader, item) -> [max settled seq, pending [(deadline, seq)]]
    for r in sorted(reads, key=lambda r: r["t0"]):
        key = r["path"]
        statuses.setdefault(key, {}).setdefault(str(r["status"]), 0)
        statuses[key][str(r["status"])] += 1
        if r["status"] is None:
            unavailable[key] = unavailable.get(key, 0) + 1
            continue
        if r["status"] >= 500:
            viol["d"].append(dict(r, faults=win.active(r["t0"])))
            continue
        if r["status"] != 200 or r.get("seq") is None or not r.get("content_ok"):
            viol["wrong"].append(dict(r, faults=win.active(r["t0"])))
            continue
        s, b = r["seq"], bound[r["path"]]
        # (c): the newest write acknowledged long enough before the read began
        strict, adjusted = due[(r["item"], b)]
        need_strict, need = due_by(strict, r["t0"]), due_by(adjusted, r["t0"])
        if s < need:
            viol["c"].append(dict(r, need=need, faults=win.active(r["t0"])))
        elif s < need_strict:
            viol["c_redis"].append(dict(r, need=need_strict, faults=win.active(r["t0"])))
        # (a): never older than one this reader saw (once that one's bound has passed)
        st = seen.setdefault((r["reader"], r["item"]), [0, []])
        rb = 0.0 if r["path"] == "direct" else b
        keep = []
        for dl, sq in st[1]:
            if dl < r["t0"]:
                st[0] = max(st[0], sq)
            else:
                keep.append((dl, sq))
        st[1] = keep
        if s < st[0]:
            viol["a"].append(dict(r, saw=st[0], faults=win.active(r["t0"])))
        t_seq = seq_time.get((r["item"], s), r["t1"])
        if rb == 0.0:
            st[0] = max(st[0], s)
        else:
            st[1].append((win.deadline(max(t_seq, 0), rb), s))
    viol_b, own = [], 0
    for w in writes:
        if w["kind"] not in ("own_token", "own_lsn"):
            continue
        own += 1
        if w["status"] is None:
            unavailable[w["kind"]] = unavailable.get(w["kind"], 0) + 1
        elif w["status"] >= 500:
            viol["d"].append(dict(w, faults=win.active(w["t0"])))
        elif w["status"] != 200 or w.get("seen") is None or w["seen"] < w["seq"] or not w.get("content_ok"):
            viol_b.append(dict(w, faults=win.active(w["t0"])))
    return viol, viol_b, own, unavailable, statuses


def brief(r):
    keys = ("reader", "writer", "kind", "path", "item", "seq", "seen", "need", "saw", "status", "cache", "rid",
            "inst", "error", "faults", "body")
    d = {k: r[k] for k in keys if k in r}
    d["t"] = round(r["t0"] - T0, 3)
    return json.dumps(d, separators=(",", ":"))


def write_outcomes(writes):
    """Per seq attempted: acknowledged if its publish answered 2xx; unknown
    if its save or publish got no answer or a 5xx (and it was not then
    acknowledged); failed otherwise (a 4xx)."""
    seqs = {}
    for w in writes:
        if w["kind"] not in ("save", "publish"):
            continue
        o = outcome(w["status"])
        key = (w["item"], w["seq"])
        if w["kind"] == "publish" and o == "ack":
            seqs[key] = "ack"
        elif seqs.get(key) != "ack":
            seqs[key] = "unknown" if "unknown" in (o, seqs.get(key)) else "failed"
    vals = list(seqs.values())
    return len(vals), vals.count("ack"), vals.count("unknown"), vals.count("failed")


def cmd_audit(out):
    global T0
    stack = Stack()
    with open(os.path.join(out, "items.json")) as f:
        meta = json.load(f)
    with open(os.path.join(out, "schedule.json")) as f:
        T0 = json.load(f)["t0"]
    writes = load_jsonl(os.path.join(out, "writes.jsonl"))
    reads = load_jsonl(os.path.join(out, "reads.jsonl"))
    faults = load_jsonl(os.path.join(out, "faults.jsonl"))
    win = Windows(faults)
    p = print
    p("\n== faults applied (%d) ==" % len(faults))
    for f in faults:
        if "error" in f:
            p("  %7.1fs %-16s FAILED: %s" % (f["begin"] - T0, f["kind"], f["error"]))
            continue
        rec = f.get("recovered")
        p("  %7.1fs %-16s back at %7.1fs (down %.1fs)%s" % (
            f["begin"] - T0, f["kind"], (f.get("end") or f["begin"]) - T0, (f.get("end") or f["begin"]) - f["begin"],
            "" if rec else "  NOT RECOVERED"))
    p("\n== writes ==")
    counts = {}
    for w in writes:
        if w["kind"] in ("save", "publish"):
            k = (w["kind"], outcome(w["status"]), str(w["status"]))
            counts[k] = counts.get(k, 0) + 1
    for k in sorted(counts):
        p("  %-8s %-8s status %-5s %6d" % (k + (counts[k],)))
    n_att, n_ack, n_unk, n_fail = write_outcomes(writes)
    p("  writes (one seq: a save, then a publish of that version) attempted %d: acknowledged (publish 2xx) %d, "
      "outcome unknown (no answer or 5xx, save or publish) %d, failed (4xx, or the save did not commit) %d" % (
          n_att, n_ack, n_unk, n_fail))
    p("\n== database (psql on the primary) ==")
    lines = []
    lost, unexpected, missing_versions, missing_pubs = audit_db(stack, meta, writes, lines)
    for line in lines:
        p("  " + line)
    p("  acknowledged versions missing from versions: %d; acknowledged publishes missing from publications: %d" % (
        len(missing_versions), len(missing_pubs)))
    for w in missing_versions + missing_pubs:
        p("    " + brief(w))
    viol, viol_b, own, unavailable, statuses = audit_reads(meta, writes, reads, win)
    p("\n== reads ==")
    for path in sorted(statuses):
        p("  %-8s %s" % (path, ", ".join("%s: %d" % kv for kv in sorted(statuses[path].items()))))
    p("  writers' own reads: %d; no answer (instance down) by kind: %s" % (own, json.dumps(unavailable)))
    names = [("a", "(a) older than one the same reader saw"), ("b", "(b) own read missing its acknowledged write"),
             ("c", "(c) older than a write acknowledged > BOUND earlier"),
             ("c_redis", "(c) stale within a Redis outage + grace (bus down; counted apart)"),
             ("d", "(d) 5xx on a read"), ("wrong", "wrong answers (non-200 non-5xx, or content not matching its seq)")]
    viol["b"] = viol_b
    for k, title in names:
        p("  %-70s %d" % (title, len(viol[k])))
        for r in viol[k][:40]:
            p("    " + brief(r))
        if len(viol[k]) > 40:
            p("    … %d more" % (len(viol[k]) - 40))
    stale = len(viol["a"]) + len(viol["b"]) + len(viol["c"])
    n_lost = len(lost) + len(missing_versions) + len(missing_pubs)
    verdict = "PASS" if n_lost == 0 and stale == 0 and not viol["d"] and not viol["wrong"] and not unexpected else "FAIL"
    dur = max([r["t1"] for r in reads] + [T0]) - T0
    p("\nRESULT chaos duration_s=%.0f faults=%d writes=%d acknowledged=%d unknown=%d failed=%d reads=%d own_reads=%d "
      "lost=%d unexpected=%d viol_a=%d viol_b=%d viol_c=%d stale_in_redis_outage=%d read_5xx=%d wrong=%d verdict=%s" % (
          dur, len(faults), n_att, n_ack, n_unk, n_fail, len(reads), own, n_lost, len(unexpected), len(viol["a"]),
          len(viol["b"]), len(viol["c"]), len(viol["c_redis"]), len(viol["d"]), len(viol["wrong"]), verdict))
    return 0 if verdict == "PASS" else 1


def cmd_sabotage(out):
    """The negative control's lost write: the first item's published content
    put back to what its previous acknowledged publish had, in the database."""
    stack = Stack()
    with open(os.path.join(out, "items.json")) as f:
        meta = json.load(f)
    item = meta["items"][0]
    writes = load_jsonl(os.path.join(out, "writes.jsonl"))
    acked = sorted(w["seq"] for w in writes if w["kind"] == "publish" and w["item"] == item["id"] and w["status"] == 200)
    seq = acked[-2] if len(acked) > 1 else 0
    title, body = content(meta["run"], item["writer"], item["k"], seq)
    psql_json(stack, "UPDATE items SET title = '%s', body = '%s' WHERE id = %d RETURNING '[]'" % (title, body, item["id"]))
    print("chaos: control: item %d put back to seq %d in the database" % (item["id"], seq), file=sys.stderr)


T0 = 0.0

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "audit", "sabotage"):
        sys.exit("usage: chaos.py run|audit|sabotage OUTDIR")
    if sys.argv[1] == "run":
        cmd_run(sys.argv[2])
    elif sys.argv[1] == "sabotage":
        cmd_sabotage(sys.argv[2])
    else:
        sys.exit(cmd_audit(sys.argv[2]))
