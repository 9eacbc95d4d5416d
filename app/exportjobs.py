"""后台导出 (background export): a list of up to 100,000 rows becomes an .xlsx file without holding a request.

In the request, ``start`` freezes the screen's scoped, filtered query into its ordered ids (so the file holds
exactly what the user saw, within the user's scope), records the export in the audit log and hands the ids to
``run`` through app.jobs: a worker thread of the same process by default, or, with ``XUEJI_QUEUE_URL``, an RQ job
that a ``xueji worker`` process runs (it survives the web worker; the job carries the view's name, the headers,
the ids and the replica floor, and the worker rebuilds the spec from the view: formatters are functions). ``run``
writes the file chunk by chunk (app.exports) and reports progress in the export_job row, which every web worker
can read. The workbook is written to a ``.part`` in the process's own scratch folder (app.uploads) and then put in
the file store's "exports" area (app.filestore: UPLOAD_FOLDER/exports, or the database, which every server reads)
in one transaction with the job's "done": a job shown done always has its file.

A worker that dies is reported, never shown as running for ever. Embedded: its heartbeat stops, and a running job
leaves a marker in its process's scratch folder (app.uploads): a job whose process on this host is gone (a killed
or restarted worker) is failed at once, not after the heartbeat goes stale, so the user may export again straight
away; its scratch folder (its ``.part`` file with it) is removed. Queue: RQ and the run's lease decide (app.jobs);
a lost run is retried while it has retries left (the row goes back to "queued"), then failed as interrupted
(``lost``)."""
import dataclasses
import glob
import logging
import os
import socket
import threading
import time
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select, update

from app import audit, clock, filestore, jobs, replicas, uploads
from app.errors import RuleError
from app.service import service
from app.exports import MAX_ROWS, ExportSpec, export_rows, write_xlsx
from app.extensions import db
from models import ExportJob

log = logging.getLogger(__name__)
MAX_ACTIVE_PER_USER = 2
MAX_ACTIVE_TOTAL = 8                   # queued or running at once in the installation (embedded: each holds a
                                       # web worker's thread; queue: the queue's length)
MAX_KEPT_PER_USER = 20                 # finished files kept per user; older ones go first
STALE_AFTER = timedelta(minutes=2)     # no heartbeat for this long: the worker is gone
KEEP_FOR = timedelta(days=7)           # files are deleted after this
ACTIVE = ("queued", "running")
_threads: dict[int, threading.Thread] = {}    # embedded: this process's export threads (finished ones pruned later)
_enqueued: dict = {}                          # queue: job id → the app that enqueued it here (``wait``)


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def file_path(job: ExportJob, app=None) -> str:
    """Where the local store keeps the job's file (XUEJI_FILE_STORE=local only)."""
    return filestore.local_path("exports", job.file_name, app)


def send(job: ExportJob):
    """The finished workbook as a download (streamed from the store), or None: not done, or its file is gone."""
    if job.state != "done" or not job.file_name:
        return None
    return filestore.send("exports", job.file_name, mimetype=XLSX, as_attachment=True,
                          download_name=f"{job.title}-{job.id}.xlsx")


def start(session, user_id: int, spec: ExportSpec, id_query, title: str, filters: str = "") -> ExportJob:
    """Snapshot the ids of ``id_query`` (a scoped SELECT of the model's id, in screen order) and start writing:
    the job, its audit row and the purge of old exports are committed first (one service each), then the job is
    handed to app.jobs (a thread here, or the queue).

    Refused while the user already has MAX_ACTIVE_PER_USER exports running (a province user could otherwise tie
    up every worker), and with the queue configured but its Redis down (the job is then recorded failed)."""
    queued = jobs.configured()
    source = _spec_ref(spec) if queued else spec      # a spec no view gives is refused before anything is written
    job, ids = _create(session, user_id, spec, id_query, title, filters)
    purge_old(session)
    # the rows may come from a read replica that has replayed the user's own last write (app/replicas.py)
    args = (job.id, source, ids, replicas.floor_for_background())
    if not queued:
        for done in [k for k, t in _threads.items() if not t.is_alive()]:
            _threads.pop(done, None)
        _threads[job.id] = jobs.enqueue("app.exportjobs.run", *args, job_id=queue_id(job))
        return job
    try:
        jobs.enqueue("app.exportjobs.run", *args, job_id=queue_id(job), on_lost="app.exportjobs.lost")
    except jobs.Unavailable as exc:
        log.error("export job %s: the queue is unavailable (%s)", job.id, exc)
        _set(job.id, state="failed", error=QUEUE_DOWN, finished_at=clock.now())
        raise RuleError(QUEUE_DOWN, code="queue_unavailable", status=503)
    _enqueued[job.id] = current_app._get_current_object()
    while len(_enqueued) > 100:                        # a web process never waits: keep the newest only
        _enqueued.pop(next(iter(_enqueued)))
    return job


