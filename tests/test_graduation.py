"""毕业升级: graduation preview and blockers, 义务教育 direct vs 高中 county approval, 结业/肄业, certificate
numbers, graduation rollback, promotion idempotence, and the read-only graduate."""
from datetime import datetime

import pytest
from sqlalchemy import func, select, update

from app import clock
from app.extensions import db
from models import Setting, Student
from models.requests import Request
from tests.conftest import api_headers
from tests.test_status_change import file as file_change_status
from tests.test_workflow import decide

YEAR = 2026


@pytest.fixture(autouse=True)
def june_2027(world):
    """Graduation happens at the end of the school year: June 2027 is still school year 2026."""
    clock.fix(datetime(2027, 6, 20, 10, 0))
    yield
    clock.fix(None)


@pytest.fixture
def fresh_passwords(app, world):
    from models import XuejiUser
    with app.app_context():
        db.session.execute(update(XuejiUser).values(password_changed_on=datetime(2027, 6, 1)))
        db.session.commit()


def grade(app, world, school, cohort=YEAR - 2):
    with app.app_context():
        return list(db.session.scalars(select(Student.id).where(Student.school_id == world.schools[school],
                                                                Student.cohort_year == cohort)
                                       .order_by(Student.id)))


def statuses(app, ids):
    with app.app_context():
        return [db.session.get(Student, i).status for i in ids]


def test_preview_lists_blockers(app, world, client, as_user, fresh_passwords):
    ids = grade(app, world, "a1")
    clock.fix(datetime(2027, 3, 1, 10, 0))                 # 休学 filed before the summer freeze
    rid = file_change_status(client, "a1", ids[0], "休学").get_json()["result"]["id"]
    clock.fix(datetime(2027, 6, 20, 10, 0))
    with app.app_context():                               # a 问题学籍
        s = db.session.get(Student, ids[1])
        db.session.execute(update(Student).where(Student.id == ids[1]).values(sex="2" if s.sex == "1" else "1"))
        db.session.commit()
        from app import problems
        problems.detect(db.session, student_ids={ids[1]})
        db.session.execute(update(Student).where(Student.id == ids[2]).values(status="休学"))
        db.session.commit()
    page = as_user("school_a1_clerk").get(f"/graduation/?school_id={world.schools['a1']}&stage=初中").get_data(
        as_text=True)
    assert "有在办业务" in page and "问题学籍未处理" in page and "学籍状态为休学" in page
    assert rid


def test_compulsory_graduation_is_immediate_and_idempotent(app, world, as_user, fresh_passwords):
    ids = grade(app, world, "a1")
    c = as_user("school_a1_clerk")
    c.post("/graduation/confirm", data={"school_id": world.schools["a1"], "stage": "初中"})
    assert set(statuses(app, ids)) == {"毕业"}
    with app.app_context():
        certs = sorted(db.session.get(Student, i).cert_no for i in ids)
        assert certs[0] == "410102000120270001" and len(set(certs)) == len(ids)
        before = db.session.scalar(select(func.count()).select_from(Student).where(Student.status == "毕业"))
    page = c.post("/graduation/confirm", data={"school_id": world.schools["a1"], "stage": "初中"},
                  follow_redirects=True).get_data(as_text=True)
    assert "没有可以办理毕业的学生" in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Student).where(
            Student.status == "毕业")) == before
    # the graduate's basic information is read-only, and they are still found
    resp = c.application.test_client()
    h = api_headers(resp, "school_a1_clerk")
    assert resp.put(f"/api/v1/student/{ids[0]}", json={"phone": "13900000001"}, headers=h).status_code == 422
    assert resp.get(f"/api/v1/student/{ids[0]}", headers=h).status_code == 200


