"""The approval engine through 关键数据变更 and 问题学籍佐证: chains, parties, refusals, evidence, concurrency."""
import io
import threading

import pytest
from sqlalchemy import select

from app.extensions import db
from models import AuditEvent, Student
from models.requests import Request, RequestStep
from tests.conftest import api_headers



def _png() -> bytes:
    from PIL import Image
    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


def _pdf() -> bytes:
    from pypdf import PdfWriter
    writer, out = PdfWriter(), io.BytesIO()
    writer.add_blank_page(width=595, height=842)
    writer.write(out)
    return out.getvalue()


PNG = _png()          # real files: evidence is decoded, not only sniffed (app/evidence.py)
PDF = _pdf()


def upload(client, h, student_id, data=PNG, name="户口本.png"):
    return client.post("/api/v1/evidence/", headers=h, content_type="multipart/form-data",
                       data={"student_id": str(student_id), "file": (io.BytesIO(data), name)})


def file_change(client, h, student_id, changes, evidence=1, **extra):
    ids = [upload(client, h, student_id).get_json()["result"]["id"] for _ in range(evidence)]
    body = {"kind": "key_change", "student_id": student_id, "changes": changes, "reason": "户籍信息更正",
            "evidence_ids": ids, **extra}
    return client.post("/api/v1/request/file", json=body, headers=h)


def decide(client, user, request_id, decision="通过", comment=None):
    return client.post(f"/api/v1/request/{request_id}/decide", headers=api_headers(client, user),
                       json={"decision": decision, "comment": comment})


def name_of(app, sid):
    with app.app_context():
        return db.session.get(Student, sid).name


def test_key_change_applies_only_at_the_final_approval(app, world, client):
    sid = world.student_of("a1")
    old = name_of(app, sid)
    h = api_headers(client, "school_a1_clerk")
    resp = file_change(client, h, sid, {"name": "李改名"})
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    assert name_of(app, sid) == old
    assert decide(client, "school_a1_leader", rid).status_code == 200
    assert name_of(app, sid) == old                      # school approval alone changes nothing
    resp = decide(client, "county_a_reviewer", rid)
    assert resp.get_json()["result"]["state"] == "已通过"
    assert name_of(app, sid) == "李改名"
    with app.app_context():
        steps = db.session.scalars(select(RequestStep.decision).where(RequestStep.request_id == rid)
                                   .order_by(RequestStep.id)).all()
        assert steps == ["提交", "通过", "通过"]
        ev = db.session.scalars(select(AuditEvent).where(AuditEvent.entity == "student",
                                                         AuditEvent.field == "name")).one()
        assert (ev.old_value, ev.new_value, ev.username) == (old, "李改名", "county_a_reviewer")


def test_request_page_shows_a_step_tracker(app, world, client, as_user):
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]
    page = as_user("school_a1_leader").get(f"/request/show/{rid}").get_data(as_text=True)
    assert 'class="tracker"' in page and 'class="done"' in page and 'class="current"' in page
    assert "学校审核" in page and "区县教育局审核" in page and 'value="通过"' in page
    # the filer sees no decision buttons on its own request
    page = as_user("school_a1_clerk").get(f"/request/show/{rid}").get_data(as_text=True)
    assert 'value="通过"' not in page and "撤销申请" in page


@pytest.mark.parametrize("actor,status", [
    ("school_a1_clerk", 403),        # the filer (and no leader role)
    ("county_a_reviewer", 403),      # bureau at the school step
    ("school_a2_leader", 404),       # another school's leader: not even visible
    ("county_b_reviewer", 404),      # another county
])
def test_wrong_party_cannot_decide(app, world, client, actor, status):
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]
    assert decide(client, actor, rid).status_code == status
    with app.app_context():
        assert db.session.get(Request, rid).step_seq == 1


def test_filer_never_decides_its_own_request(app, world, client):
    with app.app_context():
        from app.roles import ROLE_SCHOOL_LEADER
        from models import XuejiUser
        clerk = db.session.get(XuejiUser, world.users["school_a1_clerk"])
        clerk.roles.append(app.appbuilder.sm.find_role(ROLE_SCHOOL_LEADER))
        db.session.commit()
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]
    resp = decide(client, "school_a1_clerk", rid)
    assert resp.status_code == 403 and "自己" in resp.get_json()["message"]