QUEUE_DOWN = "导出服务暂时不可用（任务队列无法连接），请稍后重试；如持续出现请联系系统管理员"


def queue_id(job: ExportJob) -> str | None:
    """The job's id in app.jobs (its thread's name, its RQ job): unique even if a database reuses row ids."""
    return f"export-{job.file_name.rsplit('.', 1)[0]}" if job.file_name else None


def _spec_of(view) -> ExportSpec | None:
    """What a view exports: a screen's ``export_spec()``, an API's ``export_spec_of``; None for other views."""
    from views.base import export_spec_of
    own = getattr(view, "export_spec", None)
    if callable(own):
        return own()
    if hasattr(view, "export_formatters") and getattr(view, "datamodel", None) is not None:
        return export_spec_of(view)
    return None


def _spec_ref(spec: ExportSpec) -> dict:
    """What a queued job carries instead of the spec (its formatters are functions, which are not pickled): the
    view that gives this spec (the request's own view first) and the headers as the user's language wrote them."""
    from flask import has_request_context, request
    mine = request.endpoint.partition(".")[0] if has_request_context() and request.endpoint else None
    for view in sorted(current_app.appbuilder.baseviews, key=lambda v: getattr(v, "endpoint", None) != mine):
        if getattr(getattr(view, "datamodel", None), "obj", None) is not spec.model:
            continue
        try:
            other = _spec_of(view)
        except Exception:                      # a view that cannot say what it exports gives nothing
            continue
        if other is not None and (other.columns, other.formatters) == (spec.columns, spec.formatters):
            return {"view": view.endpoint, "headers": [str(h) for h in spec.headers]}
    raise RuntimeError(f"export of {spec.model.__name__}: no view gives this spec, so a worker cannot rebuild it "
                       "(start queued exports from a view's export_spec())")


def _rebuild(ref: dict) -> ExportSpec:
    view = next((v for v in current_app.appbuilder.baseviews if getattr(v, "endpoint", None) == ref["view"]), None)
    spec = _spec_of(view) if view is not None else None
    if spec is None:
        raise LookupError(f"export view {ref['view']!r} not found")
    return dataclasses.replace(spec, headers=list(ref["headers"]))


@service
def _create(session, user_id: int, spec: ExportSpec, id_query, title: str, filters: str):
    reap(session)
    active = session.scalar(select(func.count()).select_from(ExportJob).where(
        ExportJob.user_id == user_id, ExportJob.state.in_(("queued", "running"))))
    if active >= MAX_ACTIVE_PER_USER:
        raise RuleError(f"您已有{active}个导出正在进行，请等它们完成后再导出", code="busy", status=429)
    everyone = session.scalar(select(func.count()).select_from(ExportJob).where(
        ExportJob.state.in_(("queued", "running"))))
    if everyone >= MAX_ACTIVE_TOTAL:
        raise RuleError("系统正在处理较多导出任务，请几分钟后再试", code="busy", status=429)
    _keep_latest(session, user_id, MAX_KEPT_PER_USER - 1)
    ids = list(session.scalars(id_query.limit(MAX_ROWS + 1)))
    truncated = 0
    if len(ids) > MAX_ROWS:
        ids = ids[:MAX_ROWS]
        total = session.scalar(select(func.count()).select_from(id_query.order_by(None).subquery()))
        truncated = total - MAX_ROWS
    job = ExportJob(user_id=user_id, title=title, entity=spec.model.__tablename__, fmt="xlsx",
                    filters=(filters or "")[:500], state="queued", total=len(ids), done=0, truncated=truncated,
                    created_at=clock.now(), heartbeat_at=clock.now())
    session.add(job)
    session.flush()
    job.file_name = f"{job.id}_{os.urandom(8).hex()}.xlsx"
    # logged against the export itself (export_job #id), never a row of the exported table: a student export
    # with job id 1 must not land in student 1's 修改记录
    audit.record(session, "export", entity="export_job", entity_id=str(job.id), field="xlsx",
                 new=f"{job.title}（{job.entity}）{job.filters} rows={len(ids)}")
    return job, ids


@service
def record_csv(session, actor, title: str, table: str, filters: str, id_query) -> list[int]:
    """A CSV export streams in its request: its ids, read now, and its line in the audit log — logged against the
    export (the list's name), never a row of the exported table."""
    ids = list(session.scalars(id_query.limit(MAX_ROWS)))
    audit.record(session, "export", entity="export", field="csv", new=f"{title}（{table}）{filters} rows={len(ids)}")
    return ids


