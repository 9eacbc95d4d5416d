"""招生入学: plans and change requests, template import with per-cell checks, conflicts and arbitration,
统一招生, 调档, 分班 by template and selection, the CLI, and the plan under concurrent admissions."""
import io
import json
from datetime import datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from models import Quota, SchoolClass, Student
from models.admissions import Admission, ImportBatch
from models.requests import Request
from tests.conftest import api_headers
from tests.test_workflow import _needs_row_locks, _race, decide

YEAR = 2026


@pytest.fixture(autouse=True)
def november_2026(world):
    clock.fix(datetime(2026, 11, 20, 10, 0))
    yield
    clock.fix(None)


def graduates(app, n, school="a1", offset=0):
    """n of last year's 初中 graduates (the pool 高中 admits from)."""
    with app.app_context():
        return db.session.execute(select(Student.name, Student.xjh, Student.id).where(
            Student.status == "毕业").order_by(Student.id).offset(offset).limit(n)).all()


def workbook(client, rows, path="/admissionimport/template"):
    """The downloaded template, filled with `rows` (lists of cell values) below the header."""
    wb = load_workbook(io.BytesIO(client.get(path).data))
    ws = wb.worksheets[0]
    for r, values in enumerate(rows, start=2):
        for c, value in enumerate(values, start=1):
            ws.cell(r, c, value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def upload(c, school_id, data, name="录取名单.xlsx"):
    resp = c.post("/admissionimport/upload", data={"school_id": str(school_id), "file": (io.BytesIO(data), name)},
                  content_type="multipart/form-data")
    assert resp.status_code == 302, resp.get_data(as_text=True)[:300]
    return int(resp.headers["Location"].rstrip("/").split("/")[-1]) if "/batch/" in resp.headers["Location"] \
        else None


def set_plan(app, school_id, planned, stage="高中"):
    with app.app_context():
        q = db.session.scalar(select(Quota).where(Quota.school_id == school_id, Quota.year == YEAR,
                                                  Quota.stage == stage))
        q.planned = planned
        db.session.commit()


def admissions_of(app, school_id):
    with app.app_context():
        return db.session.execute(select(Admission.student_id, Admission.state).where(
            Admission.school_id == school_id, Admission.current == 1).order_by(Admission.id)).all()


def test_template_is_protected_and_explained(app, world, as_user):
    page = as_user("school_a2_clerk").get("/admissionimport/").get_data(as_text=True)
    assert "下载录取名单模板" in page and "upload-progress" in page         # large files show their progress
    data = as_user("school_a2_clerk").get("/admissionimport/template").data
    wb = load_workbook(io.BytesIO(data))
    ws = wb.worksheets[0]
    assert [c.value for c in ws[1]][:3] == ["姓名", "学籍号", "中学阶段"]
    assert ws.freeze_panes == "A2" and ws["B2"].number_format == "@"
    assert ws.data_validations.dataValidation and "填写说明" in wb.sheetnames


def test_import_checks_every_row_and_commits_the_valid_ones(app, world, as_user):
    c = as_user("school_a2_clerk")
    g = graduates(app, 4)
    rows = [[n, x] for n, x, _ in g[:3]] + [
        ["错名字", g[3][1]],                       # name does not match
        ["某某", "G4101022011999999X9"[:19]],       # unknown number
        [g[0][0], g[0][1]],                         # duplicate row
        ["张三", 410102201203225150],               # ID turned into a number by Excel
    ]
    bid = upload(c, world.schools["a2"], workbook(c, rows))
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    for text in ("第5行“姓名”", "第6行“学籍号”", "与第2行重复", "第8行“学籍号”", "有效"):
        assert text in page, text
    annotated = load_workbook(io.BytesIO(c.get(f"/admissionimport/batch/{bid}/annotated").data)).worksheets[0]
    assert annotated.cell(5, 1).comment is not None and annotated.cell(2, 1).comment is None
    assert c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "all_or_nothing"}).status_code == 302
    assert admissions_of(app, world.schools["a2"]) == []                    # all-or-nothing refused
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert [s for _, s in admissions_of(app, world.schools["a2"])] == ["待审核"] * 3
    # the batch page now shows what went in, not a re-check that would call every row already admitted
    done = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "已提交 <b>3</b> 名学生" in done and done.count("待审核</td>") == 3 and "本校已录取该生" not in done
    # re-uploading the same file creates nothing twice
    assert upload(c, world.schools["a2"], workbook(c, rows)) is not None
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert len(admissions_of(app, world.schools["a2"])) == 3


