"""跨省转学 between two installations of Xueji in one test run (Henan = the test app, Hubei = a second app on its
own database): signed packages carry the application one way and the record back."""
import json
import os

import pytest
from sqlalchemy import select

from app import create_app
from app.extensions import db
from app import clock
from models import Enrollment, ExchangePeer, Region, School, SchoolClass, Setting, Student
from models.requests import Request
from tests.conftest import app_config, api_headers, drop_everything
from tests.test_workflow import decide


@pytest.fixture
def hubei(app, world, tmp_path):
    """A second installation: 湖北省 with one 初中, its classes (2025级1班, 2024级1班) and accounts; both sides
    registered each other's key as an exchange peer (app.exchange.add_peer, as the 跨省交换 screen does)."""
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
        db.session.add(SchoolClass(school_id=school.id, stage="初中", cohort_year=2024, class_no=1, name="1班"))
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
        class_id = db.session.scalar(select(SchoolClass.id).where(SchoolClass.cohort_year == 2025))
    with app.app_context():
        from app import exchange
        henan_key = exchange.public_key_text()
        db.session.query(ExchangePeer).delete()
        db.session.commit()
        exchange.add_peer(db.session, None, "420000", hubei_key)
        sm = app.appbuilder.sm
        sm.add_user("hn_province", "河", "南", "hn@x.cn", role=[sm.find_role(ROLE_BUREAU_REVIEWER)],
                    password="Xueji#2026", must_change_password=False, region_code="410000")
        db.session.commit()
    with other.app_context():
        exchange.add_peer(db.session, None, "410000", henan_key)
    yield other, class_id
    clock.fix(None)
    with other.app_context():
        db.session.remove()
        db.engine.dispose()
    with app.app_context():
        db.session.query(ExchangePeer).delete()
        db.session.commit()


def _post(client, path, package, headers):
    return client.post(path, headers=headers, data=json.dumps(package, ensure_ascii=False),
                       content_type="application/json")


def _application(app, world, hb, class_id, cohort=2025):
    """Hubei files 跨省转入 for a Henan a1 student of `cohort` into `class_id`, approves it and exports it."""
    with app.app_context():
        s = db.session.scalar(select(Student).where(Student.school_id == world.schools["a1"],
                                                    Student.cohort_year == cohort).order_by(Student.id))
        student = (s.id, s.xjh, s.name)
    resp = hb.post("/api/v1/request/file", headers=api_headers(hb, "hb_clerk"), json={
        "kind": "transfer_in", "xjh": student[1], "name": student[2], "class_id": class_id,
        "from_province": "410000"})
    assert resp.status_code == 200, resp.get_json()
    rid = resp.get_json()["result"]["id"]
    for who in ("hb_leader", "hb_county", "hb_province"):
        assert decide(hb, who, rid).status_code == 200, who
    package = hb.get(f"/api/v1/request/{rid}/package", headers=api_headers(hb, "hb_clerk")).get_json()["result"]
    return student, rid, package


def _record(client, application):
    """Henan imports the application; school, county and province approve; the record package comes back."""
    resp = _post(client, "/api/v1/request/import/request", application, api_headers(client, "county_a_clerk"))
    assert resp.status_code == 200, resp.get_json()
    out = resp.get_json()["result"]["id"]
    for who in ("school_a1_leader", "county_a_reviewer", "hn_province"):
        assert decide(client, who, out).status_code == 200, who
    return client.get(f"/api/v1/request/{out}/package", headers=api_headers(client, "county_a_clerk")).get_json()[
        "result"]


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
        # the earlier spans arrive, marked as the other province's, before the new one
        moved_id = moved.id
        spans = db.session.scalars(select(Enrollment).where(Enrollment.student_id == moved.id)
                                   .order_by(Enrollment.id)).all()
        assert len(spans) >= 2
        assert spans[-1].current == 1 and spans[-1].reason.startswith(f"跨省转入调档 #{rid}")
        for span in spans[:-1]:
            assert span.current is None and span.ended_on is not None
            assert span.reason.startswith("（外省）河南省 郑州市中原区第一初级中学"), span.reason
        assert spans[-2].status == "转出" and spans[-2].cohort_year == 2025
    web = other.test_client()
    web.post("/login/", data={"username": "hb_clerk", "password": "Xueji#2026"})
    page = web.get(f"/student/show/{moved_id}").get_data(as_text=True)
    assert "（外省）河南省 郑州市中原区第一初级中学" in page
    assert page.index("（外省）河南省") < page.index(f"跨省转入调档 #{rid}")
    again = hb.post("/api/v1/request/import/record", headers=api_headers(hb, "hb_clerk"),
                    data=json.dumps(record, ensure_ascii=False), content_type="application/json")
    assert again.status_code == 422 and again.get_json()["code"] == "duplicate"


