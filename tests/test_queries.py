"""综合查询: each query's own rows within scope, ID search by the last digits, export equal to the screen."""
import csv
import io

from sqlalchemy import select, update

from app.extensions import db
from models import Student


def xjhs_on(page, app, ids):
    with app.app_context():
        numbers = {db.session.get(Student, i).xjh for i in ids}
    return {x for x in numbers if x in page}


def test_each_query_shows_its_own_students(app, world, as_user):
    ids = world.students["a1"]
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == ids[0]).values(status="毕业"))
        db.session.execute(update(Student).where(Student.id == ids[1]).values(status="转出"))
        db.session.commit()
    c = as_user("county_a_reviewer")
    big = "?psize_CurrentStudentQuery=500&psize_GraduateQuery=500&psize_HistoryQuery=500"
    current = c.get("/query/current/list/" + big).get_data(as_text=True)
    graduates = c.get("/query/graduates/list/" + big).get_data(as_text=True)
    history = c.get("/query/history/list/" + big).get_data(as_text=True)
    assert len(xjhs_on(current, app, ids[:2])) == 0 and len(xjhs_on(current, app, ids[2:3])) == 1
    assert len(xjhs_on(graduates, app, ids[:1])) == 1 and len(xjhs_on(history, app, ids[1:2])) == 1
    other = as_user("county_b_reviewer").get("/query/graduates/list/" + big).get_data(as_text=True)
    assert len(xjhs_on(other, app, ids[:1])) == 0


def test_id_search_by_last_digits_and_export_equals_screen(app, world, as_user):
    sid = world.student_of("b1")
    with app.app_context():
        s = db.session.get(Student, sid)
        tail, xjh = s.id_number[-6:], s.xjh
    c = as_user("county_b_clerk")
    # FAB's string filters: _flt_2_ = "ends with"
    page = c.get(f"/query/current/list/?_flt_2_id_number={tail}").get_data(as_text=True)
    assert xjh in page
    rows = list(csv.reader(io.StringIO(c.get(f"/query/current/export/csv?_flt_2_id_number={tail}")
                                       .get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "全国学籍号" and [r[0] for r in rows[1:]] == [xjh]


def test_status_change_query_filters_by_type(app, world, client, as_user):
    from datetime import datetime
    from app import clock
    from tests.test_status_change import approve, file
    clock.fix(datetime(2026, 11, 20, 10, 0))
    try:
        with app.app_context():
            sid = db.session.scalar(select(Student.id).where(Student.school_id == world.schools["a1"],
                                                             Student.cohort_year == 2025))
        rid = file(client, "a1", sid, "休学").get_json()["result"]["id"]
        approve(client, "a1", "a", rid)
    finally:
        clock.fix(None)
    c = as_user("county_a_reviewer")
    assert f"/request/show/{rid}" in c.get("/query/changes/list/?_flt_0_subtype=休学").get_data(as_text=True) or \
        "学籍异动 休学" in c.get("/query/changes/list/?_flt_0_subtype=休学").get_data(as_text=True)
    assert "学籍异动 休学" not in c.get("/query/changes/list/?_flt_0_subtype=退学").get_data(as_text=True)
    assert "学籍异动 休学" not in as_user("county_b_reviewer").get("/query/changes/list/").get_data(as_text=True)
