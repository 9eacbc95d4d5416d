"""后台任务 (background tasks): the large admission and roster checks, their commit and import, and 问题学籍 detection
over a scope run on the job queue (app.jobs) instead of inside the web request (issue 17). Small files keep the
synchronous path: ``background(rows)`` says which is which (``XUEJI_BACKGROUND_ROWS``).

One mechanism for every kind:

- ``start(session, actor, kind, target, total, options)`` adds a ``background_task`` row (models/tasks.py) inside the
  caller's service transaction and enqueues ``app.tasks.run(task_id)`` only once that transaction commits (a refused
  upload starts nothing, and the job never runs before its batch is visible). While a task of the same kind and
  target is live, that one is returned instead; UNIQUE(kind, target, live) settles two requests at the same moment.
- ``run`` re-reads everything by id: the task, the account that asked, the batch. The kind's handler (``KINDS``)
  calls the same service the request would have called, which checks that account's authority again, and records
  the outcome on the task in the service's own transaction (``finish``): the work and "完成" commit together. A
  retry after a kill therefore either redoes work that never committed, or finds the task ended and does nothing:
  an admission list is never admitted twice, a roster never imported twice. A task reported failed meanwhile
  (interrupted) is never completed by a late run: ``finish`` finds it ended and the work rolls back.
- Progress (step, done/total) and heartbeats go through their own short transactions, as for exports, so every web
  worker can show them; a page polls ``status``.
- A dead run is never shown running for ever. Queue: app.jobs' lease and ``on_lost`` (``lost``) retry it (the task
  is 排队中 again) or fail it. Embedded: a task whose thread, or whose process on this host, is gone, or whose
  heartbeat is stale, is failed as interrupted when someone looks (``status``), and may be started again at once.
"""
import contextlib
import glob
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from flask import current_app
from sqlalchemy import event, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session
from werkzeug.utils import import_string

from app import clock, jobs, uploads
from app.errors import RuleError
from app.extensions import db
from app.service import service
from models.tasks import DONE, FAILED, QUEUED, RUNNING, BackgroundTask

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=2)     # embedded, another host: no heartbeat for this long and the run is gone
HEARTBEAT_SECONDS = 20
PROGRESS_SECONDS = 0.5                 # progress is written at most this often (and at the end)
PENDING = "xueji_new_tasks"            # session.info: tasks to enqueue once the transaction commits
QUEUE_DOWN = "后台任务服务暂时不可用（任务队列无法连接），请稍后重试；如持续出现请联系系统管理员"


@dataclass(frozen=True)
class Kind:
    handler: str        # "app.admissions.check_task": handler(session, actor, task, progress)
    doing: str          # what the page says while it runs
    verb: str           # 校验, 提交, 导入, 检测
    unit: str = "行"    # what done/total count

    @property
    def interrupted(self) -> str:
        return f"{self.verb}中断（服务重启或超时），请重新{self.verb}"

    @property
    def failed(self) -> str:
        return f"{self.verb}失败（系统出错），请重新{self.verb}；如反复出现请联系系统管理员"

    @property
    def timed_out(self) -> str:
        return f"{self.verb}超时，请稍后重新{self.verb}；如反复超时请联系系统管理员"


KINDS = {
    "admission_check": Kind("app.admissions.check_task", "校验中…", "校验"),
    "admission_commit": Kind("app.admissions.commit_task", "提交中…", "提交"),
    "roster_check": Kind("app.rosters.check_task", "校验中…", "校验"),
    "roster_import": Kind("app.rosters.import_task", "导入中…", "导入"),
    "detect": Kind("app.problems.detect_task", "检测中…", "检测", "条学籍"),
}

_threads: dict[int, threading.Thread] = {}    # embedded: this process's task threads (liveness, tests)


class Superseded(Exception):
    """The task ended while this run worked (reported interrupted, or finished by another run): its work rolls
    back."""


@dataclass(frozen=True)
class Task:
    """What a handler gets: the task as it was read when the run started."""
    id: int
    kind: str
    target: str
    total: int
    user_id: int | None
    options: dict = field(default_factory=dict)


def threshold(app=None) -> int:
    return int((app or current_app).config.get("XUEJI_BACKGROUND_ROWS", 2000))


def background(rows: int) -> bool:
    """Whether work over this many rows goes to a background task (``XUEJI_BACKGROUND_ROWS``)."""
    return rows > threshold()


