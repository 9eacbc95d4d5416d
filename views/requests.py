"""申请与审核: the request list and page with its step tracker, decisions (通过 / 不通过 / 退回修改), 撤销 and 重新提交,
在办业务清理, the 跨省转学 packages, evidence downloads, the approval chains, and /api/v1/request/. Every decision is
a service of app.workflow; these views only collect input and show results."""
import io
import json

from flask import abort, flash, g, redirect, request, send_file, url_for
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose as api_expose, protect
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import select

from app import evidence as evidence_files, exchange, filing, workflow
from app.errors import RuleError
from app.extensions import db
from app.i18n import _l
from app.scoping import ScopedInterface, apply_scope, current_scope
from app.students import key_fields
from models.requests import PARTIES, Chain, ChainStep, Evidence, Request
from views.base import XuejiApi, XuejiModelView, minute_field, refused, rest_safe
from views.filing import _classes_of, _uploads

REQUEST_LABELS = {"id": "#", "kind": _l("类型"), "summary": _l("内容"), "state": _l("状态"), "school": _l("提交学校"),
                  "student": _l("学生"), "filed_by": _l("提交人"), "filed_at": _l("提交时间"),
                  "step_due_on": _l("本环节截止"), "closed_at": _l("办结时间"), "chain": _l("审批流程")}


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

    def _done(self, pk):
        flash("已办理", "success")
        return redirect(url_for("RequestView.show", pk=pk))

    @expose("/decide/<int:pk>", methods=["POST"])
    @has_access
    def decide(self, pk):
        with refused():
            workflow.decide(db.session, g.user, pk, request.form.get("decision", ""), request.form.get("comment"),
                            seen_step=request.form.get("step"))
            return self._done(pk)
        return redirect(url_for("RequestView.show", pk=pk))

    @expose("/withdraw/<int:pk>", methods=["POST"])
    @has_access
    def withdraw(self, pk):
        with refused():
            workflow.withdraw(db.session, g.user, pk, request.form.get("comment"))
            return self._done(pk)
        return redirect(url_for("RequestView.show", pk=pk))

    @expose("/resubmit/<int:pk>", methods=["POST"])
    @has_access
    def resubmit(self, pk):
        with refused():
            workflow.resubmit(db.session, g.user, pk, None, (), request.form.get("comment"), uploads=_uploads())
            return self._done(pk)
        return redirect(url_for("RequestView.show", pk=pk))

    @expose("/clear", methods=["GET", "POST"])
    @has_access
    def clear(self):
        """在办业务清理 (bureau): end the selected open requests with a reason."""
        ids = request.values.getlist("rowid") or request.values.getlist("ids")
        if request.method == "POST" and request.form.get("reason") is not None:
            with refused():
                n = workflow.clear(db.session, g.user, ids, request.form.get("reason", ""))
                flash(f"已清理{n}项在办业务", "success")
                return redirect(url_for("RequestView.list"))
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
            with refused():
                if request.form.get("what") == "record":
                    student = exchange.import_record(db.session, g.user, data, request.form.get("class_id") or None)
                    flash(f"已调档：{student.name}（{student.xjh}）", "success")
                    return redirect(url_for("StudentView.show", pk=student.id))
                req = exchange.import_request(db.session, g.user, data)
                flash(f"已导入外省转学申请，生成转出申请 #{req.id}", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
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
        resp = evidence_files.send(row)
        if resp is None:
            abort(404)
        resp.headers["Content-Security-Policy"] = "sandbox"
        return resp


class ChainStepView(XuejiModelView):
    datamodel = ScopedInterface(ChainStep)
    class_permission_name = "Chain"
    route_base = "/chainstep"
    list_title = show_title = _l("审批环节")
    add_title, edit_title = _l("新增审批环节"), _l("编辑审批环节")
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
    add_title, edit_title = _l("新增审批流程"), _l("编辑审批流程")
    label_columns = {"code": _l("代码"), "name": _l("名称"), "steps": _l("环节")}
    list_columns = ["code", "name"]
    show_columns = add_columns = edit_columns = ["code", "name"]
    related_views = [ChainStepView]
    base_order = ("code", "asc")


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

    def _state(self, req):
        return self.response(200, result={"id": req.id, "state": req.state, "step_seq": req.step_seq})

    @api_expose("/file", methods=["POST"])
    @protect()
    @rest_safe
    def file_request(self):
        """File a request: {"kind": "key_change", "student_id", "changes": {field: new}, "reason",
        "evidence_ids": [...], "problem_id"?}, {"kind": "problem_proof", "problem_id", "reason", …} or
        {"kind": "status_change", "type": "休学", "date": "2026-11-28", "reason", "class_id"?, …}
        (app.filing.file_request, as the web forms)."""
        body = request.get_json(silent=True) or {}
        return self._state(filing.file_request(db.session, g.user, body.get("kind"), body,
                                               body.get("evidence_ids") or ()))

    @api_expose("/<int:pk>/package", methods=["GET"])
    @protect()
    @rest_safe
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
        make = exchange.request_package if req.kind == "transfer_in" else exchange.record_package
        return self.response(200, result=make(db.session, req))

    @api_expose("/import/<string:what>", methods=["POST"])
    @protect()
    @rest_safe
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
        if what == "request":
            req = exchange.import_request(db.session, g.user, data)
            return self.response(200, result={"id": req.id, "state": req.state})
        if what == "record":            # ?class_id= another class of the school than the application named
            student = exchange.import_record(db.session, g.user, data, request.args.get("class_id") or None)
            return self.response(200, result={"student_id": student.id, "xjh": student.xjh})
        return self.response_404()

    @api_expose("/<int:pk>/decide", methods=["POST"])
    @protect()
    @rest_safe
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
                    step:
                      type: integer
                      minimum: 1
                      maximum: 999
                      description: 审核人看到的当前环节（step_seq）；申请已进入其他环节时返回 409，不会审核未看到的环节
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
        return self._state(workflow.decide(db.session, g.user, pk, body.get("decision", ""),
                                           body.get("comment"), seen_step=body.get("step")))

    @api_expose("/<int:pk>/withdraw", methods=["POST"])
    @protect()
    @rest_safe
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
        return self._state(workflow.withdraw(db.session, g.user, pk, body.get("comment")))

    @api_expose("/<int:pk>/resubmit", methods=["POST"])
    @protect()
    @rest_safe
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
        return self._state(workflow.resubmit(db.session, g.user, pk, None, body.get("evidence_ids") or [],
                                                   body.get("comment")))
