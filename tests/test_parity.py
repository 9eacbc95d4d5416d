"""Parity: each use case is one service in app/, and every face of it — the web route, the REST resource and, where
one exists, the CLI — gives the same answer and the same Chinese message for the same refused input, and writes
nothing. A face that decided anything itself (its own check, its own message) fails here."""
import html
import io
import re
from datetime import datetime

import pytest
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from models import ExchangePeer, Student
from models.requests import Evidence, Request
from tests.conftest import api_headers
from tests.test_workflow import PNG, upload

NOW = datetime(2026, 11, 20, 10, 0)


@pytest.fixture(autouse=True)
def _november(world):
    clock.fix(NOW)
    yield
    clock.fix(None)


def flashed(page: str) -> str:
    """The page's danger messages as text (FAB renders flashes as Bootstrap alerts)."""
    found = re.findall(r'class="alert alert-danger[^"]*"[^>]*>(.*?)</div>', page, re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>|×", "", f)).strip() for f in found)


def counts(app):
    with app.app_context():
        return (db.session.scalar(select(func.count()).select_from(Request)),
                db.session.scalar(select(func.count()).select_from(Evidence)))


def first_student(app, world, school, cohort):
    with app.app_context():
        return db.session.scalar(select(Student.id).where(Student.school_id == world.schools[school],
                                                          Student.cohort_year == cohort, Student.status == "在校")
                                 .order_by(Student.id))


def test_status_change_refused_alike_on_web_and_rest(app, world, client, as_user):
    """退学 of a 义务教育 pupil: the web form (with its evidence file) and the REST filing give the same 422 message;
    neither keeps a request or the uploaded file."""
    sid = first_student(app, world, "a1", 2026)
    before = counts(app)
    rest = client.post("/api/v1/request/file", headers=api_headers(client, "school_a1_clerk"), json={
        "kind": "status_change", "student_id": sid, "type": "退学", "date": "2026-11-20", "reason": "家长申请"})
    assert rest.status_code == 422
    message = rest.get_json()["message"]
    assert message == "义务教育阶段学生不能办理退学"
    page = as_user("school_a1_clerk").post(f"/statuschange/{sid}", data={
        "type": "退学", "date": "2026-11-20", "reason": "家长申请", "evidence": (io.BytesIO(PNG), "申请表.png")},
        content_type="multipart/form-data").get_data(as_text=True)
    assert message in flashed(page)
    assert counts(app) == before                     # no request, and the form's file was not kept


def test_key_change_without_evidence_refused_alike(app, world, client, as_user):
    sid = first_student(app, world, "a1", 2026)
    before = counts(app)
    rest = client.post("/api/v1/request/file", headers=api_headers(client, "school_a1_clerk"), json={
        "kind": "key_change", "student_id": sid, "changes": {"name": "王改名"}, "reason": "户籍更正"})
    assert rest.status_code == 422
    message = rest.get_json()["message"]
    assert "证明材料" in message
    page = as_user("school_a1_clerk").post(f"/keychange/{sid}", data={"name": "王改名", "reason": "户籍更正"},
                                           follow_redirects=True).get_data(as_text=True)
    assert message in flashed(page)
    assert counts(app) == before


def test_refused_evidence_file_gets_one_message(app, world, client, as_user):
    """A file that is no picture: the evidence upload (REST) and the filing form (web) refuse it with the same
    words, and the web form keeps no request."""
    sid = first_student(app, world, "a1", 2026)
    bad = b"MZ\x90\x00 not a picture at all" * 20
    rest = upload(client, api_headers(client, "school_a1_clerk"), sid, data=bad, name="户口本.png")
    assert rest.status_code == 422
    message = rest.get_json()["message"]
    before = counts(app)
    page = as_user("school_a1_clerk").post(f"/statuschange/{sid}", data={
        "type": "休学", "date": "2026-11-20", "reason": "病休", "evidence": (io.BytesIO(bad), "户口本.png")},
        content_type="multipart/form-data").get_data(as_text=True)
    assert message in flashed(page)
    assert counts(app) == before


def _pending_request(app, world, client):
    """A 招生计划数变更 filed by school a1 (no evidence needed), pending at its first step."""
    from models import Quota
    with app.app_context():
        quota = db.session.scalar(select(Quota).where(Quota.school_id == world.schools["a1"], Quota.year == 2026))
        qid, planned = quota.id, quota.planned
    resp = client.post("/api/v1/request/file", headers=api_headers(client, "school_a1_clerk"), json={
        "kind": "quota_change", "quota_id": qid, "requested": planned + 5, "reason": "复学占用计划"})
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["result"]["id"]


def test_decide_and_resubmit_refused_alike(app, world, client, as_user):
    rid = _pending_request(app, world, client)
    for user, web, rest, body in (
            ("county_a_reviewer", f"/request/decide/{rid}", f"/api/v1/request/{rid}/decide",
             {"decision": "不通过", "comment": ""}),                       # a rejection needs a comment
            ("school_a1_clerk", f"/request/resubmit/{rid}", f"/api/v1/request/{rid}/resubmit",
             {"comment": "x"})):                                            # only a returned request
        answer = client.post(rest, headers=api_headers(client, user), json=body)
        assert answer.status_code in (403, 409, 422), answer.get_json()
        message = answer.get_json()["message"]
        page = as_user(user).post(web, data=body, follow_redirects=True).get_data(as_text=True)
        assert message in flashed(page), (user, message)
    with app.app_context():
        assert db.session.get(Request, rid).state == "审核中"


def test_quota_change_with_a_word_for_a_number(app, world, client, as_user):
    """招生计划数变更 with "五十" for the number: one message on both faces (the web once caught a ValueError itself)."""
    from models import Quota
    with app.app_context():
        qid = db.session.scalar(select(Quota.id).where(Quota.school_id == world.schools["a1"], Quota.year == 2026))
    before = counts(app)
    rest = client.post("/api/v1/request/file", headers=api_headers(client, "school_a1_clerk"), json={
        "kind": "quota_change", "quota_id": qid, "requested": "五十", "reason": "复学"})
    assert rest.status_code == 422
    page = as_user("school_a1_clerk").post(f"/quota/change/{qid}", data={"requested": "五十", "reason": "复学"},
                                           follow_redirects=True).get_data(as_text=True)
    assert rest.get_json()["message"] in flashed(page)
    assert counts(app) == before


def test_exchange_peer_refused_alike_on_web_rest_and_cli(app, world, client, as_user):
    bad = {"province_code": "123", "public_key": "x"}
    rest = client.post("/api/v1/exchangepeer/", headers=api_headers(client, "admin"), json=bad)
    assert rest.status_code == 422
    message = rest.get_json()["message"]
    page = as_user("admin").post("/exchangepeer/add", data=bad, follow_redirects=True).get_data(as_text=True)
    assert message in flashed(page)
    result = app.test_cli_runner().invoke(args=["xueji", "exchange-peer", "add", "123", "x"])
    assert result.exit_code != 0 and message in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ExchangePeer)) == 0


