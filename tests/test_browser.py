"""Real-browser journeys: Debian's chromium, driven by Playwright, clicks and types through the served app
(werkzeug, threaded, CSRF on) on a fresh SQLite demo database of its own; each journey asserts on the Chinese
text the user sees and on the database afterwards. Screenshots: test-artifacts/browser/<journey>.png.

SQLite only (the journeys test the screens, not the database): conftest's `app` fixture, parametrised over
databases, is not used here.
"""
import csv
import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.passwords import verify_password
from app.extensions import db
from tests.browser import (_fixed_clock, expect, journey, live_app, menu, pick, png_bytes, query,  # noqa: F401
                           served)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """(app, server, browser) shared by the journeys: one fresh database, one server, one chromium, built once
    and stopped as soon as this module is done (not kept running through the rest of the suite)."""
    with served(str(tmp_path_factory.mktemp("browser"))) as world:
        yield world


def test_first_login_forces_a_password_change(live_app, journey):
    """A bureau clerk creates a school registrar account; at its first login the new registrar must change the
    initial password: a weak one is refused in Chinese, a strong one accepted, then the 待办 home page shows."""
    from models import School, XuejiUser
    school = query(live_app, select(School.name).where(School.code == "4101020001"))[0][0]

    page = journey.login("county_a_clerk")
    menu(page, "用户权限", "用户列表")
    page.locator('a[href^="/users/add"]').first.click()
    page.fill("#username", "school_a1_new")
    page.fill("#last_name", "李")
    page.fill("#first_name", "新老师")
    page.fill("#email", "school_a1_new@xueji.example")
    pick(page, "school", school)
    pick(page, "roles", "学校学籍管理员")
    page.fill("#phone", "13912340000")
    page.fill("#password", "Chushi#2026")
    page.fill("#conf_password", "Chushi#2026")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("body")).to_contain_text("记录已添加")
    expect(page.locator("table.table-bordered")).to_contain_text("school_a1_new")    # back on the list
    (user,) = query(live_app, select(XuejiUser.must_change_password, School.code)
                    .join(School, School.id == XuejiUser.school_id).where(XuejiUser.username == "school_a1_new"))
    assert user == (True, "4101020001")

    page = journey.login("school_a1_new", "Chushi#2026")
    expect(page).to_have_url(re.compile("/resetmypassword/"))
    expect(page.locator("body")).to_contain_text("首次登录或密码已超过90天未修改，请先修改密码")
    page.goto("/student/list/")                                  # nothing else opens before the change
    expect(page).to_have_url(re.compile("/resetmypassword/"))

    page.fill("#password", "abcdefgh")
    page.fill("#conf_password", "abcdefgh")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("body")).to_contain_text("密码太简单")
    assert query(live_app, select(XuejiUser.must_change_password).where(
        XuejiUser.username == "school_a1_new"))[0][0]

    page.fill("#password", "Xinmima#2027")
    page.fill("#conf_password", "Xinmima#2027")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("body")).to_contain_text("密码已修改")
    page.get_by_role("link", name="学籍管理 Xueji").click()                  # the brand link: home
    expect(page.locator("body")).to_contain_text("待我审核")
    expect(page.locator("body")).to_contain_text(school)
    (after,) = query(live_app, select(XuejiUser.must_change_password, XuejiUser.password, School.code)
                     .join(School, School.id == XuejiUser.school_id).where(XuejiUser.username == "school_a1_new"))
    assert not after.must_change_password and after.code == "4101020001"
    with live_app.app_context():
        assert verify_password(after.password, "Xinmima#2027")[0] and after.password.startswith("$argon2id$")


