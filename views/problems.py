"""问题学籍: the queue (school and county) with 变更 (关键数据变更 form), 佐证, 删除 and on-demand detection, and
/api/v1/problem/. The rules are app.problems'; 佐证 files through app.filing like every request."""
from flask import abort, flash, g, jsonify, redirect, request, url_for
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose

from app import filing, problems, tasks
from app.extensions import db
from app.i18n import _, _l
from app.scoping import ScopedInterface
from models.requests import Problem
from models.tasks import BackgroundTask
from views.base import XuejiApi, XuejiModelView, minute_field, refused
from views.filing import _uploads


class ProblemView(XuejiModelView):
    """问题学籍 queue: school and county; 变更, 佐证, 删除 and on-demand detection."""
    datamodel = ScopedInterface(Problem)
    class_permission_name = "Problem"
    method_permission_name = {"list": "read", "show": "read", "proof": "handle", "remove": "handle",
                              "detect": "detect", "detection": "read"}
    route_base = "/problem"
    include_route_methods = {"list", "show", "proof", "remove", "detect", "detection"}
    list_title = show_title = _l("问题学籍")
    label_columns = {"student": _l("学生"), "school": _l("学校"), "kind_label": _l("问题类型"), "kind": _l("问题类型"),
                     "detail": _l("说明"), "state": _l("状态"), "resolution": _l("处理方式"),
                     "detected_at": _l("发现时间"), "resolved_at": _l("办结时间")}
    list_columns = ["student", "school", "kind_label", "detail", "state", "resolution", "detected_at"]
    show_columns = list_columns + ["resolved_at"]
    search_columns = ["school", "kind", "state", "resolution", "detected_at"]
    search_form_extra_fields = {"detected_at": minute_field(_l("发现时间"))}
    base_order = ("id", "desc")
    show_template = "xueji/problem_show.html"
    list_template = "xueji/problem_list.html"
    formatters_columns = {"resolution": lambda v: v or ""}

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        problem = self.datamodel.get(pk) or abort(404)
        widgets = self._show(pk)
        return self.render_template(self.show_template, pk=pk, title=self.show_title, widgets=widgets,
                                    problem=problem, related_views=[])

    @expose("/proof/<int:pk>", methods=["POST"])
    @has_access
    def proof(self, pk):
        problem = self.datamodel.get(pk) or abort(404)
        if not problems.may_handle(db.session, g.user, problem):
            abort(403)                            # the same rule that hides the buttons (app.problems.may_handle)
        with refused():
            req = filing.file_request(db.session, g.user, "problem_proof",
                                      {"problem_id": problem.id, "reason": request.form.get("reason", "")},
                                      uploads=_uploads())
            flash(f"佐证申请 #{req.id} 已提交", "success")
            return redirect(url_for("RequestView.show", pk=req.id))
        return redirect(url_for("ProblemView.show", pk=pk))

    @expose("/remove/<int:pk>", methods=["POST"])
    @has_access
    def remove(self, pk):
        problem = self.datamodel.get(pk) or abort(404)
        if not problems.may_handle(db.session, g.user, problem):
            abort(403)
        with refused():
            problems.delete_record(db.session, g.user, problem, request.form.get("reason", ""),
                                   request.form.get("confirm") == "确认删除")
            flash("已删除该学籍（仍可在学生列表中查看，标记为已删除）", "success")
            return redirect(url_for("ProblemView.list"))
        return redirect(url_for("ProblemView.show", pk=pk))

    @expose("/detect", methods=["POST"])
    @has_access
    def detect(self):
        """Run detection over the whole scope (a school, or every school of the county): a large scope by a
        background task, whose progress and result the list page shows."""
        with refused():
            result = problems.detect_or_queue(db.session, g.user)
            if not isinstance(result, BackgroundTask):
                flash(problems.detected_message(result), "info")
        return redirect(url_for("ProblemView.list"))

    @expose("/detection")
    @has_access
    def detection(self):
        """Polled by the list page while a detection over the user's scope runs."""
        return jsonify(self._detection() or {"live": False})

    def _detection(self) -> dict | None:
        """The newest detection task over the user's scope (each scope has its own)."""
        task = tasks.latest(db.session, ("detect",), problems.scope_key(g.user))
        return tasks.status(task) if task is not None else None

    def render_template(self, template, **kwargs):
        if template == self.list_template:       # 检测中… / the last detection's result above the queue
            kwargs.setdefault("task", self._detection())
            kwargs.setdefault("task_url", url_for("ProblemView.detection"))
            kwargs.setdefault("retry_url", url_for("ProblemView.detect"))
            kwargs.setdefault("retry_label", _("重新检测"))
        return super().render_template(template, **kwargs)


class ProblemApi(XuejiApi):
    resource_name = "problem"
    datamodel = ScopedInterface(Problem)
    class_permission_name = "Problem"
    method_permission_name = {"get": "read", "get_list": "read", "info": "read"}
    include_route_methods = {"get", "get_list", "info"}
    list_columns = show_columns = ["id", "student_id", "school_id", "kind", "detail", "state", "resolution",
                                   "request_id", "detected_at", "resolved_at"]
    search_columns = ["school_id", "kind", "state", "student_id"]
