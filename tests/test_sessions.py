"""Sessions end when they should (issue 15): 注销, a password change, a disabled or locked account and 全部下线
end every browser session and every JWT of the account at once; cookies and security headers; the audit rows of
sign-outs and refused sign-ins, and no Python object representations in the audit log."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import clock
from app.extensions import db
from models import AuditEvent, XuejiUser
from tests.conftest import DEMO_PASSWORD, api_login, login


def signed_in(client) -> bool:
    resp = client.get("/student/list/")
    if resp.status_code == 302:
        assert "/login" in resp.headers["Location"]
        return False
    assert resp.status_code == 200
    return True


def replay(app, client):
    """A second browser holding a copy of the client's session cookie, as saved before anything else happens."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def token(client, username, password=DEMO_PASSWORD, refresh=False):
    resp = client.post("/api/v1/security/login", json={"username": username, "password": password,
                                                        "provider": "db", "refresh": refresh})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    return body if refresh else body["access_token"]


def me(client, access_token):
    return client.get("/api/v1/account/me", headers={"Authorization": f"Bearer {access_token}"}).status_code


def audit_rows(app, action, username=None):
    with app.app_context():
        q = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        if username is not None:
            q = q.where(AuditEvent.username == username)
        return [(e.username, e.user_id, e.field, e.new_value, e.entity_id) for e in db.session.scalars(q)]


# --- 注销 -------------------------------------------------------------------------------------------------

def test_a_session_cookie_saved_before_logout_is_dead(app, world, as_user):
    c = as_user("school_a1_clerk")
    saved = replay(app, c)
    assert signed_in(saved)                     # the copy works while the session lives
    c.get("/logout/")
    assert not signed_in(c)
    assert not signed_in(replay(app, saved))    # the saved cookie no longer opens the list
    # signing in again works, with a fresh session
    assert login(c, "school_a1_clerk").status_code == 302 and signed_in(c)


def test_logout_ends_the_accounts_other_browsers_and_tokens(app, world, as_user, client):
    first, second = as_user("school_a1_clerk"), as_user("school_a1_clerk")
    access = token(client, "school_a1_clerk")
    pair = token(client, "school_a1_clerk", refresh=True)
    assert me(client, access) == 200
    first.get("/logout/")
    assert not signed_in(second)
    assert me(client, access) == 401 and me(client, pair["access_token"]) == 401
    refreshed = client.post("/api/v1/security/refresh",
                            headers={"Authorization": f"Bearer {pair['refresh_token']}"})
    assert refreshed.status_code == 401
    # another account is untouched
    assert me(client, token(client, "school_a2_clerk")) == 200


# --- password changes ---------------------------------------------------------------------------------------

def test_a_jwt_issued_before_an_own_password_change_answers_401(app, world, client):
    old = token(client, "school_b1_clerk")
    browser = app.test_client()
    login(browser, "school_b1_clerk")
    resp = client.post("/api/v1/account/password", headers={"Authorization": f"Bearer {old}"},
                       json={"old_password": DEMO_PASSWORD, "new_password": "Changed#Pass7"})
    assert resp.status_code == 200
    assert me(client, old) == 401
    assert not signed_in(browser)
    assert me(client, token(client, "school_b1_clerk", "Changed#Pass7")) == 200


def test_own_password_change_in_the_browser_keeps_that_browser_only(app, world, as_user, client):
    c, elsewhere = as_user("school_a2_leader"), as_user("school_a2_leader")
    old = token(client, "school_a2_leader")
    c.post("/resetmypassword/form", data={"password": "Changed#Pass7", "conf_password": "Changed#Pass7"})
    assert signed_in(c)
    assert not signed_in(elsewhere)
    assert me(client, old) == 401


def test_a_password_reset_by_an_administrator_ends_the_users_sessions(app, world, as_user, client):
    victim = as_user("school_a1_leader")
    old = token(client, "school_a1_leader")
    admin = as_user("county_a_clerk")            # bureau staff reset the school accounts they manage
    resp = admin.post(f"/resetpassword/form?pk={world.users['school_a1_leader']}",
                      data={"password": "Reset#Pass77", "conf_password": "Reset#Pass77"})
    assert resp.status_code == 302
    assert not signed_in(victim) and me(client, old) == 401
    assert signed_in(admin)


# --- disabled, locked -------------------------------------------------------------------------------------

