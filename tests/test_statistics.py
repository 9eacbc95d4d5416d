"""Statistics: numbers equal a hand count on the test world, scope applies, the chart page uses the vendored
ECharts, and each table downloads as .xlsx with the same numbers."""
import io
import json
import re

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


def class_label(klass) -> str:
    """The 班额 table's 班级: the grade name (初一…) read from cohort, 学制 and the county's school year, then the
    class's own name."""
    from app import schoolyear
    from app.schoolyear import grade_name
    school = db.session.get(School, klass.school_id)
    return grade_name(klass.stage, klass.cohort_year, schoolyear.current(db.session, school.county_code),
                      school.schooling) + klass.name


def chart_data(page: str) -> dict:
    return json.loads(page.split("var data = ", 1)[1].split(";\n", 1)[0])


def chart_div(page: str, name: str) -> str:
    start = page.index(f'<div id="chart-{name}"')
    return page[start:page.index("</div>", start)]


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
        label = class_label(klass)
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


def test_status_changes_are_counted_by_type(app, world, client, as_user):
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
        c = as_user("school_a1_clerk")
        page = c.get("/statistics/").get_data(as_text=True)               # this year by default
        assert chart_data(page)["changes"] == [["休学", 11, 1]] and "暂无数据" not in chart_div(page, "changes")
        # the year filter drives the table, the chart and the download alike
        page = c.get("/statistics/?year=2025").get_data(as_text=True)
        assert chart_data(page)["changes"] == [] and "暂无数据" in chart_div(page, "changes")
        assert "/statistics/download/changes.xlsx?year=2025" in page
        ws = load_workbook(io.BytesIO(c.get("/statistics/download/changes.xlsx?year=2025").data)).worksheets[0]
        assert ws.max_row == 1
        ws = load_workbook(io.BytesIO(c.get("/statistics/download/changes.xlsx?year=2026").data)).worksheets[0]
        assert [[cell.value for cell in row] for row in ws.iter_rows()][1:] == [["休学", "11", "1"]]
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
        full = class_label(klass)
        total = db.session.scalar(select(func.count()).select_from(SchoolClass).where(
            SchoolClass.school_id.in_([world.schools["a1"], world.schools["a2"]])))
    c = as_user("county_a_clerk")
    page = c.get("/statistics/").get_data(as_text=True)
    table = page[page.index('id="table-classes"'):]
    table = table[:table.index("</table>")]
    assert full in table and table.count("<tr") == 1 + 1          # header + the one full class
    assert f"共 {total} 个班" in page
    data = chart_data(page)
    assert sum(n for _, n in data["bands"]) == total and data["bands"][0] == ["30人及以下", total]
    ws = load_workbook(io.BytesIO(c.get("/statistics/download/classes.xlsx").data)).worksheets[0]
    assert ws.max_row == 1 + total


def test_an_empty_chart_says_so_instead_of_bare_axes(app, world, as_user):
    """County B has no 学籍异动: its chart is marked empty and shows 暂无数据 (the script then draws the title and
    the text, no axes); charts with numbers are not marked."""
    page = as_user("county_b_reviewer").get("/statistics/").get_data(as_text=True)
    changes = chart_div(page, "changes")
    assert 'data-empty="1"' in changes and "暂无数据" in changes
    assert chart_data(page)["changes"] == []
    for name in ("grades", "hukou", "classes"):
        assert "data-empty" not in chart_div(page, name) and "暂无数据" not in chart_div(page, name)
    assert 'getAttribute("data-empty")' in page and "graphic" in page
    # every script carries the CSP nonce, and no inline event handler
    assert all('nonce="' in tag for tag in re.findall(r"<script[^>]*>", page))
    assert not re.search(r"\son[a-z]+=\"", page)


