"""Password hashing (issue 17): argon2id on every path that sets a password, with the configured parameters
(XUEJI_ARGON2, default OWASP's minimum); FAB's older werkzeug hashes still sign in and are upgraded to argon2id at
the next successful sign-in (web form, REST login, the API password change's old password), never at a failed one;
a failed sign-in costs one argon2 verification whether or not the account exists."""
from datetime import timedelta

import argon2
import pytest
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from app import clock
from app.extensions import db
from app.passwords import ARGON2_DEFAULTS, argon2_parameters, hash_password, verify_password
from app.roles import ROLE_SCHOOL_REGISTRAR
from models import XuejiUser
from tests.conftest import DEMO_PASSWORD, api_login, login

WRONG = "Wrong#Pass1"
# What FAB 5.3 writes today (werkzeug's generate_password_hash): its scrypt default, and pbkdf2 (FAB's default
# before werkzeug 3; the iteration count is lowered here only for speed, the format and the code path are the same).
LEGACY = {"scrypt": "scrypt", "pbkdf2": "pbkdf2:sha256:1000"}


def stored(app, username):
    with app.app_context():
        return db.session.scalar(select(XuejiUser.password).where(XuejiUser.username == username))


def account(app, username):
    with app.app_context():
        return db.session.scalar(select(XuejiUser).where(XuejiUser.username == username))


def set_stored(app, username, value):
    """Put a hash in place the way an older release left it (no ORM: not a password change)."""
    with app.app_context():
        db.session.execute(update(XuejiUser).where(XuejiUser.username == username).values(password=value))
        db.session.commit()


def expected_parameters(app):
    with app.app_context():
        return argon2_parameters()


def assert_current_argon2id(app, value):
    assert value.startswith("$argon2id$"), value[:20]
    params = argon2.extract_parameters(value)
    want = expected_parameters(app)
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (
        argon2.Type.ID, want["time_cost"], want["memory_cost"], want["parallelism"])


def web_signs_in(app, username, password) -> bool:
    resp = login(app.test_client(), username, password)
    return resp.status_code == 302 and "/login" not in resp.headers["Location"]


def api_signs_in(app, username, password) -> bool:
    resp = api_login(app.test_client(), username, password)
    assert resp.status_code in (200, 401), resp.status_code
    return resp.status_code == 200


SIGN_IN = {"web": web_signs_in, "api": api_signs_in}


# --- new hashes -------------------------------------------------------------------------------------------------

def test_new_accounts_are_argon2id_with_the_configured_parameters(app, world, monkeypatch):
    # the demo's accounts go through the security manager's add_user
    for username in ("admin", "county_a_clerk", "school_a1_clerk"):
        assert_current_argon2id(app, stored(app, username))
    # other parameters in the configuration: the next account carries them
    monkeypatch.setitem(app.config, "XUEJI_ARGON2", {"time_cost": 3, "memory_cost": 64, "parallelism": 2})
    with app.app_context():
        sm = app.appbuilder.sm
        sm.add_user("pw_new", "三", "张", "pw_new@x.cn", role=sm.find_role(ROLE_SCHOOL_REGISTRAR),
                    password="Init#Pass99", school_id=world.schools["a1"])
    params = argon2.extract_parameters(stored(app, "pw_new"))
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (argon2.Type.ID, 3, 64, 2)


def test_without_configuration_the_owasp_minimum_applies(app, world, monkeypatch):
    monkeypatch.delitem(app.config, "XUEJI_ARGON2", raising=False)
    with app.app_context():
        value = hash_password("Init#Pass99")
        assert verify_password(value, "Init#Pass99") == (True, False)
    assert ARGON2_DEFAULTS == {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}
    params = argon2.extract_parameters(value)
    assert (params.type, params.time_cost, params.memory_cost, params.parallelism) == (argon2.Type.ID, 2, 19456, 1)


def test_cli_create_superadmin_writes_argon2id(app, world):
    result = app.test_cli_runner().invoke(args=["xueji", "create-superadmin", "--username", "root2",
                                                "--email", "root2@x.cn", "--password", "Root#Pass99"])
    assert result.exit_code == 0, result.output
    assert_current_argon2id(app, stored(app, "root2"))
    assert web_signs_in(app, "root2", "Root#Pass99")


