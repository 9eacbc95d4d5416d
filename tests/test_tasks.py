"""Background tasks (app/tasks.py, issue 17): a large admission list or 小学毕业生名单 is checked, committed and
imported by a task on the job queue, as is 问题学籍 detection over a large scope; the pages show 校验中… /
提交中… / 导入中… / 检测中… with progress, then the same result the synchronous path gives for the same input.

Embedded (a thread of the web process) with XUEJI_BACKGROUND_ROWS lowered to 5 (the demo world is small); the
queue with real `xueji worker` processes on Redis (127.0.0.1:6379, db 14, as tests/test_jobs.py; SQLite only): a
task runs in the worker, a killed worker's task is retried or failed (never 进行中 for ever), a commit retried after
a kill admits each student once. Authority: another school's or county's user gets 404, and the job itself refuses
when the account that asked has lost its authority. One task per batch and kind while one runs, held by the
database (two sessions at once)."""
import io
import glob
import os
import sqlite3
import threading
import time
from datetime import datetime

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import admissions, clock, problems, rosters, spreadsheets, tasks
from app.extensions import db
from models import School, Student, XuejiUser
from models.admissions import Admission, ImportBatch, RosterBatch
from models.requests import Problem
from models.tasks import BackgroundTask
from tests.conftest import DEMO_PASSWORD, login
from tests.test_admissions import _xlsx, graduates
from tests.test_jobs import kill, make_queue, redis_client, until  # noqa: F401  (fixtures)
from tests.test_primary import pupil, roster
from tests.test_problems import seed_bad_ids

YEAR = 2026
SMALL = 5                      # XUEJI_BACKGROUND_ROWS in these tests: files of more rows run in the background


@pytest.fixture(autouse=True)
def november_2026(app, world):
    """The admission season of the other import tests; no task of an earlier test is left behind."""
    clock.fix(datetime(2026, 11, 20, 10, 0))
    _forget_tasks(app)
    yield
    for thread in list(tasks._threads.values()):
        thread.join(60)
    _forget_tasks(app)
    clock.fix(None)


def _forget_tasks(app):
    tasks._threads.clear()
    with app.app_context():
        db.session.execute(delete(BackgroundTask))
        db.session.commit()
        db.session.remove()


@pytest.fixture
def bg(make_app):
    """A web app on the same database whose files of more than SMALL rows go to background tasks; each task pauses
    `delay` seconds before it works and before its outcome commits (XUEJI_TASK_DELAY), so a page sees it run."""
    def build(delay=1.0, **extra):
        return make_app(XUEJI_BACKGROUND_ROWS=SMALL, XUEJI_TASK_DELAY=delay, **extra)
    return build


def client(web, username):
    c = web.test_client()
    assert login(c, username, DEMO_PASSWORD).status_code == 302
    return c


def admission_rows(app):
    """Every graduate of the demo (valid) and rows with every kind of problem: more than SMALL rows."""
    g = graduates(app, 4)
    return [[n, x, None] for n, x, _ in g] + [
        ["错名字", g[0][1], None],                    # name does not match (and a duplicate of row 2)
        ["某某", "G4101022011999999X9"[:19], None],    # unknown number
        [g[1][0], g[1][1], None],                     # duplicate row
        ["张三", "410102201203225150", None],          # an ID number is not a 学籍号
    ]


def upload(c, school_id, data, name="录取名单.xlsx"):
    resp = c.post("/admissionimport/upload", data={"school_id": str(school_id), "file": (io.BytesIO(data), name)},
                  content_type="multipart/form-data")
    assert resp.status_code == 302 and "/batch/" in resp.headers["Location"], resp.get_data(as_text=True)[:300]
    return int(resp.headers["Location"].rstrip("/").split("/")[-1])


def upload_roster(c, data, county="410102"):
    resp = c.post("/primaryroster/upload", data={"county_code": county, "year": str(YEAR),
                                                 "file": (io.BytesIO(data), "小学毕业生.xlsx")},
                  content_type="multipart/form-data")
    assert resp.status_code == 302 and "/batch/" in resp.headers["Location"], resp.get_data(as_text=True)[:300]
    return int(resp.headers["Location"].rstrip("/").split("/")[-1])


