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


# --- the snapshot (统计快照) of province and city bureaus ---------------------------------------------------------

import pytest  # noqa: E402
from sqlalchemy import text, update  # noqa: E402

from tests.test_jobs import make_queue, redis_client  # noqa: E402,F401  (fixtures: a real queue and worker)

PROVINCE = ("bureau_province", "410000")
CITY = ("bureau_city", "410100")


@pytest.fixture
def snapshots(app, world):
    """No snapshot before or after each test (the suite's wipe does not know these derived tables), and a province
    and a city bureau account (the demo has county ones only)."""
    from app.roles import ROLE_BUREAU_CLERK
    from models import StatisticsRefresh, StudentTally

    def clear():
        with app.app_context():
            db.session.query(StudentTally).delete()
            db.session.query(StatisticsRefresh).delete()
            db.session.commit()
    clear()
    with app.app_context():
        sm = app.appbuilder.sm
        for username, region in (PROVINCE, CITY):
            sm.add_user(username, "经办", "教育局", f"{username}@xueji.example", role=[sm.find_role(ROLE_BUREAU_CLERK)],
                        password="Xueji#2026", must_change_password=False, region_code=region)
        db.session.commit()
    yield
    clear()


def overview_table(page: str) -> str:
    start = page.index('id="table-overview"')
    return page[start:page.index("</table>", start)]


def _scopes():
    from app.scoping import ALL, Scope
    return {"province": Scope("region", region_code="410000", region_level="province"),
            "city": Scope("region", region_code="410100", region_level="city"), "all": ALL}


def _every_table(scope):
    """Every table as computed and downloaded, and the 班额 the page shows (its own path for a large snapshot)."""
    from app import statistics
    tables = {name: statistics.table(db.session, scope, name, 2026) for name in statistics.TABLES}
    return {**tables, "page classes": statistics.classes_for_page(db.session, scope)}


def _live_and_summary(app, monkeypatch, scope):
    """Every table of the scope from the snapshot, then live (the summary switched off by the setting)."""
    from app import statistics
    with app.app_context():
        assert statistics.source(db.session, scope) is not None            # really read from the snapshot
        summary = _every_table(scope)
    monkeypatch.setitem(app.config, statistics.LEVELS_SETTING, "")
    with app.app_context():
        assert statistics.source(db.session, scope) is None
        live = _every_table(scope)
    monkeypatch.delitem(app.config, statistics.LEVELS_SETTING)
    return summary, live


def test_the_snapshot_equals_the_live_numbers_in_every_table(app, world, snapshots, monkeypatch, client):
    """Province and city: every table (and so every chart and download) from the snapshot equals the live one at
    the refresh, also with a 户口性质 code beyond 1/2 and the page's 班额 of many classes (bands, the full ones,
    at most MAX_FLAGGED_ON_SCREEN of them); after a 休学 the snapshot keeps the old numbers until the next refresh,
    which brings them level again."""
    from datetime import datetime
    from app import clock, statistics
    from tests.test_status_change import through
    monkeypatch.setattr(statistics, "SHOW_ALL_CLASSES", 2)
    monkeypatch.setattr(statistics, "MAX_FLAGGED_ON_SCREEN", 2)
    with app.app_context():
        sid = db.session.scalar(select(Student.id).where(Student.school_id == world.schools["a1"],
                                                         Student.cohort_year == 2025, Student.status == "在校"))
        db.session.execute(text("UPDATE student SET hukou_type = '3' WHERE id = :id"), {"id": sid})
        for klass in db.session.scalars(select(SchoolClass).order_by(SchoolClass.id).limit(3)):
            klass.capacity = 3                                # the test world seats 3 a class: 已满
        db.session.commit()
        run = statistics.refresh(db.session, None)
        assert run.state == "done" and run.students > 0 and run.groups > 0
    for name, scope in _scopes().items():
        summary, live = _live_and_summary(app, monkeypatch, scope)
        assert summary == live, name
        assert summary["overview"][2] and ("3", 1) in [(h, n) for h, n in summary["hukou"][2]], name
        page = summary["page classes"]
        assert page.bands and page.flagged == 3 and len(page.rows) == 2, name

    clock.fix(datetime(2026, 11, 20, 10, 0))
    try:
        through(client, "a1", "a", sid, "休学")
    finally:
        clock.fix(None)
    summary, live = _live_and_summary(app, monkeypatch, _scopes()["city"])
    assert summary["overview"] != live["overview"]          # the snapshot is what was counted at the refresh
    with app.app_context():
        statistics.refresh(db.session, None)
    for name, scope in _scopes().items():
        summary, live = _live_and_summary(app, monkeypatch, scope)
        assert summary == live, name


def test_schools_and_counties_stay_live(app, world, snapshots):
    from app import statistics
    from app.scoping import Scope
    with app.app_context():
        statistics.refresh(db.session, None)
        county = Scope("region", region_code="410102", region_level="county")
        assert statistics.source(db.session, county) is None
        assert statistics.source(db.session, Scope("school", school_id=world.schools["a1"])) is None
        assert statistics.source(db.session, _scopes()["province"]) is not None


