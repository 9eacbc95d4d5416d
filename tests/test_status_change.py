"""学籍异动 on the engine: each type's path, the pairing, national rules as settings, calendar windows,
在办业务清理, working-day deadlines, the 待办 page, and web/API parity."""
from datetime import date, datetime

import pytest
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.workdays import add_working_days
from models import Enrollment, SchoolClass, Setting, Student
from models.requests import Request, RequestStep
from tests.conftest import api_headers
from tests.test_workflow import decide, upload

YEAR = 2026                    # the demo's school year (clock: November 2026)


@pytest.fixture(autouse=True)
def november_2026(world):
    clock.fix(datetime(2026, 11, 20, 10, 0))
    yield
    clock.fix(None)


def student(app, world, school, cohort):
    with app.app_context():
        return db.session.scalar(select(Student.id).where(Student.school_id == world.schools[school],
                                                          Student.cohort_year == cohort, Student.status == "在校")
                                 .order_by(Student.id))


def class_of(app, world, school, cohort, no=1):
    with app.app_context():
        return db.session.scalar(select(SchoolClass.id).where(SchoolClass.school_id == world.schools[school],
                                                              SchoolClass.cohort_year == cohort,
                                                              SchoolClass.class_no == no))


def file(client, school, sid, kind, class_id=None, evidence=1):
    h = api_headers(client, f"school_{school}_clerk")
    ids = [upload(client, h, sid).get_json()["result"]["id"] for _ in range(evidence)]
    return client.post("/api/v1/request/file", headers=h, json={
        "kind": "status_change", "student_id": sid, "type": kind, "date": "2026-11-20", "reason": "家长申请",
        "class_id": class_id, "evidence_ids": ids})


def approve(client, school, county, rid):
    assert decide(client, f"school_{school}_leader", rid).status_code == 200
    return decide(client, f"county_{county}_reviewer", rid)


def through(client, school, county, sid, kind, class_id=None):
    resp = file(client, school, sid, kind, class_id)
    assert resp.status_code == 200, resp.get_json()
    final = approve(client, school, county, resp.get_json()["result"]["id"])
    assert final.status_code == 200, final.get_json()
    return resp.get_json()["result"]["id"]


def state(app, sid):
    with app.app_context():
        s = db.session.get(Student, sid)
        return s.status, s.cohort_year, s.class_id


def test_leave_and_return(app, world, client):
    sid = student(app, world, "a1", YEAR - 1)                 # 初二
    rid = through(client, "a1", "a", sid, "休学")
    assert state(app, sid) == ("休学", YEAR - 1, None)
    with app.app_context():
        spans = db.session.scalars(select(Enrollment).where(Enrollment.student_id == sid)
                                   .order_by(Enrollment.id)).all()
        assert [s.status for s in spans] == ["在校", "休学"] and spans[0].ended_on is not None
        assert spans[1].reason == f"学籍异动（休学）#{rid}"
    target = class_of(app, world, "a1", YEAR, 2)             # 复学 into the grade below (落实下一年级)
    through(client, "a1", "a", sid, "复学", target)
    assert state(app, sid) == ("在校", YEAR, target)


def test_leave_needs_its_evidence(app, world, client):
    resp = file(client, "a1", student(app, world, "a1", YEAR), "休学", evidence=0)
    assert resp.status_code == 422 and resp.get_json()["code"] == "evidence_required"


@pytest.mark.parametrize("kind", ["复学", "回国复学", "恢复入学资格"])
def test_an_entry_type_needs_its_leaving_type(app, world, client, kind):
    sid = student(app, world, "a1", YEAR)
    resp = file(client, "a1", sid, kind, class_of(app, world, "a1", YEAR))
    assert resp.status_code == 422 and resp.get_json()["code"] == "wrong_status"