def task_of(app, kind, target) -> BackgroundTask:
    with app.app_context():
        task = db.session.scalars(select(BackgroundTask).where(BackgroundTask.kind == kind,
                                                               BackgroundTask.target == str(target))
                                  .order_by(BackgroundTask.id.desc())).first()
        assert task is not None, (kind, target)
        db.session.expunge(task)
        db.session.remove()
        return task


def issues_of(checked):
    return [(i.row, i.column, i.code, i.message) for i in checked.issues]


def sync_admission_check(app, school_id, data):
    with app.app_context():
        rows, issues = spreadsheets.read_table(data, "a.xlsx", admissions.COLUMNS)
        checked = admissions.check_admissions(db.session, db.session.get(School, school_id), YEAR, rows, issues)
        db.session.rollback()
        return checked


def saved(app, model, batch_id):
    with app.app_context():
        batch = db.session.get(model, batch_id)
        return (admissions if model is ImportBatch else rosters).saved_check(batch)


def admitted(app, school_id):
    with app.app_context():
        return sorted(db.session.scalars(select(Admission.student_id).where(Admission.school_id == school_id,
                                                                            Admission.current == 1)))


# --- embedded: a thread of the web process --------------------------------------------------------------------

def test_a_large_admission_list_is_checked_and_committed_in_the_background(app, world, bg):
    """The upload answers at once with 校验中… (no check in the request); the task's check shows the same issues as
    the synchronous check of the same file; 提交 in the background admits the students that check found valid."""
    web = bg()
    school = world.schools["a2"]
    data = _xlsx(admission_rows(app))
    expected = sync_admission_check(app, school, data)
    assert len(expected.rows) > SMALL and expected.valid and expected.bad_rows
    c = client(web, "school_a2_clerk")
    bid = upload(c, school, data)
    task = task_of(app, "admission_check", bid)
    assert task.user_id == world.users["school_a2_clerk"] and task.total == len(expected.rows)
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "校验中…" in page and f"/ {len(expected.rows)}</span> 行" in page and "task-bar" in page
    status = c.get(f"/admissionimport/batch/{bid}/task").get_json()
    assert status["live"] and status["state"] in ("排队中", "进行中")
    # a second upload of the same file finds the running check
    assert upload(c, school, data) == bid
    tasks.wait(task.id)
    assert task_of(app, "admission_check", bid).id == task.id

    done = c.get(f"/admissionimport/batch/{bid}/task").get_json()
    assert (done["state"], done["live"], done["done"]) == ("完成", False, len(expected.rows))
    assert done["message"] == admissions.checked_message(expected)
    kept = saved(app, ImportBatch, bid)
    assert issues_of(kept) == issues_of(expected) and kept.valid == expected.valid
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    for _row, _column, _code, message in issues_of(expected):
        assert message.replace("“", "&#34;") in page or message in page, message
    assert "校验中…" not in page and f"有效 <b class=\"text-success\">{len(expected.valid)}</b>" in page

    assert c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"}).status_code == 302
    commit = task_of(app, "admission_commit", bid)
    assert "提交中…" in c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    tasks.wait(commit.id)
    assert admitted(app, school) == sorted(expected.matches.values())
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert f"已提交 <b>{len(expected.valid)}</b> 名学生" in page
    assert f"已提交{len(expected.valid)}名学生，等待区县教育局审核" in page
    with app.app_context():
        batch = db.session.get(ImportBatch, bid)
        assert batch.state == "已提交" and batch.request_id is not None