def _set(job_id: int, only_active: bool = False, **values) -> None:
    """Progress goes through its own short transaction, apart from the session reading the rows. ``only_active``:
    leave a job that has finished meanwhile as it is."""
    stmt = update(ExportJob).where(ExportJob.id == job_id)
    if only_active:
        stmt = stmt.where(ExportJob.state.in_(ACTIVE))
    with db.engine.begin() as conn:
        conn.execute(stmt.values(heartbeat_at=clock.now(), **values))


def _marker(job_id: int, app=None) -> str:
    return os.path.join(uploads.scratch_dir(app), f"export-{job_id}")


FAILED = "导出失败，请稍后重试或缩小筛选范围；如反复出现请联系系统管理员"
TIMED_OUT = "导出超时，请缩小筛选范围后重新导出"


def run(job_id: int, source, ids: list[int], floor=None) -> None:
    """Write one export, in the app context app.jobs gives it (a thread of the web worker, or a queue worker).
    ``source`` is the spec itself (thread) or what ``_spec_ref`` made of it (queue). A job already reported failed
    (or deleted) is left alone: a retry never revives a job the user was told is interrupted."""
    app = current_app._get_current_object()
    marker = _marker(job_id, app)
    open(marker, "w").close()
    part = None
    try:
        job = db.session.get(ExportJob, job_id)
        if job is None or job.state not in ACTIVE:
            log.warning("export job %s is %s: not written", job_id, job.state if job else "gone")
            return
        name, title = job.file_name, job.title
        part = os.path.join(uploads.scratch_dir(app), f"{name}.part")
        db.session.rollback()
        spec = source if isinstance(source, ExportSpec) else _rebuild(source)
        _set(job_id, state="running", done=0)
        last = [0]

        def progress(done):
            jobs.check_lease()                 # queue: stop if another run has taken this job over
            if done - last[0] >= 5_000 or done == len(ids):
                last[0] = done
                _set(job_id, done=done)

        with replicas.replica_reads(floor):
            rows = export_rows(db.session, spec, ids, progress)
            delay = float(app.config.get("XUEJI_EXPORT_ROW_DELAY") or 0)
            written = write_xlsx(part, spec.headers, _slowly(rows, delay) if delay else rows, title)
        jobs.check_lease()
        _finish(job_id, name, part, written)
    except jobs.LeaseLost:     # its row belongs to the run that took over (or a retry: app.jobs)
        db.session.rollback()
        log.warning("export job %s: its lease was lost, this run stops", job_id)
        raise
    except Exception as exc:   # the user must see it failed, whatever the reason
        log.exception("export job %s failed", job_id)
        db.session.rollback()
        _set(job_id, state="failed", error=TIMED_OUT if jobs.is_timeout(exc) else FAILED, finished_at=clock.now())
    finally:
        db.session.remove()
        _remove(marker)
        if part:                # in this process's own folder: never another run's
            _remove(part)


def _finish(job_id: int, name: str, part: str, written: int) -> None:
    """The file into the store and the job "done" in one transaction, so no server ever shows a finished job
    without its file (a failure rolls both back: the job is then failed, its file gone)."""
    db.session.rollback()                 # the rows were read in a transaction of their own (maybe on a replica)
    filestore.put_file(db.session, "exports", name, part)
    db.session.execute(update(ExportJob).where(ExportJob.id == job_id).values(
        state="done", done=written, total=written, finished_at=clock.now(), heartbeat_at=clock.now()))
    db.session.commit()


def _slowly(rows, delay: float):
    """XUEJI_EXPORT_ROW_DELAY (tests only): a pause before each row, so that a test can kill a worker mid-job."""
    for row in rows:
        time.sleep(delay)
        yield row


def lost(job_id: int, source=None, ids=None, floor=None, *, retrying: bool) -> None:
    """app.jobs: a queued run of this export died (its worker was killed, its machine went away). Retried: the job
    is "queued" again from row 0; no retries left: failed as interrupted. A job that has finished stays as it is."""
    if retrying:
        _set(job_id, only_active=True, state="queued", done=0)
    else:
        _set(job_id, only_active=True, state="failed", error=INTERRUPTED, finished_at=clock.now())
    uploads.clean_scratch(current_app)    # the dead run's folder on this host, its .part with it


INTERRUPTED = "导出中断（服务重启或超时），请重新导出"


def _remove(pattern: str) -> None:
    for path in glob.glob(pattern):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _worker_alive(job: ExportJob) -> bool:
    """Whether the job's worker still runs: its thread here, its marker in a live process's scratch folder on this
    host, or (a worker on another server) a heartbeat within STALE_AFTER."""
    thread = _threads.get(job.id)
    if thread is not None and thread.is_alive():
        return True
    fresh = bool(job.heartbeat_at and clock.now() - job.heartbeat_at <= STALE_AFTER)
    host = socket.gethostname()
    for marker in glob.glob(os.path.join(uploads.scratch_root(), "*", f"export-{job.id}")):
        owner, _, pid = os.path.basename(os.path.dirname(marker)).rpartition("-")
        if owner == host and pid.isdigit():
            return uploads.alive(int(pid))
        return fresh
    return fresh                                  # not started yet (no marker), or its folder already cleaned