def test_the_page_shows_the_as_of_time_for_province_and_city(app, world, snapshots, as_user):
    from datetime import datetime
    from app import clock, statistics
    clock.fix(datetime(2026, 11, 20, 2, 0))
    try:
        with app.app_context():
            statistics.refresh(db.session, None)
    finally:
        clock.fix(None)
    with app.app_context():
        db.session.execute(text("UPDATE student SET status = '休学' WHERE school_id = :s"), {"s": world.schools["a1"]})
        db.session.commit()
    with app.app_context():
        name = db.session.get(School, world.schools["a1"]).name
    for username, _region in (PROVINCE, CITY):
        page = as_user(username).get("/statistics/").get_data(as_text=True)
        assert "数据截至 2026-11-20 02:00" in page and 'id="statistics-refresh"' in page, username
        assert name in overview_table(page)                                   # counted at 02:00
    for username in ("county_a_clerk", "school_a1_clerk"):
        page = as_user(username).get("/statistics/").get_data(as_text=True)
        assert "数据截至" not in page and 'id="statistics-refresh"' not in page, username
        assert name not in overview_table(page)                               # live: no one 在校 there now


def test_without_a_snapshot_the_bureau_gets_live_numbers_and_is_told(app, world, snapshots, as_user):
    page = as_user(CITY[0]).get("/statistics/").get_data(as_text=True)
    assert "尚未生成统计快照" in page and "数据截至" not in page and 'id="statistics-refresh"' in page
    with app.app_context():
        name = db.session.get(School, world.schools["a1"]).name
    assert name in overview_table(page)


def test_a_school_or_county_account_cannot_refresh(app, world, snapshots, as_user):
    from app import statistics
    from app.errors import RuleError
    from models import StatisticsRefresh, XuejiUser
    for username in ("school_a1_clerk", "county_a_clerk"):
        c = as_user(username)
        assert "刷新统计" not in c.get("/statistics/").get_data(as_text=True)
        assert c.post("/statistics/refresh").status_code == 403, username
        with app.app_context():
            actor = db.session.scalar(select(XuejiUser).where(XuejiUser.username == username))
            with pytest.raises(RuleError):
                statistics.refresh(db.session, actor)
            assert db.session.scalar(select(func.count()).select_from(StatisticsRefresh)) == 0


def test_the_button_queues_one_refresh_and_shows_it_running(app, world, snapshots, as_user, monkeypatch):
    """刷新统计 hands the refresh to app.jobs and the page says it is running (the button disabled) until it has
    run; a second click meanwhile starts nothing; a run asked for long ago that never finished is not running."""
    from datetime import timedelta
    from app import clock, jobs, statistics
    from models import StatisticsRefresh
    queued = []
    monkeypatch.setattr(jobs, "enqueue", lambda path, *args, **kw: queued.append((path, args)))
    c = as_user(PROVINCE[0])
    assert c.post("/statistics/refresh").status_code == 302
    assert c.post("/statistics/refresh").status_code == 302
    assert [(p, len(a)) for p, a in queued] == [("app.statistics.run_refresh", 1)]
    page = c.get("/statistics/").get_data(as_text=True)
    assert 'id="statistics-running"' in page and "正在刷新统计" in page
    assert re.search(r'<button type="submit" class="btn btn-default btn-sm" disabled>', page)
    with app.app_context():
        statistics.run_refresh(*queued[0][1])                           # what the thread or the worker runs
    with app.app_context():
        run = db.session.scalars(select(StatisticsRefresh)).one()
        assert (run.state, run.requested_by) == ("done", PROVINCE[0]) and run.as_of is not None
    page = c.get("/statistics/").get_data(as_text=True)
    assert f"数据截至 {run.as_of:%Y-%m-%d %H:%M}" in page and 'id="statistics-running"' not in page
    # a duplicate run of the same job does nothing
    with app.app_context():
        assert statistics.refresh(db.session, None, run.id) is None
    # a run whose worker died long ago does not keep the button disabled
    assert c.post("/statistics/refresh").status_code == 302 and len(queued) == 2
    with app.app_context():
        db.session.execute(update(StatisticsRefresh).where(StatisticsRefresh.state == "queued").values(
            requested_at=clock.now() - statistics.STALE_AFTER - timedelta(minutes=1)))
        db.session.commit()
    assert 'id="statistics-running"' not in c.get("/statistics/").get_data(as_text=True)
    assert c.post("/statistics/refresh").status_code == 302 and len(queued) == 3


def test_the_button_runs_the_refresh_in_the_background(app, world, snapshots, as_user):
    """Embedded (no queue): the click's refresh runs in a thread of the web process."""
    import time
    from models import StatisticsRefresh
    assert as_user(CITY[0]).post("/statistics/refresh").status_code == 302
    for _ in range(200):
        with app.app_context():
            if db.session.scalar(select(StatisticsRefresh.state)) != "queued":
                break
        time.sleep(0.05)
    with app.app_context():
        assert db.session.scalar(select(StatisticsRefresh.state)) == "done"


