"""Account administration, the registrar directory and 个人设置."""
import pytest
from sqlalchemy import select

from app.extensions import db
from app.roles import (ROLE_ADMIN, ROLE_BUREAU_CLERK, ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER,
                       ROLE_SCHOOL_REGISTRAR)
from models import XuejiUser
from tests.conftest import api_headers


def role_id(app, name):
    with app.app_context():
        return app.appbuilder.sm.find_role(name).id


def user(app, username):
    with app.app_context():
        u = db.session.scalar(select(XuejiUser).where(XuejiUser.username == username))
        return None if u is None else (u.school_id, u.region_code, sorted(r.name for r in u.roles),
                                       u.must_change_password)


def add_form(username, school=None, roles=(), region=None):
    data = {"username": username, "last_name": "张", "first_name": "三", "email": f"{username}@x.cn",
            "active": "y", "roles": list(roles), "password": "Init#Pass99", "conf_password": "Init#Pass99"}
    if school:
        data["school"] = school
    if region:
        data["region"] = region
    return data


def test_bureau_creates_school_accounts_in_its_region(app, world, as_user):
    c = as_user("county_a_clerk")
    resp = c.post("/users/add", data=add_form("a1_new", world.schools["a1"],
                                              [role_id(app, ROLE_SCHOOL_REGISTRAR)]))
    assert resp.status_code == 302
    assert user(app, "a1_new") == (world.schools["a1"], None, [ROLE_SCHOOL_REGISTRAR], True)


@pytest.mark.parametrize("case", ["other_county", "admin_role", "bureau_role", "no_school"])
def test_bureau_cannot_create_other_accounts(app, world, as_user, case):
    c = as_user("county_a_clerk")
    school, roles = world.schools["a1"], [role_id(app, ROLE_SCHOOL_LEADER)]
    if case == "other_county":
        school = world.schools["b1"]
    elif case == "admin_role":
        roles = [role_id(app, ROLE_ADMIN)]
    elif case == "bureau_role":
        roles = [role_id(app, ROLE_BUREAU_REVIEWER)]
    elif case == "no_school":
        school = None
    c.post("/users/add", data=add_form("intruder", school, roles))
    assert user(app, "intruder") is None


def test_bureau_cannot_raise_itself_or_edit_colleagues(app, world, as_user):
    c = as_user("county_a_clerk")
    me = world.users["county_a_clerk"]
    c.post(f"/users/edit/{me}", data={"username": "county_a_clerk", "last_name": "x", "first_name": "y",
                                      "email": "county_a_clerk@xueji.example", "active": "y",
                                      "roles": [role_id(app, ROLE_ADMIN)], "region": ""})
    assert user(app, "county_a_clerk")[2] == [ROLE_BUREAU_CLERK]
    colleague = world.users["county_a_reviewer"]
    c.post(f"/users/edit/{colleague}", data={"username": "county_a_reviewer", "last_name": "x",
                                             "first_name": "y", "email": "r@x.cn", "active": "",
                                             "roles": [role_id(app, ROLE_SCHOOL_LEADER)]})
    assert user(app, "county_a_reviewer")[2] == [ROLE_BUREAU_REVIEWER]
    assert c.post(f"/users/delete/{world.users['school_a1_clerk']}").status_code in (302, 403)
    assert user(app, "school_a1_clerk") is not None
    # other counties' accounts are invisible
    assert c.get(f"/users/show/{world.users['school_b1_clerk']}").status_code == 404
    assert c.get(f"/users/edit/{world.users['school_b1_clerk']}").status_code == 404


def test_school_users_cannot_manage_accounts(app, world, as_user):
    c = as_user("school_a1_clerk")
    assert c.get("/users/list/").status_code == 403
    assert c.post("/users/add", data=add_form("x", world.schools["a1"])).status_code == 403
    assert c.get("/roles/list/").status_code == 403


def test_admin_manages_everyone(app, world, as_user):
    c = as_user("admin")
    resp = c.post("/users/add", data=add_form("new_bureau", roles=[role_id(app, ROLE_BUREAU_CLERK)],
                                              region=None))
    assert resp.status_code == 302
    assert user(app, "new_bureau")[2] == [ROLE_BUREAU_CLERK]


def test_directory_lists_province_registrars_for_everyone(app, world, as_user):
    with app.app_context():
        phone = db.session.scalar(select(XuejiUser.phone).where(XuejiUser.username == "school_b2_clerk"))
    for who in ("school_a1_leader", "county_a_reviewer"):
        page = as_user(who).get("/directory/").get_data(as_text=True)
        assert "郑州市金水区实验高级中学" in page and phone in page
        assert page.count("<tr>") == 1 + 4          # header + one registrar per school
    page = as_user("school_a1_leader").get("/directory/?q=金水区").get_data(as_text=True)
    assert page.count("<tr>") == 1 + 2


def test_profile_edits_phone_and_qq(app, world, as_user):
    c = as_user("school_a1_leader")
    bad = c.post("/profileeditview/form", data={"last_name": "李", "first_name": "四", "phone": "12345",
                                                "qq": "12345"}).get_data(as_text=True)
    assert "11位" in bad
    c.post("/profileeditview/form", data={"last_name": "李", "first_name": "四", "phone": "13912345678",
                                          "qq": "123456789"})
    with app.app_context():
        u = db.session.get(XuejiUser, world.users["school_a1_leader"])
        assert (u.last_name, u.phone, u.qq) == ("李", "13912345678", "123456789")
        assert u.school_id == world.schools["a1"]


def test_api_me_reports_scope(app, world, client):
    h = api_headers(client, "county_b_reviewer")
    me = client.get("/api/v1/account/me", headers=h).get_json()["result"]
    assert me["region_code"] == "410105" and me["roles"] == [ROLE_BUREAU_REVIEWER]


def test_ui_is_chinese_by_default_and_english_selectable(app, world, as_user):
    c = as_user("school_a1_clerk")
    page = c.get("/student/list/").get_data(as_text=True)
    assert "全国学籍号" in page and "学生学籍" in page
    c.get("/lang/en")
    page = c.get("/student/list/").get_data(as_text=True)
    assert "National student number" in page and "Student records" in page
    assert "全国学籍号" not in page


def test_account_list_shows_blank_not_none(app, world, as_user):
    """A bureau account has no school and a school account no region: the list shows a blank cell."""
    page = as_user("county_a_clerk").get("/users/list/").get_data(as_text=True)
    assert "school_a1_clerk" in page and ">None<" not in page.replace(" ", "").replace("\n", "")


def test_account_form_speaks_chinese(app, world, as_user):
    page = as_user("admin").get("/users/add").get_data(as_text=True)
    assert "It's not a good policy" not in page and "Write the user" not in page
    assert "不要删除" in page and "教育局账号填写所辖行政区划" in page
