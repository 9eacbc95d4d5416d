"""Background Excel exports (后台导出): the file holds exactly the screen's rows within the user's scope, progress
is visible, only the owner reaches a job, a worker that fails or dies is reported, and users cannot pile up jobs."""
import csv
import io
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import clock, exportjobs
from app.exports import ExportSpec
from app.extensions import db
from models import ExportJob, Student
from tests.conftest import export_xlsx


def _csv_rows(client, path):
    return list(csv.reader(io.StringIO(client.get(path).get_data(as_text=True).lstrip("\ufeff"))))


def test_excel_export_equals_the_filtered_screen(app, world, as_user):
    c = as_user("county_a_clerk")
    query = f"_flt_0_school={world.schools['a1']}&_flt_0_status=在校"
    job_id, ws = export_xlsx(c, f"/student/export/xlsx?{query}")
    rows = [[cell.value for cell in row] for row in ws.iter_rows()]
    assert rows == _csv_rows(c, f"/student/export/csv?{query}")
    assert rows[0][:4] == ["全国学籍号", "姓名", "性别", "出生日期"]
    assert {r[2] for r in rows[1:]} <= {"男", "女"}                 # codes become labels
    with app.app_context():
        expected = db.session.scalar(select(func.count()).select_from(Student).where(
            Student.school_id == world.schools["a1"], Student.status == "在校"))
        job = db.session.get(ExportJob, job_id)
        assert (job.state, job.total, job.done) == ("done", expected, expected) and expected > 0
    # 18-digit ID numbers stay text cells (Excel would round them as numbers)
    assert all(row[4].data_type == "s" for row in ws.iter_rows(min_row=2) if row[4].value)


def test_progress_page_and_my_exports(app, world, as_user):
    c = as_user("school_a1_clerk")
    job_id, _ = export_xlsx(c, "/student/export/xlsx")
    page = c.get(f"/exportjob/show/{job_id}").get_data(as_text=True)
    assert "已完成" in page and f"/exportjob/file/{job_id}" in page
    status = c.get(f"/exportjob/status/{job_id}").get_json()
    assert status["percent"] == 100 and status["done"] == status["total"]
    assert "学生学籍" in c.get("/exportjob/list/").get_data(as_text=True)


def test_list_pages_carry_export_buttons_with_their_filters(app, world, as_user):
    c = as_user("county_a_clerk")
    page = c.get("/student/list/?_flt_0_status=在校").get_data(as_text=True)
    assert 'action="/student/export/xlsx?_flt_0_status=' in page and 'href="/student/export/csv?_flt_0_status=' in page


def test_excel_export_is_a_post(app, world, as_user):
    c = as_user("county_a_clerk")
    assert c.get("/student/export/xlsx").status_code == 405
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ExportJob)) == 0


@pytest.mark.parametrize("intruder", ["school_a2_clerk", "county_a_clerk", "county_b_clerk", "school_b1_clerk"])
def test_only_the_owner_reaches_a_job(app, world, as_user, intruder):
    owner = as_user("school_a1_clerk")
    job_id, _ = export_xlsx(owner, "/student/export/xlsx")
    c = as_user(intruder)
    for route in ("show", "status", "file"):
        assert c.get(f"/exportjob/{route}/{job_id}").status_code == 404, route
    assert f"/exportjob/show/{job_id}" not in c.get("/exportjob/list/").get_data(as_text=True)


def test_a_user_cannot_pile_up_running_exports(app, world, as_user):
    c = as_user("county_a_clerk")
    with app.app_context():
        for _ in range(exportjobs.MAX_ACTIVE_PER_USER):
            db.session.add(ExportJob(user_id=world.users["county_a_clerk"], title="t", entity="student",
                                     state="running", total=10, heartbeat_at=clock.now()))
        db.session.commit()
    resp = c.post("/student/export/xlsx", follow_redirects=True)
    assert "正在进行" in resp.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ExportJob)) == exportjobs.MAX_ACTIVE_PER_USER


