"""问题学籍: detection across the whole database, the queue, and the three handling paths."""
import pytest
from sqlalchemy import select

from app import problems
from app.errors import RuleError
from app.extensions import db
from models import Student
from models.requests import Problem
from tests.conftest import api_headers, student_body
from tests.test_workflow import PNG, decide, upload


def open_kinds(app, sid):
    with app.app_context():
        return sorted(db.session.scalars(select(Problem.kind).where(Problem.student_id == sid,
                                                                    Problem.current == 1)))


def create(client, user, school_id, **over):
    resp = client.post("/api/v1/student/", json=student_body(school_id, **over), headers=api_headers(client, user))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def make_duplicate_id(app, world, client):
    """The same ID number in county A (a1) and county B (b1): the second record is given an L学籍号."""
    with app.app_context():
        original = db.session.get(Student, world.student_of("b1"))
        number, sex, born = original.id_number, original.sex, original.birth_date.isoformat()
    sid = create(client, "school_a1_clerk", world.schools["a1"], id_number=number, sex=sex, birth_date=born)
    with app.app_context():
        assert db.session.get(Student, sid).xjh == f"L410102{born.replace('-', '')}0001"
    return sid, world.student_of("b1")


def test_duplicate_id_is_found_across_two_counties_on_create(app, world, client):
    a, b = make_duplicate_id(app, world, client)
    assert open_kinds(app, a) == ["dup_id"] and open_kinds(app, b) == ["dup_id"]
    with app.app_context():
        assert db.session.get(Student, a).has_problem and db.session.get(Student, b).has_problem
    # each side sees only its own school's row in its queue, and the bureau its county's
    for user, expected in (("school_a1_clerk", a), ("county_b_reviewer", b)):
        rows = client.get("/api/v1/problem/", headers=api_headers(client, user)).get_json()["result"]
        assert [r["student_id"] for r in rows] == [expected]


def test_duplicate_identity_without_id_number(app, world, client):
    twin = dict(id_type="Z", id_number=None, name="王小雨", sex="2", birth_date="2012-02-02")
    a = create(client, "school_a1_clerk", world.schools["a1"], **twin)
    assert open_kinds(app, a) == []
    b = create(client, "school_b1_clerk", world.schools["b1"], **twin)
    assert open_kinds(app, a) == ["dup_identity"] and open_kinds(app, b) == ["dup_identity"]


def seed_bad_ids(app, world):
    """Records as an old import left them (no rule ran): bad check char, and sex contradicting the number."""
    from sqlalchemy import update
    with app.app_context():
        bad, wrong_sex = world.students["a1"][0], world.students["a1"][1]
        s = db.session.get(Student, bad)
        broken = s.id_number[:17] + ("0" if s.id_number[17] != "0" else "1")
        db.session.execute(update(Student).where(Student.id == bad).values(id_number=broken, xjh="G" + broken))
        other = db.session.get(Student, wrong_sex)
        db.session.execute(update(Student).where(Student.id == wrong_sex)
                           .values(sex="2" if other.sex == "1" else "1"))
        db.session.commit()
    return bad, wrong_sex


def test_on_demand_detection_for_a_school_and_a_county(app, world, client, as_user):
    bad, wrong_sex = seed_bad_ids(app, world)
    assert open_kinds(app, bad) == []
    resp = as_user("county_a_clerk").post("/problem/detect", follow_redirects=True)
    assert "发现2条问题" in resp.get_data(as_text=True)
    assert open_kinds(app, bad) == ["invalid_id"] and open_kinds(app, wrong_sex) == ["id_mismatch"]
    # a second run finds the same and duplicates nothing
    as_user("school_a1_clerk").post("/problem/detect")
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(Problem)) == 2


def test_queue_is_announced_after_login(app, world, as_user):
    seed_bad_ids(app, world)
    with app.app_context():
        problems.detect(db.session)
        db.session.commit()
    page = as_user("school_a1_clerk").get("/").get_data(as_text=True)
    assert "您的管辖范围内有 <b>2</b> 条问题学籍待处理" in page
    page = as_user("county_a_reviewer").get("/").get_data(as_text=True)
    assert "<b>2</b> 条问题学籍待处理" in page
    for other in ("school_b1_clerk", "county_b_reviewer"):
        assert "条问题学籍待处理" not in as_user(other).get("/").get_data(as_text=True)


