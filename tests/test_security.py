"""Security policy: lockout, rate limits, forced password change, CSRF, audit, error pages, sessions."""
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from models import AuditEvent, SchoolClass, Student, XuejiUser
from tests.conftest import DEMO_PASSWORD, api_login, export_xlsx, login, statements, student_form


def audit_actions(app, username=None):
    with app.app_context():
        q = select(AuditEvent.action).order_by(AuditEvent.id)
        if username:
            q = q.where(AuditEvent.username == username)
        return list(db.session.scalars(q))


def logged_in(client) -> bool:
    resp = client.get("/student/list/")
    return resp.status_code == 200


# --- lockout ------------------------------------------------------------------------------------------

def test_web_lockout_after_five_failures_for_fifteen_minutes(app, world, client):
    for _ in range(5):
        login(client, "school_a1_clerk", "Wrong#Pass1")
    login(client, "school_a1_clerk")                  # right password, but locked
    assert not logged_in(client)
    actions = audit_actions(app, "school_a1_clerk")
    assert actions.count("login_failed") == 5 and "lockout" in actions and "login_locked" in actions
    clock.fix(datetime.now() + timedelta(minutes=16))
    login(client, "school_a1_clerk")
    assert logged_in(client)


def test_api_lockout_after_five_failures(app, world, client):
    for _ in range(5):
        assert api_login(client, "school_b1_clerk", "Wrong#Pass1").status_code == 401
    assert api_login(client, "school_b1_clerk").status_code == 401
    clock.fix(datetime.now() + timedelta(minutes=14))
    assert api_login(client, "school_b1_clerk").status_code == 401
    clock.fix(datetime.now() + timedelta(minutes=16))
    assert api_login(client, "school_b1_clerk").status_code == 200


def test_success_resets_the_failure_count(app, world, client):
    for _ in range(4):
        login(client, "school_a2_clerk", "Wrong#Pass1")
    login(client, "school_a2_clerk")
    client.get("/logout/")
    login(client, "school_a2_clerk", "Wrong#Pass1")
    login(client, "school_a2_clerk")
    assert logged_in(client)


def test_unknown_user_failure_is_audited(app, world, client):
    login(client, "nobody", "Wrong#Pass1")
    assert "login_failed" in audit_actions(app, "nobody")


@pytest.mark.parametrize("path,body", [
    ("/login/", None),
    ("/api/v1/security/login", {"username": "x", "password": "y", "provider": "db"}),
])
def test_logins_are_rate_limited(world, make_app, path, body):
    limited = make_app(AUTH_RATE_LIMIT="3 per minute")
    c = limited.test_client()
    codes = []
    for _ in range(5):
        resp = c.post(path, json=body) if body else c.post(path, data={"username": "x", "password": "y"})
        codes.append(resp.status_code)
    assert 429 not in codes[:3] and codes[3:] == [429, 429]


# --- forced password change --------------------------------------------------------------------------

def new_account(app, world, username="school_a1_new"):
    """An account created by the superadmin through the user form."""
    c = app.test_client()
    login(c, "admin")
    with app.app_context():
        from app.roles import ROLE_SCHOOL_LEADER
        role_id = app.appbuilder.sm.find_role(ROLE_SCHOOL_LEADER).id
    resp = c.post("/users/add", data={
        "username": username, "last_name": "王", "first_name": "新", "email": f"{username}@x.cn",
        "school": world.schools["a1"], "roles": [role_id], "active": "y", "phone": "13912345678",
        "password": "First#Pass9", "conf_password": "First#Pass9"})
    assert resp.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(XuejiUser).where(XuejiUser.username == username)) is not None


