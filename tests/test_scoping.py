"""Row-level scope: every route kind tried with another school's ids, and by a bureau user outside its region.

School users see and touch only their school; bureau users only schools of their county; admin everything.
Out-of-scope ids answer 404, and no write can place a row outside the writer's scope.
"""
import pytest
from sqlalchemy import select

from app.extensions import db
from models import AuditEvent, School, Student, XuejiUser
from tests.conftest import api_headers, export_xlsx, student_body, student_form

# (actor, school it must NOT reach, school it may reach)
ATTACKS = [
    ("school_a1_clerk", "b1", "a1"),      # another county's school
    ("school_a1_clerk", "a2", "a1"),      # a school of the same county
    ("county_a_clerk", "b1", "a1"),       # bureau user outside its region
    ("county_a_reviewer", "b2", "a2"),
]


def student_row(app, sid):
    with app.app_context():
        s = db.session.get(Student, sid)
        return None if s is None else (s.name, s.school_id, s.status)


@pytest.mark.parametrize("actor,foreign,own", ATTACKS)
def test_list_and_search_show_only_scope(app, world, as_user, actor, foreign, own):
    c = as_user(actor)
    with app.app_context():
        foreign_xjh = db.session.get(Student, world.student_of(foreign)).xjh
        own_xjh = db.session.get(Student, world.student_of(own)).xjh
    page = c.get("/student/list/?psize_StudentView=200").get_data(as_text=True)
    assert own_xjh in page and foreign_xjh not in page
    # an explicit filter on the foreign school yields nothing either
    page = c.get(f"/student/list/?_flt_0_school={world.schools[foreign]}&psize_StudentView=200").get_data(
        as_text=True)
    assert foreign_xjh not in page


@pytest.mark.parametrize("actor,foreign,own", ATTACKS)
def test_show_edit_delete_answer_404(app, world, as_user, actor, foreign, own):
    c = as_user(actor)
    sid = world.student_of(foreign)
    before = student_row(app, sid)
    assert c.get(f"/student/show/{sid}").status_code == 404
    assert c.get(f"/student/edit/{sid}").status_code in (403, 404)
    assert c.post(f"/student/edit/{sid}", data={"name": "篡改"}).status_code in (403, 404)
    assert c.post(f"/student/delete/{sid}").status_code in (403, 404)
    assert student_row(app, sid) == before
    assert c.get(f"/school/show/{world.schools[foreign]}").status_code == 404
    assert c.get(f"/school/edit/{world.schools[foreign]}").status_code in (403, 404)


@pytest.mark.parametrize("actor,foreign,own", ATTACKS)
def test_actions_single_and_multi_answer_404(app, world, as_user, actor, foreign, own):
    c = as_user(actor)
    foreign_id, own_id = world.student_of(foreign), world.student_of(own)
    resp = c.post(f"/student/action/export_selected/{foreign_id}")
    assert resp.status_code == 404
    resp = c.post("/student/action_post", data={"action": "export_selected", "rowid": [own_id, foreign_id]})
    assert resp.status_code == 404
    # the same action on an own row works (the guard is the scope, not the action)
    resp = c.post("/student/action_post", data={"action": "export_selected", "rowid": [own_id]})
    assert resp.status_code == 200 and resp.data[:2] == b"PK"


def test_user_actions_are_scoped(app, world, as_user):
    c = as_user("county_a_clerk")
    foreign = world.users["school_b1_clerk"]
    with app.app_context():
        u = db.session.get(XuejiUser, foreign)
        from datetime import datetime, timedelta
        u.locked_until = datetime.now() + timedelta(minutes=10)
        db.session.commit()
    assert c.post(f"/users/action/unlock/{foreign}").status_code == 404
    assert c.post("/users/action_post", data={"action": "unlock", "rowid": [foreign]}).status_code == 404
    with app.app_context():
        assert db.session.get(XuejiUser, foreign).locked_until is not None
    own = world.users["school_a1_clerk"]
    assert c.post("/users/action_post", data={"action": "unlock", "rowid": [own]}).status_code == 302


@pytest.mark.parametrize("actor,foreign,own", ATTACKS)
def test_download_never_serves_foreign_or_stray_files(app, world, as_user, actor, foreign, own):
    import os
    folder = app.config["UPLOAD_FOLDER"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "stray_sep_secret.pdf"), "wb") as f:
        f.write(b"%PDF-1.4 secret")
    c = as_user(actor)
    assert c.get("/student/download/stray_sep_secret.pdf").status_code == 404
    assert c.get("/student/download/..%2F..%2Fconfig.py").status_code == 404


@pytest.mark.parametrize("actor,foreign,own", ATTACKS)
def test_export_contains_only_scope(app, world, as_user, actor, foreign, own):
    c = as_user(actor)
    with app.app_context():
        foreign_xjh = db.session.get(Student, world.student_of(foreign)).xjh
        own_xjh = db.session.get(Student, world.student_of(own)).xjh
    csv_text = c.get("/student/export/csv").get_data(as_text=True)
    assert own_xjh in csv_text and foreign_xjh not in csv_text
    filtered = c.get(f"/student/export/csv?_flt_0_school={world.schools[foreign]}").get_data(as_text=True)
    assert foreign_xjh not in filtered and len(filtered.strip().splitlines()) == 1   # header only


