"""Test harness: one app per database (SQLite always; PostgreSQL and MariaDB when TEST_POSTGRES_URL /
TEST_MARIADB_URL are set, as .ci/run does). The schema is built by the Alembic migrations (so every run
also tests them); each test starts from a freshly loaded small demo world."""
import os
from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine, inspect as sa_inspect, select, text

from app import clock, create_app
from app.extensions import db

DEMO_PASSWORD = "Xueji#2026"


REPLICA_RUN = "postgresql-replica"


def _databases():
    dbs = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get("TEST_POSTGRES_URL"):
        dbs.append(pytest.param(os.environ["TEST_POSTGRES_URL"], id="postgresql"))
        # once more with a streaming replica serving the reads (.ci/run starts one on 127.0.0.1:5433)
        if os.environ.get("TEST_POSTGRES_SUITE_REPLICA_URL"):
            dbs.append(pytest.param(REPLICA_RUN, id=REPLICA_RUN))
    if os.environ.get("TEST_MARIADB_URL"):
        dbs.append(pytest.param(os.environ["TEST_MARIADB_URL"], id="mariadb"))
    return dbs


def worker_url(url: str, create: bool = True) -> str:
    """Under pytest-xdist (`make test` runs one worker per core) each worker gets its own PostgreSQL / MariaDB
    database, test_gw0, test_gw1 … beside the configured one, created when missing; SQLite files are per worker
    already (tmp_path_factory)."""
    from sqlalchemy.engine import make_url
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or url == "sqlite":
        return url
    parsed = make_url(url)
    name = f"{parsed.database}_{worker}"
    if not create:                                       # a replica: the primary's copy arrives by streaming
        return parsed.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(parsed.set(database="postgres" if parsed.get_backend_name() == "postgresql" else ""),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if parsed.get_backend_name() == "postgresql":
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        else:
            conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                              "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def drop_everything(url: str) -> None:
    """An empty database: drop every table (ours, FAB's, alembic_version)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        names = sa_inspect(conn).get_table_names()
        if engine.dialect.name == "postgresql":
            for name in names:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
        elif engine.dialect.name == "mysql":
            conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            for name in names:
                conn.execute(text(f"DROP TABLE IF EXISTS `{name}`"))
            conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
            if getattr(engine.dialect, "is_mariadb", False):
                for (seq,) in conn.execute(text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = DATABASE() AND table_type = 'SEQUENCE'")).all():
                    conn.execute(text(f"DROP SEQUENCE IF EXISTS `{seq}`"))
        else:
            conn.execute(text("PRAGMA foreign_keys=OFF"))
            for name in names:
                conn.execute(text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


def app_config(url, tmp, **extra):
    cfg = {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": url,
        "WTF_CSRF_ENABLED": False,
        "AUTH_RATE_LIMIT": "10000 per minute",
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",     # fast hashing in tests only (FAB's API keys)
        "XUEJI_ARGON2": {"time_cost": 1, "memory_cost": 8, "parallelism": 1},    # cheap argon2id in tests only
        "UPLOAD_FOLDER": os.path.join(tmp, "uploads"),
    }
    cfg.update(extra)
    return cfg


def replica_settings() -> dict:
    return {"DATABASE_REPLICA_URLS": worker_url(os.environ["TEST_POSTGRES_SUITE_REPLICA_URL"], create=False),
            "DATABASE_REPLICA_CHECK_SECONDS": 0, "DATABASE_REPLICA_MAX_LAG_SECONDS": 60}


def wait_for_replica_before_each_request(application) -> None:
    """Tests also write outside requests (fixtures, app contexts), which no cookie records: before each request wait
    until the replica has replayed everything so far, so a GET that reads from it sees what the test wrote. A GET
    that writes in a way the routing does not recognise still fails here: the replica refuses the write."""
    import time
    from app import replicas
    router = application.extensions[replicas.KEY]

    def caught_up():
        with router.primary.connect() as conn:
            target = replicas.parse_lsn(conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar())
        for replica in router.replicas:
            for _ in range(2000):
                with replica.engine.connect() as conn:
                    done = conn.execute(text("SELECT pg_last_wal_replay_lsn()::text")).scalar()
                if replicas.parse_lsn(done) >= target:
                    break
                time.sleep(0.005)
    application.before_request_funcs.setdefault(None, []).insert(0, caught_up)


@pytest.fixture(scope="session", params=_databases())
def app(request, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("xueji"))
    extra = replica_settings() if request.param == REPLICA_RUN else {}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp}/test.db"
    else:
        url = worker_url(os.environ["TEST_POSTGRES_URL"] if request.param == REPLICA_RUN else request.param)
    drop_everything(url)
    application = create_app(app_config(url, tmp, **extra))
    if extra:
        wait_for_replica_before_each_request(application)
    application.config["XUEJI_TMP"] = tmp
    application.config["XUEJI_TEST_EXTRA"] = extra
    with application.app_context():
        from app.cli import prepare_database
        prepare_database(False)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    if extra:
        from app import replicas
        application.extensions[replicas.KEY].dispose()


@pytest.fixture(autouse=True)
def _push_request_context():
    """Override pytest-flask's autouse fixture that keeps one request context open for the whole test:
    requests would then share `g` (and Flask-Login's cached user) across different clients."""
    yield


@pytest.fixture
def client(app):
    """A plain test client. pytest-flask's own one is used as `with client:`, which keeps each request's
    context pushed afterwards, so other clients' requests would run in it (and share its signed-in user)."""
    return app.test_client()


@pytest.fixture
def make_app(app):
    """Build another app on the same database with different settings (CSRF on, tight rate limit …)."""
    def build(**extra):
        settings = {**app.config["XUEJI_TEST_EXTRA"], **extra}
        built = create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], app.config["XUEJI_TMP"], **settings))
        if app.config["XUEJI_TEST_EXTRA"]:
            wait_for_replica_before_each_request(built)
        return built
    return build


