"""Read replicas (app/replicas.py) against a real PostgreSQL streaming replica.

Runs only when TEST_POSTGRES_PRIMARY_URL and TEST_POSTGRES_REPLICA_URL name the same database on a primary and on
its streaming replica (.ci/run starts one on 127.0.0.1:5433); skipped otherwise. Which server ran a statement is
read from the connection itself: every statement is recorded with the port of the server its connection talks to,
and a probe run through the request's own session after each request reports pg_is_in_recovery() and
inet_server_port() of the server that session reads from. The replica is the one in recovery (checked first).

The database is dropped and rebuilt by the migrations, like tests/conftest.py's `app`; this module's `app`
overrides that fixture, so `world`, `as_user` and `client` build on it."""
import os
import socket
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.engine import make_url

from app import create_app, replicas
from app.extensions import db
from tests.conftest import api_headers, app_config, drop_everything, export_xlsx, login, student_form

PRIMARY_URL = os.environ.get("TEST_POSTGRES_PRIMARY_URL")
REPLICA_URL = os.environ.get("TEST_POSTGRES_REPLICA_URL")
pytestmark = pytest.mark.skipif(not (PRIMARY_URL and REPLICA_URL),
                                reason="TEST_POSTGRES_PRIMARY_URL and TEST_POSTGRES_REPLICA_URL are not set")


# --- the two servers ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def servers():
    """Engines for the test itself (never the app's), and each server's port, checked to be primary / standby."""
    primary, replica = create_engine(PRIMARY_URL), create_engine(REPLICA_URL)
    with primary.connect() as p, replica.connect() as r:
        p_port, p_recovery, p_db = p.execute(text(
            "SELECT inet_server_port(), pg_is_in_recovery(), current_database()")).one()
        r_port, r_recovery, r_db = r.execute(text(
            "SELECT inet_server_port(), pg_is_in_recovery(), current_database()")).one()
    assert not p_recovery and r_recovery, "TEST_POSTGRES_REPLICA_URL must be a standby of the primary"
    assert p_port != r_port and p_db == r_db
    yield {"primary": primary, "replica": replica, "primary_port": p_port, "replica_port": r_port}
    primary.dispose()
    replica.dispose()