def test_county_approval_transfers_the_records(app, world, as_user, client):
    c = as_user("school_a2_clerk")
    g = graduates(app, 2)
    bid = upload(c, world.schools["a2"], workbook(c, [[n, x] for n, x, _ in g]))
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    with app.app_context():
        rid = db.session.get(ImportBatch, bid).request_id
        assert db.session.get(Student, g[0][2]).status == "毕业"            # nothing moves before approval
    assert decide(client, "county_b_reviewer", rid).status_code == 404      # not its county
    assert decide(client, "county_a_reviewer", rid).status_code == 200
    with app.app_context():
        s = db.session.get(Student, g[0][2])
        assert (s.school_id, s.status, s.stage, s.cohort_year, s.class_id) == (
            world.schools["a2"], "在校", "高中", YEAR, None)
        assert db.session.get(ImportBatch, bid).state == "已通过"
    assert {st for _, st in admissions_of(app, world.schools["a2"])} == {"已调档"}


def test_plan_limits_admissions_with_numbers_in_the_message(app, world, as_user):
    set_plan(app, world.schools["a2"], 2)
    c = as_user("school_a2_clerk")
    g = graduates(app, 3)
    bid = upload(c, world.schools["a2"], workbook(c, [[n, x] for n, x, _ in g]))
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "超出招生计划（计划2人，剩余2人）" in page
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert len(admissions_of(app, world.schools["a2"])) == 2


def test_double_admission_goes_to_arbitration(app, world, as_user, client):
    g = graduates(app, 1)
    for school in ("a2", "b2"):
        c = as_user(f"school_{school}_clerk")
        bid = upload(c, world.schools[school], workbook(c, [[g[0][0], g[0][1]]]))
        page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
        if school == "b2":
            assert "重复招生" in page
        c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert admissions_of(app, world.schools["a2"])[0][1] == "冲突"
    assert admissions_of(app, world.schools["b2"])[0][1] == "冲突"
    with app.app_context():
        keep = db.session.scalar(select(Admission.id).where(Admission.school_id == world.schools["b2"]))
    for school in ("a2", "b2"):             # both schools see the conflict on their 待办
        assert "重复招生" in as_user(f"school_{school}_clerk").get("/").get_data(as_text=True)
    assert as_user("school_b2_clerk").post(f"/admission/arbitrate/{keep}").status_code == 403
    as_user("county_b_reviewer").post(f"/admission/arbitrate/{keep}", data={"reason": "家长选择"})
    assert admissions_of(app, world.schools["a2"]) == []                     # cancelled, place released
    assert admissions_of(app, world.schools["b2"])[0][1] == "待审核"
    rows = client.get("/api/v1/admission/", headers=api_headers(client, "school_a2_clerk")).get_json()["result"]
    assert rows[0]["state"] == "已取消" and "仲裁取消" in rows[0]["note"]
    assert "仲裁取消" in as_user("school_a2_clerk").get("/").get_data(as_text=True)      # the outcome, too


def test_unified_admission_is_confirmed_by_the_school(app, world, as_user):
    g = graduates(app, 2)
    county = as_user("county_a_clerk")
    bid = upload(county, world.schools["a2"], workbook(county, [[n, x] for n, x, _ in g]))
    county.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert {s for _, s in admissions_of(app, world.schools["a2"])} == {"待确认"}
    with app.app_context():
        ids = list(db.session.scalars(select(Admission.id).where(Admission.school_id == world.schools["a2"])))
    as_user("school_a2_clerk").post("/admission/action_post", data={"action": "confirm", "rowid": ids})
    assert {s for _, s in admissions_of(app, world.schools["a2"])} == {"待审核"}
    with app.app_context():
        assert db.session.scalar(select(Request.kind).where(Request.school_id == world.schools["a2"])) == \
            "admission_batch"


