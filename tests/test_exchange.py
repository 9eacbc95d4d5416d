"""跨省转学 between two installations of Xueji in one test run (Henan = the test app, Hubei = a second app on its
own database): signed packages carry the application one way and the record back."""
import json
import os

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from models import Region, School, SchoolClass, Setting, Student
from models.requests import Request
from tests.conftest import app_config, api_headers, drop_everything
from tests.test_workflow import decide


@pytest.fixture
def hubei(app, world, tmp_path):
    """A second installation: 湖北省 with one 初中, its class and accounts; both sides know each other's key."""
    url = f"sqlite:///{tmp_path}/hubei.db"
    drop_everything(url)
    other = create_app(app_config(url, str(tmp_path), EXCHANGE_KEY_PATH=str(tmp_path / "hubei_key")))
    app.config["EXCHANGE_KEY_PATH"] = os.path.join(app.config["XUEJI_TMP"], "henan_key")
    from app.cli import prepare_database
    from app.roles import ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER, ROLE_SCHOOL_REGISTRAR
    with other.app_context():
        prepare_database(False)
        for code, name, level, parent in (("420000", "湖北省", "province", None), ("420100", "武汉市", "city", "420000"),
                                          ("420102", "江岸区", "county", "420100")):
            db.session.add(Region(code=code, name=name, level=level, parent_code=parent))
        db.session.flush()
        school = School(code="4201020001", name="武汉市江岸区第一初级中学", county_code="420102", school_type="初中",
                        schooling="初中3年")
        db.session.add(school)
        db.session.flush()
        db.session.add(SchoolClass(school_id=school.id, stage="初中", cohort_year=2025, class_no=1, name="1班"))
        db.session.commit()
        sm = other.appbuilder.sm
        for username, role, scope in (("hb_clerk", ROLE_SCHOOL_REGISTRAR, {"school_id": school.id}),
                                      ("hb_leader", ROLE_SCHOOL_LEADER, {"school_id": school.id}),
                                      ("hb_county", ROLE_BUREAU_REVIEWER, {"region_code": "420102"}),
                                      ("hb_province", ROLE_BUREAU_REVIEWER, {"region_code": "420000"})):
            sm.add_user(username, "湖", "北", f"{username}@x.cn", role=[sm.find_role(role)], password="Xueji#2026",
                        must_change_password=False, **scope)
        from app import exchange
        hubei_key = exchange.public_key_text()
        class_id = db.session.scalar(select(SchoolClass.id))
    with app.app_context():
        from app import exchange
        henan_key = exchange.public_key_text()
        db.session.add(Setting(key="exchange.peer.420000", region_code=None, value=hubei_key))
        sm = app.appbuilder.sm
        sm.add_user("hn_province", "河", "南", "hn@x.cn", role=[sm.find_role(ROLE_BUREAU_REVIEWER)],
                    password="Xueji#2026", must_change_password=False, region_code="410000")
        db.session.commit()
    with other.app_context():
        db.session.add(Setting(key="exchange.peer.410000", region_code=None, value=henan_key))
        db.session.commit()
    yield other, class_id
    with other.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_transfer_between_two_installations(app, world, client, hubei):
    other, class_id = hubei
    hb = other.test_client()
    with app.app_context():
        s = db.session.scalar(select(Student).where(Student.school_id == world.schools["a1"],
                                                    Student.cohort_year == 2025).order_by(Student.id))
        sid, xjh, name, id_number = s.id, s.xjh, s.name, s.id_number
    # 1. Hubei: the receiving school files, its school, county and province approve, and export the application
    resp = hb.post("/api/v1/request/file", headers=api_headers(hb, "hb_clerk"), json={
        "kind": "transfer_in", "xjh": xjh, "name": name, "class_id": class_id, "from_province": "410000"})
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    assert hb.get(f"/api/v1/request/{rid}/package", headers=api_headers(hb, "hb_clerk")).status_code == 422
    for who in ("hb_leader", "hb_county", "hb_province"):
        assert decide(hb, who, rid).status_code == 200, who
    application = hb.get(f"/api/v1/request/{rid}/package", headers=api_headers(hb, "hb_clerk")).get_json()["result"]
    # a tampered package is refused
    forged = json.loads(json.dumps(application))
    forged["body"]["name"] = "别人"
    resp = client.post("/api/v1/request/import/request", headers=api_headers(client, "county_a_clerk"),
                       data=json.dumps(forged, ensure_ascii=False), content_type="application/json")
    assert resp.status_code == 422 and resp.get_json()["code"] == "bad_signature"
    # 2. Henan: the county imports it; school, county and province approve; the student leaves as 转出
    resp = client.post("/api/v1/request/import/request", headers=api_headers(client, "county_a_clerk"),
                       data=json.dumps(application, ensure_ascii=False), content_type="application/json")
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()["result"]["id"]
    for who in ("school_a1_leader", "county_a_reviewer", "hn_province"):
        assert decide(client, who, out).status_code == 200, who
    with app.app_context():
        assert db.session.get(Student, sid).status == "转出"
    record = client.get(f"/api/v1/request/{out}/package",
                        headers=api_headers(client, "county_a_clerk")).get_json()["result"]
    # 3. Hubei: 调档 creates the student with the full record and family members
    resp = hb.post("/api/v1/request/import/record", headers=api_headers(hb, "hb_clerk"),
                   data=json.dumps(record, ensure_ascii=False), content_type="application/json")
    assert resp.status_code == 200, resp.get_json()
    with other.app_context():
        moved = db.session.scalar(select(Student).where(Student.xjh == xjh))
        assert (moved.name, moved.id_number, moved.status, moved.class_id) == (name, id_number, "在校", class_id)
        assert len(moved.guardians) == 2
        assert "已调档" in db.session.get(Request, rid).summary
    again = hb.post("/api/v1/request/import/record", headers=api_headers(hb, "hb_clerk"),
                    data=json.dumps(record, ensure_ascii=False), content_type="application/json")
    assert again.status_code == 422 and again.get_json()["code"] == "duplicate"


