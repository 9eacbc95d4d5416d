"""Account rules: who may create or change which accounts, and the registrar directory.

系统管理员 manages everyone. A bureau account may create and edit school accounts (学校学籍管理员,
学校学籍主管领导) of schools inside its region, and nothing else: never a bureau or admin account, never
its own roles or scope. Checked at every flush, so the user form, any API and the CLI meet the same rule.
"""
from sqlalchemy import event, inspect, select

from app import clock
from app.errors import RuleError
from app.service import service
from app.roles import SCHOOL_ROLES
from app.scoping import current_scope, effective, request_actor
from models import Region, School, XuejiUser


def _changed(state, key) -> bool:
    return state.attrs[key].history.has_changes()


def check_account(obj: XuejiUser, actor, scope) -> None:
    state = inspect(obj)
    if actor is not None and obj.id is not None and obj.id == actor.id and not state.pending:
        if any(_changed(state, k) for k in ("roles", "school", "school_id", "region", "region_code", "active",
                                            "username")):
            raise RuleError("不能修改自己的角色、所属单位或账号状态", code="forbidden", status=403)
        return
    roles = {r.name for r in obj.roles}
    if not roles or not roles <= set(SCHOOL_ROLES):
        raise RuleError("教育局账号只能创建或修改学校账号（学校学籍管理员、学校学籍主管领导）",
                        code="forbidden", status=403)
    if effective(obj, "school", "school_id") is None or effective(obj, "region", "region_code"):
        raise RuleError("学校账号必须指定所属学校，且不能指定区域", code="invalid")


def _check_accounts(session, flush_context, instances):
    actor = request_actor()
    if actor is None:
        return
    scope = current_scope()
    if scope.is_all:
        return
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, XuejiUser) and (obj in session.new or session.is_modified(obj)):
            check_account(obj, actor, scope)
    for obj in session.deleted:
        if isinstance(obj, XuejiUser):
            raise RuleError("只有系统管理员可以删除账号；如需停用请取消“是否启用”", code="forbidden", status=403)


# --- sessions: one token version per account ------------------------------------------------------------
# Every web session and JWT carries the account's session_version from its sign-in (app.security); a request
# whose version is not the account's current one is anonymous. Raising the version ends them all at once, on
# every worker (the check reads the ab_user row that each request loads anyway).

def _ends_sessions(obj: XuejiUser) -> bool:
    """A change that must sign the account out everywhere: a new password, disabled, locked."""
    state = inspect(obj)
    if state.pending or state.transient:
        return False
    if _changed(state, "password"):
        return True
    if _changed(state, "active") and not obj.active:
        return True
    return (_changed(state, "locked_until") and obj.locked_until is not None
            and obj.locked_until > clock.now())


def _bump_session_versions(session, flush_context, instances):
    for obj in list(session.dirty):
        if isinstance(obj, XuejiUser) and session.is_modified(obj) and _ends_sessions(obj) \
                and not _changed(inspect(obj), "session_version"):
            obj.session_version = (obj.session_version or 0) + 1


def end_sessions(session, user: XuejiUser) -> None:
    """Sign the account out everywhere (the caller commits). Goes through the flush rules like any account
    change, so a bureau can do it only to the accounts it may manage."""
    user.session_version = (user.session_version or 0) + 1


@service
def sign_out_everywhere(session, users) -> int:
    """全部下线: end every session and token of the given (already scope-checked) accounts; audited."""
    from app import audit
    for user in users:
        end_sessions(session, user)
        audit.record(session, "signout_all", entity="ab_user", entity_id=user.id, school_id=user.school_id,
                     new=user.username)
    return len(users)


def install(session_factory) -> None:
    event.listen(session_factory, "before_flush", _check_accounts)
    event.listen(session_factory, "before_flush", _bump_session_versions)


def assignable_role_names() -> list[str]:
    """Roles the current user may hand out (drives the role dropdown; the flush check is the guard)."""
    from app.roles import ALL_ROLES
    return list(ALL_ROLES) if current_scope().is_all else list(SCHOOL_ROLES)


def registrar_directory(session, province_code: str | None, search: str | None = None, limit: int = 500):
    """省内兄弟学校管理员: name, school, county and phone of every school registrar in the province."""
    from app.roles import ROLE_SCHOOL_REGISTRAR
    from flask_appbuilder.security.sqla.models import Role, assoc_user_role
    q = (select(XuejiUser.last_name, XuejiUser.first_name, XuejiUser.phone, XuejiUser.qq,
                School.name.label("school"), School.code, Region.name.label("county"))
         .join(School, School.id == XuejiUser.school_id)
         .join(Region, Region.code == School.county_code)
         .join(assoc_user_role, assoc_user_role.c.user_id == XuejiUser.id)
         .join(Role, Role.id == assoc_user_role.c.role_id)
         .where(Role.name == ROLE_SCHOOL_REGISTRAR, XuejiUser.active.is_(True))
         .order_by(Region.code, School.code, XuejiUser.id).limit(limit))
    if province_code:
        q = q.where(School.province_code == province_code)
    if search:
        like = f"%{search}%"
        q = q.where((School.name.like(like)) | (XuejiUser.last_name.like(like)) | (XuejiUser.first_name.like(like)))
    return session.execute(q).all()


def province_of_current_user(session) -> str | None:
    scope = current_scope()
    if scope.is_all:
        return None
    if scope.kind == "school":
        return session.execute(select(School.province_code).where(School.id == scope.school_id)).scalar()
    if scope.kind == "region":
        return scope.region_code[:2] + "0000"
    return "none"


@service
def unlock(session, users) -> int:
    """解除锁定: clear the lockout of the given (already scope-checked) accounts; audited as an update."""
    for user in users:
        user.locked_until, user.fail_login_count = None, 0
    return len(users)
