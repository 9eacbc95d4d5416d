"""Read replicas: requests that only read go to a PostgreSQL streaming replica, everything else to the primary.

Off unless ``DATABASE_REPLICA_URLS`` names one or more replicas; then ``init_app`` builds a ``Router`` and
``RoutingSession`` (``db.session``'s class, app/extensions.py) asks it where each statement goes. Without a router
the session is Flask-SQLAlchemy's: the same engine, no hooks, no extra queries.

Routing (``RoutingSession.get_bind``, SQLAlchemy's "custom vertical partitioning" pattern with ``_flushing``):

- the primary for every non-GET request, for anything outside a request (CLI, migrations, tests' app contexts,
  background threads) unless ``replica_reads`` says otherwise, for flushes, INSERT/UPDATE/DELETE and
  ``SELECT … FOR UPDATE``, and for everything after those in the same request or session (it is pinned);
- the primary for the security tables (``ab_*``: the account row with its session version, roles, permissions,
  so a sign-out, lock or role change counts at once) and ``export_job`` (progress and download of one job must
  agree, whichever worker answers);
- otherwise, in a GET/HEAD request, one replica chosen once per request: healthy, lagging at most
  ``DATABASE_REPLICA_MAX_LAG_SECONDS``, and having replayed the user's own last write (below).

Read-your-writes by LSN: after a request that wrote, the primary's ``pg_current_wal_insert_lsn()`` goes into the
user's (signed) Flask session; a later GET of that user goes to a replica only if the replica's last known
``pg_last_wal_replay_lsn()`` is at least that, else to the primary. Why LSN rather than "primary for N seconds
after a write": see docs/DEPLOY.md, "Read replicas".

Health, per process: a replica is checked at most every ``DATABASE_REPLICA_CHECK_SECONDS`` (one query on it, one
``pg_current_wal_lsn()`` on the primary), lazily by the request that needs a decision; one thread checks while
the others use the last result. A connection error (at the check, at the request's first connection, or a
dropped connection later) marks it down for ``DATABASE_REPLICA_RETRY_SECONDS``: requests then read from the
primary, never fail because a replica is gone.
"""
from __future__ import annotations

import logging
import math
import random
import threading
import time
import zlib
from contextlib import contextmanager

import sqlalchemy as sa
from flask import current_app, g, has_app_context, has_request_context, request
from flask import session as cookie
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import event, exc as sa_exc
from sqlalchemy.sql.dml import UpdateBase

log = logging.getLogger(__name__)

KEY = "xueji_replicas"                 # app.extensions[KEY]: the Router, only when replicas are configured
COOKIE_LSN = "_xueji_lsn"              # the user's last write position, "16/B374D848"
READ_METHODS = frozenset({"GET", "HEAD"})
PRIMARY_ONLY_PREFIXES = ("ab_",)
PRIMARY_ONLY_TABLES = frozenset({"export_job"})
_PINNED = "xueji_replica_pinned"       # session.info: a write happened; the rest of the session uses the primary
_WROTE = "xueji.replica_wrote"         # request.environ: the same for the rest of the request (a streamed response
                                       # runs in a new session), and remember the write position after it
_TARGET = "xueji_replica_target"       # session.info: (request marker, engine or None), decided once per request
_THREAD_FLOOR = "_xueji_replica_floor"  # g: replica_reads() outside a request
_INFINITE = math.inf


# --- LSNs ------------------------------------------------------------------------------------------------

def parse_lsn(text) -> int | None:
    """'16/B374D848' → an integer that orders as the WAL does; None for anything else."""
    try:
        hi, lo = str(text).split("/")
        return (int(hi, 16) << 32) | int(lo, 16)
    except (ValueError, AttributeError):
        return None


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def _driver_url(url: str) -> str:
    """Same spelling rules as DATABASE_URL (config.database_url): psycopg 3 for PostgreSQL."""
    url = url.strip()
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def configured_urls(value) -> list[str]:
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [_driver_url(u) for u in items if u and u.strip()]


# --- health ---------------------------------------------------------------------------------------------

class Replica:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.name = engine.url.render_as_string(hide_password=True)
        self.checked_at: float | None = None   # time.monotonic() of the last check
        self.usable = False
        self.lag: float | None = None           # seconds behind the primary at the last check
        self.replay_lsn = 0                     # pg_last_wal_replay_lsn() at the last check
        self.down_until = 0.0
        self.reason = "not checked yet"

    def status(self) -> dict:
        return {"name": self.name, "usable": self.usable, "lag": self.lag, "replay_lsn": format_lsn(self.replay_lsn),
                "down": time.monotonic() < self.down_until, "reason": self.reason}