def test_a_refused_background_commit_says_why_and_offers_a_recheck(app, world, bg):
    """全部正确才提交 on a list with errors: the task fails with the same message the synchronous path flashes, the
    page shows it beside the kept check, nothing is admitted, and 重新校验 starts a new check task."""
    web = bg(delay=0)
    school = world.schools["a2"]
    c = client(web, "school_a2_clerk")
    bid = upload(c, school, _xlsx(admission_rows(app)))
    tasks.wait(task_of(app, "admission_check", bid).id)
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "all_or_nothing"})
    tasks.wait(task_of(app, "admission_commit", bid).id)
    failed = task_of(app, "admission_commit", bid)
    assert failed.state == "失败" and failed.message.startswith("名单有4行未通过校验，按“全部正确才提交”未提交任何记录")
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "名单有4行未通过校验" in page and "重新校验" in page and "task-failed" in page
    assert admitted(app, school) == []
    assert c.post(f"/admissionimport/batch/{bid}/recheck").status_code == 302
    again = task_of(app, "admission_check", bid)
    assert again.id != failed.id
    tasks.wait(again.id)
    assert task_of(app, "admission_check", bid).state == "完成"


def test_small_files_keep_the_synchronous_path(app, world, bg):
    web = bg()
    c = client(web, "school_a2_clerk")
    g = graduates(app, 2)
    bid = upload(c, world.schools["a2"], _xlsx([[n, x, None] for n, x, _ in g]))
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert len(admitted(app, world.schools["a2"])) == 2
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(BackgroundTask)) == 0


def roster_rows():
    good = [pupil(i) for i in range(1, 8)]
    bad = pupil(8)
    bad[2] = "女"                                      # sex contradicts the ID number
    return good + [bad, good[0]]                       # and a duplicate of row 2


def test_a_large_roster_is_checked_and_imported_in_the_background(app, world, bg):
    web = bg()
    c = client(web, "county_a_clerk")
    data = roster(c, roster_rows())
    with app.app_context():
        rows, issues = spreadsheets.read_table(data, "r.xlsx", rosters.COLUMNS)
        expected = rosters.check_roster(db.session, "410102", YEAR, rows, issues)
        db.session.rollback()
    assert len(expected.rows) > SMALL and expected.graduates and expected.bad_rows
    bid = upload_roster(c, data)
    assert "校验中…" in c.get(f"/primaryroster/batch/{bid}").get_data(as_text=True)
    tasks.wait(task_of(app, "roster_check", bid).id)
    kept = saved(app, RosterBatch, bid)
    assert issues_of(kept) == issues_of(expected) and set(kept.graduates) == set(expected.graduates)
    page = c.get(f"/primaryroster/batch/{bid}").get_data(as_text=True)
    assert f"可导入 <b class=\"text-success\">{len(expected.graduates)}</b>" in page
    assert "第9行“性别”" in page and "第10行“学籍号”：与第2行重复" in page and "校验时间" in page

    c.post(f"/primaryroster/batch/{bid}/commit", data={"mode": "valid_rows"})
    assert "导入中…" in c.get(f"/primaryroster/batch/{bid}").get_data(as_text=True)
    tasks.wait(task_of(app, "roster_import", bid).id)
    xjhs = [g.xjh for g in expected.graduates.values()]
    with app.app_context():
        held = db.session.execute(select(Student.xjh, Student.stage, Student.status)
                                  .where(Student.xjh.in_(xjhs))).all()
        assert len(held) == len(xjhs) and {(s, st) for _, s, st in held} == {("小学", "毕业")}
        batch = db.session.get(RosterBatch, bid)
        assert (batch.state, batch.created, batch.updated) == ("已导入", len(xjhs), 0)
    page = c.get(f"/primaryroster/batch/{bid}").get_data(as_text=True)
    assert f"已导入小学毕业生：新增{len(xjhs)}人，更新0人" in page


