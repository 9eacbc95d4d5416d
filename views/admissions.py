"""招生入学 screens: plans and their change requests, template upload → check → preview → commit, the annotated
workbook, admissions with 统一招生 confirmation and 重复招生 arbitration, and 分班 by template or selection."""
import io

from flask import abort, flash, g, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.actions import action
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import func, select

from app import admissions, filing, placement, spreadsheets, tasks
from app.errors import RuleError
from app.extensions import db
from app.i18n import _, _l
from app.roles import VIEW_RW
from app.scoping import ScopedInterface, apply_scope, current_scope
from models import School, SchoolClass, Student
from models.admissions import CONFLICT, Admission, ImportBatch, Quota
from models.tasks import BackgroundTask
from views.base import XuejiApi, XuejiModelView, refused, wants_json

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _schools():
    """The 中学 of the user's scope (a county's 小学, held for its graduates' records, admit and place no one)."""
    return list(db.session.scalars(apply_scope(select(School).where(School.school_type != "小学"), School)
                                   .order_by(School.code)))


def _school(school_id) -> School:
    school = next((s for s in _schools() if s.id == int(school_id or 0)), None)
    return school or abort(404)


def _county_of_scope() -> str | None:
    """The county whose school year the page shows: the school's, the bureau's own, or none (installation)."""
    scope = current_scope()
    if scope.kind == "school":
        return db.session.execute(select(School.county_code).where(School.id == scope.school_id)).scalar()
    return scope.region_code if scope.kind == "region" and scope.region_level == "county" else None


PAGE_ROWS = 200                 # rows per page of the check preview




def _page_links(page: int, pages: int) -> list[int | None]:
    """Page numbers to link: the first, the last and two either side of the current one (None = a gap)."""
    wanted = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
    out: list[int | None] = []
    for before, n in zip([None] + wanted, wanted):
        if before is not None and n - before > 1:
            out.append(None)
        out.append(n)
    return out


def _xlsx(data: bytes, name: str):
    return send_file(io.BytesIO(data), as_attachment=True, download_name=name, mimetype=XLSX)


class QuotaView(XuejiModelView):
    datamodel = ScopedInterface(Quota)
    class_permission_name = "Quota"
    route_base = "/quota"
    method_permission_name = {**VIEW_RW, "usage": "usage", "change": "change"}
    list_title = show_title = _l("招生计划数")
    add_title, edit_title = _l("设置招生计划数"), _l("修改招生计划数")
    label_columns = {"school": _l("学校"), "year": _l("年度"), "stage": _l("学段"), "planned": _l("计划数")}
    list_columns = ["school", "year", "stage", "planned"]
    add_columns = edit_columns = show_columns = ["school", "year", "stage", "planned"]
    search_columns = ["school", "year", "stage"]
    base_order = ("year", "desc")
    list_template = "xueji/quota_list.html"

    def _usage(self):
        """Plan, used and remaining for the user's scope: one grouped query."""
        used = dict(((s, y, st), n) for s, y, st, n in db.session.execute(apply_scope(
            select(Admission.school_id, Admission.year, Admission.stage, func.count())
            .where(Admission.current == 1).group_by(Admission.school_id, Admission.year, Admission.stage),
            Admission)).all())
        quotas = db.session.scalars(apply_scope(select(Quota), Quota).order_by(Quota.year.desc(), Quota.school_id))
        return [(q, used.get((q.school_id, q.year, q.stage), 0)) for q in quotas]

    @expose("/usage")
    @has_access
    def usage(self):
        return self.render_template("xueji/quota_usage.html", rows=self._usage(), title=_l("招生计划使用情况"))

    @expose("/change/<int:pk>", methods=["GET", "POST"])
    @has_access
    def change(self, pk):
        """招生计划数变更申请 (current year only): the county approves through the workflow engine."""
        quota = self.datamodel.get(pk) or abort(404)
        taken = admissions.used(db.session, quota.school_id, quota.year, quota.stage)
        if request.method == "POST":
            with refused():
                req = filing.file_request(db.session, g.user, "quota_change",
                                          {**request.form.to_dict(), "quota_id": quota.id})
                flash(f"招生计划数变更申请 #{req.id} 已提交", "success")
                return redirect(url_for("RequestView.show", pk=req.id))
        return self.render_template("xueji/quota_change.html", quota=quota, used=taken, title=_l("招生计划数变更申请"))