def test_an_account_added_on_the_user_screen_is_argon2id(app, world, as_user):
    from tests.test_accounts import add_form, role_id
    c = as_user("county_a_clerk")
    resp = c.post("/users/add", data=add_form("a1_screen", world.schools["a1"],
                                              [role_id(app, ROLE_SCHOOL_REGISTRAR)]))
    assert resp.status_code == 302
    assert_current_argon2id(app, stored(app, "a1_screen"))
    assert web_signs_in(app, "a1_screen", "Init#Pass99")


# --- password changes -------------------------------------------------------------------------------------------

def test_own_password_change_in_the_browser_writes_argon2id(app, world, as_user):
    c = as_user("school_a2_leader")
    set_stored(app, "school_a2_leader", generate_password_hash(DEMO_PASSWORD, method=LEGACY["pbkdf2"]))
    c.post("/resetmypassword/form", data={"password": "Changed#Pass7", "conf_password": "Changed#Pass7"})
    value = stored(app, "school_a2_leader")
    assert_current_argon2id(app, value)
    with app.app_context():
        assert verify_password(value, "Changed#Pass7")[0]
    assert web_signs_in(app, "school_a2_leader", "Changed#Pass7")


def test_reset_by_an_administrator_writes_argon2id(app, world, as_user):
    admin = as_user("county_a_clerk")
    resp = admin.post(f"/resetpassword/form?pk={world.users['school_a1_leader']}",
                      data={"password": "Reset#Pass77", "conf_password": "Reset#Pass77"})
    assert resp.status_code == 302
    assert_current_argon2id(app, stored(app, "school_a1_leader"))
    assert api_signs_in(app, "school_a1_leader", "Reset#Pass77")


def test_api_password_change_checks_an_old_hash_and_writes_argon2id(app, world, client):
    token = api_login(client, "school_b1_clerk").get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    old = generate_password_hash(DEMO_PASSWORD, method=LEGACY["scrypt"])
    set_stored(app, "school_b1_clerk", old)            # the old password is checked against a werkzeug hash
    wrong = client.post("/api/v1/account/password", headers=headers,
                        json={"old_password": WRONG, "new_password": "Changed#Pass7"})
    assert wrong.status_code == 422 and stored(app, "school_b1_clerk") == old
    ok = client.post("/api/v1/account/password", headers=headers,
                     json={"old_password": DEMO_PASSWORD, "new_password": "Changed#Pass7"})
    assert ok.status_code == 200, ok.get_json()
    assert_current_argon2id(app, stored(app, "school_b1_clerk"))
    assert not api_signs_in(app, "school_b1_clerk", DEMO_PASSWORD)
    # and again, the old password now checked against the argon2id hash
    token = api_login(client, "school_b1_clerk", "Changed#Pass7").get_json()["access_token"]
    again = client.post("/api/v1/account/password", headers={"Authorization": f"Bearer {token}"},
                        json={"old_password": "Changed#Pass7", "new_password": "Second#Pass8"})
    assert again.status_code == 200, again.get_json()
    assert_current_argon2id(app, stored(app, "school_b1_clerk"))
    assert api_signs_in(app, "school_b1_clerk", "Second#Pass8")


# --- older hashes: upgraded at the next successful sign-in ------------------------------------------------------

@pytest.mark.parametrize("kind", ["scrypt", "pbkdf2"])
@pytest.mark.parametrize("via", ["web", "api"])
def test_an_old_hash_signs_in_and_is_upgraded(app, world, via, kind):
    username = "school_a1_clerk"
    old = generate_password_hash(DEMO_PASSWORD, method=LEGACY[kind])
    assert old.startswith(kind + ":")
    set_stored(app, username, old)
    version = account(app, username).session_version

    assert SIGN_IN[via](app, username, DEMO_PASSWORD)
    upgraded = stored(app, username)
    assert_current_argon2id(app, upgraded)
    u = account(app, username)
    assert u.session_version == version                 # a new hash of the same password signs nobody out
    assert u.login_count == 1 and u.fail_login_count == 0

    for sign_in in (web_signs_in, api_signs_in):         # the same password, now under argon2id
        assert sign_in(app, username, DEMO_PASSWORD)
        assert not sign_in(app, username, WRONG)
    assert stored(app, username) == upgraded            # upgraded once, not at every sign-in


@pytest.mark.parametrize("via", ["web", "api"])
def test_argon2_with_other_parameters_is_renewed_at_sign_in(app, world, monkeypatch, via):
    current = expected_parameters(app)
    other = {**current, "memory_cost": current["memory_cost"] + 8}
    monkeypatch.setitem(app.config, "XUEJI_ARGON2", other)
    with app.app_context():
        set_stored(app, "county_b_clerk", hash_password(DEMO_PASSWORD))
    monkeypatch.setitem(app.config, "XUEJI_ARGON2", current)
    assert argon2.extract_parameters(stored(app, "county_b_clerk")).memory_cost == other["memory_cost"]
    assert SIGN_IN[via](app, "county_b_clerk", DEMO_PASSWORD)
    assert_current_argon2id(app, stored(app, "county_b_clerk"))


