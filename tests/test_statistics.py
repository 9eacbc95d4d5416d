"""Statistics: numbers equal a hand count on the test world, scope applies, the chart page uses the vendored
ECharts, and each table downloads as .xlsx with the same numbers."""
import io

from openpyxl import load_workbook
from sqlalchemy import func, select

from app.extensions import db
from models import School, SchoolClass, Student


def hand_count(app, school_key, world):
    with app.app_context():
        rows = db.session.execute(select(Student.sex, Student.hukou_type, Student.migrant_child).where(
            Student.school_id == world.schools[school_key], Student.status == "在校",
            Student.deleted_at.is_(None))).all()
        name = db.session.get(School, world.schools[school_key]).name
    return name, len(rows), sum(r.sex == "1" for r in rows), sum(r.sex == "2" for r in rows), \
        sum(bool(r.migrant_child) for r in rows)


def test_overview_matches_a_hand_count_and_the_scope(app, world, as_user):
    from app import statistics
    from app.scoping import Scope
    with app.app_context():
        _, headers, rows = statistics.table(db.session, Scope("region", region_code="410102", region_level="county"),
                                            "overview")
    by_school = {r[0]: r for r in rows}
    for key in ("a1", "a2"):
        name, total, male, female, migrant = hand_count(app, key, world)
        row = by_school[name]
        assert (row[1], row[2], row[3], row[5]) == (total, male, female, migrant)
    assert len(rows) == 2                                  # county B's schools are not in county A's numbers
    page = as_user("county_b_reviewer").get("/statistics/").get_data(as_text=True)
    assert "郑州市金水区第一初级中学" in page and "郑州市中原区第一初级中学" not in page


def test_chart_page_uses_the_vendored_library(app, world, as_user):
    c = as_user("school_a1_leader")
    page = c.get("/statistics/").get_data(as_text=True)
    assert "/static/vendor/echarts-5.6.0/echarts.min.js" in page and "echarts.init" in page
    assert "cdn" not in page.lower()
    js = c.get("/static/vendor/echarts-5.6.0/echarts.min.js")
    assert js.status_code == 200 and b"echarts" in js.data[:2000]


def test_class_sizes_flag_full_and_large_classes(app, world):
    from app import statistics
    from app.scoping import ALL
    with app.app_context():
        klass = db.session.scalar(select(SchoolClass).where(SchoolClass.school_id == world.schools["a1"]))
        klass.capacity = 3                               # the test world seats 3 a class
        db.session.commit()
        label = f"{klass.cohort_year}级{klass.name}"
        _, _, rows = statistics.table(db.session, ALL, "classes")
    flagged = [r for r in rows if r[-1] == "已满"]
    assert any(r[1] == label and r[2] == 3 and r[3] == 3 for r in flagged)


def test_each_table_downloads_with_the_same_numbers(app, world, as_user):
    from app import statistics
    from app.scoping import Scope
    c = as_user("school_a1_clerk")
    with app.app_context():
        _, headers, rows = statistics.table(db.session, Scope("school", school_id=world.schools["a1"]), "grades")
    ws = load_workbook(io.BytesIO(c.get("/statistics/download/grades.xlsx").data)).worksheets[0]
    values = [[cell.value for cell in row] for row in ws.iter_rows()]
    assert values[0] == headers
    assert values[1:] == [[str(v) for v in r] for r in rows]
    assert c.get("/statistics/download/nothing.xlsx").status_code == 404


def test_status_changes_are_counted_by_type(app, world, client):
    from datetime import datetime
    from app import clock, statistics
    from app.scoping import ALL
    from tests.test_status_change import approve, file
    clock.fix(datetime(2026, 11, 20, 10, 0))
    try:
        with app.app_context():
            sid = db.session.scalar(select(Student.id).where(Student.school_id == world.schools["a1"],
                                                             Student.cohort_year == 2025))
        rid = file(client, "a1", sid, "休学").get_json()["result"]["id"]
        approve(client, "a1", "a", rid)
        with app.app_context():
            _, _, rows = statistics.table(db.session, ALL, "changes", 2026)
        assert rows == [("休学", 11, 1)]
    finally:
        clock.fix(None)


def test_county_rows_add_up_to_the_school_rows(app, world):
    from app import statistics
    from app.scoping import ALL
    with app.app_context():
        _, _, counties = statistics.table(db.session, ALL, "counties")
        _, _, schools = statistics.table(db.session, ALL, "overview")
    assert sum(r[2] for r in counties) == sum(r[1] for r in schools)
    assert {r[0] for r in counties} == {"中原区", "金水区"} and all(r[1] == 2 for r in counties)


def test_swagger_ui_for_signed_in_users_only(app, world, as_user):
    assert as_user("school_a1_clerk").get("/swagger/v1").status_code == 200
    assert app.test_client().get("/swagger/v1").status_code in (302, 401, 403)
    spec = as_user("school_a1_clerk").get("/api/v1/_openapi")
    assert spec.status_code == 200 and "/api/v1/student/" in spec.get_json()["paths"]


def test_many_classes_list_only_flagged_ones_and_chart_bands(app, world, as_user, monkeypatch):
    """A city's thousands of classes: the page lists the full and 大班额 ones, charts all of them in size bands,
    and the download keeps every class."""
    from app import statistics
    monkeypatch.setattr(statistics, "SHOW_ALL_CLASSES", 2)
    with app.app_context():
        klass = db.session.scalar(select(SchoolClass).where(SchoolClass.school_id == world.schools["a1"]))
        klass.capacity = 3
        db.session.commit()
        full = f"{klass.cohort_year}级{klass.name}"
        total = db.session.scalar(select(func.count()).select_from(SchoolClass).where(
            SchoolClass.school_id.in_([world.schools["a1"], world.schools["a2"]])))
    c = as_user("county_a_clerk")
    page = c.get("/statistics/").get_data(as_text=True)
    table = page[page.index('id="table-classes"'):]
    table = table[:table.index("</table>")]
    assert full in table and table.count("<tr") == 1 + 1          # header + the one full class
    assert f"共 {total} 个班" in page
    import json
    data = json.loads(page.split("var data = ", 1)[1].split(";\n", 1)[0])
    assert sum(n for _, n in data["bands"]) == total and data["bands"][0] == ["30人及以下", total]
    ws = load_workbook(io.BytesIO(c.get("/statistics/download/classes.xlsx").data)).worksheets[0]
    assert ws.max_row == 1 + total