def test_a_disabled_accounts_live_session_and_token_die(app, world, as_user, client):
    victim = as_user("school_b2_clerk")
    old = token(client, "school_b2_clerk")
    with app.app_context():
        u = db.session.get(XuejiUser, world.users["school_b2_clerk"])
        u.active = False
        db.session.commit()
        version = u.session_version
        u.active = True                          # enabled again: the old session stays dead
        db.session.commit()
        assert db.session.get(XuejiUser, world.users["school_b2_clerk"]).session_version == version
    assert not signed_in(victim) and me(client, old) == 401


def test_a_locked_accounts_live_session_dies(app, world, as_user, client):
    victim = as_user("school_b1_leader")
    old = token(client, "school_b1_leader")
    attacker = app.test_client()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        login(attacker, "school_b1_leader", "Wrong#Pass1")
    with app.app_context():
        assert db.session.get(XuejiUser, world.users["school_b1_leader"]).locked_until > clock.now()
    assert not signed_in(victim) and me(client, old) == 401


# --- 全部下线 (sign out everywhere) -------------------------------------------------------------------------

def sign_out_everywhere(client, *user_ids):
    return client.post("/users/action_post", data={"action": "signout_all", "rowid": [str(u) for u in user_ids]})


def test_admin_signs_an_account_out_everywhere(app, world, as_user, client):
    victim = as_user("county_b_reviewer")
    old = token(client, "county_b_reviewer")
    bystander = as_user("county_b_clerk")
    admin = as_user("admin")
    assert sign_out_everywhere(admin, world.users["county_b_reviewer"]).status_code == 302
    assert not signed_in(victim) and me(client, old) == 401
    assert signed_in(bystander) and signed_in(admin)
    assert audit_rows(app, "signout_all") == [("admin", world.users["admin"], None, "county_b_reviewer",
                                               str(world.users["county_b_reviewer"]))]


def test_sign_out_everywhere_from_the_show_page(app, world, as_user):
    victim = as_user("school_a1_clerk")
    admin = as_user("admin")
    resp = admin.post(f"/users/action/signout_all/{world.users['school_a1_clerk']}")
    assert resp.status_code == 302
    assert not signed_in(victim)


def test_bureau_signs_out_only_the_accounts_it_manages(app, world, as_user):
    school, colleague, foreign = (as_user("school_a1_clerk"), as_user("county_a_reviewer"),
                                  as_user("school_b1_clerk"))
    bureau = as_user("county_a_clerk")
    sign_out_everywhere(bureau, world.users["school_a1_clerk"])
    assert not signed_in(school)
    page = sign_out_everywhere(bureau, world.users["county_a_reviewer"])
    assert page.status_code == 302
    assert signed_in(colleague)                  # a bureau account is not the bureau's to manage
    sign_out_everywhere(bureau, world.users["school_b1_clerk"])
    assert signed_in(foreign)                    # another county's school: out of scope
    assert signed_in(bureau)
    assert [r[3] for r in audit_rows(app, "signout_all")] == ["school_a1_clerk"]


def test_signing_oneself_out_everywhere_keeps_this_browser(app, world, as_user):
    here, there = as_user("county_b_clerk"), as_user("county_b_clerk")
    sign_out_everywhere(here, world.users["county_b_clerk"])
    assert signed_in(here) and not signed_in(there)


def test_school_staff_cannot_sign_others_out(app, world, as_user):
    victim = as_user("school_a1_leader")
    c = as_user("school_a1_clerk")
    sign_out_everywhere(c, world.users["school_a1_leader"])
    assert signed_in(victim)


# --- cookies and headers ------------------------------------------------------------------------------------

def test_session_cookie_flags(world, make_app):
    plain = make_app()
    cookie = login(plain.test_client(), "school_a1_clerk").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = make_app(SESSION_COOKIE_SECURE=True)
    cookie = login(https.test_client(), "school_a1_clerk").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


@pytest.mark.parametrize("path", ["/login/", "/student/list/", "/statistics/", "/api/v1/account/me",
                                  "/no/such/page", "/static/appbuilder/css/ab.css"])
def test_security_headers_on_every_response(app, world, as_user, path):
    resp = as_user("county_a_clerk").get(path)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


def test_pages_run_only_their_own_nonced_scripts(app, world, as_user):
    c = as_user("county_a_clerk")
    for path in ("/student/list/", "/statistics/"):
        resp = c.get(path)
        csp = resp.headers["Content-Security-Policy"]
        nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", csp).group(1)
        assert "unsafe-inline" not in csp.split("script-src", 1)[1].split(";", 1)[0]
        page = resp.get_data(as_text=True)
        scripts = re.findall(r"<script\b[^>]*>", page)
        assert scripts and all(f'nonce="{nonce}"' in s for s in scripts), scripts
    again = c.get("/student/list/").headers["Content-Security-Policy"]
    assert again != csp                             # a new nonce per response


