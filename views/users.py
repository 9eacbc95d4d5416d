"""Account screens: the scoped user admin (系统管理员 everyone; bureau: school accounts of its region) and
个人设置 (name, phone, QQ, password)."""
from flask import flash, redirect
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.models.sqla.filters import FilterInFunction
from flask_appbuilder.security.views import UserDBModelView, UserInfoEditView
from wtforms import StringField
from wtforms.validators import DataRequired, Optional, Regexp

from app.i18n import _l
from app import clock
from app import accounts
from app.codes import when
from app.accounts import assignable_role_names
from app.scoping import ScopeFilter, ScopedInterface
from models import XuejiUser
from views.base import ScopedRoutesMixin
from views.fields import yes_no

USER_LABELS = {
    "username": _l("用户名"), "first_name": _l("名"), "last_name": _l("姓"), "email": _l("邮箱"), "active": _l("是否启用"),
    "roles": _l("角色"), "school": _l("所属学校"), "region": _l("所属区域(教育局)"), "phone": _l("手机"), "qq": "QQ",
    "last_login": _l("最近登录"), "login_count": _l("登录次数"), "fail_login_count": _l("连续失败次数"),
    "locked_until": _l("锁定至"), "must_change_password": _l("须修改密码"), "password_changed_on": _l("密码修改时间"),
    "password": _l("密码"), "conf_password": _l("确认密码"), "full_name": _l("姓名"), "groups": _l("用户组"),
    "created_on": _l("创建时间"), "changed_on": _l("修改时间"), "created_by": _l("创建人"), "changed_by": _l("修改人"),
}
PHONE = Regexp(r"^1\d{10}$", message=_l("手机号应为11位数字，以1开头"))
QQ = Regexp(r"^\d{5,12}$", message=_l("QQ号应为5到12位数字"))


def blank(value):
    return "" if value is None else value


def role_names(roles) -> str:
    """Roles as a plain comma list (学校学籍管理员，学校学籍主管领导), never "[学校学籍管理员]"."""
    if roles is None:
        return ""
    if isinstance(roles, (list, tuple, set)):
        return "，".join(str(getattr(r, "name", r)) for r in roles)
    return str(roles)


def person_name(first_name, last_name) -> str:
    """A name in its own order: Chinese surname first with no space (罗霞), other names "First Last"."""
    first, last = (first_name or "").strip(), (last_name or "").strip()
    if any("\u4e00" <= ch <= "\u9fff" for ch in first + last):
        return f"{last}{first}"
    return " ".join(p for p in (first, last) if p)


