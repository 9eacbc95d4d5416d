"""The admission routes attacked with another county's ids: 404 (or 403 without the permission), nothing changes."""
import io

import pytest
from sqlalchemy import func, select

from app.extensions import db
from models import Quota, SchoolClass, Student
from models.admissions import Admission, ImportBatch
from tests.conftest import api_headers
from tests.test_admissions import graduates, upload, workbook


@pytest.fixture
def foreign(app, world, as_user):
    """County B's objects: a checked batch of b2, an admission in conflict, b2's plan, a b1 student and class."""
    c = as_user("school_b2_clerk")
    g = graduates(app, 1)
    bid = upload(c, world.schools["b2"], workbook(c, [[g[0][0], g[0][1]]]))
    c.post(f"/admissionimport/batch/{bid}/commit", data={"mode": "valid_rows"})
    c2 = as_user("school_b2_clerk")
    other = graduates(app, 1, offset=1)
    bid2 = upload(c2, world.schools["b2"], workbook(c2, [[other[0][0], other[0][1]], ["x", "y"]]))
    with app.app_context():
        return {"batch": bid2, "admission": db.session.scalar(select(Admission.id)),
                "quota": db.session.scalar(select(Quota.id).where(Quota.school_id == world.schools["b2"])),
                "student": world.student_of("b1"),
                "klass": db.session.scalar(select(SchoolClass.id).where(SchoolClass.school_id == world.schools["b1"]))}


def counts(app):
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(m)) for m in (Admission, ImportBatch)) + (
            db.session.scalar(select(func.sum(Quota.planned))),
            db.session.scalar(select(func.count()).select_from(Student).where(Student.class_id.is_(None))))


@pytest.mark.parametrize("actor", ["school_a2_clerk", "county_a_clerk", "county_a_reviewer"])
@pytest.mark.parametrize("method,path", [
    ("get", "/admissionimport/batch/{batch}"), ("get", "/admissionimport/batch/{batch}/annotated"),
    ("post", "/admissionimport/batch/{batch}/commit"), ("post", "/admission/arbitrate/{admission}"),
    ("get", "/admission/show/{admission}"), ("get", "/quota/change/{quota}"), ("post", "/quota/change/{quota}"),
    ("get", "/quota/edit/{quota}"), ("get", "/placement/select?ids={student}"),
    ("post", "/placement/select?ids={student}"),
])
def test_web_routes_refuse_foreign_ids(app, world, foreign, as_user, actor, method, path):
    before = counts(app)
    c = as_user(actor)
    kwargs = {"data": {"mode": "valid_rows", "requested": "999", "reason": "x", "class_id": foreign["klass"],
                       "ids": [foreign["student"]]}} if method == "post" else {}
    resp = getattr(c, method)(path.format(**foreign), **kwargs)
    assert resp.status_code in (403, 404), (path, resp.status_code)
    assert counts(app) == before


def test_uploading_for_another_school_and_the_api(app, world, foreign, as_user, client):
    c = as_user("school_a2_clerk")
    data = workbook(c, [["某", "G410102201108166682"]])
    resp = c.post("/admissionimport/upload", data={"school_id": str(world.schools["b2"]),
                                                   "file": (io.BytesIO(data), "x.xlsx")},
                  content_type="multipart/form-data")
    assert resp.status_code == 404
    h = api_headers(client, "school_a2_clerk")
    for path in ("/api/v1/quota/{quota}", "/api/v1/admission/{admission}", "/api/v1/importbatch/{batch}"):
        assert client.get(path.format(**foreign), headers=h).status_code == 404
    for resource in ("quota", "admission", "importbatch"):
        rows = client.get(f"/api/v1/{resource}/", headers=h).get_json()["result"]
        assert world.schools["b2"] not in {r["school_id"] for r in rows}, resource
    assert client.put(f"/api/v1/quota/{foreign['quota']}", json={"planned": 999},
                      headers=api_headers(client, "county_a_clerk")).status_code == 404