def test_admission_import_with_errors_then_fixed(live_app, journey, tmp_path):
    """The 高中's registrar downloads the admission template, fills it with openpyxl (three good rows, a mistyped
    学籍号, an ID that Excel turned into a number, a wrong name), uploads it, sees each bad cell marked with a
    Chinese message, fixes the file, uploads it again and commits: the admissions wait for the county."""
    from models import School, Student
    from models.admissions import Admission, ImportBatch
    a1, a2 = (query(live_app, select(School.id).where(School.code == code))[0][0]
              for code in ("4101020001", "4101020002"))
    grads = query(live_app, select(Student.name, Student.xjh, Student.id_number, Student.id).where(
        Student.school_id == a1, Student.status == "毕业").order_by(Student.id).limit(6))
    assert len(grads) == 6

    page = journey.login("school_a2_clerk")
    menu(page, "招生入学", "招生录取（模板导入）")
    expect(page.locator("h3")).to_contain_text("招生录取（模板导入）")
    with page.expect_download() as download:
        page.get_by_role("link", name="下载录取名单模板").click()
    template = tmp_path / "template.xlsx"
    download.value.save_as(template)
    assert download.value.suggested_filename == "自主招生录取名单模板.xlsx"

    def fill(rows, name):
        wb = load_workbook(template)
        ws = wb.worksheets[0]
        assert [c.value for c in ws[1]][:3] == ["姓名", "学籍号", "中学阶段"]
        for r, values in enumerate(rows, start=2):
            for c, value in enumerate(values, start=1):
                ws.cell(r, c, value)
        path = tmp_path / name
        wb.save(path)
        return path

    from app.identity import with_check_char
    good = [[g.name, g.xjh, "高中"] for g in grads[:3]]
    # a well-formed 学籍号 (its check character recomputed) that belongs to nobody
    mistyped = "G" + with_check_char(grads[3].xjh[1:-4] + str((int(grads[3].xjh[-4:-1]) + 1) % 1000).zfill(3))
    first = fill(good + [[grads[3].name, mistyped],                       # row 5: a 学籍号 that does not exist
                         [grads[4].name, int(grads[4].id_number[:17])],   # row 6: ID number turned into a number
                         ["王错名", grads[5].xjh]], "录取名单.xlsx")        # row 7: name does not match

    def upload(path):
        menu(page, "招生入学", "招生录取（模板导入）")
        page.locator("#upload-form input[type=file]").set_input_files(path)
        page.get_by_role("button", name=re.compile("上传并校验")).click()
        page.wait_for_url(re.compile(r"/admissionimport/batch/\d+"))
        return int(page.url.rstrip("/").rsplit("/", 1)[-1])

    # a refused file: the message shows on the upload page, under the form (the XHR upload used to swallow it)
    menu(page, "招生入学", "招生录取（模板导入）")
    junk = tmp_path / "录取名单（网页另存）.xlsx"
    junk.write_bytes(b"<html><body><table><tr><td>\xe5\xa7\x93\xe5\x90\x8d</td></tr></table></body></html>")
    page.locator("#upload-form input[type=file]").set_input_files(junk)
    page.get_by_role("button", name=re.compile("上传并校验")).click()
    expect(page.locator("#upload-error")).to_be_visible()
    expect(page.locator("#upload-error")).to_contain_text("文件扩展名是.xlsx，但内容不是Excel/WPS/LibreOffice表格")
    expect(page).to_have_url(re.compile(r"/admissionimport/$"))
    assert query(live_app, select(func.count()).select_from(ImportBatch))[0][0] == 0

    bad_batch = upload(first)
    body = page.locator("body")
    expect(body).to_contain_text("校验结果")
    expect(body).to_contain_text(f"第5行“学籍号”：{mistyped} 在学籍库中不存在")
    expect(body).to_contain_text("第6行“学籍号”：号码被Excel/WPS转换成了数字")
    expect(body).to_contain_text("第7行“姓名”：“王错名”与学籍号")
    # the offending cells are marked, the rows shown as failed
    for row, column in ((5, 3), (6, 3), (7, 2)):
        cell = page.locator("table tr").filter(has=page.locator("td:first-child", has_text=re.compile(f"^{row}$")))
        expect(cell).to_have_class(re.compile("danger"))
        expect(cell.locator(f"td:nth-child({column})")).to_have_attribute("style", re.compile("background"))
    expect(page.locator("p", has_text="有问题")).to_contain_text("有效 3 行，有问题 3 行")
    page.get_by_role("button", name="全部正确才提交").click()             # all or nothing: refused, nothing kept
    expect(body).to_contain_text("名单有3行未通过校验，按“全部正确才提交”未提交任何记录")
    assert query(live_app, select(func.count()).select_from(Admission).where(Admission.school_id == a2))[0][0] == 0

    fixed = fill(good + [[g.name, g.xjh, "高中"] for g in grads[3:]], "录取名单（已改）.xlsx")
    good_batch = upload(fixed)
    assert good_batch != bad_batch
    expect(page.locator("p", has_text="有问题")).to_contain_text("有效 6 行，有问题 0 行")
    expect(body).not_to_contain_text("不存在")
    page.get_by_role("button", name="全部正确才提交").click()
    expect(body).to_contain_text("已提交6名学生，等待区县教育局审核")
    expect(page.locator("h3 small")).to_contain_text("已提交")

    admitted = query(live_app, select(Admission.student_id, Admission.state, Admission.method).where(
        Admission.school_id == a2, Admission.current == 1).order_by(Admission.student_id))
    assert [(a.student_id, a.state, a.method) for a in admitted] == [(g.id, "待审核", "自主招生") for g in grads]
    assert query(live_app, select(ImportBatch.state).where(ImportBatch.id == bad_batch))[0][0] == "已校验"


