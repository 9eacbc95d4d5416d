"""Every route the records issue added, attacked with another school's ids (and by a bureau user of the
other county): answers 404 (or 403 where the role lacks the permission) and changes nothing."""
import io

import pytest
from sqlalchemy import select

from app.extensions import db
from models import Guardian, Student
from models.requests import Problem, Request
from tests.conftest import api_headers
from tests.test_workflow import PNG, file_change


@pytest.fixture
def foreign(app, world, client):
    """Objects of school b1 (county B): a student, a guardian, an open problem, a request with evidence."""
    sid = world.student_of("b1")
    rid = file_change(client, api_headers(client, "school_b1_clerk"), sid, {"name": "外校改名"}).get_json()[
        "result"]["id"]
    with app.app_context():
        from sqlalchemy import update
        db.session.execute(update(Student).where(Student.id == sid).values(sex="2" if db.session.get(
            Student, sid).sex == "1" else "1"))
        db.session.commit()
        from app import problems
        problems.detect(db.session, student_ids={sid})
        db.session.commit()
        return {"student": sid, "request": rid,
                "guardian": db.session.scalar(select(Guardian.id).where(Guardian.student_id == sid)),
                "problem": db.session.scalar(select(Problem.id).where(Problem.student_id == sid)),
                "evidence": db.session.get(Request, rid).evidence[0].id}


WEB = [
    ("get", "/student/card/{student}"), ("get", "/keychange/{student}"), ("post", "/keychange/{student}"),
    ("get", "/guardian/show/{guardian}"), ("get", "/guardian/edit/{guardian}"),
    ("post", "/guardian/delete/{guardian}"), ("get", "/request/show/{request}"),
    ("post", "/request/decide/{request}"), ("post", "/request/withdraw/{request}"),
    ("post", "/request/resubmit/{request}"), ("get", "/request/evidence/{evidence}"),
    ("get", "/problem/show/{problem}"), ("post", "/problem/proof/{problem}"),
    ("post", "/problem/remove/{problem}"),
]
API = [
    ("get", "/api/v1/guardian/{guardian}"), ("put", "/api/v1/guardian/{guardian}"),
    ("delete", "/api/v1/guardian/{guardian}"), ("get", "/api/v1/request/{request}"),
    ("post", "/api/v1/request/{request}/decide"), ("post", "/api/v1/request/{request}/withdraw"),
    ("post", "/api/v1/request/{request}/resubmit"), ("get", "/api/v1/problem/{problem}"),
]


def snapshot(app, ids):
    with app.app_context():
        s = db.session.get(Student, ids["student"])
        r = db.session.get(Request, ids["request"])
        g = db.session.get(Guardian, ids["guardian"])
        p = db.session.get(Problem, ids["problem"])
        return (s.name, s.deleted_at, r.state, r.version, g.name if g else None, p.state)


@pytest.mark.parametrize("actor", ["school_a1_clerk", "school_a1_leader", "county_a_reviewer",
                                   "county_a_clerk"])
@pytest.mark.parametrize("method,path", WEB)
def test_web_routes_refuse_foreign_ids(app, world, foreign, as_user, actor, method, path):
    before = snapshot(app, foreign)
    c = as_user(actor)
    data = {"decision": "通过", "comment": "x", "reason": "x", "confirm": "确认删除", "name": "篡改",
            "evidence": (io.BytesIO(PNG), "a.png")}
    resp = getattr(c, method)(path.format(**foreign), **({"data": data} if method == "post" else {}))
    assert resp.status_code in (403, 404), (path, resp.status_code)
    assert snapshot(app, foreign) == before


@pytest.mark.parametrize("actor", ["school_a1_clerk", "school_a1_leader", "county_a_reviewer"])
@pytest.mark.parametrize("method,path", API)
def test_api_routes_refuse_foreign_ids(app, world, foreign, client, actor, method, path):
    before = snapshot(app, foreign)
    h = api_headers(client, actor)
    kwargs = {"headers": h}
    if method in ("post", "put"):
        kwargs["json"] = {"decision": "通过", "comment": "x", "name": "篡改"}
    resp = getattr(client, method)(path.format(**foreign), **kwargs)
    assert resp.status_code in (403, 404), (path, resp.status_code, resp.get_data(as_text=True)[:200])
    assert snapshot(app, foreign) == before


def test_api_lists_and_filings_stay_in_scope(app, world, foreign, client):
    h = api_headers(client, "school_a1_clerk")
    for resource in ("guardian", "enrollment", "request", "problem"):
        rows = client.get(f"/api/v1/{resource}/?q=(page_size:100)", headers=h).get_json()["result"]
        schools = {r.get("school_id") for r in rows if "school_id" in r}
        students = {r.get("student_id") for r in rows if "student_id" in r}
        assert world.schools["b1"] not in schools and foreign["student"] not in students, resource
    # filing for, or uploading evidence about, another school's student
    resp = client.post("/api/v1/request/file", headers=h, json={
        "kind": "key_change", "student_id": foreign["student"], "changes": {"name": "篡改"}})
    assert resp.status_code == 404
    resp = client.post("/api/v1/evidence/", headers=h, content_type="multipart/form-data",
                       data={"student_id": str(foreign["student"]), "file": (io.BytesIO(PNG), "a.png")})
    assert resp.status_code == 404
    # a guardian cannot be attached to another school's student
    resp = client.post("/api/v1/guardian/", headers=h, json={
        "student_id": foreign["student"], "seq": 2, "name": "张三", "relation": "01",
        "hukou_place": "410102001001", "is_guardian": True})
    assert resp.status_code == 404
