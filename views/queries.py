"""综合查询: 在校生, 异动, 毕业生 and 历史 (students who left), each a scoped list with combinable filters (every
coded field; 姓名 / 学籍号 / 身份证件号 search, the ID also by its last digits) and .xlsx/.csv export of exactly
the rows on screen."""
from flask_appbuilder.models.sqla.filters import FilterEqual, FilterInFunction, FilterNotEqual

from app.i18n import _l
from app.roles import VIEW_RW
from app.scoping import ScopedInterface
from models import Student
from models.requests import Request
from views.student_list import StudentListInterface
from views.students import STUDENT_LIST, StudentView
from views.requests import RequestView

FINISHED = ("毕业", "结业", "肄业")
LEFT = ("转出", "退学", "开除", "死亡", "出国", "失踪", "其他离校")
QUERY_ROUTES = {"list", "show", "export"}
GRADUATE_LIST = ["xjh", "name", "sex_label", "school", "cohort_year", "status", "graduated_on", "cert_no"]


class CurrentStudentQuery(StudentView):
    datamodel = StudentListInterface(Student, list_columns=STUDENT_LIST)
    route_base = "/query/current"
    include_route_methods = QUERY_ROUTES
    method_permission_name = {**VIEW_RW}
    list_title = show_title = _l("在校生查询")
    base_filters = [["status", FilterEqual, "在校"]]


class GraduateQuery(StudentView):
    datamodel = StudentListInterface(Student, list_columns=GRADUATE_LIST)
    route_base = "/query/graduates"
    include_route_methods = QUERY_ROUTES
    method_permission_name = {**VIEW_RW}
    list_title = show_title = _l("毕业生查询")
    list_columns = GRADUATE_LIST
    label_columns = {**StudentView.label_columns, "graduated_on": _l("毕业日期"), "cert_no": _l("毕业证号")}
    # this installation's 中学 graduates; the county's 小学毕业生 roster has its own list (views/primary.py)
    base_filters = [["status", FilterInFunction, lambda: FINISHED],
                    ["stage", FilterNotEqual, "小学"]]


class HistoryQuery(StudentView):
    datamodel = StudentListInterface(Student, list_columns=STUDENT_LIST)
    route_base = "/query/history"
    include_route_methods = QUERY_ROUTES
    method_permission_name = {**VIEW_RW}
    list_title = show_title = _l("历史数据查询（已离校学生）")
    base_filters = [["status", FilterInFunction, lambda: LEFT]]


class StatusChangeQuery(RequestView):
    datamodel = ScopedInterface(Request)
    route_base = "/query/changes"
    include_route_methods = {"list", "show"}
    list_title = show_title = _l("异动查询")
    label_columns = {**RequestView.label_columns, "subtype": _l("异动类型")}
    list_columns = ["id", "subtype", "summary", "state", "school", "filed_at", "closed_at"]
    search_columns = ["subtype", "state", "school", "filed_at", "closed_at"]
    base_filters = [["kind", FilterEqual, "status_change"]]