def test_quota_change_request_for_the_current_year_only(app, world, client):
    with app.app_context():
        q = db.session.scalar(select(Quota).where(Quota.school_id == world.schools["a2"]))
        old = db.session.add(Quota(school_id=world.schools["a2"], year=YEAR - 1, stage="高中", planned=10))
        db.session.commit()
        old = db.session.scalar(select(Quota.id).where(Quota.year == YEAR - 1))
        qid = q.id
    h = api_headers(client, "school_a2_clerk")
    from app import workflow
    from models import XuejiUser
    with app.app_context():
        clerk = db.session.get(XuejiUser, world.users["school_a2_clerk"])
        from app.errors import RuleError
        with pytest.raises(RuleError) as err:
            workflow.file(db.session, clerk, "quota_change", None, {"quota_id": old, "requested": 20,
                                                                     "reason": "复学占用"}, school_id=q.school_id)
        assert err.value.code == "not_current_year"
        db.session.rollback()
        req = workflow.file(db.session, clerk, "quota_change", None,
                            {"quota_id": qid, "current": 60, "requested": 80, "reason": "复学2人、转入3人占用计划"},
                            school_id=world.schools["a2"])
        rid = req.id
    decide(client, "school_a2_leader", rid)
    assert decide(client, "county_a_reviewer", rid).status_code == 200
    with app.app_context():
        assert db.session.get(Quota, qid).planned == 80
    # the API files the same request with the same rules
    resp = client.post("/api/v1/request/file", headers=h, json={"kind": "quota_change", "quota_id": old,
                                                                "requested": 30, "reason": "x"})
    assert resp.status_code == 422 and resp.get_json()["code"] == "not_current_year"
    resp = client.post("/api/v1/request/file", headers=h, json={"kind": "quota_change", "quota_id": qid,
                                                                "requested": 90, "reason": "转入4人"})
    assert resp.status_code == 200