def may(actor, permission: str, view: str) -> bool:
    """Whether an account, active now, holds a permission (its roles, as the pages' @has_access asks): a job asks it
    again when it runs, since the account may have been disabled or lost the role since the click."""
    if actor is None or not getattr(actor, "is_active", False):
        return False
    return current_app.appbuilder.sm._has_view_access(actor, permission, view)


# --- starting ----------------------------------------------------------------------------------------------------

def start(session, actor, kind: str, target, total: int = 0, options: dict | None = None) -> BackgroundTask:
    """Add the task in the caller's transaction; it is enqueued when that transaction commits. A live task of the
    same kind and target is returned instead (a dead one is failed as interrupted first, in this transaction)."""
    target = str(target)
    current = live_task(session, kind, target)
    if current is not None:
        if _alive(current):
            return current
        _end_in(session, current.id, FAILED, KINDS[kind].interrupted)
    now = clock.now()
    task = BackgroundTask(kind=kind, target=target, state=QUEUED, live=1, total=total, done=0,
                          options=json.dumps(options or {}, ensure_ascii=False), user_id=getattr(actor, "id", None),
                          queue_id=f"task-{kind}-{uuid.uuid4().hex[:16]}", created_at=now, heartbeat_at=now)
    try:
        with session.begin_nested():
            session.add(task)
            session.flush()
    except IntegrityError:      # another request started it a moment ago (UNIQUE kind, target, live): that one runs
        other = live_task(session, kind, target)
        if other is None:
            raise
        return other
    session.info.setdefault(PENDING, []).append((task.id, task.queue_id))
    return task


def _enqueue_committed(session) -> None:
    for task_id, queue_id in session.info.pop(PENDING, ()):
        _enqueue(task_id, queue_id)


def _forget(session) -> None:
    session.info.pop(PENDING, None)


def _enqueue(task_id: int, queue_id: str) -> None:
    if not jobs.configured():
        for done in [k for k, t in _threads.items() if not t.is_alive()]:
            _threads.pop(done, None)
        _threads[task_id] = jobs.enqueue("app.tasks.run", task_id, job_id=queue_id)
        return
    try:
        jobs.enqueue("app.tasks.run", task_id, job_id=queue_id, on_lost="app.tasks.lost")
    except jobs.Unavailable as exc:     # the page shows it failed, with 重新校验: never 排队中 for ever
        log.error("task %s: the queue is unavailable (%s)", task_id, exc)
        _end(task_id, FAILED, QUEUE_DOWN)


if not event.contains(Session, "after_commit", _enqueue_committed):
    event.listen(Session, "after_commit", _enqueue_committed)
    event.listen(Session, "after_rollback", _forget)


# --- reading -----------------------------------------------------------------------------------------------------

def live_task(session, kind: str, target) -> BackgroundTask | None:
    return session.scalars(select(BackgroundTask).where(BackgroundTask.kind == kind,
                                                        BackgroundTask.target == str(target),
                                                        BackgroundTask.live == 1)).first()


def latest(session, kinds, target) -> BackgroundTask | None:
    """The newest task of these kinds for a target (live or ended): what its page shows."""
    return session.scalars(select(BackgroundTask).where(BackgroundTask.kind.in_(list(kinds)),
                                                        BackgroundTask.target == str(target))
                           .order_by(BackgroundTask.id.desc()).limit(1)).first()


def status(task: BackgroundTask) -> dict:
    """What a page shows of a task. A live task whose run is gone is failed as interrupted first (or, queued with
    retries left, is 排队中 again)."""
    if task.live and not _alive(task):
        _end(task.id, FAILED, KINDS[task.kind].interrupted)
    row = _row(task.id) if task.live else task
    kind = KINDS[task.kind]
    return {"id": task.id, "kind": task.kind, "state": row.state, "live": bool(row.live), "doing": kind.doing,
            "verb": kind.verb, "unit": kind.unit, "step": row.step or "", "done": row.done, "total": row.total,
            "percent": 100 if row.state == DONE else (min(100, int(100 * row.done / row.total)) if row.total else 0),
            "message": row.message or "", "finished_at": row.finished_at.isoformat(sep=" ", timespec="seconds")
            if row.finished_at else None}