def test_first_login_forces_a_password_change(app, world, client):
    new_account(app, world)
    login(client, "school_a1_new", "First#Pass9")
    resp = client.get("/student/list/")
    assert resp.status_code == 302 and "resetmypassword" in resp.headers["Location"]
    # the API refuses too, except the password change
    token = api_login(client, "school_a1_new", "First#Pass9").get_json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    resp = client.get("/api/v1/student/", headers=h)
    assert resp.status_code == 403 and resp.get_json()["code"] == "password_expired"
    # a weak new password is refused with the rule in Chinese
    page = client.post("/resetmypassword/form", data={"password": "abcdefgh", "conf_password": "abcdefgh"},
                       follow_redirects=True).get_data(as_text=True)
    assert "至少8位" in page
    client.post("/resetmypassword/form", data={"password": "Second#Pass9", "conf_password": "Second#Pass9"})
    assert logged_in(client)                 # the browser that changed it stays signed in …
    assert client.get("/api/v1/student/", headers=h).status_code == 401     # … tokens of the old password die
    token = api_login(client, "school_a1_new", "Second#Pass9").get_json()["access_token"]
    assert client.get("/api/v1/student/", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_password_older_than_ninety_days_forces_a_change(app, world, client):
    with app.app_context():
        u = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "school_b2_clerk"))
        u.password_changed_on = datetime.now() - timedelta(days=91)
        db.session.commit()
    login(client, "school_b2_clerk")
    resp = client.get("/school/list/")
    assert resp.status_code == 302 and "resetmypassword" in resp.headers["Location"]
    with app.app_context():
        u = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "school_b2_clerk"))
        u.password_changed_on = datetime.now() - timedelta(days=89)
        db.session.commit()
    assert client.get("/school/list/").status_code == 200


def test_api_password_change_applies_the_policy(app, world, client):
    token = api_login(client, "school_a1_leader").get_json()["access_token"]
    h = {"Authorization": f"Bearer {token}"}
    weak = client.post("/api/v1/account/password", json={"old_password": DEMO_PASSWORD, "new_password": "short"},
                       headers=h)
    assert weak.status_code == 422 and "至少8位" in weak.get_json()["message"]
    wrong = client.post("/api/v1/account/password", json={"old_password": "x", "new_password": "Good#Pass99"},
                        headers=h)
    assert wrong.status_code == 422
    ok = client.post("/api/v1/account/password", json={"old_password": DEMO_PASSWORD,
                                                       "new_password": "Good#Pass99"}, headers=h)
    assert ok.status_code == 200
    assert api_login(client, "school_a1_leader", "Good#Pass99").status_code == 200


@pytest.mark.parametrize("password,ok", [
    ("Abcdefg1", True), ("abcdef1!", True), ("ABCDEF1!", True), ("Abcdefg!", True),
    ("abcdefg1", False), ("ABCDEFGH", False), ("Ab1!", False), ("abcdefgh!", False), ("", False),
])
def test_password_rule(password, ok):
    from app.passwords import password_problem
    assert (password_problem(password) is None) == ok


def test_every_account_path_applies_the_policy(app, world):
    from app.errors import RuleError
    with app.app_context():
        sm = app.appbuilder.sm
        with pytest.raises(RuleError):
            sm.add_user("weak", "a", "b", "weak@x.cn", role=[], password="password")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["xueji", "create-superadmin", "--username", "root2", "--email", "r@x.cn",
                                 "--password", "12345678"])
    assert result.exit_code != 0 and "至少8位" in result.output
    result = runner.invoke(args=["xueji", "create-superadmin", "--username", "root2", "--email", "r@x.cn",
                                 "--password", "Strong#Pass1"])
    assert result.exit_code == 0, result.output


# --- CSRF ---------------------------------------------------------------------------------------------

def csrf_token(client, path):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)


def test_csrf_refuses_tokenless_posts_and_get_mutations(app, world, make_app):
    secured = make_app(WTF_CSRF_ENABLED=True)
    c = secured.test_client()
    assert c.post("/login/", data={"username": "school_a1_clerk", "password": DEMO_PASSWORD}).status_code == 400
    token = csrf_token(c, "/login/")
    c.post("/login/", data={"username": "admin", "password": DEMO_PASSWORD, "csrf_token": token})
    sid = world.student_of("a1")
    assert c.post(f"/student/delete/{sid}").status_code == 400
    c.get(f"/student/delete/{sid}")                                   # GET delete is refused
    assert c.post("/student/action_post", data={"action": "export_selected", "rowid": [sid]}).status_code == 400
    assert c.get(f"/student/action/export_selected/{sid}").status_code == 405
    with secured.app_context():
        assert db.session.get(Student, sid) is not None
    # with the token the same delete goes through
    token = csrf_token(c, f"/student/show/{sid}")
    assert c.post(f"/student/delete/{sid}", data={"csrf_token": token}).status_code == 302
    with secured.app_context():
        assert db.session.get(Student, sid) is None


# --- audit --------------------------------------------------------------------------------------------