def test_detection_over_a_large_scope_runs_in_the_background(app, world, bg):
    """The same problems as the synchronous detect_in_scope over the same scope."""
    seed_bad_ids(app, world)
    web = bg()
    c = client(web, "county_a_clerk")
    assert c.post("/problem/detect").status_code == 302
    key = "region:410102"
    task = task_of(app, "detect", key)
    page = c.get("/problem/list/").get_data(as_text=True)
    assert "检测中…" in page and "条学籍" in page
    assert c.get("/problem/detection").get_json()["live"]
    tasks.wait(task.id)
    found = open_problems(app)
    page = c.get("/problem/list/").get_data(as_text=True)
    assert "检测完成：发现2条问题" in page
    # the synchronous run over the same scope, from a clean queue, finds the same
    with app.app_context():
        db.session.execute(delete(Problem))
        db.session.execute(update(Student).values(has_problem=False))
        db.session.commit()
        actor = db.session.get(XuejiUser, world.users["county_a_clerk"])
        counts = problems.detect_in_scope(db.session, actor)
    assert open_problems(app) == found and len(found) == 2
    assert task_of(app, "detect", key).message == problems.detected_message(counts)
    # another county's page shows no detection of county A
    assert "检测完成" not in client(web, "county_b_clerk").get("/problem/list/").get_data(as_text=True)


def open_problems(app):
    with app.app_context():
        return sorted(db.session.execute(select(Problem.student_id, Problem.kind, Problem.detail)
                                         .where(Problem.current == 1)).all())


# --- authority --------------------------------------------------------------------------------------------------

def test_another_schools_or_countys_user_cannot_see_or_start_a_task(app, world, bg):
    web = bg(delay=0)
    owner = client(web, "school_a2_clerk")
    bid = upload(owner, world.schools["a2"], _xlsx(admission_rows(app)))
    tasks.wait(task_of(app, "admission_check", bid).id)
    county = client(web, "county_a_clerk")
    rid = upload_roster(county, roster(county, roster_rows()))
    tasks.wait(task_of(app, "roster_check", rid).id)
    before = len(task_rows(app))
    for user in ("school_b2_clerk", "county_b_clerk"):
        c = client(web, user)
        for method, path in (("get", f"/admissionimport/batch/{bid}/task"),
                             ("post", f"/admissionimport/batch/{bid}/recheck"),
                             ("post", f"/admissionimport/batch/{bid}/commit"),
                             ("get", f"/admissionimport/batch/{bid}")):
            assert getattr(c, method)(path, data={"mode": "valid_rows"}).status_code == 404, (user, path)
    c = client(web, "county_b_clerk")
    for method, path in (("get", f"/primaryroster/batch/{rid}/task"), ("post", f"/primaryroster/batch/{rid}/recheck"),
                         ("post", f"/primaryroster/batch/{rid}/commit")):
        assert getattr(c, method)(path, data={"mode": "valid_rows"}).status_code == 404, path
    assert client(web, "school_a1_clerk").get(f"/primaryroster/batch/{rid}/task").status_code in (302, 403)
    assert len(task_rows(app)) == before and admitted(app, world.schools["a2"]) == []


def task_rows(app):
    with app.app_context():
        return db.session.execute(select(BackgroundTask.id, BackgroundTask.state)).all()


def test_the_job_refuses_when_the_account_lost_its_authority(app, world, bg):
    """The task re-reads the account that asked and the services check it again: moved to another school while
    its check waited, or disabled while its commit waited, the job refuses and says why; nothing is written."""
    web = bg(delay=1.0)
    school = world.schools["a2"]
    c = client(web, "school_a2_clerk")
    bid = upload(c, school, _xlsx(admission_rows(app)))
    set_user(app, "school_a2_clerk", school_id=world.schools["a1"])
    tasks.wait(task_of(app, "admission_check", bid).id)
    check = task_of(app, "admission_check", bid)
    assert check.state == "失败" and check.message == "该名单的学校不在您的管辖范围内，未处理该名单"
    assert saved(app, ImportBatch, bid) is None
    set_user(app, "school_a2_clerk", school_id=school)

    c = client(web, "school_a2_clerk")
    c.post(f"/admissionimport/batch/{bid}/recheck")
    tasks.wait(task_of(app, "admission_check", bid).id)
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    set_user(app, "school_a2_clerk", active=False)
    tasks.wait(task_of(app, "admission_commit", bid).id)
    commit = task_of(app, "admission_commit", bid)
    assert commit.state == "失败" and "已停用" in commit.message
    assert admitted(app, school) == []