def test_change_path_corrects_the_data_and_resolves(app, world, client):
    bad, _ = seed_bad_ids(app, world)
    with app.app_context():
        problems.detect(db.session)
        db.session.commit()
        problem_id = db.session.scalar(select(Problem.id).where(Problem.student_id == bad))
        s = db.session.get(Student, bad)
        fixed = s.id_number[:17] + __import__("stdnum.cn.ric", fromlist=["x"]).calc_check_digit(s.id_number)
    h = api_headers(client, "school_a1_clerk")
    ev = upload(client, h, bad).get_json()["result"]["id"]
    resp = client.post("/api/v1/request/file", headers=h, json={
        "kind": "key_change", "student_id": bad, "changes": {"id_number": fixed}, "evidence_ids": [ev],
        "problem_id": problem_id, "reason": "校验位录错"})
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    with app.app_context():
        assert db.session.get(Problem, problem_id).state == "处理中"
    decide(client, "school_a1_leader", rid)
    decide(client, "county_a_reviewer", rid)
    with app.app_context():
        p = db.session.get(Problem, problem_id)
        assert (p.state, p.resolution, p.current) == ("已解决", "变更", None)
        assert db.session.get(Student, bad).has_problem is False


def file_proof(client, user, student_id, problem_id):
    h = api_headers(client, user)
    ev = upload(client, h, student_id, PNG).get_json()["result"]["id"]
    return client.post("/api/v1/request/file", headers=h, json={
        "kind": "problem_proof", "student_id": student_id, "problem_id": problem_id, "reason": "户口本为证",
        "evidence_ids": [ev]})


def problem_of(app, sid):
    with app.app_context():
        return db.session.scalar(select(Problem.id).where(Problem.student_id == sid, Problem.current == 1))


def test_proof_of_a_duplicated_id_is_approved_for_one_record_only(app, world, client):
    a, b = make_duplicate_id(app, world, client)
    ra = file_proof(client, "school_a1_clerk", a, problem_of(app, a)).get_json()["result"]["id"]
    rb = file_proof(client, "school_b1_clerk", b, problem_of(app, b)).get_json()["result"]["id"]
    decide(client, "school_a1_leader", ra)
    assert decide(client, "county_a_reviewer", ra).status_code == 200
    assert open_kinds(app, a) == []
    decide(client, "school_b1_leader", rb)
    resp = decide(client, "county_b_reviewer", rb)
    assert resp.status_code == 422 and resp.get_json()["code"] == "dup_id_proven"
    assert open_kinds(app, b) == ["dup_id"]
    # the proven record is not flagged again by a later detection
    with app.app_context():
        problems.detect(db.session)
        db.session.commit()
    assert open_kinds(app, a) == []


def test_proof_of_name_duplicates_may_approve_several(app, world, client):
    twin = dict(id_type="Z", id_number=None, name="王小雨", sex="2", birth_date="2012-02-02")
    a = create(client, "school_a1_clerk", world.schools["a1"], **twin)
    b = create(client, "school_b1_clerk", world.schools["b1"], **twin)
    for sid, school, county in ((a, "a1", "a"), (b, "b1", "b")):
        rid = file_proof(client, f"school_{school}_clerk", sid, problem_of(app, sid)).get_json()["result"]["id"]
        decide(client, f"school_{school}_leader", rid)
        assert decide(client, f"county_{county}_reviewer", rid).status_code == 200
    assert open_kinds(app, a) == [] and open_kinds(app, b) == []


def test_delete_needs_reason_and_second_confirmation(app, world, client, as_user):
    a, b = make_duplicate_id(app, world, client)
    pid = problem_of(app, a)
    c = as_user("school_a1_clerk")
    c.post(f"/problem/remove/{pid}", data={"reason": "", "confirm": "确认删除"})
    c.post(f"/problem/remove/{pid}", data={"reason": "该生不在本校就读", "confirm": ""})
    with app.app_context():
        assert db.session.get(Student, a).deleted_at is None
    assert as_user("school_a1_leader").post(f"/problem/remove/{pid}",
                                            data={"reason": "x", "confirm": "确认删除"}).status_code == 403
    c.post(f"/problem/remove/{pid}", data={"reason": "该生不在本校就读", "confirm": "确认删除"})
    with app.app_context():
        s = db.session.get(Student, a)
        assert s.deleted_at is not None and s.delete_reason == "该生不在本校就读"
        assert db.session.get(Problem, pid).resolution == "删除"
    # still visible to school and county, marked deleted; the other record is no longer a duplicate
    page = c.get(f"/student/show/{a}").get_data(as_text=True)
    assert "已删除" in page
    assert open_kinds(app, b) == []


def test_a_problem_blocks_transfer_and_graduation(app, world, client):
    a, _ = make_duplicate_id(app, world, client)
    with app.app_context():
        with pytest.raises(RuleError) as err:
            problems.blocks(db.session, a)
        assert err.value.code == "2003"
        problems.blocks(db.session, world.student_of("a2"))          # a clean record passes