def test_withdrawal_is_refused_in_compulsory_education_and_restored_in_high_school(app, world, client):
    resp = file(client, "a1", student(app, world, "a1", YEAR), "退学")
    assert resp.status_code == 422 and resp.get_json()["code"] == "compulsory"
    sid = student(app, world, "a2", YEAR)                    # 高一
    through(client, "a2", "a", sid, "退学")
    assert state(app, sid)[0] == "退学"
    through(client, "a2", "a", sid, "恢复入学资格", class_of(app, world, "a2", YEAR))
    assert state(app, sid)[0] == "在校"


def test_abroad_and_back(app, world, client):
    sid = student(app, world, "b1", YEAR)
    through(client, "b1", "b", sid, "出国")
    assert state(app, sid)[0] == "出国"
    through(client, "b1", "b", sid, "回国复学", class_of(app, world, "b1", YEAR))
    assert state(app, sid)[0] == "在校"


def test_death_deregisters_with_no_return(app, world, client, as_user):
    sid = student(app, world, "b2", YEAR)
    through(client, "b2", "b", sid, "死亡")
    assert state(app, sid) == ("死亡", YEAR, None)
    page = as_user("school_b2_clerk").get(f"/statuschange/{sid}").get_data(as_text=True)
    assert "不能办理学籍异动" in page


def test_repeat_rules_and_the_county_switch(app, world, client):
    resp = file(client, "a1", student(app, world, "a1", YEAR - 1), "留级", class_of(app, world, "a1", YEAR))
    assert resp.status_code == 422 and resp.get_json()["code"] == "no_repeat"          # compulsory
    resp = file(client, "a2", student(app, world, "a2", YEAR - 2), "留级", class_of(app, world, "a2", YEAR - 1))
    assert resp.status_code == 422 and resp.get_json()["code"] == "no_repeat"          # 高三 graduating
    sid = student(app, world, "a2", YEAR - 1)                                            # 高二 → 高一
    resp = file(client, "a2", sid, "留级", class_of(app, world, "a2", YEAR - 1))
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid_class"      # must go a grade down
    through(client, "a2", "a", sid, "留级", class_of(app, world, "a2", YEAR))
    assert state(app, sid)[:2] == ("在校", YEAR)
    with app.app_context():                      # county A allows 初中 留级: county B keeps the national rule
        db.session.add(Setting(key="rules.no_repeat_compulsory", region_code="410102", value="0"))
        db.session.commit()
    assert file(client, "a1", student(app, world, "a1", YEAR - 1), "留级",
                class_of(app, world, "a1", YEAR)).status_code == 200
    resp = file(client, "b1", student(app, world, "b1", YEAR - 1), "留级", class_of(app, world, "b1", YEAR))
    assert resp.get_json()["code"] == "no_repeat"


def test_skip_at_most_once_per_stage(app, world, client):
    sid = student(app, world, "a2", YEAR)                                                # 高一 → 高二
    through(client, "a2", "a", sid, "跳级", class_of(app, world, "a2", YEAR - 1))
    assert state(app, sid)[:2] == ("在校", YEAR - 1)
    resp = file(client, "a2", sid, "跳级", class_of(app, world, "a2", YEAR - 2))
    assert resp.status_code == 422 and resp.get_json()["code"] == "skip_once"


def test_problem_record_blocks_and_is_rechecked_at_final_approval(app, world, client):
    sid = student(app, world, "a1", YEAR)
    rid = file(client, "a1", sid, "休学").get_json()["result"]["id"]
    decide(client, "school_a1_leader", rid)
    with app.app_context():                      # the record turns out to be a 问题学籍 meanwhile
        s = db.session.get(Student, sid)
        db.session.execute(update(Student).where(Student.id == sid).values(sex="2" if s.sex == "1" else "1"))
        db.session.commit()
        from app import problems
        problems.detect(db.session, student_ids={sid})
        db.session.commit()
    resp = decide(client, "county_a_reviewer", rid)
    assert resp.status_code == 422 and resp.get_json()["code"] == "2003"
    assert state(app, sid)[0] == "在校"
    with app.app_context():
        assert db.session.get(Request, rid).state == "审核中"


def test_open_business_blocks_a_second_request(app, world, client):
    sid = student(app, world, "a1", YEAR)
    assert file(client, "a1", sid, "休学").status_code == 200
    resp = file(client, "a1", sid, "死亡")
    assert resp.status_code == 422 and resp.get_json()["code"] == "2002"


