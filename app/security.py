"""XuejiSecurityPolicy: FAB's SQLA security manager plus the 学籍 security policy (views.security wires its screens).

- accounts carry a scope (models.user.XuejiUser); the user screens are scoped (views.users)
- password policy on every path that sets one; first-login and 90-day forced change
- passwords hashed with argon2id (app.passwords) on every path that sets one; older hashes (FAB's werkzeug
  scrypt/pbkdf2, argon2 with other parameters) upgraded at the next successful sign-in
- lockout after 5 failures for 15 minutes, on the web form and the JWT login alike; both rate-limited
- permissions of database roles cached per process (no permission queries per request)
- logins, failures, lockouts and logouts go to the audit log; so does every refused sign-in
- one token version per account (ab_user.session_version): web sessions and JWTs carry the version they were
  issued under and die when it changes (注销, password change, disabled, locked, 全部下线), on every worker
- security headers (CSP with a per-request script nonce, frame-ancestors 'none', nosniff, Referrer-Policy)
"""
import logging
import secrets
import threading
import time
from datetime import timedelta

from flask import abort, current_app, g, has_app_context, has_request_context, request, session as flask_session
from flask_appbuilder.const import LOGMSG_WAR_SEC_LOGIN_FAILED
from flask_appbuilder.security.sqla.manager import SecurityManager
from sqlalchemy import event, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app import audit, clock
from app.errors import RuleError, json_error
from app.passwords import hash_password, password_problem, spend_verify_time, unusable_password, verify_password
from models.user import XuejiUser

log = logging.getLogger(__name__)
FREE_API_PATHS = ("/api/v1/security/", "/api/v1/account/")
SESSION_VERSION_KEY = "_xueji_sv"          # in the signed session cookie
JWT_VERSION_CLAIM = "sv"                   # in every access and refresh token

# --- permission cache ----------------------------------------------------------------------------
_CACHE_TTL = 30.0          # seconds: role edits in another worker take effect within this
_cache_lock = threading.Lock()


def _cache() -> dict:
    """role id → (loaded at, permissions); one cache per app (tests run several apps in one process)."""
    return current_app.extensions.setdefault("xueji_permission_cache", {})


def role_cache(name: str) -> dict:
    """A per-app cache of something derived only from a role set (the rendered menu): emptied with the permission
    cache, so a role edit reaches it as it reaches the permissions."""
    return current_app.extensions.setdefault("xueji_role_caches", {}).setdefault(name, {})


def clear_permission_cache() -> None:
    with _cache_lock:
        _cache().clear()
        for cache in current_app.extensions.get("xueji_role_caches", {}).values():
            cache.clear()


SECURITY_TABLES = frozenset({"ab_user", "ab_role", "ab_group", "ab_permission_view", "ab_permission",
                             "ab_view_menu"})
_CHANGED = "xueji_security_changed"


