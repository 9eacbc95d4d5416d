"""提交申请: the forms a school registrar files requests with — 关键数据变更, 学籍异动 (start page and form), 转学
(转入) — and /api/v1/evidence/ for evidence uploaded ahead of a REST filing. Each form calls app.filing.file_request,
the same service as POST /api/v1/request/file."""
from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.api import BaseApi, expose as api_expose, protect
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import select

from app import clock, filing, keydata, statuschange
from app.extensions import db
from app.i18n import _l
from app.scoping import apply_scope, current_scope
from app.students import key_fields
from models import School, SchoolClass, Student
from views.base import refused, rest_safe


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


def _uploads(field: str = "evidence") -> list[tuple]:
    """The form's evidence files as (stream, filename): the service stores them once the request is valid."""
    return [(f.stream, f.filename) for f in request.files.getlist(field) if f and f.filename]


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
            with refused():
                req = filing.file_request(db.session, g.user, "key_change", {
                    "student_id": student.id, "changes": {f: request.form.get(f) for f in fields},
                    "reason": request.form.get("reason"), "problem_id": problem_id}, uploads=_uploads())
                flash(f"关键数据变更申请 #{req.id} 已提交，等待学校学籍主管领导审核", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
        return self.render_template("xueji/keychange.html", student=student, fields=fields, classes=classes,
                                    problem_id=problem_id, form=request.form)


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
            with refused():
                req = filing.file_request(db.session, g.user, "status_change",
                                          {**request.form.to_dict(), "student_id": student.id}, uploads=_uploads())
                flash(f"学籍异动申请 #{req.id} 已提交，等待学校学籍主管领导审核", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
        return self.render_template("xueji/statuschange.html", student=student, types=types, classes=classes,
                                    available=available,
                                    form=request.form if request.method == "POST" else request.args,
                                    today=clock.today())


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
            with refused():
                kind = "graduate_move" if request.form.get("kind") == "graduate_move" else "transfer"
                req = filing.file_request(db.session, g.user, kind, request.form.to_dict())
                flash(f"申请 #{req.id} 已提交", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
        return self.render_template("xueji/transfer.html", classes=classes, form=request.form,
                                    title=_l("转学申请（转入）"))


class EvidenceApi(BaseApi):
    """/api/v1/evidence/: upload one evidence file (multipart field `file`, with `student_id`)."""
    resource_name = "evidence"
    class_permission_name = "Request"
    method_permission_name = {"upload": "file"}

    @api_expose("/", methods=["POST"])
    @protect()
    @rest_safe
    def upload(self):
        f = request.files.get("file")
        row = filing.upload_evidence(db.session, g.user, f.stream if f else None, f.filename if f else None,
                                     request.form.get("student_id"))
        return self.response(201, result={"id": row.id, "mime": row.mime, "size": row.size})