def test_edit_is_audited_with_old_and_new_values(app, world, as_user):
    c = as_user("school_a1_clerk")
    sid = world.student_of("a1")
    with app.app_context():
        old_address = db.session.get(Student, sid).current_address
    resp = c.post(f"/student/edit/{sid}", data=student_form(app, sid, current_address="郑州市中原区新址8号"))
    assert resp.status_code == 302
    with app.app_context():
        ev = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "update",
                                                         AuditEvent.entity == "student")).all()
        assert [(e.field, e.old_value, e.new_value, e.username, e.school_id) for e in ev] == [
            ("current_address", old_address, "郑州市中原区新址8号", "school_a1_clerk", world.schools["a1"])]


def test_role_change_is_audited(app, world):
    uid = world.users["school_a1_leader"]
    with app.app_context():
        from app.roles import ROLE_SCHOOL_REGISTRAR
        sm = app.appbuilder.sm
        u = db.session.get(XuejiUser, uid)
        u.roles = [sm.find_role(ROLE_SCHOOL_REGISTRAR)]
        db.session.commit()
        ev = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "role_change")).one()
        assert ev.old_value == "学校学籍主管领导" and ev.new_value == "学校学籍管理员"


def test_audit_rows_cannot_be_changed_through_the_orm(app, world, client):
    from app.errors import RuleError
    login(client, "nobody", "x")
    with app.app_context():
        ev = db.session.scalars(select(AuditEvent)).first()
        ev.new_value = "tampered"
        with pytest.raises(RuleError):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalars(select(AuditEvent)).first())
        with pytest.raises(RuleError):
            db.session.commit()


# --- errors, sessions ---------------------------------------------------------------------------------

def test_unique_clash_answers_422_in_chinese_without_sql(app, world, client):
    h = {"Authorization": "Bearer " + api_login(client, "school_a1_clerk").get_json()["access_token"]}
    with app.app_context():                   # (a student's 学籍号 is generated: a clash on a class number)
        k = db.session.scalars(select(SchoolClass).where(SchoolClass.school_id == world.schools["a1"])).first()
        body = {"school_id": k.school_id, "stage": k.stage, "cohort_year": k.cohort_year, "class_no": k.class_no,
                "name": k.name + "乙"}
    resp = client.post("/api/v1/schoolclass/", json=body, headers=h)
    text = resp.get_data(as_text=True)
    assert resp.status_code == 422 and resp.get_json()["code"] == "conflict", resp.get_json()
    assert "重复" in resp.get_json()["message"] or "冲突" in resp.get_json()["message"]
    assert "INSERT" not in text and "UNIQUE" not in text.upper().replace("唯一", "")


def test_error_pages_are_chinese(app, world, as_user):
    c = as_user("school_a1_clerk")
    resp = c.get("/no/such/page")
    assert resp.status_code == 404 and "不存在" in resp.get_data(as_text=True)
    api = app.test_client().get("/api/v1/nothing")
    assert api.status_code == 404 and api.get_json()["code"] == "http_404"


def test_session_is_idle_limited_and_logout_clears_it(app, world, client):
    resp = login(client, "school_a1_clerk")
    cookie = resp.headers["Set-Cookie"]
    expires = re.search(r"Expires=([^;]+)", cookie).group(1)
    left = datetime.strptime(expires, "%a, %d %b %Y %H:%M:%S GMT") - datetime.utcnow()
    assert timedelta(minutes=29) < left <= timedelta(minutes=30, seconds=5)
    assert app.config["SESSION_REFRESH_EACH_REQUEST"]
    client.get("/logout/")
    assert not logged_in(client)
    assert "logout" in audit_actions(app, "school_a1_clerk")


def test_permission_checks_do_not_query_per_request(app, world, as_user):
    c = as_user("county_a_clerk")
    c.get("/student/list/")                                 # warm the cache
    with statements() as seen:
        assert c.get("/student/list/").status_code == 200
    assert seen and not [s for s in seen if "ab_permission_view_role" in s]


def redis_url():
    import redis
    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis server on 127.0.0.1:6379 (.ci/run starts one)")
    return url


def test_rate_limit_is_shared_between_workers_through_redis(world, make_app):
    """Two apps (two gunicorn workers) with Redis storage count against one limit."""
    url = redis_url()
    workers = [make_app(AUTH_RATE_LIMIT="3 per minute", RATELIMIT_STORAGE_URI=url) for _ in range(2)]
    codes = [workers[i % 2].test_client().post("/login/", data={"username": "x", "password": "y"}).status_code
             for i in range(4)]
    assert codes[:3] != [429] * 3 and codes[3] == 429