def approve(journey, username, request_id, comment):
    """``username`` signs in, opens the request from the 待我审核 list of the home page and approves it."""
    page = journey.login(username)                               # signing in lands on the 待办 home page
    expect(page.locator("h4", has_text="待我审核")).to_be_visible()
    waiting = page.locator("table", has=page.locator("th", has_text="本环节截止"))
    waiting.locator(f'a[href="/request/show/{request_id}"]').click()
    expect(page.locator(".tracker li.current")).to_be_visible()
    page.locator("textarea[name=comment]").fill(comment)
    page.get_by_role("button", name="通过", exact=True).click()
    expect(page.locator("body")).to_contain_text("已办理")
    return page


def a1_pupil(app, offset):
    """An 初二 (cohort 2025) pupil of the 中原区 初中: neither entry nor graduating grade."""
    from models import School, Student
    return query(app, select(Student.id, Student.name, Student.xjh, Student.class_id)
                 .join(School, School.id == Student.school_id)
                 .where(School.code == "4101020001", Student.cohort_year == 2025, Student.status == "在校")
                 .order_by(Student.id).offset(offset).limit(1))[0]


def test_suspension_with_evidence_approved_by_school_and_county(live_app, journey):
    """休学: the registrar files it from the student's page with a PNG 证明材料; the school leader and then the
    county reviewer approve it from their 待办 lists; only then the status becomes 休学."""
    from models import Student
    from models.requests import Evidence, Request
    pupil = a1_pupil(live_app, 0)

    page = journey.login("school_a1_clerk")
    page.goto(f"/student/show/{pupil.id}")
    expect(page.locator("body")).to_contain_text(pupil.xjh)
    page.get_by_role("link", name="学籍异动申请").click()
    # the start page offers only what this pupil may have now, each refused type with its reason
    expect(page.locator("#change-types")).to_contain_text("不能办理")
    page.locator("#change-types tr.offered").get_by_role("link", name="休学", exact=True).click()
    expect(page.locator("h3")).to_contain_text(f"学籍异动申请：{pupil.name}")
    page.locator("select[name=type]").select_option("休学")
    page.locator("textarea[name=reason]").fill("因病住院治疗，家长申请休学一年")
    page.locator("input[name=evidence]").set_input_files(
        {"name": "医院证明.png", "mimeType": "image/png", "buffer": png_bytes()})
    page.get_by_role("button", name="提交申请").click()
    expect(page.locator("body")).to_contain_text("已提交，等待学校学籍主管领导审核")
    expect(page.locator("body")).to_contain_text("医院证明.png")
    rid = int(re.search(r"/request/show/(\d+)", page.url).group(1))
    assert query(live_app, select(Student.status).where(Student.id == pupil.id))[0][0] == "在校"

    approve(journey, "school_a1_leader", rid, "情况属实，同意休学")
    assert query(live_app, select(Student.status).where(Student.id == pupil.id))[0][0] == "在校"   # county next
    page = approve(journey, "county_a_reviewer", rid, "同意")
    expect(page.locator("h3 .label")).to_have_text("已通过")
    expect(page.locator("body")).to_contain_text("情况属实，同意休学")
    page.get_by_role("link", name=re.compile(pupil.name)).click()              # the student's page
    expect(page.locator("tr", has=page.locator("th", has_text="学籍状态")).locator("td")).to_have_text("休学")

    (student,) = query(live_app, select(Student.status, Student.class_id).where(Student.id == pupil.id))
    assert (student.status, student.class_id) == ("休学", None)
    (req,) = query(live_app, select(Request.state, Request.subtype).where(Request.id == rid))
    assert (req.state, req.subtype) == ("已通过", "休学")
    (evidence,) = query(live_app, select(Evidence.original_name, Evidence.mime, Evidence.size).where(
        Evidence.request_id == rid))
    assert evidence == ("医院证明.png", "image/png", len(png_bytes()))


