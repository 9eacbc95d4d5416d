"""The screens and the REST API. register_views() is the one place every view is wired (Superset's
initialization pattern); menu names are the internal keys roles grant `menu_access` on."""
from app.i18n import _l
from views.admin import AccountApi, AuditView, DirectoryView
from views.records import (RegionApi, RegionView, SchoolApi, SchoolClassApi, SchoolClassView, SchoolView,
                           StudentApi, StudentView)


def register_views(appbuilder) -> None:
    add = appbuilder.add_view
    add(StudentView, "Students", label=_l("学生学籍"), icon="fa-id-card", category="Registry",
        category_label=_l("学籍管理"), category_icon="fa-graduation-cap")
    add(SchoolView, "Schools", label=_l("学校信息"), icon="fa-school", category="Organisation",
        category_label=_l("学校管理"), category_icon="fa-building")
    add(SchoolClassView, "Classes", label=_l("班级"), icon="fa-users", category="Organisation")
    add(RegionView, "Regions", label=_l("行政区划"), icon="fa-map", category="Organisation")
    add(DirectoryView, "Directory", label=_l("学籍管理员通讯录"), icon="fa-address-book", category="Registry")
    add(AuditView, "Audit", label=_l("审计日志"), icon="fa-list", category="Security", category_label=_l("系统管理"),
        category_icon="fa-cogs")
    for api in (RegionApi, SchoolApi, SchoolClassApi, StudentApi, AccountApi):
        appbuilder.add_api(api)
