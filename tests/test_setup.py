"""Set-up: migrations own the schema, `xueji init` is idempotent and keeps data, the demo data is valid."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from stdnum.cn import ric

from app import create_app
from app.extensions import db
from models import Region, School, SchoolClass, Student, XuejiUser
from tests.conftest import DEMO_PASSWORD, api_login


def test_autogenerate_after_upgrade_is_empty(app):
    """The migrations create exactly what the models declare (FAB's ab_* tables included)."""
    with app.app_context():
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            assert compare_metadata(ctx, db.metadata) == []


def test_downgrade_and_upgrade_round_trip(tmp_path):
    from flask_migrate import downgrade, upgrade
    url = f"sqlite:///{tmp_path}/roundtrip.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    with app.app_context():
        directory = app.extensions["migrate"].directory
        upgrade(directory=directory)
        downgrade(directory=directory, revision="base")
        assert db.inspect(db.engine).get_table_names() == ["alembic_version"]
        upgrade(directory=directory)
        assert "student" in db.inspect(db.engine).get_table_names()


def test_init_loads_demo_once_and_keeps_data(tmp_path):
    url = f"sqlite:///{tmp_path}/run.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True,
                      "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
                      "XUEJI_ARGON2": {"time_cost": 1, "memory_cost": 8, "parallelism": 1}})
    runner = app.test_cli_runner()
    first = runner.invoke(args=["xueji", "init", "--demo-if-empty"])
    assert first.exit_code == 0, first.output
    with app.app_context():
        students = db.session.scalar(select(func.count()).select_from(Student))
        db.session.add(Region(code="410103", name="二七区", level="county", parent_code="410100"))
        db.session.commit()
    second = runner.invoke(args=["xueji", "init", "--demo-if-empty"])
    assert second.exit_code == 0, second.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Student)) == students
        assert db.session.scalar(select(Region).where(Region.code == "410103")) is not None
    again = runner.invoke(args=["xueji", "demo"])
    assert again.exit_code == 1
    with app.app_context():       # the full demo: problems of every kind, classes near their cap, history
        from models import Enrollment, Guardian
        from models.requests import Problem
        kinds = set(db.session.scalars(select(Problem.kind).where(Problem.current == 1)))
        assert kinds == {"invalid_id", "id_mismatch", "dup_id", "dup_identity"}
        sizes = db.session.execute(select(func.count()).select_from(Student).where(Student.class_id.is_not(None))
                                   .group_by(Student.class_id)).scalars().all()
        assert max(sizes) == 49 and students >= 1500
        assert db.session.scalar(select(func.count()).select_from(Enrollment)) == students
        assert db.session.scalar(select(func.count()).select_from(Guardian)) == 2 * students


def test_init_creates_superadmin_from_environment_and_refuses_weak(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/prod.db"
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "TESTING": True})
    runner = app.test_cli_runner()
    monkeypatch.setenv("XUEJI_ADMIN_USERNAME", "root")
    monkeypatch.setenv("XUEJI_ADMIN_PASSWORD", "weakweak")
    result = runner.invoke(args=["xueji", "init"])
    assert result.exit_code != 0 and "密码" in result.output
    monkeypatch.setenv("XUEJI_ADMIN_PASSWORD", "Prod#Admin2026")
    result = runner.invoke(args=["xueji", "init"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(School)) == 0      # no demo data
        root = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "root"))
        assert [r.name for r in root.roles] == ["系统管理员"]
    assert api_login(app.test_client(), "root", "Prod#Admin2026").status_code == 200


def test_demo_data_is_valid(app, world):
    with app.app_context():
        rows = db.session.execute(select(Student.xjh, Student.id_number, Student.sex, Student.birth_date,
                                         Student.status, Student.class_id)).all()
        assert rows
        for xjh, number, sex, born, status, class_id in rows:
            ric.validate(number)
            assert xjh == "G" + number and len(xjh) == 19
            assert ric.get_birth_date(number) == born
            assert (int(number[16]) % 2 == 1) == (sex == "1")
            assert (class_id is None) == (status == "毕业")
        assert len({r.id_number for r in rows}) == len(rows)
        assert db.session.scalar(select(func.count()).select_from(SchoolClass)) == 4 * 3 * 2
        counties = dict(db.session.execute(select(School.code, School.county_code)).all())
        assert sorted(set(counties.values())) == ["410102", "410105"]


@pytest.mark.parametrize("username", [
    "admin", "county_a_clerk", "county_a_reviewer", "county_b_clerk", "county_b_reviewer",
    "school_a1_clerk", "school_a1_leader", "school_a2_clerk", "school_a2_leader",
    "school_b1_clerk", "school_b1_leader", "school_b2_clerk", "school_b2_leader"])
def test_demo_accounts_sign_in_without_forced_change(app, world, username):
    c = app.test_client()
    resp = api_login(c, username, DEMO_PASSWORD)
    assert resp.status_code == 200
    h = {"Authorization": f"Bearer {resp.get_json()['access_token']}"}
    assert c.get("/api/v1/account/me", headers=h).get_json()["result"]["must_change_password"] is False


def test_roles_are_synced_from_code(app):
    from app.roles import ROLE_PERMISSIONS
    with app.app_context():
        sm = app.appbuilder.sm
        for name, pairs in ROLE_PERMISSIONS.items():
            role = sm.find_role(name)
            got = {(pv.permission.name, pv.view_menu.name) for pv in role.permissions}
            assert got == set(pairs), name