def test_reject_needs_a_comment_and_the_filer_may_resubmit(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    rid = file_change(client, h, sid, {"name": "李改名"}).get_json()["result"]["id"]
    assert decide(client, "school_a1_leader", rid, "不通过").status_code == 422
    assert decide(client, "school_a1_leader", rid, "不通过", "证明材料不清晰").status_code == 200
    with app.app_context():
        assert db.session.get(Request, rid).state == "不通过"
    assert decide(client, "school_a1_leader", rid).status_code == 409          # nothing to decide now
    extra = upload(client, h, sid, PDF, "户口本.pdf").get_json()["result"]["id"]
    resp = client.post(f"/api/v1/request/{rid}/resubmit", json={"evidence_ids": [extra], "comment": "已补"},
                       headers=h)
    assert resp.status_code == 200 and resp.get_json()["result"]["state"] == "审核中"
    decide(client, "school_a1_leader", rid)
    decide(client, "county_a_reviewer", rid)
    assert name_of(app, sid) == "李改名"


def test_return_for_revision(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    rid = file_change(client, h, sid, {"name": "李改名"}).get_json()["result"]["id"]
    decide(client, "school_a1_leader", rid)
    assert decide(client, "county_a_reviewer", rid, "退回修改", "请补充户口本首页").status_code == 200
    with app.app_context():
        assert db.session.get(Request, rid).state == "退回修改"
    assert client.post(f"/api/v1/request/{rid}/resubmit", json={}, headers=h).status_code == 200
    with app.app_context():
        req = db.session.get(Request, rid)
        assert (req.state, req.step_seq) == ("审核中", 1)


def test_withdraw_before_the_final_step_only(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    rid = file_change(client, h, sid, {"name": "李改名"}).get_json()["result"]["id"]
    assert client.post(f"/api/v1/request/{rid}/withdraw", json={}, headers=h).status_code == 200
    with app.app_context():
        assert db.session.get(Request, rid).state == "已撤销"
    rid = file_change(client, h, sid, {"name": "李改名"}).get_json()["result"]["id"]    # lock released
    decide(client, "school_a1_leader", rid)                                           # now at the last step
    resp = client.post(f"/api/v1/request/{rid}/withdraw", json={}, headers=h)
    assert resp.status_code == 409
    # other users cannot withdraw it
    other = api_headers(client, "school_a1_leader")
    assert client.post(f"/api/v1/request/{rid}/withdraw", json={}, headers=other).status_code == 403


def test_one_open_request_per_student(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    first = file_change(client, h, sid, {"name": "李改名"}).get_json()["result"]["id"]
    resp = file_change(client, h, sid, {"name": "王改名"})
    assert resp.status_code == 422 and resp.get_json()["code"] == "2002"
    assert f"#{first}" in resp.get_json()["message"]


def test_filing_validates_the_new_values(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    resp = file_change(client, h, sid, {"id_number": "110101202311012171"})
    assert resp.status_code == 422 and "校验位" in resp.get_json()["message"]
    resp = file_change(client, h, sid, {"name": name_of(app, sid)})
    assert resp.status_code == 422 and resp.get_json()["code"] == "no_change"
    with app.app_context():
        assert db.session.scalar(select(Request.id)) is None


def test_key_change_of_id_number_with_sex_and_birth(app, world, client):
    """Changing the ID number moves sex and birth date with it: all three in one request."""
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    resp = file_change(client, h, sid, {"id_number": "11010519491231002X", "sex": "2", "birth_date": "1949-12-31"})
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    decide(client, "school_a1_leader", rid)
    decide(client, "county_a_reviewer", rid)
    with app.app_context():
        s = db.session.get(Student, sid)
        assert (s.id_number, s.sex, str(s.birth_date)) == ("11010519491231002X", "2", "1949-12-31")


# --- evidence ------------------------------------------------------------------------------------------

def test_evidence_is_required_and_checked_by_content(app, world, client):
    sid = world.student_of("a1")
    h = api_headers(client, "school_a1_clerk")
    resp = file_change(client, h, sid, {"name": "李改名"}, evidence=0)
    assert resp.status_code == 422 and resp.get_json()["code"] == "evidence_required"
    fake = upload(client, h, sid, b"<script>alert(1)</script>", "photo.jpg")
    assert fake.status_code == 422 and fake.get_json()["code"] == "bad_file_type"
    big = upload(client, h, sid, b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024), "big.jpg")
    assert big.status_code == 422 and big.get_json()["code"] == "file_too_large"
    ok = upload(client, h, sid, PDF, "证明.pdf")
    assert ok.status_code == 201 and ok.get_json()["result"]["mime"] == "application/pdf"


def test_evidence_downloads_are_scoped_and_never_inline(app, world, client, as_user):
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]
    with app.app_context():
        eid = db.session.get(Request, rid).evidence[0].id
    resp = as_user("county_a_reviewer").get(f"/request/evidence/{eid}")
    assert resp.status_code == 200 and resp.data.startswith(b"\x89PNG")
    assert resp.headers["Content-Disposition"].startswith("attachment")
    assert resp.headers["Content-Type"] == "application/octet-stream"
    for other in ("county_b_reviewer", "school_a2_clerk"):
        assert as_user(other).get(f"/request/evidence/{eid}").status_code == 404
    # an evidence id of another school cannot be attached to one's own request
    h_b = api_headers(client, "school_b1_clerk")
    resp = client.post("/api/v1/request/file", headers=h_b, json={
        "kind": "key_change", "student_id": world.student_of("b1"), "changes": {"name": "x改"},
        "evidence_ids": [eid]})
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid_evidence"


# --- concurrency (real row locking) ---------------------------------------------------------------------

def _race(app, fns):
    """Run each fn in its own thread and app context, started together; returns their results."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)

    def run(i, fn):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = fn()
            except Exception as exc:           # noqa: BLE001 - the race's loser is expected to raise
                results[i] = exc
            finally:
                db.session.remove()
    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _needs_row_locks(app):
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            pytest.skip("database-specific: needs concurrent writers with row locks (PostgreSQL, MariaDB)")


def test_two_reviewers_at_once_make_one_transition(app, world, client):
    _needs_row_locks(app)
    from app import workflow
    from app.errors import RuleError
    from models import XuejiUser
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]

    def click():
        user = db.session.get(XuejiUser, world.users["school_a1_leader"])
        return workflow.decide(db.session, user, rid, "通过").id
    for _ in range(3):                     # a double (triple) click
        results = _race(app, [click, click])
        if any(isinstance(r, RuleError) for r in results):
            break
    with app.app_context():
        req = db.session.get(Request, rid)
        decisions = db.session.scalars(select(RequestStep.decision).where(RequestStep.request_id == rid,
                                                                          RequestStep.seq == 1)).all()
        assert req.step_seq == 2 and req.version == 2 and decisions == ["通过"]


def test_a_decision_for_a_step_that_has_moved_on_is_refused(app, world, client, as_user):
    """The form carries the step the reviewer saw: if someone else has decided it meanwhile, the decision is
    refused as already handled, never applied to the next step (which the reviewer never saw)."""
    from models.requests import Request
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李看见"}).get_json()["result"]["id"]
    reviewer = as_user("county_a_reviewer")
    page = as_user("school_a1_leader").get(f"/request/show/{rid}").get_data(as_text=True)
    assert 'name="step" value="1"' in page                      # what the leader saw: the school's step
    assert decide(client, "school_a1_leader", rid).status_code == 200      # step 1 decided: now the county's
    # a form (or API call) still at step 1 is refused, on both faces with the same message; nothing changes
    resp = reviewer.post(f"/request/decide/{rid}", data={"decision": "通过", "step": "1"}, follow_redirects=True)
    assert "该申请刚刚已被他人处理" in resp.get_data(as_text=True)
    resp = client.post(f"/api/v1/request/{rid}/decide", headers=api_headers(client, "county_a_reviewer"),
                       json={"decision": "通过", "step": 1})
    assert resp.status_code == 409 and "该申请刚刚已被他人处理" in resp.get_json()["message"]
    with app.app_context():
        req = db.session.get(Request, rid)
        assert (req.state, req.step_seq) == ("审核中", 2)
    assert name_of(app, sid) != "李看见"
    bad = client.post(f"/api/v1/request/{rid}/decide", headers=api_headers(client, "county_a_reviewer"),
                      json={"decision": "通过", "step": "第二步"})
    assert bad.status_code in (400, 422) and "审核环节" in bad.get_json()["message"]
    # the step it is at: decided
    resp = client.post(f"/api/v1/request/{rid}/decide", headers=api_headers(client, "county_a_reviewer"),
                       json={"decision": "通过", "step": 2})
    assert resp.status_code == 200 and resp.get_json()["result"]["state"] == "已通过"