def test_high_school_needs_the_county_and_records_outcomes(app, world, client, as_user, fresh_passwords):
    ids = grade(app, world, "a2")
    c = as_user("school_a2_clerk")
    c.post("/graduation/confirm", data={"school_id": world.schools["a2"], "stage": "高中",
                                        f"outcome_{ids[0]}": "结业", f"outcome_{ids[1]}": "肄业"})
    assert set(statuses(app, ids)) == {"在校"}                 # nothing before the county approves
    with app.app_context():
        rid = db.session.scalar(select(Request.id).where(Request.kind == "graduation"))
    assert decide(client, "county_b_reviewer", rid).status_code == 404
    assert decide(client, "county_a_reviewer", rid).status_code == 200
    got = statuses(app, ids)
    assert got[0] == "结业" and got[1] == "肄业" and set(got[2:]) == {"毕业"}
    with app.app_context():
        assert db.session.get(Student, ids[0]).cert_no is None and db.session.get(Student, ids[2]).cert_no
        # the history (written by the record rules, as for every status change) closes the 在校 span and opens
        # one of the real outcome; the audit log says who approved it (not "毕业")
        from models import AuditEvent, Enrollment
        ended = dict(db.session.execute(select(Enrollment.student_id, Enrollment.status).where(
            Enrollment.student_id.in_(ids[:3]), Enrollment.ended_on.is_not(None))).all())
        now = dict(db.session.execute(select(Enrollment.student_id, Enrollment.status).where(
            Enrollment.student_id.in_(ids[:3]), Enrollment.current == 1)).all())
        assert [ended[i] for i in ids[:3]] == ["在校"] * 3
        assert [now[i] for i in ids[:3]] == ["结业", "肄业", "毕业"]
        reasons = set(db.session.scalars(select(Enrollment.reason).where(Enrollment.student_id == ids[0],
                                                                         Enrollment.current == 1)))
        assert reasons == {f"毕业 #{rid}"}
        who = set(db.session.scalars(select(AuditEvent.username).where(
            AuditEvent.entity == "student", AuditEvent.entity_id == str(ids[0]), AuditEvent.field == "status")))
        assert who == {"county_a_reviewer"}


def test_completion_outcomes_are_for_high_school_only(app, world, as_user, fresh_passwords):
    ids = grade(app, world, "a1")
    page = as_user("school_a1_clerk").post("/graduation/confirm", data={
        "school_id": world.schools["a1"], "stage": "初中", f"outcome_{ids[0]}": "结业"},
        follow_redirects=True).get_data(as_text=True)
    assert "结业、肄业只适用于高中" in page and set(statuses(app, ids)) == {"在校"}


def test_a_graduate_has_no_edit_button_and_no_edit_form(app, world, as_user, fresh_passwords):
    ids = grade(app, world, "a1")
    c = as_user("school_a1_clerk")
    assert 'fa-edit"></i> 编辑' in c.get(f"/student/show/{ids[0]}").get_data(as_text=True)     # 在校: editable
    c.post("/graduation/confirm", data={"school_id": world.schools["a1"], "stage": "初中"})
    page = c.get(f"/student/show/{ids[0]}").get_data(as_text=True)
    assert 'fa-edit"></i> 编辑' not in page and "毕业学生的基本信息只读" in page
    resp = c.get(f"/student/edit/{ids[0]}")
    assert resp.status_code == 302 and f"/student/show/{ids[0]}" in resp.headers["Location"]


def test_high_school_graduation_is_rechecked_against_the_season_at_approval(app, world, client, as_user,
                                                                            fresh_passwords):
    """高中: filed in June, approved by the county only in August — outside the season the approval is refused and
    nobody graduates (the window is checked where the graduation is applied, not only where it is filed)."""
    ids = grade(app, world, "a2")
    as_user("school_a2_clerk").post("/graduation/confirm", data={"school_id": world.schools["a2"], "stage": "高中"})
    with app.app_context():
        rid = db.session.scalar(select(Request.id).where(Request.kind == "graduation"))
    clock.fix(datetime(2027, 8, 20, 10, 0))
    resp = decide(client, "county_a_reviewer", rid)
    assert resp.status_code == 422 and resp.get_json()["code"] == "calendar_closed"
    assert set(statuses(app, ids)) == {"在校"}


def test_county_rolls_graduates_back(app, world, as_user, fresh_passwords):
    ids = grade(app, world, "a1")
    as_user("school_a1_clerk").post("/graduation/confirm", data={"school_id": world.schools["a1"], "stage": "初中"})
    assert as_user("county_b_clerk").post("/graduation/rollback", data={"ids": [ids[0]], "reason": "x"}
                                          ).status_code == 404
    assert as_user("school_a1_clerk").post("/graduation/rollback", data={"ids": [ids[0]], "reason": "x"}
                                           ).status_code == 403
    as_user("county_a_clerk").post("/graduation/rollback", data={"ids": [ids[0]], "reason": "误操作"})
    assert statuses(app, ids[:2]) == ["在校", "毕业"]
    with app.app_context():
        s = db.session.get(Student, ids[0])
        assert s.cert_no is None and s.graduated_on is None


