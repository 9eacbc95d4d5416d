"""Helpers for the page benchmarks (bench_list, bench_statistics): an app on a generated province, signed-in test
clients, the SQL a request issues (before_cursor_execute), the same statements replayed bare on a raw DBAPI
connection, query plans, and the machine line of the report."""
import os
import platform
import re
import sqlite3
import statistics
import time
from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import make_url

PASSWORD = "Xueji#2026"


def page_bench(description: str, repeat: int):
    """What bench_list and bench_statistics share: their arguments, the generated province (made or reused), a
    raw connection for the bare SQL, the database kind and the machine line. Returns (args, info, conn, dialect,
    machine)."""
    import argparse
    from bench import province
    from bench.generate import DEFAULT_URL
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--students", type=int, default=1_000_000)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--fresh", action="store_true", help="regenerate the province even if one is there")
    ap.add_argument("--no-report", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = ap.parse_args()
    info = province.ensure_world(args.database_url, args.students, fresh=args.fresh)
    conn = raw_connection(args.database_url)
    dialect = "postgresql" if args.database_url.startswith("postgres") else "sqlite"
    return args, info, conn, dialect, machine(args.database_url, conn)


def make_app(url: str, **config):
    from app import create_app
    return create_app({"SQLALCHEMY_DATABASE_URI": url, "WTF_CSRF_ENABLED": False,
                       "AUTH_RATE_LIMIT": "100000 per minute", "RATELIMIT_ENABLED": False, **config})


def signed_in(app, username: str):
    """A test client signed in through the login form, like a browser."""
    client = app.test_client()
    resp = client.post("/login/", data={"username": username, "password": PASSWORD})
    if resp.status_code != 302 or "/login" in resp.headers.get("Location", ""):
        raise SystemExit(f"cannot sign in as {username}")
    return client


class StatementLog:
    """Statements (text, parameters, seconds) executed on the app's engine while active."""

    def __init__(self, engine):
        self.engine, self.statements = engine, []

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append((statement, parameters, time.perf_counter() - conn.info.pop("bench_t0")))

    def __enter__(self):
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    @property
    def seconds(self) -> float:
        return sum(s for _, _, s in self.statements)


FAB_USER_TABLES = ("FROM ab_user", "FROM ab_role", "FROM ab_group")


def data_statements(statements):
    """The page's own statements: without FAB's per-request reload of the signed-in user (ab_user, its roles
    and groups), which every page of the app pays and no bare query would."""
    return [(s, p) for s, p, _ in statements if not any(t in s for t in FAB_USER_TABLES)]


def permission_statements(statements):
    return [s for s, _, _ in statements if re.search(r"ab_permission|ab_view_menu", s)]


def raw_connection(url: str):
    """A plain DBAPI connection to the same database, outside the app. On PostgreSQL it runs each replay in a
    transaction, as the app's session does (the same statements measured 15–20 % faster in autocommit mode on
    the development machine, which would flatter the baseline)."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        import psycopg
        return psycopg.connect(u.set(drivername="postgresql").render_as_string(hide_password=False))
    if u.get_backend_name() == "sqlite":
        return sqlite3.connect(u.database, isolation_level=None)
    raise SystemExit("page benchmarks run on PostgreSQL or SQLite")


def replay(conn, statements):
    """Run the statements bare in one transaction, as a request does, and fetch every row; returns the row
    counts."""
    out = []
    for statement, parameters in statements:
        cur = conn.cursor()
        cur.execute(statement, parameters)
        out.append(len(cur.fetchall()))
        cur.close()
    if not isinstance(conn, sqlite3.Connection):
        conn.rollback()
    return out


def plan(conn, statement, parameters) -> str:
    """A one-line summary of the plan: PostgreSQL node types and indexes, SQLite's EXPLAIN QUERY PLAN."""
    cur = conn.cursor()
    if isinstance(conn, sqlite3.Connection):
        cur.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        steps = [r[-1] for r in cur.fetchall()]
        return "; ".join(dict.fromkeys(re.sub(r" \(.*", "", s) for s in steps))
    cur.execute("EXPLAIN " + statement, parameters)
    lines = cur.fetchall()
    conn.rollback()
    nodes = []
    for (line,) in lines:
        m = re.match(r"\s*(?:->\s*)?([A-Z][A-Za-z ]+?)(?: using (\S+))?(?: on (\w+))?(?:\s+\w+)?\s+\(cost", line)
        if m and m.group(1) not in ("Limit", "Aggregate", "Memoize", "Nested Loop", "Nested Loop Left Join",
                                    "Gather", "Gather Merge", "Hash", "Materialize", "Result"):
            nodes.append(m.group(1) + (f"({m.group(2)})" if m.group(2) else f"({m.group(3)})" if m.group(3) else ""))
    return " > ".join(dict.fromkeys(nodes))


def scans_whole_table(summary: str, table: str = "student") -> bool:
    return f"Seq Scan({table})" in summary or re.search(rf"SCAN {table}(?! USING)", summary) is not None


def p95(runs):
    runs = sorted(runs)
    return runs[min(len(runs) - 1, int(round(0.95 * (len(runs) - 1))))]


def summary(runs):
    return statistics.median(runs), p95(runs)


def machine(url: str, conn) -> str:
    """cores, memory, CPU, Python, database version and load: the report's first line."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    try:
        mem = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.0f} GiB"
    except (ValueError, OSError):
        mem = "? GiB"
    if isinstance(conn, sqlite3.Connection):
        db = f"SQLite {sqlite3.sqlite_version}"
    else:
        cur = conn.cursor()
        cur.execute("SHOW server_version")
        db = f"PostgreSQL {cur.fetchone()[0].split()[0]} on {make_url(url).host}"
        conn.rollback()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores ({cpu}), {mem}, Python {platform.python_version()}, {db}; "
            f"load average {load:.1f} at the start")


@contextmanager
def quiet_logs():
    """FAB logs a warning per login redirect; keep the benchmark output readable."""
    import logging
    level = logging.getLogger().level
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        logging.getLogger().setLevel(level)
