"""Requests (申请) screens and API: the request list and page with its step tracker and decisions, the
关键数据变更 form, the 问题学籍 queue with 变更 / 佐证 / 删除, and evidence downloads. All decisions go through
app.workflow; these views only collect input and show results."""
import io
import json

from flask import abort, flash, g, redirect, request, send_file, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.actions import action
from flask_appbuilder.api import BaseApi, expose as api_expose, protect, safe
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import select

from app import clock, evidence as evidence_files, exchange, keydata, problems, statuschange, transfers, workflow
from app.errors import RuleError, json_error
from app.extensions import db
from app.i18n import _l
from app.scoping import ScopedInterface, apply_scope, current_scope
from app.students import key_fields
from models import School, SchoolClass, Student
from models.requests import PARTIES, Chain, ChainStep, Evidence, Problem, Request
from views.base import XuejiApi, XuejiModelView, minute_field

REQUEST_LABELS = {"id": "#", "kind": _l("类型"), "summary": _l("内容"), "state": _l("状态"), "school": _l("提交学校"),
                  "student": _l("学生"), "filed_by": _l("提交人"), "filed_at": _l("提交时间"),
                  "step_due_on": _l("本环节截止"), "closed_at": _l("办结时间"), "chain": _l("审批流程")}


def _student_in_scope(student_id) -> Student:
    q = apply_scope(select(Student).where(Student.id == int(student_id)), Student)
    student = db.session.scalars(q).first()
    if student is None:
        abort(404)
    return student


def _classes_of(school_id: int, stage: str | None = None):
    """A school's classes for a dropdown, newest cohort first."""
    q = select(SchoolClass).where(SchoolClass.school_id == school_id)
    if stage:
        q = q.where(SchoolClass.stage == stage)
    return db.session.scalars(q.order_by(SchoolClass.cohort_year.desc(), SchoolClass.class_no)).all()


def _upload_all(files, student: Student) -> list[int]:
    county = db.session.get(School, student.school_id).county_code
    ids = []
    for f in files:
        if f and f.filename:
            ids.append(evidence_files.store(db.session, f.stream, f.filename, student.school_id, g.user,
                                            student.id, county).id)
    return ids


def _tracker(req: Request):
    """[(step name, role, state)] with state done / current / waiting / rejected for the step tracker."""
    steps = workflow.steps_of(db.session, req)
    out = [("提交", "学校学籍管理员", "done")]
    for step in steps:
        if req.state == workflow.APPROVED or step.seq < req.step_seq:
            state = "done"
        elif step.seq == req.step_seq:
            state = {"审核中": "current", "不通过": "rejected", "退回修改": "returned"}.get(req.state, "waiting")
        else:
            state = "waiting"
        out.append((step.name, step.role, state))
    return out


