"""The screens and the REST API. register_views() is the one place every view is wired (Superset's
initialization pattern); menu names are the internal keys roles grant `menu_access` on."""
from app.i18n import _l
from views.admin import AccountApi, AuditView, DirectoryView
from views.exchange import ExchangePeerApi, ExchangePeerView
from views.exports import ExportJobApi, ExportJobView
from views.graduation import GRADUATION_REVIEW_HREF, GraduationView
from views.identity import IdentityApi
from views.primary import IncompleteView, PrimaryGraduateView, PrimaryRosterView
from views.queries import CurrentStudentQuery, GraduateQuery, HistoryQuery, StatusChangeQuery
from views.statistics import StatisticsView
from views.admissions import (AdmissionApi, AdmissionImportView, AdmissionView, ImportBatchApi, PlacementView,
                              QuotaApi, QuotaView)
from views.organisation import RegionApi, RegionView, SchoolApi, SchoolClassApi, SchoolClassView, SchoolView
from views.settings import CodeView, SettingView
from views.students import EnrollmentApi, EnrollmentView, GuardianApi, GuardianView, StudentApi, StudentView
from views.filing import EvidenceApi, KeyChangeView, StatusChangeView, TransferView
from views.problems import ProblemApi, ProblemView
from views.requests import ChainStepView, ChainView, RequestApi, RequestView


def register_views(appbuilder) -> None:
    add = appbuilder.add_view
    add(StudentView, "Students", label=_l("学生学籍"), icon="fa-id-card", category="Registry",
        category_label=_l("学籍管理"), category_icon="fa-graduation-cap")
    add(ProblemView, "Problems", label=_l("问题学籍"), icon="fa-exclamation-triangle", category="Registry")
    add(RequestView, "Requests", label=_l("申请与审核"), icon="fa-check-square-o", category="Registry")
    add(AdmissionImportView, "AdmissionImport", label=_l("招生录取（模板导入）"), icon="fa-upload",
        category="Admission", category_label=_l("招生入学"), category_icon="fa-user-plus")
    add(AdmissionView, "Admissions", label=_l("录取名单"), icon="fa-list", category="Admission")
    add(QuotaView, "Quotas", label=_l("招生计划数"), icon="fa-calculator", category="Admission")
    add(PlacementView, "Placement", label=_l("分班"), icon="fa-th", category="Admission")
    add(IncompleteView, "Incomplete", label=_l("待补录学生"), icon="fa-pencil-square-o", category="Admission")
    add(PrimaryRosterView, "PrimaryRoster", label=_l("小学毕业生名单导入"), icon="fa-upload", category="Admission")
    add(PrimaryGraduateView, "PrimaryGraduates", label=_l("小学毕业生"), icon="fa-child", category="Admission")
    add(TransferView, "Transfer", label=_l("转学申请（转入）"), icon="fa-exchange", category="Registry")
    add(GraduationView, "Graduation", label=_l("毕业升级"), icon="fa-graduation-cap", category="Registry")
    appbuilder.add_link("StatusChange", href="/statuschange/", label=_l("学籍异动"), icon="fa-random",
                        category="Registry")
    # the county's 毕业升级 (DOMAIN.md §7): 升级, 在办业务清理, 高中毕业审核, 毕业生回退
    appbuilder.add_link("Promote", href="/graduation/promote", label=_l("升级"), icon="fa-level-up",
                        category="GraduationCounty", category_label=_l("毕业升级"), category_icon="fa-graduation-cap")
    appbuilder.add_link("ClearBusiness", href="/request/clear", label=_l("在办业务清理"), icon="fa-eraser",
                        category="GraduationCounty")
    appbuilder.add_link("GraduationReview", href=GRADUATION_REVIEW_HREF, label=_l("毕业审核"), icon="fa-check-square-o",
                        category="GraduationCounty")
    appbuilder.add_link("GraduateRollback", href="/graduation/rollback", label=_l("毕业生回退"), icon="fa-undo",
                        category="GraduationCounty")
    appbuilder.add_link("Exchange", href="/request/exchange", label=_l("跨省转学数据包"), icon="fa-plane",
                        category="Registry")
    add(CurrentStudentQuery, "QueryCurrent", label=_l("在校生查询"), icon="fa-search", category="Query",
        category_label=_l("综合查询"), category_icon="fa-search")
    add(StatusChangeQuery, "QueryChanges", label=_l("异动查询"), icon="fa-exchange", category="Query")
    add(GraduateQuery, "QueryGraduates", label=_l("毕业生查询"), icon="fa-graduation-cap", category="Query")
    add(HistoryQuery, "QueryHistory", label=_l("历史数据查询"), icon="fa-history", category="Query")
    add(ExportJobView, "ExportJobs", label=_l("我的导出"), icon="fa-download", category="Query")
    add(StatisticsView, "Statistics", label=_l("学籍统计"), icon="fa-bar-chart", category="Registry")
    add(DirectoryView, "Directory", label=_l("学籍管理员通讯录"), icon="fa-address-book", category="Registry")
    add(SchoolView, "Schools", label=_l("学校信息"), icon="fa-building", category="Organisation",
        category_label=_l("学校管理"), category_icon="fa-building")
    add(SchoolClassView, "Classes", label=_l("班级"), icon="fa-users", category="Organisation")
    add(RegionView, "Regions", label=_l("行政区划"), icon="fa-map", category="Organisation")
    add(SettingView, "Settings", href="/setting/overview", label=_l("参数设置"), icon="fa-sliders",
        category="Organisation")
    add(AuditView, "Audit", label=_l("审计日志"), icon="fa-list", category="Security", category_label=_l("系统管理"),
        category_icon="fa-cogs")
    add(CodeView, "Codes", label=_l("代码表"), icon="fa-table", category="Security")
    add(ChainView, "Chains", label=_l("审批流程"), icon="fa-sitemap", category="Security")
    add(ExchangePeerView, "ExchangePeers", label=_l("跨省交换"), icon="fa-key", category="Security")
    appbuilder.add_api(ExchangePeerApi)
    for view in (GuardianView, EnrollmentView, KeyChangeView, StatusChangeView, ChainStepView):
        appbuilder.add_view_no_menu(view)
    for api in (RegionApi, SchoolApi, SchoolClassApi, StudentApi, GuardianApi, EnrollmentApi, RequestApi,
                EvidenceApi, ProblemApi, QuotaApi, AdmissionApi, ImportBatchApi, AccountApi, ExportJobApi):
        appbuilder.add_api(api)
    appbuilder.add_api(IdentityApi)
    _template_checks()


def _template_checks() -> None:
    """Checks templates ask before showing an action (the rule itself lives in app/)."""
    from flask import current_app, g
    from app import statuschange
    from app.extensions import db
    current_app.jinja_env.globals["may_file_status_change"] = \
        lambda student=None: statuschange.may_file(db.session, g.get("user"), student)
    from app import keydata, problems
    current_app.jinja_env.globals["may_file_key_change"] = \
        lambda student=None: keydata.may_file(db.session, g.get("user"), student)
    current_app.jinja_env.globals["may_handle_problem"] = \
        lambda problem: problems.may_handle(db.session, g.get("user"), problem)
    from views import menu
    menu.install(current_app)
