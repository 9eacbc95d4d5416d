"""The job queue (app/jobs.py, issue 17): with XUEJI_QUEUE_URL an Excel export is an RQ job that a separate
`flask --app run xueji worker` process writes, so it outlives the web process that started it; a worker killed in
the middle of a job has it retried (by itself or by a second worker) or, with no retries left, reported
interrupted, never left "running"; an unreachable queue refuses the export; without the setting exports run in a
thread of the web process as before.

Real Redis on 127.0.0.1:6379 (skipped when unreachable), database 14 (TEST_QUEUE_REDIS_URL), a queue of its own per
test; real worker processes on the SQLite database of the fixtures (never PostgreSQL/MariaDB)."""
import glob
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest
from sqlalchemy import select

from app import exportjobs, jobs
from app.extensions import db
from models import ExportJob
from tests.conftest import DEMO_PASSWORD, api_headers, export_xlsx, login

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REDIS_URL = os.environ.get("TEST_QUEUE_REDIS_URL", "redis://127.0.0.1:6379/14")   # 15 is test_security's (flushed)
RUN = uuid.uuid4().hex[:8]
SLOW = "0.15"         # XUEJI_EXPORT_ROW_DELAY for the runs a test kills: 38 rows take ~6 s


def until(check, timeout=60.0, every=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class Queue:
    """One test's queue: the web app that enqueues to it, and the worker processes that run its jobs."""

    def __init__(self, app, make_app, tmp_path, redis_client, **settings):
        self.app, self.tmp_path, self.redis = app, tmp_path, redis_client
        self.name = f"xueji-test-{RUN}-{uuid.uuid4().hex[:6]}"
        self.settings = {"XUEJI_QUEUE_URL": REDIS_URL, "XUEJI_QUEUE_NAME": self.name, "XUEJI_QUEUE_LEASE_SECONDS": 2,
                         "XUEJI_QUEUE_MAINTENANCE_SECONDS": 1, **settings}
        self.web = make_app(**self.settings)
        self.workers: list[subprocess.Popen] = []

    def env(self, **extra):
        return {**os.environ, "DATABASE_URL": self.app.config["SQLALCHEMY_DATABASE_URI"],
                "XUEJI_INSTANCE": self.app.config["XUEJI_TMP"],          # UPLOAD_FOLDER: the fixtures' uploads
                **{k: str(v) for k, v in self.settings.items()}, **{k: str(v) for k, v in extra.items()}}

    def worker(self, *options, **env) -> subprocess.Popen:
        """`flask --app run xueji worker` in the background (a session of its own: the test may kill it)."""
        log = open(self.tmp_path / f"worker-{len(self.workers)}.log", "w")
        proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "run", "xueji", "worker", *options],
                                cwd=ROOT, env=self.env(**env), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.workers.append(proc)
        return proc

    def burst(self, **env):
        """A worker that runs what is queued, then exits."""
        proc = self.worker("--burst", **env)
        assert proc.wait(120) == 0, self.logs()

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("worker-*.log")))

    def client(self, username="county_a_clerk"):
        c = self.web.test_client()
        assert login(c, username, DEMO_PASSWORD).status_code == 302
        return c

    def row(self, job_id) -> ExportJob:
        with self.app.app_context():
            job = db.session.get(ExportJob, job_id)
            db.session.expunge(job)
            db.session.remove()
            return job

    def file(self, job_id) -> str:
        return os.path.join(self.app.config["UPLOAD_FOLDER"], "exports", self.row(job_id).file_name)

    def rq_job(self, job_id):
        from rq.job import Job
        return Job.fetch(exportjobs.queue_id(self.row(job_id)), connection=self.redis)

    def close(self):
        for proc in self.workers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        with self.app.app_context():
            names = [exportjobs.queue_id(j) for j in db.session.scalars(select(ExportJob)) if j.file_name]
            db.session.remove()
        for pattern in [f"*{self.name}*", *(f"*{n}*" for n in names)]:
            for key in self.redis.scan_iter(pattern):
                self.redis.delete(key)
        self.redis.srem("rq:queues", f"rq:queue:{self.name}")
        for key in {*self.redis.smembers("rq:workers"), *self.redis.scan_iter("rq:worker:*")}:   # workers' records
            if self.redis.type(key) in (b"hash", b"none") and \
                    self.redis.hget(key, "queues") in (None, self.name.encode()):
                self.redis.delete(key)
                self.redis.srem("rq:workers", key)


