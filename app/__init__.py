"""Application factory (the flaskr pattern): create_app() builds a complete Xueji app.

AppBuilder is created per app (a module-level one cannot serve a second app: FAB5-NOTES §7).
"""
import logging
import os

from flask import Flask, g, redirect, render_template, request, session, url_for
from flask_appbuilder import AppBuilder
from werkzeug.exceptions import HTTPException

from app.errors import json_error
from app.i18n import _, _l
from app import replicas
from app.extensions import csrf, db, migrate

log = logging.getLogger(__name__)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def create_app(overrides: dict | None = None) -> Flask:
    import models  # noqa: F401  (registers every table on FAB's metadata)
    # rules and request kinds register themselves on import
    from app import (admissions, classes, exchange, graduation, keydata, problems, rosters,  # noqa: F401
                     schools, statuschange, students, transfers)
    from app.passwords import validate_password
    from config import Config
    from views import register_views
    from views.admin import HomeView

    app = Flask(__name__, instance_path=os.path.join(ROOT, "instance"),
                template_folder=os.path.join(ROOT, "views", "templates"))
    app.config.from_object(Config)
    if overrides:
        app.config.update(overrides)
    app.config["FAB_PASSWORD_COMPLEXITY_VALIDATOR"] = validate_password
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("mysql"):
        # Counts taken after a row lock (class seats, admission plans) must see rows committed meanwhile, as
        # on PostgreSQL; InnoDB's default REPEATABLE READ would read them from an older snapshot.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
                                                   "isolation_level": "READ COMMITTED"}
    if app.config.get("PROXY_FIX_X_FOR"):
        from werkzeug.middleware.proxy_fix import ProxyFix
        hops = int(app.config["PROXY_FIX_X_FOR"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", "translations")
    os.makedirs(app.config["UPLOAD_FOLDER"], exist_ok=True)
    from app import filestore, uploads
    uploads.clean_scratch(app)          # a killed worker's scratch files (names, ID numbers) do not outlive it
    filestore.kind(app)                 # an unknown XUEJI_FILE_STORE stops the start, not the first upload

    db.init_app(app)
    replicas.init_app(app, db)  # read replicas, only when DATABASE_REPLICA_URLS is set (before any session exists)
    csrf.init_app(app)          # before AppBuilder: FAB exempts its API blueprints only if csrf exists
    migrate.init_app(app, db, directory=os.path.join(ROOT, "migrations"))

    _install_session_rules()
    with app.app_context():
        appbuilder = AppBuilder(indexview=HomeView)
        appbuilder.init_app(app, db.session)
        register_views(appbuilder)
        from app.cli import xueji
        app.cli.add_command(xueji)

    _install_request_hooks(app)
    _install_error_handlers(app)
    return app


def _install_session_rules() -> None:
    """Flush-time rules on the (process-wide) session factory, once however many apps are built.
    Order: scope first (an out-of-scope write is a 404, whatever else is wrong), then account and model
    rules, and the audit writer last, so it records only what passed."""
    from app import accounts, audit, codes, problems, rules, scoping, security, uploads
    if getattr(db, "_xueji_rules_installed", False):
        return
    for install in (scoping.install, accounts.install, rules.install, audit.install, problems.install,
                    codes.install, uploads.install, security.install):
        install(db.session)
    db._xueji_rules_installed = True


# --- per-request policy ----------------------------------------------------------------------------

FREE_ENDPOINTS = {"XuejiResetMyPasswordView.this_form_get", "XuejiResetMyPasswordView.this_form_post",
                  "XuejiAuthDBView.logout", "XuejiAuthDBView.login", "static", "appbuilder.static",
                  "Babel.index", "LocaleView.index"}


def _install_request_hooks(app: Flask) -> None:
    @app.before_request
    def sliding_session():
        session.permanent = True            # idle timeout: PERMANENT_SESSION_LIFETIME after the last request

    @app.before_request
    def force_password_change():
        """First login and passwords older than 90 days: change it before anything else (web and API)."""
        user = g.get("user")
        if request.path.startswith("/api/"):
            return None                     # JWT users are resolved later; see the API check below
        if user is None or not user.is_authenticated or request.endpoint in FREE_ENDPOINTS:
            return None
        if app.appbuilder.sm.password_expired(user):
            from flask import flash
            flash(_("首次登录或密码已超过90天未修改，请先修改密码"), "warning")
            return redirect(url_for("XuejiResetMyPasswordView.this_form_get"))
        return None


    from app import security
    app.jinja_env.globals["csp_nonce"] = security.csp_nonce     # FAB's baselib.get_nonce() prints it
    from app.codes import words
    app.jinja_env.filters["words"] = words      # times to the minute, code labels, never "None" (app.codes)
    app.after_request(security.audit_throttled_sign_in)
    app.after_request(security.security_headers)


MESSAGES = {400: _l("请求有误"), 403: _l("没有权限执行此操作"), 404: _l("页面或记录不存在"),
            405: _l("不支持的请求方式"), 413: _l("上传的文件太大"), 422: _l("数据不符合要求"),
            429: _l("操作太频繁，请稍后再试"), 500: _l("系统内部错误，请稍后再试或联系管理员")}


def _install_error_handlers(app: Flask) -> None:
    """Error pages in Chinese, never with SQL or a stack trace."""
    def render(status, detail=None, code=None):
        message = MESSAGES.get(status, _l("请求失败"))
        if request.path.startswith("/api/"):
            return json_error(status, code or f"http_{status}", str(detail or message))
        ab = app.appbuilder
        if "user" not in g:                 # errors raised before FAB's before_request (CSRF) have no g.user
            from flask_login import current_user
            g.user = current_user
        return render_template("xueji/error.html", base_template=ab.base_template, appbuilder=ab,
                               status=status, message=message, detail=detail), status

    @app.errorhandler(HTTPException)
    def http_error(exc):
        if exc.response is not None:
            return exc.response
        if exc.code == 400 and "CSRF" in (exc.description or ""):
            return render(400, "表单已过期或缺少安全令牌（CSRF），请刷新页面后重试")
        return render(exc.code or 500)

    @app.errorhandler(Exception)
    def server_error(exc):
        from app.errors import RuleError, client_fault
        db.session.rollback()
        if isinstance(exc, RuleError):
            return render(exc.status, exc.message, exc.code)
        fault = client_fault(exc)           # the database refused the client's value (out of range, too long)
        if fault:
            log.warning("input refused by the database on %s %s: %s", request.method, request.path,
                        str(getattr(exc, "orig", exc)).splitlines()[0][:300])
            return render(fault[0], fault[2], fault[1])
        log.exception("unhandled error")
        return render(500)

    def check_input():
        """Hostile input is refused before anything reads it (app.errors.check_request): first of all hooks,
        so even the CSRF check never parses an oversized body."""
        from app.errors import check_request
        check_request(app, request)

    app.before_request_funcs.setdefault(None, []).insert(0, check_input)
    from views.base import install_api_errors
    install_api_errors(app)