def test_packages_from_unknown_provinces_are_refused(app, world, client, hubei):
    with app.app_context():
        db.session.query(ExchangePeer).delete()
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


def test_a_record_is_placed_like_any_other_placement(app, world, client, hubei):
    """调档 checks the grade (cohort) against the chosen class and the class's 班额; the sending province already
    refuses an application into a class of another grade."""
    other, class_id = hubei
    hb = other.test_client()
    with other.app_context():
        older = db.session.scalar(select(SchoolClass.id).where(SchoolClass.cohort_year == 2024))
    # an application for a 2025-cohort student into a 2024 class: refused when Henan imports it
    _, _, wrong = _application(app, world, hb, older)
    resp = _post(client, "/api/v1/request/import/request", wrong, api_headers(client, "county_a_clerk"))
    assert resp.status_code == 422 and resp.get_json()["code"] == "grade_change", resp.get_json()
    assert "2025级" in resp.get_json()["message"] and "2024级" in resp.get_json()["message"]
    # the right application; at 调档 the registrar picks the 2024 class instead: refused, naming both grades
    (_, xjh, _), rid, application = _application(app, world, hb, class_id)
    record = _record(client, application)
    headers = api_headers(hb, "hb_clerk")
    resp = _post(hb, f"/api/v1/request/import/record?class_id={older}", record, headers)
    assert resp.status_code == 422 and resp.get_json()["code"] == "grade_change", resp.get_json()
    message = resp.get_json()["message"]
    assert "该生为2025级" in message and "2024级1班" in message
    # the class is full (the county's 班额 for 初中 set to 0): refused with the class, its size and its cap
    with other.app_context():
        db.session.add(Setting(key="class_cap.初中", region_code="420102", value="0"))
        db.session.commit()
    resp = _post(hb, "/api/v1/request/import/record", record, headers)
    assert resp.status_code == 422 and resp.get_json()["code"] == "class_full", resp.get_json()
    assert "2025级1班已有0人，班额0人" in resp.get_json()["message"]
    with other.app_context():
        assert db.session.scalar(select(Student.id).where(Student.xjh == xjh)) is None
        db.session.query(Setting).filter(Setting.key == "class_cap.初中").delete()
        db.session.commit()
    # a seat and the right grade: placed, cohort unchanged
    resp = _post(hb, "/api/v1/request/import/record", record, headers)
    assert resp.status_code == 200, resp.get_json()
    with other.app_context():
        moved = db.session.scalar(select(Student).where(Student.xjh == xjh))
        assert (moved.cohort_year, moved.class_id) == (2025, class_id)


def test_expired_packages_are_refused(app, world, client, hubei):
    from datetime import datetime, timedelta
    other, class_id = hubei
    hb = other.test_client()
    _, _, application = _application(app, world, hb, class_id)
    county = api_headers(client, "county_a_clerk")
    clock.fix(datetime.now() + timedelta(days=31))
    resp = _post(client, "/api/v1/request/import/request", application, county)
    assert resp.status_code == 422 and resp.get_json()["code"] == "expired_package", resp.get_json()
    created = datetime.fromisoformat(application["created"])
    assert resp.get_json()["message"].startswith(f"数据包已超过30天有效期（生成于{created:%Y-%m-%d %H:%M}）")
    # the period is a setting
    with app.app_context():
        db.session.add(Setting(key="exchange.package_days", region_code=None, value="60"))
        db.session.commit()
    resp = _post(client, "/api/v1/request/import/request", application, county)
    assert resp.status_code == 200, resp.get_json()


def test_the_importing_county_withdraws_and_resubmits(app, world, client, hubei):
    """The county that imported an application acts as its filer: after a 不通过 it resubmits, and it may
    withdraw, which releases the student (no 2002 left behind)."""
    from app import workflow
    other, class_id = hubei
    hb = other.test_client()
    (sid, _, _), _, application = _application(app, world, hb, class_id)
    county = api_headers(client, "county_a_clerk")
    resp = _post(client, "/api/v1/request/import/request", application, county)
    out = resp.get_json()["result"]["id"]
    assert decide(client, "school_a1_leader", out, "不通过", "该生本学期不宜转出").status_code == 200
    # another county's clerk is not the filer (out of scope)
    other_county = client.post(f"/api/v1/request/{out}/resubmit", headers=api_headers(client, "county_b_clerk"),
                               json={"comment": "x"})
    assert other_county.status_code in (403, 404)
    resp = client.post(f"/api/v1/request/{out}/resubmit", headers=county, json={"comment": "家长已补充说明"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["result"]["state"] == "审核中"
    resp = client.post(f"/api/v1/request/{out}/withdraw", headers=county, json={"comment": "对方省份撤回申请"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["result"]["state"] == "已撤销"
    with app.app_context():
        assert workflow.open_request(db.session, sid) is None
        assert db.session.get(Student, sid).status == "在校"
