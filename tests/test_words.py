"""Words, not codes (issue 16): grade names, code labels, region names, times to the minute, nothing for a
missing value — on every list page in each role's menu and on the student, request, 学籍卡, profile and audit
pages."""
import re
from html import unescape

import pytest
from sqlalchemy import select

from app.codes import region_label, region_names
from app.extensions import db
from app.schoolyear import grade_name, grade_names
from models import AuditEvent, Student
from tests.conftest import api_headers
from tests.test_workflow import file_change

ROLES = ["admin", "county_a_clerk", "county_a_reviewer", "school_a1_clerk", "school_a1_leader"]
REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>")
MICRO = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{3,6}")
NONE = re.compile(r">\s*(None|\[[^\]<]*\])\s*<")       # "None" or a Python list ("[学校学籍管理员]") as a value
# pages whose views belong to other files of issue 16 (the search form's filed_at default to the microsecond;
# the role list's permissions as a Python list): remove an entry when its view is fixed
NOT_YET: dict[str, str] = {}          # pages known to fail the checks (none)
YEAR_ONLY = re.compile(r"<td>\s*20\d\d\s*</td>")


# --- the one grade function -------------------------------------------------------------------------------

def test_grade_names_from_cohort_schooling_and_school_year():
    assert grade_name("初中", 2026, 2026, "初中3年") == "初一"
    assert grade_name("初中", 2024, 2026, "初中3年") == "初三"
    assert grade_name("高中", 2025, 2026, "高中3年") == "高二"
    assert grade_name("初中", 2023, 2026, "初中4年") == "初四"          # 五四制
    assert grade_name("初中", 2023, 2026, "初中3年") == "2023级"        # past the school's years


def test_grade_of_a_six_year_school():
    assert grade_names("初中", "6年") == ("初一", "初二", "初三", "高一", "高二", "高三")
    assert grade_name("初中", 2021, 2026, "六年一贯制") == "高三"
    assert grade_name("初中", 2024, 2026, "6年") == "初三"
    assert grade_name("初中", 2023, 2026, "6年") == "高一"


def test_grade_moves_with_promotion_and_graduates_keep_their_cohort():
    assert grade_name("初中", 2025, 2026, "初中3年", "在校") == "初二"
    assert grade_name("初中", 2025, 2027, "初中3年", "在校") == "初三"    # after 升级 (school year + 1)
    assert grade_name("初中", 2024, 2026, "初中3年", "休学") == "初三"
    assert grade_name("初中", 2023, 2026, "初中3年", "毕业") == "2023级"
    assert grade_name("初中", 2024, 2026, "初中3年", "转出") == "2024级"
    assert grade_name("初中", None, 2026) == ""


def test_region_names_from_the_region_table_else_gb2260(app, world):
    with app.app_context():
        assert region_names(db.session, "410102017021") == "河南省郑州市中原区"        # Region table (demo)
        assert region_label(db.session, "410102017021") == "河南省郑州市中原区（410102017021）"
        assert region_names(db.session, "110101") == "北京市东城区"                  # GB/T 2260, 市辖区 skipped
        assert region_names(db.session, "440305") == "广东省深圳市南山区"            # the latest name
        assert region_label(db.session, "999999") == "999999"
        assert region_label(db.session, None) == ""


# --- pages ---------------------------------------------------------------------------------------------

def _menu_lists(html: str) -> list[str]:
    """Every list page the menu offers (…/list/)."""
    links = re.findall(r'href="(/[^"?#]*/list/?)"', html)
    return sorted(set(unescape(link) for link in links))


def _words_problems(html: str) -> list[str]:
    body = html.split("<body", 1)[-1]
    body = re.sub(r"<script.*?</script>", "", body, flags=re.S)
    body = re.sub(r"<(select|option|textarea)[^>]*>.*?</\1>", "", body, flags=re.S)
    found = []
    for pattern, what in ((REPR, "python repr"), (MICRO, "microseconds"), (NONE, "None or a list")):
        found += [f"{what}: {m.group(0)[:80]}" for m in pattern.finditer(body)]
    return found


