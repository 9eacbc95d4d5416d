"""Background jobs: ``enqueue("app.module.function", *args)`` runs the function later, inside an app context.

- Embedded (the default, ``XUEJI_QUEUE_URL`` unset; SQLite, no Redis): a daemon thread of the web process that
  enqueued it, as exports always ran. A restarted web worker takes its threads with it.
- Queue (``XUEJI_QUEUE_URL=redis://host:6379/1``): an RQ job on the queue ``XUEJI_QUEUE_NAME`` ("xueji"), run by
  ``flask --app run xueji worker`` processes (``work``) on any host, with ``XUEJI_QUEUE_RETRIES`` retries and a
  ``XUEJI_QUEUE_JOB_TIMEOUT``. The job lives in Redis, so it survives the web worker that enqueued it. Its
  arguments are pickled: ids, names and numbers, never functions (an export carries its view's name, not its spec).

A run that dies (its worker killed, OOM, the machine gone) is never lost silently:

- the run holds a lease in Redis (``xueji:lease:<job id>``, ``XUEJI_QUEUE_LEASE_SECONDS``, renewed by a thread of
  the run every third of that); an RQ job that RQ says is started but whose lease has expired is *lost*.
  ``state`` says so, and ``recover`` (the web's 我的导出 pages, and every worker at start and every
  ``XUEJI_QUEUE_MAINTENANCE_SECONDS``) takes it out of RQ's started registry and retries it if it has retries
  left, else records it failed. The forking worker's "work horse killed" handler (at once) and RQ's own
  abandoned-job handling (the ``on_failure`` callback ``_failed``, once RQ's heartbeat of the run has expired:
  about 90 s for a forking worker, the job timeout for ``--simple``) end the same way;
- either way the job's ``on_lost(*args, retrying=…)`` runs first, so its own rows say "queued again" or "failed";
- a lease is taken with SET NX, so two runs of one job never write at once (a duplicate run does nothing), and a
  run whose lease was taken over stops at its next ``check_lease()``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
from datetime import datetime, timezone

import redis
from flask import current_app, has_app_context
from werkzeug.utils import import_string

log = logging.getLogger(__name__)

EXTENSION = "xueji_jobs"              # app.extensions[EXTENSION]: the Redis client of the queue
LEASE_PREFIX = "xueji:lease:"
WAITING = frozenset({"queued", "scheduled", "deferred", "created"})


class Unavailable(Exception):
    """The queue's Redis does not answer."""


class LeaseLost(Exception):
    """Another run has taken this job over (this run's lease expired): stop without touching its results."""


def configured(app=None) -> bool:
    return bool((app or current_app).config.get("XUEJI_QUEUE_URL"))


def _config(name, default):
    return current_app.config.get(name, default)


def _redis() -> redis.Redis:
    client = current_app.extensions.get(EXTENSION)
    if client is None:
        # short timeouts in the web: a Redis that does not answer must not hold a request for long
        client = redis.Redis.from_url(current_app.config["XUEJI_QUEUE_URL"], socket_connect_timeout=2,
                                      socket_timeout=10, health_check_interval=30)
        current_app.extensions[EXTENSION] = client
    return client


def _queue(name: str | None = None):
    from rq import Queue
    return Queue(name or _config("XUEJI_QUEUE_NAME", "xueji"), connection=_redis())


@contextlib.contextmanager
def _unavailable():
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise Unavailable(str(exc)) from exc


# --- enqueue -----------------------------------------------------------------------------------------------

def enqueue(function_path: str, *args, job_id: str | None = None, on_lost: str | None = None):
    """Run ``function_path(*args)`` in the background, inside an app context. Returns the started thread
    (embedded) or the RQ job's id (queue; ``job_id`` when given: no ":" in it). ``on_lost`` (queue only) names a
    function called as ``on_lost(*args, retrying=bool)`` when a run dies. Raises Unavailable when the queue's
    Redis does not answer (nothing was enqueued)."""
    if not configured():
        app = current_app._get_current_object()
        thread = threading.Thread(target=_in_thread, args=(app, function_path, args), name=job_id or function_path,
                                  daemon=True)
        thread.start()
        return thread
    from rq import Callback, Retry
    retries = int(_config("XUEJI_QUEUE_RETRIES", 2))
    with _unavailable():
        job = _queue().enqueue_call(
            func=_perform, args=(function_path, *args), job_id=job_id, description=f"{function_path} {job_id or ''}",
            timeout=int(_config("XUEJI_QUEUE_JOB_TIMEOUT", 1800)), result_ttl=3600, failure_ttl=7 * 24 * 3600,
            retry=Retry(max=retries) if retries > 0 else None, on_failure=Callback(_failed),
            meta={"on_lost": on_lost} if on_lost else None)
    return job.id


def _in_thread(app, function_path, args):
    with app.app_context():
        import_string(function_path)(*args)


