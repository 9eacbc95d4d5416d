"""Crash safety: a server process killed (SIGKILL) in the middle of a write leaves the database exactly as before
the interrupted operation — an admission commit, a final approval with its 调档 — and the next process carries on
(on every database the suite runs on; the export worker's kill is in test_exports.py)."""
import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from models import Enrollment, Student
from models.admissions import Admission, ImportBatch
from models.requests import Request
from tests.test_admissions import graduates, upload, workbook

WORKER = r'''
import os, sys, time
sys.path.insert(0, os.environ["XUEJI_ROOT"])
from datetime import datetime
from app import clock, create_app
from tests.conftest import app_config, login
app = create_app(app_config(os.environ["XUEJI_URL"], os.environ["XUEJI_TMP"]))
clock.fix(datetime(2026, 11, 20, 10, 0))
module, name = os.environ["XUEJI_STALL"].rsplit(".", 1)
import importlib
target = importlib.import_module(module)
real = getattr(target, name)
def stall(*args, **kwargs):                      # inside the transaction: tell the parent, then wait to be killed
    result = real(*args, **kwargs)
    print("STALLED", flush=True)
    time.sleep(600)
    return result
setattr(target, name, stall)
client = app.test_client()
login(client, os.environ["XUEJI_USER"])
method, path = os.environ["XUEJI_REQUEST"].split(" ", 1)
if method == "POST":
    client.post(path, data={"mode": "valid_rows"}, headers={"Content-Type": "application/x-www-form-urlencoded"})
else:
    from tests.conftest import api_headers
    client.post(path, json={"decision": "通过"}, headers=api_headers(client, os.environ["XUEJI_USER"]))
print("DONE", flush=True)
'''


@pytest.fixture(autouse=True)
def november_2026(world):
    clock.fix(datetime(2026, 11, 20, 10, 0))
    yield
    clock.fix(None)


def kill_midway(app, tmp_path, user, request, stall):
    """Run one request in another process, stalled inside its transaction by `stall`, and SIGKILL it there."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "XUEJI_ROOT": os.getcwd(), "XUEJI_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "XUEJI_TMP": app.config["XUEJI_TMP"], "XUEJI_USER": user, "XUEJI_REQUEST": request, "XUEJI_STALL": stall}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line == "STALLED", line
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    time.sleep(0.2)                                  # the server notices the dropped connection


def snapshot(app):
    with app.app_context():
        return (db.session.execute(select(Admission.id, Admission.state, Admission.claim).order_by(Admission.id)).all(),
                db.session.execute(select(ImportBatch.id, ImportBatch.state, ImportBatch.request_id)).all(),
                db.session.execute(select(Request.id, Request.state, Request.step_seq).order_by(Request.id)).all(),
                db.session.execute(select(Student.id, Student.school_id, Student.status, Student.cohort_year)
                                   .order_by(Student.id)).all(),
                db.session.scalar(select(func.count()).select_from(Enrollment)))


def test_killed_admission_commit_leaves_nothing_half_written(app, world, as_user, tmp_path):
    c = as_user("school_a2_clerk")
    g = graduates(app, 3)
    bid = upload(c, world.schools["a2"], workbook(c, [[x.name, x.xjh] for x in g]))
    before = snapshot(app)
    kill_midway(app, tmp_path, "school_a2_clerk", f"POST /admissionimport/batch/{bid}/commit",
                "app.admissions._admit")
    assert snapshot(app) == before                   # the rows inserted before the kill are gone
    # and the next process commits the same list normally
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Admission).where(
            Admission.batch_id == bid, Admission.current == 1)) == 3


def test_killed_final_approval_moves_no_one(app, world, as_user, tmp_path):
    from tests.test_workflow import decide
    c = as_user("school_a2_clerk")
    g = graduates(app, 2)
    bid = upload(c, world.schools["a2"], workbook(c, [[x.name, x.xjh] for x in g]))
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    with app.app_context():
        rid = db.session.get(ImportBatch, bid).request_id
    before = snapshot(app)
    kill_midway(app, tmp_path, "county_a_reviewer", f"API /api/v1/request/{rid}/decide",
                "app.admissions.transfer_records")
    assert snapshot(app) == before                   # students not moved, request still at its step
    assert decide(app.test_client(), "county_a_reviewer", rid).status_code == 200
    with app.app_context():
        assert {db.session.get(Student, x.id).school_id for x in g} == {world.schools["a2"]}
