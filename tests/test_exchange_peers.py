"""跨省交换: the other provinces' keys as a resource (screen, REST API, CLI), superadmin only, audited; packages
are verified against the live keys, a revoked key's packages refused."""
import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app import clock
from app.extensions import db
from models import AuditEvent, ExchangePeer, Setting, Student
from tests.conftest import api_headers

NON_ADMINS = ("county_a_clerk", "county_a_reviewer", "school_a1_clerk", "school_a1_leader")


@pytest.fixture
def peers(app, world):
    """No peers before or after; this installation's key in the test run's temp directory."""
    app.config["EXCHANGE_KEY_PATH"] = os.path.join(app.config["XUEJI_TMP"], "henan_key")
    with app.app_context():
        db.session.query(ExchangePeer).delete()
        db.session.commit()
    yield
    with app.app_context():
        db.session.query(ExchangePeer).delete()
        db.session.commit()


def _key():
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return private, base64.b64encode(raw).decode()


def _package(private, body, sender="420000"):
    """A transfer_request package as the other installation's app.exchange.seal makes it, signed with `private`."""
    from app.exchange import _canonical
    package = {"type": "transfer_request", "from": sender, "to": "410000", "created": clock.now().isoformat(),
               "body": body}
    package["signature"] = base64.b64encode(private.sign(_canonical(package))).decode()
    return json.dumps(package, ensure_ascii=False)


def _application(app, world, private, request_id):
    with app.app_context():
        s = db.session.scalar(select(Student).where(Student.school_id == world.schools["a1"]).order_by(Student.id))
        return _package(private, {"request_id": request_id, "xjh": s.xjh, "name": s.name, "to_school": "武汉一中"})


def _import(client, data):
    return client.post("/api/v1/request/import/request", headers=api_headers(client, "county_a_clerk"), data=data,
                       content_type="application/json")


def test_a_peer_is_added_used_and_revoked_through_the_api(app, world, client, peers):
    admin = api_headers(client, "admin")
    private, public = _key()
    resp = client.post("/api/v1/exchangepeer/", headers=admin, json={"province_code": "420000", "public_key": public})
    assert resp.status_code == 201, resp.get_json()
    peer = resp.get_json()["result"]
    assert (peer["province_code"], peer["name"], peer["added_by"], peer["revoked"]) == ("420000", "湖北省", "admin",
                                                                                        False)
    assert len(peer["fingerprint"].split()) == 16
    listed = client.get("/api/v1/exchangepeer/", headers=admin).get_json()["result"]
    assert [p["id"] for p in listed] == [peer["id"]]
    # used: Hubei's application verifies and becomes a 跨省转出 request
    resp = _import(client, _application(app, world, private, 7))
    assert resp.status_code == 200, resp.get_json()
    # a second live key for the same province is refused (409), so is the same key twice
    _, other = _key()
    resp = client.post("/api/v1/exchangepeer/", headers=admin, json={"province_code": "420000", "public_key": other})
    assert resp.status_code == 409 and "已登记公钥" in resp.get_json()["message"]
    # revoked: the row stays, its packages are refused with the reason
    resp = client.delete(f"/api/v1/exchangepeer/{peer['id']}", headers=admin)
    assert resp.status_code == 200 and resp.get_json()["result"]["revoked"] is True
    assert resp.get_json()["result"]["revoked_by"] == "admin"
    assert client.delete(f"/api/v1/exchangepeer/{peer['id']}", headers=admin).status_code == 409
    resp = _import(client, _application(app, world, private, 8))
    assert resp.status_code == 422 and resp.get_json()["code"] == "revoked_peer", resp.get_json()
    assert "撤销" in resp.get_json()["message"]
    # a new key for the province: packages signed with the old one are still refused, as the old key's
    resp = client.post("/api/v1/exchangepeer/", headers=admin, json={"province_code": "420000", "public_key": other})
    assert resp.status_code == 201
    resp = _import(client, _application(app, world, private, 9))
    assert resp.status_code == 422 and resp.get_json()["code"] == "revoked_peer"
    listed = client.get("/api/v1/exchangepeer/", headers=admin).get_json()["result"]
    assert [p["revoked"] for p in listed] == [False, True]
    # audited: the insert and the revocation
    with app.app_context():
        rows = db.session.execute(select(AuditEvent.action, AuditEvent.field, AuditEvent.username,
                                         AuditEvent.entity_id, AuditEvent.new_value)
                                  .where(AuditEvent.entity == "exchange_peer")).all()
        assert any(r.action == "insert" and r.username == "admin" and r.new_value.startswith("420000 湖北省")
                   for r in rows), rows
        assert any(r.action == "update" and r.field == "revoked_at" and r.username == "admin" and
                   r.entity_id == str(peer["id"]) for r in rows), rows