def caught_up(servers, timeout=20.0):
    """Wait until the replica has replayed everything the primary has written so far."""
    with servers["primary"].connect() as p:
        target = replicas.parse_lsn(p.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with servers["replica"].connect() as r:
            replayed = replicas.parse_lsn(r.execute(text("SELECT pg_last_wal_replay_lsn()::text")).scalar())
        if replayed >= target:
            return
        time.sleep(0.05)
    raise AssertionError("the replica did not catch up")


@contextmanager
def replay_paused(servers):
    """The replica keeps receiving WAL but applies none of it until the block ends (resumed whatever happens)."""
    with servers["replica"].connect() as r:
        r.execute(text("SELECT pg_wal_replay_pause()"))
        r.commit()
        try:
            for _ in range(200):
                if r.execute(text("SELECT pg_get_wal_replay_pause_state()")).scalar() == "paused":
                    break
                r.rollback()
                time.sleep(0.05)
            else:
                raise AssertionError("replay did not pause")
            yield
        finally:
            r.rollback()
            r.execute(text("SELECT pg_wal_replay_resume()"))
            r.commit()


@contextmanager
def statements():
    """Every statement any engine of this process runs meanwhile: (server port, thread name, SQL)."""
    seen = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((conn.connection.dbapi_connection.info.port, threading.current_thread().name, statement))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def ports_of(seen, fragment, thread=None):
    return {port for port, name, sql in seen if fragment in sql and (thread is None or name.startswith(thread))}


# --- apps ---------------------------------------------------------------------------------------------------

def _probe(application):
    """After every request: where the request's own session reads (its next query goes where its reads went)."""
    @application.after_request
    def probe(response):
        try:
            in_recovery, port = db.session.execute(text("SELECT pg_is_in_recovery(), inet_server_port()")).one()
            response.headers["X-Test-Server"] = f"{'replica' if in_recovery else 'primary'}:{port}"
        except Exception as exc:  # a failed session: say so, never hide the request's own answer
            response.headers["X-Test-Server"] = f"error:{type(exc).__name__}"
        return response
    return application


def build(tmp, **settings):
    application = create_app(app_config(PRIMARY_URL, tmp, **settings))
    application.config["XUEJI_TMP"] = tmp
    return _probe(application)


def replica_settings(**over):
    settings = {"DATABASE_REPLICA_URLS": REPLICA_URL, "DATABASE_REPLICA_MAX_LAG_SECONDS": 300,
                "DATABASE_REPLICA_CHECK_SECONDS": 0, "DATABASE_REPLICA_RETRY_SECONDS": 60}
    settings.update(over)
    return settings


@pytest.fixture(scope="module")
def app(tmp_path_factory, servers):
    """The module's app: migrated on the primary, reading from the replica (checked at every decision here, so
    that a test needs only wait for replay, not for a cache)."""
    tmp = str(tmp_path_factory.mktemp("xueji_replica"))
    drop_everything(PRIMARY_URL)
    application = build(tmp, **replica_settings())
    with application.app_context():
        from app.cli import prepare_database
        prepare_database(False)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    application.extensions[replicas.KEY].dispose()


@pytest.fixture
def other_app(app):
    """Another app on the same database with other replica settings (disposed afterwards)."""
    made = []

    def make(**settings):
        application = build(app.config["XUEJI_TMP"], **settings)
        made.append(application)
        return application
    yield make
    for application in made:
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
        router = application.extensions.get(replicas.KEY)
        if router:
            router.dispose()


def signed_in(application, username="school_a1_clerk"):
    c = application.test_client()
    resp = login(c, username)
    assert resp.status_code == 302 and "/login" not in resp.headers["Location"], username
    return c


def written_lsn(client):
    with client.session_transaction() as s:
        return s.get(replicas.COOKIE_LSN)


def router_of(application):
    return application.extensions[replicas.KEY]


# --- GET requests read from the replica -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/student/list/", "/student/show/{sid}", "/statistics/", "/query/current/list/"])
def test_get_pages_read_from_the_replica(app, world, servers, path):
    c = signed_in(app)
    caught_up(servers)
    with statements() as seen:
        resp = c.get(path.format(sid=world.student_of("a1")))
    assert resp.status_code == 200
    assert resp.headers["X-Test-Server"] == f"replica:{servers['replica_port']}"
    assert ports_of(seen, "FROM student") == {servers["replica_port"]}
    # the account row (session version, lock) and the permissions are always read on the primary
    assert ports_of(seen, "FROM ab_user") == {servers["primary_port"]}


def test_api_get_reads_from_the_replica(app, world, servers, client):
    headers = api_headers(client, "school_a1_clerk")
    caught_up(servers)
    with statements() as seen:
        resp = client.get("/api/v1/student/", headers=headers)
    assert resp.status_code == 200 and resp.get_json()["count"] > 0
    assert resp.headers["X-Test-Server"] == f"replica:{servers['replica_port']}"
    assert ports_of(seen, "FROM student") == {servers["replica_port"]}


def test_post_uses_the_primary_throughout(app, world, servers):
    c = signed_in(app)
    sid = world.student_of("a1")
    form = student_form(app, sid, current_address="郑州市中原区主库路1号")
    caught_up(servers)
    before = replicas.parse_lsn(written_lsn(c))
    with statements() as seen:
        resp = c.post(f"/student/edit/{sid}", data=form)
    assert resp.status_code == 302
    assert resp.headers["X-Test-Server"] == f"primary:{servers['primary_port']}"
    assert {port for port, _, _ in seen} == {servers["primary_port"]}
    assert ports_of(seen, "UPDATE student") == {servers["primary_port"]}
    assert replicas.parse_lsn(written_lsn(c)) > before       # the write's position, for read-your-writes


def test_for_update_and_writes_pin_the_rest_of_the_request_to_the_primary(app, world, servers):
    from models import SchoolClass, Setting
    caught_up(servers)
    port = text("SELECT inet_server_port()")
    with app.test_request_context("/student/list/", method="GET"):
        assert db.session.execute(port).scalar() == servers["replica_port"]
        with statements() as seen:
            db.session.execute(select(SchoolClass.id).limit(1).with_for_update()).all()
        assert ports_of(seen, "FOR UPDATE") == {servers["primary_port"]}
        assert db.session.execute(port).scalar() == servers["primary_port"]
        db.session.rollback()
        assert db.session.execute(port).scalar() == servers["primary_port"]      # for the rest of the request
        db.session.remove()
    with app.test_request_context("/student/list/", method="GET"):
        assert db.session.execute(select(SchoolClass.id).limit(1)).scalar() is not None
        assert db.session.execute(port).scalar() == servers["replica_port"]
        with statements() as seen:
            db.session.execute(update(Setting).where(Setting.id == -1).values(value="x"))
        assert ports_of(seen, "UPDATE setting") == {servers["primary_port"]}
        assert db.session.execute(port).scalar() == servers["primary_port"]
        db.session.rollback()
        db.session.remove()
    with app.test_request_context("/student/list/", method="POST"):
        assert db.session.execute(port).scalar() == servers["primary_port"]
        db.session.remove()
    with app.app_context():                                    # CLI, migrations, tests: the primary
        assert db.session.execute(port).scalar() == servers["primary_port"]
        db.session.remove()


def test_csv_export_reads_on_the_replica_until_its_audit_write(app, world, servers):
    c = signed_in(app)
    caught_up(servers)
    with statements() as seen:
        resp = c.get("/student/export/csv")
        body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and len(body.splitlines()) > 1
    order = [(port, sql) for port, _, sql in seen]
    insert_at = next(i for i, (_, sql) in enumerate(order) if sql.startswith("INSERT INTO audit_event"))
    assert order[insert_at][0] == servers["primary_port"]
    before = {port for port, sql in order[:insert_at] if "FROM student" in sql}
    after = {port for port, sql in order[insert_at:] if "FROM student" in sql}
    assert before == {servers["replica_port"]}                  # the frozen ids
    assert after == {servers["primary_port"]}                   # the rows, after the write in the same request


def test_background_export_reads_rows_on_the_replica(app, world, servers):
    c = signed_in(app)
    caught_up(servers)
    with statements() as seen:
        _job, sheet = export_xlsx(c, "/student/export/xlsx")
    assert sheet.max_row > 1
    assert ports_of(seen, "FROM student", thread="export-") == {servers["replica_port"]}
    assert ports_of(seen, "export_job", thread="export-") == {servers["primary_port"]}


# --- read-your-writes ---------------------------------------------------------------------------------------

def test_read_your_writes_while_replay_is_paused(app, world, servers):
    sid = world.student_of("a1")
    writer, reader = signed_in(app, "school_a1_clerk"), signed_in(app, "school_a1_leader")
    old = student_form(app, sid)["current_address"]
    new = "郑州市中原区读己之写路9号"
    form = student_form(app, sid, current_address=new)
    caught_up(servers)
    with replay_paused(servers):
        assert writer.post(f"/student/edit/{sid}", data=form).status_code == 302
        mine = writer.get(f"/student/show/{sid}")
        assert mine.headers["X-Test-Server"] == f"primary:{servers['primary_port']}"
        assert new in mine.get_data(as_text=True)
        # someone else, whose own writes the replica has: served by the (paused, within the lag limit) replica
        theirs = reader.get(f"/student/show/{sid}")
        assert theirs.headers["X-Test-Server"] == f"replica:{servers['replica_port']}"
        page = theirs.get_data(as_text=True)
        assert old in page and new not in page
        assert router_of(app).status()[0]["usable"]
    caught_up(servers)
    again = writer.get(f"/student/show/{sid}")                  # replayed past the write: the replica again
    assert again.headers["X-Test-Server"] == f"replica:{servers['replica_port']}"
    assert new in again.get_data(as_text=True)


def test_stored_files_are_read_on_the_primary(other_app, world, servers):
    """A file written a moment ago (an export a worker has just finished, a new photo) is served even while the
    replica has not replayed it: the file store (XUEJI_FILE_STORE=database) reads the primary, while the same GET
    request's other reads go to the replica."""
    from sqlalchemy import delete
    from app import filestore
    from models.files import StoredFile, StoredFileChunk
    application = other_app(**replica_settings(), XUEJI_FILE_STORE="database")
    data = b"replica-probe" * 100
    caught_up(servers)
    try:
        with replay_paused(servers):
            with application.app_context():
                filestore.put(db.session, "exports", "replica-probe.xlsx", data)
                db.session.commit()
                db.session.remove()
            with application.test_request_context("/exportjob/file/1", method="GET"):
                with statements() as seen:
                    assert filestore.get("exports", "replica-probe.xlsx") == data
                    assert filestore.exists("exports", "replica-probe.xlsx")
                    on_replica = db.session.scalar(select(StoredFile.id)
                                                   .where(StoredFile.name == "replica-probe.xlsx"))
                assert on_replica is None           # what the replica has: reading the file there would miss it
                assert ports_of(seen, "FROM stored_file_chunk") == {servers["primary_port"]}
                assert ports_of(seen, "FROM stored_file ") <= {servers["primary_port"], servers["replica_port"]}
                db.session.remove()
    finally:
        with application.app_context():
            db.session.execute(delete(StoredFileChunk))
            db.session.execute(delete(StoredFile))
            db.session.commit()
            db.session.remove()
    caught_up(servers)


# --- lagging and down replicas are skipped -----------------------------------------------------------------------

def test_lagging_replica_is_skipped(other_app, world, servers):
    lagging = other_app(**replica_settings(DATABASE_REPLICA_MAX_LAG_SECONDS=1))
    c = signed_in(lagging)
    caught_up(servers)
    assert c.get("/student/list/").headers["X-Test-Server"] == f"replica:{servers['replica_port']}"
    with replay_paused(servers):
        with servers["primary"].begin() as conn:      # someone else writes; the replica does not apply it
            conn.execute(text("UPDATE student SET current_address = '郑州市中原区滞后路2号' WHERE id = :id"),
                         {"id": world.student_of("b1")})
        time.sleep(1.6)
        with statements() as seen:
            resp = c.get("/student/list/")
        assert resp.status_code == 200
        assert resp.headers["X-Test-Server"] == f"primary:{servers['primary_port']}"
        assert ports_of(seen, "FROM student") == {servers["primary_port"]}
        state = router_of(lagging).status()[0]
        assert not state["usable"] and state["lag"] > 1 and "lagging" in state["reason"]
    caught_up(servers)
    assert c.get("/student/list/").headers["X-Test-Server"] == f"replica:{servers['replica_port']}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_down_replica_is_skipped_without_error(other_app, world, servers):
    wrong = make_url(REPLICA_URL).set(port=_free_port()).render_as_string(hide_password=False)
    down = other_app(**replica_settings(DATABASE_REPLICA_URLS=wrong))
    c = signed_in(down)
    with statements() as seen:
        resp = c.get("/student/list/")
    assert resp.status_code == 200 and "学生" in resp.get_data(as_text=True)
    assert resp.headers["X-Test-Server"] == f"primary:{servers['primary_port']}"
    assert ports_of(seen, "FROM student") == {servers["primary_port"]}
    router = router_of(down)
    state = router.status()[0]
    assert state["down"] and not state["usable"] and "down for 60 s" in state["reason"]
    checks = router.checks
    assert c.get("/student/list/").status_code == 200
    assert router.checks == checks              # marked down: not tried again on every request


class _Proxy:
    """A TCP relay to the replica that can be cut, as a replica going away would be."""

    def __init__(self, host, port):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)     # wakes the accept() (close alone would not, on Linux)
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def test_replica_lost_between_checks_is_marked_down_and_the_request_served(other_app, world, servers):
    url = make_url(REPLICA_URL)
    proxy = _Proxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        relayed = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        app2 = other_app(**replica_settings(DATABASE_REPLICA_URLS=relayed, DATABASE_REPLICA_CHECK_SECONDS=600))
        c = signed_in(app2)
        caught_up(servers)
        assert c.get("/student/list/").headers["X-Test-Server"] == f"replica:{servers['replica_port']}"
        checks = router_of(app2).checks
        proxy.cut()                              # gone; the cached health still says usable
        resp = c.get("/student/list/")
        assert resp.status_code == 200
        assert resp.headers["X-Test-Server"] == f"primary:{servers['primary_port']}"
        state = router_of(app2).status()[0]
        assert state["down"] and not state["usable"]
        assert router_of(app2).checks == checks  # found at the request's own connection, not by a new check
        assert c.get("/student/list/").headers["X-Test-Server"] == f"primary:{servers['primary_port']}"
    finally:
        proxy.cut()


