"""转学: filed by the receiving school, each chain with the right party at each step, refusal codes, withdraw,
and the enrollment history on both sides."""
from datetime import datetime

import pytest
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from models import Enrollment, SchoolClass, Student
from models.requests import Request
from tests.conftest import api_headers
from tests.test_workflow import decide

YEAR = 2026


@pytest.fixture(autouse=True)
def november_2026(world):
    clock.fix(datetime(2026, 11, 20, 10, 0))
    yield
    clock.fix(None)


def pupil(app, world, school, cohort=YEAR - 1):
    with app.app_context():
        s = db.session.scalar(select(Student).where(Student.school_id == world.schools[school],
                                                    Student.cohort_year == cohort).order_by(Student.id))
        return s.id, s.xjh, s.name


def klass(app, world, school, cohort=YEAR - 1, no=2):
    with app.app_context():
        return db.session.scalar(select(SchoolClass.id).where(SchoolClass.school_id == world.schools[school],
                                                              SchoolClass.cohort_year == cohort,
                                                              SchoolClass.class_no == no))


def file(client, to_school, xjh, name, class_id):
    return client.post("/api/v1/request/file", headers=api_headers(client, f"school_{to_school}_clerk"), json={
        "kind": "transfer", "xjh": xjh, "name": name, "class_id": class_id, "reason": "随父母工作调动"})


def where(app, sid):
    with app.app_context():
        s = db.session.get(Student, sid)
        return s.school_id, s.class_id, s.status


def test_same_county_chain_and_history(app, world, client, as_user):
    """A second 初中 in 中原区, so the transfer stays inside the county."""
    from models import School
    with app.app_context():                      # a second 初中 in 中原区 so the transfer stays in the county
        other = School(code="4101020003", name="郑州市中原区第二初级中学", county_code="410102", school_type="初中",
                       schooling="初中3年")
        db.session.add(other)
        db.session.flush()
        db.session.add(SchoolClass(school_id=other.id, stage="初中", cohort_year=YEAR - 1, class_no=1, name="1班"))
        from app.roles import ROLE_SCHOOL_LEADER, ROLE_SCHOOL_REGISTRAR
        sm = app.appbuilder.sm
        for username, role in (("school_a3_clerk", ROLE_SCHOOL_REGISTRAR), ("school_a3_leader", ROLE_SCHOOL_LEADER)):
            sm.add_user(username, "三", "校", f"{username}@x.cn", role=[sm.find_role(role)], password="Xueji#2026",
                        must_change_password=False, school_id=other.id)
        db.session.commit()
        world.schools["a3"] = other.id
    sid, xjh, name = pupil(app, world, "a1")
    target = klass(app, world, "a3", no=1)
    resp = file(client, "a3", xjh, name, target)
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    with app.app_context():
        assert db.session.get(Request, rid).chain_code == "transfer_county"
    # the sending school sees it (and must act) though it did not file it
    assert f"/request/show/{rid}" not in as_user("school_a1_leader").get("/").get_data(as_text=True)
    assert decide(client, "school_a1_leader", rid).status_code == 403          # not yet its step
    assert decide(client, "school_a3_leader", rid).status_code == 200          # 转入校审核
    assert f"/request/show/{rid}" in as_user("school_a1_leader").get("/").get_data(as_text=True)
    assert decide(client, "school_a1_leader", rid).status_code == 200          # 转出校审核
    assert where(app, sid)[0] == world.schools["a1"]
    assert decide(client, "county_a_reviewer", rid).status_code == 200        # 区县教育局
    assert where(app, sid) == (world.schools["a3"], target, "在校")
    with app.app_context():
        spans = db.session.scalars(select(Enrollment).where(Enrollment.student_id == sid)
                                   .order_by(Enrollment.id)).all()
        assert [(e.school_id, e.status, e.current) for e in spans] == [
            (world.schools["a1"], "转出", None), (world.schools["a3"], "在校", 1)]