@pytest.fixture
def redis_client(app):
    import redis
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        pytest.skip("the queue's worker processes use the fixtures' SQLite database only")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server on 127.0.0.1:6379 (.ci/run starts one)")
    return client


@pytest.fixture
def make_queue(app, world, make_app, tmp_path, redis_client):
    made = []

    def make(**settings):
        made.append(Queue(app, make_app, tmp_path, redis_client, **settings))
        return made[-1]
    yield make
    for queue in made:
        queue.close()
        print(queue.logs())                                       # shown when the test failed


def start_export(c, path="/student/export/xlsx"):
    resp = c.post(path)
    assert resp.status_code == 302 and "/exportjob/show/" in resp.headers["Location"], resp.status_code
    return int(re.search(r"/exportjob/show/(\d+)", resp.headers["Location"]).group(1))


def sheet_rows(c, job_id):
    from openpyxl import load_workbook
    status = c.get(f"/exportjob/status/{job_id}").get_json()
    assert status["state"] == "done", status
    ws = load_workbook(io.BytesIO(c.get(status["download"]).data)).worksheets[0]
    return [[cell.value for cell in row] for row in ws.iter_rows()]


def csv_rows(c, path):
    import csv
    return list(csv.reader(io.StringIO(c.get(path).get_data(as_text=True).lstrip("\ufeff"))))


def running_pid(q, job_id) -> int:
    """The process writing the export (a forking worker's work horse): its marker's scratch folder says."""
    pattern = os.path.join(q.app.config["UPLOAD_FOLDER"], "tmp", "*", f"export-{job_id}")
    marker = until(lambda: glob.glob(pattern), timeout=90, what="the export to start")[0]
    return int(os.path.basename(os.path.dirname(marker)).rpartition("-")[2])


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- the queue -------------------------------------------------------------------------------------------------

def test_an_export_button_enqueues_and_a_worker_process_writes_it(make_queue, world):
    """Enqueued (no thread in the web process, the job waits in Redis as "queued"), then written by `xueji
    worker`: the same rows as the screen's CSV (the worker rebuilt the spec from the view, labels and all), for the
    screen's button and for the API alike. A job already reported failed stays failed when a worker gets to it."""
    q = make_queue()
    c = q.client()
    query = f"_flt_0_school={world.schools['a1']}&_flt_0_status=在校"
    job_id = start_export(c, f"/student/export/xlsx?{query}")
    h = api_headers(c, "county_a_clerk")
    resp = c.post("/api/v1/student/export", headers=h)
    assert resp.status_code == 202, resp.get_json()
    api_job = resp.get_json()["id"]

    urls = q.web.url_map.bind("localhost")
    for jid, path in ((job_id, "/student/export/xlsx"), (api_job, "/api/v1/student/export")):
        assert jid not in exportjobs._threads
        assert not [t for t in threading.enumerate() if t.name.startswith(f"export-{jid}_")]
        rq_job = q.rq_job(jid)
        assert (rq_job.origin, rq_job.get_status(), rq_job.retries_left) == (q.name, "queued", 2)
        # picklable: the row id, the view that rebuilds the spec (not the spec: its formatters are functions), the
        # headers, the ids, the replica floor
        function, row_id, source, ids, _floor = rq_job.args
        assert (rq_job.func_name, function, row_id) == ("app.jobs._perform", "app.exportjobs.run", jid)
        assert source["view"] == urls.match(path, method="POST")[0].partition(".")[0]
        assert source["headers"][:2] == ["全国学籍号", "姓名"] and ids and all(isinstance(i, int) for i in ids)
    assert c.get(f"/exportjob/status/{job_id}").get_json()["state"] == "queued"   # waiting, not "interrupted"
    assert str(job_id) in c.get("/exportjob/list/").get_data(as_text=True)        # and the reaper leaves it so
    assert q.row(job_id).state == "queued"
    told = start_export(q.client("school_a1_clerk"))
    with q.app.app_context():
        exportjobs._set(told, state="failed", error=exportjobs.INTERRUPTED)      # as the reaper reports a job

    q.burst()
    assert q.row(told).state == "failed" and not os.path.exists(q.file(told))     # not revived by its run
    assert sheet_rows(c, job_id) == csv_rows(c, f"/student/export/csv?{query}")
    assert q.row(job_id).state == "done" and q.rq_job(job_id).get_status() == "finished"
    status = c.get(f"/api/v1/exportjob/{api_job}/status", headers=h).get_json()
    assert status["state"] == "done" and status["total"] == 38
    assert c.get(f"/api/v1/exportjob/{api_job}/file", headers=h).status_code == 200