def _row(task_id: int):
    with db.engine.connect() as conn:
        return conn.execute(select(BackgroundTask.__table__).where(BackgroundTask.id == task_id)).one()


def wait(task_id: int, timeout: float = 120, app=None) -> None:
    """Block until a task has ended (tests): its thread here, else until its row, read in ``app``'s context (or
    the current one), is no longer live."""
    thread = _threads.get(task_id)
    if thread is not None:
        thread.join(timeout)
        return
    deadline = time.monotonic() + timeout
    with app.app_context() if app is not None else contextlib.nullcontext():
        while time.monotonic() < deadline and _row(task_id).live:
            time.sleep(0.05)


# --- is its run alive? -------------------------------------------------------------------------------------------

def _alive(task: BackgroundTask) -> bool:
    if jobs.configured() and task.queue_id:
        return _queued_alive(task)
    return _local_alive(task)


def _queued_alive(task: BackgroundTask) -> bool:
    """Queue: RQ and the run's lease decide (app.jobs.state); a lost run is taken back here (retried or failed by
    ``lost``). While Redis does not answer, the task is judged as an embedded one."""
    try:
        verdict = jobs.state(task.queue_id)
        if verdict == "lost":
            jobs.recover(task.queue_id)
            return bool(_row(task.id).live)
    except jobs.Unavailable as exc:
        log.warning("task %s: the queue does not answer (%s)", task.id, exc)
        return task.state == QUEUED or _local_alive(task)
    if verdict == "ended" and task.state == QUEUED and clock.now() - task.created_at < timedelta(seconds=10):
        return True              # committed a moment ago, enqueued next
    return verdict in ("waiting", "running")


def _local_alive(task: BackgroundTask) -> bool:
    """Embedded: its thread here, its marker in a live process's scratch folder on this host, or (a process on
    another server) a heartbeat within STALE_AFTER."""
    thread = _threads.get(task.id)
    if thread is not None and thread.is_alive():
        return True
    host = socket.gethostname()
    for marker in glob.glob(os.path.join(uploads.scratch_root(), "*", f"task-{task.id}")):
        owner, _, pid = os.path.basename(os.path.dirname(marker)).rpartition("-")
        if owner == host and pid.isdigit():
            return uploads.alive(int(pid))
    beat = task.heartbeat_at or task.created_at
    return bool(beat and clock.now() - beat <= STALE_AFTER)


# --- writing the row ---------------------------------------------------------------------------------------------

def _set(task_id: int, **values) -> int:
    """Progress and state go through their own short transaction (every web worker reads them); a task that has
    ended is left as it is."""
    with db.engine.begin() as conn:
        return conn.execute(update(BackgroundTask).where(BackgroundTask.id == task_id, BackgroundTask.live == 1)
                            .values(heartbeat_at=clock.now(), **values)).rowcount


def _ended(state: str, message: str | None) -> dict:
    return dict(state=state, live=None, message=(message or "")[:500] or None, finished_at=clock.now())


def _end(task_id: int, state: str, message: str | None) -> None:
    _set(task_id, **_ended(state, message))


def _end_in(session, task_id: int, state: str, message: str | None) -> int:
    return session.execute(update(BackgroundTask).where(BackgroundTask.id == task_id, BackgroundTask.live == 1)
                           .values(**_ended(state, message))).rowcount


def finish(session, task: Task, message: str) -> None:
    """Record the outcome in the session's transaction (the work's own): both commit together, or neither. A task
    that ended meanwhile (reported interrupted) is not completed: Superseded rolls the work back."""
    _pause("before its outcome commits")
    jobs.check_lease()
    if _end_in(session, task.id, DONE, message) != 1:
        raise Superseded()
    session.execute(update(BackgroundTask).where(BackgroundTask.id == task.id).values(done=BackgroundTask.total))


@service
def conclude(session, task: Task, message: str) -> None:
    """End a task that has nothing to do (its batch moved on meanwhile) with a message, in a transaction of its
    own."""
    finish(session, task, message)


