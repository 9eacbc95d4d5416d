"""Audit log (read-only), the province registrar directory, the home page and the account API."""
import re

from flask import g, request
from flask_appbuilder import BaseView, IndexView
from flask_appbuilder.api import BaseApi, expose as api_expose, protect, safe
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import func, select

from app.i18n import _l
from app import clock, problems, workflow
from app.accounts import province_of_current_user, registrar_directory
from app.codes import field_label, when
from app.errors import json_error
from app.extensions import db
from app.scoping import ScopedInterface, apply_scope, current_scope
from models import AuditEvent, Student
from views.base import XuejiModelView, minute_field, rest_safe

ACTION_LABELS = {"insert": _l("新增"), "update": _l("修改"), "delete": _l("删除"), "login": _l("登录"), "login_failed": _l("登录失败"),
                 "login_locked": _l("锁定中登录"), "lockout": _l("账号锁定"), "logout": _l("注销"), "role_change": _l("角色变更"),
                 "export": _l("导出"), "signout_all": _l("全部下线")}


def audit_value(text):
    """An old or new value as written ("[学校学籍管理员]" from a Python list becomes a plain comma list)."""
    if text in (None, "None"):
        return ""
    if text in ("True", "False"):                       # an audited bool (须修改密码) kept as Python's str()
        return "是" if text == "True" else "否"
    text = re.sub(r"(\d{2}:\d{2}):\d{2}(\.\d+)?", r"\1", str(text))      # rows written before: to the minute
    if text.startswith("[") and text.endswith("]"):
        return "，".join(part.strip().strip("'\"") for part in text[1:-1].split(",") if part.strip())
    return text


class AuditInterface(ScopedInterface):
    """Values as people read them: a coded field's name (性别 男, not 1), a region's 省市县, times to the
    minute, nothing for a missing value."""

    def _get_attr_value(self, item, col):
        value = ScopedInterface._get_attr_value(item, col)
        if col in ("old_value", "new_value"):
            return audit_value(field_label(db.session, item.entity, item.field, value))
        if col == "at":
            return when(value)
        return "" if value is None else value


class AuditView(XuejiModelView):
    """审计日志: superadmin sees all, bureau staff the rows of schools in their region. Read-only."""
    datamodel = AuditInterface(AuditEvent)
    class_permission_name = "Audit"
    route_base = "/audit"
    include_route_methods = {"list", "show"}
    list_title = show_title = _l("审计日志")
    label_columns = {"at": _l("时间"), "username": _l("用户"), "action": _l("操作"), "entity": _l("对象"), "entity_id": _l("对象ID"),
                     "field": _l("字段"), "old_value": _l("原值"), "new_value": _l("新值"), "school_id": _l("学校ID"), "ip": "IP"}
    list_columns = ["at", "username", "action", "entity", "entity_id", "field", "old_value", "new_value"]
    show_columns = list_columns + ["school_id", "ip"]
    search_columns = ["at", "username", "action", "entity", "entity_id"]
    base_order = ("at", "desc")
    formatters_columns = {"action": lambda a: ACTION_LABELS.get(a, a)}
    # the 时间 filter starts empty and takes minutes (the column's default would prefill now() to the microsecond)
    search_form_extra_fields = {"at": minute_field(_l("时间"))}


class DirectoryView(BaseView):
    """省内兄弟学校管理员: every school and bureau user can look up registrars of the province."""
    route_base = "/directory"
    class_permission_name = "Directory"
    method_permission_name = {"index": "read"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        q = (request.args.get("q") or "").strip()[:50]
        rows = registrar_directory(db.session, province_of_current_user(db.session), q or None)
        return self.render_template("xueji/directory.html", rows=rows, q=q)


class HomeView(IndexView):
    """首页 = 待办: what waits for this user now (requests at their step, overdue first; their own requests
    that came back; the 问题学籍 queue of their scope) and their scope at a glance."""
    index_template = "xueji/index.html"

    @expose("/")
    def index(self):
        user = g.user
        counts, problem_count, waiting, returned, conflicts, incomplete = [], 0, [], [], [], 0
        if user is not None and user.is_authenticated:
            # 小学毕业生 (the county's roster) are no students of a 中学 here: counted apart, never as 毕业
            q = apply_scope(select(Student.stage, Student.status, Student.needs_completion, func.count())
                            .where(Student.deleted_at.is_(None))
                            .group_by(Student.stage, Student.status, Student.needs_completion), Student)
            tally: dict[str, int] = {}
            for stage, status, pending, n in db.session.execute(q).all():
                primary = stage == "小学"
                key = "小学毕业生" if primary else status
                tally[key] = tally.get(key, 0) + n
                incomplete += n if pending and not primary else 0
            counts = sorted(tally.items(), key=lambda kv: (kv[0] == "小学毕业生", kv[0] != "在校", kv[0]))
            problem_count = problems.queue_count(db.session, current_scope())
            waiting = workflow.waiting_for(db.session, user)
            returned = workflow.returned_to(db.session, user)
            conflicts = _admission_news(user)
        today = clock.today()
        waiting.sort(key=lambda r: (not (r.step_due_on and r.step_due_on < today), r.step_due_on or today, r.id))
        return self.render_template(self.index_template, appbuilder=self.appbuilder, counts=counts,
                                    scope=current_scope(), problem_count=problem_count, waiting=waiting,
                                    returned=returned, conflicts=conflicts, today=today, incomplete=incomplete)


def _admission_news(user):
    """重复招生 items of the user's scope: open conflicts, and arbitration outcomes of the last 30 days."""
    from datetime import timedelta
    from models.admissions import CONFLICT, Admission
    since = clock.now() - timedelta(days=30)
    q = apply_scope(select(Admission).where((Admission.state == CONFLICT) | (
        Admission.note.like("仲裁%") & (Admission.decided_at >= since))), Admission)
    return list(db.session.scalars(q.order_by(Admission.id.desc()).limit(100)))


class AccountApi(BaseApi):
    """/api/v1/account/password: change one's own password over the API (forced-change flows included)."""
    resource_name = "account"
    class_permission_name = "Account"
    method_permission_name = {"change_password": "write", "me": "read"}
    openapi_spec_tag = "Account"

    @api_expose("/me", methods=["GET"])
    @protect()
    @safe
    def me(self):
        u = g.user
        return self.response(200, result={
            "id": u.id, "username": u.username, "school_id": u.school_id, "region_code": u.region_code,
            "roles": [r.name for r in u.roles], "must_change_password": self.appbuilder.sm.password_expired(u)})

    @api_expose("/password", methods=["POST"])
    @protect()
    @rest_safe
    def change_password(self):
        body = request.get_json(silent=True) or {}
        sm = self.appbuilder.sm
        user = sm.get_user_by_id(g.user.id)
        if not sm.check_password(user, body.get("old_password")):     # argon2id; an older hash is upgraded
            return json_error(422, "wrong_password", "原密码不正确")
        if body.get("new_password") == body.get("old_password"):
            return json_error(422, "same_password", "新密码不能与原密码相同")
        sm.reset_password(user.id, body.get("new_password") or "")
        return self.response(200, message="密码已修改")