# --- running a job (in an RQ worker) -------------------------------------------------------------------------

_local = threading.local()
_standalone = None


def _app_context():
    """The worker's app context (``xueji worker`` pushes one); a plain ``rq worker`` gets an app made once."""
    global _standalone
    if has_app_context():
        return contextlib.nullcontext()
    if _standalone is None:
        from app import create_app
        _standalone = create_app()
    return _standalone.app_context()


def lease_seconds() -> int:
    return max(1, int(_config("XUEJI_QUEUE_LEASE_SECONDS", 30)))


def _lease_key(job_id: str) -> str:
    return LEASE_PREFIX + job_id


class _Lease:
    """The proof that a run of a job is alive: a Redis key with a TTL, renewed by a thread of the run."""

    def __init__(self, client: redis.Redis, job_id: str, ttl: int):
        self.ttl = ttl
        self.lock = client.lock(_lease_key(job_id), timeout=ttl, blocking=False, thread_local=False)
        self.stopped = threading.Event()
        self.lost = threading.Event()

    def acquire(self) -> bool:
        if not self.lock.acquire(blocking=False):
            return False
        threading.Thread(target=self._renew, name="lease-" + self.lock.name, daemon=True).start()
        return True

    def _renew(self):
        while not self.stopped.wait(self.ttl / 3):
            try:
                self.lock.reacquire()
            except redis.exceptions.LockError:          # expired and maybe taken over: this run must stop
                self.lost.set()
                return
            except redis.exceptions.RedisError as exc:  # try again; the lease lasts ttl
                log.warning("job lease %s not renewed: %s", self.lock.name, exc)

    def finish(self):
        """The run ended normally: the lease stays until it expires, so the job is not taken for lost while RQ
        records its end, and a duplicate run still finds it held."""
        self.stopped.set()
        with contextlib.suppress(redis.exceptions.RedisError):
            self.lock.reacquire()

    def release(self):
        """The run raised: a retry may start at once."""
        self.stopped.set()
        with contextlib.suppress(redis.exceptions.RedisError):
            self.lock.release()


def _perform(function_path: str, *args):
    """What RQ runs: the function inside an app context, holding the job's lease."""
    from rq import get_current_job
    job = get_current_job()
    with _app_context():
        lease = _Lease(_redis(), job.id, lease_seconds()) if job is not None else None
        if lease is not None and not lease.acquire():
            log.warning("job %s runs elsewhere already: this run does nothing", job.id)
            return None
        _local.lease = lease
        try:
            result = import_string(function_path)(*args)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        finally:
            _local.lease = None
        if lease is not None:
            lease.finish()
        return result


def check_lease() -> None:
    """Raise LeaseLost when the running job's lease has been lost (another run may own the job now). A job calls it
    between steps; outside a queued run it does nothing."""
    lease = getattr(_local, "lease", None)
    if lease is not None and lease.lost.is_set():
        raise LeaseLost()


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is RQ's job timeout (XUEJI_QUEUE_JOB_TIMEOUT)."""
    from rq.timeouts import JobTimeoutException
    return isinstance(exc, JobTimeoutException)


# --- lost runs ---------------------------------------------------------------------------------------------

def _retrying(job) -> bool:
    return bool(job.retries_left and job.retries_left > 0)


def _call_on_lost(job, retrying: bool) -> None:
    """The job's on_lost(*args, retrying=…), inside an app context; never raises into RQ."""
    try:
        path = (job.meta or {}).get("on_lost")
        if path:
            with _app_context():
                import_string(path)(*job.args[1:], retrying=retrying)
    except Exception:
        log.exception("job %s: on_lost failed", job.id)


def _failed(job, connection, exc_type, exc_value, tb) -> None:
    """RQ's on_failure: the run raised out of the function, or RQ found the job abandoned (AbandonedJobError).
    RQ retries it afterwards if it has retries left."""
    try:
        if connection.exists(_lease_key(job.id)):      # RQ's guess is wrong: a run of it still holds the lease
            return
    except redis.exceptions.RedisError:
        pass
    log.warning("job %s failed (%s)%s", job.id, getattr(exc_type, "__name__", exc_type),
                ", retrying" if _retrying(job) else "")
    _call_on_lost(job, _retrying(job))


def _horse_killed(job, retpid, ret_val, rusage) -> None:
    """The forking worker's work horse died (SIGKILL, OOM): RQ retries the job next if it has retries left."""
    with contextlib.suppress(redis.exceptions.RedisError):
        job.connection.delete(_lease_key(job.id))   # the dead horse's lease must not hold the retry up
    _call_on_lost(job, _retrying(job))