class Progress:
    """What a handler reports while it works: ``step("写入")``, ``progress(done)``. Written at most every
    PROGRESS_SECONDS; every call also stops a run whose lease another run has taken (app.jobs)."""

    def __init__(self, task_id: int, total: int):
        self.task_id, self.total, self.last = task_id, total, 0.0

    def step(self, text: str, total: int | None = None) -> None:
        if total is not None:
            self.total = total
        self._write(step=text[:40], **({"total": total} if total is not None else {}))

    def __call__(self, done: int) -> None:
        jobs.check_lease()
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS or done >= self.total:
            self.last = now
            self._write(done=min(done, self.total) if self.total else done)

    def _write(self, **values) -> None:
        try:
            _set(self.task_id, **values)
        except DBAPIError as exc:       # best effort: SQLite may be locked by the task's own write
            log.warning("task %s: progress not written (%s)", self.task_id, exc)


# --- running -----------------------------------------------------------------------------------------------------

def run(task_id: int) -> None:
    """One task, in the app context app.jobs gives it (a thread of the web worker, or a queue worker)."""
    from models import XuejiUser
    app = current_app._get_current_object()
    marker = os.path.join(uploads.scratch_dir(app), f"task-{task_id}")
    open(marker, "w").close()
    beat = _Heartbeat(app, task_id)
    task = None
    try:
        task = _task(task_id)
        if task is None:
            return
        if not _set(task_id, state=RUNNING, started_at=clock.now(), done=0, step=None):
            return
        beat.start()
        _pause("before it works")
        actor = db.session.get(XuejiUser, task.user_id) if task.user_id else None
        if actor is None:
            raise RuleError("发起该任务的账号已不存在，任务未执行", code="forbidden", status=403)
        import_string(KINDS[task.kind].handler)(db.session, actor, task, Progress(task_id, task.total))
        _end(task_id, DONE, None)          # a handler that recorded nothing: ended all the same
    except Superseded:
        log.warning("task %s ended while it ran: its work was rolled back", task_id)
    except jobs.LeaseLost:                 # another run owns the task now (app.jobs)
        log.warning("task %s: its lease was lost, this run stops", task_id)
        raise
    except RuleError as exc:               # refused (authority lost, nothing valid …): the user is told why
        db.session.rollback()
        _end(task_id, FAILED, exc.message)
    except Exception as exc:               # the user must see it failed, whatever the reason
        log.exception("task %s failed", task_id)
        db.session.rollback()
        kind = KINDS.get(task.kind if task else "", KINDS["admission_check"])
        _end(task_id, FAILED, kind.timed_out if jobs.is_timeout(exc) else kind.failed)
    finally:
        beat.stop()
        db.session.remove()
        try:
            os.remove(marker)
        except FileNotFoundError:
            pass


def _task(task_id: int) -> Task | None:
    """The task as stored; None when it is gone or has ended (a retry of a finished task does nothing)."""
    try:
        row = _row(task_id)
    except Exception:
        log.warning("task %s is gone: not run", task_id)
        return None
    if not row.live:
        log.warning("task %s is %s: not run again", task_id, row.state)
        return None
    return Task(row.id, row.kind, row.target, row.total, row.user_id, json.loads(row.options or "{}"))


def _pause(where: str) -> None:
    """XUEJI_TASK_DELAY (tests only): a pause before a task works and before its outcome commits, so that a test
    can kill its worker or take the account's authority away mid-task."""
    delay = float(current_app.config.get("XUEJI_TASK_DELAY") or 0)
    if delay:
        log.info("task pauses %s s %s", delay, where)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:
            jobs.check_lease()
            time.sleep(0.05)


class _Heartbeat:
    """Writes the running task's heartbeat_at every HEARTBEAT_SECONDS (another server tells a live run by it)."""

    def __init__(self, app, task_id: int):
        self.app, self.task_id, self.stopped = app, task_id, threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._beat, name=f"heartbeat-task-{self.task_id}", daemon=True).start()

    def _beat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                with self.app.app_context():
                    _set(self.task_id)
            except DBAPIError as exc:
                log.warning("task %s: heartbeat not written (%s)", self.task_id, exc)

    def stop(self) -> None:
        self.stopped.set()


def lost(task_id: int, *, retrying: bool) -> None:
    """app.jobs: a queued run of this task died (its worker was killed, its machine went away). Retried: 排队中
    again; no retries left: failed as interrupted. A task that has ended stays as it is."""
    if retrying:
        _set(task_id, state=QUEUED, done=0, step=None)
        return
    kind = KINDS.get(_row(task_id).kind, KINDS["admission_check"])
    _end(task_id, FAILED, kind.interrupted)