@pytest.mark.parametrize("kind", ["scrypt", "pbkdf2"])
@pytest.mark.parametrize("via", ["web", "api"])
def test_a_failed_sign_in_does_not_rehash(app, world, via, kind):
    username = "school_b2_clerk"
    old = generate_password_hash(DEMO_PASSWORD, method=LEGACY[kind])
    set_stored(app, username, old)
    assert not SIGN_IN[via](app, username, WRONG)
    assert stored(app, username) == old
    assert account(app, username).fail_login_count == 1
    # a locked account's right password does not upgrade it either
    with app.app_context():
        db.session.execute(update(XuejiUser).where(XuejiUser.username == username)
                           .values(locked_until=clock.now() + timedelta(hours=1)))
        db.session.commit()
    assert not SIGN_IN[via](app, username, DEMO_PASSWORD)
    assert stored(app, username) == old


# --- the cost of a failure does not tell whether the account exists ------------------------------------------------

@pytest.fixture
def argon2_verifications(monkeypatch):
    """Counts argon2 verifications (the cost of a sign-in) in this test."""
    calls = []
    real = argon2.PasswordHasher.verify

    def counting(self, hash, password):
        calls.append(hash)
        return real(self, hash, password)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting)
    return calls


@pytest.mark.parametrize("case", ["wrong_password", "no_such_account", "disabled", "locked", "no_usable_hash"])
@pytest.mark.parametrize("via", ["web", "api"])
def test_every_failed_sign_in_costs_one_argon2_verification(app, world, argon2_verifications, via, case):
    username, password = "school_a2_clerk", WRONG
    if case == "no_such_account":
        username = "nobody_here"
    elif case == "disabled":
        password = DEMO_PASSWORD
        with app.app_context():
            db.session.execute(update(XuejiUser).where(XuejiUser.username == username).values(active=False))
            db.session.commit()
    elif case == "locked":
        password = DEMO_PASSWORD
        with app.app_context():
            db.session.execute(update(XuejiUser).where(XuejiUser.username == username)
                               .values(locked_until=clock.now() + timedelta(hours=1)))
            db.session.commit()
    elif case == "no_usable_hash":
        set_stored(app, username, "")
    argon2_verifications.clear()
    assert not SIGN_IN[via](app, username, password)
    assert len(argon2_verifications) == 1
    argon2_verifications.clear()
    assert SIGN_IN[via](app, "school_b1_leader", DEMO_PASSWORD)     # and so does a success
    assert len(argon2_verifications) == 1


@pytest.mark.parametrize("case", ["existing", "no_such_account", "locked"])
def test_an_empty_password_is_refused_without_hashing_for_every_account(app, world, argon2_verifications, case):
    username = {"existing": "school_a2_clerk", "no_such_account": "nobody_here", "locked": "school_a2_clerk"}[case]
    if case == "locked":
        with app.app_context():
            db.session.execute(update(XuejiUser).where(XuejiUser.username == username)
                               .values(locked_until=clock.now() + timedelta(hours=1)))
            db.session.commit()
    argon2_verifications.clear()
    for password in ("", "\x00"):        # FAB's "empty" passwords (the request checks stop them earlier still)
        with app.test_request_context("/login/", method="POST"):
            assert app.appbuilder.sm.auth_user_db(username, password) is None
    assert argon2_verifications == []


def test_verify_password_refuses_what_it_cannot_check(app):
    with app.app_context():
        good = hash_password("Init#Pass99")
        assert verify_password(good, "Init#Pass99") == (True, False)
        assert verify_password(good, "Init#Pass98") == (False, False)
        for password in ("", "\x00", None, 12345678, "\ud800bad"):
            assert verify_password(good, password) == (False, False)
        for value in (None, "", "plain", "$argon2id$garbage", "md5:x$y$z", "pbkdf2:nope$salt$hash"):
            assert verify_password(value, "Init#Pass99") == (False, False)
        legacy = generate_password_hash("Init#Pass99", method=LEGACY["pbkdf2"])
        assert verify_password(legacy, "Init#Pass99") == (True, True)
        assert verify_password(legacy, "Init#Pass98") == (False, False)