def test_photo_refused_alike(app, world, client, as_user):
    sid = first_student(app, world, "a1", 2026)
    bad = b"GIF89a" + b"\x00" * 200
    rest = client.post(f"/api/v1/student/{sid}/photo", headers=api_headers(client, "school_a1_clerk"),
                       content_type="multipart/form-data", data={"photo": (io.BytesIO(bad), "照片.gif")})
    assert rest.status_code == 422
    page = as_user("school_a1_clerk").post(f"/student/photo/{sid}", data={"photo": (io.BytesIO(bad), "照片.gif")},
                                           content_type="multipart/form-data",
                                           follow_redirects=True).get_data(as_text=True)
    assert rest.get_json()["message"] in flashed(page)
    with app.app_context():
        assert db.session.get(Student, sid).photo is None


def test_placement_file_refused_alike_on_web_and_cli(app, world, as_user, tmp_path):
    """分班 by template: a file that is no spreadsheet gets the same message on the page and on the command line."""
    path = tmp_path / "分班.xlsx"
    path.write_bytes(b"this is not a workbook")
    result = app.test_cli_runner().invoke(args=["xueji", "assign-classes", str(path), "--school", "4101020001"])
    assert result.exit_code == 2
    message = result.output.strip().splitlines()[-1]
    page = as_user("school_a1_clerk").post("/placement/upload", data={
        "school_id": world.schools["a1"], "file": (io.BytesIO(path.read_bytes()), "分班.xlsx")},
        content_type="multipart/form-data").get_data(as_text=True)
    assert message and message in flashed(page)


def test_admission_upload_refused_alike_on_web_and_cli(app, world, as_user, tmp_path):
    path = tmp_path / "录取.xlsx"
    path.write_bytes(b"PK\x03\x04 broken zip")
    result = app.test_cli_runner().invoke(args=["xueji", "import-admissions", str(path), "--school", "4101020002"])
    assert result.exit_code == 2
    message = result.output.strip().splitlines()[-1]
    resp = as_user("school_a2_clerk").post("/admissionimport/upload", data={
        "school_id": world.schools["a2"], "file": (io.BytesIO(path.read_bytes()), "录取.xlsx")},
        content_type="multipart/form-data", headers={"X-Requested-With": "XMLHttpRequest"})
    assert resp.status_code == 422 and resp.get_json()["message"] == message