def test_graduating_grades_take_no_new_business_in_summer(app, world, client):
    from models import XuejiUser
    with app.app_context():                       # passwords changed recently, as of the fixed clock
        db.session.execute(update(XuejiUser).values(password_changed_on=datetime(2027, 6, 1)))
        db.session.commit()
    clock.fix(datetime(2027, 7, 5, 9, 0))         # school year 2026 still; 2024 cohort = 初三
    resp = file(client, "a1", student(app, world, "a1", YEAR - 2), "休学")
    assert resp.status_code == 422 and resp.get_json()["code"] == "calendar_closed"
    assert file(client, "a1", student(app, world, "a1", YEAR - 1), "休学").status_code == 200
    clock.fix(datetime(2027, 6, 30, 9, 0))
    assert file(client, "a1", student(app, world, "a1", YEAR - 2), "休学").status_code == 200


def test_bureau_clears_open_business(app, world, client, as_user):
    sid = student(app, world, "a1", YEAR)
    rid = file(client, "a1", sid, "休学").get_json()["result"]["id"]
    assert as_user("county_b_clerk").post("/request/clear", data={"ids": [rid], "reason": "x"}).status_code == 404
    assert as_user("school_a1_leader").post("/request/clear",
                                            data={"ids": [rid], "reason": "x"}).status_code == 403
    as_user("county_a_clerk").post("/request/clear", data={"ids": [rid], "reason": ""})
    with app.app_context():
        assert db.session.get(Request, rid).state == "审核中"             # no reason, nothing cleared
    resp = as_user("county_a_clerk").post("/request/clear", data={"ids": [rid], "reason": "毕业年级在办业务清理"})
    assert resp.status_code == 302
    with app.app_context():
        assert db.session.get(Request, rid).state == "已清理"
        last = db.session.scalars(select(RequestStep).where(RequestStep.request_id == rid)
                                  .order_by(RequestStep.id.desc())).first()
        assert (last.decision, last.comment) == ("清理", "毕业年级在办业务清理")
    assert state(app, sid)[0] == "在校"
    assert file(client, "a1", sid, "休学").status_code == 200           # the lock is released


def test_working_days_count_holidays_and_make_up_saturdays():
    # 2026: 国庆 10/1–10/7 off; Saturday 10/10 is a 调休 working day; 9/25 (中秋) off, Sunday 9/20 worked
    assert add_working_days(date(2026, 9, 29), 3) == date(2026, 10, 9)
    assert add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 10)
    assert add_working_days(date(2026, 9, 18), 1) == date(2026, 9, 20)
    assert add_working_days(date(2026, 9, 24), 1) == date(2026, 9, 28)


def test_each_step_is_due_in_ten_working_days_and_overdue_shows_first(app, world, client, as_user):
    clock.fix(datetime(2026, 9, 29, 9, 0))
    first = file(client, "a1", student(app, world, "a1", YEAR), "休学").get_json()["result"]["id"]
    with app.app_context():
        # 9/30, 10/8, 10/9, 10/10 (调休 Saturday), 10/12–10/16, 10/19: ten working days
        assert db.session.get(Request, first).step_due_on == date(2026, 10, 19)
    clock.fix(datetime(2026, 11, 20, 9, 0))
    second = file(client, "a1", student(app, world, "a1", YEAR - 1), "休学").get_json()["result"]["id"]
    page = as_user("school_a1_leader").get("/").get_data(as_text=True)
    assert page.index(f"/request/show/{first}") < page.index(f"/request/show/{second}")
    assert "已超期" in page