def _queued_alive(job: ExportJob) -> bool:
    """Queue: whether the job will still be written, by RQ and the run's lease (app.jobs.state). A lost run is
    taken back here at once: retried (the row is "queued" again) or, without retries left, failed (``lost``).
    While Redis does not answer, a queued job waits and a running one is judged as embedded ones are."""
    name = queue_id(job)
    if name is None:
        return _worker_alive(job)
    try:
        verdict = jobs.state(name)
        if verdict == "lost":
            jobs.recover(name)
            return _row(job.id)["state"] in ACTIVE
    except jobs.Unavailable as exc:
        log.warning("export job %s: the queue does not answer (%s)", job.id, exc)
        return job.state == "queued" or _worker_alive(job)
    return verdict in ("waiting", "running")


def _alive(job: ExportJob) -> bool:
    return _queued_alive(job) if jobs.configured() else _worker_alive(job)


def _row(job_id: int):
    with db.engine.connect() as conn:
        return conn.execute(select(ExportJob.state, ExportJob.error, ExportJob.done)
                            .where(ExportJob.id == job_id)).mappings().one()


def reap(session) -> list[int]:
    """Mark the jobs whose worker is gone as failed, everywhere they are listed (queue: a lost run with retries
    left is queued again instead); then clear the scratch folders of this host's dead processes, their partial
    files with them. Returns the ids reaped."""
    active = session.scalars(select(ExportJob).where(ExportJob.state.in_(ACTIVE))).all()
    dead = [job for job in active if not _alive(job)]
    for job in dead:
        _set(job.id, only_active=True, state="failed", error=INTERRUPTED, finished_at=clock.now())
    if dead or (active and jobs.configured()):
        session.expire_all()
    uploads.clean_scratch(current_app)
    return [job.id for job in dead]


def status(job: ExportJob) -> dict:
    """What the progress page shows. A job whose worker is gone is reported as interrupted."""
    state, error, done = job.state, job.error, job.done
    if state in ACTIVE:
        alive = _alive(job)
        if jobs.configured():                  # a lost run may have been queued again just now
            row = _row(job.id)
            state, error, done = row["state"], row["error"], row["done"]
        if state in ACTIVE and not alive:
            state, error = "failed", INTERRUPTED
    return {"id": job.id, "title": job.title, "state": state, "done": done, "total": job.total,
            "percent": 100 if state == "done" else (int(100 * done / job.total) if job.total else 0),
            "truncated": job.truncated, "limit": MAX_ROWS, "error": error}


def wait(job_id: int, timeout: float = 120) -> None:
    """Block until a job started by this process has finished (the CLI and tests use it): its thread, or, queued,
    until its row is no longer queued or running."""
    worker = _threads.get(job_id)
    if worker is not None:
        worker.join(timeout)
        return
    app = _enqueued.pop(job_id, None)
    if app is None:
        return
    deadline = time.monotonic() + timeout
    with app.app_context():
        while time.monotonic() < deadline and _row(job_id)["state"] in ACTIVE:
            time.sleep(0.1)


def _keep_latest(session, user_id: int, n: int) -> None:
    """Delete the user's finished exports beyond the newest n (files and rows, in the caller's transaction)."""
    extra = session.scalars(select(ExportJob).where(ExportJob.user_id == user_id,
                                                    ExportJob.state.in_(("done", "failed")))
                            .order_by(ExportJob.id.desc()).offset(n)).all()
    for job in extra:
        if job.file_name:
            filestore.delete(session, "exports", job.file_name)
    if extra:
        session.execute(delete(ExportJob).where(ExportJob.id.in_([j.id for j in extra])))


@service
def purge_old(session) -> None:
    """Delete files and rows of exports older than KEEP_FOR (called whenever an export starts) and, in the local
    store, ``.part`` files in its folder that no running job owns (a copy cut short, or left by older versions)."""
    old = session.scalars(select(ExportJob).where(ExportJob.created_at < clock.now() - KEEP_FOR)).all()
    for job in old:
        if job.file_name:
            filestore.delete(session, "exports", job.file_name)
    if filestore.kind() == "local":
        running = {j.file_name for j in session.scalars(select(ExportJob).where(
            ExportJob.state.in_(("queued", "running"))))}
        for stray in glob.glob(os.path.join(filestore.local_folder("exports"), "*.part")):
            if os.path.basename(stray)[:-len(".part")] not in running:
                _remove(stray)
    if old:
        session.execute(delete(ExportJob).where(ExportJob.id.in_([j.id for j in old])))
        session.commit()