WEB_PROCESS = r'''
import os, sys, time
sys.path.insert(0, os.environ["XUEJI_ROOT"])
from app import create_app
from tests.conftest import app_config, login
settings = {k: os.environ[k] for k in os.environ if k.startswith("XUEJI_QUEUE_")}
app = create_app(app_config(os.environ["DATABASE_URL"], os.environ["XUEJI_INSTANCE"], **settings))
client = app.test_client()
login(client, "county_a_clerk")
print(client.post("/student/export/xlsx").headers.get("Location"), flush=True)
time.sleep(600)
'''


def test_a_queued_export_outlives_the_web_process_that_started_it(make_queue, tmp_path):
    """The web worker that took the click is killed (a restart, --max-requests): the job lives in Redis and a
    worker writes it. (Embedded, the same kill leaves it interrupted: test_exports.py.)"""
    q = make_queue()
    script = tmp_path / "web.py"
    script.write_text(WEB_PROCESS)
    web = subprocess.Popen([sys.executable, str(script)], env=q.env(XUEJI_ROOT=ROOT), cwd=ROOT,
                           stdout=subprocess.PIPE, text=True)
    try:
        location = web.stdout.readline()
    finally:
        web.send_signal(signal.SIGKILL)
        web.wait(10)
    job_id = int(location.rstrip().rsplit("/", 1)[-1])
    c = q.client()
    c.get("/exportjob/list/")                                     # the reaper runs: the job is waiting, not failed
    assert q.row(job_id).state == "queued"
    q.burst()
    assert len(sheet_rows(c, job_id)) == 1 + 38


def test_a_killed_work_horse_is_retried_at_once(make_queue, world):
    """SIGKILL of the process writing the export (the forking worker's work horse, as the OOM killer would): the
    worker sees it die, the job goes back to "queued" and is written again from the start. The worker goes on
    with the next job (and conftest's export_xlsx waits for a queued export: exportjobs.wait polls its row)."""
    q = make_queue()
    q.worker(XUEJI_EXPORT_ROW_DELAY=SLOW)
    c = q.client()
    job_id = start_export(c)
    horse = running_pid(q, job_id)
    assert horse != q.workers[0].pid
    until(lambda: q.row(job_id).state == "running", what="running")
    kill(horse)
    until(lambda: q.row(job_id).state == "done", timeout=120, what="the retry to finish")
    assert q.rq_job(job_id).retries_left == 1                     # written by the retry
    assert len(sheet_rows(c, job_id)) == 1 + 38 and q.row(job_id).error is None
    _next, ws = export_xlsx(q.client("school_a1_clerk"), "/student/export/xlsx")
    assert ws.max_row == 1 + len(world.students["a1"])


def test_a_killed_worker_is_replaced_and_its_job_retried(make_queue):
    """The whole worker dies (worker and work horse: a machine or container gone). Nobody looks at the web pages;
    the next worker finds the run whose lease expired and retries it."""
    q = make_queue()
    first = q.worker(XUEJI_EXPORT_ROW_DELAY=SLOW)
    c = q.client()
    job_id = start_export(c)
    horse = running_pid(q, job_id)
    until(lambda: q.row(job_id).state == "running", what="running")
    kill(first.pid)
    kill(horse)
    first.wait(10)
    q.worker()
    exportjobs._enqueued[job_id] = q.web
    exportjobs.wait(job_id, timeout=120)                          # polls the row only: the workers do the rest
    assert q.row(job_id).state == "done", q.logs()
    assert q.rq_job(job_id).retries_left == 1
    assert len(sheet_rows(c, job_id)) == 1 + 38