@pytest.fixture
def a_request(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    resp = file_change(client, h, sid, {"name": "李改名"})
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()["result"]["id"] if "result" in resp.get_json() else resp.get_json()["id"]


def _sex(app, sid):
    with app.app_context():
        return db.session.get(Student, sid).sex


@pytest.mark.parametrize("user", ROLES)
def test_every_page_shows_words(app, world, as_user, a_request, user):
    c = as_user(user)
    home = c.get("/")
    assert home.status_code == 200
    pages = _menu_lists(home.get_data(as_text=True))
    assert "/student/list/" in pages and len(pages) > 5, pages
    sid = world.student_of("a1")
    pages += [f"/student/show/{sid}", f"/student/card/{sid}", f"/request/show/{a_request}",
              "/users/userinfo/", "/audit/list/"]
    problems = {}
    for page in pages:
        resp = c.get(page)
        if resp.status_code in (403, 404) and page in ("/audit/list/", f"/request/show/{a_request}"):
            continue                                 # not this role's page
        assert resp.status_code == 200, (page, resp.status_code)
        found = _words_problems(resp.get_data(as_text=True))
        if found and page not in NOT_YET:
            problems[page] = found[:5]
    assert not problems, "\n".join(f"{page}: {found}" for page, found in problems.items())


def test_student_list_shows_grade_names_not_years(app, world, as_user):
    html = as_user("school_a1_clerk").get("/student/list/").get_data(as_text=True)
    assert re.search(r"<td>\s*初[一二三]\s*</td>", html)
    assert not YEAR_ONLY.search(html), YEAR_ONLY.search(html).group(0)


def test_the_keychange_form_shows_labels(app, world, as_user):
    sid = world.student_of("a1")
    html = as_user("school_a1_clerk").get(f"/keychange/{sid}").get_data(as_text=True)
    if "性别" in html:
        row = re.search(r"性别</td><td>([^<]*)</td>", html)
        assert row and row.group(1) in ("男", "女"), row and row.group(1)


def test_an_export_is_logged_against_the_export_not_a_student(app, world, as_user):
    from tests.conftest import export_xlsx
    c = as_user("county_a_clerk")
    job_id, _sheet = export_xlsx(c, "/student/export/xlsx")
    c.get("/student/export/csv").get_data()
    with app.app_context():
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).all()
        assert {(e.entity, e.entity_id) for e in events} == {("export_job", str(job_id)), ("export", None)}
    with app.app_context():
        first = db.session.scalars(select(Student.id).order_by(Student.id)).first()
    html = c.get(f"/student/show/{first}").get_data(as_text=True)
    assert "rows=" not in html


def test_exports_carry_grade_names_and_code_labels(app, world, as_user):
    from tests.conftest import export_xlsx
    _job, sheet = export_xlsx(as_user("school_a1_clerk"), "/student/export/xlsx")
    rows = list(sheet.iter_rows(values_only=True))
    header = list(rows[0])
    grade, sex = header.index("年级"), header.index("性别")
    grades = {r[grade] for r in rows[1:]}
    assert {"初一", "初二", "初三"} <= grades
    assert all(g in ("初一", "初二", "初三") or re.fullmatch(r"20\d\d级", g) for g in grades), grades   # graduates
    assert {r[sex] for r in rows[1:]} <= {"男", "女"}


def test_audit_of_a_coded_field_shows_the_label(app, world):
    sid = world.student_of("a1")
    with app.app_context():
        s = db.session.get(Student, sid)
        s.ethnicity = "02" if s.ethnicity != "02" else "01"
        db.session.commit()
        ev = db.session.scalars(select(AuditEvent).where(AuditEvent.field == "ethnicity")).all()
        assert ev and ev[-1].new_value in ("蒙古族", "汉族"), [(e.old_value, e.new_value) for e in ev]
