"""The security manager with its screens: sign-in and 注销, password forms, the scoped user screens and the JWT
sign-in API. The policy (passwords, lockout, session versions, permission cache, audit) is app.security's; this
module only declares which views FAB serves for it (config FAB_SECURITY_MANAGER_CLASS points here)."""
from flask import current_app, session as flask_session
from flask_appbuilder.fields import QuerySelectMultipleField
from flask_appbuilder.fieldwidgets import Select2ManyWidget
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.views import AuthDBView, ResetMyPasswordView, ResetPasswordView, RoleModelView
from flask_appbuilder.utils.limit import Limit
from flask_appbuilder.views import expose
from flask_appbuilder.widgets import ListWidget, ShowWidget
from flask_limiter.util import get_remote_address

from app.i18n import _l
from app.scoping import ScopedInterface
from app.security import XuejiSecurityPolicy
from models.user import XuejiUser
from views.users import ProfileEditView, XuejiUserView


class RateLimitedSecurityApi(SecurityApi):
    """/api/v1/security/login and /refresh, throttled per client address like the web form."""
    limits = [Limit(lambda: current_app.config["AUTH_RATE_LIMIT"], key_func=get_remote_address,
                    methods=("POST",))]


class XuejiAuthDBView(AuthDBView):
    @expose("/logout/")
    def logout(self):
        response = super().logout()    # ends every session and token of the account (on_user_logout)
        flask_session.clear()          # 注销 clears the whole session, not only the login
        return response


class XuejiResetMyPasswordView(ResetMyPasswordView):
    form_title = _l("修改密码")
    message = _l("密码已修改")


class XuejiResetPasswordView(ResetPasswordView):
    form_title = _l("重置密码（用户下次登录时须修改）")
    message = _l("密码已重置")

    def form_post(self, form):
        from flask import abort, request
        from app.scoping import apply_scope
        # resetting another user's password is a write on that user: same scope rules
        pk = request.args.get("pk", type=int)        # an integer: PostgreSQL compares no integer with text
        if pk is None:
            abort(404)
        q = apply_scope(self.appbuilder.sm.session.query(XuejiUser).filter(XuejiUser.id == pk), XuejiUser)
        if q.one_or_none() is None:
            abort(404)
        return super().form_post(form)


class XuejiSecurityManager(XuejiSecurityPolicy):
    security_api = RateLimitedSecurityApi
    authdbview = XuejiAuthDBView
    resetmypasswordview = XuejiResetMyPasswordView
    resetpasswordview = XuejiResetPasswordView
    userdbmodelview = XuejiUserView
    userinfoeditview = ProfileEditView

    def __init__(self, appbuilder):
        super().__init__(appbuilder)
        # FAB's SQLA manager hands its user views a plain SQLAInterface: put the scoped one back.
        self.userdbmodelview.datamodel = ScopedInterface(self.user_model)
        self.userstatschartview.datamodel = ScopedInterface(self.user_model)


# --- roles: permissions in words ---------------------------------------------------------------------------------

VERBS = {"can_read": "查看", "can_list": "查看", "can_show": "查看", "can_get": "查看", "can_info": "查看",
         "can_write": "编辑", "can_add": "新增", "can_post": "新增", "can_edit": "编辑", "can_put": "编辑",
         "can_delete": "删除", "menu_access": "菜单：", "can_import": "导入", "can_decide": "审核",
         "can_file": "提交", "can_withdraw": "撤销或重新提交", "can_handle": "处理", "can_detect": "检测",
         "can_clear": "清理", "can_arbitrate": "仲裁", "can_confirm": "确认", "can_change": "申请变更",
         "can_graduate": "办理毕业", "can_rollback": "回退", "can_promote": "升级", "can_exchange": "交换",
         "can_usage": "查看使用情况", "can_export": "导出", "export_selected": "导出", "can_userinfo": "查看",
         "userinfoedit": "编辑", "resetmypassword": "修改密码", "resetpasswords": "重置密码", "unlock": "解锁",
         "can_this_form_get": "打开", "can_this_form_post": "提交", "can_signout_all": "全部下线",
         "can_download": "下载", "can_copyrole": "复制", "copyrole": "复制", "can_chart": "图表", "can_delete_item": "删除"}


# Objects without a menu entry or a Chinese title of their own, and pairs whose verb + object would read badly
OBJECTS = {"Account": "个人账号接口", "Identity": "证件号校验", "OpenApi": "接口文档", "SwaggerView": "接口文档页面",
           "MenuApi": "菜单接口", "ExchangePeer": "跨省交换公钥", "UserGroupModelView": "用户组",
           "UserStatsChartView": "用户统计", "RoleModelView": "角色"}
PHRASES = {("can_graduate", "Graduation"): "办理毕业", ("can_rollback", "Graduation"): "毕业生回退",
           ("can_promote", "Graduation"): "升级", ("resetmypassword", "User"): "修改本人密码",
           ("can_place", "Student"): "分班", ("place", "Student"): "分班"}


def _object_labels() -> dict[str, str]:
    """Permission object (view or menu name) → the Chinese word the menu and the screens use for it."""
    from flask import current_app
    appbuilder = current_app.appbuilder
    labels: dict[str, str] = dict(OBJECTS)
    for item in appbuilder.menu.get_list():
        labels[item.name] = str(item.label)
        for child in item.childs or ():
            if getattr(child, "name", None) and child.name != "-":
                labels[child.name] = str(child.label)
    for view in appbuilder.baseviews:
        name = getattr(view, "class_permission_name", None) or type(view).__name__
        title = getattr(view, "list_title", None) or getattr(view, "form_title", None)
        if title and name not in labels and not str(title).isascii():
            labels[name] = str(title)
    return labels


def permission_words(permission_views) -> str:
    labels = _object_labels()
    words = []
    for pv in permission_views or ():
        phrase = PHRASES.get((pv.permission.name, pv.view_menu.name))
        if phrase:
            words.append(phrase)
            continue
        verb = VERBS.get(pv.permission.name, pv.permission.name.removeprefix("can_"))
        words.append(f"{verb}{labels.get(pv.view_menu.name, pv.view_menu.name)}")
    return "，".join(words)


class XuejiRoleView(RoleModelView):
    """角色: names and permissions in Chinese (查看学生学籍, 菜单：分班 …), not FAB's "can read on Student"."""
    list_title = show_title = _l("角色")
    add_title, edit_title = _l("新增角色"), _l("编辑角色")
    label_columns = {"name": _l("角色名称"), "permissions": _l("权限")}
    formatters_columns = {"permissions": permission_words}
    list_widget = ListWidget                # FAB's role widgets print the raw list and ignore formatters
    show_widget = ShowWidget
    # the form's choices in the same words (FAB labels them by PermissionView.__repr__: "can read on Student")
    add_form_extra_fields = edit_form_extra_fields = {"permissions": QuerySelectMultipleField(
        _l("权限"), query_func=lambda: current_app.appbuilder.sm.session.query(
            current_app.appbuilder.sm.permissionview_model).all(),
        get_pk_func=lambda pv: pv.id, get_label=lambda pv: permission_words([pv]), widget=Select2ManyWidget())}


XuejiSecurityManager.rolemodelview = XuejiRoleView