def test_a_roster_import_whose_account_moved_county_is_refused(app, world, bg):
    web = bg(delay=1.0)
    c = client(web, "county_a_clerk")
    bid = upload_roster(c, roster(c, roster_rows()))
    tasks.wait(task_of(app, "roster_check", bid).id)
    c.post(f"/primaryroster/batch/{bid}/commit", data={"mode": "valid_rows"})
    set_user(app, "county_a_clerk", region_code="410105")
    tasks.wait(task_of(app, "roster_import", bid).id)
    task = task_of(app, "roster_import", bid)
    assert (task.state, task.message) == ("失败", "区县不存在或不在您的管辖范围内")
    with app.app_context():
        assert db.session.get(RosterBatch, bid).state == "已校验"
        assert db.session.scalar(select(func.count()).select_from(Student).where(Student.stage == "小学")) == 0


def test_a_detection_whose_account_changed_scope_is_refused(app, world, bg):
    web = bg(delay=1.0)
    c = client(web, "county_a_clerk")
    c.post("/problem/detect")
    set_user(app, "county_a_clerk", region_code="410105")
    task = task_of(app, "detect", "region:410102")
    tasks.wait(task.id)
    task = task_of(app, "detect", "region:410102")
    assert task.state == "失败" and "管辖范围已变化" in task.message


def set_user(app, username, **values):
    with app.app_context():
        db.session.execute(update(XuejiUser).where(XuejiUser.username == username).values(**values))
        db.session.commit()
        db.session.remove()


# --- one live task per batch and kind ---------------------------------------------------------------------------

def test_two_sessions_starting_the_same_task_get_one(app, world):
    """Two requests start the check of the same batch at the same moment: the second one waits on the UNIQUE
    (kind, target, live) index, then finds the first one's task."""
    with app.app_context():
        engine = db.engine
        first, second = Session(bind=engine), Session(bind=engine)
        try:
            a = first.get(XuejiUser, world.users["school_a2_clerk"])
            b = second.get(XuejiUser, world.users["school_a2_clerk"])
            mine = tasks.start(first, a, "admission_check", "999999", total=10)
            first.info.pop(tasks.PENDING)                 # not run: there is no batch 999999
            theirs = {}

            def other():
                theirs["task"] = tasks.start(second, b, "admission_check", "999999", total=10).id
                second.commit()
            thread = threading.Thread(target=other)
            thread.start()
            time.sleep(0.5)
            assert thread.is_alive()                      # held by the index until the first commits
            first.commit()
            thread.join(30)
            assert theirs.get("task") == mine.id
        finally:
            first.close()
            second.close()
        assert db.session.scalar(select(func.count()).select_from(BackgroundTask)
                                 .where(BackgroundTask.target == "999999")) == 1
        # the constraint itself: a second live row is refused; ended rows (live NULL) never collide
        row = dict(kind="admission_check", target="999999", state="排队中", done=0, total=0,
                   created_at=datetime.now())
        with pytest.raises(IntegrityError):
            with engine.begin() as conn:
                conn.execute(insert(BackgroundTask), [{**row, "live": 1}])
        with engine.begin() as conn:
            conn.execute(insert(BackgroundTask), [{**row, "live": None, "state": "完成"}] * 2)


def test_an_embedded_task_whose_run_is_gone_is_reported_interrupted(app, world, bg):
    """No thread, no live process on this host, no fresh heartbeat: failed as interrupted when someone looks, never
    进行中 for ever; the batch can be checked again at once."""
    web = bg(delay=0)
    c = client(web, "school_a2_clerk")
    bid = upload(c, world.schools["a2"], _xlsx(admission_rows(app)))
    first = task_of(app, "admission_check", bid)
    tasks.wait(first.id)
    with app.app_context():                               # as a web worker killed mid-check leaves it
        db.session.execute(update(BackgroundTask).where(BackgroundTask.id == first.id).values(
            state="进行中", live=1, heartbeat_at=datetime(2026, 11, 20, 9, 0)))
        db.session.commit()
    status = c.get(f"/admissionimport/batch/{bid}/task").get_json()
    assert (status["state"], status["live"], status["message"]) == (
        "失败", False, "校验中断（服务重启或超时），请重新校验")
    assert c.post(f"/admissionimport/batch/{bid}/recheck").status_code == 302
    assert task_of(app, "admission_check", bid).id != first.id