def test_a_killed_worker_with_no_retries_left_is_reported_interrupted(make_queue):
    """XUEJI_QUEUE_RETRIES=0, an in-process worker (--simple) killed mid-job: 我的导出 reports the job failed as
    interrupted as soon as its lease expires (never "running" for ever), RQ records it failed, and the user may
    export again at once."""
    q = make_queue(XUEJI_QUEUE_RETRIES=0)
    worker = q.worker("--simple", XUEJI_EXPORT_ROW_DELAY=SLOW)
    c = q.client()
    job_id = start_export(c)
    assert running_pid(q, job_id) == worker.pid
    until(lambda: q.row(job_id).state == "running", what="running")
    kill(worker.pid)
    worker.wait(10)
    status = until(lambda: (s := c.get(f"/exportjob/status/{job_id}").get_json())["state"] != "running" and s,
                   timeout=30, what="the job to be reported")
    assert status["state"] == "failed" and "中断" in status["error"]
    job = q.row(job_id)
    assert job.state == "failed" and job.error == exportjobs.INTERRUPTED
    assert "失败" in c.get("/exportjob/list/").get_data(as_text=True)
    rq_job = q.rq_job(job_id)
    assert rq_job.get_status() == "failed" and rq_job.id in rq_job.failed_job_registry
    assert not glob.glob(os.path.join(q.app.config["UPLOAD_FOLDER"], "exports", f"{job_id}_*.part"))
    start_export(c)                                               # not counted as running any more


def test_a_run_whose_lease_is_taken_over_stops(make_queue):
    """A lease is held by one run at a time (a duplicate run of a job does nothing), and a run whose lease expired
    and was taken by another run stops at its next check instead of writing beside it."""
    q = make_queue()
    with q.web.app_context():
        lease = jobs._Lease(jobs._redis(), f"lease-test-{q.name}", ttl=1)
        assert lease.acquire()
        assert not jobs._Lease(jobs._redis(), f"lease-test-{q.name}", ttl=1).acquire()
        jobs._local.lease = lease
        try:
            jobs.check_lease()                                    # still ours
            q.redis.set(jobs._lease_key(f"lease-test-{q.name}"), "another run")
            until(lease.lost.is_set, timeout=5, what="the renewal to notice")
            with pytest.raises(jobs.LeaseLost):
                jobs.check_lease()
        finally:
            jobs._local.lease = None
            lease.stopped.set()


def test_an_unreachable_queue_refuses_the_export_and_says_so(app, world, make_app):
    """The queue is configured but its Redis does not answer: the user is told at once, and the job is recorded
    failed (not "queued" for ever)."""
    down = make_app(XUEJI_QUEUE_URL="redis://127.0.0.1:1/0")
    c = down.test_client()
    login(c, "county_a_clerk")
    page = c.post("/student/export/xlsx", follow_redirects=True).get_data(as_text=True)
    assert exportjobs.QUEUE_DOWN in page
    resp = c.post("/api/v1/student/export", headers=api_headers(c, "county_a_clerk"))
    assert resp.status_code == 503 and resp.get_json()["message"] == exportjobs.QUEUE_DOWN
    with app.app_context():
        rows = db.session.scalars(select(ExportJob)).all()
        assert len(rows) == 2 and {(j.state, j.error) for j in rows} == {("failed", exportjobs.QUEUE_DOWN)}


# --- embedded (no queue) ---------------------------------------------------------------------------------------

def test_without_a_queue_exports_run_in_a_thread_of_the_web_process(app, world, as_user):
    assert not jobs.configured(app)
    c = as_user("county_a_clerk")
    job_id = start_export(c)
    worker = exportjobs._threads[job_id]
    assert isinstance(worker, threading.Thread) and worker.name.startswith(f"export-{job_id}_")
    exportjobs.wait(job_id)
    assert len(sheet_rows(c, job_id)) == 1 + 38
    assert jobs.EXTENSION not in app.extensions                    # no Redis client was made