@pytest.fixture(scope="module")
def second_junior_school(live):
    """The demo's two 中原区 schools are an 初中 and a 高中, and a transfer keeps the grade; a same-county
    transfer needs a second 初中 in 中原区: added here through the models and the security manager (the
    record rules run at flush), with a 2025级 class and its two school accounts."""
    app = live[0]
    from app.roles import ROLE_SCHOOL_LEADER, ROLE_SCHOOL_REGISTRAR
    from models import School, SchoolClass
    with app.app_context():
        school = School(code="4101020003", name="郑州市中原区第二初级中学", county_code="410102", school_type="初中",
                        schooling="初中3年")
        db.session.add(school)
        db.session.flush()
        klass = SchoolClass(school_id=school.id, stage="初中", cohort_year=2025, class_no=1, name="1班")
        db.session.add(klass)
        sm = app.appbuilder.sm
        for username, role in (("school_a3_clerk", ROLE_SCHOOL_REGISTRAR), ("school_a3_leader", ROLE_SCHOOL_LEADER)):
            sm.add_user(username, "三", "校", f"{username}@xueji.example", role=[sm.find_role(role)],
                        password="Xueji#2026", must_change_password=False, school_id=school.id, commit=False)
        db.session.commit()
        ids = school.id, klass.id
        db.session.remove()
    return ids


def test_same_county_transfer(live_app, journey, second_junior_school):
    """转学 inside 中原区: the receiving school files it with the 学籍号 and 姓名; 转入校, then the sending school
    (which sees it in its 待办 list) and the county approve; the student then belongs to the new class."""
    from models import Enrollment, Student
    from models.requests import Request
    to_school, to_class = second_junior_school
    pupil = a1_pupil(live_app, 1)

    page = journey.login("school_a3_clerk")
    menu(page, "学籍管理", "转学申请（转入）")
    page.locator("input[name=xjh]").fill(pupil.xjh)
    page.locator("input[name=name]").fill(pupil.name + "某")             # a wrong name: refused with 2001
    page.locator("textarea[name=reason]").fill("随父母工作调动")
    page.get_by_role("button", name="提交转学申请").click()
    expect(page.locator("body")).to_contain_text("2001：学籍号与姓名不匹配，请核对后重新提交")
    page.locator("input[name=name]").fill(pupil.name)
    page.locator("select[name=class_id]").select_option(str(to_class))
    page.get_by_role("button", name="提交转学申请").click()
    expect(page.locator("body")).to_contain_text("已提交")
    rid = int(re.search(r"/request/show/(\d+)", page.url).group(1))
    expect(page.locator(".tracker")).to_contain_text("转出")

    approve(journey, "school_a3_leader", rid, "同意接收")
    approve(journey, "school_a1_leader", rid, "同意转出")
    assert query(live_app, select(Student.school_id).where(Student.id == pupil.id))[0][0] != to_school
    page = approve(journey, "county_a_reviewer", rid, "同意")
    expect(page.locator("h3 .label")).to_have_text("已通过")
    expect(page.locator(".tracker li.done")).to_have_count(4)

    assert query(live_app, select(Student.school_id, Student.class_id, Student.status).where(
        Student.id == pupil.id))[0] == (to_school, to_class, "在校")
    assert query(live_app, select(Request.state, Request.chain_code).where(Request.id == rid))[0] == (
        "已通过", "transfer_county")
    spans = query(live_app, select(Enrollment.school_id, Enrollment.status, Enrollment.current).where(
        Enrollment.student_id == pupil.id).order_by(Enrollment.id))
    assert spans[-2][1] == "转出" and spans[-2][2] is None
    assert spans[-1][0] == to_school and spans[-1][2] == 1