def test_export_is_audited(app, world, as_user):
    c = as_user("county_a_clerk")
    export_xlsx(c, "/student/export/xlsx")
    with app.app_context():
        ev = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "export")).all()
        assert len(ev) == 1 and ev[0].username == "county_a_clerk" and "rows=" in ev[0].new_value


@pytest.mark.parametrize("actor,foreign,own", ATTACKS)
def test_rest_get_put_delete_answer_404(app, world, client, actor, foreign, own):
    h = api_headers(client, actor)
    sid = world.student_of(foreign)
    before = student_row(app, sid)
    assert client.get(f"/api/v1/student/{sid}", headers=h).status_code == 404
    assert client.put(f"/api/v1/student/{sid}", json={"name": "篡改"}, headers=h).status_code in (403, 404)
    assert client.delete(f"/api/v1/student/{sid}", headers=h).status_code in (403, 404)
    assert student_row(app, sid) == before
    assert client.get(f"/api/v1/school/{world.schools[foreign]}", headers=h).status_code == 404
    listing = client.get("/api/v1/student/?q=(page_size:100)", headers=h).get_json()
    schools = {r["school_id"] for r in listing["result"]}
    assert world.schools[foreign] not in schools
    if actor.startswith("school"):
        assert schools == {world.schools[own]}


def test_rest_post_cannot_place_a_row_in_another_school(app, world, client):
    h = api_headers(client, "school_a1_clerk")
    body = student_body(world.schools["b1"])
    resp = client.post("/api/v1/student/", json=body, headers=h)
    assert resp.status_code == 404, resp.get_json()
    with app.app_context():
        assert db.session.scalar(select(Student).where(Student.xjh == "G" + body["id_number"])) is None
    # the same row in the user's own school is accepted
    body["school_id"] = world.schools["a1"]
    resp = client.post("/api/v1/student/", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["result"]["school_id"] == world.schools["a1"]


def test_rest_put_cannot_move_a_row_out_of_scope(app, world, client):
    h = api_headers(client, "school_a1_clerk")
    sid = world.student_of("a1")
    resp = client.put(f"/api/v1/student/{sid}", json={"school_id": world.schools["a2"]}, headers=h)
    assert resp.status_code == 404
    assert student_row(app, sid)[1] == world.schools["a1"]
    # a bureau cannot move one of its schools into another county
    h = api_headers(client, "county_a_clerk")
    resp = client.put(f"/api/v1/school/{world.schools['a1']}", json={"county_code": "410105"}, headers=h)
    assert resp.status_code == 404
    with app.app_context():
        assert db.session.get(School, world.schools["a1"]).county_code == "410102"


def test_form_cannot_move_a_row_out_of_scope(app, world, as_user):
    c = as_user("school_a1_clerk")
    sid = world.student_of("a1")
    # the edit form has no school: a posted one is ignored, the rest saves, the row stays in school a1
    c.post(f"/student/edit/{sid}", data=student_form(app, sid, school=world.schools["b1"], phone="13700000000"))
    with app.app_context():
        s = db.session.get(Student, sid)
        assert s.school_id == world.schools["a1"] and s.phone == "13700000000"
    # the add form refuses another school's id (scoped dropdown), nothing is created
    form = {k: ("y" if v is True else v) for k, v in student_body(world.schools["b1"]).items()
            if v is not False and k != "school_id"}
    form["school"] = world.schools["b1"]
    c.post("/student/add", data=form)
    with app.app_context():
        assert db.session.scalar(select(Student).where(Student.xjh == "G" + form["id_number"])) is None
    form["school"] = world.schools["a1"]
    assert c.post("/student/add", data=form).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Student.school_id).where(Student.xjh == "G" + form["id_number"])) == \
            world.schools["a1"]


def test_dropdowns_offer_only_scope(app, world, as_user):
    c = as_user("school_a1_clerk")
    page = c.get("/student/add").get_data(as_text=True)
    with app.app_context():
        names = dict(db.session.execute(select(School.id, School.name)).all())
    assert names[world.schools["a1"]] in page
    for key in ("a2", "b1", "b2"):
        assert names[world.schools[key]] not in page


def test_bureau_sees_its_whole_county_and_admin_everything(app, world, client):
    for actor, expected in (("county_a_reviewer", {"a1", "a2"}), ("admin", {"a1", "a2", "b1", "b2"})):
        h = api_headers(client, actor)
        rows = client.get("/api/v1/school/", headers=h).get_json()["result"]
        assert {r["id"] for r in rows} == {world.schools[k] for k in expected}


def test_audit_log_is_scoped_and_read_only(app, world, as_user):
    c = as_user("county_b_clerk")
    with app.app_context():
        from app import audit
        audit.record(db.session, "update", entity="student", entity_id=world.student_of("a1"),
                     school_id=world.schools["a1"], field="name", old="甲", new="乙")
        db.session.commit()
        ev_id = db.session.scalar(select(AuditEvent.id).where(AuditEvent.school_id == world.schools["a1"]))
    assert c.get(f"/audit/show/{ev_id}").status_code == 404
    admin = as_user("admin")
    assert admin.get(f"/audit/show/{ev_id}").status_code == 200
    for route in (f"/audit/edit/{ev_id}", f"/audit/delete/{ev_id}", "/audit/add"):
        assert admin.get(route).status_code == 404
        assert admin.post(route).status_code in (404, 405)
