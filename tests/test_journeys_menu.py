"""A way in to every job (issue 16): 学籍管理 → 学籍异动 for the school registrar, and the county's 毕业升级 menu
with 升级, 在办业务清理, 毕业审核 and 毕业生回退 (a screen: find graduates, choose, give a reason, confirm)."""
import html
import re
from datetime import datetime

import pytest
from sqlalchemy import select, update

from app import clock
from app.extensions import db
from models import Student
from models.requests import Request

YEAR = 2026


@pytest.fixture(autouse=True)
def june_2027(app, world):
    clock.fix(datetime(2027, 6, 20, 10, 0))              # graduation season of school year 2026
    from models import XuejiUser
    with app.app_context():
        db.session.execute(update(XuejiUser).values(password_changed_on=datetime(2027, 6, 1)))
        db.session.commit()
    yield
    clock.fix(None)


def menu(page):
    """The menu's links: {label: href}."""
    return {html.unescape(label).strip(): html.unescape(href) for href, label in
            re.findall(r'<a [^>]*href="([^"]+)"[^>]*>\s*(?:<i [^>]*></i>)?\s*([^<]+?)\s*</a>', page)}


def grade(app, world, school, cohort=YEAR - 2):
    with app.app_context():
        return list(db.session.scalars(select(Student.id).where(Student.school_id == world.schools[school],
                                                                Student.cohort_year == cohort)
                                       .order_by(Student.id)))


def test_the_county_menu_reaches_every_graduation_job(app, world, as_user, client):
    from tests.test_status_change import file
    other = file(client, "a1", grade(app, world, "a1", YEAR)[0], "休学").get_json()["result"]["id"]
    as_user("school_a2_clerk").post("/graduation/confirm", data={"school_id": world.schools["a2"], "stage": "高中"})
    with app.app_context():
        rid = db.session.scalar(select(Request.id).where(Request.kind == "graduation"))
    clerk, reviewer = as_user("county_a_clerk"), as_user("county_a_reviewer")
    links = menu(clerk.get("/").get_data(as_text=True))
    assert links["升级"] == "/graduation/promote" and links["在办业务清理"] == "/request/clear"
    assert links["毕业生回退"] == "/graduation/rollback" and "毕业审核" not in links     # the clerk does not decide
    for label in ("升级", "在办业务清理", "毕业生回退"):
        assert clerk.get(links[label]).status_code == 200, label
    links = menu(reviewer.get("/").get_data(as_text=True))
    assert "在办业务清理" in links and "升级" not in links and "毕业生回退" not in links
    review = reviewer.get(links["毕业审核"]).get_data(as_text=True)
    assert f"/request/show/{rid}" in review and "高中毕业" in review
    assert f"/request/show/{other}\"" not in review     # the list holds only graduation requests waiting
    assert f"/request/show/{other}\"" in reviewer.get("/request/list/").get_data(as_text=True)
    # school accounts have none of it; the registrar has 学籍异动
    links = menu(as_user("school_a1_clerk").get("/").get_data(as_text=True))
    assert links.get("学籍异动") == "/statuschange/" and not {"升级", "毕业生回退", "毕业审核"} & set(links)
    assert "学籍异动" not in menu(as_user("school_a1_leader").get("/").get_data(as_text=True))


def test_rollback_screen(app, world, as_user):
    ids = grade(app, world, "a1")
    as_user("school_a1_clerk").post("/graduation/confirm", data={"school_id": world.schools["a1"], "stage": "初中"})
    with app.app_context():
        xjh = db.session.get(Student, ids[0]).xjh
    clerk = as_user("county_a_clerk")
    page = clerk.get(f"/graduation/rollback?school_id={world.schools['a1']}&year=2027").get_data(as_text=True)
    assert all(f'name="ids" value="{i}"' in page for i in ids) and "data-confirm=" in page
    page = clerk.get(f"/graduation/rollback?q={xjh}").get_data(as_text=True)
    assert page.count('name="ids"') == 1
    # other counties and schools do not see them or cannot act
    assert f'value="{ids[0]}"' not in as_user("county_b_clerk").get("/graduation/rollback").get_data(as_text=True)
    assert as_user("county_b_clerk").post("/graduation/rollback", data={"ids": [ids[0]], "reason": "x"}
                                          ).status_code == 404
    for user in ("school_a1_clerk", "school_a1_leader"):
        assert as_user(user).get("/graduation/rollback").status_code in (302, 403), user
    # no reason: nothing happens
    page = clerk.post("/graduation/rollback", data={"ids": [ids[0]], "reason": " "},
                      follow_redirects=True).get_data(as_text=True)
    assert "请填写回退原因" in page
    resp = clerk.post("/graduation/rollback", data={"ids": [ids[0], ids[1]], "reason": "误操作"},
                      follow_redirects=True)
    assert "已回退2名毕业生" in resp.get_data(as_text=True)
    with app.app_context():
        assert [db.session.get(Student, i).status for i in ids[:3]] == ["在校", "在校", "毕业"]