def test_todo_lists_per_role(app, world, client, as_user):
    rid = file(client, "a1", student(app, world, "a1", YEAR), "休学").get_json()["result"]["id"]
    link = f"/request/show/{rid}"
    assert link in as_user("school_a1_leader").get("/").get_data(as_text=True)
    for other in ("school_a1_clerk", "county_a_reviewer", "school_b1_leader", "county_b_reviewer"):
        assert link not in as_user(other).get("/").get_data(as_text=True), other
    decide(client, "school_a1_leader", rid)
    assert link in as_user("county_a_reviewer").get("/").get_data(as_text=True)
    assert link not in as_user("county_a_clerk").get("/").get_data(as_text=True)
    decide(client, "county_a_reviewer", rid, "退回修改", "请补充病历")
    page = as_user("school_a1_clerk").get("/").get_data(as_text=True)
    assert "被退回或未通过的申请" in page and link in page


def test_web_and_api_refuse_alike(app, world, client, as_user):
    sid = student(app, world, "a1", YEAR)
    api = file(client, "a1", sid, "退学").get_json()
    page = as_user("school_a1_clerk").post(f"/statuschange/{sid}", data={
        "type": "退学", "date": "2026-11-20", "reason": "x"}, follow_redirects=True).get_data(as_text=True)
    assert api["code"] == "compulsory" and api["message"] in page


def test_superadmin_sees_every_chain_and_others_do_not(app, world, as_user):
    admin = as_user("admin")
    page = admin.get("/chain/list/").get_data(as_text=True)
    for code in ("key_change", "problem_proof", "status_change"):
        assert code in page
    page = admin.get("/chain/show/status_change").get_data(as_text=True)
    assert "学校审核" in page and "区县教育局审核" in page and "学校学籍主管领导" in page
    assert as_user("county_a_clerk").get("/chain/list/").status_code == 403


def test_new_record_for_an_immigrant_enters_without_a_leaving_type(app, world, client):
    from tests.conftest import student_body
    from tests.test_workflow import PNG
    import io
    h = api_headers(client, "school_a1_clerk")
    ev = client.post("/api/v1/evidence/", headers=h, content_type="multipart/form-data",
                     data={"file": (io.BytesIO(PNG), "入境证明.png")}).get_json()["result"]["id"]
    record = student_body(world.schools["a1"], cohort_year=YEAR - 1, stage="初中",
                          class_id=class_of(app, world, "a1", YEAR - 1))
    bad = client.post("/api/v1/request/file", headers=h, json={
        "kind": "new_record", "record": {**record, "postcode": "12"}, "evidence_ids": [ev], "reason": "移民入学"})
    assert bad.status_code == 422 and "邮政编码" in bad.get_json()["message"]        # checked at filing
    resp = client.post("/api/v1/request/file", headers=h, json={
        "kind": "new_record", "record": record, "evidence_ids": [ev], "reason": "移民入学"})
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    with app.app_context():
        assert db.session.scalar(select(Student).where(Student.xjh == "G" + record["id_number"])) is None
    approve(client, "a1", "a", rid)
    with app.app_context():
        s = db.session.scalar(select(Student).where(Student.xjh == "G" + record["id_number"]))
        assert (s.school_id, s.status, s.cohort_year) == (world.schools["a1"], "在校", YEAR - 1)
        assert db.session.get(Request, rid).student_id == s.id


# --- 学籍管理 → 学籍异动: the start page offers only what this student may have now, with the reasons -------------

def offered(page):
    """(offered type names, {refused type: reason}) as the start page lists them."""
    import re
    yes = re.findall(r'<tr class="offered"><td><a [^>]*>([^<]+)</a>', page)
    no = dict(re.findall(r'<tr class="refused text-muted"><td>([^<]+)</td><td>不能办理：([^<]+)</td>', page))
    return yes, no


def start(client, sid):
    with client.application.app_context():
        xjh = db.session.get(Student, sid).xjh
    resp = client.get(f"/statuschange/?q={xjh}")              # a 学籍号 search finding one student shows its types
    assert resp.status_code == 200
    return offered(resp.get_data(as_text=True))


