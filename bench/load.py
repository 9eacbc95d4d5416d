"""`make load`: a bounded-time load run of gunicorn + PostgreSQL + Redis on loopback, driven by locust.

    .venv/bin/python bench/load.py [--profile single|cluster] [--users 50] [--spawn-rate 10] [--duration 60s]
                                   [--wait 2,8] [--workers 4] [--worker-class sync|gthread] [--threads 1]
                                   [--students 200000] [--compare sync:4,gthread:2x4,gthread:4x2]
                                   [--compare-duration 20s] [--compare-wait 1,3] [--no-report]
                                   [--rerender RUN/summary.json]
    cluster profile only:          [--servers 2] [--replica-url URL] [--keep-replica] [--queue-url redis://…/3]

Profile `single` (the default):

1. creates the PostgreSQL database `load` if missing (--database-url may name another, never `test` or `bench`),
   migrates it and fills it: bench/generate.py --students N when that script exists and works (a province-shaped
   world with the bench_* accounts), else the demo world (`xueji init --demo-if-empty`), and says which;
2. tops up the approval queues: pending 关键数据变更 requests (with an evidence file) at the school step and at
   the county step of the schools whose reviewers take part, so every run has work to approve;
3. starts gunicorn on a free 127.0.0.1 port in the background with production-like settings from the
   environment (SECRET_KEY, RATELIMIT_STORAGE_URI=redis://…, AUTH_RATE_LIMIT raised so 50 users signing in from
   one address in 5 s are not throttled: the limit is per client address), waits until it answers;
4. runs locust headless and bounded (-u 50 -r 10 -t 60s, bench/locustfile.py), stops gunicorn whatever happens,
5. writes the summary into docs/PERFORMANCE.md (section `load`; `--compare` adds the section `load-workers`).

Profile `cluster` (`make load LOAD_ARGS="--profile cluster"`): the topology of docs/DEPLOY.md on one machine.
Steps 1–2 as above (evidence files go to the database file store), then:

- a PostgreSQL streaming replica on 127.0.0.1:5433: reused if it already streams (and left running), else started
  with bench/replica.sh (CI's recipe: pg_basebackup of the whole cluster, so it has the `load` database) and
  stopped after the run (--keep-replica leaves it); --replica-url names a replica managed elsewhere instead;
- --servers (2) gunicorn "hosts", each its own master on its own 127.0.0.1 port with its own instance folder and
  --workers (1: one per core) workers, all with the same SECRET_KEY (a session cookie of one is valid on the
  other), DATABASE_REPLICA_URLS, XUEJI_QUEUE_URL (Redis database 3 by default; the tests use 14),
  XUEJI_FILE_STORE=database and the single profile's settings; beside them one `flask --app run xueji worker`;
- locust with --users (100) spread over the servers (LOAD_HOSTS: each simulated user keeps one server, taken in
  turn, as a load balancer would); a reviewer who approved opens the request once more on the other server,
  which must show it decided (read-after-write across servers, by the LSN kept in the shared session);
- where the reads went: every gunicorn worker counts, per request, the SQL statements that ran on the primary and
  on the replica (gunicorn hooks written into the run folder); plus pg_stat_database on both servers;
- the report goes to the section `load-cluster`; everything started is stopped (workers, servers, replica).

Files of each run (locust CSVs, raw timings, gunicorn and worker logs, summary.json) go to
instance/load/runs/<time>/.
"""
import argparse
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BIN = os.path.dirname(sys.executable)
INSTANCE = os.path.join(ROOT, "instance", "load")
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/load"
FORBIDDEN_DATABASES = {"test", "bench", "postgres", "template0", "template1"}
PASSWORD = "Xueji#2026"
REPLICA_SCRIPT = os.path.join(ROOT, "bench", "replica.sh")
DEFAULT_REPLICA_PORT = 5433                  # bench/replica.sh and .ci/run
DEFAULT_QUEUE_URL = "redis://127.0.0.1:6379/3"   # the tests use database 14, the limiter 0
TARGET_P95_MS = 500
LOGIN = ("/login/ [form]", "/login/ [post]")

# Why the numbers are what they are (kept with the code that measures them; see docs/DEPLOY.md for the
# topology). Updated when the findings change.
NOTES = """
**What changed since the runs of 2026-11-28/29 (whole-run p95 1,021 ms, missed; steady state 210 ms).** Two
things, both measured again in this run (2026-11-30) with the same data, users and think time:

- *The sign-in burst.* Passwords are hashed with argon2id at OWASP's minimum (m=19 MiB, t=2, p=1; app/passwords.py)
  instead of werkzeug's scrypt: ~40 ms of CPU per check instead of ~150 ms, so the 50 sign-ins of the ramp cost
  ~2 CPU-s instead of ~8. The strength is the current recommendation, not a weakening: argon2id is memory-hard
  and OWASP's first choice; older hashes are upgraded at the next sign-in. The first 10-second window, which held
  the burst, is what set the whole run's p95 before.
- *A page's fixed cost* (docs/ARCHITECTURE.md, "A page's fixed cost"): the account and its roles in one statement
  instead of three, the menu rendered once per role set and language instead of ~45 permission checks and
  translations per page, the list's row buttons built once per page, search filters converted once per view.
  A list page's Python time went from ~31 ms to ~15 ms.

**Still the expensive pages:** region-wide ones. A county bureau's 待办 home page counts the students of its
scope by status on every visit, and 学籍统计 of a region is a GROUP BY of its students (a province or city reads
its snapshot instead). The list's search form (fifteen fields, rendered on every list page though hidden until
opened) is now the largest part of a list page's Python time. Everything here shares the 2 cores with the
locust client (the CPU table below).

**Fixed earlier (app/workflow.py):** the 待办 list loaded a chain's steps once per waiting request (493
statements on a county reviewer's home page; now 12), and eager-loaded each waiting request's student record,
filer, history and evidence, which the list does not show (a county reviewer's page 581 → 283 ms).
"""

# What the cluster profile shows and what it does not (printed under its report).
CLUSTER_NOTES = """
**What this profile is.** The topology of docs/DEPLOY.md ("Running Xueji for a province") on one 2-core machine:
two app servers that share nothing but what production servers share (the database, Redis, the SECRET_KEY), a
streaming replica serving the reads of GET requests, the job queue with its worker, and files in the database. It
checks that these work together under load, and shows how the CPU splits between them. It does not measure the
capacity of separate machines: the two "hosts", both PostgreSQL servers, Redis, the worker and the locust client
share the same two cores, so a second server or the replica adds no CPU here, and the replica's work (replaying the
primary's WAL, answering reads) comes out of the same budget as everything else.
"""


def log(msg):
    print(f"[load] {msg}", flush=True)


# --- database -----------------------------------------------------------------------------------------------

def database_name(url):
    return urlsplit(url).path.lstrip("/").split("?")[0]


def ensure_database(url):
    """Create the database if it is missing (PostgreSQL only; psycopg talks to the server's `postgres` db)."""
    import psycopg
    name = database_name(url)
    if name in FORBIDDEN_DATABASES or not url.startswith("postgresql"):
        sys.exit(f"refusing database {name!r}: the load run uses its own PostgreSQL database (default `load`)")
    parts = urlsplit(url.replace("postgresql+psycopg://", "postgresql://"))
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def server_env(url, extra=None):
    env = dict(os.environ)
    env.update({"DATABASE_URL": url, "XUEJI_INSTANCE": INSTANCE, "FLASK_APP": "run"})
    env.update(extra or {})
    return env


def flask_init(url):
    subprocess.run([os.path.join(BIN, "flask"), "--app", "run", "xueji", "init", "--demo-if-empty"], cwd=ROOT,
                   env=server_env(url), check=True)