def test_school_filter_narrows_every_table_within_the_scope(app, world, as_user):
    from app import statistics
    from app.scoping import Scope
    with app.app_context():
        names = {k: db.session.get(School, world.schools[k]).name for k in ("a1", "a2", "b1")}
        county = {t: statistics.table(db.session, Scope("region", region_code="410102", region_level="county"), t)[2]
                  for t in ("overview", "grades")}
        a1 = {t: statistics.table(db.session, Scope("school", school_id=world.schools["a1"]), t)[2]
              for t in ("overview", "grades")}
    c = as_user("county_a_clerk")
    page = c.get("/statistics/").get_data(as_text=True)
    options = page[page.index('id="filter-school"'):page.index("</select>", page.index('id="filter-school"'))]
    assert names["a1"] in options and names["a2"] in options and names["b1"] not in options   # the user's scope
    assert chart_data(page)["grades"] == [list(r) for r in county["grades"]]

    page = c.get(f"/statistics/?school={world.schools['a1']}").get_data(as_text=True)
    overview = page[page.index('id="table-overview"'):]
    overview = overview[:overview.index("</table>")]
    assert names["a1"] in overview and names["a2"] not in overview
    assert chart_data(page)["grades"] == [list(r) for r in a1["grades"]] != [list(r) for r in county["grades"]]
    assert all(label.startswith(names["a1"]) for label in chart_data(page)["class_labels"])
    # the download takes the same filter, so its numbers are the page's
    assert f"/statistics/download/grades.xlsx?school={world.schools['a1']}" in page
    ws = load_workbook(io.BytesIO(c.get(f"/statistics/download/grades.xlsx?school={world.schools['a1']}").data)
                       ).worksheets[0]
    assert [[cell.value for cell in row] for row in ws.iter_rows()][1:] == [[str(v) for v in r] for r in a1["grades"]]

    # another county's school is ignored: the county's own numbers, nothing of county B
    page = c.get(f"/statistics/?school={world.schools['b1']}").get_data(as_text=True)
    assert names["b1"] not in page.split('id="filter-school"', 1)[1]
    assert chart_data(page)["grades"] == [list(r) for r in county["grades"]]
    ws = load_workbook(io.BytesIO(c.get(f"/statistics/download/overview.xlsx?school={world.schools['b1']}").data)
                       ).worksheets[0]
    assert {row[0].value for row in ws.iter_rows(min_row=2)} == {names["a1"], names["a2"]}
    # a school's own staff cannot widen or move their scope either
    page = as_user("school_a1_clerk").get(f"/statistics/?school={world.schools['a2']}").get_data(as_text=True)
    assert chart_data(page)["grades"] == [list(r) for r in a1["grades"]] and 'id="filter-school"' not in page


def test_class_labels_carry_the_school_name(app, world, as_user):
    """Two schools' 初一1班 are two different bars: each label names its school."""
    with app.app_context():
        names = {db.session.get(School, world.schools[k]).name for k in ("a1", "a2")}
        classes = db.session.scalars(select(SchoolClass).where(
            SchoolClass.school_id.in_([world.schools["a1"], world.schools["a2"]]))).all()
        expected = {f"{db.session.get(School, k.school_id).name} {class_label(k)}" for k in classes}
    labels = chart_data(as_user("county_a_clerk").get("/statistics/").get_data(as_text=True))["class_labels"]
    assert set(labels) == expected and len(labels) == len(set(labels)) == len(classes)
    assert {label.split(" ", 1)[0] for label in labels} == names


def test_grade_labels_are_grade_names(app, world, as_user):
    """年级 on the table, the chart and the download reads 初一…初三 (cohort, 学制 and the county's school year), never
    a cohort year."""
    from app import schoolyear, statistics
    from app.schoolyear import grade_name
    from app.scoping import ALL
    with app.app_context():
        _, _, rows = statistics.table(db.session, ALL, "grades")
        hand = {}
        for school_id, county, schooling, stage, cohort, n in db.session.execute(
                select(Student.school_id, School.county_code, School.schooling, Student.stage, Student.cohort_year,
                       func.count()).join(School, School.id == Student.school_id)
                .where(Student.status == "在校", Student.deleted_at.is_(None))
                .group_by(Student.school_id, School.county_code, School.schooling, Student.stage, Student.cohort_year)):
            key = (stage, grade_name(stage, cohort, schoolyear.current(db.session, county), schooling))
            hand[key] = hand.get(key, 0) + n
    assert {(r[0], r[1]): r[2] + r[3] for r in rows} == hand
    assert rows and all(re.fullmatch(r"[初高][一二三四]", r[1]) for r in rows)
    page = as_user("county_a_clerk").get("/statistics/").get_data(as_text=True)
    assert all(re.fullmatch(r"[初高][一二三四]", r[1]) for r in chart_data(page)["grades"])
    assert "级</td>" not in page[page.index('id="table-grades"'):page.index("</table>", page.index('id="table-grades"'))]