@pytest.mark.parametrize("body, code, words", [
    ({"province_code": "420000", "public_key": "not a key"}, "invalid_key", "公钥格式不正确"),
    ({"province_code": "420000", "public_key": base64.b64encode(b"x" * 31).decode()}, "invalid_key", "Ed25519"),
    ({"province_code": "420000", "public_key": ""}, "invalid", "请粘贴对方系统"),
    ({"province_code": "4200", "public_key": None}, "invalid", "6位省级行政区划代码"),
    ({"province_code": "420100", "public_key": None}, "invalid", "6位省级行政区划代码"),
    ({"province_code": "990000", "public_key": None}, "invalid", "不是已知的省级行政区划代码"),
])
def test_a_peer_needs_a_province_and_an_ed25519_key(app, world, client, peers, body, code, words):
    body = dict(body)
    if body["public_key"] is None:
        body["public_key"] = _key()[1]
    resp = client.post("/api/v1/exchangepeer/", headers=api_headers(client, "admin"), json=body)
    assert resp.status_code == 422 and resp.get_json()["code"] == code, resp.get_json()
    assert words in resp.get_json()["message"]
    with app.app_context():
        assert db.session.scalar(select(ExchangePeer.id)) is None


def test_the_superadmin_keeps_peers_on_the_exchange_screen(app, world, as_user, peers):
    admin = as_user("admin")
    assert "/exchangepeer/" in admin.get("/").get_data(as_text=True)           # 系统管理 → 跨省交换
    private, public = _key()
    page = admin.post("/exchangepeer/add", data={"province_code": "420000", "public_key": "abc"},
                      follow_redirects=True).get_data(as_text=True)
    assert "公钥格式不正确" in page
    resp = admin.post("/exchangepeer/add", data={"province_code": "420000", "public_key": public})
    assert resp.status_code == 302
    with app.app_context():
        peer = db.session.scalar(select(ExchangePeer))
        assert (peer.name, peer.added_by, peer.live) == ("湖北省", "admin", 1)
    page = admin.get("/exchangepeer/").get_data(as_text=True)
    assert "湖北省" in page and peer.fingerprint in page
    assert admin.post(f"/exchangepeer/revoke/{peer.id}").status_code == 302
    page = admin.get("/exchangepeer/").get_data(as_text=True)
    assert "已撤销" in page
    with app.app_context():
        peer = db.session.get(ExchangePeer, peer.id)
        assert peer.live is None and peer.revoked_at is not None and peer.revoked_by == "admin"


@pytest.mark.parametrize("username", NON_ADMINS)
def test_other_roles_have_no_way_to_peers(app, world, client, as_user, peers, username):
    with app.app_context():
        from app import exchange
        peer = exchange.add_peer(db.session, None, "420000", _key()[1])
        peer_id = peer.id
    web = as_user(username)
    assert "/exchangepeer/" not in web.get("/").get_data(as_text=True)       # no menu item
    assert web.get("/exchangepeer/").status_code == 403
    assert web.post("/exchangepeer/add", data={"province_code": "430000", "public_key": _key()[1]}).status_code == 403
    assert web.post(f"/exchangepeer/revoke/{peer_id}").status_code == 403
    headers = api_headers(client, username)
    assert client.get("/api/v1/exchangepeer/", headers=headers).status_code == 403
    assert client.get(f"/api/v1/exchangepeer/{peer_id}", headers=headers).status_code == 403
    assert client.post("/api/v1/exchangepeer/", headers=headers,
                       json={"province_code": "430000", "public_key": _key()[1]}).status_code == 403
    assert client.delete(f"/api/v1/exchangepeer/{peer_id}", headers=headers).status_code == 403
    with app.app_context():
        assert [(p.province_code, p.live) for p in db.session.scalars(select(ExchangePeer))] == [("420000", 1)]