def test_start_page_for_a_compulsory_pupil(app, world, as_user):
    yes, no = start(as_user("school_a1_clerk"), student(app, world, "a1", YEAR - 1))       # 初二
    assert set(yes) == {"休学", "失踪", "其他离校", "出国", "死亡", "跳级"}
    assert no["退学"] == "义务教育阶段学生不能办理退学" and no["开除"] == "义务教育阶段学生不能办理开除"
    assert no["留级"] == "义务教育阶段原则上不办理留级"
    assert "须为休学" in no["复学"] and "须为出国" in no["回国复学"] and "须为开除" in no["恢复入学资格"]
    with app.app_context():                      # the county switch is honoured on the page as at filing
        db.session.add(Setting(key="rules.no_repeat_compulsory", region_code="410102", value="0"))
        db.session.commit()
    yes, _ = start(as_user("school_a1_clerk"), student(app, world, "a1", YEAR - 1))
    assert "留级" in yes


def test_start_page_for_a_graduating_grade(app, world, as_user):
    yes, no = start(as_user("school_a2_clerk"), student(app, world, "a2", YEAR - 2))       # 高三, November
    assert no["留级"] == "毕业年级不办理留级" and no["跳级"] == "毕业年级不能跳级" and "退学" in yes
    from models import XuejiUser
    with app.app_context():
        db.session.execute(update(XuejiUser).values(password_changed_on=datetime(2027, 6, 1)))
        db.session.commit()
    clock.fix(datetime(2027, 7, 5, 9, 0))        # the summer freeze of graduating grades
    yes, no = start(as_user("school_a1_clerk"), student(app, world, "a1", YEAR - 2))       # 初三
    assert yes == [] and no["休学"] == no["死亡"] == "毕业年级学生在7月1日至8月14日期间不能办理新的业务"
    yes, _ = start(as_user("school_a1_clerk"), student(app, world, "a1", YEAR - 1))        # 初二: not frozen
    assert "休学" in yes


def test_start_page_for_a_pupil_on_leave_and_with_open_business(app, world, as_user, client):
    sid = student(app, world, "a1", YEAR)
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == sid).values(status="休学", class_id=None))
        db.session.commit()
    c = as_user("school_a1_clerk")
    yes, no = start(c, sid)
    assert [t for t in yes if t in ("复学", "回国复学", "恢复入学资格")] == ["复学"]
    assert "休学" not in yes and "须为在校" in no["休学"] and "须为出国" in no["回国复学"]
    other = student(app, world, "a1", YEAR)
    assert file(client, "a1", other, "休学").status_code == 200
    yes, no = start(c, other)                    # 在办业务: nothing is offered, 2002 named
    assert yes == [] and all(r.startswith("2002：该生有在办业务") for r in no.values())
    page = c.get(f"/statuschange/{other}").get_data(as_text=True)
    assert "不能办理学籍异动" in page and "2002" in page


def test_start_page_form_and_button_follow_the_filer_rule(app, world, as_user):
    sid = student(app, world, "a1", YEAR - 1)
    c = as_user("school_a1_clerk")
    with app.app_context():
        s = db.session.get(Student, sid)
        xjh, name = s.xjh, s.name
    page = c.get(f"/statuschange/?q={name}").get_data(as_text=True)
    assert xjh in page                                        # a name search lists the school's pupils
    assert "管辖范围内没有找到该学生" in as_user("school_b1_clerk").get(f"/statuschange/?q={xjh}").get_data(as_text=True)
    assert as_user("school_b1_clerk").get(f"/statuschange/?student_id={sid}").status_code == 404
    # choosing an offered type opens the form with it; a refused type is not in the form either
    form = c.get(f"/statuschange/{sid}?type=出国").get_data(as_text=True)
    assert '<option value="出国" selected>' in form and '<option value="退学"' not in form
    # only the school registrar sees the button and may open the pages
    assert "学籍异动申请" in c.get(f"/student/show/{sid}").get_data(as_text=True)
    for user in ("school_a1_leader", "county_a_clerk", "admin"):
        u = as_user(user)
        assert "学籍异动申请" not in u.get(f"/student/show/{sid}").get_data(as_text=True), user
        assert u.get(f"/statuschange/{sid}").status_code in (302, 403), user
        assert u.get("/statuschange/").status_code in (302, 403), user
