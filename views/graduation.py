"""毕业升级 screens: graduation preview and confirmation (school), 毕业生回退 and 升级 (county)."""
from datetime import date
from urllib.parse import urlencode

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import BaseView
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import select

from app import graduation, schoolyear
from app.extensions import db
from app.i18n import _l
from app.scoping import apply_scope, current_scope
from models import School, Student
from views.base import refused

# 毕业审核 (county menu): the 高中 graduation requests waiting for a decision (FAB list filters: 3 = equals)
GRADUATION_REVIEW_HREF = "/request/list/?" + urlencode({"_flt_3_kind": "graduation", "_flt_3_state": "审核中"})


def _schools():
    return list(db.session.scalars(apply_scope(select(School), School).order_by(School.code)))


class GraduationView(BaseView):
    route_base = "/graduation"
    class_permission_name = "Graduation"
    method_permission_name = {"index": "graduate", "confirm": "graduate", "rollback": "rollback",
                              "promote": "promote"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        schools = _schools()
        school_id = int(request.args.get("school_id") or (schools[0].id if schools else 0))
        if school_id not in {s.id for s in schools}:
            abort(404)
        school = next(s for s in schools if s.id == school_id)
        stage = request.args.get("stage") or ("高中" if school.school_type == "高中" else "初中")
        plan = graduation.preview(db.session, school_id, stage)
        return self.render_template("xueji/graduation.html", plan=plan, schools=schools, title=_l("毕业"),
                                    outcomes=graduation.OUTCOMES, confirm_text=graduation.confirm_text(plan))

    @expose("/confirm", methods=["POST"])
    @has_access
    def confirm(self):
        school_id = request.form.get("school_id", type=int) or 0
        stage = request.form.get("stage", "")
        outcomes = {k[len("outcome_"):]: v for k, v in request.form.items() if k.startswith("outcome_")}
        with refused():
            n, req = graduation.graduate(db.session, g.user, school_id, stage, outcomes)
            if req is not None:
                flash(f"已提交{n}名学生的毕业申请，等待区县教育局审核（#{req.id}）", "success")
            else:
                flash(f"已为{n}名学生办理毕业", "success")
        return redirect(url_for("GraduationView.index", school_id=school_id, stage=stage))

    @expose("/rollback", methods=["GET", "POST"])
    @has_access
    def rollback(self):
        """毕业生回退 (county): find graduates of the county's schools, choose, give the reason, confirm."""
        if request.method == "POST":
            with refused(abort_on=(403, 404)):
                n = graduation.rollback(db.session, g.user, request.form.getlist("ids"),
                                        request.form.get("reason", ""))
                flash(f"已回退{n}名毕业生", "success")
            return redirect(url_for("GraduationView.rollback", **{k: v for k, v in request.args.items()}))
        schools = _schools()
        school_id = request.args.get("school_id", type=int)
        year = request.args.get("year", type=int)
        q = (request.args.get("q") or "").strip()[:40]
        query = select(Student).where(Student.status.in_(graduation.OUTCOMES), Student.graduated_on.is_not(None),
                                      Student.deleted_at.is_(None))
        if school_id is not None and school_id not in {s.id for s in schools}:
            abort(404)
        if school_id:
            query = query.where(Student.school_id == school_id)
        if year and 2000 <= year <= 2100:
            query = query.where(Student.graduated_on.between(date(year, 1, 1), date(year, 12, 31)))
        if q:
            query = query.where((Student.xjh == q.upper()) | Student.name.contains(q, autoescape=True))
        rows = db.session.scalars(apply_scope(query, Student).order_by(Student.school_id, Student.class_id,
                                                                        Student.id).limit(201)).all()
        names = {s.id: s.name for s in schools}
        return self.render_template("xueji/graduate_rollback.html", rows=rows[:200], more=len(rows) > 200,
                                    schools=schools, names=names, school_id=school_id, year=year, q=q,
                                    title=_l("毕业生回退"))

    @expose("/promote", methods=["GET", "POST"])
    @has_access
    def promote(self):
        scope = current_scope()
        if scope.kind != "region" or scope.region_level != "county":
            abort(403)
        if request.method == "POST":
            with refused():
                done = schoolyear.promote(db.session, g.user, scope.region_code,
                                          request.form.get("to_year", type=int) or 0)
                flash("已升级到新学年" if done else "本区县已是该学年，无需重复升级", "success" if done else "info")
        plan = schoolyear.preview(db.session, scope.region_code)
        return self.render_template("xueji/promote.html", plan=plan, title=_l("升级"))
