"""班额: capacity per class from the county setting or a county override, enforced in the transaction."""
from sqlalchemy import func, select

from app.extensions import db
from models import SchoolClass, Setting, Student
from tests.conftest import api_headers, student_body
from tests.test_workflow import _needs_row_locks, _race


def unplaced(client, school_id, n, user="school_a1_clerk"):
    """n new students of the 2026 cohort without a class (as admission leaves them)."""
    from app.identity import with_check_char
    h = api_headers(client, user)
    ids = []
    for i in range(n):
        number = with_check_char(f"41010220140101{100 + 2 * i + 1:03d}")
        resp = client.post("/api/v1/student/", headers=h, json=student_body(
            school_id, id_number=number, sex="1", birth_date="2014-01-01", name=f"新生{i}"))
        assert resp.status_code == 201, resp.get_json()
        ids.append(resp.get_json()["id"])
    return ids


def empty_class(app, school_id, cohort=2026, no=20, capacity=None):
    with app.app_context():
        klass = SchoolClass(school_id=school_id, stage="初中", cohort_year=cohort, class_no=no, name=f"{no}班",
                            capacity=capacity)
        db.session.add(klass)
        db.session.commit()
        return klass.id


def place(client, student_id, class_id, user="school_a1_clerk"):
    return client.put(f"/api/v1/student/{student_id}", json={"class_id": class_id},
                      headers=api_headers(client, user))


def set_county_cap(app, county, value):
    with app.app_context():
        db.session.add(Setting(key="class_cap.初中", region_code=county, value=str(value)))
        db.session.commit()


def test_a_full_class_refuses_with_class_size_and_cap(app, world, client):
    set_county_cap(app, "410102", 2)
    class_id = empty_class(app, world.schools["a1"])
    a, b, c = unplaced(client, world.schools["a1"], 3)
    assert place(client, a, class_id).status_code == 200
    assert place(client, b, class_id).status_code == 200
    resp = place(client, c, class_id)
    assert resp.status_code == 422 and resp.get_json()["code"] == "class_full"
    assert "已有2人" in resp.get_json()["message"] and "班额2人" in resp.get_json()["message"]
    with app.app_context():
        assert db.session.get(Student, c).class_id is None


def test_county_setting_applies_to_its_county_only(app, world, client):
    set_county_cap(app, "410105", 1)                 # county B is strict, county A keeps the default 50
    class_id = empty_class(app, world.schools["a1"])
    for sid in unplaced(client, world.schools["a1"], 2):
        assert place(client, sid, class_id).status_code == 200


def test_default_never_reaches_56_without_a_class_override(app, world, client):
    set_county_cap(app, "410102", 60)
    with app.app_context():
        from app.classes import capacity_of
        klass = db.session.get(SchoolClass, empty_class(app, world.schools["a1"]))
        assert capacity_of(db.session, klass) == 55
        klass.capacity = 60                               # an explicit county override
        assert capacity_of(db.session, klass) == 60


def test_only_the_county_sets_a_class_cap(app, world, client):
    class_id = empty_class(app, world.schools["a1"])
    resp = client.put(f"/api/v1/schoolclass/{class_id}", json={"capacity": 60},
                      headers=api_headers(client, "school_a1_clerk"))
    assert resp.status_code == 403
    resp = client.put(f"/api/v1/schoolclass/{class_id}", json={"capacity": 60},
                      headers=api_headers(client, "county_a_clerk"))
    assert resp.status_code == 200
    with app.app_context():
        assert db.session.get(SchoolClass, class_id).capacity == 60


def test_last_seat_race_has_one_winner(app, world, client):
    """Two registrars fill the last seat at once: the class row lock lets exactly one succeed."""
    _needs_row_locks(app)
    from models import XuejiUser
    class_id = empty_class(app, world.schools["a1"], capacity=1)
    a, b = unplaced(client, world.schools["a1"], 2)

    def assign(student_id):
        def run():
            from flask import g
            with app.test_request_context():
                g.user = db.session.get(XuejiUser, world.users["school_a1_clerk"])
                student = db.session.get(Student, student_id)
                student.class_id = class_id
                db.session.commit()
                return True
        return run
    results = _race(app, [assign(a), assign(b)])
    assert sorted(r is True for r in results) == [False, True], [repr(r) for r in results]
    with app.app_context():
        seated = db.session.scalar(select(func.count()).select_from(Student).where(Student.class_id == class_id))
        assert seated == 1