# Business tables in delete order; FAB's permission tables and roles stay (synced once per app).
WIPE = ["student_tally", "statistics_refresh", "background_task", "stored_file_chunk", "stored_file", "audit_event", "export_job", "admission", "import_batch", "roster_batch", "quota", "wf_request_step", "evidence", "problem",
        "wf_request", "guardian", "enrollment",
        "setting", "ab_user_role", "ab_user_group", "ab_api_key", "ab_user", "student", "school_class",
        "school", "region"]


def wipe(session) -> None:
    session.execute(text("UPDATE ab_user SET created_by_fk = NULL, changed_by_fk = NULL"))
    session.execute(text("UPDATE region SET parent_code = NULL"))
    for table in WIPE:
        session.execute(text(f"DELETE FROM {table}"))
    session.commit()


@dataclass
class World:
    schools: dict = field(default_factory=dict)        # key (a1, a2, b1, b2) → school id
    students: dict = field(default_factory=dict)       # key → list of student ids
    users: dict = field(default_factory=dict)          # username → user id

    def student_of(self, key):
        return self.students[key][0]


# Columns that point into their own table: restored as NULL first, then set once every row is back.
SELF_REFERENCES = {"ab_user": ("created_by_fk", "changed_by_fk"), "region": ("parent_code",)}


def snapshot(session) -> dict:
    """Every row of the WIPE tables as loaded by the demo (taken once per database)."""
    from app.extensions import db as _db
    tables = _db.metadata.tables
    return {name: [dict(r) for r in session.execute(tables[name].select()).mappings()] for name in WIPE}


def restore(session, rows_of: dict) -> None:
    """Put a snapshot back into the wiped tables in a few executemany INSERTs (parents first), then the
    self-references: the same world as load_demo, in a fraction of its time."""
    from sqlalchemy import bindparam
    tables = db.metadata.tables
    for name in reversed(WIPE):
        rows = rows_of[name]
        if not rows:
            continue
        nulled = SELF_REFERENCES.get(name, ())
        session.execute(tables[name].insert(), [{**r, **{c: None for c in nulled}} for r in rows])
        for column in nulled:
            pk = tables[name].primary_key.columns.values()[0]
            later = [{"pk": r[pk.key], "value": r[column]} for r in rows if r[column] is not None]
            if later:
                session.execute(tables[name].update().where(pk == bindparam("pk"))
                                .values({column: bindparam("value")}), later)
    session.commit()


_WORLDS: dict = {}          # app → the demo world's rows


@pytest.fixture
def world(app):
    """The small demo world: 2 counties × (初中, 高中), 2 classes a grade, 3 students a class, all accounts. Loaded
    by the demo loader once per database, then restored from its snapshot before each test."""
    from app.demo import SCHOOLS, load_demo
    from app.security import clear_permission_cache
    from models import School, Student, XuejiUser
    clock.fix(None)
    # export jobs are known to this process by id: a job of an earlier test (or of another database's app, under
    # the same xdist worker) must not stand for this test's job of the same id
    from app import exportjobs
    exportjobs._threads.clear()
    exportjobs._enqueued.clear()
    with app.app_context():
        wipe(db.session)
        key = app.config["XUEJI_TMP"]                    # one per app (a database rebuilt later starts afresh)
        if key in _WORLDS:
            restore(db.session, _WORLDS[key])
        else:
            load_demo(app.appbuilder, classes_per_grade=2, students_per_class=3, graduates=4,
                      password=DEMO_PASSWORD, near_cap=False, with_problems=False)
            _WORLDS[key] = snapshot(db.session)
            db.session.commit()
        clear_permission_cache()
        w = World()
        codes = dict(db.session.execute(select(School.code, School.id)).all())
        for key, code, *_ in SCHOOLS:
            w.schools[key] = codes[code]
        for key, sid in w.schools.items():
            w.students[key] = list(db.session.scalars(
                select(Student.id).where(Student.school_id == sid).order_by(Student.id)))
        w.users = dict(db.session.execute(select(XuejiUser.username, XuejiUser.id)).all())
        db.session.remove()
    yield w
    clock.fix(None)