def test_an_evidence_download_keeps_its_sandbox(app, world, as_user, client):
    from tests.test_workflow import file_change
    from tests.conftest import api_headers
    from models.requests import Request
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]
    with app.app_context():
        eid = db.session.get(Request, rid).evidence[0].id
    resp = as_user("school_a1_clerk").get(f"/request/evidence/{eid}")
    assert resp.status_code == 200
    assert resp.headers["Content-Security-Policy"].startswith("sandbox")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


# --- audit ------------------------------------------------------------------------------------------------

def test_logout_is_audited(app, world, as_user):
    c = as_user("school_a2_clerk")
    c.get("/logout/")
    assert [r[:2] for r in audit_rows(app, "logout")] == [("school_a2_clerk", world.users["school_a2_clerk"])]


def test_every_refused_sign_in_is_audited(app, world, client, make_app):
    with app.app_context():
        u = db.session.get(XuejiUser, world.users["school_b2_leader"])
        u.active = False
        db.session.commit()
    login(client, "school_b2_leader")                          # disabled
    login(client, "school_a1_clerk", "Wrong#Pass1")             # wrong password
    login(client, "nobody", "Wrong#Pass1")                      # unknown account
    rows = audit_rows(app, "login_failed")
    assert ("school_b2_leader", world.users["school_b2_leader"], "reason", "账号已停用",
            str(world.users["school_b2_leader"])) in rows
    assert [r for r in rows if r[0] == "school_a1_clerk" and r[3] is None]           # FAB's wrong password
    assert [r for r in rows if r[0] == "nobody"]
    # throttled attempts (429) are refused sign-ins too
    limited = make_app(AUTH_RATE_LIMIT="2 per minute").test_client()
    codes = [login(limited, "school_a2_clerk", "Wrong#Pass1").status_code for _ in range(3)]
    codes += [limited.post("/api/v1/security/login", json={"username": "school_a2_clerk", "password": "x",
                                                           "provider": "db"}).status_code for _ in range(3)]
    assert codes[2] == 429 and codes[5] == 429
    throttled = [r for r in audit_rows(app, "login_failed", "school_a2_clerk") if r[3] == "登录过于频繁（限流）"]
    assert len(throttled) == 2


def test_audit_log_shows_no_python_object_representations(app, world, client, as_user):
    from tests.test_workflow import decide, file_change
    from tests.conftest import api_headers
    sid = world.student_of("a1")
    rid = file_change(client, api_headers(client, "school_a1_clerk"), sid, {"name": "李改名"}).get_json()[
        "result"]["id"]
    assert decide(client, "school_a1_leader", rid).status_code == 200
    with app.app_context():
        values = db.session.execute(select(AuditEvent.entity, AuditEvent.old_value, AuditEvent.new_value)).all()
        steps = [v for e, _, v in values if e == "wf_request_step"]
    assert steps and all(re.match(r"wf_request_step#\d+ ", v) for v in steps), steps
    assert not [v for v in values if " object at 0x" in f"{v[1]} {v[2]}"]
    page = as_user("admin").get("/audit/list/?psize_AuditView=100").get_data(as_text=True)
    assert " object at 0x" not in page and "&lt;models." not in page


def test_session_version_is_not_audit_noise(app, world, as_user):
    c = as_user("school_b1_clerk")
    c.get("/logout/")
    with app.app_context():
        fields = db.session.scalars(select(AuditEvent.field).where(AuditEvent.entity == "ab_user")).all()
    assert "session_version" not in fields


def test_lockout_time_still_expires(app, world, client):
    """The version bump of a lockout does not keep the account out once the 15 minutes are over."""
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        login(client, "school_a2_leader", "Wrong#Pass1")
    clock.fix(clock.now() + timedelta(minutes=16))
    login(client, "school_a2_leader")
    assert signed_in(client)


def test_no_page_needs_inline_script(app, world, as_user):
    """Every page runs under a nonce CSP without 'unsafe-inline': the confirm dialogs and the print button live in
    static/xueji/forms.js, and the export poller carries the request's nonce."""
    from app.security import INLINE_SCRIPT_ENDPOINTS
    assert INLINE_SCRIPT_ENDPOINTS == set()
    c = as_user("school_a1_clerk")
    resp = c.get(f"/student/card/{world.student_of('a1')}")
    assert resp.status_code == 200
    csp = resp.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0] and "frame-ancestors 'none'" in csp
    nonce = csp.split("'nonce-", 1)[1].split("'", 1)[0]
    page = resp.get_data(as_text=True)
    assert "onclick=" not in page and f'nonce="{nonce}"' in page and "xueji/forms.js" in page