class Router:
    """The replicas of one app in this process, with their cached health."""

    def __init__(self, primary: sa.Engine, urls: list[str], engine_options: dict, *, max_lag: float,
                 check_every: float, retry_after: float):
        self.primary = primary
        self.max_lag = max_lag
        self.check_every = check_every
        self.retry_after = retry_after
        self.replicas = [Replica(sa.create_engine(url, **engine_options)) for url in urls]
        self.by_engine = {r.engine: r for r in self.replicas}
        self.checks = 0                          # health rounds run (tests, diagnostics)
        self._lock = threading.Lock()
        for replica in self.replicas:
            event.listen(replica.engine, "handle_error", self._on_error)

    # health
    def _due(self, replica: Replica, now: float) -> bool:
        return now >= replica.down_until and (replica.checked_at is None
                                              or now - replica.checked_at >= self.check_every)

    def refresh(self) -> None:
        """Check the replicas whose last check is older than DATABASE_REPLICA_CHECK_SECONDS (and are not marked
        down). One thread at a time; the others go on with the last result."""
        if not any(self._due(r, time.monotonic()) for r in self.replicas):
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            due = [r for r in self.replicas if self._due(r, now)]
            if not due:
                return
            self.checks += 1
            try:
                with self.primary.connect() as conn:
                    primary_lsn = parse_lsn(conn.execute(sa.text("SELECT pg_current_wal_lsn()::text")).scalar())
            except sa_exc.DBAPIError as exc:
                log.warning("read replicas: cannot read the primary's WAL position (%s)", _first_line(exc))
                for replica in due:
                    self._set(replica, False, "the primary's position is unknown", now)
                return
            for replica in due:
                self._check(replica, primary_lsn or 0)
        finally:
            self._lock.release()

    def _check(self, replica: Replica, primary_lsn: int) -> None:
        try:
            with replica.engine.connect() as conn:
                in_recovery, replay, age = conn.execute(sa.text(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                    "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())")).one()
        except sa_exc.DBAPIError as exc:
            self.mark_down(replica, exc)
            return
        now = time.monotonic()
        if not in_recovery:
            replica.lag = None
            self._set(replica, False, "not a standby (pg_is_in_recovery() is false: promoted?)", now)
            return
        replay_lsn = parse_lsn(replay) or 0
        replica.replay_lsn = replay_lsn
        # Caught up with where the primary was just before: no lag, however long ago its last commit was.
        # Behind: as old as the last transaction it replayed (unknown right after its start: too old).
        replica.lag = 0.0 if replay_lsn >= primary_lsn else (float(age) if age is not None else _INFINITE)
        if replica.lag > self.max_lag:
            self._set(replica, False, f"lagging {replica.lag:.1f} s (limit {self.max_lag:g} s)", now)
        else:
            self._set(replica, True, "ok", now)

    def _set(self, replica: Replica, usable: bool, reason: str, now: float) -> None:
        if usable != replica.usable or (not usable and reason.split(" ")[0] != replica.reason.split(" ")[0]):
            (log.info if usable else log.warning)("read replica %s: %s", replica.name,
                                                  "in use" if usable else f"skipped, {reason}")
        replica.usable, replica.reason, replica.checked_at = usable, reason, now

    def mark_down(self, replica: Replica, exc: BaseException) -> None:
        now = time.monotonic()
        replica.down_until = now + self.retry_after
        self._set(replica, False, f"down for {self.retry_after:g} s: {_first_line(exc)}", now)

    def _on_error(self, context) -> None:
        """A replica connection that fails or drops in the middle of a request marks the replica down: the next
        requests read from the primary (this one's error stands)."""
        replica = self.by_engine.get(context.engine)
        if replica is not None and not context.is_pre_ping and (context.is_disconnect or context.connection is None):
            self.mark_down(replica, context.original_exception)

    # choice
    def pick(self, floor: float, key: str | None) -> Replica | None:
        """A usable replica that has replayed ``floor``; the same one for the same user while it stays usable
        (so one user's reads do not go back in time between replicas)."""
        self.refresh()
        now = time.monotonic()
        fit = [r for r in self.replicas if r.usable and now >= r.down_until and r.replay_lsn >= floor]
        if not fit:
            return None
        if len(fit) == 1:
            return fit[0]
        return fit[zlib.crc32(key.encode()) % len(fit)] if key else random.choice(fit)

    def status(self) -> list[dict]:
        return [r.status() for r in self.replicas]

    def dispose(self) -> None:
        for replica in self.replicas:
            replica.engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200]


# --- the session ------------------------------------------------------------------------------------------

_table_names: dict = {}


def _primary_only(mapper) -> bool:
    if mapper is None:
        return False
    try:
        return _table_names[mapper]
    except KeyError:
        pass
    try:
        name = getattr(sa.inspect(mapper).local_table, "name", "") or ""
    except sa_exc.NoInspectionAvailable:
        name = ""
    verdict = name.startswith(PRIMARY_ONLY_PREFIXES) or name in PRIMARY_ONLY_TABLES
    _table_names[mapper] = verdict
    return verdict