def test_bureau_filters_exports_and_sees_charts(live_app, journey, tmp_path):
    """The county clerk filters the student list with FAB's filter UI (school and 年级), exports exactly those
    rows as CSV, then opens 学籍统计 and sees the ECharts charts drawn."""
    from models import School, Student
    (a2,) = query(live_app, select(School.id, School.name).where(School.code == "4101020002"))
    expected = {x for (x,) in query(live_app, select(Student.xjh).where(
        Student.school_id == a2.id, Student.cohort_year == 2025, Student.deleted_at.is_(None)))}
    assert expected

    page = journey.login("county_a_clerk")
    menu(page, "学籍管理", "学生学籍")
    page.get_by_role("link", name="搜索").click()
    page.get_by_role("button", name="添加过滤条件").click()
    page.locator("a.filter[name=school]").click()
    pick(page, "school", a2.name)
    page.get_by_role("button", name="添加过滤条件").click()
    page.locator("a.filter[name=cohort_year]").click()
    page.locator("#filter_form input[name$=cohort_year]").fill("2025")
    page.locator("#filter_form").get_by_role("button", name="搜索").click()
    page.wait_for_url(re.compile(r"_flt_\d+_cohort_year=2025"))
    expect(page.locator("body")).to_contain_text(f"记录数目: {len(expected)}")
    shown = page.locator("table.table-bordered tbody tr")
    expect(shown).to_have_count(len(expected))
    for row in shown.all():
        expect(row).to_contain_text(a2.name)

    with page.expect_download() as download:     # CSV streams at once
        page.locator("#export-csv").click()
    path = tmp_path / "students.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    assert {r["全国学籍号"] for r in rows} == expected and len(rows) == len(expected)
    assert all(r["学校"] == a2.name and r["学籍状态"] == "在校" for r in rows)

    page.locator("#export-xlsx").click()          # Excel runs in the background: progress page, then the link
    page.wait_for_url(re.compile(r"/exportjob/show/\d+"))
    expect(page.locator("#job-download")).to_be_visible(timeout=30_000)
    expect(page.locator("#job-text")).to_contain_text(f"已完成，共 {len(expected)} 行")
    with page.expect_download() as download:
        page.locator("#job-download").click()
    path = tmp_path / "students.xlsx"
    download.value.save_as(path)
    sheet = load_workbook(path).worksheets[0]
    header, *body = [[c.value for c in row] for row in sheet.iter_rows()]
    assert {r[header.index("全国学籍号")] for r in body} == expected and len(body) == len(expected)

    menu(page, "学籍管理", "学籍统计")
    expect(page.locator("h3")).to_contain_text("学籍统计")
    expect(page.locator("#table-overview")).to_contain_text(a2.name)
    for chart in ("grades", "hukou", "changes", "classes"):
        canvas = page.locator(f"#chart-{chart} canvas")
        expect(canvas).to_be_visible()
        page.wait_for_function(
            """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                      let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n > 500; }""",
            arg=canvas.element_handle())