def test_a_failed_refresh_leaves_the_old_snapshot(app, world, snapshots, monkeypatch, as_user):
    """All or nothing: a refresh that fails after deleting the old rows rolls back; the old snapshot, its time and
    its numbers stay, and the page says the refresh failed."""
    from app import statistics
    from models import StatisticsRefresh, StudentTally
    with app.app_context():
        first = statistics.refresh(db.session, None)
        first_id, as_of = first.id, first.as_of
        rows = db.session.scalar(select(func.count()).select_from(StudentTally))
        before = _every_table(_scopes()["province"])

    def fail(session, run_id):
        assert session.scalar(select(func.count()).select_from(StudentTally)) == 0     # the delete has run
        raise RuntimeError("disk full")
    monkeypatch.setattr(statistics, "_insert_tally", fail)
    with app.app_context():
        with pytest.raises(RuntimeError):
            statistics.refresh(db.session, None)
        assert statistics.snapshot(db.session) == (first_id, as_of)
        assert db.session.scalar(select(func.count()).select_from(StudentTally)) == rows
        assert _every_table(_scopes()["province"]) == before
    # through the button: the job records the failure on its run
    monkeypatch.setattr("app.jobs.enqueue", lambda path, *args, **kw: statistics.run_refresh(*args))
    c = as_user(PROVINCE[0])
    c.post("/statistics/refresh")
    with app.app_context():
        assert db.session.scalar(select(StatisticsRefresh.state).order_by(StatisticsRefresh.id.desc())) == "failed"
    page = c.get("/statistics/").get_data(as_text=True)
    assert "上次刷新统计失败" in page and f"数据截至 {as_of:%Y-%m-%d %H:%M}" in page


def test_refresh_statistics_command(app, world, snapshots):
    from app import statistics
    result = app.test_cli_runner().invoke(args=["xueji", "refresh-statistics"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        total = db.session.scalar(select(func.count()).select_from(Student).where(
            Student.status == "在校", Student.deleted_at.is_(None)))
        run = statistics.snapshot(db.session)
    assert run is not None and f"在校生{total}人" in result.output and "数据截至" in result.output


def test_long_tables_list_their_first_rows_and_download_all(app, world, as_user, monkeypatch):
    """A province has thousands of schools: beyond ROWS_ON_SCREEN rows a table on the page lists its first ones and
    says how many there are; the download keeps every row."""
    from app import statistics
    monkeypatch.setattr(statistics, "ROWS_ON_SCREEN", 1)
    c = as_user("county_a_clerk")
    page = c.get("/statistics/").get_data(as_text=True)
    assert overview_table(page).count("<tr") == 1 + 1 and "共 2 行，这里列出前 1 行" in page
    ws = load_workbook(io.BytesIO(c.get("/statistics/download/overview.xlsx").data)).worksheets[0]
    assert ws.max_row == 1 + 2


def test_a_school_chosen_by_a_bureau_is_counted_live(app, world, snapshots, as_user):
    """A province bureau that picks one school in the filter sees that school's live numbers, and may still
    refresh."""
    from app import statistics
    with app.app_context():
        statistics.refresh(db.session, None)
    page = as_user(PROVINCE[0]).get(f"/statistics/?school={world.schools['a1']}").get_data(as_text=True)
    assert "所选学校的数据为实时统计" in page and "数据截至" not in page and 'id="statistics-refresh"' in page


def test_with_the_queue_a_worker_process_refreshes(make_queue, snapshots, app):
    """With XUEJI_QUEUE_URL the button's refresh is an RQ job (nothing runs in the web process) that a `xueji
    worker` process runs as the account that asked."""
    import threading
    from models import StatisticsRefresh
    q = make_queue()
    try:
        c = q.client(PROVINCE[0])
        assert c.post("/statistics/refresh").status_code == 302
        assert not [t for t in threading.enumerate() if t.name.startswith("statistics-")]
        assert "正在刷新统计" in c.get("/statistics/").get_data(as_text=True)
        q.burst()
        with app.app_context():
            run = db.session.scalars(select(StatisticsRefresh)).one()
            assert (run.state, run.requested_by) == ("done", PROVINCE[0]) and run.students > 0
        assert f"数据截至 {run.as_of:%Y-%m-%d %H:%M}" in c.get("/statistics/").get_data(as_text=True)
    finally:
        for key in q.redis.scan_iter("*statistics-*"):
            q.redis.delete(key)


def test_an_unreachable_queue_refuses_the_refresh_and_says_so(app, world, snapshots, make_app):
    from app import statistics
    from models import StatisticsRefresh
    from tests.conftest import login
    c = make_app(XUEJI_QUEUE_URL="redis://127.0.0.1:1/0").test_client()
    login(c, PROVINCE[0])
    page = c.post("/statistics/refresh", follow_redirects=True).get_data(as_text=True)
    assert statistics.QUEUE_DOWN in page
    with app.app_context():
        assert {(r.state, r.error) for r in db.session.scalars(select(StatisticsRefresh))} == \
            {("failed", statistics.QUEUE_DOWN)}