def test_a_run_whose_task_was_reported_interrupted_does_not_complete_it(app, world, bg):
    """The task was reported failed (interrupted) while its run still worked: the user was told to commit again, so
    the late run's admissions roll back instead of landing behind that message."""
    web = bg(delay=1.0)
    school = world.schools["a2"]
    c = client(web, "school_a2_clerk")
    bid = upload(c, school, _xlsx(admission_rows(app)))
    tasks.wait(task_of(app, "admission_check", bid).id)
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    commit = task_of(app, "admission_commit", bid)
    until(lambda: task_of(app, "admission_commit", bid).state == "进行中", what="running")
    with app.app_context():                               # as the page reports a run it takes for dead
        tasks._end(commit.id, "失败", tasks.KINDS["admission_commit"].interrupted)
    tasks.wait(commit.id)
    after = task_of(app, "admission_commit", bid)
    assert (after.state, after.message) == ("失败", "提交中断（服务重启或超时），请重新提交")
    assert admitted(app, school) == []
    with app.app_context():
        assert db.session.get(ImportBatch, bid).state == "已校验"


def test_a_lost_queued_run_is_queued_again_or_failed(app, world):
    """app.jobs' on_lost hook: with retries left the task is 排队中 again from row 0; without, failed as
    interrupted; a task that has ended stays as it is."""
    with app.app_context():
        row = dict(kind="roster_import", target="1", state="进行中", live=1, done=7, total=10, step="写入",
                   created_at=datetime.now())
        task = BackgroundTask(**row)
        db.session.add(task)
        db.session.commit()
        task_id = task.id
        tasks.lost(task_id, retrying=True)
        again = tasks._row(task_id)
        assert (again.state, again.live, again.step, again.done) == ("排队中", 1, None, 0)
        tasks.lost(task_id, retrying=False)
        ended = tasks._row(task_id)
        assert (ended.state, ended.live, ended.message) == ("失败", None, "导入中断（服务重启或超时），请重新导入")
        tasks.lost(task_id, retrying=True)
        assert tasks._row(task_id).state == "失败"


def test_an_unreachable_queue_fails_the_task_and_says_so(app, world, bg):
    web = bg(delay=0, XUEJI_QUEUE_URL="redis://127.0.0.1:1/0")
    c = client(web, "school_a2_clerk")
    bid = upload(c, world.schools["a2"], _xlsx(admission_rows(app)))
    task = task_of(app, "admission_check", bid)
    assert (task.state, task.message) == ("失败", tasks.QUEUE_DOWN)
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert tasks.QUEUE_DOWN in page and "重新校验" in page


# --- the queue: real worker processes ---------------------------------------------------------------------------

@pytest.fixture
def task_queue(make_queue, redis_client):
    made = []

    def make(**settings):
        made.append(make_queue(XUEJI_BACKGROUND_ROWS=SMALL, **settings))
        return made[-1]
    yield make
    for q in made:                                         # the tasks' RQ jobs and leases (test_jobs cleans exports')
        for key in [*redis_client.scan_iter("rq:job:task-*"), *redis_client.scan_iter("xueji:lease:task-*")]:
            redis_client.delete(key)


def queue_upload(q, app, world, username="school_a2_clerk"):
    c = q.client(username)
    bid = upload(c, world.schools["a2"], _xlsx(admission_rows(app)))
    return c, bid


def rq_job(q, task):
    from rq.job import Job
    return Job.fetch(task.queue_id, connection=q.redis)