def test_sign_in_survives_redis_going_down(world, make_app):
    """Limiter storage unreachable (Redis down): signing in still works and is still limited, in memory."""
    down = make_app(AUTH_RATE_LIMIT="2 per minute", RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    c = down.test_client()
    assert login(c, "school_a1_clerk").status_code == 302
    codes = [c.post("/login/", data={"username": "x", "password": "y"}).status_code for _ in range(3)]
    assert 500 not in codes and codes[-1] == 429


def _login_ip(app, username):
    with app.app_context():
        return db.session.scalars(select(AuditEvent.ip).where(AuditEvent.username == username,
                                                               AuditEvent.action == "login")
                                  .order_by(AuditEvent.id.desc())).first()


def test_client_address_behind_a_proxy(world, make_app):
    """Behind nginx (PROXY_FIX_X_FOR=1) the audit log and the login limit see the client's address; exposed
    directly, a forged X-Forwarded-For is ignored."""
    forged = {"X-Forwarded-For": "203.0.113.9"}
    direct = make_app()
    c = direct.test_client()
    c.post("/login/", data={"username": "school_a1_clerk", "password": DEMO_PASSWORD}, headers=forged)
    assert _login_ip(direct, "school_a1_clerk") == "127.0.0.1"
    proxied = make_app(PROXY_FIX_X_FOR=1, AUTH_RATE_LIMIT="2 per minute")
    c = proxied.test_client()
    c.post("/login/", data={"username": "school_a1_clerk", "password": DEMO_PASSWORD}, headers=forged)
    assert _login_ip(proxied, "school_a1_clerk") == "203.0.113.9"
    # two clients behind the same proxy are limited separately
    for _ in range(2):
        c.post("/login/", data={"username": "x", "password": "y"}, headers=forged)
    assert c.post("/login/", data={"username": "x", "password": "y"}, headers=forged).status_code == 429
    other = {"X-Forwarded-For": "203.0.113.10"}
    assert c.post("/login/", data={"username": "x", "password": "y"}, headers=other).status_code != 429


def test_deleting_is_its_own_permission(app, world, as_user):
    c = as_user("school_a1_clerk")
    assert c.post(f"/student/delete/{world.student_of('a1')}").status_code == 403
    with app.app_context():
        from models import SchoolClass
        empty = SchoolClass(school_id=world.schools["a1"], stage="初中", cohort_year=2026, class_no=9,
                            name="初一(9)班")
        db.session.add(empty)
        db.session.commit()
        empty_id = empty.id
        full_id = db.session.get(Student, world.student_of("a1")).class_id
    assert c.post(f"/schoolclass/delete/{empty_id}").status_code == 302
    page = c.post(f"/schoolclass/delete/{full_id}", follow_redirects=True).get_data(as_text=True)
    assert "INSERT" not in page and "DELETE FROM" not in page
    with app.app_context():
        assert db.session.get(SchoolClass, empty_id) is None
        assert db.session.get(SchoolClass, full_id) is not None


def test_api_validation_errors_are_chinese_with_a_code(app, world, client):
    h = {"Authorization": "Bearer " + api_login(client, "school_a1_clerk").get_json()["access_token"]}
    resp = client.post("/api/v1/student/", json={"name": "某", "birth_date": "not a date", "nope": 1}, headers=h)
    body = resp.get_json()
    assert resp.status_code == 422 and body["code"] == "invalid"
    assert "birth_date：应为日期" in body["message"] and "sex：必填" in body["message"]


def test_exports_neutralise_spreadsheet_formulas(app, world, as_user):
    import io
    from openpyxl import load_workbook
    from sqlalchemy import update
    sid = world.student_of("a1")
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == sid).values(name='=HYPERLINK("http://x","y")'))
        db.session.commit()
    c = as_user("school_a1_clerk")
    csv_text = c.get("/student/export/csv").get_data(as_text=True)
    assert """'=HYPERLINK(""http://x"",""y"")""" in csv_text
    _, ws = export_xlsx(c, "/student/export/xlsx")
    names = [row[1].value for row in ws.iter_rows(min_row=2)]
    assert """'=HYPERLINK("http://x","y")""" in names and not any(str(n).startswith("=") for n in names)
