"""系统管理: the national code tables and the settings per region level (参数设置, with every setting's meaning
and value in force)."""
from flask import request
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import select

from app.extensions import db
from app.i18n import _l
from app.roles import VIEW_RW
from app.scoping import ScopedInterface, current_scope
from models import Code, Region, School, Setting
from views.base import XuejiModelView
from views.fields import yes_no
from views.student_list import WordsInterface
from views.students import STUDENT_LABELS


class CodeView(XuejiModelView):
    """代码表 maintenance (superadmin): national defaults plus local additions; deactivate instead of delete."""
    datamodel = ScopedInterface(Code)
    class_permission_name = "Code"
    route_base = "/code"
    list_title = show_title = _l("代码表")
    add_title, edit_title = _l("新增代码"), _l("编辑代码")
    formatters_columns = {"active": yes_no}
    label_columns = {"table": _l("代码表"), "table_name": _l("代码表名称"), "code": _l("代码"), "name": _l("名称"),
                     "sort": _l("排序"), "active": _l("启用")}
    list_columns = ["table", "table_name", "code", "name", "sort", "active"]
    add_columns = edit_columns = show_columns = list_columns
    search_columns = ["table", "table_name", "code", "name", "active"]
    base_order = ("table", "asc")
    page_size = 50


class SettingView(XuejiModelView):
    """设置: 班额 and other values a province, city or county sets for itself."""
    datamodel = WordsInterface(Setting)
    class_permission_name = "Setting"
    route_base = "/setting"
    list_title = show_title = _l("参数设置")
    add_title, edit_title = _l("新增设置"), _l("编辑设置")
    label_columns = {"key": _l("参数"), "region": _l("适用区域(空=全系统)"), "region_code": _l("区域代码"),
                     "value": _l("值"), "note": _l("说明")}
    list_columns = ["key", "region_code", "value", "note"]
    add_columns = edit_columns = show_columns = ["key", "region_code", "value", "note"]
    search_columns = ["key", "region_code"]
    base_order = ("key", "asc")
    description_columns = {"key": _l("可用参数见“参数设置”总览（每个参数的含义、全国默认值和现行值）")}
    method_permission_name = {**VIEW_RW, "overview": "read"}

    @staticmethod
    def own_region() -> str | None:
        """The region whose values the user sees in force and sets: a bureau's own region, a school's county,
        the installation (None) for the superadmin."""
        scope = current_scope()
        if scope.kind == "region":
            return scope.region_code
        if scope.kind == "school":
            return db.session.scalar(select(School.county_code).where(School.id == scope.school_id))
        return None

    @expose("/overview")
    @has_access
    def overview(self):
        """参数设置: every setting with its meaning, national default, the value in force here and who set it."""
        from app import settings
        region = self.own_region()
        rows = settings.overview(db.session, region, STUDENT_LABELS)
        may_write = self.appbuilder.sm.has_access("can_write", self.class_permission_name)
        region_name = (db.session.scalar(select(Region.name).where(Region.code == region)) or region) \
            if region else "全系统"
        return self.render_template("xueji/settings_overview.html", rows=rows, may_write=may_write,
                                    region=region, region_name=region_name, title=_l("参数设置"))

    def _get_add_widget(self, form, exclude_cols=None, widgets=None):
        """设置 from the overview: the key (and the user's own region) filled in."""
        if request.method == "GET":
            if request.args.get("key") and not form.key.data:
                form.key.data = request.args["key"]
            if not form.region_code.data and self.own_region() and current_scope().kind == "region":
                form.region_code.data = self.own_region()
        return super()._get_add_widget(form, exclude_cols, widgets)

    def pre_add(self, item):
        from app import settings
        scope = current_scope()
        if scope.kind == "region" and not item.region_code:
            item.region_code = scope.region_code
        settings.validate(item, self.datamodel.session)     # the save rule's own message (FAB hides flush errors)

    pre_update = pre_add