def test_placement_by_template_refuses_an_overfilling_file_whole(app, world, as_user):
    c = as_user("school_a2_clerk")
    g = graduates(app, 3)
    bid = upload(c, world.schools["a2"], workbook(c, [[n, x] for n, x, _ in g]))
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    with app.app_context():
        rid = db.session.get(ImportBatch, bid).request_id
    from tests.conftest import api_headers as _h  # noqa: F401
    county = as_user("county_a_reviewer")
    county.post(f"/request/decide/{rid}", data={"decision": "通过"})
    with app.app_context():
        klass = db.session.scalar(select(SchoolClass).where(SchoolClass.school_id == world.schools["a2"],
                                                            SchoolClass.cohort_year == YEAR))
        klass.capacity = db.session.scalar(select(func.count()).select_from(Student).where(
            Student.class_id == klass.id)) + 2                      # two seats left
        db.session.commit()
        name = klass.name
    rows = [[x, n, name] for n, x, _ in g]
    page = c.post("/placement/upload", data={"school_id": str(world.schools["a2"]),
                                             "file": (io.BytesIO(workbook(c, rows, "/placement/template")), "分班.xlsx")},
                  content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
    assert "整个文件未导入" in page and "本次分入3人" in page
    with app.app_context():
        assert all(db.session.get(Student, sid).class_id is None for _, _, sid in g)
    page = c.post("/placement/upload", data={"school_id": str(world.schools["a2"]),
                                             "file": (io.BytesIO(workbook(c, rows[:2], "/placement/template")),
                                                      "分班.xlsx")},
                  content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
    assert "已为2名学生分班" in page
    # by selection: the third student, into another class of the grade
    with app.app_context():
        other = db.session.scalar(select(SchoolClass.id).where(SchoolClass.school_id == world.schools["a2"],
                                                               SchoolClass.cohort_year == YEAR,
                                                               SchoolClass.id != klass.id))
    c.post("/placement/select", data={"ids": [g[2][2]], "class_id": other})
    with app.app_context():
        assert db.session.get(Student, g[2][2]).class_id == other


def test_cli_checks_like_the_web_and_reports_json(app, world, tmp_path):
    g = graduates(app, 2)
    c = app.test_client()
    c.post("/login/", data={"username": "school_a2_clerk", "password": "Xueji#2026"})
    good = tmp_path / "good.xlsx"
    good.write_bytes(workbook(c, [[n, x] for n, x, _ in g]))
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(workbook(c, [[g[0][0], g[0][1]], ["错名字", g[1][1]]]))
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"#!/bin/sh\necho hi\n")
    runner = app.test_cli_runner()
    code = lambda *a: runner.invoke(args=["xueji", "import-admissions", *a, "--school", "4101020002"])  # noqa: E731
    assert code(str(good), "--dry-run").exit_code == 0
    result = code(str(bad), "--dry-run", "--json")
    assert result.exit_code == 1
    issue = json.loads(result.stdout.strip().splitlines()[0])
    assert (issue["row"], issue["column"], issue["code"]) == (3, "姓名", "name_mismatch")
    assert code(str(junk), "--dry-run").exit_code == 2
    assert admissions_of(app, world.schools["a2"]) == []                      # dry runs write nothing
    assert code(str(good)).exit_code == 0
    assert len(admissions_of(app, world.schools["a2"])) == 2


def test_the_plan_holds_under_concurrent_admissions(app, world):
    """Two batches filling the last place at once: the quota row lock lets one in."""
    _needs_row_locks(app)
    from app import admissions
    set_plan(app, world.schools["a2"], 1)
    g = graduates(app, 2)

    def admit(student_id):
        def run():                       # what commit_batch does once its rows are checked
            school_id = world.schools["a2"]
            admissions.check_room(db.session, school_id, YEAR, "高中", 1)
            db.session.add(Admission(student_id=student_id, school_id=school_id, year=YEAR, stage="高中",
                                     state="待审核", current=1, created_at=datetime.now()))
            db.session.commit()
            return True
        return run
    results = _race(app, [admit(g[0][2]), admit(g[1][2])])
    assert sorted(r is True for r in results) == [False, True], [repr(r) for r in results]
    assert len(admissions_of(app, world.schools["a2"])) == 1


def test_counts_after_a_lock_see_rows_committed_meanwhile(app, world):
    """The plan check reads the admissions count after locking the plan row; a snapshot taken earlier in the
    same transaction (as commit_batch's own checks do) must not hide a concurrent admission."""
    _needs_row_locks(app)
    import threading
    from app import admissions
    set_plan(app, world.schools["a2"], 1)
    g = graduates(app, 2)
    school_id = world.schools["a2"]
    first_locked, second_counted = threading.Event(), threading.Event()

    def first():
        admissions.check_room(db.session, school_id, YEAR, "高中", 1)
        first_locked.set()
        db.session.add(Admission(student_id=g[0][2], school_id=school_id, year=YEAR, stage="高中", state="待审核",
                                 current=1, created_at=datetime.now()))
        second_counted.wait(5)
        db.session.commit()
        return True

    def second():
        admissions.used(db.session, school_id, YEAR, "高中")        # an early read: the snapshot starts here
        second_counted.set()
        first_locked.wait(5)
        admissions.check_room(db.session, school_id, YEAR, "高中", 1)
        db.session.commit()
        return True
    results = _race(app, [first, second])
    assert results[0] is True and not (results[1] is True), [repr(r) for r in results]


def test_assign_classes_cli(app, world, tmp_path):
    """分班 from the command line: exit 0 when placed, 1 with row problems (JSON), 2 when a class would overflow."""
    from sqlalchemy import update
    with app.app_context():
        sid = world.student_of("a2")
        db.session.execute(update(Student).where(Student.id == sid).values(class_id=None))
        db.session.commit()
        s = db.session.get(Student, sid)
        klass = db.session.scalar(select(SchoolClass).where(SchoolClass.school_id == s.school_id,
                                                            SchoolClass.cohort_year == s.cohort_year))
        xjh, name, kname, kid = s.xjh, s.name, klass.name, klass.id
    c = app.test_client()
    c.post("/login/", data={"username": "school_a2_clerk", "password": "Xueji#2026"})
    runner = app.test_cli_runner()

    def run(rows, *flags):
        path = tmp_path / f"p{len(list(tmp_path.iterdir()))}.xlsx"
        path.write_bytes(workbook(c, rows, "/placement/template"))
        return runner.invoke(args=["xueji", "assign-classes", str(path), "--school", "4101020002", *flags])
    bad = run([[xjh, "别人", kname]], "--json")
    assert bad.exit_code == 1 and json.loads(bad.stdout.splitlines()[0])["code"] == "name_mismatch"
    with app.app_context():
        db.session.get(SchoolClass, kid).capacity = 1
        db.session.commit()
    assert run([[xjh, name, kname]]).exit_code == 2
    with app.app_context():
        db.session.get(SchoolClass, kid).capacity = 60
        db.session.commit()
    assert run([[xjh, name, kname]], "--dry-run").exit_code == 0
    with app.app_context():
        assert db.session.get(Student, sid).class_id is None
    assert run([[xjh, name, kname]]).exit_code == 0
    with app.app_context():
        assert db.session.get(Student, sid).class_id == kid


# --- every problem of every row, notices, refusals on the page, paging -------------------------------------

def _xlsx(rows, formulas=()):
    """A workbook like a registrar's: header + rows as text cells; (row, column) in `formulas` are real formulas."""
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    for r, values in enumerate([["姓名", "学籍号", "中学阶段"]] + rows, start=1):
        for c, value in enumerate(values, start=1):
            cell = ws.cell(r, c, value)
            if isinstance(value, str) and (r, c) not in formulas:
                cell.data_type = "s"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _check(app, school_id, data):
    from app import admissions, spreadsheets
    from models import School
    with app.app_context():
        rows, issues = spreadsheets.read_table(data, "a.xlsx", admissions.COLUMNS)
        checked = admissions.check_admissions(db.session, db.session.get(School, school_id), YEAR, rows, issues)
        db.session.rollback()
        return checked


def _per_row(checked):
    out = {}
    for i in checked.issues:
        out.setdefault(i.row, []).append((i.column, i.code))
    return out


def test_every_problem_of_every_row_is_reported_on_its_column(app, world):
    from app.identity import with_check_char
    g = graduates(app, 4)
    with app.app_context():
        pupil, pupil2 = db.session.execute(select(Student.name, Student.xjh).where(
            Student.status == "在校", Student.xjh.like("G%")).order_by(Student.id).limit(2)).all()
        db.session.add(Admission(student_id=g[3][2], school_id=world.schools["a2"], year=YEAR, stage="高中",
                                 state="待审核", current=1, created_at=datetime(2026, 11, 1)))
        db.session.commit()
    body = g[1][1][1:18]                                       # 17 digits of a real G学籍号
    wrong_check = "G" + body + ("0" if g[1][1][-1] != "0" else "1")
    unknown = "G" + with_check_char("41010220110101" + "777")
    future = "G" + with_check_char("41010220300101" + "123")
    impossible = "G" + with_check_char("41010220120231" + "123")
    fullwidth = g[0][1].translate(str.maketrans("0123456789GX", "０１２３４５６７８９ＧＸ"))
    rows = [
        [g[0][0], g[0][1], "高中"],          # 2: valid
        ["李4", g[1][1][1:], None],           # 3: a name with a digit, a bare ID number
        [g[1][0], wrong_check, "初中"],       # 4: wrong check character AND a stage the school does not admit
        ["某某", future, None],               # 5: birth date in the future
        ["某某", impossible, None],           # 6: impossible date
        ["某某", "A" + g[2][1][1:], None],    # 7: wrong prefix
        ["某某", unknown, None],              # 8: well-formed, not in the database
        ["错名字", pupil2.xjh, None],         # 9: name does not match, and not a graduate either
        ["=1+1", g[2][1], None],              # 10: a real formula as the name
        [g[0][0], fullwidth, None],           # 11: row 2 again, in full-width characters
        ["=cmd", 410102201203225150, None],   # 12: a formula-like name (text) and an ID Excel made a number
        [pupil.name, pupil.xjh, None],        # 13: in school, not a graduate
        [None, g[1][1], "小学"],              # 14: no name, a stage that is no choice
        [g[3][0], g[3][1], None],             # 15: already admitted by this school
    ]
    checked = _check(app, world.schools["a2"], _xlsx(rows, formulas={(10, 1)}))
    assert _per_row(checked) == {
        3: [("姓名", "bad_name"), ("学籍号", "id_number_as_xjh")],
        4: [("学籍号", "xjh_bad_check"), ("中学阶段", "bad_stage")],
        5: [("学籍号", "xjh_future_date")],
        6: [("学籍号", "xjh_bad_date")],
        7: [("学籍号", "xjh_bad_prefix")],
        8: [("学籍号", "unknown_xjh")],
        9: [("姓名", "name_mismatch"), ("学籍号", "not_graduate")],
        10: [("姓名", "formula")],
        11: [("学籍号", "duplicate_row")],
        12: [("姓名", "bad_name"), ("学籍号", "id_as_number")],
        13: [("学籍号", "not_graduate")],
        14: [("姓名", "required"), ("中学阶段", "bad_choice")],
        15: [("学籍号", "already_admitted")],
    }
    assert checked.valid == [2] and checked.matches == {2: g[0][2]}
    assert checked.bad_rows == set(range(3, 16))
    messages = {(i.row, i.column): i.message for i in checked.issues}
    assert messages[(11, "学籍号")] == f"第11行“学籍号”：与第2行重复（{g[0][1]}）"
    assert "这是身份证件号，不是学籍号" in messages[(3, "学籍号")]
    assert "校验位错误" in messages[(4, "学籍号")] and "晚于今天" in messages[(5, "学籍号")]
    assert messages[(9, "学籍号")] == "第9行“学籍号”：该生不是初中毕业生，不能录取为高中新生"     # no name revealed
    assert [(n.row, n.column, n.code, n.level) for n in checked.notices] == [(11, "学籍号", "normalised", "notice")]
    assert "已将全角字符转换为半角" in checked.notices[0].message


def test_a_bare_id_number_is_refused_as_xjh_before_any_lookup(app, world):
    from sqlalchemy import event
    with app.app_context():
        name, number = db.session.execute(select(Student.name, Student.id_number).where(
            Student.status == "毕业", Student.id_number.is_not(None)).order_by(Student.id)).first()
        statements = []
        listen = lambda conn, cursor, statement, *a: statements.append(statement)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listen)
    try:
        checked = _check(app, world.schools["a2"], _xlsx([[name, number, None]]))
    finally:
        with app.app_context():
            event.remove(db.engine, "before_cursor_execute", listen)
    assert _per_row(checked) == {2: [("学籍号", "id_number_as_xjh")]} and checked.valid == []
    assert not any("id_number" in s for s in statements)          # never looked up by ID number