def _note_security_changes(session, _context, _instances) -> None:
    if any(getattr(obj, "__tablename__", None) in SECURITY_TABLES
           for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


def _clear_after_commit(session) -> None:
    """After (not before) the commit: a request between the flush and the commit would cache the old grants."""
    if session.info.pop(_CHANGED, False) and has_app_context():
        clear_permission_cache()


def install(session_factory) -> None:
    """A committed change to accounts, roles or their permissions (a role's permission list edited on the role
    form included) empties this process's permission and menu caches at once; other processes follow within
    _CACHE_TTL."""
    event.listen(session_factory, "before_flush", _note_security_changes)
    event.listen(session_factory, "after_commit", _clear_after_commit)
    event.listen(session_factory, "after_rollback", lambda session: session.info.pop(_CHANGED, None))


class XuejiSecurityPolicy(SecurityManager):
    """The policy half of the security manager; views/security.py adds the screens it serves (no arrow from app/
    up into views/)."""
    user_model = XuejiUser

    # --- sessions and tokens: one version per account -------------------------------------------------
    def create_login_manager(self, app):
        lm = super().create_login_manager(app)
        lm.user_loader(self.load_session_user)
        return lm

    def create_jwt_manager(self, app):
        jwt_manager = super().create_jwt_manager(app)
        jwt_manager.additional_claims_loader(self._jwt_claims)
        return jwt_manager

    def _jwt_claims(self, identity) -> dict:
        """Every token (access and refresh) names the account's session version at issue."""
        try:
            user = self.get_user_by_id(int(identity))
        except (TypeError, ValueError):
            user = None
        return {JWT_VERSION_CLAIM: user.session_version if user is not None else -1}

    def load_session_user(self, pk):
        """Flask-Login's loader for cookie sessions: the account must still be active and its session version
        the one this session was signed in under; otherwise the session is over (anonymous, sent to sign-in)."""
        try:
            user = self._user_with_roles(int(pk))
        except (TypeError, ValueError, OverflowError):
            user = None
        if user is None or not user.is_active or flask_session.get(SESSION_VERSION_KEY) != user.session_version:
            flask_session.clear()
            return None
        return user

    def _user_with_roles(self, pk: int):
        """The account with its roles and its groups' roles in one statement (FAB's reload takes three: the user,
        then its roles and groups as each is first read)."""
        from flask_appbuilder.security.sqla.models import Group
        return self.session.scalars(
            select(self.user_model).where(self.user_model.id == pk)
            .options(joinedload(self.user_model.roles),
                     joinedload(self.user_model.groups).joinedload(Group.roles))).unique().first()

    def remember_session_version(self, user) -> None:
        """Bind the browser's session to the account's current version (sign-in, own password change)."""
        if has_request_context() and not request.path.startswith("/api/"):
            flask_session[SESSION_VERSION_KEY] = user.session_version

    # --- permissions, cached --------------------------------------------------------------------
    def _role_permissions(self, role_ids) -> frozenset:
        from flask_appbuilder.security.sqla.models import (Permission, PermissionView, ViewMenu,
                                                            assoc_permissionview_role)
        now = time.monotonic()
        result, missing = set(), []
        cache = _cache()
        with _cache_lock:
            for rid in role_ids:
                hit = cache.get(rid)
                if hit and now - hit[0] < _CACHE_TTL:
                    result |= hit[1]
                else:
                    missing.append(rid)
        if missing:
            rows = self.session.execute(
                select(assoc_permissionview_role.c.role_id, Permission.name, ViewMenu.name)
                .join(PermissionView, PermissionView.id == assoc_permissionview_role.c.permission_view_id)
                .join(Permission, Permission.id == PermissionView.permission_id)
                .join(ViewMenu, ViewMenu.id == PermissionView.view_menu_id)
                .where(assoc_permissionview_role.c.role_id.in_(missing))).all()
            per_role = {rid: set() for rid in missing}
            for rid, perm, view in rows:
                per_role[rid].add((perm, view))
            with _cache_lock:
                for rid, perms in per_role.items():
                    cache[rid] = (now, frozenset(perms))
                    result |= perms
        return frozenset(result)

    def _user_permissions(self, user) -> frozenset:
        key = ("_xueji_perms", getattr(user, "id", None))
        if has_request_context() and g.get("_xueji_perm_key") == key:
            return g._xueji_perms
        roles = self.get_user_roles(user)
        perms = self._role_permissions(sorted(r.id for r in roles if r.name not in self.builtin_roles))
        if has_request_context():
            g._xueji_perm_key, g._xueji_perms = key, perms
        return perms

    def _has_view_access(self, user, permission_name, view_name) -> bool:
        roles = self.get_user_roles(user)
        if any(r.name in self.builtin_roles and self._has_access_builtin_roles(r, permission_name, view_name)
               for r in roles):
            return True
        return (permission_name, view_name) in self._user_permissions(user)

    def _get_user_permission_view_menus(self, user, permission_name, view_menus_name):
        if user is None:
            return super()._get_user_permission_view_menus(user, permission_name, view_menus_name)
        perms = self._user_permissions(user)
        names = view_menus_name or [v for p, v in perms if p == permission_name]
        return {v for v in names if (permission_name, v) in perms}

    def clear_permission_cache(self) -> None:
        clear_permission_cache()

    # --- passwords ----------------------------------------------------------------------------------
    def add_user(self, username, first_name, last_name, email, role=None, password="", hashed_password="",
                 groups=None, commit=True, must_change_password=True, school_id=None, region_code=None,
                 phone=None, qq=None):
        """Every account creation path (CLI, seed, views) goes through the password policy here."""
        if not hashed_password:
            problem = password_problem(password)
            if problem:
                raise RuleError(problem, code="weak_password")
        user = super().add_user(username, first_name, last_name, email, role=role, password=password,
                                hashed_password=hashed_password or hash_password(password), groups=groups,
                                commit=False)
        if not user:
            raise RuleError(f"无法创建账号 {username}", code="invalid")
        user.school_id, user.region_code, user.phone, user.qq = school_id, region_code, phone, qq
        user.password_changed_on = clock.now()
        user.must_change_password = must_change_password
        if commit:
            self.session.commit()
        return user

    def reset_password(self, userid, password):
        """Own change (个人设置) clears the forced-change flag; a reset by someone else sets it."""
        problem = password_problem(password)
        if problem:
            raise RuleError(problem, code="weak_password")
        user = self.get_user_by_id(userid)
        user.password = hash_password(password)      # FAB's reset_password would write a werkzeug hash
        actor = g.get("user") if has_request_context() else None
        by_self = actor is not None and getattr(actor, "id", None) == user.id
        user.password_changed_on = clock.now()
        user.must_change_password = not by_self and actor is not None
        user.fail_login_count, user.locked_until = 0, None
        self.update_user(user)             # the new password ends every session and token (app.accounts)
        if by_self:
            self.remember_session_version(user)     # … except the browser session that changed it

    def add_register_user(self, username, first_name, last_name, email, password="", hashed_password=""):
        """Self-registration (off: AUTH_USER_REGISTRATION) keeps its password as argon2id too."""
        return super().add_register_user(username, first_name, last_name, email,
                                         hashed_password=hashed_password or hash_password(password))

    def check_password(self, user, password) -> bool:
        """The one check of a password against an account (sign-in, the API password change's old password). A
        right password under an older hash is stored again as argon2id with the configured parameters (the caller
        commits)."""
        ok, needs_rehash = verify_password(user.password if user is not None else None, password)
        if ok and needs_rehash:
            self._upgrade_password_hash(user, password)
        return ok

    def _upgrade_password_hash(self, user, password) -> None:
        """Same password, new hash: not a password change, so no new session version (app.accounts bumps it on
        an ORM change of ab_user.password) and no audit row. Written only if the stored hash is still the one
        just verified (a concurrent password change wins)."""
        old = user.password
        new = hash_password(password)
        table = self.user_model.__table__
        done = self.session.execute(update(table).where(table.c.id == user.id, table.c.password == old)
                                    .values(password=new)).rowcount
        if done == 1:
            set_committed_value(user, "password", new)
            log.info("password hash of user %s upgraded to argon2id", user.id)

    def _authenticate(self, username, password):
        """FAB's auth_user_db (5.3, security/manager.py) with the password checked by check_password. The same
        work is done whether or not the account exists: a second lookup by e-mail, and for an unknown or disabled
        account an argon2 verification of a dummy hash and FAB's no-op update in place of the sign-in stats."""
        if username is None or username == "":
            return None
        if unusable_password(password):
            log.info(LOGMSG_WAR_SEC_LOGIN_FAILED, username)
            return None
        first_user = self.get_first_user()
        user = self.find_user(username=username)
        if user is None:
            user = self.find_user(email=username)
        else:
            self.find_user(email=username)
        if user is None or not user.is_active:
            spend_verify_time(password)
            log.info(LOGMSG_WAR_SEC_LOGIN_FAILED, username)
            if first_user:
                self.noop_user_update(first_user)
            return None
        if self.check_password(user, password):
            self.update_user_auth_stat(user, True)       # commits the upgraded hash with the sign-in stats
            return user
        self.update_user_auth_stat(user, False)
        log.info(LOGMSG_WAR_SEC_LOGIN_FAILED, username)
        return None

    @staticmethod
    def password_expired(user) -> bool:
        if user.must_change_password:
            return True
        max_age = timedelta(days=current_app.config["PASSWORD_MAX_AGE_DAYS"])
        return user.password_changed_on is None or clock.now() - user.password_changed_on > max_age

    def load_user_jwt(self, _jwt_header, jwt_data):
        """A token issued under an older session version is dead (401). API calls with a password that must
        change are refused, except the password change itself."""
        user = super().load_user_jwt(_jwt_header, jwt_data)
        if user is not None and jwt_data.get(JWT_VERSION_CLAIM) != user.session_version:
            g.pop("user", None)
            return None
        if user is not None and self.password_expired(user) and not request.path.startswith(FREE_API_PATHS):
            abort(json_error(403, "password_expired", "首次登录或密码已超过90天未修改，请先修改密码"))
        return user

    # --- lockout --------------------------------------------------------------------------------
    def _refused(self, user, reason, username=None) -> None:
        """A refused sign-in that FAB does not report through on_user_login_failed: audited with its reason."""
        audit.record(self.session, "login_failed", entity="ab_user", entity_id=getattr(user, "id", None),
                     school_id=getattr(user, "school_id", None), user_id=getattr(user, "id", None),
                     username=getattr(user, "username", None) or str(username or "")[:128], field="reason",
                     new=reason)
        self.session.commit()

    def auth_user_db(self, username, password):
        if username and (not isinstance(username, str) or "\x00" in username):
            self._refused(None, "用户名含非法字符", username)
            return None
        user = self.find_user(username=username) if username else None
        now = clock.now()
        if user is not None and user.locked_until is not None:
            if user.locked_until > now:
                spend_verify_time(password)              # as long as a wrong password: locked is not told apart
                audit.record(self.session, "login_locked", entity="ab_user", entity_id=user.id,
                             school_id=user.school_id, user_id=user.id, username=user.username)
                self.session.commit()
                return None
            user.locked_until, user.fail_login_count = None, 0
        result = self._authenticate(username, password)
        if result is None and user is None and username:
            audit.record(self.session, "login_failed", entity="ab_user", username=str(username)[:128])
            self.session.commit()
        elif result is None and user is not None and not user.is_active:
            self._refused(user, "账号已停用")
        elif result is None and user is not None and unusable_password(password):
            self._refused(user, "密码为空")
        if result is None and user is not None and user.is_active:
            if (user.fail_login_count or 0) >= current_app.config["LOGIN_MAX_FAILURES"]:
                user.locked_until = now + timedelta(minutes=current_app.config["LOCKOUT_MINUTES"])
                user.fail_login_count = 0
                audit.record(self.session, "lockout", entity="ab_user", entity_id=user.id,
                             school_id=user.school_id, user_id=user.id, username=user.username)
                self.session.commit()
        return result

    # --- audit of sign-in events ---------------------------------------------------------------------
    def _audit_login(self, action, user):
        audit.record(self.session, action, entity="ab_user", entity_id=user.id, school_id=user.school_id,
                     user_id=user.id, username=user.username)
        self.session.commit()

    def on_user_login(self, user):
        self._audit_login("login", user)
        self.remember_session_version(user)

    def on_user_login_failed(self, user):
        self._audit_login("login_failed", user)

    def on_user_logout(self, user):
        """注销 ends every session and token of the account, in every browser and on every worker."""
        from app.accounts import end_sessions
        user = self.get_user_by_id(user.id)
        end_sessions(self.session, user)
        self._audit_login("logout", user)


# --- security headers -------------------------------------------------------------------------------------

def csp_nonce() -> str:
    """The request's script nonce: FAB's templates and ours print it through baselib.get_nonce()."""
    if not has_request_context():
        return ""
    nonce = g.get("_xueji_csp_nonce")
    if nonce is None:
        nonce = g._xueji_csp_nonce = secrets.token_urlsafe(16)
    return nonce


# Pages whose templates still carry a script without nonce or an inline event handler (onsubmit="confirm…",
# onclick="window.print()"): they keep 'unsafe-inline' for scripts until the template is fixed. Every other page
# runs only the app's own script files and scripts with this request's nonce.
INLINE_SCRIPT_ENDPOINTS: set[str] = set()     # pages still needing inline script (none: handlers live in forms.js)


def content_security_policy(nonce: str | None) -> str:
    script = f"'self' 'nonce-{nonce}'" if nonce else "'self' 'unsafe-inline'"
    return ("default-src 'self'; "
            f"script-src {script}; "
            "style-src 'self' 'unsafe-inline'; "          # style attributes throughout FAB's templates
            "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def security_headers(response):
    """On every response: no framing, no sniffing, no referrer to other sites, and a CSP (a response that
    brings its own, such as an evidence download's sandbox, keeps it)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers["X-Frame-Options"] = "DENY"
    headers.setdefault("Referrer-Policy", "same-origin")
    if "Content-Security-Policy" in headers:
        if "frame-ancestors" not in headers["Content-Security-Policy"]:
            headers["Content-Security-Policy"] += "; frame-ancestors 'none'"
    else:
        legacy = has_request_context() and request.endpoint in INLINE_SCRIPT_ENDPOINTS
        headers["Content-Security-Policy"] = content_security_policy(None if legacy else csp_nonce())
    return response


SIGN_IN_PATHS = ("/login/", "/api/v1/security/login")


def audit_throttled_sign_in(response):
    """A sign-in refused by the rate limit (429) is a refused sign-in too: audited with the name it tried."""
    if response.status_code != 429 or request.method != "POST" or request.path not in SIGN_IN_PATHS:
        return response
    from app.extensions import db
    try:
        body = request.get_json(silent=True) if request.is_json else None
        name = (body.get("username") if isinstance(body, dict) else None) or request.form.get("username")
        audit.record(db.session, "login_failed", entity="ab_user", field="reason", new="登录过于频繁（限流）",
                     username=str(name or "")[:128] or None)
        db.session.commit()
    except Exception:                       # the refusal stands even if it cannot be written
        db.session.rollback()
        current_app.logger.exception("could not audit a throttled sign-in")
    return response
