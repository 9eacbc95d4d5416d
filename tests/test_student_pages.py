"""The student page, 学籍卡, enrollment history, 学制 confirmation and superadmin-marked key fields."""
from sqlalchemy import select

from app.extensions import db
from models import Enrollment, School, SchoolClass, Setting, Student
from tests.conftest import api_headers
from tests.test_workflow import decide, file_change


def test_student_page_shows_record_history_requests_and_trail(app, world, client, as_user):
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]
    c = as_user("school_a1_leader")
    page = c.get(f"/student/show/{sid}").get_data(as_text=True)
    for text in ("学生个人基础信息", "学生上下学交通方式", "家庭成员或监护人", "学籍变动历史", "建立学籍",
                 f"/request/show/{rid}", "修改记录", "打印学籍卡"):
        assert text in page, text


def test_card_is_printable_and_scoped(app, world, as_user):
    sid = world.student_of("a1")
    with app.app_context():
        s = db.session.get(Student, sid)
        xjh, name = s.xjh, s.name
    page = as_user("school_a1_leader").get(f"/student/card/{sid}").get_data(as_text=True)
    assert "学生学籍卡" in page and xjh in page and name in page and "汉族" in page and "data-print" in page
    assert as_user("school_b1_leader").get(f"/student/card/{sid}").status_code == 404


def test_class_change_is_key_data_and_keeps_the_enrollment_span(app, world, client):
    sid = world.student_of("a1")
    with app.app_context():
        s = db.session.get(Student, sid)
        other = db.session.scalars(select(SchoolClass.id).where(
            SchoolClass.school_id == s.school_id, SchoolClass.cohort_year == s.cohort_year,
            SchoolClass.id != s.class_id)).first()
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"class_id": other}).get_json()[
        "result"]["id"]
    decide(client, "school_a1_leader", rid)
    decide(client, "county_a_reviewer", rid)
    with app.app_context():
        spans = db.session.scalars(select(Enrollment).where(Enrollment.student_id == sid)).all()
        assert len(spans) == 1 and spans[0].class_id == other and spans[0].current == 1
        assert db.session.get(Student, sid).class_id == other


def test_changing_schooling_of_a_school_with_students_needs_confirmation(app, world, as_user):
    c = as_user("school_a1_clerk")
    sid = world.schools["a1"]
    with app.app_context():
        s = db.session.get(School, sid)
        form = {"code": s.code, "name": s.name, "county": s.county.id, "school_type": s.school_type,
                "schooling": "初中4年", "address": s.address or "", "principal": s.principal or "",
                "phone": s.phone or ""}
    page = c.post(f"/school/edit/{sid}", data=form, follow_redirects=True).get_data(as_text=True)
    assert "确认" in page
    with app.app_context():
        assert db.session.get(School, sid).schooling == "初中3年"
    c.post(f"/school/edit/{sid}", data={**form, "confirm_schooling": "y"})
    with app.app_context():
        assert db.session.get(School, sid).schooling == "初中4年"
        from models import AuditEvent
        ev = db.session.scalars(select(AuditEvent).where(AuditEvent.field == "schooling")).one()
        assert (ev.old_value, ev.new_value) == ("初中3年", "初中4年")


def test_schooling_confirmation_holds_on_the_rest_api_too(app, world, client):
    """The rule lives below the views (app.schools): the API refuses the same unconfirmed 学制 change."""
    sid = world.schools["a1"]
    h = api_headers(client, "school_a1_clerk")
    resp = client.put(f"/api/v1/school/{sid}", json={"schooling": "初中4年"}, headers=h)
    assert resp.status_code == 422 and resp.get_json()["code"] == "confirm_required"
    with app.app_context():
        assert db.session.get(School, sid).schooling == "初中3年"
    resp = client.put(f"/api/v1/school/{sid}?confirm_schooling=1", json={"schooling": "初中4年"}, headers=h)
    assert resp.status_code == 200, resp.get_json()
    with app.app_context():
        assert db.session.get(School, sid).schooling == "初中4年"


def test_edit_form_shows_county_key_fields_read_only_and_never_writes_them(app, world, as_user):
    """A field the superadmin marks as key data (key_fields.extra) is shown read-only on the edit form and a
    posted value is ignored — the form never offers what the flush would then refuse."""
    from tests.conftest import student_form
    sid = world.student_of("a1")
    with app.app_context():
        db.session.add(Setting(key="key_fields.extra", region_code=None, value="hukou_place"))
        db.session.commit()
        before = db.session.get(Student, sid).hukou_place
    c = as_user("school_a1_clerk")
    page = c.get(f"/student/edit/{sid}").get_data(as_text=True)
    import re
    field = re.search(r'<[^>]*name="hukou_place"[^>]*>', page).group(0)
    assert "readonly" in field and "disabled" in field
    resp = c.post(f"/student/edit/{sid}", data=student_form(app, sid, hukou_place="410102003003",
                                                            phone="13900001111"))
    assert resp.status_code == 302
    with app.app_context():
        s = db.session.get(Student, sid)
        assert s.hukou_place == before and s.phone == "13900001111"


def test_superadmin_can_mark_more_key_fields(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    assert client.put(f"/api/v1/student/{sid}", json={"hukou_place": "410102002002"}, headers=h).status_code == 200
    with app.app_context():
        db.session.add(Setting(key="key_fields.extra", region_code=None, value="hukou_place"))
        db.session.commit()
    resp = client.put(f"/api/v1/student/{sid}", json={"hukou_place": "410102003003"}, headers=h)
    assert resp.status_code == 422 and resp.get_json()["code"] == "key_data"
    resp = file_change(client, h, sid, {"hukou_place": "410102003003"})
    assert resp.status_code == 200, resp.get_json()
