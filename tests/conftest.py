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


def _databases():
    dbs = [pytest.param("sqlite", id="sqlite")]
    if os.environ.get("TEST_POSTGRES_URL"):
        dbs.append(pytest.param(os.environ["TEST_POSTGRES_URL"], id="postgresql"))
    if os.environ.get("TEST_MARIADB_URL"):
        dbs.append(pytest.param(os.environ["TEST_MARIADB_URL"], id="mariadb"))
    return dbs


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
        "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",     # fast hashing in tests only
        "UPLOAD_FOLDER": os.path.join(tmp, "uploads"),
    }
    cfg.update(extra)
    return cfg


@pytest.fixture(scope="session", params=_databases())
def app(request, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("xueji"))
    url = f"sqlite:///{tmp}/test.db" if request.param == "sqlite" else request.param
    drop_everything(url)
    application = create_app(app_config(url, tmp))
    application.config["XUEJI_TMP"] = tmp
    with application.app_context():
        from app.cli import prepare_database
        prepare_database(False)
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


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
        return create_app(app_config(app.config["SQLALCHEMY_DATABASE_URI"], app.config["XUEJI_TMP"], **extra))
    return build


# Business tables in delete order; FAB's permission tables and roles stay (synced once per app).
WIPE = ["audit_event", "export_job", "admission", "import_batch", "roster_batch", "quota", "wf_request_step", "evidence", "problem",
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


@pytest.fixture
def world(app):
    """The small demo world: 2 counties × (初中, 高中), 2 classes a grade, 3 students a class, all accounts."""
    from app.demo import SCHOOLS, load_demo
    from app.security import clear_permission_cache
    from models import School, Student, XuejiUser
    clock.fix(None)
    with app.app_context():
        wipe(db.session)
        load_demo(app.appbuilder, classes_per_grade=2, students_per_class=3, graduates=4, password=DEMO_PASSWORD,
                  near_cap=False, with_problems=False)
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
