"""`flask --app run xueji …`: set-up and operations commands.

    init [--demo-if-empty]   migrate the database, sync permissions and roles, create the superadmin from
                             XUEJI_ADMIN_USERNAME / XUEJI_ADMIN_PASSWORD / XUEJI_ADMIN_EMAIL (weak ones refused)
    demo                     load the demo data into an empty database
    create-superadmin        create (or reset) a superadmin account interactively
    worker [--burst] [--simple]  run background jobs (Excel exports) from XUEJI_QUEUE_URL's queue (app/jobs.py)
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
    # "heads": branches of work in progress migrate side by side until a merge revision joins them
    upgrade(directory=current_app.extensions["migrate"].directory, revision="heads")
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


@xueji.command("worker")
@click.option("--burst", is_flag=True, help="run the jobs queued now, then exit")
@click.option("--simple", is_flag=True, help="run jobs in this process instead of a forked one per job")
@with_appcontext
def worker(burst, simple):
    """Run queued background jobs (Excel exports). One job at a time: start N workers for N at once. SIGTERM lets
    the running job finish; a second one aborts it (it is retried)."""
    from app import jobs
    if not jobs.configured():
        raise click.ClickException("未设置 XUEJI_QUEUE_URL：后台任务在 Web 进程的线程中运行，无需 worker")
    jobs.work(burst=burst, simple=simple)


# --- imports from the command line: the same checks as the web pages -----------------------------------------

def _school_by_code(code):
    from models import School
    school = db.session.query(School).filter_by(code=code).one_or_none()
    if school is None:
        raise click.ClickException(f"学校标识码 {code} 不存在")
    return school


def _report(rows, issues, as_json):
    import json
    if as_json:
        for i in issues:
            click.echo(json.dumps({"row": i.row, "column": i.column, "code": i.code, "message": i.message},
                                  ensure_ascii=False))
    else:
        for i in issues:
            click.echo(i.message)
        click.echo(f"共{len(rows)}行，{len({i.row for i in issues})}行有问题")


def _read(path, columns):
    from app import spreadsheets
    with open(path, "rb") as f:
        data = f.read(spreadsheets.MAX_BYTES + 1)
    return data, *spreadsheets.read_table(data, os.path.basename(path), columns)


def _report_admissions(checked, as_json):
    """Every problem of every row, then in each row the cells accepted after normalising (level "notice"; they do
    not make the exit status 1). JSON: one object per line with row, column, code, message and level."""
    import json
    by_row = checked.by_row()
    if as_json:
        for number in sorted(by_row):
            for i in by_row[number]:
                click.echo(json.dumps({"row": i.row, "column": i.column, "code": i.code, "message": i.message,
                                       "level": i.level}, ensure_ascii=False))
        return
    for number in sorted(by_row):
        for i in by_row[number]:
            click.echo(i.message if i.level == "error" else f"提示：{i.message}")
    click.echo(f"共{len(checked.rows)}行，{len(checked.bad_rows)}行有问题"
               + (f"，{len(checked.notices)}个单元格已自动转换（见“提示”）" if checked.notices else ""))


@xueji.command("import-admissions")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--school", "school_code", required=True, help="学校标识码")
@click.option("--dry-run", is_flag=True, help="check only, write nothing")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per problem")
@with_appcontext
def import_admissions(path, school_code, dry_run, as_json):
    """自主招生 from a template file. Exit 0 all rows valid, 1 some invalid, 2 file refused."""
    from app import admissions
    school = _school_by_code(school_code)
    try:
        data, rows, issues = _read(path, admissions.COLUMNS)
        checked = admissions.check_admissions(db.session, school,
                                              admissions.admission_year(db.session, school.county_code), rows, issues)
        _report_admissions(checked, as_json)
        if not dry_run and checked.valid:
            from models import XuejiUser
            from app.roles import ROLE_SCHOOL_REGISTRAR
            actor = next((u for u in db.session.query(XuejiUser).filter_by(school_id=school.id)
                          if ROLE_SCHOOL_REGISTRAR in {r.name for r in u.roles}), None)
            if actor is None:
                raise RuleError("该校没有学籍管理员账号，无法提交", code="no_registrar")
            batch = admissions.receive(db.session, data, os.path.basename(path), school,
                                       admissions.admission_year(db.session, school.county_code), actor)
            n, conflicts = admissions.commit_batch(db.session, batch, actor)
            click.echo(f"已提交{n}名学生（重复招生{conflicts}人），等待区县教育局审核", err=as_json)
    except RuleError as exc:
        db.session.rollback()
        click.echo(exc.message, err=True)
        sys.exit(2)
    sys.exit(1 if checked.bad_rows else 0)


@xueji.command("assign-classes")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--school", "school_code", required=True, help="学校标识码")
@click.option("--dry-run", is_flag=True, help="check only, write nothing")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per problem")
@with_appcontext
def assign_classes(path, school_code, dry_run, as_json):
    """分班 from a template file. Exit 0 all rows valid, 1 some invalid, 2 file refused (or a class overfilled)."""
    from app import placement
    school = _school_by_code(school_code)
    try:
        from app import spreadsheets
        with open(path, "rb") as f:
            data = f.read(spreadsheets.MAX_BYTES + 1)
        rows, issues, n = placement.place_from_file(db.session, None, school.id, data, os.path.basename(path),
                                                    dry_run=dry_run)
    except RuleError as exc:
        click.echo(exc.message, err=True)
        sys.exit(2)
    _report(rows, issues, as_json)
    if issues:
        sys.exit(1)
    if not dry_run:
        click.echo(f"已为{n}名学生分班", err=as_json)
    sys.exit(0)


@xueji.command("import-primary-graduates")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--county", "county_code", required=True, help="区县行政区划代码（6位）")
@click.option("--year", type=int, default=None, help="毕业年份（默认：本区县本学年招收的初一新生的毕业年份）")
@click.option("--dry-run", is_flag=True, help="check only, write nothing")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per problem")
@with_appcontext
def import_primary_graduates(path, county_code, year, dry_run, as_json):
    """小学毕业生名单 (小升初). Exit 0 all rows valid, 1 some invalid, 2 file refused. Valid rows are imported
    unless --dry-run; a re-import updates by 学籍号."""
    from app import rosters
    try:
        rosters.county_of(db.session, county_code)
        year = year or rosters.default_year(db.session, county_code)
        data, rows, issues = _read(path, rosters.COLUMNS)
        checked = rosters.check_roster(db.session, county_code, year, rows, issues)
        _report(rows, checked.issues, as_json)
        if not dry_run and checked.graduates:
            batch = rosters.receive(db.session, None, data, os.path.basename(path), county_code, year)
            created, updated = rosters.import_batch(db.session, None, batch)
            click.echo(f"已导入{year}年小学毕业生：新增{created}人，更新{updated}人", err=as_json)
    except RuleError as exc:
        db.session.rollback()
        click.echo(exc.message, err=True)
        sys.exit(2)
    sys.exit(1 if checked.bad_rows else 0)


# --- statistics snapshot (app/statistics.py) ---------------------------------------------------------------

@xueji.command("refresh-statistics")
@with_appcontext
def refresh_statistics():
    """刷新统计快照: the numbers province and city bureaus see on 学籍统计, in one transaction (the page shows the
    snapshot's 数据截至 time). Run it from cron, e.g. nightly: 0 2 * * * … flask --app run xueji refresh-statistics"""
    from app import statistics
    try:
        run = statistics.refresh(db.session, None)
    except RuleError as exc:
        click.echo(exc.message, err=True)
        sys.exit(2)
    click.echo(f"统计快照已刷新：数据截至 {run.as_of:%Y-%m-%d %H:%M}，在校生{run.students}人，{run.groups}行，"
               f"用时{run.millis / 1000:.1f}秒")