def test_packages_from_unknown_provinces_are_refused(app, world, client, hubei):
    with app.app_context():
        db.session.query(Setting).filter(Setting.key == "exchange.peer.420000").delete()
        db.session.commit()
        from app import exchange
        package = exchange.seal("transfer_request", "420000", "410000", {"request_id": 1, "xjh": "x", "name": "y"})
    resp = client.post("/api/v1/request/import/request", headers=api_headers(client, "county_a_clerk"),
                       data=json.dumps(package, ensure_ascii=False), content_type="application/json")
    assert resp.status_code == 422 and resp.get_json()["code"] == "unknown_peer"


def test_packages_travel_as_files_through_the_web_pages(app, world, client, as_user, hubei):
    """The same exchange by hand: download the package on one side, upload it on the other."""
    import io
    other, class_id = hubei
    hb = other.test_client()
    with app.app_context():
        s = db.session.scalar(select(Student).where(Student.school_id == world.schools["a1"],
                                                    Student.cohort_year == 2025).order_by(Student.id))
        xjh, name = s.xjh, s.name
    rid = hb.post("/api/v1/request/file", headers=api_headers(hb, "hb_clerk"), json={
        "kind": "transfer_in", "xjh": xjh, "name": name, "class_id": class_id,
        "from_province": "410000"}).get_json()["result"]["id"]
    for who in ("hb_leader", "hb_county", "hb_province"):
        decide(hb, who, rid)
    web = other.test_client()
    web.post("/login/", data={"username": "hb_clerk", "password": "Xueji#2026"})
    assert "下载跨省转学数据包" in web.get(f"/request/show/{rid}").get_data(as_text=True)
    data = web.get(f"/request/package/{rid}").data
    county = as_user("county_a_clerk")
    resp = county.post("/request/exchange", data={"what": "request", "file": (io.BytesIO(data), "申请包.json")},
                       content_type="multipart/form-data")
    assert resp.status_code == 302 and "/request/show/" in resp.headers["Location"]
    # a school cannot import an application package (that is the county's step)
    school = as_user("school_a1_clerk")
    page = school.post("/request/exchange", data={"what": "request", "file": (io.BytesIO(data), "x.json")},
                       content_type="multipart/form-data", follow_redirects=True).get_data(as_text=True)
    assert "由教育行政部门导入" in page