class statements:
    """`with statements() as seen:` every SQL statement any engine of the app runs meanwhile (the primary and, in
    the replica run, the replica), without the replicas' own bookkeeping (WAL positions, health)."""

    def __enter__(self):
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        self.seen = []

        def capture(conn, cursor, statement, *args):
            if "pg_current_wal" not in statement and "pg_last_wal" not in statement and \
                    "pg_is_in_recovery" not in statement:
                self.seen.append(statement)
        self._capture = capture
        event.listen(Engine, "before_cursor_execute", capture)
        return self.seen

    def __exit__(self, *exc):
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
        event.remove(Engine, "before_cursor_execute", self._capture)


def login(client, username, password=DEMO_PASSWORD):
    return client.post("/login/", data={"username": username, "password": password})


def export_xlsx(client, path):
    """Start a background Excel export of a list (POST, as the button does), wait for it, return
    (job id, the downloaded workbook's first sheet)."""
    import io
    import re
    from openpyxl import load_workbook
    from app import exportjobs
    resp = client.post(path)
    assert resp.status_code == 302 and "/exportjob/show/" in resp.headers["Location"], resp.status_code
    job_id = int(re.search(r"/exportjob/show/(\d+)", resp.headers["Location"]).group(1))
    exportjobs.wait(job_id)
    status = client.get(f"/exportjob/status/{job_id}").get_json()
    assert status["state"] == "done", status
    data = client.get(status["download"]).data
    return job_id, load_workbook(io.BytesIO(data)).worksheets[0]


def api_login(client, username, password=DEMO_PASSWORD):
    return client.post("/api/v1/security/login",
                       json={"username": username, "password": password, "provider": "db"})


def api_headers(client, username, password=DEMO_PASSWORD):
    resp = api_login(client, username, password)
    assert resp.status_code == 200, resp.get_json()
    return {"Authorization": f"Bearer {resp.get_json()['access_token']}"}


@pytest.fixture
def as_user(app, world):
    """as_user('school_a1_clerk') → a test client signed in through the web login."""
    def make(username, password=DEMO_PASSWORD):
        c = app.test_client()
        resp = login(c, username, password)
        assert resp.status_code == 302 and "/login" not in resp.headers["Location"], username
        return c
    return make


def student_body(school_id, **over):
    """A complete, valid student for POST /api/v1/student/ (every ★ field of the national form). No 学籍号: the
    system generates it (G + 身份证件号 here, G11010519491231002X)."""
    body = {"name": "测试", "sex": "2", "birth_date": "1949-12-31",
            "birthplace": "410102001001", "native_place": "河南郑州", "ethnicity": "01", "nationality": "CHN",
            "id_type": "1", "id_number": "11010519491231002X", "gatq": "00", "health": "10",
            "hukou_place": "410102001001", "hukou_type": "2", "entry_ym": "202609", "entry_mode": "1",
            "study_mode": "1", "current_address": "郑州市中原区建设路1号", "mail_address": "郑州市中原区建设路1号",
            "home_address": "郑州市中原区建设路1号", "phone": "13912345678", "postcode": "450000",
            "only_child": True, "preschool": True, "school_id": school_id, "stage": "初中", "cohort_year": 2026,
            "status": "在校"}
    body.update(over)
    return body


EDIT_SKIP = {"id", "xjh", "school_id", "stage", "status", "has_problem", "deleted_at", "delete_reason", "name",
             "id_number", "sex", "birth_date", "cohort_year", "class_id"}


def student_form(app, student_id, **over):
    """The edit form of a student as the browser would post it (key data is not on the form)."""
    from models import Student
    with app.app_context():
        s = db.session.get(Student, student_id)
        form = {}
        for col in Student.__table__.columns:
            if col.key in EDIT_SKIP:
                continue
            value = getattr(s, col.key)
            if isinstance(value, bool):
                if value:
                    form[col.key] = "y"
            elif value is not None:
                form[col.key] = str(value)
    form.update(over)
    return form