def test_notices_in_the_preview_the_annotated_workbook_and_the_cli(app, world, as_user, tmp_path):
    g = graduates(app, 2)
    wide = g[0][1].translate(str.maketrans("0123456789GX", "０１２３４５６７８９ＧＸ"))
    rows = [["\u00a0" + g[0][0] + " ", "\u200b" + wide, None], [g[1][0], g[1][1], None]]
    c = as_user("school_a2_clerk")
    bid = upload(c, world.schools["a2"], _xlsx(rows))
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "有效 <b class=\"text-success\">2</b>" in page
    assert "提示：第2行“学籍号”：已将全角字符转换为半角，已删除不可见字符（零宽空格等）" in page
    assert "提示：第2行“姓名”：已将全角空格或不间断空格转换为普通空格，已去除首尾空格" in page
    assert page.count('class="normalised"') == 2
    ws = load_workbook(io.BytesIO(c.get(f"/admissionimport/batch/{bid}/annotated").data)).worksheets[0]
    assert "已将全角字符转换为半角" in ws.cell(2, 2).comment.text and ws.cell(2, 2).value == g[0][1]
    assert ws.cell(2, 4).value.startswith("提示：") and ws.cell(3, 2).comment is None
    path = tmp_path / "wide.xlsx"
    path.write_bytes(_xlsx(rows))
    result = app.test_cli_runner().invoke(args=["xueji", "import-admissions", str(path), "--school", "4101020002",
                                                "--dry-run", "--json"])
    assert result.exit_code == 0, result.output                   # notices never make the exit status 1
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(o["row"], o["column"], o["code"], o["level"]) for o in lines] == [
        (2, "姓名", "normalised", "notice"), (2, "学籍号", "normalised", "notice")]