def test_health_is_checked_at_most_once_per_interval(other_app, world, servers):
    cached = other_app(**replica_settings(DATABASE_REPLICA_CHECK_SECONDS=600))
    c = signed_in(cached)
    caught_up(servers)
    router = router_of(cached)
    with statements() as seen:
        for _ in range(5):
            assert c.get("/student/list/").headers["X-Test-Server"] == f"replica:{servers['replica_port']}"
    assert router.checks == 1
    assert len([sql for _, _, sql in seen if "pg_last_wal_replay_lsn" in sql]) == 1     # on the replica
    assert len([sql for _, _, sql in seen if "pg_current_wal_lsn" in sql]) == 1         # on the primary
    assert not [sql for _, _, sql in seen if "pg_current_wal_insert_lsn" in sql]     # GETs that only read


# --- nothing configured, nothing changes -----------------------------------------------------------------------

def test_without_replicas_nothing_changes(other_app, world, servers):
    plain = other_app()
    assert replicas.KEY not in plain.extensions
    c = signed_in(plain)
    sid = world.student_of("a1")
    with statements() as seen:
        assert c.get("/student/list/").status_code == 200
        assert c.post(f"/student/edit/{sid}", data=student_form(plain, sid)).status_code == 302
        assert c.get(f"/student/show/{sid}").status_code == 200
    assert {port for port, _, _ in seen} == {servers["primary_port"]}
    assert not [sql for _, _, sql in seen if "pg_current_wal" in sql or "pg_last_wal" in sql]
    assert written_lsn(c) is None