def _is_write(session, clause) -> bool:
    return (session._flushing or isinstance(clause, UpdateBase)
            or getattr(clause, "_for_update_arg", None) is not None)


class RoutingSession(FlaskSession):
    """Flask-SQLAlchemy's session; with a Router on the app, reads of a GET request go to a replica."""

    def __init__(self, db, **kwargs):
        super().__init__(db, **kwargs)
        self._xueji_router: Router | None = current_app.extensions.get(KEY) if has_app_context() else None

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        primary = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        router = self._xueji_router
        if router is None or bind is not None or primary is not router.primary:
            return primary
        in_request = has_request_context()
        if _is_write(self, clause):
            self.info[_PINNED] = True
            if in_request:
                request.environ[_WROTE] = True
            return primary
        if self.info.get(_PINNED) or _primary_only(mapper):
            return primary
        if in_request:
            if request.method not in READ_METHODS or request.environ.get(_WROTE):
                return primary
            marker = id(request.environ)
        else:
            floor = g.get(_THREAD_FLOOR)
            if floor is None:               # CLI, migrations, tests' app contexts, threads: the primary
                return primary
            marker = ("background", floor)
        decided = self.info.get(_TARGET)
        if decided is None or decided[0] != marker:
            decided = (marker, self._choose(router))
            self.info[_TARGET] = decided
        return decided[1] or primary

    def _choose(self, router: Router) -> sa.Engine | None:
        if has_request_context():
            floor = read_floor()
            key = cookie.get("_user_id")
            key = str(key) if key is not None else None
        else:
            floor, key = g.get(_THREAD_FLOOR), None
        replica = router.pick(floor, key)
        if replica is None:
            return None
        try:        # connect now, so that a replica gone since its last check costs this request nothing
            self.connection(bind_arguments={"bind": replica.engine})
        except sa_exc.DBAPIError as exc:
            router.mark_down(replica, exc)
            return None
        return replica.engine


def read_floor() -> float:
    """In a request: the user's last write position (0 if none is known; unreadable → only the primary will do)."""
    value = cookie.get(COOKIE_LSN)
    if value is None:
        return 0
    parsed = parse_lsn(value)
    return _INFINITE if parsed is None else parsed


def floor_for_background():
    """In the user's request, for a reader it starts (the background export): the user's last write position;
    None without replicas, so that ``replica_reads`` does nothing."""
    if KEY not in current_app.extensions or not has_request_context():
        return None
    return read_floor()


@contextmanager
def replica_reads(floor):
    """Outside a request (a background export): let this app context's reads go to a replica that has replayed
    ``floor`` (``read_floor()`` taken in the user's request). Nothing happens without replicas."""
    if floor is None or KEY not in current_app.extensions:
        yield
        return
    setattr(g, _THREAD_FLOOR, floor)
    try:
        yield
    finally:
        g.pop(_THREAD_FLOOR, None)


# --- wiring -----------------------------------------------------------------------------------------------

def init_app(app, db) -> Router | None:
    """Build the Router when DATABASE_REPLICA_URLS is set; otherwise do nothing at all."""
    urls = configured_urls(app.config.get("DATABASE_REPLICA_URLS"))
    if not urls:
        return None
    with app.app_context():
        primary = db.engine
    if primary.dialect.name != "postgresql" or any(not u.startswith("postgresql") for u in urls):
        raise RuntimeError("DATABASE_REPLICA_URLS: read replicas need PostgreSQL streaming replicas of a PostgreSQL "
                           "DATABASE_URL")
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options["connect_args"] = {"connect_timeout": int(app.config.get("DATABASE_REPLICA_CONNECT_TIMEOUT", 2)),
                               **(options.get("connect_args") or {})}
    router = Router(primary, urls, options,
                    max_lag=float(app.config.get("DATABASE_REPLICA_MAX_LAG_SECONDS", 5)),
                    check_every=float(app.config.get("DATABASE_REPLICA_CHECK_SECONDS", 2)),
                    retry_after=float(app.config.get("DATABASE_REPLICA_RETRY_SECONDS", 30)))
    app.extensions[KEY] = router

    @app.after_request
    def remember_write_position(response):
        """After a request that wrote (any non-GET, or a GET that flushed), the user's later reads need a replica
        that has replayed this far (read-your-writes). Runs before Flask saves the session cookie."""
        if request.method in READ_METHODS and not request.environ.get(_WROTE):
            return response
        try:
            with router.primary.connect() as conn:
                position = conn.execute(sa.text("SELECT pg_current_wal_insert_lsn()::text")).scalar()
        except sa_exc.DBAPIError as exc:
            log.warning("read replicas: cannot read the write position (%s)", _first_line(exc))
            return response
        known = parse_lsn(cookie.get(COOKIE_LSN))
        new = parse_lsn(position)
        if new is not None and (known is None or new > known):
            cookie[COOKIE_LSN] = position
        return response

    log.info("read replicas: %s", ", ".join(r.name for r in router.replicas))
    return router