def test_a_refused_upload_says_why_on_the_upload_page(app, world, as_user):
    c = as_user("school_a2_clerk")
    xhr = {"X-Requested-With": "XMLHttpRequest"}
    school = str(world.schools["a2"])

    def post(files, headers=xhr):
        return c.post("/admissionimport/upload", data={"school_id": school, **files}, headers=headers,
                      content_type="multipart/form-data")
    cases = [({}, "no_file", "请选择要上传的文件"),
             ({"file": (io.BytesIO(b"#!/bin/sh\necho hi\n"), "名单.xlsx")}, "bad_file_type", "内容不是Excel"),
             ({"file": (io.BytesIO(b"%PDF-1.4"), "名单.pdf")}, "bad_file_type", "无法识别的文件类型"),
             ({"file": (io.BytesIO(workbook(c, [], "/placement/template")), "名单.xlsx")}, "bad_header",
              "表头与模板不符"),
             ({"file": (io.BytesIO(b"PK\x03\x04" + b"\0" * (10 * 1024 * 1024)), "名单.xlsx")}, "file_too_large",
              "文件过大")]
    for files, code, text in cases:
        resp = post(files)                                  # what the page's XHR receives
        assert resp.status_code == 422 and resp.get_json()["code"] == code, (code, resp.status_code)
        assert text in resp.get_json()["message"]
    # without JavaScript the form post lands on the upload page with the message
    page = c.post("/admissionimport/upload", data={"school_id": school, "file": (io.BytesIO(b"x"), "a.doc")},
                  content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
    assert "无法识别的文件类型" in page and "upload-error" in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ImportBatch)) == 0
    # an accepted file answers the XHR with where to go
    g = graduates(app, 1)
    resp = post({"file": (io.BytesIO(_xlsx([[g[0][0], g[0][1], None]])), "名单.xlsx")})
    assert resp.status_code == 200 and "/admissionimport/batch/" in resp.get_json()["redirect"]


