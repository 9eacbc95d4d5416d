"""Screens and REST resources of the 学籍 records: regions, schools, classes, students."""
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterEqual

from app.scoping import ScopeFilter, ScopedInterface
from models import Region, School, SchoolClass, Student
from views.base import XuejiApi, XuejiModelView

REGION_LABELS = {"code": "行政区划代码", "name": "名称", "level": "级别", "level_label": "级别",
                 "parent": "上级区划", "parent_code": "上级代码"}
SCHOOL_LABELS = {"code": "学校标识码", "name": "学校名称", "county": "所属区县", "county_code": "区县代码",
                 "city_code": "地市代码", "province_code": "省代码", "school_type": "办学类型",
                 "schooling": "学制", "address": "地址", "principal": "校长", "phone": "联系电话"}
CLASS_LABELS = {"school": "学校", "school_id": "学校ID", "stage": "学段", "cohort_year": "年级(入学年份)",
                "class_no": "班号", "name": "班级名称", "capacity": "班额(空=区县默认)"}
STUDENT_LABELS = {"xjh": "全国学籍号", "name": "姓名", "sex": "性别", "sex_label": "性别",
                  "birth_date": "出生日期", "id_type": "身份证件类型", "id_number": "身份证件号",
                  "ethnicity": "民族", "school": "学校", "school_id": "学校ID", "stage": "学段",
                  "cohort_year": "年级", "school_class": "班级", "class_id": "班级ID", "status": "学籍状态"}
IN_SCOPE = [["id", ScopeFilter, None]]


class RegionView(XuejiModelView):
    datamodel = ScopedInterface(Region)
    class_permission_name = "Region"
    route_base = "/region"
    list_title = show_title = "行政区划"
    add_title, edit_title = "新增行政区划", "编辑行政区划"
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
    list_title = show_title = "学校信息"
    add_title, edit_title = "新增学校", "学校信息维护"
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
    list_title = show_title = "班级"
    add_title, edit_title = "新增班级", "编辑班级"
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
    list_title = show_title = "学生学籍"
    add_title, edit_title = "新增学生", "编辑学生"
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

    @action("export_selected", "导出所选 (Excel)", None, "fa-file-excel-o")
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
