"""Screens and REST resources of the 学籍 records: regions, schools, classes, students."""
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqual

from app.i18n import _l
from app.scoping import ScopeFilter, ScopedInterface
from models import Region, School, SchoolClass, Student
from views.base import XuejiApi, XuejiModelView

REGION_LABELS = {"code": _l("行政区划代码"), "name": _l("名称"), "level": _l("级别"), "level_label": _l("级别"),
                 "parent": _l("上级区划"), "parent_code": _l("上级代码")}
SCHOOL_LABELS = {"code": _l("学校标识码"), "name": _l("学校名称"), "county": _l("所属区县"), "county_code": _l("区县代码"),
                 "city_code": _l("地市代码"), "province_code": _l("省代码"), "school_type": _l("办学类型"),
                 "schooling": _l("学制"), "address": _l("地址"), "principal": _l("校长"), "phone": _l("联系电话")}
CLASS_LABELS = {"school": _l("学校"), "school_id": _l("学校ID"), "stage": _l("学段"), "cohort_year": _l("年级(入学年份)"),
                "class_no": _l("班号"), "name": _l("班级名称"), "capacity": _l("班额(空=区县默认)")}
STUDENT_LABELS = {"xjh": _l("全国学籍号"), "name": _l("姓名"), "sex": _l("性别"), "sex_label": _l("性别"),
                  "birth_date": _l("出生日期"), "id_type": _l("身份证件类型"), "id_number": _l("身份证件号"),
                  "ethnicity": _l("民族"), "school": _l("学校"), "school_id": _l("学校ID"), "stage": _l("学段"),
                  "cohort_year": _l("年级"), "school_class": _l("班级"), "class_id": _l("班级ID"), "status": _l("学籍状态")}
IN_SCOPE = [["id", ScopeFilter, None]]


class RegionView(XuejiModelView):
    datamodel = ScopedInterface(Region)
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
    base_order = ("code", "asc")


class SchoolClassView(XuejiModelView):
    datamodel = ScopedInterface(SchoolClass)
    class_permission_name = "SchoolClass"
    route_base = "/schoolclass"
    list_title = show_title = _l("班级")
    add_title, edit_title = _l("新增班级"), _l("编辑班级")
    label_columns = CLASS_LABELS
    list_columns = ["school", "stage", "cohort_year", "class_no", "name", "capacity"]
    add_columns = edit_columns = show_columns = ["school", "stage", "cohort_year", "class_no", "name",
                                                 "capacity"]
    search_columns = ["school", "stage", "cohort_year", "name"]
    base_order = ("cohort_year", "desc")


class StudentView(XuejiModelView):
    datamodel = ScopedInterface(Student)
    class_permission_name = "Student"
    route_base = "/student"
    list_title = show_title = _l("学生学籍")
    add_title, edit_title = _l("新增学生"), _l("编辑学生")
    label_columns = STUDENT_LABELS
    list_columns = ["xjh", "name", "sex_label", "birth_date", "school", "stage", "cohort_year", "school_class",
                    "status"]
    show_columns = ["xjh", "name", "sex_label", "birth_date", "id_type", "id_number", "ethnicity", "school",
                    "stage", "cohort_year", "school_class", "status"]
    add_columns = edit_columns = ["xjh", "name", "sex", "birth_date", "id_type", "id_number", "ethnicity",
                                  "school", "stage", "cohort_year", "school_class", "status"]
    export_columns = ["xjh", "name", "sex_label", "birth_date", "id_number", "school.name", "stage",
                      "cohort_year", "school_class.name", "status"]
    search_columns = ["name", "xjh", "id_number", "school", "stage", "cohort_year", "school_class", "status",
                      "sex"]
    base_order = ("id", "asc")

    @action("export_selected", _l("导出所选 (Excel)"), None, "fa-file-excel-o")
    def export_selected(self, items):
        items = items if isinstance(items, list) else [items]
        return self.send_rows(items, "xlsx")


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


class SchoolClassApi(XuejiApi):
    resource_name = "schoolclass"
    datamodel = ScopedInterface(SchoolClass)
    class_permission_name = "SchoolClass"
    list_columns = show_columns = ["id", "school_id", "stage", "cohort_year", "class_no", "name", "capacity"]
    add_columns = edit_columns = ["school_id", "stage", "cohort_year", "class_no", "name", "capacity"]
    search_columns = ["school_id", "stage", "cohort_year"]


class StudentApi(XuejiApi):
    resource_name = "student"
    datamodel = ScopedInterface(Student)
    class_permission_name = "Student"
    list_columns = show_columns = ["id", "xjh", "name", "sex", "birth_date", "id_type", "id_number", "ethnicity",
                                   "school_id", "stage", "cohort_year", "class_id", "status"]
    add_columns = edit_columns = ["xjh", "name", "sex", "birth_date", "id_type", "id_number", "ethnicity",
                                  "school_id", "stage", "cohort_year", "class_id", "status"]
    search_columns = ["xjh", "name", "school_id", "stage", "cohort_year", "class_id", "status", "sex"]
    order_columns = ["id", "xjh", "name", "cohort_year"]