def state(job_id: str) -> str:
    """"waiting" (queued, or scheduled for a retry), "running" (its lease is held, or it started a moment ago),
    "lost" (started, but its run is gone), or "ended" (finished, failed, stopped, or unknown to Redis).
    Raises Unavailable."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    with _unavailable():
        client = _redis()
        if client.exists(_lease_key(job_id)):
            return "running"
        try:
            job = Job.fetch(job_id, connection=client)
        except NoSuchJobError:
            return "ended"
        status = job.get_status(refresh=False)
        status = str(getattr(status, "value", status))        # JobStatus is a str Enum: compare its value
        if status in WAITING:
            return "waiting"
        if status != "started":
            return "ended"
        started = job.started_at or job.last_heartbeat
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
        if started is not None and (datetime.now(timezone.utc) - started).total_seconds() < lease_seconds():
            return "running"                           # dequeued a moment ago: its lease comes next
        return "lost"


def recover(job_id: str) -> str | None:
    """Take a lost job back: out of RQ's started registry, then retried ("retried") if it has retries left, else
    recorded failed ("failed"); its on_lost runs first. None when it is not lost, or another process is taking it
    back (the one whose ZREM removes it from the registry does). Raises Unavailable."""
    from rq import Queue
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus
    from rq.utils import parse_composite_key
    with _unavailable():
        client = _redis()
        if state(job_id) != "lost":
            return None
        try:
            job = Job.fetch(job_id, connection=client)
        except NoSuchJobError:
            return None
        queue = Queue(job.origin, connection=client)
        key = queue.started_job_registry.key
        entries = [e for e in client.zrange(key, 0, -1) if parse_composite_key(e.decode())[0] == job_id]
        if not entries or not client.zrem(key, *entries):
            return None
        retrying = _retrying(job)
        log.warning("job %s lost (no lease for %s s)%s", job_id, lease_seconds(), ", retrying" if retrying else "")
        _call_on_lost(job, retrying)
        with client.pipeline() as pipe:
            if retrying:
                job.retry(queue, pipe)
            else:
                job.set_status(JobStatus.FAILED, pipeline=pipe)
                queue.failed_job_registry.add(job, ttl=job.failure_ttl, pipeline=pipe,
                                              exc_string="lost: its run stopped renewing its lease")
            pipe.execute()
        return "retried" if retrying else "failed"


def recover_all() -> int:
    """Recover every lost job of the queue (workers run it at start and between jobs). Returns how many."""
    from rq.utils import parse_composite_key
    try:
        with _unavailable():
            key = _queue().started_job_registry.key
            ids = {parse_composite_key(e.decode())[0] for e in _redis().zrange(key, 0, -1)}
        return sum(1 for job_id in ids if recover(job_id))
    except Unavailable as exc:
        log.warning("recovering lost jobs: %s", exc)
        return 0


# --- workers -----------------------------------------------------------------------------------------------

def _worker_classes():
    from rq import SimpleWorker, Worker

    class Maintained:
        def run_maintenance_tasks(self):
            super().run_maintenance_tasks()
            with _app_context():
                recover_all()

    class ForkingWorker(Maintained, Worker):
        """A work horse (fork) per job: its memory goes back when the job ends, and its death is seen at once."""

    class InProcessWorker(Maintained, SimpleWorker):
        """Jobs in the worker's own process (no fork)."""

    return ForkingWorker, InProcessWorker


_fork_hook_installed = False


def _fresh_connections_after_fork(engines) -> None:
    """A work horse must not use the database connections of the worker it was forked from."""
    global _fork_hook_installed
    if _fork_hook_installed:
        return

    def dispose():
        for engine in engines:
            engine.dispose(close=False)
    os.register_at_fork(after_in_child=dispose)
    _fork_hook_installed = True


def work(burst: bool = False, simple: bool = False) -> bool:
    """Run one worker on the configured queue in this app context until stopped (SIGTERM/SIGINT: the running job
    finishes first; a second signal aborts it, and it is retried). ``burst``: stop once the queue is empty."""
    from app import replicas
    from app.extensions import db
    app = current_app._get_current_object()
    client = redis.Redis.from_url(app.config["XUEJI_QUEUE_URL"], socket_connect_timeout=5, health_check_interval=30)
    app.extensions[EXTENSION] = client
    forking, in_process = _worker_classes()
    every = max(1, int(app.config.get("XUEJI_QUEUE_MAINTENANCE_SECONDS", 30)))
    if not simple:
        router = app.extensions.get(replicas.KEY)
        _fresh_connections_after_fork([*db.engines.values(), *(r.engine for r in (router.replicas if router else ()))])
    worker = (in_process if simple else forking)(
        [_queue()], connection=client, maintenance_interval=every,
        worker_ttl=every + 15,                  # an idle worker waits at most `every` seconds for a job, then
        work_horse_killed_handler=_horse_killed)  # runs its maintenance (lost jobs) again
    return worker.work(burst=burst, logging_level=app.config.get("XUEJI_WORKER_LOG_LEVEL", "INFO"))
