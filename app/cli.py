"""`flask --app run xueji …`: set-up and operations commands.

    init [--demo-if-empty]   migrate the database, sync permissions and roles, create the superadmin from
                             XUEJI_ADMIN_USERNAME / XUEJI_ADMIN_PASSWORD / XUEJI_ADMIN_EMAIL (weak ones refused)
    demo                     load the demo data into an empty database
    create-superadmin        create (or reset) a superadmin account interactively
"""
import os
import sys

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade

from app.errors import RuleError
from app.extensions import db


@click.group("xueji")
def xueji():
    """学籍 system set-up and operations."""


def sync_security(appbuilder) -> None:
    """Permissions of every registered view and menu, then the roles of app.roles, in one go."""
    from app.roles import ROLE_ADMIN, ROLE_PUBLIC, sync_roles
    appbuilder.sm.add_role(ROLE_ADMIN)
    appbuilder.sm.add_role(ROLE_PUBLIC)
    appbuilder.add_permissions(update_perms=True)
    sync_roles(appbuilder)


def sync_reference_data() -> None:
    """National code tables and default approval chains: insert what is missing, keep local changes."""
    from app.codes import sync_defaults
    from app.workflow import sync_chains
    sync_defaults(db.session)
    sync_chains(db.session)
    db.session.commit()


def prepare_database(load_demo_if_empty: bool = False) -> None:
    upgrade(directory=current_app.extensions["migrate"].directory)
    appbuilder = current_app.appbuilder
    sync_security(appbuilder)
    sync_reference_data()
    from app.demo import has_data, load_demo
    if load_demo_if_empty and not has_data(db.session):
        counts = load_demo(appbuilder)
        click.echo(f"演示数据已载入: {counts}")


@xueji.command("init")
@click.option("--demo-if-empty", is_flag=True, help="load the demo data when the database holds no school")
@with_appcontext
def init(demo_if_empty):
    """Migrate, sync roles and permissions, create the superadmin from the environment."""
    prepare_database(demo_if_empty)
    username = os.environ.get("XUEJI_ADMIN_USERNAME")
    if username:
        _create_superadmin(username, os.environ.get("XUEJI_ADMIN_PASSWORD", ""),
                           os.environ.get("XUEJI_ADMIN_EMAIL", f"{username}@localhost"))
    click.echo("数据库已就绪 (database ready)")


@xueji.command("demo")
@with_appcontext
def demo():
    """Load the demo data (河南省郑州市, four schools, demo accounts) into an empty database."""
    from app.demo import has_data, load_demo
    prepare_database(False)
    if has_data(db.session):
        click.echo("数据库中已有学校数据，未载入演示数据 (database not empty)", err=True)
        sys.exit(1)
    click.echo(f"演示数据已载入: {load_demo(current_app.appbuilder)}")


@xueji.command("create-superadmin")
@click.option("--username", prompt=True)
@click.option("--email", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@with_appcontext
def create_superadmin(username, email, password):
    """Create a 系统管理员 account (password policy applies; the first login forces a change)."""
    _create_superadmin(username, password, email)


def _create_superadmin(username, password, email):
    from app.roles import ROLE_ADMIN
    sm = current_app.appbuilder.sm
    if sm.find_user(username=username):
        click.echo(f"账号 {username} 已存在，未修改")
        return
    try:
        sm.add_user(username, "管理员", "系统", email, role=sm.find_role(ROLE_ADMIN), password=password,
                    must_change_password=False)
    except RuleError as exc:
        db.session.rollback()
        raise click.ClickException(exc.message)
    click.echo(f"已创建系统管理员 {username}")
