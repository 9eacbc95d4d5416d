"""The security manager with its screens: sign-in and 注销, password forms, the scoped user screens and the JWT
sign-in API. The policy (passwords, lockout, session versions, permission cache, audit) is app.security's; this
module only declares which views FAB serves for it (config FAB_SECURITY_MANAGER_CLASS points here)."""
from flask import current_app, session as flask_session
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.views import AuthDBView, ResetMyPasswordView, ResetPasswordView
from flask_appbuilder.utils.limit import Limit
from flask_appbuilder.views import expose
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
        pk = request.args.get("pk")
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