def test_other_county_chain(app, world, client):
    sid, xjh, name = pupil(app, world, "a1")
    target = klass(app, world, "b1")
    rid = file(client, "b1", xjh, name, target).get_json()["result"]["id"]
    with app.app_context():
        assert db.session.get(Request, rid).chain_code == "transfer_other_county"
    for actor in ("school_b1_leader", "county_b_reviewer", "school_a1_leader"):
        assert decide(client, "county_a_reviewer", rid).status_code in (403, 404)   # never out of turn
        assert decide(client, actor, rid).status_code == 200, actor
    assert decide(client, "county_b_reviewer", rid).status_code == 403             # 转出地 step: county A's
    assert decide(client, "county_a_reviewer", rid).status_code == 200
    assert where(app, sid)[:2] == (world.schools["b1"], target)


@pytest.mark.parametrize("case,code", [
    ("wrong_name", "2001"), ("unknown_xjh", "2001"), ("open_business", "2002"), ("problem", "2003"),
    ("on_leave", "wrong_status"), ("grade_change", "grade_change"), ("class_full", "class_full"),
    ("over_plan", "over_quota"),
])
def test_refusals(app, world, client, case, code):
    sid, xjh, name = pupil(app, world, "a1")
    target = klass(app, world, "b1")
    if case == "wrong_name":
        name = "别人"
    elif case == "unknown_xjh":
        xjh = "G" + "1" * 18
    elif case == "open_business":
        assert file(client, "b1", xjh, name, target).status_code == 200
    elif case == "problem":
        with app.app_context():
            s = db.session.get(Student, sid)
            db.session.execute(update(Student).where(Student.id == sid).values(sex="2" if s.sex == "1" else "1"))
            db.session.commit()
            from app import problems
            problems.detect(db.session, student_ids={sid})
            db.session.commit()
    elif case == "on_leave":
        with app.app_context():
            db.session.execute(update(Student).where(Student.id == sid).values(status="休学"))
            db.session.commit()
    elif case == "grade_change":
        target = klass(app, world, "b1", cohort=YEAR)
    elif case == "class_full":
        with app.app_context():
            db.session.get(SchoolClass, target).capacity = 1
            db.session.commit()
    elif case == "over_plan":                # b1's plan for the 2025 cohort is already taken up
        from sqlalchemy import func
        from models import Quota
        with app.app_context():
            n = db.session.scalar(select(func.count()).select_from(Student).where(
                Student.school_id == world.schools["b1"], Student.cohort_year == YEAR - 1))
            db.session.add(Quota(school_id=world.schools["b1"], year=YEAR - 1, stage="初中", planned=n))
            db.session.commit()
    resp = file(client, "b1", xjh, name, target)
    assert resp.status_code == 422 and resp.get_json()["code"] == code, resp.get_json()
    if code.isdigit():                          # the national error code is in the message too
        assert resp.get_json()["message"].startswith(code)
    assert where(app, sid)[0] == world.schools["a1"]


def test_calendar_pauses(app, world, client):
    from models import XuejiUser
    sid, xjh, name = pupil(app, world, "a1")
    with app.app_context():
        db.session.execute(update(XuejiUser).values(password_changed_on=datetime(2027, 7, 1)))
        db.session.commit()
    clock.fix(datetime(2027, 7, 20, 9, 0))
    resp = file(client, "b1", xjh, name, klass(app, world, "b1"))
    assert resp.get_json()["code"] == "calendar_closed"
    clock.fix(datetime(2026, 11, 20, 9, 0))
    first_term = pupil(app, world, "a1", cohort=YEAR)                       # 初一, first term
    resp = file(client, "b1", first_term[1], first_term[2], klass(app, world, "b1", cohort=YEAR))
    assert resp.get_json()["code"] == "calendar_closed"