def test_a_silent_worker_is_reported_as_interrupted(app, world, as_user):
    c = as_user("county_a_clerk")
    with app.app_context():
        job = ExportJob(user_id=world.users["county_a_clerk"], title="t", entity="student", state="running",
                        total=10, heartbeat_at=clock.now() - exportjobs.STALE_AFTER - timedelta(seconds=1))
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    status = c.get(f"/exportjob/status/{job_id}").get_json()
    assert status["state"] == "failed" and "中断" in status["error"]
    # and it no longer counts against the user's running exports
    export_xlsx(c, "/student/export/xlsx")


def test_a_failing_export_is_marked_failed_without_a_file(app, world):
    def broken(value):
        raise ValueError("boom")
    with app.test_request_context():
        spec = ExportSpec(Student, ["xjh", "name"], ["学籍号", "姓名"], {"name": broken})
        job = exportjobs.start(db.session, world.users["school_a1_clerk"], spec,
                               select(Student.id).order_by(Student.id), "学生学籍")
        job_id = job.id
        exportjobs.wait(job_id)
        db.session.expire_all()
        job = db.session.get(ExportJob, job_id)
        assert job.state == "failed" and "导出失败" in job.error
        assert not os.path.exists(exportjobs.file_path(job))


def test_rows_beyond_the_limit_are_left_out_and_said_so(app, world, as_user, monkeypatch):
    monkeypatch.setattr(exportjobs, "MAX_ROWS", 5)
    c = as_user("county_a_clerk")
    job_id, ws = export_xlsx(c, "/student/export/xlsx")
    assert ws.max_row == 1 + 5
    with app.app_context():
        in_scope = db.session.scalar(select(func.count()).select_from(Student).where(
            Student.school_id.in_([world.schools["a1"], world.schools["a2"]])))
    status = c.get(f"/exportjob/status/{job_id}").get_json()
    assert status["truncated"] == in_scope - 5
    assert "只导出了前 5 行" in c.get(f"/exportjob/show/{job_id}").get_data(as_text=True)


def test_old_exports_are_purged(app, world, as_user):
    c = as_user("school_a1_clerk")
    old_id, _ = export_xlsx(c, "/student/export/xlsx")
    with app.app_context():
        old = db.session.get(ExportJob, old_id)
        path = exportjobs.file_path(old)
        old.created_at = clock.now() - exportjobs.KEEP_FOR - timedelta(hours=1)
        db.session.commit()
    assert os.path.exists(path)
    export_xlsx(c, "/student/export/xlsx")
    with app.app_context():
        assert db.session.get(ExportJob, old_id) is None
    assert not os.path.exists(path)


def test_api_export_lists_what_the_same_query_lists(app, world, client):
    import io as _io
    import prison
    from openpyxl import load_workbook
    from tests.conftest import api_headers
    h = api_headers(client, "county_a_clerk")
    q = prison.dumps({"filters": [{"col": "school_id", "opr": "eq", "value": world.schools["a2"]}],
                      "order_column": "xjh", "order_direction": "desc"})
    listed = client.get(f"/api/v1/student/?q={q}&page_size=100", headers=h).get_json()["result"]
    resp = client.post(f"/api/v1/student/export?q={q}", headers=h)
    assert resp.status_code == 202, resp.get_json()
    job_id = resp.get_json()["id"]
    exportjobs.wait(job_id)
    status = client.get(resp.get_json()["status"], headers=h).get_json()
    assert status["state"] == "done" and status["total"] == len(listed) > 0
    ws = load_workbook(_io.BytesIO(client.get(f"/api/v1/exportjob/{job_id}/file", headers=h).data)).worksheets[0]
    header, *rows = [[c.value for c in row] for row in ws.iter_rows()]
    assert [r[header.index("全国学籍号")] for r in rows] == [s["xjh"] for s in listed]
    assert [j["id"] for j in client.get("/api/v1/exportjob/", headers=h).get_json()["result"]] == [job_id]
    # someone else's job: 404 on status and file, absent from their list
    other = api_headers(client, "county_b_clerk")
    assert client.get(f"/api/v1/exportjob/{job_id}/status", headers=other).status_code == 404
    assert client.get(f"/api/v1/exportjob/{job_id}/file", headers=other).status_code == 404
    assert client.get("/api/v1/exportjob/", headers=other).get_json()["result"] == []


