"""学校管理: regions, schools and classes (新增年级) — screens and REST resources."""
from flask import flash, g, redirect, request, url_for
from flask_appbuilder.models.sqla.filters import FilterEqual
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import select
from wtforms import BooleanField

from app import classes as class_rules
from app import schoolyear
from app.extensions import db
from app.i18n import _l
from app.roles import VIEW_RW
from app.scoping import ScopedInterface, apply_scope, current_scope
from models import Region, School, SchoolClass
from views.base import XuejiApi, XuejiModelView, refused
from views.student_list import ClassInterface, WordsInterface


REGION_LABELS = {"code": _l("行政区划代码"), "name": _l("名称"), "level": _l("级别"), "level_label": _l("级别"),
                 "parent": _l("上级区划"), "parent_code": _l("上级代码")}
SCHOOL_LABELS = {"code": _l("学校标识码"), "name": _l("学校名称"), "county": _l("所属区县"), "county_code": _l("区县代码"),
                 "city_code": _l("地市代码"), "province_code": _l("省代码"), "school_type": _l("办学类型"),
                 "schooling": _l("学制"), "address": _l("地址"), "principal": _l("校长"), "phone": _l("联系电话")}
CLASS_LABELS = {"school": _l("学校"), "school_id": _l("学校ID"), "stage": _l("学段"), "cohort_year": _l("年级(入学年份)"),
                "class_no": _l("班号"), "name": _l("班级名称"), "capacity": _l("班额(空=区县默认)")}


class RegionView(XuejiModelView):
    datamodel = WordsInterface(Region)
    class_permission_name = "Region"
    route_base = "/region"
    list_title = show_title = _l("行政区划")
    add_title, edit_title = _l("新增行政区划"), _l("编辑行政区划")
    label_columns = REGION_LABELS
    list_columns = ["code", "name", "level_label", "parent"]
    add_columns = edit_columns = ["code", "name", "level", "parent"]
    show_columns = ["code", "name", "level_label", "parent"]
    search_columns = ["code", "name", "level"]
    base_order = ("code", "asc")


class SchoolView(XuejiModelView):
    datamodel = ScopedInterface(School)
    class_permission_name = "School"
    route_base = "/school"
    list_title = show_title = _l("学校信息")
    add_title, edit_title = _l("新增学校"), _l("学校信息维护")
    label_columns = SCHOOL_LABELS
    list_columns = ["code", "name", "county", "school_type", "schooling", "principal", "phone"]
    show_columns = ["code", "name", "county", "school_type", "schooling", "address", "principal", "phone"]
    add_columns = edit_columns = show_columns
    search_columns = ["code", "name", "county", "school_type"]
    add_form_query_rel_fields = edit_form_query_rel_fields = {"county": [["level", FilterEqual, "county"]]}
    description_columns = {"schooling": _l("学制决定毕业年级：填错会导致学生提前毕业或丢失学籍，修改须确认")}
    base_order = ("code", "asc")

    def pre_update(self, item):
        # the rule itself (a school with students needs the confirmation) is app.schools.schooling_confirmed
        item.confirm_schooling = request.form.get("confirm_schooling") in ("y", "1", "on")

    edit_columns = show_columns + ["confirm_schooling"]
    edit_form_extra_fields = {"confirm_schooling": BooleanField(_l("确认修改学制"), default=False)}

    def process_form(self, form, is_created):
        if hasattr(form, "confirm_schooling"):          # a confirmation, not a column
            del form.confirm_schooling


class SchoolClassView(XuejiModelView):
    datamodel = ClassInterface(SchoolClass)
    class_permission_name = "SchoolClass"
    route_base = "/schoolclass"
    method_permission_name = {**VIEW_RW, "addgrade": "write"}
    list_title = show_title = _l("班级")
    add_title, edit_title = _l("新增班级"), _l("编辑班级")
    label_columns = {**CLASS_LABELS, "seats": _l("在籍人数"), "cap": _l("班额")}
    list_columns = ["school", "stage", "cohort_year", "class_no", "name", "capacity"]
    add_columns = edit_columns = show_columns = ["school", "stage", "cohort_year", "class_no", "name",
                                                 "capacity"]
    search_columns = ["school", "stage", "cohort_year", "name"]
    base_order = ("cohort_year", "desc")
    list_template = "xueji/class_list.html"
    formatters_columns = {"capacity": lambda v: v if v not in (None, "") else "区县默认"}

    @expose("/addgrade", methods=["GET", "POST"])
    @has_access
    def addgrade(self):
        """每学年追加一年级班级: the entry grade and its classes in one step."""
        scope = current_scope()
        schools = list(db.session.scalars(apply_scope(select(School), School, scope).order_by(School.code)))
        if request.method == "POST":
            with refused():
                made = class_rules.add_grade(db.session, g.user, request.form.get("school_id", type=int) or 0,
                                             request.form.get("stage", ""),
                                             request.form.get("cohort_year", type=int) or 0,
                                             request.form.get("classes", type=int) or 0)
                flash(f"已新增{len(made)}个班级", "success")
                return redirect(url_for("SchoolClassView.list"))
        year = schoolyear.admission_year(db.session, schools[0].county_code) if schools else schoolyear.by_date()
        return self.render_template("xueji/add_grade.html", schools=schools, year=year, title=_l("新增年级"))


class RegionApi(XuejiApi):
    resource_name = "region"
    datamodel = ScopedInterface(Region)
    class_permission_name = "Region"
    list_columns = show_columns = ["id", "code", "name", "level", "parent_code"]
    add_columns = edit_columns = ["code", "name", "level", "parent_code"]


class SchoolApi(XuejiApi):
    resource_name = "school"
    datamodel = ScopedInterface(School)
    class_permission_name = "School"
    list_columns = show_columns = ["id", "code", "name", "county_code", "city_code", "province_code",
                                   "school_type", "schooling", "address", "principal", "phone"]
    add_columns = edit_columns = ["code", "name", "county_code", "school_type", "schooling", "address",
                                  "principal", "phone"]
    search_columns = ["code", "name", "county_code", "school_type"]

    def pre_update(self, item):
        # PUT …?confirm_schooling=1 confirms a 学制 change on a school with students (app.schools)
        item.confirm_schooling = request.args.get("confirm_schooling") in ("1", "true", "y")


class SchoolClassApi(XuejiApi):
    resource_name = "schoolclass"
    datamodel = ScopedInterface(SchoolClass)
    class_permission_name = "SchoolClass"
    list_columns = show_columns = ["id", "school_id", "stage", "cohort_year", "class_no", "name", "capacity"]
    add_columns = edit_columns = ["school_id", "stage", "cohort_year", "class_no", "name", "capacity"]
    search_columns = ["school_id", "stage", "cohort_year"]