def fill(url, students, regenerate):
    """Migrate and fill; returns a sentence saying which data the run uses."""
    generator = os.path.join(ROOT, "bench", "generate.py")
    if students <= 0 or not os.path.exists(generator):
        flask_init(url)
        why = "--students 0" if students <= 0 else "bench/generate.py is not in this tree"
        return f"demo world (`xueji init --demo-if-empty`; {why})"
    log(f"bench/generate.py --students {students}{'' if regenerate else ' --reuse'} (generating takes a while)")
    cmd = [sys.executable, generator, "--students", str(students), "--database-url", url]
    proc = subprocess.Popen(cmd + ([] if regenerate else ["--reuse"]), cwd=ROOT, env=server_env(url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    for line in proc.stdout:            # shown as it comes (progress bars included), kept for the verdict
        sys.stdout.write(line)
        out.append(line.strip())
    if proc.wait() != 0:
        tail = [line.strip() for line in out[-3:]]
        log("bench/generate.py failed, falling back to the demo world:\n  " + "\n  ".join(tail))
        flask_init(url)
        return "demo world: bench/generate.py failed (" + " / ".join(tail)[-300:] + ")"
    flask_init(url)                    # migrations and permissions of this tree on top (idempotent)
    reused = any(line.startswith("reusing") for line in out)
    return (f"province-shaped data from `bench/generate.py --students {students:,}`"
            + (" (reused from an earlier run)" if reused else ""))


def _engine(url):
    from sqlalchemy import create_engine
    return create_engine(url)


def data_size(url):
    from sqlalchemy import text
    with _engine(url).connect() as conn:
        one = lambda sql: conn.execute(text(sql)).scalar()  # noqa: E731
        return {
            "students": one("SELECT count(*) FROM student"),
            "in school (在校)": one("SELECT count(*) FROM student WHERE status = '在校'"),
            "schools": one("SELECT count(*) FROM school"),
            "counties": one("SELECT count(DISTINCT county_code) FROM school"),
            "classes": one("SELECT count(*) FROM school_class"),
            "requests": one("SELECT count(*) FROM wf_request"),
            "pending requests": one("SELECT count(*) FROM wf_request WHERE state = '审核中'"),
            "audit rows": one("SELECT count(*) FROM audit_event"),
            "accounts": one("SELECT count(*) FROM ab_user"),
        }


# --- who takes part -----------------------------------------------------------------------------------------

def pick_accounts(url, limit=8):
    """Accounts for the locust pools, from the database: only sign-in-able ones (active, no forced password
    change, not locked). With the generated province the bench_* accounts come first and the other pools are
    taken from their counties (bench_school's county, the 10,000-student county, the big county); with the demo,
    its accounts. Registrars and school leaders are of the same schools, and the county reviewers of their
    counties, so the requests filed for the run meet all three."""
    from sqlalchemy import text
    sql = text("""
        SELECT u.username, u.school_id, u.region_code, r.name AS role, s.county_code, g.level AS region_level
        FROM ab_user u JOIN ab_user_role ur ON ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id
        LEFT JOIN school s ON s.id = u.school_id LEFT JOIN region g ON g.code = u.region_code
        WHERE u.active AND NOT u.must_change_password AND (u.locked_until IS NULL OR u.locked_until < now())
        ORDER BY (u.username LIKE 'bench%') DESC, u.school_id, u.username""")
    with _engine(url).connect() as conn:
        rows = [dict(r) for r in conn.execute(sql).mappings()]
        cohorts = sorted(c for (c,) in conn.execute(text(
            "SELECT DISTINCT cohort_year FROM student WHERE status = '在校' AND cohort_year IS NOT NULL")))

        def schools_of(region):
            return [i for (i,) in conn.execute(text(
                "SELECT id FROM school WHERE :r IN (county_code, city_code, province_code) ORDER BY id LIMIT 40"),
                {"r": region})]

        bench = [r for r in rows if r["username"].startswith("bench_")]
        focus = []
        for r in bench:
            county = r["county_code"] or (r["region_code"] if r["region_level"] == "county" else None)
            if county and county not in focus:
                focus.append(county)

        def of_role(role, where=lambda r: True):
            return [r for r in rows if r["role"] == role and where(r)]

        def spread(candidates):
            """Up to `limit`, taking the focus counties in turn (bench_* accounts first)."""
            if not focus:
                return candidates[:limit]
            queues = {c: [r for r in candidates if r["county_code"] == c] for c in focus}
            out = [r for r in candidates if r["username"].startswith("bench_")][:limit]
            while len(out) < limit and any(queues.values()):
                for c in focus:
                    if queues[c] and len(out) < limit:
                        r = queues[c].pop(0)
                        if r not in out:
                            out.append(r)
            return out

        registrars = spread(of_role("学校学籍管理员", lambda r: r["school_id"]))
        schools = {r["school_id"] for r in registrars}
        leaders = [r for r in of_role("学校学籍主管领导") if r["school_id"] in schools][:limit] or \
            spread(of_role("学校学籍主管领导", lambda r: r["school_id"]))
        counties = {r["county_code"] for r in leaders}
        county_reviewers = of_role("教育局审核", lambda r: r["region_code"] in counties)[:limit // 2]
        bureau = [r for r in bench if r["region_code"] and r["role"] != "教育局审核"]
        bureau += [r for r in of_role("教育局经办", lambda r: r["region_code"]) if r not in bureau]
        pools = {
            "registrar": [{"username": r["username"], "schools": []} for r in registrars],
            "school_reviewer": [{"username": r["username"], "schools": []} for r in leaders],
            "county_reviewer": [{"username": r["username"], "schools": []} for r in county_reviewers],
            "bureau": [{"username": r["username"], "schools": schools_of(r["region_code"])}
                       for r in bureau[:limit // 2]],
            "cohorts": cohorts[-3:],
        }
    missing = [k for k in ("registrar", "school_reviewer", "county_reviewer", "bureau") if not pools[k]]
    if missing:
        sys.exit(f"no usable accounts for {missing}: is the database filled?")
    return pools, sorted({r["school_id"] for r in leaders})


# a complete 1×1 PNG (every chunk's CRC right: app/evidence.py decodes evidence images before storing them)
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc````\x00\x00\x00\x05\x00\x01\xa5\xf6E@\x00\x00\x00\x00IEND\xaeB`\x82")


def seed_pending(url, school_ids, at_school_step, at_county_step):
    """Top up each school's queue: pending 关键数据变更 (new 姓名, one PNG as evidence) at the school leader's step
    and at the county's step, filed by the school's registrar and, for the second step, approved once by its
    leader through app.workflow (the same engine the web form calls)."""
    os.environ.setdefault("XUEJI_INSTANCE", INSTANCE)
    os.environ.setdefault("SECRET_KEY", "load-seed")
    import io
    from sqlalchemy import and_, exists, select

    from app import create_app, evidence, keydata, workflow
    from app.extensions import db
    from models import School, Student, XuejiUser
    from models.requests import OPEN_STATES, Request
    from flask_appbuilder.security.sqla.models import Role

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "UPLOAD_FOLDER": os.path.join(INSTANCE, "uploads")})
    filed = 0
    with app.app_context():
        s = db.session
        for school_id in school_ids:
            school = s.get(School, school_id)

            def account(role):
                return s.scalars(select(XuejiUser).where(XuejiUser.school_id == school_id,
                                                         XuejiUser.roles.any(Role.name == role))
                                 .order_by(XuejiUser.username.like("bench%").desc(), XuejiUser.id)).first()

            clerk, leader = account("学校学籍管理员"), account("学校学籍主管领导")
            if clerk is None or leader is None:
                continue

            def pending_at(seq):
                return s.query(Request).filter(Request.school_id == school_id, Request.state == "审核中",
                                               Request.kind == "key_change", Request.step_seq == seq).count()

            need = {1: max(0, at_school_step - pending_at(1)), 2: max(0, at_county_step - pending_at(2))}
            if not any(need.values()):
                continue
            busy = exists().where(and_(Request.student_id == Student.id, Request.state.in_(OPEN_STATES)))
            candidates = s.scalars(select(Student).where(Student.school_id == school_id, Student.status == "在校",
                                                         Student.deleted_at.is_(None), ~busy)
                                   .order_by(Student.id).limit(need[1] + need[2])).all()
            for i, student in enumerate(candidates):
                name = student.name[:-1] + ("乙" if student.name[-1] != "乙" else "丙")
                payload = keydata.key_change_payload(s, student, {"name": name}, "户籍信息更正（负载测试）")
                ev = evidence.store(s, io.BytesIO(PNG), "户口簿.png", school_id, clerk, student.id,
                                    school.county_code)
                req = workflow.file(s, clerk, "key_change", student, payload, [ev.id], "负载测试")
                if i >= need[1]:
                    workflow.decide(s, leader, req.id, workflow.APPROVE, "同意")
                filed += 1
    return filed


# --- gunicorn -----------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(url, extra=None):
    """The environment of a server process: production-like settings, plus `extra` (the cluster's settings)."""
    env = server_env(url, {
        "SECRET_KEY": secrets.token_hex(32),
        "RATELIMIT_STORAGE_URI": os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/0"),
        # Login throttling is per client address; all 50 simulated users come from 127.0.0.1 and sign in within
        # five seconds. The production default (20 per minute per address) stays in config.py.
        "AUTH_RATE_LIMIT": os.environ.get("LOAD_AUTH_RATE_LIMIT", "600 per minute"),
    })
    env.update(extra or {})
    return env


def start_gunicorn(url, port, workers, worker_class, threads, logfile, extra=None, config_file=None):
    env = production_env(url, extra)
    cmd = [os.path.join(BIN, "gunicorn"), "run:app", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
           "--worker-class", worker_class, "--timeout", "60", "--graceful-timeout", "10", "--log-level", "warning"]
    if config_file:
        cmd += ["--config", config_file]
    if worker_class == "gthread":
        # gthread keeps client connections alive (default 2 s). locust talks to gunicorn directly, and with a
        # think time around 2 s a request sent just as the server closes the idle connection is reset: a
        # client/server race that nginx (which opens its own upstream connections) does not have. So keep
        # connections longer than any think time.
        cmd += ["--threads", str(threads), "--keep-alive", "75"]
    out = open(logfile, "ab")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}; see {logfile}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=5) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    stop_gunicorn(proc)
    raise RuntimeError(f"gunicorn did not answer on port {port} within 90 s; see {logfile}")


def stop_gunicorn(proc):
    """TERM to the gunicorn master we started (it stops its workers), KILL to its process group if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class CpuSampler(threading.Thread):
    """CPU seconds used during the run per process group, from per-process counters sampled every second: the
    process trees of `roots` ({group: pid}: a gunicorn master with its workers, the queue worker with its work
    horses, the replica's postmaster with its processes), PostgreSQL (the primary's processes), Redis, the locust
    client and everything else on the machine (other people's work on a shared box)."""
    FIXED = ("postgresql", "redis", "locust", "other")

    def __init__(self, roots, database):
        super().__init__(daemon=True)
        self.database = database
        import psutil
        self.psutil, self.roots = psutil, dict(roots)
        self.groups = tuple(self.roots) + self.FIXED
        self.stop_event = threading.Event()
        self.first, self.last, self.group, self.rss = {}, {}, {}, {}
        self.timeline = []                       # (time, {group: CPU-s so far}) once a second
        self._sample(initial=True)
        self.t0, self.sys0 = time.time(), psutil.cpu_times()

    def _other_database(self, cmd):
        """A PostgreSQL backend ("postgres: [cluster:] user database client state") of another database is other
        people's work; background processes (checkpointer, autovacuum, walsender, startup …) count as ours."""
        words = cmd.split()[1:]
        if words and words[0].endswith(":"):
            words = words[1:]
        backend = len(words) >= 3 and words[0] != "walsender" and ("(" in words[2] or words[2] == "[local]")
        return backend and words[1] != self.database

    def _classify(self, p, members):
        name = p.info["name"] or ""
        cmd = " ".join(p.info["cmdline"] or [])
        postgres = name.startswith("postgres") or cmd.startswith("postgres:")
        if p.pid in members:
            group = members[p.pid]
            return "other" if postgres and self._other_database(cmd) else group
        if postgres:
            return "other" if self._other_database(cmd) else "postgresql"
        if name.startswith("redis"):
            return "redis"
        if "locustfile.py" in cmd:
            return "locust"
        return "other"

    def _members(self):
        ps, members = self.psutil, {}
        for group, pid in self.roots.items():
            try:
                root = ps.Process(pid)
                members.update({c.pid: group for c in root.children(recursive=True)})
                members[pid] = group
            except ps.Error:
                pass
        return members

    def _sample(self, initial=False):
        ps = self.psutil
        members = self._members()
        for p in ps.process_iter(["name", "cmdline", "cpu_times"]):
            t = p.info["cpu_times"]
            if t is None:
                continue
            cpu = t.user + t.system
            try:
                key = (p.pid, p.create_time())
            except ps.Error:
                continue
            if key not in self.first:
                self.first[key] = cpu if initial else 0.0   # a process born during the run counts from zero
                self.group[key] = self._classify(p, members)
            self.last[key] = cpu
            group = members.get(p.pid, "")
            if group.startswith("gunicorn") and p.pid != self.roots.get(group):
                try:
                    self.rss[p.pid] = max(self.rss.get(p.pid, 0), p.memory_info().rss)
                except ps.Error:
                    pass

    def totals(self):
        out = {g: 0.0 for g in self.groups}
        for key, cpu in self.last.items():
            out[self.group[key]] += max(0.0, cpu - self.first[key])
        return out

    def run(self):
        while not self.stop_event.wait(1):
            self._sample()
            self.timeline.append((time.time(), self.totals()))

    def result(self):
        self.stop_event.set()
        self.join()
        self._sample()
        wall = time.time() - self.t0
        sys1 = self.psutil.cpu_times()
        busy = lambda t: sum(t) - t.idle - getattr(t, "iowait", 0)  # noqa: E731
        out = self.totals()
        out.update(timeline=self.timeline, wall=wall, machine_busy=busy(sys1) - busy(self.sys0), cores=self.psutil.cpu_count(),
                   worker_rss_mb=max(self.rss.values(), default=0) / 2**20)
        return out


# --- locust -------------------------------------------------------------------------------------------------

def run_locust(ports, users, rate, duration, run_dir, accounts_file, wait):
    """One port, or several servers: then every simulated user keeps one of them (LOAD_HOSTS, in turn)."""
    ports = ports if isinstance(ports, (list, tuple)) else [ports]
    hosts = [f"http://127.0.0.1:{port}" for port in ports]
    outcomes = os.path.join(run_dir, "outcomes.json")
    env = dict(os.environ, LOAD_ACCOUNTS=accounts_file, LOAD_OUTCOMES=outcomes, LOAD_WAIT=wait,
               LOAD_PASSWORD=PASSWORD)
    env.pop("LOAD_HOSTS", None)
    if len(hosts) > 1:
        env["LOAD_HOSTS"] = ",".join(hosts)
    cmd = [os.path.join(BIN, "locust"), "-f", os.path.join(ROOT, "bench", "locustfile.py"), "--headless",
           "-u", str(users), "-r", str(rate), "-t", duration, "--host", hosts[0],
           "--csv", os.path.join(run_dir, "locust"), "--only-summary", "--stop-timeout", "10",
           "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    with open(os.path.join(run_dir, "locust.log"), "wb") as out:
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=True,
                       timeout=seconds(duration) + 120)
    with open(outcomes, encoding="utf-8") as f:
        data = json.load(f)
    return data


def seconds(duration):
    units = {"s": 1, "m": 60, "h": 3600}
    return int(duration[:-1]) * units[duration[-1]] if duration[-1] in units else int(duration)


def pct(values, q):
    """Nearest-rank percentile of a list of milliseconds."""
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, max(0, math.ceil(q / 100 * len(values)) - 1))]


def windows(timings, started_at, timeline, width=10, app_groups=("gunicorn", "postgresql")):
    """Per `width`-second window: requests, p95 without sign-ins, and CPU-s of the app (`app_groups`) and of other
    work."""
    out, t = [], 0
    span = max((x[0] for x in timings), default=started_at) - started_at
    while t < span:
        ms = [x[3] for x in timings if t <= x[0] - started_at < t + width and x[1] not in LOGIN]
        cpu = [c for ts, c in timeline if t <= ts - started_at < t + width + 1]

        def delta(group):
            before = [c for ts, c in timeline if ts - started_at < t]
            first = before[-1][group] if before else 0.0
            return (cpu[-1][group] - first) if cpu else 0.0
        out.append({"from": t, "n": len(ms), "p95": pct(ms, 95), "app": sum(delta(g) for g in app_groups),
                    "other": delta("other")})
        t += width
    return out


def summarise(timings, started_at, ramp_s, servers=1):
    """Totals, the steady state (after the ramp, logins left out) and one row per endpoint."""
    rows = [dict(t=t - started_at, name=n, method=m, ms=ms, failed=f, server=rest[0] if rest else 0)
            for t, n, m, ms, f, *rest in timings]
    span = max((r["t"] for r in rows), default=1) or 1

    def stats(sel, secs):
        ms = [r["ms"] for r in sel]
        return {"n": len(sel), "fail": sum(r["failed"] for r in sel), "rps": len(sel) / secs if secs else 0,
                "median": statistics.median(ms) if ms else 0, "p95": pct(ms, 95), "p99": pct(ms, 99),
                "max": max(ms, default=0)}

    steady = [r for r in rows if r["t"] >= ramp_s and r["name"] not in LOGIN]
    per = {}
    for r in rows:
        per.setdefault((r["method"], r["name"]), []).append(r)
    endpoints = [(m, n, stats(v, span)) for (m, n), v in per.items()]
    endpoints.sort(key=lambda e: -e[2]["n"])
    return {"all": stats(rows, span), "steady": stats(steady, span - ramp_s), "endpoints": endpoints,
            "span": span, "by_server": [stats([r for r in rows if r["server"] == i], span) for i in range(servers)]}


def one_run(url, config, users, rate, duration, wait, accounts_file, run_root):
    worker_class, workers, threads = config
    label = f"{workers} × {worker_class}" + (f" ({threads} threads)" if worker_class == "gthread" else "")
    run_dir = os.path.join(run_root, f"{worker_class}-{workers}x{threads}")
    os.makedirs(run_dir, exist_ok=True)
    port = free_port()
    log(f"gunicorn {label} on 127.0.0.1:{port}; locust -u {users} -r {rate} -t {duration}")
    proc = None
    try:
        proc = start_gunicorn(url, port, workers, worker_class, threads, os.path.join(run_dir, "gunicorn.log"))
        sampler = CpuSampler({"gunicorn": proc.pid}, database_name(url))
        sampler.start()
        started = time.time()
        data = run_locust(port, users, rate, duration, run_dir, accounts_file, wait)
        cpu = sampler.result()
    finally:
        stop_gunicorn(proc)
    summary = summarise(data["timings"], started, ramp_s=users / rate + 5)
    summary["windows"] = windows(data["timings"], started, cpu.pop("timeline"))
    with open(os.path.join(run_dir, "gunicorn.log"), encoding="utf-8", errors="replace") as f:
        server_log = f.read()
    summary.update(label=label, config=config, outcomes=data["outcomes"], cpu=cpu,
                   tracebacks=server_log.count("Traceback"), run_dir=run_dir)
    s = summary["all"]
    log(f"{label}: {s['n']} requests, {s['rps']:.1f} req/s, median {s['median']:.0f} ms, p95 {s['p95']:.0f} ms, "
        f"p99 {s['p99']:.0f} ms, {s['fail']} failures; steady p95 {summary['steady']['p95']:.0f} ms")
    return summary


# --- cluster profile ----------------------------------------------------------------------------------------

# gunicorn hooks for the cluster's servers (written into the run folder and passed with --config): each worker
# counts, per request, the SQL statements that ran on the primary's engine and on the replicas' engines of the
# app's read-replica router (app/replicas.py), leaving out the router's own health checks and WAL-position reads,
# and writes its counts to $LOAD_ROUTING_DIR (every 2 s while busy, and when it exits).
ROUTING_HOOKS = r"""
import json, os, threading, time
from collections import Counter

_OUT = os.environ.get("LOAD_ROUTING_DIR", ".")
_SERVER = os.environ.get("LOAD_SERVER_NAME", "server")
_BOOKKEEPING = ("SELECT pg_is_in_recovery()", "SELECT pg_current_wal_lsn()", "SELECT pg_current_wal_insert_lsn()")
_local = threading.local()
_counts = Counter()
_lock = threading.Lock()
_dumped = [0.0]


def _listener(where):
    def count(conn, cursor, statement, parameters, context, executemany):
        hits = getattr(_local, "hits", None)
        if hits is not None and not statement.lstrip().startswith(_BOOKKEEPING):
            hits[where] += 1
    return count


def post_worker_init(worker):
    from sqlalchemy import event
    router = getattr(worker.wsgi, "extensions", {}).get("xueji_replicas")
    if router is None:
        worker.log.warning("load: the app has no read-replica router; statements are not counted")
        return
    event.listen(router.primary, "before_cursor_execute", _listener("primary"))
    for replica in router.replicas:
        event.listen(replica.engine, "before_cursor_execute", _listener("replica"))


def pre_request(worker, req):
    _local.hits = Counter()


def post_request(worker, req, environ, resp):
    hits, _local.hits = getattr(_local, "hits", None) or Counter(), None
    method = "GET" if req.method in ("GET", "HEAD") else "other"
    with _lock:
        _counts[method + " requests"] += 1
        if method == "GET":
            _counts["GET " + ("replica" if hits["replica"] else "primary" if hits["primary"] else "no SQL")] += 1
        _counts[method + " statements on the primary"] += hits["primary"]
        _counts[method + " statements on the replica"] += hits["replica"]
        if time.time() - _dumped[0] > 2:
            _dump()


def worker_exit(server, worker):
    with _lock:
        _dump()


def _dump():
    _dumped[0] = time.time()
    path = os.path.join(_OUT, "routing-%s-%d.json" % (_SERVER, os.getpid()))
    with open(path + ".tmp", "w") as f:
        json.dump(dict(_counts), f)
    os.replace(path + ".tmp", path)
"""


def _libpq(url):
    return url.replace("postgresql+psycopg://", "postgresql://")


def default_replica_url(url):
    """The primary's database on the replica of bench/replica.sh (127.0.0.1:5433)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{DEFAULT_REPLICA_PORT}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def replica_streaming(replica_url):
    import psycopg
    try:
        with psycopg.connect(_libpq(replica_url), connect_timeout=3) as conn:
            return bool(conn.execute("SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver "
                                     "WHERE status = 'streaming')").fetchone()[0])
    except psycopg.Error:
        return False


class ReplicaControl:
    """The streaming replica of the cluster profile: reused if it streams already (and left running), otherwise
    started with bench/replica.sh and stopped again by `release` (unless --keep-replica). An explicit
    --replica-url is someone else's: it must stream, and is never started or stopped here."""

    def __init__(self, replica_url, managed, keep):
        self.url, self.managed, self.keep, self.started = replica_url, managed, keep, False

    def ensure(self):
        if replica_streaming(self.url):
            log(f"replica: {self.url.rsplit('@', 1)[-1]} already streams; reused and left running")
            return
        if not self.managed:
            sys.exit(f"--replica-url {self.url}: not a streaming replica that answers")
        log("replica: starting the streaming replica on 127.0.0.1:5433 (bench/replica.sh start)")
        proc = subprocess.run(["bash", REPLICA_SCRIPT, "start"], cwd=ROOT, text=True, capture_output=True)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            sys.exit(f"bench/replica.sh start failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
        self.started = "started" in proc.stdout
        if not replica_streaming(self.url):
            self.release()
            sys.exit(f"the replica streams but {self.url} does not answer (is the database there?)")
        log(f"replica: {proc.stdout.strip()}")

    def release(self):
        if not self.started:
            return
        if self.keep:
            log("replica: left running (--keep-replica); stop it with bench/replica.sh stop")
            return
        proc = subprocess.run(["bash", REPLICA_SCRIPT, "stop"], cwd=ROOT, text=True, capture_output=True)
        log(f"replica: {proc.stdout.strip() or proc.stderr.strip()}")
        self.started = False


def wait_replayed(url, replica_url, timeout=180):
    """Until the replica has replayed what the primary has written so far (the seeding just before)."""
    import psycopg
    with psycopg.connect(_libpq(url)) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]
    deadline = time.time() + timeout
    while time.time() < deadline:
        with psycopg.connect(_libpq(replica_url), connect_timeout=3) as conn:
            if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]:
                return
        time.sleep(1)
    sys.exit(f"the replica has not replayed the primary's position {target} within {timeout} s")


def pg_xacts(url):
    """Transactions committed and rolled back in the run's database on this server, so far (pg_stat_database)."""
    import psycopg
    with psycopg.connect(_libpq(url), connect_timeout=5) as conn:
        commit, rollback = conn.execute("SELECT xact_commit, xact_rollback FROM pg_stat_database "
                                        "WHERE datname = current_database()").fetchone()
    return {"commit": int(commit), "rollback": int(rollback)}


def postmaster_pid(url):
    """The pid of the server's postmaster: the parent of our own backend."""
    import psutil
    import psycopg
    with psycopg.connect(_libpq(url), connect_timeout=5) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        return psutil.Process(backend).ppid()


def stop_process(proc, grace=30):
    """TERM to a process we started (the queue worker: a warm shutdown), KILL to its process group if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _queue_worker(queue_url, pid):
    from redis import Redis
    from rq import Worker
    for w in Worker.all(connection=Redis.from_url(queue_url)):
        if w.pid == pid:
            return w
    return None


def start_queue_worker(url, extra, logfile, queue_url):
    env = production_env(url, extra)
    out = open(logfile, "ab")
    proc = subprocess.Popen([os.path.join(BIN, "flask"), "--app", "run", "xueji", "worker"], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"xueji worker exited with {proc.returncode}; see {logfile}")
        if _queue_worker(queue_url, proc.pid) is not None:
            return proc
        time.sleep(0.5)
    stop_process(proc)
    raise RuntimeError(f"xueji worker did not register in {queue_url} within 90 s; see {logfile}")


def queue_counts(queue_url, pid):
    try:
        w = _queue_worker(queue_url, pid)
        return {"finished": w.successful_job_count, "failed": w.failed_job_count} if w else None
    except Exception as exc:  # noqa: BLE001
        return {"error": str(exc)}


def routing_counts(routing_dir):
    """The gunicorn workers' statement counts (ROUTING_HOOKS), per server and in total."""
    per, total = {}, {}
    for name in sorted(os.listdir(routing_dir)):
        if not (name.startswith("routing-") and name.endswith(".json")):
            continue
        server = name[len("routing-"):].rsplit("-", 1)[0]
        with open(os.path.join(routing_dir, name), encoding="utf-8") as f:
            counts = json.load(f)
        for key, n in counts.items():
            per.setdefault(server, {}).setdefault(key, 0)
            per[server][key] += n
            total[key] = total.get(key, 0) + n
    return {"servers": per, "total": total}


def cluster_run(url, replica_url, queue_url, servers, config, users, rate, duration, wait, accounts_file,
                run_root):
    worker_class, workers, threads = config
    per = f"{workers} {worker_class} worker{'s' if workers != 1 else ''}" + (
        f" × {threads} threads" if worker_class == "gthread" else "")
    label = f"{servers} gunicorn servers × {per}"
    run_dir = os.path.join(run_root, f"cluster-{servers}x{worker_class}-{workers}x{threads}")
    routing_dir = os.path.join(run_dir, "routing")
    os.makedirs(routing_dir, exist_ok=True)
    hooks = os.path.join(run_dir, "gunicorn_hooks.py")
    with open(hooks, "w", encoding="utf-8") as f:
        f.write(ROUTING_HOOKS)
    home = os.path.join(INSTANCE, "cluster")
    # What every server and the queue worker share: the same SECRET_KEY (a session cookie, with its read-your-writes
    # position, signed by one server is valid on the other), the replica, the queue, files in the database, the
    # exchange key's path. Each server has its own instance folder, as a host of its own would.
    common = {
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_REPLICA_URLS": replica_url,
        "XUEJI_QUEUE_URL": queue_url,
        "XUEJI_FILE_STORE": "database",
        "EXCHANGE_KEY_PATH": os.path.join(home, "exchange_key"),
        "LOAD_ROUTING_DIR": routing_dir,
    }
    gunicorns, worker, ports = [], None, []
    log(f"{label} + 1 xueji worker; replica {replica_url.rsplit('@', 1)[-1]}; queue {queue_url}; "
        f"locust -u {users} -r {rate} -t {duration}")
    try:
        for i in range(1, servers + 1):
            port = free_port()
            folder = os.path.join(home, f"server-{i}")
            os.makedirs(folder, exist_ok=True)
            proc = start_gunicorn(url, port, workers, worker_class, threads,
                                  os.path.join(run_dir, f"gunicorn-{i}.log"),
                                  extra=dict(common, XUEJI_INSTANCE=folder, LOAD_SERVER_NAME=f"server-{i}"),
                                  config_file=hooks)
            gunicorns.append(proc)
            ports.append(port)
            log(f"gunicorn {i}: 127.0.0.1:{port} (pid {proc.pid})")
        folder = os.path.join(home, "worker")
        os.makedirs(folder, exist_ok=True)
        worker = start_queue_worker(url, dict(common, XUEJI_INSTANCE=folder), os.path.join(run_dir, "worker.log"),
                                    queue_url)
        log(f"xueji worker: pid {worker.pid}, queue {queue_url}")
        roots = {f"gunicorn {i}": p.pid for i, p in enumerate(gunicorns, 1)}
        roots.update({"queue worker": worker.pid, "postgresql replica": postmaster_pid(replica_url)})
        xacts_before = {"primary": pg_xacts(url), "replica": pg_xacts(replica_url)}
        sampler = CpuSampler(roots, database_name(url))
        sampler.start()
        started = time.time()
        data = run_locust(ports, users, rate, duration, run_dir, accounts_file, wait)
        cpu = sampler.result()
        jobs = queue_counts(queue_url, worker.pid)
    finally:
        stop_process(worker)
        for proc in gunicorns:
            stop_gunicorn(proc)
    time.sleep(2)                    # the servers' backends flush their statistics as they exit
    xacts_after = {"primary": pg_xacts(url), "replica": pg_xacts(replica_url)}
    app_groups = tuple(roots) + ("postgresql",)
    summary = summarise(data["timings"], started, ramp_s=users / rate + 5, servers=servers)
    summary["windows"] = windows(data["timings"], started, cpu.pop("timeline"), app_groups=app_groups)
    tracebacks = {}
    for name in [f"gunicorn-{i}.log" for i in range(1, servers + 1)] + ["worker.log"]:
        with open(os.path.join(run_dir, name), encoding="utf-8", errors="replace") as f:
            tracebacks[name] = f.read().count("Traceback")
    summary.update(profile="cluster", label=label, config=config, servers=servers, ports=ports,
                   outcomes=data["outcomes"], crosscheck=data.get("crosscheck", {}), cpu=cpu,
                   app_groups=list(app_groups), tracebacks=sum(tracebacks.values()), tracebacks_by_log=tracebacks,
                   routing=routing_counts(routing_dir), jobs=jobs, run_dir=run_dir,
                   replica=replica_url.rsplit("@", 1)[-1], queue=queue_url,
                   xacts={k: {m: xacts_after[k][m] - xacts_before[k][m] for m in ("commit", "rollback")}
                          for k in xacts_after})
    s, r = summary["all"], summary["routing"]["total"]
    log(f"{label}: {s['n']} requests, {s['rps']:.1f} req/s, median {s['median']:.0f} ms, p95 {s['p95']:.0f} ms, "
        f"p99 {s['p99']:.0f} ms, {s['fail']} failures; steady p95 {summary['steady']['p95']:.0f} ms; "
        f"GETs read on the replica {r.get('GET replica', 0)}, on the primary {r.get('GET primary', 0)}; "
        f"read-after-write on the other server {summary['crosscheck'] or 'not exercised'}; "
        f"tracebacks {tracebacks}")
    return summary


# --- report -------------------------------------------------------------------------------------------------

def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import psutil
    return f"{psutil.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM"


def versions(url):
    from sqlalchemy import text
    with _engine(url).connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar()
    try:
        import redis
        rv = redis.Redis.from_url(os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/0")).info()["redis_version"]
    except Exception:  # noqa: BLE001
        rv = "?"
    from importlib.metadata import version
    return (f"Python {platform.python_version()}, gunicorn {version('gunicorn')}, Flask-AppBuilder "
            f"{version('flask-appbuilder')}, PostgreSQL {pg}, Redis {rv}, locust {version('locust')}")


def fmt(ms):
    return f"{ms:.0f}"


def _cluster_intro(main, meta):
    ports = ", ".join(f":{p}" for p in main["ports"])
    workers = main["config"][1]
    return (
        f"`make load LOAD_ARGS=\"--profile cluster\"` (`bench/load.py`, `bench/locustfile.py`, `bench/replica.sh`) "
        f"— {meta['date']}, {meta['machine']}; {meta['versions']}. Everything on 127.0.0.1 on the same 2 cores: "
        f"**{main['label']}** (each its own master on its own port, {ports}, with its own instance folder; "
        f"{workers} worker{'s' if workers != 1 else ''} each, one per core), all with the same SECRET_KEY; "
        f"the PostgreSQL primary and its streaming replica ({main['replica']}, `DATABASE_REPLICA_URLS`); "
        f"Redis (limiter storage, and the job queue in its database {main['queue'].rsplit('/', 1)[-1]}); "
        "one `flask --app run xueji worker`; files in the database (`XUEJI_FILE_STORE=database`); and the locust "
        "client, which gives each simulated user one of the servers in turn and keeps it there, as a load "
        "balancer would. No nginx: locust talks to gunicorn directly.")


def _cluster_details(main, meta):
    cpu, s = main["cpu"], main["all"]
    servers = [g for g in main["app_groups"] if g.startswith("gunicorn")]
    n = max(1, s["n"])
    web = sum(cpu[g] for g in servers)
    pg = cpu["postgresql"] + cpu["postgresql replica"]
    app = sum(cpu[g] for g in main["app_groups"])
    lines = ["", "| server | requests | failures | median ms | p95 ms | p99 ms |", "|---|---|---|---|---|---|"]
    for i, (port, st) in enumerate(zip(main["ports"], main["by_server"]), 1):
        lines.append(f"| gunicorn {i} (127.0.0.1:{port}) | {st['n']:,} | {st['fail']} | {fmt(st['median'])} | "
                     f"{fmt(st['p95'])} | {fmt(st['p99'])} |")
    lines += [
        "",
        f"CPU during the run ({cpu['wall']:.0f} s × {cpu['cores']} cores = {cpu['cores'] * cpu['wall']:.0f} CPU-s, "
        f"machine busy {cpu['machine_busy']:.0f}), per process group: "
        + ", ".join(f"{g} {cpu[g]:.0f}" for g in servers)
        + f", the queue worker {cpu['queue worker']:.1f}, PostgreSQL primary {cpu['postgresql']:.0f}, PostgreSQL "
        f"replica {cpu['postgresql replica']:.0f}, Redis {cpu['redis']:.1f}, the locust client {cpu['locust']:.0f}, "
        f"other processes on the shared machine {cpu['other']:.0f} CPU-s. Largest gunicorn worker: "
        f"{cpu['worker_rss_mb']:.0f} MB RSS. CPU per request: gunicorn {1000 * web / n:.0f} ms + PostgreSQL "
        f"{1000 * pg / n:.0f} ms (primary {1000 * cpu['postgresql'] / n:.0f}, replica "
        f"{1000 * cpu['postgresql replica'] / n:.0f}), so the app alone needs {app / max(1, cpu['wall']):.2f} of the "
        f"{cpu['cores']} cores at this load.",
    ]
    r = main["routing"]["total"]
    gets = r.get("GET requests", 0)
    share = lambda k: f"{r.get(k, 0):,} ({100 * r.get(k, 0) / gets:.0f} %)" if gets else "0"  # noqa: E731
    per_server = "; ".join(
        f"{name}: {c.get('GET replica', 0):,} on the replica, {c.get('GET primary', 0):,} on the primary"
        for name, c in sorted(main["routing"]["servers"].items()))
    x = main["xacts"]
    lines += [
        "",
        f"Where the reads went (counted inside every gunicorn worker by hooks that watch the app's two engines, per "
        f"request as the servers saw them: a form post's redirect is a GET of its own, and each server's readiness "
        f"check is one. A GET counts for the replica when at least one of its SQL statements ran there; every "
        f"request also reads the account and its roles (`ab_*`) on the primary by design; the router's own health "
        f"checks and WAL-position reads are left out): of {gets:,} GETs, {share('GET replica')} read their data on "
        f"the replica, {share('GET primary')} only on the primary (the user's own write not yet known to be "
        f"replayed there, the replica skipped, or a page that reads only primary-only tables), "
        f"{share('GET no SQL')} ran no SQL. SQL statements of the GETs: "
        f"{r.get('GET statements on the replica', 0):,} on the replica, {r.get('GET statements on the primary', 0):,} "
        f"on the primary; the {r.get('other requests', 0):,} other requests (sign-ins, 通过) ran all their "
        f"{r.get('other statements on the primary', 0):,} statements on the primary "
        f"({r.get('other statements on the replica', 0)} on the replica). Per server: {per_server or 'no counts'}. "
        f"Transactions in the `{meta.get('database', 'load')}` database during the run, from pg_stat_database "
        f"(xact_commit + xact_rollback: a request that only read ends its transaction with a rollback; the counts "
        f"include the router's health checks and write-position reads): primary "
        f"{x['primary']['commit'] + x['primary']['rollback']:,}, replica "
        f"{x['replica']['commit'] + x['replica']['rollback']:,}.",
    ]
    cc = main.get("crosscheck") or {}
    fresh, stale = cc.get("fresh", 0), cc.get("stale", 0)
    lines += [
        "",
        f"Read-after-write across the servers: after each 通过 the reviewer opened the request once more on the "
        f"other server (same session cookie): {fresh} time{'s' if fresh != 1 else ''} it showed the request decided, "
        f"{stale} time{'s' if stale != 1 else ''} it still offered 通过 (a stale read)"
        + ("" if not cc.get("other") else f", {cc['other']} not checked (the page did not answer 200)") + ".",
    ]
    jobs = main.get("jobs") or {}
    ran = jobs.get("finished", 0) + jobs.get("failed", 0) if "error" not in jobs else None
    lines += [
        "",
        "Queue: " + (f"jobs run by the worker during the run: {jobs.get('finished', 0)} finished, "
                     f"{jobs.get('failed', 0)} failed" if ran is not None else f"not read ({jobs.get('error')})")
        + (". The load mix starts no background job (no export, import or statistics refresh), so the worker "
           "waited the whole run: its CPU is the cost of an idle worker, not of jobs." if ran == 0 else ".")
        + " Server tracebacks: " + ", ".join(f"{k} {v}" for k, v in main["tracebacks_by_log"].items()) + ".",
    ]
    if CLUSTER_NOTES.strip():
        lines += ["", CLUSTER_NOTES.strip()]
    return lines


def report(main, meta):
    s, st = main["all"], main["steady"]
    ok = s["fail"] == 0 and s["p95"] < TARGET_P95_MS
    cpu = main["cpu"]
    cluster = main.get("profile") == "cluster"
    if cluster:
        heading = (f"## Load, cluster profile: {meta['users']} concurrent users against {main['servers']} gunicorn "
                   "servers + PostgreSQL primary and streaming replica + Redis + a queue worker "
                   "(`make load LOAD_ARGS=\"--profile cluster\"`)")
        intro = _cluster_intro(main, meta)
    else:
        heading = (f"## Load: {meta['users']} concurrent users against gunicorn + PostgreSQL + Redis (`make load`)")
        intro = (f"`make load` (`bench/load.py`, `bench/locustfile.py`) — {meta['date']}, {meta['machine']}; "
                 f"{meta['versions']}. Everything on 127.0.0.1 on the same 2 cores: gunicorn **{main['label']}**, "
                 "PostgreSQL, Redis (limiter storage) and the locust client itself.")
    app_label = "all the app's processes (gunicorn, queue worker, PostgreSQL primary and replica)" if cluster \
        else "gunicorn + PostgreSQL"
    lines = [
        heading,
        "",
        intro,
        "",
        f"Data: {meta['data_source']}. " + ", ".join(f"{k} {v:,}" for k, v in meta["size_before"].items()) + ".",
        "",
        f"Load: locust `-u {meta['users']} -r {meta['rate']} -t {meta['duration']}`, think time {meta['wait']} s "
        "between a user's actions; users signed in through the /login/ form. Mix (by weight): school registrars 6 "
        "(待办 home, student list by grade and status and its pages, name search, student pages, requests, 问题学籍, "
        "导出 Excel of one grade: a background job polled until done, then downloaded), "
        "reviewers 2 (待办 → request page → 通过 through the form with its CSRF token"
        + ("; then the request page once more on the other server" if cluster else "") + "), bureau staff 2 "
        "(region-wide lists by school/grade, name search, 在校生查询, 异动查询, 学籍统计). Static files are not "
        "requested (nginx serves them in production, docs/DEPLOY.md).",
        "",
        "| | requests | req/s | failures | median ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|",
        f"| whole run | {s['n']:,} | {s['rps']:.1f} | {s['fail']} | {fmt(s['median'])} | **{fmt(s['p95'])}** | "
        f"{fmt(s['p99'])} | {fmt(s['max'])} |",
        f"| steady state (after the {meta['ramp']:.0f} s ramp, logins left out) | {st['n']:,} | {st['rps']:.1f} | "
        f"{st['fail']} | {fmt(st['median'])} | {fmt(st['p95'])} | {fmt(st['p99'])} | {fmt(st['max'])} |",
        "",
        f"Target: zero errors and p95 under {TARGET_P95_MS} ms — whole run **{'met' if ok else 'missed'}** "
        f"({s['fail']} failures, p95 {fmt(s['p95'])} ms); steady state "
        f"**{'met' if st['fail'] == 0 and st['p95'] < TARGET_P95_MS else 'missed'}** (p95 {fmt(st['p95'])} ms). "
        f"Server tracebacks in the {'gunicorn and worker logs' if cluster else 'gunicorn log'}: {main['tracebacks']}.",
        "",
        "| endpoint | requests | failures | median ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, name, e in main["endpoints"]:
        lines.append(f"| {method} {name} | {e['n']:,} | {e['fail']} | {fmt(e['median'])} | {fmt(e['p95'])} | "
                     f"{fmt(e['p99'])} | {fmt(e['max'])} |")
    lines += ["", f"Over time (10-second windows; p95 without sign-ins; CPU-s of {app_label} and of other "
              f"processes on the shared machine, out of {10 * cpu['cores']} per window):", "",
              "| seconds | " + " | ".join(f"{w['from']}–{w['from'] + 10}" for w in main["windows"]) + " |",
              "|---|" + "---|" * len(main["windows"]),
              "| requests | " + " | ".join(str(w["n"]) for w in main["windows"]) + " |",
              "| p95 ms | " + " | ".join(fmt(w["p95"]) for w in main["windows"]) + " |",
              "| CPU-s app / other | " + " | ".join(f"{w['app']:.0f} / {w['other']:.0f}" for w in main["windows"]) + " |"]
    oc = main["outcomes"]
    lines += [
        "",
        "Outcomes (approvals, exports): " + (", ".join(f"{k} {v}" for k, v in sorted(oc.items())) or "none") +
        f"; pending requests before {meta['size_before']['pending requests']:,}, after "
        f"{meta['size_after']['pending requests']:,}.",
    ]
    if cluster:
        return "\n".join(lines + _cluster_details(main, meta))
    lines += [
        "",
        f"CPU during the run ({cpu['wall']:.0f} s × {cpu['cores']} cores = {cpu['cores'] * cpu['wall']:.0f} CPU-s, "
        f"machine busy {cpu['machine_busy']:.0f}): gunicorn {cpu['gunicorn']:.0f}, PostgreSQL "
        f"{cpu['postgresql']:.0f}, Redis {cpu['redis']:.1f}, the locust client {cpu['locust']:.0f}, other processes "
        f"on the shared machine {cpu['other']:.0f} CPU-s. Largest gunicorn worker: {cpu['worker_rss_mb']:.0f} MB RSS. "
        f"CPU per request: gunicorn {1000 * cpu['gunicorn'] / max(1, s['n']):.0f} ms + PostgreSQL "
        f"{1000 * cpu['postgresql'] / max(1, s['n']):.0f} ms, so the app alone needs "
        f"{(cpu['gunicorn'] + cpu['postgresql']) / max(1, cpu['wall']):.2f} of the {cpu['cores']} cores at this load.",
    ]
    if NOTES.strip():
        lines += ["", NOTES.strip()]
    return "\n".join(lines)


def compare_report(runs, meta):
    lines = [f"### Worker model: sync or gthread on 2 cores",
             "",
             f"`bench/load.py --compare …` — {meta['date']}, the same load (-u {meta['users']} -r {meta['rate']}, "
             f"think time {meta['compare_wait']} s: more than this box can serve, so the models are compared at "
             f"saturation) for {meta['compare_duration']} per configuration, one after the other on the same data. "
             "gthread runs keep client connections alive for 75 s (locust connects directly; see bench/load.py).",
             "",
             "| gunicorn | requests | req/s | failures | median ms | p95 ms | p99 ms | steady req/s | steady p95 ms | "
             "CPU-s: gunicorn / PostgreSQL / other processes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in runs:
        a = c["all"]
        lines.append(f"| {c['label']} | {a['n']:,} | {a['rps']:.1f} | {a['fail']} | {fmt(a['median'])} | "
                     f"{fmt(a['p95'])} | {fmt(a['p99'])} | {c['steady']['rps']:.1f} | {fmt(c['steady']['p95'])} | "
                     f"{c['cpu']['gunicorn']:.0f} / {c['cpu']['postgresql']:.0f} / {c['cpu']['other']:.0f} |")
    return "\n".join(lines)


def publish(main_run, compare, meta, dry):
    markdown = report(main_run, meta)
    print(markdown)
    if compare:
        print(compare_report(compare, meta))
    if not dry:
        from bench.common import write_report
        write_report("load-cluster" if main_run.get("profile") == "cluster" else "load", markdown)
        if compare:
            write_report("load-workers", compare_report(compare, meta))
        log("docs/PERFORMANCE.md updated")


def parse_config(text):
    """sync:4 → ("sync", 4, 1); gthread:2x4 → ("gthread", 2, 4)."""
    kind, _, n = text.partition(":")
    workers, _, threads = n.partition("x")
    return kind, int(workers or 4), int(threads or 1)


def _terminate(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")    # runs the `finally`s: servers, worker, replica stop


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=("single", "cluster"), default="single",
                    help="single: one gunicorn (the default); cluster: two gunicorn servers with the replica, the "
                    "queue and a worker")
    ap.add_argument("--database-url", default=os.environ.get("LOAD_DATABASE_URL", DEFAULT_URL))
    ap.add_argument("--students", type=int, default=200_000, help="size for bench/generate.py (0: demo only)")
    ap.add_argument("--regenerate", action="store_true", help="generate afresh even if a matching province is there")
    ap.add_argument("--users", type=int, help="simulated users (default 50; 100 for the cluster profile)")
    ap.add_argument("--spawn-rate", type=int, default=10)
    ap.add_argument("--duration", default="60s")
    ap.add_argument("--wait", default="2,8", help="think time min,max seconds between a user's actions")
    ap.add_argument("--workers", type=int, help="gunicorn workers per server (default 4; 1 per server, one per "
                    "core, for the cluster profile)")
    ap.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--servers", type=int, default=2, help="cluster: gunicorn servers, each its own master and port")
    ap.add_argument("--replica-url", help="cluster: a streaming replica of --database-url's database managed "
                    "elsewhere (default: bench/replica.sh's on 127.0.0.1:5433, started if needed)")
    ap.add_argument("--keep-replica", action="store_true", help="cluster: leave a replica started here running")
    ap.add_argument("--queue-url", default=os.environ.get("LOAD_QUEUE_URL", DEFAULT_QUEUE_URL),
                    help="cluster: XUEJI_QUEUE_URL of the servers and the worker (the tests use Redis database 14)")
    ap.add_argument("--compare", help="also run these configurations first, e.g. sync:4,gthread:2x4,gthread:4x2")
    ap.add_argument("--compare-duration", default="20s")
    ap.add_argument("--compare-wait", default="1,3", help="think time of the comparison runs (more load than "
                    "the box can serve, so the worker models are compared at saturation)")
    ap.add_argument("--pending", type=int, default=80, help="pending requests per school and step before a run")
    ap.add_argument("--no-report", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    ap.add_argument("--rerender", metavar="SUMMARY_JSON", help="write the report of an earlier run again "
                    "(instance/load/runs/<time>/summary.json), e.g. after editing NOTES; runs nothing")
    args = ap.parse_args()
    if args.rerender:
        with open(args.rerender, encoding="utf-8") as f:
            saved = json.load(f)
        return publish(saved["main"], saved["compare"], saved["meta"], args.no_report)
    cluster = args.profile == "cluster"
    if cluster and args.compare:
        ap.error("--compare belongs to the single profile")
    if cluster and args.servers < 1:
        ap.error("--servers must be at least 1")
    users = args.users or (100 if cluster else 50)
    workers = args.workers or (1 if cluster else 4)
    signal.signal(signal.SIGTERM, _terminate)

    url = args.database_url
    if cluster:
        # files every server sees: the seeded evidence too (seed_pending builds the app in this process)
        os.environ["XUEJI_FILE_STORE"] = "database"
    ensure_database(url)
    os.makedirs(INSTANCE, exist_ok=True)
    source = fill(url, args.students, args.regenerate)
    log(f"data: {source}")
    pools, review_schools = pick_accounts(url)
    run_root = os.path.join(INSTANCE, "runs", datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(run_root, exist_ok=True)
    accounts_file = os.path.join(run_root, "accounts.json")
    with open(accounts_file, "w", encoding="utf-8") as f:
        json.dump(pools, f, ensure_ascii=False, indent=1)
    log("accounts: " + "; ".join(f"{k}: {', '.join(a['username'] for a in v)}" for k, v in pools.items()
                                 if k != "cohorts"))

    compare = []
    for cfg in filter(None, (args.compare or "").split(",")):
        n = seed_pending(url, review_schools, args.pending, args.pending)
        log(f"topped up {n} pending requests")
        compare.append(one_run(url, parse_config(cfg), users, args.spawn_rate, args.compare_duration,
                               args.compare_wait, accounts_file, run_root))
    n = seed_pending(url, review_schools, args.pending, args.pending)
    log(f"topped up {n} pending requests")
    before = data_size(url)
    if cluster:
        replica_url = args.replica_url or default_replica_url(url)
        replica = ReplicaControl(replica_url, managed=not args.replica_url, keep=args.keep_replica)
        try:
            replica.ensure()
            wait_replayed(url, replica_url)
            main_run = cluster_run(url, replica_url, args.queue_url, args.servers,
                                   (args.worker_class, workers, args.threads), users, args.spawn_rate,
                                   args.duration, args.wait, accounts_file, run_root)
        finally:
            replica.release()
    else:
        main_run = one_run(url, (args.worker_class, workers, args.threads), users, args.spawn_rate,
                           args.duration, args.wait, accounts_file, run_root)
    meta = {"date": datetime.now().strftime("%Y-%m-%d"), "machine": machine(), "versions": versions(url),
            "data_source": source, "size_before": before, "size_after": data_size(url), "users": users,
            "rate": args.spawn_rate, "duration": args.duration, "wait": args.wait.replace(",", "–"),
            "ramp": users / args.spawn_rate + 5, "compare_duration": args.compare_duration,
            "compare_wait": args.compare_wait.replace(",", "–"), "profile": args.profile,
            "database": database_name(url)}
    with open(os.path.join(run_root, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"main": main_run, "compare": compare, "meta": meta}, f, ensure_ascii=False)
    publish(main_run, compare, meta, args.no_report)
    log(f"run files: {run_root}")


if __name__ == "__main__":
    main()
