"""One student, one admission, one open request — held by the database, not only checked before the insert:
k schools committing the same graduate at once, arbitration before 调档 (approval moves only the uncontested
rows, the arbitration's winner follows), a withdrawn list giving its students back, and the 在办业务 lock under
simultaneous filers (PostgreSQL and MariaDB for the races; the constraints themselves on every database)."""
from datetime import datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import RuleError
from app.extensions import db
from models import School, Student, XuejiUser
from models.admissions import Admission, ImportBatch, Quota
from models.requests import Request
from tests.conftest import DEMO_PASSWORD
from tests.test_admissions import YEAR, graduates, upload, workbook
from tests.test_workflow import _needs_row_locks, _race, decide


@pytest.fixture(autouse=True)
def november_2026(world):
    clock.fix(datetime(2026, 11, 20, 10, 0))
    yield
    clock.fix(None)


def active(app, student_id):
    with app.app_context():
        return db.session.execute(select(Admission.school_id, Admission.state, Admission.claim).where(
            Admission.student_id == student_id, Admission.current == 1).order_by(Admission.id)).all()


def committed_batch(c, school_id, rows):
    bid = upload(c, school_id, workbook(c, rows))
    resp = c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert resp.status_code == 302
    return bid


def request_of(app, bid):
    with app.app_context():
        return db.session.get(ImportBatch, bid).request_id


def test_the_database_refuses_a_second_holder_and_a_second_open_request(app, world):
    """The constraints themselves, on SQLite, PostgreSQL and MariaDB alike."""
    g = graduates(app, 1)[0]
    with app.app_context():
        for school in ("a2", "b2"):
            db.session.add(Admission(student_id=g.id, school_id=world.schools[school], year=YEAR, stage="高中",
                                     state="待审核", current=1, claim=1, created_at=datetime.now()))
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()
        sid = world.student_of("a1")
        req = dict(kind="key_change", chain_code="key_change", student_id=sid, school_id=world.schools["a1"],
                   state="审核中", filed_by_id=world.users["school_a1_clerk"], filed_at=datetime.now(),
                   student_lock=sid)
        db.session.add_all([Request(**req), Request(**req)])
        with pytest.raises(IntegrityError):
            db.session.flush()
        db.session.rollback()


def test_second_school_becomes_a_conflict_without_the_claim(app, world, as_user):
    g = graduates(app, 1)[0]
    committed_batch(as_user("school_a2_clerk"), world.schools["a2"], [[g.name, g.xjh]])
    committed_batch(as_user("school_b2_clerk"), world.schools["b2"], [[g.name, g.xjh]])
    assert active(app, g.id) == [(world.schools["a2"], "冲突", 1), (world.schools["b2"], "冲突", None)]


def _extra_high_school(app, world):
    """A third 高中 (county A) with a registrar and a plan, so three schools can race."""
    from app.roles import ROLE_SCHOOL_REGISTRAR
    with app.app_context():
        a2 = db.session.get(School, world.schools["a2"])
        school = School(code="4101020099", name="中原区第九十九高级中学", county_code=a2.county_code,
                        city_code=a2.city_code, province_code=a2.province_code, school_type="高中",
                        schooling="高中3年")
        db.session.add(school)
        db.session.flush()
        db.session.add(Quota(school_id=school.id, year=YEAR, stage="高中", planned=60))
        db.session.commit()
        sm = app.appbuilder.sm
        user = sm.add_user("school_a99_clerk", "学籍", "管理员", "a99@example.cn", role=sm.find_role(
            ROLE_SCHOOL_REGISTRAR), password=DEMO_PASSWORD)
        user.school_id, user.must_change_password = school.id, False
        db.session.commit()
        return school.id


