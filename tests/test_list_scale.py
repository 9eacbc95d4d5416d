"""The student lists and statistics at province scale (docs/PERFORMANCE.md): two statements per list page with
only the listed columns, the county's schools as ids, searches that keep FAB's meaning while using indexes,
and statistics cut from one pass whose memo never serves stale numbers."""
import re

from sqlalchemy import update

from app.extensions import db
from models import Student
from tests.conftest import statements


def statements_of(app, client, url):
    with statements() as seen:
        resp = client.get(url)
    assert resp.status_code == 200
    return seen, resp.get_data(as_text=True)


def listed(client, url) -> str:
    """The cells of the list table (the search form and the export links echo the search values)."""
    page = client.get(url).get_data(as_text=True)
    return " ".join(re.findall(r"<td[^>]*>\s*([^<]*?)\s*</td>", page))


def test_bureau_list_is_one_count_and_one_page_with_the_listed_columns(app, world, as_user):
    c = as_user("county_a_clerk")
    c.get("/student/list/")
    seen, page = statements_of(app, c, "/student/list/?_flt_3_status=在校")
    on_student = [s for s in seen if "FROM student" in s]
    assert len(on_student) == 2                                  # the count and the page: no N+1
    count, rows = sorted(on_student, key=lambda s: "count(" not in s)
    assert "count(*)" in count and "SELECT student." not in count
    assert "JOIN school" in rows and "JOIN school_class" in rows and "student.phone" not in rows
    assert "ORDER BY student.school_id" in rows
    assert not [s for s in seen if "ab_permission" in s or "FROM school_class" in s]   # no class dropdown
    assert "school_class" not in page.split("AdminFilters", 1)[1]
    assert "school_class" in as_user("school_a1_clerk").get("/student/list/").get_data(as_text=True) \
        .split("AdminFilters", 1)[1]                             # a school keeps its class filter


def test_name_search_keeps_case_insensitive_meaning_for_latin_letters(app, world, as_user):
    sid = world.student_of("a1")
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == sid).values(name="Anna李"))
        db.session.commit()
        xjh = db.session.get(Student, sid).xjh
    c = as_user("county_a_clerk")
    for text in ("anna", "ANNA", "李", "na李"):
        assert xjh in listed(c, f"/student/list/?_flt_2_name={text}"), text
    assert xjh not in listed(c, "/student/list/?_flt_2_name=王五")


def test_xjh_prefix_search_is_exact_and_case_insensitive(app, world, as_user):
    mine, other = world.student_of("a1"), world.student_of("b1")
    with app.app_context():
        xjh, foreign = db.session.get(Student, mine).xjh, db.session.get(Student, other).xjh
    c = as_user("county_a_clerk")
    for prefix in (xjh[:9], xjh[:9].lower(), xjh):
        assert xjh in listed(c, f"/student/list/?_flt_0_xjh={prefix}"), prefix
    assert xjh not in listed(c, f"/student/list/?_flt_0_xjh={xjh[:-1]}Z")
    assert foreign not in listed(c, f"/student/list/?_flt_0_xjh={foreign}")                       # scope holds
    assert foreign in listed(as_user("county_b_clerk"), f"/student/list/?_flt_0_xjh={foreign[:12]}")


def test_list_sorts_by_every_offered_column(app, world, as_user):
    c = as_user("county_a_clerk")
    for column in ("xjh", "name", "sex_label", "birth_date", "cohort_year", "status", "has_problem"):
        assert c.get(f"/student/list/?_oc_StudentView={column}&_od_StudentView=desc").status_code == 200, column


def test_statistics_memo_follows_changes_in_the_session(app, world):
    from app import statistics
    from app.scoping import Scope
    scope = Scope("region", region_code="410102", region_level="county")

    def migrants():
        return {r[0]: r[5] for r in statistics.table(db.session, scope, "overview")[2]}
    with app.app_context():
        before = migrants()
        student = db.session.get(Student, world.student_of("a1"))
        student.migrant_child = not student.migrant_child        # pending, not flushed: never served stale
        after = migrants()
        db.session.rollback()
        again = migrants()
    changed = [name for name in before if before[name] != after[name]]
    assert len(changed) == 1 and abs(after[changed[0]] - before[changed[0]]) == 1
    assert again == before


def test_statistics_count_every_hukou_code(app, world):
    """户口性质 beyond 农业/非农业/未填 (the code table is extensible) still get their own row."""
    from app import statistics
    from app.scoping import ALL
    ids = world.students["a1"][:2]
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == ids[0]).values(hukou_type="9"))
        db.session.execute(update(Student).where(Student.id == ids[1]).values(hukou_type=None))
        db.session.commit()
        rows = dict(statistics.table(db.session, ALL, "hukou")[2])
        total = sum(r[1] for r in statistics.table(db.session, ALL, "overview")[2])
    assert rows["9"] == 1 and rows["未填"] == 1 and sum(rows.values()) == total