def test_promotion_waits_for_graduation_and_runs_once(app, world, as_user, fresh_passwords):
    c = as_user("county_a_clerk")
    page = c.post("/graduation/promote", data={"to_year": YEAR + 1}, follow_redirects=True).get_data(as_text=True)
    assert "未办理毕业" in page
    for school, stage in (("a1", "初中"), ("a2", "高中")):
        as_user(f"school_{school}_clerk").post("/graduation/confirm", data={"school_id": world.schools[school],
                                                                            "stage": stage})
    with app.app_context():
        rid = db.session.scalar(select(Request.id).where(Request.kind == "graduation"))
    as_user("county_a_reviewer").post(f"/request/decide/{rid}", data={"decision": "通过"})
    c.post("/graduation/promote", data={"to_year": YEAR + 1})
    c.post("/graduation/promote", data={"to_year": YEAR + 1})           # a second run changes nothing
    with app.app_context():
        rows = db.session.scalars(select(Setting).where(Setting.key == "calendar.school_year")).all()
        assert [(r.region_code, r.value) for r in rows] == [("410102", str(YEAR + 1))]
        from app import schoolyear
        assert schoolyear.current(db.session, "410102") == YEAR + 1
        assert schoolyear.current(db.session, "410105") == YEAR          # county B not promoted
    # now last year's 初二 are the graduating grade of county A
    page = as_user("school_a1_clerk").get(f"/graduation/?school_id={world.schools['a1']}&stage=初中").get_data(
        as_text=True)
    assert f"{YEAR - 1}级" in page


# --- the season window, the preview's grouping and numbers, the confirmation -----------------------------------

def test_graduation_is_refused_outside_its_season(app, world, as_user, fresh_passwords):
    ids = grade(app, world, "a1")
    clock.fix(datetime(2026, 11, 20, 10, 0))             # November: the same grade cannot be graduated by a click
    c = as_user("school_a1_clerk")
    page = c.get(f"/graduation/?school_id={world.schools['a1']}&stage=初中").get_data(as_text=True)
    assert 'id="window-closed"' in page and "6月1日至7月30日" in page
    page = c.post("/graduation/confirm", data={"school_id": world.schools["a1"], "stage": "初中"},
                  follow_redirects=True).get_data(as_text=True)
    assert "毕业只能在每年6月1日至7月30日办理" in page and set(statuses(app, grade(app, world, "a1", YEAR - 2))) \
        == {"在校"}
    from app import graduation
    from app.errors import RuleError
    with app.app_context():                              # the service refuses whoever calls it
        with pytest.raises(RuleError) as err:
            graduation.graduate(db.session, None, world.schools["a1"], "初中")
        assert err.value.code == "calendar_closed"
        # a county may move its season; another county keeps the national one
        db.session.add(Setting(key="calendar.graduation_window", region_code="410102", value="11-01..11-30"))
        db.session.commit()
    c.post("/graduation/confirm", data={"school_id": world.schools["a1"], "stage": "初中"})
    assert set(statuses(app, ids)) == {"毕业"}
    page = as_user("school_b1_clerk").post("/graduation/confirm", data={"school_id": world.schools["b1"],
                                                                         "stage": "初中"},
                                           follow_redirects=True).get_data(as_text=True)
    assert "毕业只能在每年6月1日至7月30日办理" in page
    clock.fix(datetime(2027, 7, 31, 9, 0))               # the day after the national deadline (DOMAIN §7: by 7/30)
    with app.app_context():
        with pytest.raises(RuleError):
            graduation.check_window(db.session, "410105")


def test_the_window_setting_is_checked(app, world):
    from app import settings
    from app.errors import RuleError
    with app.app_context():
        with pytest.raises(RuleError) as err:
            settings.validate(Setting(key="calendar.graduation_window", value="6-1..7-30"), db.session)
        assert "月-日..月-日" in err.value.message
        settings.validate(Setting(key="calendar.graduation_window", value="06-15..07-20"), db.session)


def test_preview_groups_by_class_blocked_first_with_the_numbers(app, world, as_user, fresh_passwords):
    ids = grade(app, world, "a1")                        # 2 classes × 3 pupils
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == ids[-1]).values(status="休学"))
        db.session.commit()
        from app import graduation
        plan = graduation.preview(db.session, world.schools["a1"], "初中")
        assert [(len(c["eligible"]), len(c["blocked"])) for c in plan["classes"]] == [(3, 0), (2, 1)]
        assert graduation.confirm_text(plan) == "将为2个班共5名学生办理毕业，1名学生因学籍状态为休学不能毕业。确定吗？"
        blocked_name = db.session.get(Student, ids[-1]).name
    page = as_user("school_a1_clerk").get(f"/graduation/?school_id={world.schools['a1']}&stage=初中").get_data(
        as_text=True)
    # the blocked pupil comes before every class list, with the reason
    assert page.index(blocked_name) < page.index('id="by-class"')
    assert "不能办理：学籍状态为休学" in page
    assert page.count('class="class-count"') == 2 and page.count('class="class-head"') == 2
    # the confirm action is in a fixed bar with the numbers, and asks with them
    bar = page[page.index('id="confirm-bar"'):]
    assert "<b>2</b>" in bar and ">5</b>" in bar and ">1</b>" in bar and "确认办理毕业" in bar
    assert 'data-confirm="将为2个班共5名学生办理毕业，1名学生因学籍状态为休学不能毕业。确定吗？"' in page
    assert "xueji/forms.js" in page
