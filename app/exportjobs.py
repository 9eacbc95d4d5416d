"""后台导出 (background export): a list of up to 100,000 rows becomes an .xlsx file without holding a request.

In the request, ``start`` freezes the screen's scoped, filtered query into its ordered ids (so the file holds
exactly what the user saw, within the user's scope), records the export in the audit log and hands the ids to
a worker thread of the same process. The worker writes the file chunk by chunk (app.exports) and reports
progress in the export_job row, which every web worker can read; the file goes to UPLOAD_FOLDER/exports (shared
storage in a multi-server deployment). A worker that dies leaves a job whose heartbeat stops: it is reported
as interrupted, never as running for ever. A running job also leaves a marker in its process's scratch folder
(app.uploads): a job whose process on this host is gone (a killed or restarted worker) is failed at once, not
after the heartbeat goes stale, so the user may export again straight away; its ``.part`` file is removed."""
import glob
import logging
import os
import socket
import threading
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select, update

from app import audit, clock, replicas, uploads
from app.errors import RuleError
from app.service import service
from app.exports import MAX_ROWS, ExportSpec, export_rows, write_xlsx
from app.extensions import db
from models import ExportJob

log = logging.getLogger(__name__)
MAX_ACTIVE_PER_USER = 2
MAX_ACTIVE_TOTAL = 8                   # running at once in the installation (each holds a worker thread)
MAX_KEPT_PER_USER = 20                 # finished files kept per user; older ones go first
STALE_AFTER = timedelta(minutes=2)     # no heartbeat for this long: the worker is gone
KEEP_FOR = timedelta(days=7)           # files are deleted after this
_threads: dict[int, threading.Thread] = {}


def folder(app=None) -> str:
    path = os.path.join((app or current_app).config["UPLOAD_FOLDER"], "exports")
    os.makedirs(path, exist_ok=True)
    return path


def file_path(job: ExportJob, app=None) -> str:
    return os.path.join(folder(app), job.file_name)


def start(session, user_id: int, spec: ExportSpec, id_query, title: str, filters: str = "") -> ExportJob:
    """Snapshot the ids of ``id_query`` (a scoped SELECT of the model's id, in screen order) and start writing:
    the job, its audit row and the purge of old exports are committed first (one service each), then the worker
    thread starts.

    Refused while the user already has MAX_ACTIVE_PER_USER exports running (a province user could otherwise tie
    up every worker)."""
    job, ids = _create(session, user_id, spec, id_query, title, filters)
    purge_old(session)
    app = current_app._get_current_object()
    # the rows may come from a read replica that has replayed the user's own last write (app/replicas.py)
    worker = threading.Thread(target=_run, args=(app, job.id, ids, spec, replicas.floor_for_background()),
                              name=f"export-{job.id}", daemon=True)
    _threads[job.id] = worker
    worker.start()
    return job


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


def _set(job_id: int, **values) -> None:
    """Progress goes through its own short transaction, apart from the session reading the rows."""
    with db.engine.begin() as conn:
        conn.execute(update(ExportJob).where(ExportJob.id == job_id).values(heartbeat_at=clock.now(), **values))


def _marker(job_id: int, app=None) -> str:
    return os.path.join(uploads.scratch_dir(app), f"export-{job_id}")