def test_the_service_refuses_other_roles_too(app, world, peers):
    """Defence below the permission: the service functions check the role themselves."""
    from app import exchange
    from app.errors import RuleError
    from models import XuejiUser
    with app.app_context():
        clerk = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "county_a_clerk"))
        with pytest.raises(RuleError) as refused:
            exchange.add_peer(db.session, clerk, "420000", _key()[1])
        assert refused.value.status == 403


def test_one_live_peer_per_province_is_held_by_the_database(app, world, peers):
    from sqlalchemy.exc import IntegrityError
    with app.app_context():
        for _ in range(2):
            db.session.add(ExchangePeer(province_code="420000", name="湖北省", public_key=_key()[1],
                                        fingerprint="x", live=1, added_by="t"))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        for live in (None, None, 1):           # revoked rows never collide
            db.session.add(ExchangePeer(province_code="420000", name="湖北省", public_key=_key()[1],
                                        fingerprint="x", live=live, added_by="t"))
        db.session.commit()


def test_the_cli_adds_lists_and_revokes(app, world, peers):
    runner = app.test_cli_runner()
    _, public = _key()
    result = runner.invoke(args=["xueji", "exchange-peer", "add", "420000", public])
    assert result.exit_code == 0, result.output
    assert "湖北省" in result.output and "命令行" in result.output
    result = runner.invoke(args=["xueji", "exchange-peer", "add", "420000", "bad"])
    assert result.exit_code != 0 and "公钥格式不正确" in result.output
    with app.app_context():
        peer_id = db.session.scalar(select(ExchangePeer.id))
    assert runner.invoke(args=["xueji", "exchange-peer", "revoke", str(peer_id)]).exit_code == 0
    result = runner.invoke(args=["xueji", "exchange-peer", "list"])
    assert result.exit_code == 0 and "已撤销" in result.output


def test_settings_no_longer_hold_peers(app, world, client, peers):
    """The old setting exchange.peer.<code> is not a way in: only ExchangePeer rows verify packages."""
    private, public = _key()
    with app.app_context():
        db.session.add(Setting(key="exchange.peer.420000", region_code=None, value=public))
        db.session.commit()
    resp = _import(client, _application(app, world, private, 5))
    assert resp.status_code == 422 and resp.get_json()["code"] == "unknown_peer"


def test_the_migration_turns_peer_settings_into_peers(app, tmp_path):
    """Upgrading an installation that held keys as settings: they become live peers, the settings go."""
    from flask_migrate import downgrade, upgrade
    from app import create_app
    from tests.conftest import app_config, drop_everything
    url = f"sqlite:///{tmp_path}/old.db"
    drop_everything(url)
    old = create_app(app_config(url, str(tmp_path)))
    _, public = _key()
    with old.app_context():
        directory = old.extensions["migrate"].directory
        upgrade(directory=directory, revision="d5b8c1e9a7f2")
        with db.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO setting (key, region_code, value) VALUES (?, NULL, ?)",
                                 ("exchange.peer.420000", public))
            conn.exec_driver_sql("INSERT INTO setting (key, region_code, value) VALUES (?, NULL, ?)",
                                 ("exchange.peer.430000", "garbage"))
        upgrade(directory=directory, revision="e7a3c9f1b2d4")
        with db.engine.connect() as conn:
            peers = conn.exec_driver_sql("SELECT province_code, name, public_key, live, added_by "
                                         "FROM exchange_peer").all()
            keys = [k for (k,) in conn.exec_driver_sql("SELECT key FROM setting")]
        assert peers == [("420000", "湖北省", public, 1, "migration")]
        assert keys == ["exchange.peer.430000"]          # not a key: left for the superadmin to see
        downgrade(directory=directory, revision="d5b8c1e9a7f2")
        with db.engine.connect() as conn:
            keys = sorted(k for (k,) in conn.exec_driver_sql("SELECT key FROM setting"))
        assert keys == ["exchange.peer.420000", "exchange.peer.430000"]
        db.session.remove()
        db.engine.dispose()