class AdmissionImportView(BaseView):
    """自主招生 by template: download → fill → upload → check (dry run) → preview → commit."""
    route_base = "/admissionimport"
    class_permission_name = "Admission"
    method_permission_name = {"index": "import", "template": "import", "upload": "import", "batch": "import",
                              "annotated": "import", "commit": "import", "recheck": "import", "task": "import"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        batches = db.session.scalars(apply_scope(select(ImportBatch).where(ImportBatch.kind == "admission"),
                                                 ImportBatch).order_by(ImportBatch.id.desc()).limit(50)).all()
        return self.render_template("xueji/admission_import.html", schools=_schools(), batches=batches,
                                    max_bytes=spreadsheets.MAX_BYTES,
                                    year=admissions.admission_year(db.session, _county_of_scope()), title=_l("招生录取（模板导入）"))

    @expose("/template")
    @has_access
    def template(self):
        data = spreadsheets.build_template(admissions.COLUMNS, "录取名单", admissions.INSTRUCTIONS)
        return _xlsx(data, "自主招生录取名单模板.xlsx")

    @expose("/upload", methods=["POST"])
    @has_access
    def upload(self):
        """Read and check the file once, keep it and its check, then show the batch. A refused file answers the
        page's XHR upload with 422 {code, message} (the page shows the message where the user looks); a plain
        form post gets the message flashed on the upload page."""
        school = _school(request.form.get("school_id"))
        f = request.files.get("file")
        if f is None or not f.filename:
            return self._refused("请选择要上传的文件", "no_file")
        try:
            batch, checked = admissions.upload(db.session, g.user, school, f.read(spreadsheets.MAX_BYTES + 1),
                                               f.filename)
        except RuleError as exc:
            return self._refused(exc.message, exc.code)
        if checked is not None and batch.state == "已校验":     # None: a background task checks it
            admissions.save_check(batch, checked)
        url = url_for("AdmissionImportView.batch", pk=batch.id)
        if wants_json():
            return jsonify({"redirect": url})
        return redirect(url)

    def _refused(self, message: str, code: str):
        if wants_json():
            return jsonify({"code": code, "message": message}), 422
        flash(message, "danger")
        return redirect(url_for("AdmissionImportView.index"))

    def _batch(self, pk) -> ImportBatch:
        batch = db.session.scalars(apply_scope(select(ImportBatch).where(ImportBatch.id == pk), ImportBatch)).first()
        return batch or abort(404)

    def _checked(self, batch: ImportBatch, fresh: bool = False):
        """The batch's kept check (written at upload, or by its background task); checked again only when asked or
        when none is kept — a large list by a background task (returned instead)."""
        checked = None if fresh else admissions.saved_check(batch)
        if checked is None:
            checked = admissions.recheck_or_queue(db.session, g.user, batch)
            if isinstance(checked, admissions.Checked):
                admissions.save_check(batch, checked)
        return checked

    def _task(self, batch: ImportBatch) -> dict | None:
        task = tasks.latest(db.session, admissions.TASK_KINDS, batch.id)
        return tasks.status(task) if task is not None else None

    def _task_page(self, batch: ImportBatch, task: dict):
        return self.render_template("xueji/task_page.html", batch=batch, task=task,
                                    task_url=url_for("AdmissionImportView.task", pk=batch.id),
                                    retry_url=url_for("AdmissionImportView.recheck", pk=batch.id),
                                    subtitle=f"{batch.school.name} {batch.year}年 · {batch.method}",
                                    back_url=url_for("AdmissionImportView.index"), title=_l("校验结果"))

    @expose("/batch/<int:pk>")
    @has_access
    def batch(self, pk):
        batch = self._batch(pk)
        task = self._task(batch)
        if task is not None and task["live"]:                  # 校验中… / 提交中…: its progress, then the result
            return self._task_page(batch, task)
        if batch.state != "已校验":
            return self.render_template("xueji/admission_batch_done.html", batch=batch, task=task,
                                        rows=admissions.committed_rows(db.session, batch), title=_l("提交结果"))
        fresh = request.args.get("recheck") == "1"
        if task is not None and task["state"] == "失败" and not fresh and admissions.saved_check(batch) is None:
            return self._task_page(batch, task)                  # nothing to show but why it failed
        checked = None
        with refused():
            checked = self._checked(batch, fresh=fresh)
        if checked is None:
            return redirect(url_for("AdmissionImportView.index"))
        if isinstance(checked, BackgroundTask):
            return redirect(url_for("AdmissionImportView.batch", pk=pk))
        by_row = checked.by_row()
        only = request.args.get("show") == "problems"
        shown = [r for r in checked.rows if r.number in by_row] if only else checked.rows
        pages = max(1, -(-len(shown) // PAGE_ROWS))
        page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
        lines = []
        for row in shown[(page - 1) * PAGE_ROWS:page * PAGE_ROWS]:
            found = by_row.get(row.number, [])
            errors = [i for i in found if i.level == "error"]
            lines.append({
                "number": row.number,
                "state": "danger" if any(i.code != "conflict" for i in errors) else ("warning" if errors else ""),
                "cells": [(row.values.get(c.name) or "",
                           "error" if any(i.column == c.name for i in errors) else
                           ("notice" if any(i.column == c.name for i in found) else ""))
                          for c in admissions.COLUMNS],
                "errors": errors, "notices": [i for i in found if i.level != "error"]})
        return self.render_template("xueji/admission_batch.html", batch=batch, checked=checked, lines=lines,
                                    task=task, task_url=url_for("AdmissionImportView.task", pk=batch.id),
                                    retry_url=url_for("AdmissionImportView.recheck", pk=batch.id),
                                    columns=[c.name for c in admissions.COLUMNS], page=page, pages=pages,
                                    page_links=_page_links(page, pages), show="problems" if only else "all",
                                    shown=len(shown), page_rows=PAGE_ROWS, title=_l("校验结果"))

    @expose("/batch/<int:pk>/task")
    @has_access
    def task(self, pk):
        """Polled by the batch page while its check or commit runs: {state, live, step, done, total, message}."""
        task = self._task(self._batch(pk))
        return jsonify(task) if task is not None else (jsonify({"live": False}), 404)

    @expose("/batch/<int:pk>/recheck", methods=["POST"])
    @has_access
    def recheck(self, pk):
        """重新校验: a large list by a background task (the page shows its progress), a small one now."""
        batch = self._batch(pk)
        with refused():
            checked = admissions.recheck_or_queue(db.session, g.user, batch)
            if isinstance(checked, admissions.Checked):
                admissions.save_check(batch, checked)
        return redirect(url_for("AdmissionImportView.batch", pk=pk))

    @expose("/batch/<int:pk>/annotated")
    @has_access
    def annotated(self, pk):
        batch = self._batch(pk)
        if batch.state == "已校验":
            checked = self._checked(batch)
            if isinstance(checked, BackgroundTask):
                flash(_("名单正在后台校验，校验完成后才能下载标注错误的文件"), "info")
                return redirect(url_for("AdmissionImportView.batch", pk=pk))
        else:           # committed: the file as it was checked at commit time (a large one: its last saved check)
            checked = admissions.saved_check(batch) if tasks.background(batch.rows) else None
            if checked is None:
                checked = admissions.check_batch(db.session, batch)
                db.session.rollback()
        data = spreadsheets.annotate(checked.rows, checked.issues, admissions.COLUMNS)
        return _xlsx(data, f"校验结果_{batch.filename.rsplit('.', 1)[0]}.xlsx")

    @expose("/batch/<int:pk>/commit", methods=["POST"])
    @has_access
    def commit(self, pk):
        batch = self._batch(pk)
        with refused():
            result = admissions.commit_or_queue(db.session, g.user, batch,
                                                request.form.get("mode") == "all_or_nothing")
            if not isinstance(result, BackgroundTask):      # a task: the batch page shows 提交中… then the result
                flash(admissions.committed_message(batch, *result), "success")
        return redirect(url_for("AdmissionImportView.batch", pk=pk))


class AdmissionView(XuejiModelView):
    """录取名单: confirmation of 统一招生 lists by the school, arbitration of 重复招生 by the county."""
    datamodel = ScopedInterface(Admission)
    class_permission_name = "Admission"
    method_permission_name = {"list": "read", "show": "read", "confirm": "confirm", "arbitrate": "arbitrate",
                              "action": "read", "action_post": "read"}
    route_base = "/admission"
    include_route_methods = {"list", "show", "action", "action_post", "arbitrate"}
    list_title = show_title = _l("录取名单")
    label_columns = {"student": _l("学生"), "school": _l("录取学校"), "year": _l("年度"), "stage": _l("学段"),
                     "method": _l("招生方式"), "state": _l("状态"), "created_at": _l("录取时间"),
                     "decided_at": _l("办结时间"), "note": _l("说明")}
    list_columns = ["student", "school", "year", "stage", "method", "state", "created_at", "note"]
    show_columns = list_columns + ["decided_at"]
    search_columns = ["school", "year", "stage", "method", "state"]
    base_order = ("id", "desc")

    @action("confirm", _l("确认录取（统一招生）"), None, "fa-check")
    def confirm(self, items):
        items = items if isinstance(items, list) else [items]
        with refused():
            n = admissions.confirm(db.session, g.user, current_scope().school_id, [i.id for i in items])
            flash(f"已确认{n}名学生，等待区县教育局审核", "success")
        return redirect(url_for("AdmissionView.list"))

    @expose("/arbitrate/<int:pk>", methods=["POST"])
    @has_access
    def arbitrate(self, pk):
        adm = self.datamodel.get(pk) or abort(404)
        with refused():
            admissions.arbitrate(db.session, g.user, adm.id, request.form.get("reason", "") or "区县仲裁")
            flash("已仲裁：保留该校录取，其他学校的录取已取消", "success")
        return redirect(url_for("AdmissionView.list", _flt_0_state=CONFLICT))


class PlacementView(BaseView):
    """分班: by template (学籍号, 姓名, 班级) with the same check/preview flow, or for selected students."""
    route_base = "/placement"
    class_permission_name = "SchoolClass"
    method_permission_name = {"index": "write", "template": "write", "upload": "write", "select": "write"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        return self.render_template("xueji/placement.html", schools=_schools(), title=_l("分班"), result=None)

    @expose("/template")
    @has_access
    def template(self):
        return _xlsx(spreadsheets.build_template(placement.COLUMNS, "分班名单", placement.INSTRUCTIONS),
                     "分班模板.xlsx")

    @expose("/upload", methods=["POST"])
    @has_access
    def upload(self):
        school = _school(request.form.get("school_id"))
        f = request.files.get("file")
        result = None
        with refused():
            rows, issues, n = placement.place_from_file(db.session, g.user, school.id,
                                                        f.read(spreadsheets.MAX_BYTES + 1) if f else b"",
                                                        f.filename if f else "")
            if issues:
                result = {"issues": issues, "rows": len(rows)}
                flash(f"有{len({i.row for i in issues})}行未通过校验，未分班", "danger")
            else:
                flash(f"已为{n}名学生分班", "success")
        return self.render_template("xueji/placement.html", schools=_schools(), title=_l("分班"), result=result)

    @expose("/select", methods=["GET", "POST"])
    @has_access
    def select(self):
        ids = [int(i) for i in request.values.getlist("ids")]
        students = db.session.scalars(apply_scope(select(Student).where(Student.id.in_(ids)), Student)).all()
        if len(students) != len(set(ids)):
            abort(404)
        if request.method == "POST" and request.form.get("class_id"):
            with refused():
                n = placement.place_selected(db.session, g.user, ids, request.form.get("class_id", type=int))
                klass = db.session.get(SchoolClass, request.form.get("class_id", type=int))
                flash(f"已将{n}名学生分入{klass.cohort_year}级{klass.name}", "success")
                return redirect(url_for("StudentView.list"))
        school_ids = {s.school_id for s in students}
        classes = db.session.scalars(select(SchoolClass).where(SchoolClass.school_id.in_(school_ids))
                                     .order_by(SchoolClass.cohort_year.desc(), SchoolClass.class_no)).all()
        return self.render_template("xueji/placement_select.html", students=students, classes=classes,
                                    title=_l("分班"))


class QuotaApi(XuejiApi):
    resource_name = "quota"
    datamodel = ScopedInterface(Quota)
    class_permission_name = "Quota"
    list_columns = show_columns = ["id", "school_id", "year", "stage", "planned"]
    add_columns = edit_columns = ["school_id", "year", "stage", "planned"]
    search_columns = ["school_id", "year", "stage"]


class AdmissionApi(XuejiApi):
    resource_name = "admission"
    datamodel = ScopedInterface(Admission)
    class_permission_name = "Admission"
    method_permission_name = {"get": "read", "get_list": "read", "info": "read"}
    include_route_methods = {"get", "get_list", "info"}
    list_columns = show_columns = ["id", "student_id", "school_id", "year", "stage", "method", "state", "batch_id",
                                   "source_row", "created_at", "decided_at", "note"]
    search_columns = ["school_id", "year", "stage", "method", "state", "student_id"]


class ImportBatchApi(XuejiApi):
    resource_name = "importbatch"
    datamodel = ScopedInterface(ImportBatch)
    class_permission_name = "Admission"
    method_permission_name = {"get": "read", "get_list": "read", "info": "read"}
    include_route_methods = {"get", "get_list", "info"}
    list_columns = show_columns = ["id", "school_id", "kind", "method", "year", "stage", "filename", "rows",
                                   "valid_rows", "error_count", "state", "request_id", "uploaded_at",
                                   "committed_at"]
    search_columns = ["school_id", "kind", "state"]