def test_k_schools_committing_the_same_graduate_at_once(app, world, as_user):
    """k = 3 simultaneous commits of one graduate: exactly one admission holds the student, the others are 重复招生
    conflicts, every school's commit answers (none fails with a 500), and the student is never moved twice."""
    _needs_row_locks(app)
    from app import admissions
    third = _extra_high_school(app, world)
    schools = {"school_a2_clerk": world.schools["a2"], "school_b2_clerk": world.schools["b2"],
               "school_a99_clerk": third}
    for attempt in range(3):
        g = graduates(app, 1, offset=attempt)[0]
        batches = {u: upload(as_user(u), sid, workbook(as_user(u), [[g.name, g.xjh]])) for u, sid in schools.items()}

        def commit(username, bid):
            def run():
                actor = db.session.scalar(select(XuejiUser).where(XuejiUser.username == username))
                return admissions.commit_batch(db.session, db.session.get(ImportBatch, bid), actor)
            return run
        results = _race(app, [commit(u, b) for u, b in batches.items()])
        assert all(isinstance(r, tuple) for r in results), results             # a conflict, never an error
        rows = active(app, g.id)
        assert len(rows) == 3 and sum(1 for r in rows if r.claim == 1) == 1
        assert {r.state for r in rows} == {"冲突"}
        assert sorted(conflicts for _, conflicts in results) == [0, 1, 1]    # each later commit saw an earlier
    # none of them can be moved until the county arbitrates
    rid = request_of(app, batches["school_a2_clerk"])
    assert decide(app.test_client(), "county_a_reviewer", rid).status_code == 200
    with app.app_context():
        assert db.session.get(Student, g.id).status == "毕业"


def test_approval_before_arbitration_moves_only_the_uncontested_and_the_winner_follows(app, world, as_user, client):
    g = graduates(app, 2)
    contested, free = g[0], g[1]
    a2 = committed_batch(as_user("school_a2_clerk"), world.schools["a2"], [[contested.name, contested.xjh]])
    b2 = committed_batch(as_user("school_b2_clerk"), world.schools["b2"],
                         [[contested.name, contested.xjh], [free.name, free.xjh]])
    assert decide(client, "county_b_reviewer", request_of(app, b2)).status_code == 200
    with app.app_context():
        assert db.session.get(Student, free.id).school_id == world.schools["b2"]        # the uncontested row
        assert db.session.get(Student, contested.id).status == "毕业"                  # waits for arbitration
        assert "1人在重复招生仲裁中" in db.session.get(Request, request_of(app, b2)).summary
        keep = db.session.scalar(select(Admission.id).where(Admission.student_id == contested.id,
                                                            Admission.school_id == world.schools["b2"]))
    as_user("county_b_reviewer").post(f"/admission/arbitrate/{keep}", data={"reason": "家长选择"})
    with app.app_context():
        s = db.session.get(Student, contested.id)
        assert (s.school_id, s.status, s.stage) == (world.schools["b2"], "在校", "高中")      # moved at once
        assert db.session.get(Admission, keep).state == "已调档"
    assert active(app, contested.id) == [(world.schools["b2"], "已调档", 1)]
    # a2's list no longer holds the student: its approval moves nobody
    assert decide(client, "county_a_reviewer", request_of(app, a2)).status_code == 200
    with app.app_context():
        assert db.session.get(Student, contested.id).school_id == world.schools["b2"]


def test_kept_admission_of_an_open_list_waits_for_that_list(app, world, as_user, client):
    g = graduates(app, 1)[0]
    a2 = committed_batch(as_user("school_a2_clerk"), world.schools["a2"], [[g.name, g.xjh]])
    committed_batch(as_user("school_b2_clerk"), world.schools["b2"], [[g.name, g.xjh]])
    with app.app_context():
        keep = db.session.scalar(select(Admission.id).where(Admission.student_id == g.id,
                                                            Admission.school_id == world.schools["a2"]))
    as_user("county_a_reviewer").post(f"/admission/arbitrate/{keep}", data={"reason": "先录取"})
    assert active(app, g.id) == [(world.schools["a2"], "待审核", 1)]
    assert decide(client, "county_a_reviewer", request_of(app, a2)).status_code == 200
    with app.app_context():
        assert db.session.get(Student, g.id).school_id == world.schools["a2"]