class RequestView(XuejiModelView):
    datamodel = ScopedInterface(Request)
    class_permission_name = "Request"
    method_permission_name = {"list": "read", "show": "read", "decide": "decide", "withdraw": "withdraw",
                              "resubmit": "withdraw", "evidence": "read", "clear": "clear", "clear_action": "clear",
                              "package": "read", "exchange_import": "exchange"}
    route_base = "/request"
    include_route_methods = {"list", "show", "decide", "withdraw", "resubmit", "evidence", "clear", "action",
                             "action_post", "package", "exchange_import"}
    list_title = show_title = _l("申请")
    label_columns = REQUEST_LABELS
    list_columns = ["id", "summary", "state", "school", "filed_by", "filed_at", "step_due_on"]
    search_columns = ["kind", "state", "school", "filed_at"]
    search_form_extra_fields = {"filed_at": minute_field(_l("提交时间"))}
    base_order = ("id", "desc")
    show_template = "xueji/request_show.html"

    @expose("/show/<pk>")
    @has_access
    def show(self, pk):
        req = self.datamodel.get(pk) or abort(404)
        steps = workflow.steps_of(db.session, req)
        step = next((s for s in steps if s.seq == req.step_seq), None)
        can_decide = req.state == workflow.PENDING and step is not None and \
            workflow.may_decide(db.session, g.user, req, step) is None
        filer = workflow.acts_for_filer(db.session, g.user, req)
        return self.render_template(self.show_template, req=req, tracker=_tracker(req),
                                    payload=workflow.payload_of(req), can_decide=can_decide, filer=filer,
                                    title=self.show_title, labels=key_fields(db.session))

    def _act(self, pk, fn):
        try:
            fn()
            flash("已办理", "success")
        except RuleError as exc:
            db.session.rollback()
            if exc.status == 404:
                abort(404)
            flash(exc.message, "danger")
        return redirect(url_for("RequestView.show", pk=pk))

    @expose("/decide/<int:pk>", methods=["POST"])
    @has_access
    def decide(self, pk):
        return self._act(pk, lambda: workflow.decide(db.session, g.user, pk, request.form.get("decision", ""),
                                                     request.form.get("comment")))

    @expose("/withdraw/<int:pk>", methods=["POST"])
    @has_access
    def withdraw(self, pk):
        return self._act(pk, lambda: workflow.withdraw(db.session, g.user, pk, request.form.get("comment")))

    @expose("/resubmit/<int:pk>", methods=["POST"])
    @has_access
    def resubmit(self, pk):
        def run():
            req = self.datamodel.get(pk) or abort(404)
            student = db.session.get(Student, req.student_id)
            ids = _upload_all(request.files.getlist("evidence"), student)
            workflow.resubmit(db.session, g.user, pk, None, ids, request.form.get("comment"))
        return self._act(pk, run)

    @expose("/clear", methods=["GET", "POST"])
    @has_access
    def clear(self):
        """在办业务清理 (bureau): end the selected open requests with a reason."""
        ids = request.values.getlist("rowid") or request.values.getlist("ids")
        if request.method == "POST" and request.form.get("reason") is not None:
            try:
                n = workflow.clear(db.session, g.user, ids, request.form.get("reason", ""))
                flash(f"已清理{n}项在办业务", "success")
                return redirect(url_for("RequestView.list"))
            except RuleError as exc:
                db.session.rollback()
                if exc.status == 404:
                    abort(404)
                flash(exc.message, "danger")
        reqs = db.session.scalars(apply_scope(select(Request).where(Request.id.in_([int(i) for i in ids])),
                                              Request)).all()
        return self.render_template("xueji/clear.html", reqs=reqs, title=_l("在办业务清理"))

    @action("clear", _l("在办业务清理"), None, "fa-eraser")
    def clear_action(self, items):
        items = items if isinstance(items, list) else [items]
        return redirect(url_for("RequestView.clear", ids=[i.id for i in items]))

    @expose("/package/<int:pk>")
    @has_access
    def package(self, pk):
        """跨省转学: download the signed package of an approved request as a file for the other province."""
        req = self.datamodel.get(pk) or abort(404)
        try:
            make = exchange.request_package if req.kind == "transfer_in" else exchange.record_package
            data = json.dumps(make(db.session, req), ensure_ascii=False, indent=1).encode()
        except RuleError as exc:
            flash(exc.message, "danger")
            return redirect(url_for("RequestView.show", pk=pk))
        name = f"转学{'申请' if req.kind == 'transfer_in' else '档案'}包_{pk}.json"
        return send_file(io.BytesIO(data), as_attachment=True, download_name=name, mimetype="application/json")

    @expose("/exchange", methods=["GET", "POST"])
    @has_access
    def exchange_import(self):
        """跨省转学: import the other province's application package (bureau) or record package (school)."""
        if request.method == "POST":
            f = request.files.get("file")
            data = f.read(1024 * 1024) if f else b""
            try:
                if request.form.get("what") == "record":
                    student = exchange.import_record(db.session, g.user, data, request.form.get("class_id") or None)
                    flash(f"已调档：{student.name}（{student.xjh}）", "success")
                    return redirect(url_for("StudentView.show", pk=student.id))
                req = exchange.import_request(db.session, g.user, data)
                flash(f"已导入外省转学申请，生成转出申请 #{req.id}", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
            except RuleError as exc:
                db.session.rollback()
                flash(exc.message, "danger")
        school_id = current_scope().school_id
        return self.render_template("xueji/exchange.html", title=_l("跨省转学数据包"),
                                    public_key=exchange.public_key_text(), fingerprint=exchange.my_fingerprint(),
                                    classes=_classes_of(school_id) if school_id else [])

    @expose("/evidence/<int:evidence_id>")
    @has_access
    def evidence(self, evidence_id):
        """Evidence of an in-scope request or student, always as a download, never rendered inline."""
        row = db.session.scalars(apply_scope(select(Evidence).where(Evidence.id == evidence_id), Evidence)).first()
        if row is None:
            abort(404)
        resp = send_file(evidence_files.path_of(row), as_attachment=True, download_name=row.original_name,
                         mimetype="application/octet-stream")
        resp.headers["Content-Security-Policy"] = "sandbox"
        return resp


class KeyChangeView(BaseView):
    """关键数据变更申请: old and new values with at least one evidence file."""
    route_base = "/keychange"
    class_permission_name = "Request"
    method_permission_name = {"form": "file"}
    default_view = "form"

    @expose("/<int:student_id>", methods=["GET", "POST"])
    @has_access
    def form(self, student_id):
        student = _student_in_scope(student_id)
        if not keydata.may_file(db.session, g.user, student):
            abort(403)                            # the same rule that hides the button (app.keydata.may_file)
        fields = key_fields(db.session, db.session.get(School, student.school_id).county_code)
        classes = _classes_of(student.school_id)
        problem_id = request.values.get("problem_id")
        if request.method == "POST":
            new_values = {f: request.form.get(f) for f in fields}
            try:
                payload = keydata.key_change_payload(db.session, student, new_values, request.form.get("reason"),
                                                     problem_id)
                ids = _upload_all(request.files.getlist("evidence"), student)
                req = workflow.file(db.session, g.user, "key_change", student, payload, ids,
                                    request.form.get("reason"))
                if problem_id:
                    problems.resolve_in_progress(db.session, int(problem_id), req.id)
                    db.session.commit()
                flash(f"关键数据变更申请 #{req.id} 已提交，等待学校学籍主管领导审核", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
            except RuleError as exc:
                db.session.rollback()
                flash(exc.message, "danger")
        return self.render_template("xueji/keychange.html", student=student, fields=fields, classes=classes,
                                    problem_id=problem_id, form=request.form)


class ChainStepView(XuejiModelView):
    datamodel = ScopedInterface(ChainStep)
    class_permission_name = "Chain"
    route_base = "/chainstep"
    list_title = show_title = _l("审批环节")
    label_columns = {"chain": _l("审批流程"), "seq": _l("顺序"), "name": _l("环节名称"), "party": _l("办理方"),
                     "role": _l("审核角色"), "due_days": _l("办理时限(工作日)")}
    list_columns = ["seq", "name", "party", "role", "due_days"]
    add_columns = edit_columns = show_columns = ["chain", "seq", "name", "party", "role", "due_days"]
    formatters_columns = {"party": lambda p: PARTIES.get(p, p)}
    base_order = ("seq", "asc")


class ChainView(XuejiModelView):
    """审批流程: chains are data; the superadmin sees and adjusts every one (steps, roles, time limits)."""
    datamodel = ScopedInterface(Chain)
    class_permission_name = "Chain"
    route_base = "/chain"
    list_title = show_title = _l("审批流程")
    label_columns = {"code": _l("代码"), "name": _l("名称"), "steps": _l("环节")}
    list_columns = ["code", "name"]
    show_columns = add_columns = edit_columns = ["code", "name"]
    related_views = [ChainStepView]
    base_order = ("code", "asc")


class StatusChangeView(BaseView):
    """学籍管理 → 学籍异动: find the student by 学籍号 or name within scope, see which 异动 types this student may
    have now (and why the others not: app.statuschange.available_types), then the form: type, date, reason,
    evidence, and the class for entry types (复学 … 留级, 跳级)."""
    route_base = "/statuschange"
    class_permission_name = "Request"
    method_permission_name = {"form": "file", "start": "file"}
    default_view = "start"

    @expose("/")
    @has_access
    def start(self):
        if not statuschange.may_file(db.session, g.user):
            abort(403)
        q = (request.args.get("q") or "").strip()[:40]
        student_id = request.args.get("student_id", type=int)
        found, student, available = [], None, []
        if student_id is not None:
            if not 0 < student_id < 2 ** 31:
                abort(404)
            student = _student_in_scope(student_id)
        elif q:                                  # one scoped query: the 学籍号 exactly, or a part of the name
            found = db.session.scalars(apply_scope(
                select(Student).where(Student.deleted_at.is_(None),
                                      (Student.xjh == q.upper()) | Student.name.contains(q, autoescape=True)),
                Student).order_by(Student.school_id, Student.id).limit(51)).all()
            if len(found) == 1:
                student = found[0]
        if student is not None:
            available = statuschange.available_types(db.session, student)
        return self.render_template("xueji/statuschange_start.html", q=q, found=found[:50], more=len(found) > 50,
                                    student=student, available=available, title=_l("学籍异动"))

    @expose("/<int:student_id>", methods=["GET", "POST"])
    @has_access
    def form(self, student_id):
        student = _student_in_scope(student_id)
        if not statuschange.may_file(db.session, g.user, student):
            abort(403)
        available = statuschange.available_types(db.session, student)
        types = [t for t, reason in available if reason is None]
        classes = _classes_of(student.school_id, student.stage)
        if request.method == "POST":
            payload = {"type": request.form.get("type"), "date": request.form.get("date"),
                       "reason": request.form.get("reason", ""), "class_id": request.form.get("class_id") or None}
            try:
                ids = _upload_all(request.files.getlist("evidence"), student)
                req = workflow.file(db.session, g.user, "status_change", student, payload, ids,
                                    payload["reason"])
                flash(f"学籍异动申请 #{req.id} 已提交，等待学校学籍主管领导审核", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
            except RuleError as exc:
                db.session.rollback()
                flash(exc.message, "danger")
        return self.render_template("xueji/statuschange.html", student=student, types=types, classes=classes,
                                    available=available,
                                    form=request.form if request.method == "POST" else request.args,
                                    today=clock.today(), school_year=statuschange.school_year())


class TransferView(BaseView):
    """转学申请, filed by the receiving school: the student's 学籍号 and 姓名, and a class of the same grade."""
    route_base = "/transfer"
    class_permission_name = "Request"
    method_permission_name = {"form": "file"}
    default_view = "form"

    @expose("/", methods=["GET", "POST"])
    @has_access
    def form(self):
        scope = current_scope()
        if scope.kind != "school":
            abort(403)
        classes = _classes_of(scope.school_id)
        if request.method == "POST":
            try:
                kind = "graduate_move" if request.form.get("kind") == "graduate_move" else "transfer"
                req = file_transfer(g.user, scope.school_id, request.form, kind)
                flash(f"申请 #{req.id} 已提交", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
            except RuleError as exc:
                db.session.rollback()
                flash(exc.message, "danger")
        return self.render_template("xueji/transfer.html", classes=classes, form=request.form,
                                    title=_l("转学申请（转入）"))


def file_transfer(actor, school_id, values, kind="transfer"):
    """Both faces (web form, API) file a transfer (or a 毕业后跨省就学) the same way."""
    student = transfers.find_student(db.session, values.get("xjh", ""), values.get("name", ""))
    payload = {"xjh": values.get("xjh", ""), "name": values.get("name", ""), "class_id": values.get("class_id"),
               "to_school_id": school_id, "reason": values.get("reason", ""), "date": values.get("date"),
               "stage": values.get("stage")}
    return workflow.file(db.session, actor, kind, student, payload, (), values.get("reason"), school_id=school_id)


class ProblemView(XuejiModelView):
    """问题学籍 queue: school and county; 变更, 佐证, 删除 and on-demand detection."""
    datamodel = ScopedInterface(Problem)
    class_permission_name = "Problem"
    method_permission_name = {"list": "read", "show": "read", "proof": "handle", "remove": "handle",
                              "detect": "detect"}
    route_base = "/problem"
    include_route_methods = {"list", "show", "proof", "remove", "detect"}
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
        student = db.session.get(Student, problem.student_id)
        try:
            ids = _upload_all(request.files.getlist("evidence"), student)
            req = workflow.file(db.session, g.user, "problem_proof", student,
                                {"problem_id": problem.id, "reason": request.form.get("reason", "")}, ids,
                                request.form.get("reason"))
            problems.resolve_in_progress(db.session, problem.id, req.id)
            db.session.commit()
            flash(f"佐证申请 #{req.id} 已提交", "success")
            return redirect(url_for("RequestView.show", pk=req.id))
        except RuleError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return redirect(url_for("ProblemView.show", pk=pk))

    @expose("/remove/<int:pk>", methods=["POST"])
    @has_access
    def remove(self, pk):
        problem = self.datamodel.get(pk) or abort(404)
        if not problems.may_handle(db.session, g.user, problem):
            abort(403)
        try:
            problems.delete_record(db.session, g.user, problem, request.form.get("reason", ""),
                                   request.form.get("confirm") == "确认删除")
            flash("已删除该学籍（仍可在学生列表中查看，标记为已删除）", "success")
            return redirect(url_for("ProblemView.list"))
        except RuleError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return redirect(url_for("ProblemView.show", pk=pk))

    @expose("/detect", methods=["POST"])
    @has_access
    def detect(self):
        """Run detection over the whole scope (a school, or every school of the county)."""
        schools = list(db.session.scalars(apply_scope(select(School.id), School)))
        counts = problems.detect(db.session, school_ids=schools)
        db.session.commit()
        total = sum(counts.values())
        flash(f"检测完成：发现{total}条问题" + ("（" + "，".join(
            f"{problems.KINDS[k]}{n}条" for k, n in counts.items()) + "）" if counts else ""), "info")
        return redirect(url_for("ProblemView.list"))


# --- REST ----------------------------------------------------------------------------------------------

class RequestApi(XuejiApi):
    """/api/v1/request/: list and read requests with their steps; file, decide, withdraw and resubmit them
    with exactly the rules of the web screens (app.workflow)."""
    resource_name = "request"
    datamodel = ScopedInterface(Request)
    class_permission_name = "Request"
    method_permission_name = {"get": "read", "get_list": "read", "info": "read", "file_request": "file",
                              "decide_request": "decide", "withdraw_request": "withdraw",
                              "resubmit_request": "withdraw",
                              "package": "read", "import_package": "exchange"}
    include_route_methods = {"get", "get_list", "info", "file_request", "decide_request", "withdraw_request",
                             "resubmit_request", "package", "import_package"}
    list_columns = ["id", "kind", "state", "summary", "school_id", "counterpart_school_id", "student_id",
                    "step_seq", "step_due_on", "filed_by_id", "filed_at", "closed_at"]
    show_columns = list_columns + ["payload", "history.seq", "history.step_name", "history.decision",
                                   "history.actor_name", "history.comment", "history.at", "evidence.id"]
    search_columns = ["kind", "state", "school_id", "student_id"]

    def _run(self, fn):
        try:
            req = fn()
            return self.response(200, result={"id": req.id, "state": req.state, "step_seq": req.step_seq})
        except RuleError as exc:
            db.session.rollback()
            return json_error(exc.status, exc.code, exc.message)

    @api_expose("/file", methods=["POST"])
    @protect()
    @safe
    def file_request(self):
        """File a request: {"kind": "key_change", "student_id", "changes": {field: new}, "reason",
        "evidence_ids": [...], "problem_id"?}, {"kind": "problem_proof", "problem_id", "reason", …} or
        {"kind": "status_change", "type": "休学", "date": "2026-11-28", "reason", "class_id"?, …}."""
        body = request.get_json(silent=True) or {}

        def run():
            kind = body.get("kind")
            if kind in ("transfer", "graduate_move"):    # another school's student, by 学籍号 and 姓名
                scope = current_scope()
                if scope.kind != "school":
                    raise RuleError("由转入（接收）学校提交", code="forbidden", status=403)
                return file_transfer(g.user, scope.school_id, body, kind)
            if kind == "transfer_in":               # 跨省转入: the student is in the other province's system
                scope = current_scope()
                if scope.kind != "school":
                    raise RuleError("跨省转入由转入学校提交", code="forbidden", status=403)
                payload = {k: body.get(k) for k in ("xjh", "name", "class_id", "from_province", "reason")}
                payload["to_school_id"] = scope.school_id
                return workflow.file(db.session, g.user, kind, None, payload, (), body.get("reason"),
                                     school_id=scope.school_id)
            if kind == "new_record":                # 新建学籍（移民）: the record itself is the request
                scope = current_scope()
                if scope.kind != "school":
                    raise RuleError("新建学籍由学校提交", code="forbidden", status=403)
                payload = {"record": body.get("record") or {}, "school_id": scope.school_id,
                           "reason": body.get("reason", "")}
                return workflow.file(db.session, g.user, kind, None, payload, body.get("evidence_ids") or [],
                                     body.get("reason"), school_id=scope.school_id)
            if kind == "quota_change":              # about a school's plan, not a student
                from models import Quota
                quota = db.session.scalars(apply_scope(
                    select(Quota).where(Quota.id == int(body.get("quota_id") or 0)), Quota)).first()
                if quota is None:
                    raise RuleError("招生计划不存在或不在您的管辖范围内", code="not_found", status=404)
                payload = {"quota_id": quota.id, "current": quota.planned, "requested": body.get("requested"),
                           "reason": body.get("reason", "")}
                return workflow.file(db.session, g.user, kind, None, payload, (), body.get("reason"),
                                     school_id=quota.school_id)
            student = db.session.scalars(apply_scope(
                select(Student).where(Student.id == int(body.get("student_id") or 0)), Student)).first()
            if student is None:
                raise RuleError("学生不存在或不在您的管辖范围内", code="not_found", status=404)
            if kind == "key_change":
                payload = keydata.key_change_payload(db.session, student, body.get("changes") or {},
                                                     body.get("reason"), body.get("problem_id"))
            elif kind == "problem_proof":
                payload = {"problem_id": int(body.get("problem_id") or 0), "reason": body.get("reason", "")}
            elif kind == "status_change":
                payload = {k: body.get(k) for k in ("type", "date", "reason", "class_id")}
            else:
                raise RuleError("不支持的申请类型", code="invalid")
            req = workflow.file(db.session, g.user, kind, student, payload, body.get("evidence_ids") or [],
                                body.get("reason"))
            if payload.get("problem_id"):
                problems.resolve_in_progress(db.session, payload["problem_id"], req.id)
                db.session.commit()
            return req
        return self._run(run)

    @api_expose("/<int:pk>/package", methods=["GET"])
    @protect()
    @safe
    def package(self, pk):
        """跨省转学: the signed package of an approved request (transfer_in → application, transfer_out → record).
        ---
        get:
          summary: 下载跨省转学数据包（已签名）
          parameters:
          - in: path
            name: pk
            required: true
            schema:
              type: integer
              minimum: 1
              maximum: 2147483647
          responses:
            200:
              description: 签名的数据包
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result:
                        type: object
            404:
              $ref: '#/components/responses/404'
            409:
              $ref: '#/components/responses/409'
        """
        req = self.datamodel.get(pk)
        if req is None:
            return self.response_404()
        try:
            make = exchange.request_package if req.kind == "transfer_in" else exchange.record_package
            return self.response(200, result=make(db.session, req))
        except RuleError as exc:
            return json_error(exc.status, exc.code, exc.message)

    @api_expose("/import/<string:what>", methods=["POST"])
    @protect()
    @safe
    def import_package(self, what):
        """跨省转学: import the other province's application (what=request) or record (what=record) package;
        for a record, `?class_id=` places the student in another class of the school (same grade, free seat).
        ---
        post:
          summary: 导入外省的转学申请包（what=request）或档案包（what=record）
          parameters:
          - in: path
            name: what
            required: true
            schema:
              type: string
              enum: [request, record]
          - in: query
            name: class_id
            required: false
            schema:
              type: integer
              minimum: 1
              maximum: 2147483647
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  description: 对方系统导出的签名数据包
          responses:
            200:
              description: 生成的申请（request）或调入的学生（record）
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      result:
                        type: object
            404:
              $ref: '#/components/responses/404'
            409:
              $ref: '#/components/responses/409'
            413:
              $ref: '#/components/responses/413'
        """
        data = request.get_data()
        try:
            if what == "request":
                req = exchange.import_request(db.session, g.user, data)
                return self.response(200, result={"id": req.id, "state": req.state})
            if what == "record":            # ?class_id= another class of the school than the application named
                student = exchange.import_record(db.session, g.user, data, request.args.get("class_id") or None)
                return self.response(200, result={"student_id": student.id, "xjh": student.xjh})
            return self.response_404()
        except RuleError as exc:
            db.session.rollback()
            return json_error(exc.status, exc.code, exc.message)

    @api_expose("/<int:pk>/decide", methods=["POST"])
    @protect()
    @safe
    def decide_request(self, pk):
        """Decide the current step, with exactly the rules of the web page (app.workflow.decide).
        ---
        post:
          summary: 审核当前环节（通过 / 不通过 / 退回修改）
          parameters:
          - in: path
            name: pk
            required: true
            schema:
              type: integer
              minimum: 1
              maximum: 2147483647
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    decision:
                      type: string
                      enum: [通过, 不通过, 退回修改]
                    comment:
                      type: string
                      description: 不通过、退回修改时必填
          responses:
            200:
              description: 办理后的申请（编号、状态、当前环节）
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/XuejiRequestState'
            404:
              $ref: '#/components/responses/404'
            409:
              $ref: '#/components/responses/409'
            413:
              $ref: '#/components/responses/413'
        """
        body = request.get_json(silent=True) or {}
        return self._run(lambda: workflow.decide(db.session, g.user, pk, body.get("decision", ""),
                                                 body.get("comment")))

    @api_expose("/<int:pk>/withdraw", methods=["POST"])
    @protect()
    @safe
    def withdraw_request(self, pk):
        """The filer withdraws a request before its final step (app.workflow.withdraw).
        ---
        post:
          summary: 撤回申请
          parameters:
          - in: path
            name: pk
            required: true
            schema:
              type: integer
              minimum: 1
              maximum: 2147483647
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    comment:
                      type: string
          responses:
            200:
              description: 办理后的申请（编号、状态、当前环节）
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/XuejiRequestState'
            404:
              $ref: '#/components/responses/404'
            409:
              $ref: '#/components/responses/409'
            413:
              $ref: '#/components/responses/413'
        """
        body = request.get_json(silent=True) or {}
        return self._run(lambda: workflow.withdraw(db.session, g.user, pk, body.get("comment")))

    @api_expose("/<int:pk>/resubmit", methods=["POST"])
    @protect()
    @safe
    def resubmit_request(self, pk):
        """The filer resubmits a request returned for changes, with more evidence (app.workflow.resubmit).
        ---
        post:
          summary: 补充材料后重新提交
          parameters:
          - in: path
            name: pk
            required: true
            schema:
              type: integer
              minimum: 1
              maximum: 2147483647
          requestBody:
            content:
              application/json:
                schema:
                  type: object
                  properties:
                    comment:
                      type: string
                    evidence_ids:
                      type: array
                      items:
                        type: integer
                        minimum: 1
                        maximum: 2147483647
          responses:
            200:
              description: 办理后的申请（编号、状态、当前环节）
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/XuejiRequestState'
            404:
              $ref: '#/components/responses/404'
            409:
              $ref: '#/components/responses/409'
            413:
              $ref: '#/components/responses/413'
        """
        body = request.get_json(silent=True) or {}
        return self._run(lambda: workflow.resubmit(db.session, g.user, pk, None, body.get("evidence_ids") or [],
                                                   body.get("comment")))


class EvidenceApi(BaseApi):
    """/api/v1/evidence/: upload one evidence file (multipart field `file`, with `student_id`)."""
    resource_name = "evidence"
    class_permission_name = "Request"
    method_permission_name = {"upload": "file"}

    @api_expose("/", methods=["POST"])
    @protect()
    @safe
    def upload(self):
        try:
            student, school_id = None, current_scope().school_id
            if request.form.get("student_id"):
                student = db.session.scalars(apply_scope(
                    select(Student).where(Student.id == int(request.form.get("student_id") or 0)), Student)).first()
                if student is None:
                    raise RuleError("学生不存在或不在您的管辖范围内", code="not_found", status=404)
                school_id = student.school_id
            if school_id is None:
                raise RuleError("请指定学生", code="invalid")
            f = request.files.get("file")
            if f is None:
                raise RuleError("请选择文件", code="file_required")
            row = evidence_files.store(db.session, f.stream, f.filename, school_id, g.user,
                                       getattr(student, "id", None), db.session.get(School, school_id).county_code)
            db.session.commit()
            return self.response(201, result={"id": row.id, "mime": row.mime, "size": row.size})
        except RuleError as exc:
            db.session.rollback()
            return json_error(exc.status, exc.code, exc.message)


class ProblemApi(XuejiApi):
    resource_name = "problem"
    datamodel = ScopedInterface(Problem)
    class_permission_name = "Problem"
    method_permission_name = {"get": "read", "get_list": "read", "info": "read"}
    include_route_methods = {"get", "get_list", "info"}
    list_columns = show_columns = ["id", "student_id", "school_id", "kind", "detail", "state", "resolution",
                                   "request_id", "detected_at", "resolved_at"]
    search_columns = ["school_id", "kind", "state", "student_id"]

