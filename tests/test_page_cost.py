"""A page's fixed cost (issue 17: the big county's list at ≤ 1.5× its bare SQL): the menu rendered once per role
set and language (views/menu.py), the list's row buttons built once per page (views.base.XuejiListWidget), the
signed-in account loaded with its roles in one statement (app.security), the search filters converted once per
view (app.scoping.SharedFilters). Each must give exactly what FAB gave, for every role."""
import re

from flask_appbuilder.widgets import ListWidget

from app.extensions import db
from tests.conftest import statements


def menu_of(page: str) -> str:
    return page.split('<ul class="nav navbar-nav">', 1)[1].split("</ul>\n", 1)[0]


def menu_links(page: str) -> set:
    return set(re.findall(r'href="(/[^"]*)"', page.split('<ul class="nav navbar-nav">', 1)[1]
                          .split('navbar-right', 1)[0]))


def test_the_menu_is_kept_per_role_set(app, world, as_user):
    admin = as_user("admin").get("/student/list/").get_data(as_text=True)
    assert "/auditeventview/list/" in menu_links(admin) or "审计日志" in menu_of(admin)
    registrar = as_user("school_a1_clerk").get("/student/list/").get_data(as_text=True)
    clerk = as_user("county_a_clerk").get("/student/list/").get_data(as_text=True)
    assert "审计日志" not in menu_of(registrar)          # not the admin's menu served from the cache
    assert "升级" in menu_of(clerk) and "/graduation/promote" not in menu_links(registrar)
    # served again from the cache, still each its own
    assert menu_links(as_user("school_a1_clerk").get("/").get_data(as_text=True)) == menu_links(registrar)
    assert menu_links(as_user("admin").get("/").get_data(as_text=True)) == menu_links(admin)


def test_the_cached_menu_is_what_fab_renders(app, world, as_user):
    from views import menu
    for user in ("admin", "county_a_clerk", "school_a1_clerk", "school_a1_leader"):
        c = as_user(user)
        cached = c.get("/student/list/").get_data(as_text=True)      # the second time from the cache
        cached = c.get("/student/list/").get_data(as_text=True)
        original = menu.cached_menu
        try:
            menu.cached_menu = lambda: None                            # render it as FAB does, every time
            app.jinja_env.globals["xueji_cached_menu"] = menu.cached_menu
            fresh = c.get("/student/list/").get_data(as_text=True)
        finally:
            menu.cached_menu = original
            app.jinja_env.globals["xueji_cached_menu"] = original
        assert " ".join(menu_of(cached).split()) == " ".join(menu_of(fresh).split()), user


def test_a_role_edit_reaches_the_cached_menu_at_once(app, world, as_user):
    from app.roles import ROLE_SCHOOL_REGISTRAR
    c = as_user("school_a1_clerk")
    assert "学籍统计" in menu_of(c.get("/").get_data(as_text=True))
    with app.app_context():
        sm = app.appbuilder.sm
        role = sm.find_role(ROLE_SCHOOL_REGISTRAR)
        pv = sm.find_permission_view_menu("menu_access", "Statistics")
        role.permissions = [p for p in role.permissions if p.id != pv.id]
        db.session.commit()                                          # the audit hook empties the caches
    assert "学籍统计" not in menu_of(c.get("/").get_data(as_text=True))


def _rows(page: str) -> str:
    table = page.split('<table class="table table-bordered table-hover">', 1)[1].split("</table>", 1)[0]
    return " ".join(table.split()).replace("> <", "><")


def test_the_list_table_is_what_fabs_widget_renders(app, world, as_user, monkeypatch):
    from views.students import StudentView
    c = as_user("school_a1_clerk")
    url = "/student/list/?_flt_3_status=在校"
    ours = c.get(url).get_data(as_text=True)
    view = next(v for v in app.appbuilder.baseviews if isinstance(v, StudentView))
    monkeypatch.setattr(view, "list_widget", ListWidget)
    fabs = c.get(url).get_data(as_text=True)
    nonce = re.compile(r'nonce="[^"]*"')
    assert nonce.sub("", _rows(ours)) == nonce.sub("", _rows(fabs))
    # each row's buttons carry its own id
    for pk in re.findall(r'name="rowid" value="(\d+)"', ours) or re.findall(r'/student/show/(\d+)', ours):
        assert f"/student/show/{pk}" in ours


def test_the_account_and_its_roles_are_one_statement(app, world, as_user):
    c = as_user("county_a_clerk")
    c.get("/student/list/")
    with statements() as seen:
        assert c.get("/student/list/").status_code == 200
    assert len([s for s in seen if "ab_user" in s]) == 1
    assert not [s for s in seen if s.lstrip().startswith("SELECT") and "FROM ab_role" in s.split("JOIN")[0]]


def test_a_search_does_not_stick_to_the_next_request(app, world, as_user):
    c = as_user("county_a_clerk")
    everyone = c.get("/student/list/").get_data(as_text=True)
    c.get("/student/list/?_flt_0_xjh=G4101")
    c.get("/student/list/?_flt_2_name=王")
    again = c.get("/student/list/").get_data(as_text=True)
    count = re.compile(r"记录数[^0-9]*(\d+)|Record Count[^0-9]*(\d+)")
    assert count.search(everyone).groups() == count.search(again).groups()


def test_a_region_scope_is_one_array_parameter_on_postgresql(app, world, as_user):
    """A county's schools as one array parameter (app.scoping.in_ids): the statement's text does not grow with the
    number of schools, so it is rendered and parsed once, not per page."""
    import pytest
    if app.config["SQLALCHEMY_DATABASE_URI"].split(":", 1)[0].split("+")[0] != "postgresql":
        pytest.skip("PostgreSQL only: elsewhere the ids are an IN list")
    c = as_user("county_a_clerk")
    with statements() as seen:
        assert c.get("/student/list/?_flt_3_status=在校").status_code == 200
    on_student = [s for s in seen if "FROM student" in s]
    assert on_student and all("school_id = ANY (" in s and "IN (" not in s.split("WHERE", 1)[1]
                              for s in on_student), on_student
