"""小升初: the county's 小学毕业生名单 (import, re-import, read-only, scope, CLI) and 初中 admission from it — by
template and by the county's list — through 调档, 待补录 and 分班."""
import io
import json
from datetime import date, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from app.identity import with_check_char
from models import Enrollment, School, SchoolClass, Student
from models.admissions import Admission, ImportBatch, RosterBatch
from tests.conftest import api_headers, student_form
from tests.test_workflow import decide

YEAR = 2026


@pytest.fixture(autouse=True)
def november_2026(world):
    clock.fix(datetime(2026, 11, 20, 10, 0))
    yield
    clock.fix(None)


def pupil(seq, county="410102", born=date(2014, 3, 5), sex="男"):
    """A valid 小学 graduate: G学籍号 = G + the ID number, sex and birth date matching it."""
    body = f"{county}{born:%Y%m%d}{seq:02d}{1 if sex == '男' else 2}"
    number = with_check_char(body)
    return [f"G{number}", f"小{'一二三四五六七八九十'[seq % 10]}明", sex, born.isoformat(), "居民身份证", number,
            "中原区实验小学", "4101021001", str(YEAR)]


def roster(client, rows):
    wb = load_workbook(io.BytesIO(client.get("/primaryroster/template").data))
    ws = wb.worksheets[0]
    for r, values in enumerate(rows, start=2):
        for c, value in enumerate(values, start=1):
            ws.cell(r, c, value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def upload_roster(c, data, county="410102", year=YEAR, name="小学毕业生.xlsx"):
    resp = c.post("/primaryroster/upload", data={"county_code": county, "year": str(year),
                                                 "file": (io.BytesIO(data), name)},
                  content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    loc = resp.headers["Location"]
    return int(loc.rstrip("/").split("/")[-1]) if "/batch/" in loc else None


def held(app, xjhs):
    with app.app_context():
        return db.session.execute(select(Student.xjh, Student.name, Student.stage, Student.status,
                                         Student.school_id).where(Student.xjh.in_(xjhs))).all()


def import_pupils(app, as_user, rows):
    c = as_user("county_a_clerk")
    bid = upload_roster(c, roster(c, rows))
    resp = c.post(f"/primaryroster/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert resp.status_code == 302
    return c, bid


def test_roster_import_checks_every_row_and_imports_the_valid_ones(app, world, as_user):
    c = as_user("county_a_clerk")
    assert "小学毕业生名单导入" in c.get("/").get_data(as_text=True)        # reachable from the menu
    good = [pupil(1), pupil(2, sex="女"), pupil(3)]
    bad_check = pupil(4)
    bad_check[0] = bad_check[0][:-1] + ("0" if bad_check[0][-1] != "0" else "1")
    future = pupil(5, born=date(2095, 1, 1))
    mismatch = pupil(6)
    mismatch[2] = "女"                                                         # sex contradicts the ID number
    bare = pupil(7)
    bare[0] = bare[0][1:]                                                      # an ID number is not a 学籍号
    bid = upload_roster(c, roster(c, good + [bad_check, future, mismatch, bare, good[0]]))
    page = c.get(f"/primaryroster/batch/{bid}").get_data(as_text=True)
    assert "可导入 <b class=\"text-success\">3</b>" in page
    assert "第6行“出生日期”" in page and "第7行“性别”" in page and "第8行“学籍号”" in page
    assert "第9行“学籍号”：与第2行重复" in page
    with app.app_context():
        batch = db.session.get(RosterBatch, bid)
        assert (batch.rows, batch.valid_rows, batch.error_count) == (8, 3, 5)
    c.post(f"/primaryroster/batch/{bid}/commit", data={"mode": "valid_rows"})
    rows = held(app, [g[0] for g in good])
    assert len(rows) == 3 and {(r.stage, r.status) for r in rows} == {("小学", "毕业")}
    with app.app_context():
        school = db.session.get(School, rows[0].school_id)
        assert (school.code, school.school_type, school.county_code) == ("4101021001", "小学", "410102")
        spans = db.session.execute(select(Enrollment.stage, Enrollment.status, Enrollment.current).join(
            Student, Student.id == Enrollment.student_id).where(Student.xjh == good[0][0])).all()
        assert spans == [("小学", "毕业", None)]
    # 小学 are held for their graduates' records only: no admission or 分班 form offers them
    assert "中原区实验小学" not in c.get("/admissionimport/").get_data(as_text=True)
    # the graduates are listed for the county, read-only, and not for the other county; never counted as 毕业
    home = c.get("/").get_data(as_text=True)
    assert "<td>小学毕业生</td><td>3</td>" in home
    listing = c.get("/primarygraduate/list/").get_data(as_text=True)
    assert good[0][0] in listing and "中原区实验小学" in listing
    assert good[0][0] not in as_user("county_b_clerk").get("/primarygraduate/list/").get_data(as_text=True)
    assert good[0][0] not in c.get("/query/graduates/list/").get_data(as_text=True)     # not a 中学 graduate


def test_reimport_updates_by_xjh_and_never_duplicates(app, world, as_user):
    rows = [pupil(1), pupil(2)]
    import_pupils(app, as_user, rows)
    rows[1][1] = "王小红"                                                     # corrected in the primary system
    rows[1][6], rows[1][7] = "中原区第二小学", ""                              # a school known by name only
    c, bid = import_pupils(app, as_user, rows + [pupil(3)])
    with app.app_context():
        assert db.session.get(RosterBatch, bid).created == 1 and db.session.get(RosterBatch, bid).updated == 2
        assert db.session.scalar(select(func.count()).select_from(Student).where(
            Student.xjh.in_([r[0] for r in rows]))) == 2
        second = db.session.scalar(select(School).where(School.name == "中原区第二小学"))
        assert second.school_type == "小学" and second.code.startswith("P410102")
    assert {r.name for r in held(app, [rows[1][0]])} == {"王小红"}


def test_primary_graduates_are_read_only_everywhere(app, world, as_user, client):
    import_pupils(app, as_user, [pupil(1)])
    with app.app_context():
        sid = db.session.scalar(select(Student.id).where(Student.xjh == pupil(1)[0]))
    h = api_headers(client, "admin")
    resp = client.put(f"/api/v1/student/{sid}", json={"phone": "13912345678"}, headers=h)
    assert resp.status_code == 422 and "只读" in resp.get_json()["message"]
    with app.app_context():                                                    # nor via the ORM (CLI, importers)
        s = db.session.get(Student, sid)
        s.native_place = "河南郑州"
        with pytest.raises(Exception, match="只读"):
            db.session.flush()
        db.session.rollback()


def test_junior_admits_primary_graduates_then_dang_an_and_completion(app, world, as_user, client):
    rows = [pupil(1), pupil(2, sex="女"), pupil(3)]
    import_pupils(app, as_user, rows)
    # 初中 a1 (same county) admits two by template, 初中 b1 (other county) the third: any 初中 of the installation
    a1 = as_user("school_a1_clerk")
    from tests.test_admissions import upload, workbook
    bid = upload(a1, world.schools["a1"], workbook(a1, [[r[1], r[0]] for r in rows[:2]]))
    page = a1.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "不是小学毕业生" not in page and "上一学段" not in page
    a1.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    b1 = as_user("school_b1_clerk")
    bid_b = upload(b1, world.schools["b1"], workbook(b1, [[rows[2][1], rows[2][0]]]))
    b1.post(f"/admissionimport/batch/{bid_b}/commit", data={"mode": "valid_rows"})
    with app.app_context():
        rid = db.session.get(ImportBatch, bid).request_id
        rid_b = db.session.get(ImportBatch, bid_b).request_id
        assert rid and rid_b
    assert decide(client, "county_a_reviewer", rid).status_code == 200
    assert decide(client, "county_b_reviewer", rid_b).status_code == 200
    with app.app_context():
        s = db.session.scalar(select(Student).where(Student.xjh == rows[0][0]))
        assert (s.school_id, s.stage, s.status, s.cohort_year, s.needs_completion) == (
            world.schools["a1"], "初中", "在校", YEAR, True)
        assert [(e.stage, e.status) for e in s.enrollments] == [("小学", "毕业"), ("初中", "在校")]
        assert s.birthplace is None and s.ethnicity is None                   # never invented
        from models import AuditEvent
        assert set(db.session.scalars(select(AuditEvent.username).where(      # 调档 by the approving reviewer
            AuditEvent.entity == "student", AuditEvent.entity_id == str(s.id),
            AuditEvent.field == "school_id"))) == {"county_a_reviewer"}
        sid = s.id
        klass = db.session.scalar(select(SchoolClass.id).where(SchoolClass.school_id == world.schools["a1"],
                                                               SchoolClass.cohort_year == YEAR))
        assert db.session.scalar(select(Student.school_id).where(Student.xjh == rows[2][0])) == world.schools["b1"]
    # 待补录: on the home page and the student page, listed with what is missing, for the school only
    home = a1.get("/").get_data(as_text=True)
    assert "待补录学生" in home and "<b>2</b>" in home
    assert "待补录" in a1.get(f"/student/show/{sid}").get_data(as_text=True)
    listing = a1.get("/incomplete/").get_data(as_text=True)
    assert rows[0][0] in listing and "出生地" in listing and "民族" in listing
    assert rows[0][0] not in as_user("school_a2_clerk").get("/incomplete/").get_data(as_text=True)
    # 分班
    resp = a1.post("/placement/select", data={"ids": [str(sid)], "class_id": str(klass)})
    assert resp.status_code == 302
    # completing every ★ field ends 待补录
    form = student_form(app, sid, birthplace="410102001001", native_place="河南郑州", ethnicity="01",
                        hukou_place="410102001001", hukou_type="2", entry_mode="1", study_mode="1",
                        current_address="郑州市中原区建设路1号", mail_address="郑州市中原区建设路1号",
                        home_address="郑州市中原区建设路1号", phone="13912345678", postcode="450000",
                        only_child="y", preschool="y", gatq="00", health="10")
    resp = a1.post(f"/student/edit/{sid}", data=form)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    with app.app_context():
        s = db.session.get(Student, sid)
        assert (s.class_id, s.needs_completion) == (klass, False)
    assert rows[0][0] not in a1.get("/incomplete/").get_data(as_text=True)


def test_county_list_admission_for_junior_from_the_roster(app, world, as_user, client):
    """统一招生: the county's 划片 list for a 初中, confirmed by the school, then reviewed and 调档."""
    rows = [pupil(1)]
    c, _ = import_pupils(app, as_user, rows)
    from tests.test_admissions import upload, workbook
    bid = upload(c, world.schools["a1"], workbook(c, [[rows[0][1], rows[0][0]]]))
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    with app.app_context():
        adm = db.session.scalar(select(Admission).where(Admission.batch_id == bid))
        assert (adm.state, adm.stage, adm.method) == ("待确认", "初中", "统一招生")
        adm_id = adm.id
    a1 = as_user("school_a1_clerk")
    assert a1.post("/admission/action_post", data={"action": "confirm", "rowid": [str(adm_id)]}).status_code == 302
    with app.app_context():
        assert db.session.get(Admission, adm_id).state == "待审核"


def test_cli_import_primary_graduates(app, world, tmp_path, as_user):
    c = as_user("county_a_clerk")
    good = tmp_path / "good.xlsx"
    good.write_bytes(roster(c, [pupil(1), pupil(2)]))
    bad_row = pupil(3)
    bad_row[1] = "=1+1"
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(roster(c, [pupil(4), bad_row]))
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"<html>not a sheet</html>")
    runner = app.test_cli_runner()
    run = lambda *a: runner.invoke(args=["xueji", "import-primary-graduates", *a, "--county", "410102"])  # noqa
    assert run(str(good), "--dry-run").exit_code == 0
    assert held(app, [pupil(1)[0]]) == []                                     # a dry run writes nothing
    result = run(str(bad), "--dry-run", "--json")
    assert result.exit_code == 1
    issue = json.loads(result.stdout.strip().splitlines()[0])
    assert (issue["row"], issue["column"]) == (3, "姓名") and issue["code"] and issue["message"].startswith("第3行")
    assert run(str(junk)).exit_code == 2
    assert run(str(good), "--json").exit_code == 0
    assert run(str(good), "--json").exit_code == 0                            # again: updated, not duplicated
    assert len(held(app, [pupil(1)[0], pupil(2)[0]])) == 2
    result = runner.invoke(args=["xueji", "import-primary-graduates", str(good), "--county", "999999"])
    assert result.exit_code == 2 and "区县代码" in result.output


def test_refused_roster_upload_says_why_on_the_page(app, world, as_user):
    c = as_user("county_a_clerk")
    page = c.get("/primaryroster/").get_data(as_text=True)
    assert "upload-error" in page and "upload-progress" in page               # the shared upload widget
    xhr = {"X-Requested-With": "XMLHttpRequest"}
    resp = c.post("/primaryroster/upload", data={"county_code": "410102", "year": str(YEAR),
                                                 "file": (io.BytesIO(b"<html></html>"), "名单.xlsx")},
                  content_type="multipart/form-data", headers=xhr)
    assert resp.status_code == 422 and "不是Excel" in resp.get_json()["message"]
    resp = c.post("/primaryroster/upload", data={"county_code": "410102", "year": str(YEAR)}, headers=xhr)
    assert resp.status_code == 422 and resp.get_json()["message"] == "请选择要上传的文件"
    resp = c.post("/primaryroster/upload", data={"county_code": "410102", "year": str(YEAR),
                                                 "file": (io.BytesIO(roster(c, [pupil(1)])), "名单.xlsx")},
                  content_type="multipart/form-data", headers=xhr)
    assert resp.status_code == 200 and "/primaryroster/batch/" in resp.get_json()["redirect"]


def test_roster_pages_are_for_county_staff_in_their_county(app, world, as_user):
    rows = [pupil(1)]
    _, bid = import_pupils(app, as_user, rows)
    assert as_user("county_b_clerk").get(f"/primaryroster/batch/{bid}").status_code == 404
    assert as_user("county_b_clerk").get(f"/primaryroster/batch/{bid}/annotated").status_code == 404
    assert as_user("county_b_clerk").post(f"/primaryroster/batch/{bid}/commit").status_code == 404
    b = as_user("county_b_clerk")
    assert b.post("/primaryroster/upload", data={"county_code": "410102", "year": str(YEAR),
                                                 "file": (io.BytesIO(b"x"), "a.xlsx")},
                  content_type="multipart/form-data").status_code == 404
    school = as_user("school_a1_clerk")
    assert school.get("/primaryroster/").status_code in (302, 403)
    assert "小学毕业生名单导入" not in school.get("/").get_data(as_text=True)


@pytest.mark.parametrize("fmt", ["xlsx", "ods"])
def test_roster_saved_by_libreoffice(app, world, as_user, tmp_path, fmt):
    """The filled template saved again by LibreOffice keeps its text cells; the primary system's CSV opened and saved
    by LibreOffice turns ID numbers into numbers, which are reported (never repaired) while its dates read right."""
    from tests.test_spreadsheets import soffice_convert
    from app import rosters, spreadsheets
    c = as_user("county_a_clerk")
    src = tmp_path / "filled.xlsx"
    src.write_bytes(roster(c, [pupil(1), pupil(2, sex="女")]))
    rows, issues = spreadsheets.read_table(soffice_convert(src, fmt, tmp_path / "out"), f"f.{fmt}", rosters.COLUMNS)
    with app.app_context():
        checked = rosters.check_roster(db.session, "410102", YEAR, rows, issues)
    assert checked.issues == [] and len(checked.graduates) == 2
    csv = tmp_path / "export.csv"
    csv.write_text("\n".join(",".join(r) for r in [[col.name for col in rosters.COLUMNS], pupil(3)]), "utf-8")
    rows, issues = spreadsheets.read_table(soffice_convert(csv, fmt, tmp_path / "out2"), f"e.{fmt}", rosters.COLUMNS)
    assert {(i.column, i.code) for i in issues} == {("身份证件号", "id_as_number"), ("学校标识码", "id_as_number")}
    assert rows[0].values["出生日期"] == "2014-03-05" and rows[0].values["学籍号"] == pupil(3)[0]


def test_a_refused_upload_leaves_no_file_behind(app, world, as_user, monkeypatch):
    """The kept file belongs to the upload's transaction: when it rolls back, the file goes too."""
    import os
    from app import rosters
    from app.errors import RuleError
    c = as_user("county_a_clerk")
    folder = os.path.join(app.config["UPLOAD_FOLDER"], "imports")
    before = set(os.listdir(folder)) if os.path.isdir(folder) else set()

    def refuse(session, batch):
        raise RuleError("模拟：校验时数据库出错", code="boom")
    monkeypatch.setattr(rosters, "check_batch", refuse)
    assert upload_roster(c, roster(c, [pupil(1)])) is None                  # back to the upload page
    assert set(os.listdir(folder)) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RosterBatch)) == 0
