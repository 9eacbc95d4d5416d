"""审计日志: every insert/update/delete of scoped business data and of accounts, every login, failed login,
logout and role change, written in the same transaction as the change it records.

Append-only: the ORM refuses to update or delete AuditEvent rows, and no view or API exposes a write route.
"""
import datetime

from flask import g, has_request_context, request
from sqlalchemy import event, insert, inspect

from app import clock
from app.codes import field_label, when
from app.errors import RuleError
from models.audit import AuditEvent

# Bookkeeping columns that change on every login or save and carry no business meaning.
IGNORED = {"last_login", "login_count", "fail_login_count", "changed_on", "created_on",
           "changed_by_fk", "created_by_fk", "locked_until", "session_version"}
MASKED = {"password"}


def _actor():
    if not has_request_context():
        return None, "system"
    user = g.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return user.id, user.username
    return None, None


def _ip():
    return request.remote_addr if has_request_context() else None


def _school_of(obj):
    return getattr(obj, "school_id", None) if type(obj).__tablename__ != "school" else obj.id


def _pk(obj):
    state = inspect(obj)
    ident = state.identity
    if not ident:            # a row inserted by this flush has its key in its attributes, not yet its identity
        ident = [state.dict.get(state.mapper.get_property_by_column(c).key) for c in state.mapper.primary_key]
        if any(i is None for i in ident):
            return None
    return ",".join(str(i) for i in ident)


def _clean(text: str) -> str:
    # NUL cannot be stored in a PostgreSQL text column; the rest of the value is kept as it came
    return text.replace("\x00", "\\0")


def describe(obj) -> str:
    """A row as the audit log shows it: its own __repr__/__str__ when the model has one (学籍号 姓名, 班级名 …),
    else table #id and its column values, never Python's `<models.x.Y object at 0x…>`."""
    if type(obj).__repr__ is not object.__repr__ or type(obj).__str__ is not object.__str__:
        return str(obj)
    try:
        state = inspect(obj)
    except Exception:                       # not a mapped object: its class name only
        return type(obj).__name__
    table = getattr(type(obj), "__tablename__", type(obj).__name__)
    ident = _pk(obj)
    values = []
    for attr in state.mapper.column_attrs:
        if attr.key in IGNORED or attr.key in MASKED or attr.key == "id":
            continue
        value = state.dict.get(attr.key)
        if value is not None:
            values.append(f"{attr.key}={when(value)}")
    return f"{table}#{ident or '?'} " + " ".join(values) if values else f"{table}#{ident or '?'}"


def _text(value):
    if value is None:
        return None
    if isinstance(value, (datetime.date, datetime.datetime)):
        return when(value)                  # to the minute, like every screen
    if isinstance(value, (list, tuple, set)):
        return _clean(",".join(sorted(_text(v) or "" for v in value)))[:2000]
    if not isinstance(value, (str, int, float, bool)) and hasattr(type(value), "__table__"):
        value = describe(value)
    return _clean(str(value))[:2000]


def event_row(action, entity=None, entity_id=None, field=None, old=None, new=None, school_id=None,
              user_id=None, username=None):
    uid, uname = _actor()
    username = username if username is not None else uname
    return dict(at=clock.now(), user_id=user_id if user_id is not None else uid,
                username=None if username is None else _clean(str(username))[:128], action=action, entity=entity,
                entity_id=None if entity_id is None else str(entity_id), field=field,
                old_value=_text(old), new_value=_text(new), school_id=school_id, ip=_ip())


def record(session, action, **kw) -> None:
    """Write one audit row now, in the session's transaction (the caller commits)."""
    session.execute(insert(AuditEvent), [event_row(action, **kw)])


def _audited(obj) -> bool:
    return getattr(type(obj), "__scope__", None) is not None and not isinstance(obj, AuditEvent)


def _changes(obj):
    state = inspect(obj)
    entity, school = type(obj).__tablename__, _school_of(obj)
    for attr in state.mapper.column_attrs:
        if attr.key in IGNORED:
            continue
        hist = state.attrs[attr.key].history
        if not hist.has_changes():
            continue
        old = hist.deleted[0] if hist.deleted else None
        new = hist.added[0] if hist.added else None
        if old == new:
            continue
        if attr.key in MASKED:
            old, new = ("***" if old else None), "***"
        elif state.session is not None:          # a code as its name (性别 "男", not "1"), a region as 省市县
            old = field_label(state.session, entity, attr.key, old)
            new = field_label(state.session, entity, attr.key, new)
        yield event_row("update", entity, _pk(obj), attr.key, old, new, school)
    if entity == "ab_user":
        hist = state.attrs.roles.history
        if hist.added or hist.deleted:
            old = [r.name for r in (hist.unchanged + hist.deleted)]
            new = [r.name for r in (hist.unchanged + hist.added)]
            yield event_row("role_change", entity, _pk(obj), "roles", old, new, school)


def _refuse_audit_changes(session, flush_context, instances):
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise RuleError("审计日志只能追加，不能修改或删除", code="forbidden", status=403)


def _write_audit(session, flush_context):
    rows = []
    for obj in session.new:
        if _audited(obj):
            rows.append(event_row("insert", type(obj).__tablename__, _pk(obj), school_id=_school_of(obj),
                                  new=describe(obj)))
    for obj in session.dirty:
        if _audited(obj) and session.is_modified(obj):
            rows.extend(_changes(obj))
    for obj in session.deleted:
        if _audited(obj):
            rows.append(event_row("delete", type(obj).__tablename__, _pk(obj), school_id=_school_of(obj),
                                  old=describe(obj)))
    if rows:
        session.connection().execute(insert(AuditEvent), rows)
        if any(r["entity"] in ("ab_user", "ab_role") for r in rows):
            from app.security import clear_permission_cache
            clear_permission_cache()


def install(session_factory) -> None:
    event.listen(session_factory, "before_flush", _refuse_audit_changes)
    event.listen(session_factory, "after_flush", _write_audit)