def test_the_preview_pages_its_rows_and_keeps_its_check(app, world, as_user, monkeypatch):
    from app import admissions
    from app.identity import with_check_char
    rows = [[f"某某", "G" + with_check_char(f"410102201001{i % 28 + 1:02d}{i:03d}"), None] for i in range(450)]
    c = as_user("school_a2_clerk")
    bid = upload(c, world.schools["a2"], _xlsx(rows))

    def no_second_check(*a, **k):
        raise AssertionError("the preview must not check the file again")
    monkeypatch.setattr(admissions, "check_admissions", no_second_check)
    first = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "第2行“学籍号”" in first and "第201行“学籍号”" in first and "第202行“学籍号”" not in first
    assert "第 1/3 页，每页 200 行，共 450 行" in first
    assert f"/admissionimport/batch/{bid}?page=3&amp;show=all" in first
    last = c.get(f"/admissionimport/batch/{bid}?page=3").get_data(as_text=True)
    assert "第402行“学籍号”" in last and "第451行“学籍号”" in last and "第401行“学籍号”" not in last
    assert "有问题 <b class=\"text-danger\">450</b>" in last
    beyond = c.get(f"/admissionimport/batch/{bid}?page=99").get_data(as_text=True)
    assert "第 3/3 页" in beyond
    ws = load_workbook(io.BytesIO(c.get(f"/admissionimport/batch/{bid}/annotated").data)).worksheets[0]
    assert ws.cell(451, 2).comment is not None