def test_withdraw_before_the_final_step_only(app, world, client):
    sid, xjh, name = pupil(app, world, "a1")
    h = api_headers(client, "school_b1_clerk")
    rid = file(client, "b1", xjh, name, klass(app, world, "b1")).get_json()["result"]["id"]
    decide(client, "school_b1_leader", rid)
    assert client.post(f"/api/v1/request/{rid}/withdraw", json={}, headers=h).status_code == 200
    rid = file(client, "b1", xjh, name, klass(app, world, "b1")).get_json()["result"]["id"]     # lock released
    for actor in ("school_b1_leader", "county_b_reviewer", "school_a1_leader"):
        decide(client, actor, rid)
    assert client.post(f"/api/v1/request/{rid}/withdraw", json={}, headers=h).status_code == 409
    assert where(app, sid)[0] == world.schools["a1"]


def test_the_sending_school_cannot_file_for_its_own_student(app, world, client):
    sid, xjh, name = pupil(app, world, "a1")
    resp = file(client, "a1", xjh, name, klass(app, world, "a1"))
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid"


def other_province_school(app):
    """A 高中 in 湖北省 武汉市 江岸区 (another province) with its accounts."""
    from models import Region, School
    from app.roles import ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER, ROLE_SCHOOL_REGISTRAR
    with app.app_context():
        for code, name, level, parent in (("420000", "湖北省", "province", None), ("420100", "武汉市", "city", "420000"),
                                          ("420102", "江岸区", "county", "420100")):
            db.session.add(Region(code=code, name=name, level=level, parent_code=parent))
        db.session.flush()
        school = School(code="4201020001", name="武汉市江岸区第一高级中学", county_code="420102", school_type="高中",
                        schooling="高中3年")
        db.session.add(school)
        db.session.commit()
        sm = app.appbuilder.sm
        for username, role, scope in (("hb_clerk", ROLE_SCHOOL_REGISTRAR, {"school_id": school.id}),
                                      ("hb_leader", ROLE_SCHOOL_LEADER, {"school_id": school.id}),
                                      ("hb_county", ROLE_BUREAU_REVIEWER, {"region_code": "420102"})):
            sm.add_user(username, "湖", "北", f"{username}@x.cn", role=[sm.find_role(role)], password="Xueji#2026",
                        must_change_password=False, **scope)
        return school.id


def test_graduate_moves_to_another_province(app, world, client):
    hb = other_province_school(app)
    with app.app_context():
        g = db.session.scalar(select(Student).where(Student.status == "毕业").order_by(Student.id))
        sid, xjh, name = g.id, g.xjh, g.name
    h = api_headers(client, "hb_clerk")
    body = {"kind": "graduate_move", "xjh": xjh, "name": name, "stage": "高中"}
    assert client.post("/api/v1/request/file", headers=h, json={**body, "name": "别人"}).get_json()["code"] == "2001"
    clock.fix(datetime(2027, 7, 1, 9, 0))                     # outside both windows
    from models import XuejiUser
    with app.app_context():
        db.session.execute(update(XuejiUser).values(password_changed_on=datetime(2027, 6, 1)))
        db.session.commit()
    assert client.post("/api/v1/request/file", headers=h, json=body).get_json()["code"] == "calendar_closed"
    clock.fix(datetime(2026, 11, 20, 9, 0))
    resp = client.post("/api/v1/request/file", headers=h, json=body)
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    assert client.post("/api/v1/request/file", headers=h, json=body).get_json()["code"] in ("2002", "duplicate")
    assert decide(client, "hb_leader", rid).status_code == 200
    assert decide(client, "hb_county", rid).status_code == 200
    home = "county_a_reviewer" if g.school_id == world.schools["a1"] else "county_b_reviewer"
    resp = decide(client, home, rid)
    assert resp.status_code == 200, resp.get_json()       # the graduating school's bureau
    with app.app_context():
        s = db.session.get(Student, sid)
        assert (s.school_id, s.status, s.stage) == (hb, "在校", "高中")


def test_graduate_move_is_for_other_provinces_only(app, world, client):
    with app.app_context():
        g = db.session.scalar(select(Student).where(Student.status == "毕业").order_by(Student.id))
    resp = client.post("/api/v1/request/file", headers=api_headers(client, "school_b2_clerk"), json={
        "kind": "graduate_move", "xjh": g.xjh, "name": g.name})
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid"