def test_api_export_stays_in_scope(app, world, client):
    from tests.conftest import api_headers
    h = api_headers(client, "school_b1_clerk")
    resp = client.post("/api/v1/student/export", headers=h)
    exportjobs.wait(resp.get_json()["id"])
    with app.app_context():
        in_scope = db.session.scalar(select(func.count()).select_from(Student).where(
            Student.school_id == world.schools["b1"]))
    assert client.get(resp.get_json()["status"], headers=h).get_json()["total"] == in_scope


KILLED_WORKER = r'''
import os, sys, time
sys.path.insert(0, os.environ["XUEJI_ROOT"])
from app import create_app, exportjobs
from tests.conftest import app_config, login
url, tmp = os.environ["XUEJI_URL"], os.environ["XUEJI_TMP"]
app = create_app(app_config(url, tmp))
real = exportjobs.export_rows
def slow(session, spec, ids, progress=None):          # slow enough to be killed half-way
    for i, row in enumerate(real(session, spec, ids, progress), 1):
        if i > 3:
            time.sleep(0.5)
        yield row
exportjobs.export_rows = slow
client = app.test_client()
login(client, "county_a_clerk")
resp = client.post("/student/export/xlsx")
print(resp.headers.get("Location"), flush=True)
time.sleep(600)
'''


def test_a_killed_export_worker_fails_its_job_at_once_and_leaves_no_file(app, world, as_user, tmp_path):
    """SIGKILL of the process writing an export: the job is failed in 我的导出 and the API list at once (not running
    for ever, no 429 for minutes), and its .part file and XlsxWriter's temporary files are gone."""
    import signal
    import subprocess
    import sys
    import time
    url, tmp = app.config["SQLALCHEMY_DATABASE_URI"], app.config["XUEJI_TMP"]
    script = tmp_path / "worker.py"
    script.write_text(KILLED_WORKER)
    env = {**os.environ, "XUEJI_ROOT": os.getcwd(), "XUEJI_URL": url, "XUEJI_TMP": tmp}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        location = proc.stdout.readline()
        assert "/exportjob/show/" in location, location
        job_id = int(location.rstrip().rsplit("/", 1)[-1])
        # the workbook is written to a .part in the writing process's own scratch folder (app.uploads)
        parts = os.path.join(app.config["UPLOAD_FOLDER"], "tmp", f"*-{proc.pid}", "*.part")
        for _ in range(100):                              # until it is writing: state running, a .part on disk
            with app.app_context():
                if db.session.get(ExportJob, job_id).state == "running" and _glob(parts):
                    break
            time.sleep(0.1)
        scratch = _glob(os.path.join(app.config["UPLOAD_FOLDER"], "tmp", f"*-{proc.pid}"))
        assert scratch and os.listdir(scratch[0])         # its marker (and XlsxWriter's files) in its own folder
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    c = as_user("county_a_clerk")
    assert "导出失败" in c.get("/exportjob/list/").get_data(as_text=True) or \
        "失败" in c.get("/exportjob/list/").get_data(as_text=True)
    with app.app_context():
        job = db.session.get(ExportJob, job_id)
        assert job.state == "failed" and "中断" in job.error
    assert not _glob(parts)
    assert not _glob(os.path.join(app.config["UPLOAD_FOLDER"], "tmp", f"*-{proc.pid}"))
    # the user may export again straight away
    resp = c.post("/student/export/xlsx")
    assert resp.status_code == 302 and "/exportjob/show/" in resp.headers["Location"]


def _glob(pattern):
    import glob
    return glob.glob(pattern)