def _run(app, job_id: int, ids: list[int], spec: ExportSpec, floor=None) -> None:
    with app.app_context():
        marker = _marker(job_id, app)
        open(marker, "w").close()
        try:
            job = db.session.get(ExportJob, job_id)
            path, title = file_path(job, app), job.title
            db.session.rollback()
            _set(job_id, state="running")
            last = [0]

            def progress(done):
                if done - last[0] >= 5_000 or done == len(ids):
                    last[0] = done
                    _set(job_id, done=done)

            with replicas.replica_reads(floor):
                written = write_xlsx(path + ".part", spec.headers, export_rows(db.session, spec, ids, progress),
                                     title)
            os.replace(path + ".part", path)
            _set(job_id, state="done", done=written, total=written, finished_at=clock.now())
        except Exception:   # the user must see it failed, whatever the reason
            log.exception("export job %s failed", job_id)
            db.session.rollback()
            _set(job_id, state="failed", error="导出失败，请稍后重试或缩小筛选范围；如反复出现请联系系统管理员",
                 finished_at=clock.now())
        finally:
            db.session.remove()
            _threads.pop(job_id, None)
            _remove(marker)
            _remove(os.path.join(folder(app), f"{job_id}_*.part"))


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
    if job.id in _threads:
        return True
    fresh = bool(job.heartbeat_at and clock.now() - job.heartbeat_at <= STALE_AFTER)
    host = socket.gethostname()
    for marker in glob.glob(os.path.join(uploads.scratch_root(), "*", f"export-{job.id}")):
        owner, _, pid = os.path.basename(os.path.dirname(marker)).rpartition("-")
        if owner == host and pid.isdigit():
            return uploads.alive(int(pid))
        return fresh
    return fresh                                  # not started yet (no marker), or its folder already cleaned


def reap(session) -> list[int]:
    """Mark the jobs whose worker is gone as failed, everywhere they are listed, and remove their partial files;
    then clear the scratch folders of dead processes. Returns the ids reaped."""
    dead = [job for job in session.scalars(select(ExportJob).where(ExportJob.state.in_(("queued", "running"))))
            if not _worker_alive(job)]
    for job in dead:
        _set(job.id, state="failed", error=INTERRUPTED, finished_at=clock.now())
        if job.file_name:
            _remove(file_path(job) + ".part")
    if dead:
        session.expire_all()
    uploads.clean_scratch(current_app)
    return [job.id for job in dead]


def status(job: ExportJob) -> dict:
    """What the progress page shows. A job whose worker is gone is reported as interrupted."""
    state, error = job.state, job.error
    if state in ("queued", "running") and not _worker_alive(job):
        state, error = "failed", INTERRUPTED
    return {"id": job.id, "title": job.title, "state": state, "done": job.done, "total": job.total,
            "percent": 100 if state == "done" else (int(100 * job.done / job.total) if job.total else 0),
            "truncated": job.truncated, "limit": MAX_ROWS, "error": error}


def wait(job_id: int, timeout: float = 120) -> None:
    """Block until a job of this process has finished (the CLI and tests use it)."""
    worker = _threads.get(job_id)
    if worker is not None:
        worker.join(timeout)


def _keep_latest(session, user_id: int, n: int) -> None:
    """Delete the user's finished exports beyond the newest n (files and rows)."""
    extra = session.scalars(select(ExportJob).where(ExportJob.user_id == user_id,
                                                    ExportJob.state.in_(("done", "failed")))
                            .order_by(ExportJob.id.desc()).offset(n)).all()
    for job in extra:
        if job.file_name:
            _remove(file_path(job))
    if extra:
        session.execute(delete(ExportJob).where(ExportJob.id.in_([j.id for j in extra])))


@service
def purge_old(session) -> None:
    """Delete files and rows of exports older than KEEP_FOR (called whenever an export starts), and ``.part``
    files no running job owns."""
    old = session.scalars(select(ExportJob).where(ExportJob.created_at < clock.now() - KEEP_FOR)).all()
    for job in old:
        if job.file_name:
            _remove(file_path(job))
            _remove(file_path(job) + ".part")
    running = {j.file_name for j in session.scalars(select(ExportJob).where(
        ExportJob.state.in_(("queued", "running"))))}
    for part in glob.glob(os.path.join(folder(), "*.part")):
        if os.path.basename(part)[:-len(".part")] not in running:
            _remove(part)
    if old:
        session.execute(delete(ExportJob).where(ExportJob.id.in_([j.id for j in old])))
        session.commit()