def test_cleared_list_gives_its_students_back(app, world, as_user, client):
    """No admission is left 待审核 without a request that can move it: a list ended unapproved (在办业务清理; a
    one-step list cannot be withdrawn) cancels its admissions (the places free), and the other school's contested
    admission continues uncontested."""
    from app import workflow
    g = graduates(app, 2)
    a2 = committed_batch(as_user("school_a2_clerk"), world.schools["a2"], [[x.name, x.xjh] for x in g])
    committed_batch(as_user("school_b2_clerk"), world.schools["b2"], [[g[0].name, g[0].xjh]])
    with app.app_context():
        actor = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "county_a_clerk"))
        assert workflow.clear(db.session, actor, [request_of(app, a2)], "学校重新报送") == 1
    assert active(app, g[1].id) == []
    assert active(app, g[0].id) == [(world.schools["b2"], "待审核", 1)]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Admission).where(
            Admission.school_id == world.schools["a2"], Admission.state == "已取消")) == 2


def test_one_open_request_per_student_even_past_the_check(app, world, monkeypatch):
    """The 在办业务 lock is the database's: a filer that got past the pre-check (as a simultaneous one does) is
    refused with 2002 by the constraint, not given a second open request."""
    from app import workflow
    sid = world.student_of("a1")
    with app.app_context():
        actor = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "school_a1_clerk"))
        student = db.session.get(Student, sid)
        payload = {"type": "休学", "reason": "病休"}
        monkeypatch.setattr(workflow.KINDS["status_change"], "validate", lambda *a: None)
        monkeypatch.setattr(workflow.KINDS["status_change"], "min_evidence", 0)
        workflow.file(db.session, actor, "status_change", student, payload)
        monkeypatch.setattr(workflow, "open_request", lambda *a, **k: None)
        with pytest.raises(RuleError) as exc:
            workflow.file(db.session, actor, "status_change", student, payload)
        assert exc.value.code == "2002"
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Request).where(
            Request.student_id == sid, Request.state == "审核中")) == 1


def test_simultaneous_filers_get_one_open_request(app, world):
    _needs_row_locks(app)
    from app import workflow
    sid = world.student_of("a1")

    def file_once():
        actor = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "school_a1_clerk"))
        return workflow.file(db.session, actor, "status_change", db.session.get(Student, sid),
                             {"type": "休学", "reason": "病休"}).id
    kind = workflow.KINDS["status_change"]
    saved = kind.validate, kind.min_evidence, workflow.open_request
    kind.validate, kind.min_evidence = (lambda *a: None), 0
    workflow.open_request = lambda *a, **k: None          # both get past the pre-check, as at the same moment
    try:
        results = _race(app, [file_once, file_once])
    finally:
        kind.validate, kind.min_evidence, workflow.open_request = saved
    assert sum(isinstance(r, int) for r in results) == 1
    assert [r.code for r in results if isinstance(r, RuleError)] == ["2002"]


def test_transient_failures_are_told_from_real_ones():
    """InnoDB names a broken transaction by its error number (pymysql's sqlstate is a generic 42000), PostgreSQL by
    its SQLSTATE; a duplicate key is no reason to run again."""
    import pymysql
    from sqlalchemy.exc import IntegrityError as SAIntegrityError, OperationalError
    from app.errors import transient
    savepoint_gone = pymysql.err.OperationalError(1305, "SAVEPOINT sa_savepoint_2 does not exist")
    assert getattr(savepoint_gone, "sqlstate", None) != "1305"
    assert transient(OperationalError("x", {}, savepoint_gone))
    assert transient(OperationalError("x", {}, pymysql.err.OperationalError(1213, "Deadlock found")))
    assert not transient(SAIntegrityError("x", {}, pymysql.err.IntegrityError(1062, "Duplicate entry")))

    class Deadlock(Exception):
        sqlstate = "40P01"
    assert transient(OperationalError("x", {}, Deadlock()))
