"""小升初 screens: the county's 小学毕业生名单 import (template → upload → check → preview → import), the read-only
list of the graduates it holds, and the school's 待补录 list of admitted entrants whose ★ fields are still missing."""
import io

from flask import abort, flash, g, jsonify, redirect, request, send_file, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import func, select

from app import rosters, spreadsheets, tasks
from app.errors import RuleError
from app.extensions import db
from app.i18n import _l
from app.scoping import ScopedInterface, apply_scope, current_scope
from models import Region, Student
from models.admissions import RosterBatch
from models.tasks import BackgroundTask
from views.base import XuejiModelView, refused, wants_json

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PAGE = 200


def _counties() -> list[Region]:
    """The counties the user may import for: their own, or those under their city/province."""
    scope = current_scope()
    q = select(Region).where(Region.level == "county").order_by(Region.code)
    if scope.kind == "region":
        q = q.where(Region.code.like({"county": scope.region_code, "city": scope.region_code[:4] + "%",
                                      "province": scope.region_code[:2] + "%"}[scope.region_level]))
    elif not scope.is_all:
        return []
    return list(db.session.scalars(q))


class PrimaryRosterView(BaseView):
    """小学毕业生名单 import, by county staff (the same reading pipeline and preview as the admission import)."""
    route_base = "/primaryroster"
    class_permission_name = "PrimaryRoster"
    method_permission_name = {m: "import" for m in ("index", "template", "upload", "batch", "annotated", "commit",
                                                    "recheck", "task")}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        counties = _counties()
        batches = db.session.scalars(apply_scope(select(RosterBatch), RosterBatch)
                                     .order_by(RosterBatch.id.desc()).limit(50)).all()
        year = rosters.default_year(db.session, counties[0].code if len(counties) == 1 else None)
        return self.render_template("xueji/roster_import.html", counties=counties, batches=batches, year=year,
                                    max_bytes=spreadsheets.MAX_BYTES, title=_l("小学毕业生名单导入"))

    @expose("/template")
    @has_access
    def template(self):
        data = spreadsheets.build_template(rosters.COLUMNS, "小学毕业生名单", rosters.INSTRUCTIONS)
        return send_file(io.BytesIO(data), as_attachment=True, download_name="小学毕业生名单模板.xlsx", mimetype=XLSX)

    @expose("/upload", methods=["POST"])
    @has_access
    def upload(self):
        county = request.form.get("county_code", "")
        if county not in {c.code for c in _counties()}:
            abort(404)
        f = request.files.get("file")
        try:
            batch, _ = rosters.upload(db.session, g.user, f.read(spreadsheets.MAX_BYTES + 1) if f else b"",
                                      f.filename if f else "", county, request.form.get("year", type=int))
        except RuleError as exc:          # shown where the user looks: the page's XHR gets 422 {code, message}
            if wants_json():
                return jsonify({"code": exc.code, "message": exc.message}), 422
            flash(exc.message, "danger")
            return redirect(url_for("PrimaryRosterView.index"))
        url = url_for("PrimaryRosterView.batch", pk=batch.id)
        return jsonify({"redirect": url}) if wants_json() else redirect(url)

    def _batch(self, pk) -> RosterBatch:
        batch = db.session.scalars(apply_scope(select(RosterBatch).where(RosterBatch.id == pk), RosterBatch)).first()
        return batch or abort(404)

    def _task(self, batch: RosterBatch) -> dict | None:
        task = tasks.latest(db.session, rosters.TASK_KINDS, batch.id)
        return tasks.status(task) if task is not None else None

    def _task_page(self, batch: RosterBatch, task: dict):
        return self.render_template("xueji/task_page.html", batch=batch, task=task,
                                    task_url=url_for("PrimaryRosterView.task", pk=batch.id),
                                    retry_url=url_for("PrimaryRosterView.recheck", pk=batch.id),
                                    subtitle=f"{batch.county.name} · {batch.year}年毕业",
                                    back_url=url_for("PrimaryRosterView.index"), title=_l("小学毕业生名单校验结果"))

    def _checked(self, batch: RosterBatch, task: dict | None):
        """The check to show: a small roster checked now (against today's data, as always); a large one's check as
        its background task saved it — started when there is none yet (a task, returned instead)."""
        if not rosters.background(batch):
            return rosters.recheck(db.session, batch, g.user)
        checked = rosters.saved_check(batch)
        if checked is None and (task is None or task["state"] != "失败"):
            return rosters.recheck_or_queue(db.session, g.user, batch)
        return checked

    @expose("/batch/<int:pk>")
    @has_access
    def batch(self, pk):
        batch = self._batch(pk)
        task = self._task(batch)
        if task is not None and task["live"]:                  # 校验中… / 导入中…: its progress, then the result
            return self._task_page(batch, task)
        checked = self._checked(batch, task)
        if isinstance(checked, BackgroundTask):
            return redirect(url_for("PrimaryRosterView.batch", pk=pk))
        if checked is None:                                     # a large roster whose check failed: why, and 重新校验
            return self._task_page(batch, task)
        page = max(request.args.get("page", 1, type=int) or 1, 1)
        bad = sorted(checked.bad_rows)
        by_row: dict[int, list] = {}
        for issue in checked.issues:
            by_row.setdefault(issue.row, []).append(issue)
        shown = set(bad[(page - 1) * PAGE:page * PAGE])
        rows = [r for r in checked.rows if r.number in shown]
        return self.render_template("xueji/roster_batch.html", batch=batch, checked=checked, by_row=by_row,
                                    rows=rows, page=page, pages=max((len(bad) + PAGE - 1) // PAGE, 1),
                                    columns=[c.name for c in rosters.COLUMNS], task=task,
                                    task_url=url_for("PrimaryRosterView.task", pk=batch.id),
                                    retry_url=url_for("PrimaryRosterView.recheck", pk=batch.id),
                                    saved=rosters.background(batch), title=_l("小学毕业生名单校验结果"))

    @expose("/batch/<int:pk>/task")
    @has_access
    def task(self, pk):
        """Polled by the batch page while its check or import runs: {state, live, step, done, total, message}."""
        task = self._task(self._batch(pk))
        return jsonify(task) if task is not None else (jsonify({"live": False}), 404)

    @expose("/batch/<int:pk>/recheck", methods=["POST"])
    @has_access
    def recheck(self, pk):
        """重新校验: a large roster by a background task (the page shows its progress), a small one on the page."""
        batch = self._batch(pk)
        with refused():
            rosters.recheck_or_queue(db.session, g.user, batch)
        return redirect(url_for("PrimaryRosterView.batch", pk=pk))

    @expose("/batch/<int:pk>/annotated")
    @has_access
    def annotated(self, pk):
        batch = self._batch(pk)
        checked = rosters.saved_check(batch) if rosters.background(batch) else None
        if checked is None:
            checked = rosters.check_batch(db.session, batch)
            db.session.rollback()
        data = spreadsheets.annotate(checked.rows, checked.issues, rosters.COLUMNS)
        return send_file(io.BytesIO(data), as_attachment=True, mimetype=XLSX,
                         download_name=f"校验结果_{batch.filename.rsplit('.', 1)[0]}.xlsx")

    @expose("/batch/<int:pk>/commit", methods=["POST"])
    @has_access
    def commit(self, pk):
        batch = self._batch(pk)
        with refused():
            result = rosters.import_or_queue(db.session, g.user, batch, request.form.get("mode") == "all_or_nothing")
            if not isinstance(result, BackgroundTask):      # a task: the batch page shows 导入中… then the result
                flash(rosters.imported_message(*result), "success")
        return redirect(url_for("PrimaryRosterView.batch", pk=pk))


class PrimaryGraduateView(XuejiModelView):
    """The 小学毕业生 a county holds: read-only, never 在校; 初中 schools admit them by 学籍号 + 姓名."""
    datamodel = ScopedInterface(Student)
    class_permission_name = "Student"
    route_base = "/primarygraduate"
    include_route_methods = {"list", "show"}
    base_filters = [["stage", FilterEqual, rosters.PRIMARY]]
    list_title = show_title = _l("小学毕业生")
    label_columns = {"xjh": _l("全国学籍号"), "name": _l("姓名"), "sex_label": _l("性别"), "birth_date": _l("出生日期"),
                     "school": _l("毕业学校"), "graduated_on": _l("毕业日期"), "id_number": _l("身份证件号")}
    list_columns = ["xjh", "name", "sex_label", "birth_date", "school", "graduated_on"]
    show_columns = ["xjh", "name", "sex_label", "birth_date", "id_number", "school", "graduated_on"]
    search_columns = ["xjh", "name", "school"]
    base_order = ("id", "asc")


class IncompleteView(BaseView):
    """待补录: entrants admitted from a roster whose ★ fields the roster did not carry, with what each lacks."""
    route_base = "/incomplete"
    class_permission_name = "Student"
    method_permission_name = {"index": "read"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        page = max(request.args.get("page", 1, type=int) or 1, 1)
        base = apply_scope(select(Student).where(Student.needs_completion.is_(True),
                                                 Student.deleted_at.is_(None)), Student)
        total = db.session.execute(select(func.count()).select_from(base.subquery())).scalar()
        students = db.session.scalars(base.order_by(Student.school_id, Student.id)
                                      .offset((page - 1) * PAGE).limit(PAGE)).all()
        rows = [(s, rosters.missing_labels(s)) for s in students]
        can_edit = self.appbuilder.sm.has_access("can_write", "Student")
        return self.render_template("xueji/incomplete.html", rows=rows, total=total, page=page,
                                    pages=max((total + PAGE - 1) // PAGE, 1), can_edit=can_edit,
                                    title=_l("待补录学生"))