class XuejiUserView(ScopedRoutesMixin, UserDBModelView):
    datamodel = ScopedInterface(XuejiUser)
    class_permission_name = "User"
    method_permission_name = {"list": "read", "show": "read", "add": "write", "edit": "write",
                              "delete": "delete", "userinfo": "userinfo", "download": "read",
                              "signout_all": "write"}
    base_filters = [["id", ScopeFilter, None]]
    list_title, show_title, add_title, edit_title = _l("账号"), _l("账号"), _l("新增账号"), _l("编辑账号")
    label_columns = USER_LABELS
    # FAB's English hints ("It's not a good policy to remove a user…") in the words of this system
    description_columns = {
        "username": _l("登录用的用户名，建议用拼音或工号，创建后不要修改"),
        "last_name": _l("姓"), "first_name": _l("名"),
        "email": _l("用于找回密码和通知，每个账号一个邮箱"),
        "active": _l("不再使用的账号请取消“启用”，不要删除：审计日志和审批记录仍指向它"),
        "roles": _l("按岗位选择角色；学校账号选学校学籍管理员或学籍主管领导，教育局账号选经办或审核"),
        "school": _l("学校账号填写所在学校（只能看到本校）"),
        "region": _l("教育局账号填写所辖行政区划（看到辖区内所有学校）"),
        "phone": _l("11位手机号码，学籍管理员通讯录中显示"),
    }
    list_columns = ["username", "full_name", "school", "region", "roles", "phone", "active", "last_login"]
    # a bureau account has no school, a school account no region: show blank, not "None"; roles as a plain
    # list, times to the minute
    formatters_columns = {**{c: blank for c in ("school", "region", "phone", "qq", "email", "first_name",
                                                "last_name", "full_name", "created_by", "changed_by")},
                          **{c: when for c in ("last_login", "locked_until", "password_changed_on",
                                               "created_on", "changed_on")},
                          "roles": role_names, "login_count": blank, "fail_login_count": blank, "active": yes_no}
    show_fieldsets = [
        ("账号", {"fields": ["username", "last_name", "first_name", "email", "active", "roles", "school",
                             "region", "phone", "qq"]}),
        ("安全", {"fields": ["last_login", "login_count", "fail_login_count", "locked_until",
                             "password_changed_on", "must_change_password"], "expanded": False}),
    ]
    user_show_fieldsets = [
        ("个人信息", {"fields": ["username", "last_name", "first_name", "email", "phone", "qq", "school",
                                 "region", "roles"]}),
    ]
    search_columns = ["username", "first_name", "last_name", "school", "region", "roles", "active"]
    add_columns = ["username", "last_name", "first_name", "email", "school", "region", "roles", "phone", "qq",
                   "active", "password", "conf_password"]
    edit_columns = ["username", "last_name", "first_name", "email", "school", "region", "roles", "phone", "qq",
                    "active"]
    validators_columns = {"phone": [Optional(), PHONE], "qq": [Optional(), QQ]}
    add_form_query_rel_fields = edit_form_query_rel_fields = {
        "roles": [["name", FilterInFunction, assignable_role_names]],
        "school": [["id", ScopeFilter, None]],
        "region": [["id", ScopeFilter, None]],
    }

    def pre_add(self, item):
        # FAB's pre_add only hashes, with werkzeug: argon2id instead (complexity checked by the form validator)
        from app.passwords import hash_password
        item.password = hash_password(item.password)
        item.password_changed_on = clock.now()
        item.must_change_password = True

    @action("unlock", _l("解除锁定"), _l("解除所选账号的登录锁定？"), "fa-unlock")
    def unlock(self, items):
        n = accounts.unlock(self.datamodel.session, items if isinstance(items, list) else [items])
        flash(f"已解除 {n} 个账号的锁定", "success")
        return redirect(self.get_redirect())


    @action("signout_all", _l("全部下线"), _l("结束所选账号在所有浏览器和接口上的登录（须重新登录）？"), "fa-sign-out")
    def signout_all(self, items):
        """全部下线: every session and JWT of the chosen accounts ends at once (app.accounts); a bureau may do it
        only to the school accounts it manages (the flush rule refuses the rest)."""
        from flask import g
        from app.security import SESSION_VERSION_KEY
        from views.base import refused
        users = [u for u in (items if isinstance(items, list) else [items]) if u is not None]
        n = None
        with refused():
            n = accounts.sign_out_everywhere(self.datamodel.session, users)
        if n is None:
            return redirect(self.get_redirect())
        me = next((u for u in users if u.id == g.user.id), None)
        if me is not None:                  # one's own: this browser stays signed in, every other one is out
            from flask import session as browser
            browser[SESSION_VERSION_KEY] = me.session_version
        flash(f"已使 {n} 个账号全部下线", "success")
        return redirect(self.get_redirect())


class ProfileForm(DynamicForm):
    last_name = StringField("姓", validators=[DataRequired()], widget=BS3TextFieldWidget())
    first_name = StringField("名", validators=[DataRequired()], widget=BS3TextFieldWidget())
    phone = StringField("手机", validators=[Optional(), PHONE], widget=BS3TextFieldWidget())
    qq = StringField("QQ", validators=[Optional(), QQ], widget=BS3TextFieldWidget())


class ProfileEditView(UserInfoEditView):
    """个人设置: a user edits their own name, phone and QQ."""
    form = ProfileForm
    form_title = _l("个人设置")
    message = _l("个人信息已保存")