def test_a_large_check_runs_in_a_worker_process(app, world, task_queue):
    q = task_queue()
    c, bid = queue_upload(q, app, world)
    task = task_of(app, "admission_check", bid)
    assert task.id not in tasks._threads and rq_job(q, task).get_status() == "queued"
    assert "校验中…" in c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    q.burst()
    assert task_of(app, "admission_check", bid).state == "完成", q.logs()
    expected = sync_admission_check(app, world.schools["a2"], _xlsx(admission_rows(app)))
    assert issues_of(saved(app, ImportBatch, bid)) == issues_of(expected)
    assert "有效 <b class=\"text-success\">4</b>" in c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)


def horse_of(q, task_id) -> int:
    """The process running the task (a forking worker's work horse): its marker's scratch folder says."""
    pattern = os.path.join(q.app.config["UPLOAD_FOLDER"], "tmp", "*", f"task-{task_id}")
    marker = until(lambda: glob.glob(pattern), timeout=90, what="the task to start")[0]
    return int(os.path.basename(os.path.dirname(marker)).rpartition("-")[2])


def writing(app) -> bool:
    """Whether another connection holds the SQLite database's write lock (a transaction that has written)."""
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    conn = sqlite3.connect(path, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.rollback()
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


def test_a_killed_work_horse_is_retried_and_a_retried_commit_admits_once(app, world, task_queue):
    """SIGKILL of the process running the check: 排队中 again, then checked by the retry. SIGKILL of the process
    committing, after it has written its admissions and before its commit: they roll back with it, the retry
    commits, and each student is admitted once."""
    q = task_queue()
    q.worker(XUEJI_TASK_DELAY=3)
    c, bid = queue_upload(q, app, world)
    check = task_of(app, "admission_check", bid)
    horse = horse_of(q, check.id)
    until(lambda: task_of(app, "admission_check", bid).state == "进行中", what="running")
    kill(horse)
    until(lambda: task_of(app, "admission_check", bid).state == "完成", timeout=120, what="the retry")
    assert rq_job(q, check).retries_left == 1

    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    commit = task_of(app, "admission_commit", bid)
    horse = horse_of(q, commit.id)
    until(lambda: writing(app), timeout=60, every=0.02, what="the commit's transaction")   # before its outcome
    kill(horse)
    until(lambda: task_of(app, "admission_commit", bid).state == "完成", timeout=120, what="the retried commit")
    assert rq_job(q, commit).retries_left == 1, q.logs()
    with app.app_context():
        rows = db.session.execute(select(Admission.student_id, func.count()).where(Admission.batch_id == bid)
                                  .group_by(Admission.student_id)).all()
        assert len(rows) == 4 and {n for _, n in rows} == {1}
        assert db.session.get(ImportBatch, bid).state == "已提交"
    assert "已提交 <b>4</b> 名学生" in c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)


def test_a_killed_worker_with_no_retries_left_fails_the_task(app, world, task_queue):
    """XUEJI_QUEUE_RETRIES=0, an in-process worker killed mid-task: the batch page reports the check failed as
    interrupted once its lease expires (never 进行中 for ever), and offers 重新校验."""
    q = task_queue(XUEJI_QUEUE_RETRIES=0)
    worker = q.worker("--simple", XUEJI_TASK_DELAY=5)
    c, bid = queue_upload(q, app, world)
    task = task_of(app, "admission_check", bid)
    assert horse_of(q, task.id) == worker.pid
    until(lambda: task_of(app, "admission_check", bid).state == "进行中", what="running")
    kill(worker.pid)
    worker.wait(10)
    status = until(lambda: (s := c.get(f"/admissionimport/batch/{bid}/task").get_json())["live"] is False and s,
                   timeout=30, what="the task to be reported")
    assert status["state"] == "失败" and status["message"] == "校验中断（服务重启或超时），请重新校验"
    page = c.get(f"/admissionimport/batch/{bid}").get_data(as_text=True)
    assert "校验中断" in page and "重新校验" in page
