"""Row-level scope: the one mechanism every view, API, action, download, export, dropdown and write goes through.

A user's scope is everything (系统管理员), one school (school staff) or one region of the GB/T 2260 tree
(bureau staff). Each model says how it is reached from a school with ``__scope__``:

    "self"    the School table itself          "school"  rows with a school_id column
    "region"  the Region tree                  "user"    accounts (school_id or region_code)
    "student" rows with a student_id column    "request" requests: filing or counterpart school
    "public"  reference data (code tables)     "region_row" rows owned by a region level (settings)
    "owner"   rows of one account (user_id): background exports
    "county"  rows owned by one county (county_code): 小学毕业生名单 imports; bureau staff of that county or above

Reads: ``scope_condition(model)`` is added to every query by ``ScopedInterface`` (so FAB's list, show, edit,
delete, action, action_post and related-field dropdowns all see only in-scope rows; others answer 404).
Writes: ``check_writes`` runs at every flush, so no path (form, JSON, action, import) can place a row outside the
writer's scope, whatever the request carried.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, has_request_context
import copy

from flask_appbuilder.models.filters import BaseFilter, Filters
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import Integer, any_, bindparam, event, false, inspect, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError

from app.errors import OutOfScope, RuleError, integrity_message
from models import School

ROLE_ADMIN = "系统管理员"


@dataclass(frozen=True)
class Scope:
    kind: str                      # all | school | region | none
    school_id: int | None = None
    region_code: str | None = None
    region_level: str | None = None
    user_id: int | None = None     # the account itself, for rows only their owner sees

    @property
    def is_all(self) -> bool:
        return self.kind == "all"


NO_SCOPE = Scope("none")
ALL = Scope("all")


def scope_of(user) -> Scope:
    """The scope a user's account grants. Admin role → all; school_id → school; region_code → region."""
    if user is None or not getattr(user, "is_authenticated", False):
        return NO_SCOPE
    if any(r.name == ROLE_ADMIN for r in user.roles):
        return ALL
    if user.school_id:
        return Scope("school", school_id=user.school_id, user_id=user.id)
    if user.region_code and user.region is not None:
        return Scope("region", region_code=user.region_code, region_level=user.region.level, user_id=user.id)
    return NO_SCOPE


def request_actor():
    """The signed-in user of the current request, or None (CLI, importers, the anonymous login flow)."""
    if not has_request_context():
        return None
    user = g.get("user")
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def current_scope() -> Scope:
    """The scope of the request's user, computed once per request and user. Outside a request (CLI,
    importers run as system jobs) everything is in scope: those callers pass an explicit scope."""
    if not has_request_context():
        return ALL
    user = g.get("user")
    key = (id(user), getattr(user, "id", None))
    cached = g.get("_xueji_scope")
    if cached is None or cached[0] != key:
        cached = (key, scope_of(user))
        g._xueji_scope = cached
    return cached[1]


def _school_region_column(level: str):
    return {"county": School.county_code, "city": School.city_code, "province": School.province_code}[level]


def schools_in_scope(scope: Scope):
    """A SELECT of the school ids a scope reaches (for IN-subqueries), or None for all."""
    if scope.is_all:
        return None
    if scope.kind == "school":
        return select(School.id).where(School.id == scope.school_id)
    if scope.kind == "region":
        return select(School.id).where(_school_region_column(scope.region_level) == scope.region_code)
    return select(School.id).where(false())


def _region_prefix(scope: Scope) -> str:
    return {"province": scope.region_code[:2], "city": scope.region_code[:4], "county": scope.region_code}[
        scope.region_level]


def scope_condition(model, scope: Scope | None = None):
    """SQL condition limiting ``model`` to the scope; None when nothing needs limiting."""
    scope = scope or current_scope()
    if scope.is_all:
        return None
    kind = getattr(model, "__scope__", None)
    if kind is None:
        raise RuntimeError(f"{model.__name__} declares no __scope__")
    if scope.kind == "none":
        return false()
    if kind == "self":
        if scope.kind == "school":
            return model.id == scope.school_id
        return _school_region_column(scope.region_level) == scope.region_code
    if kind == "school":
        if scope.kind == "school":
            return model.school_id == scope.school_id
        return model.school_id.in_(schools_in_scope(scope))
    if kind == "public":
        return None
    if kind == "owner":
        return model.user_id == scope.user_id
    if kind == "student":
        from models import Student
        return model.student_id.in_(select(Student.id).where(scope_condition(Student, scope)))
    if kind == "via_request":
        from models import Request
        return model.request_id.in_(select(Request.id).where(scope_condition(Request, scope)))
    if kind == "request":
        if scope.kind == "school":
            return or_(model.school_id == scope.school_id, model.counterpart_school_id == scope.school_id)
        schools = schools_in_scope(scope)
        return or_(model.school_id.in_(schools), model.counterpart_school_id.in_(schools))
    if kind == "county":
        if scope.kind == "school":
            return false()
        return model.county_code.like(_region_prefix(scope) + "%")
    if kind == "region_row":
        # settings: the installation-wide rows and those of the user's own province
        prefix = (_province_prefix_of_school(scope.school_id) if scope.kind == "school"
                  else scope.region_code[:2])
        return or_(model.region_code.is_(None), model.region_code.like(prefix + "%"))
    if kind == "region":
        # Reference data: everyone reads the whole tree of their own province.
        if scope.kind == "school":
            return model.code.like(_province_prefix_of_school(scope.school_id) + "%")
        return model.code.like(scope.region_code[:2] + "%")
    if kind == "user":
        if scope.kind == "school":
            return model.school_id == scope.school_id
        return or_(model.school_id.in_(schools_in_scope(scope)),
                   model.region_code.like(_region_prefix(scope) + "%"))
    raise RuntimeError(f"unknown __scope__ {kind!r}")


def _province_prefix_of_school(school_id: int) -> str:
    from app.extensions import db
    code = db.session.execute(select(School.province_code).where(School.id == school_id)).scalar()
    return (code or "??")[:2]


def apply_scope(query, model, scope: Scope | None = None):
    cond = scope_condition(model, scope)
    return query if cond is None else query.filter(cond)


def resolved_scope_condition(model, session, scope: Scope | None = None):
    """``scope_condition`` with a region's schools looked up first (one small indexed query), so a school-scoped
    table is limited by ``school_id IN (<the ids>)``: the same rows as the IN-subquery, but the planner then
    knows which schools it needs. Given only the subquery, PostgreSQL guesses: for ``ORDER BY … LIMIT 25`` it
    walks the primary key or the whole school_id index from the start, which is 200 ms – 1 s when the
    county's rows sit at the end of a million-row table (PERF-BASELINES B.2(1)); with the ids it reads one
    school's index range and stops."""
    scope = scope or current_scope()
    if scope.kind == "region" and getattr(model, "__scope__", None) == "school":
        return in_ids(model.school_id, list(session.scalars(schools_in_scope(scope))))
    return scope_condition(model, scope)


def in_ids(column, ids: list[int]):
    """``column IN (ids)``; on PostgreSQL ``column = ANY(:ids)`` with the ids as one array parameter: the same
    plan (PostgreSQL turns an IN list into ``= ANY(ARRAY[…])`` itself), but the statement's text no longer
    changes with the ids, so a county of 174 schools costs neither SQLAlchemy's rendering of 174 placeholders
    nor psycopg's parsing of an uncacheable long query on every list page (about 2 ms a page)."""
    from app.extensions import db
    if db.engine.dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=ARRAY(Integer)))
    return column.in_(ids)


# --- writes ------------------------------------------------------------------------------------------

def school_in_scope(school_id, scope: Scope, session) -> bool:
    if scope.is_all:
        return True
    if school_id is None:
        return False
    if scope.kind == "school":
        return school_id == scope.school_id
    if scope.kind == "region":
        with session.no_autoflush:
            school = session.get(School, school_id)
        return school is not None and _region_value(school, scope.region_level) == scope.region_code
    return False


def _region_value(school: School, level: str):
    return {"county": school.county_code, "city": school.city_code, "province": school.province_code}[level]


def region_in_scope(code, scope: Scope) -> bool:
    if scope.is_all:
        return True
    if scope.kind != "region" or not code:
        return False
    return code.startswith(_region_prefix(scope))


def effective(obj, rel: str, column: str):
    """The value a FK column will have after this flush: a relationship set in the request wins over the
    column (SQLAlchemy syncs it at flush), so checks must look at both (FAB5-NOTES §2 pitfall)."""
    state = inspect(obj)
    if rel in state.mapper.relationships:
        hist = state.attrs[rel].history
        if hist.added:
            target = hist.added[0]
            return None if target is None else getattr(target, _remote_key(obj, rel))
    return getattr(obj, column)


def _remote_key(obj, rel: str) -> str:
    prop = inspect(type(obj)).relationships[rel]
    (local, remote), = prop.local_remote_pairs
    return remote.key


def _check_object(obj, scope: Scope, session) -> None:
    kind = getattr(type(obj), "__scope__", None)
    if kind is None or scope.is_all:
        return
    if kind == "school":
        if not school_in_scope(effective(obj, "school", "school_id"), scope, session):
            raise OutOfScope("不能把记录放到您管辖范围以外的学校")
    elif kind == "self":
        if scope.kind == "school":
            if obj.id != scope.school_id:
                raise OutOfScope()
            if effective(obj, "county", "county_code") != _original(obj, "county_code"):
                raise RuleError("学校不能自行修改所属区县，请联系区县教育局", code="forbidden", status=403)
        elif not region_in_scope(effective(obj, "county", "county_code"), scope):
            raise OutOfScope("不能把学校放到您管辖的区域以外")
    elif kind in ("region", "public"):
        raise RuleError("只有系统管理员可以维护行政区划和代码表", code="forbidden", status=403)
    elif kind == "region_row":
        if not region_in_scope(effective(obj, "region", "region_code"), scope):
            raise OutOfScope("只能修改本辖区的设置")
    elif kind == "county":
        if not region_in_scope(effective(obj, "county", "county_code"), scope):
            raise OutOfScope("只能导入本辖区的名单")
    elif kind == "student":
        from models import Student
        with session.no_autoflush:
            student = obj.student if obj.student is not None else session.get(Student, obj.student_id)
        if student is None or not school_in_scope(effective(student, "school", "school_id"), scope, session):
            raise OutOfScope()
    elif kind == "via_request":
        from models import Request
        with session.no_autoflush:
            req = session.get(Request, obj.request_id) if obj.request_id else None
        if req is not None:
            _check_object(req, scope, session)
    elif kind == "request":
        if not (school_in_scope(obj.school_id, scope, session)
                or school_in_scope(obj.counterpart_school_id, scope, session)):
            raise OutOfScope()
    elif kind == "owner":
        if obj.user_id != scope.user_id or _original(obj, "user_id") != scope.user_id:
            raise OutOfScope()
    elif kind == "user":
        school_id = effective(obj, "school", "school_id")
        if school_id is not None:
            if not school_in_scope(school_id, scope, session):
                raise OutOfScope("不能在您管辖范围以外的学校创建或修改账号")
        elif not region_in_scope(effective(obj, "region", "region_code"), scope):
            raise OutOfScope("不能在您管辖的区域以外创建或修改账号")


class system_write:
    """`with system_write(session):` writes made by the system on the user's behalf (问题学籍 detection across
    schools, the approved effect of a request) pass the scope check; every use is a deliberate, audited rule."""

    def __init__(self, session):
        self.session = session

    def __enter__(self):
        self.session.info["xueji_system"] = self.session.info.get("xueji_system", 0) + 1
        return self.session

    def __exit__(self, *exc):
        self.session.info["xueji_system"] -= 1


def check_writes(session, flush_context, instances) -> None:
    """before_flush: every new, changed or deleted scoped row must lie in the writer's scope.

    Only request-bound writes are checked: CLI and importers run as trusted system jobs."""
    if request_actor() is None or session.info.get("xueji_system"):
        return
    scope = current_scope()
    if scope.is_all:
        return
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if obj in session.dirty and not session.is_modified(obj, include_collections=False):
            continue
        if getattr(obj, "__audit_row__", False):
            continue
        if obj in session.dirty or obj in session.deleted:
            # the row as it was must have been in scope too (no moving rows in from elsewhere)
            _check_original(obj, scope, session)
        _check_object(obj, scope, session)


def _original(obj, column: str):
    hist = inspect(obj).attrs[column].history
    return hist.deleted[0] if hist.deleted else getattr(obj, column)


def _check_original(obj, scope: Scope, session) -> None:
    kind = getattr(type(obj), "__scope__", None)
    if kind == "self" and scope.kind == "region":
        if not region_in_scope(_original(obj, "county_code"), scope):
            raise OutOfScope()
        return
    if kind == "region_row":
        if not region_in_scope(_original(obj, "region_code"), scope):
            raise OutOfScope()
        return
    if kind == "county":
        if not region_in_scope(_original(obj, "county_code"), scope):
            raise OutOfScope()
        return
    if kind in ("school", "user"):
        hist = inspect(obj).attrs.school_id.history
        original = hist.deleted[0] if hist.deleted else obj.school_id
        if kind == "user" and original is None:
            rhist = inspect(obj).attrs.region_code.history
            rorig = rhist.deleted[0] if rhist.deleted else obj.region_code
            if not region_in_scope(rorig, scope):
                raise OutOfScope()
            return
        if not school_in_scope(original, scope, session):
            raise OutOfScope()


def install(session_factory) -> None:
    event.listen(session_factory, "before_flush", check_writes)


# --- FAB glue ----------------------------------------------------------------------------------------

class ScopeFilter(BaseFilter):
    """A filter for the related-field dropdowns of forms (``add_form_query_rel_fields``), whose queries FAB runs on a
    plain SQLAInterface of the related model: ``[["id", ScopeFilter, None]]`` (value unused). Views and APIs need no
    base filter: their ScopedInterface scopes every query itself."""
    name = "管辖范围"
    arg_name = None          # not selectable from ?q= filters

    def apply(self, query, value):
        if isinstance(self.datamodel, ScopedInterface):
            return query         # the interface scopes every query itself; adding it twice only costs the planner
        return apply_scope(query, self.model)


class SharedFilters(Filters):
    """FAB's Filters, whose joined copies (one per list request: the search's and the base filters) share the
    converted filter tables instead of converting every column of the model again (~60 filter objects a request
    for the student table)."""

    def get_joined_filters(self, filters) -> "SharedFilters":
        joined = copy.copy(self)
        joined.filters, joined.values = self.filters + filters.filters, self.values + filters.values
        return joined

    def copy(self) -> "SharedFilters":
        copied = copy.copy(self)
        copied.filters, copied.values = list(self.filters), list(self.values)
        return copied


class ScopedInterface(SQLAInterface):
    """SQLAInterface whose every query (list, count, get, related dropdowns) is scoped, and whose writes turn
    database clashes into Chinese RuleErrors after rolling back (nothing half-written)."""

    def get_filters(self, search_columns=None, search_filters=None):
        return SharedFilters(self.filter_converter_class, self, search_columns=search_columns or [],
                             search_filters=search_filters)

    def apply_filters(self, query, filters):
        return apply_scope(super().apply_filters(query, filters), self.obj)

    def _get_base_query(self, query, filters=None, order_column="", order_direction=""):
        query = apply_scope(query, self.obj)
        return super()._get_base_query(query, filters, order_column, order_direction)

    def get(self, id, filters=None, select_columns=None, outer_default_load=False):
        """An id no row can have (not a number, beyond 64 bits) is simply not found, never a database error."""
        if self.is_pk_composite() is False and self.is_integer(self.get_pk_name()):
            try:
                value = int(id)
            except (TypeError, ValueError):
                return None
            if not -2**63 <= value < 2**63:
                return None
        return super().get(id, filters, select_columns=select_columns, outer_default_load=outer_default_load)

    def get_related_interface(self, col_name):
        """Dropdowns of related rows: scoped when the related model is (schools, classes …), plain for
        FAB's own tables (roles, groups), which role permissions and app.accounts guard instead."""
        cache = self.__dict__.setdefault("_related_interfaces", {})
        if col_name not in cache:       # FAB asks once per dropdown option (get_pk_func): build each only once
            model = self.get_related_model(col_name)
            cls = SQLAInterface if getattr(model, "__scope__", None) is None else ScopedInterface
            cache[col_name] = cls(model, self.session)
        return cache[col_name]

    def _write(self, fn):
        try:
            fn()
            self.session.commit()
        except IntegrityError as exc:
            self.session.rollback()
            raise RuleError(integrity_message(exc), code="conflict") from None
        except Exception:
            self.session.rollback()
            raise

    def add(self, item, commit=True):
        self._write(lambda: self.session.add(item))

    def edit(self, item, commit=True):
        self._write(lambda: self.session.merge(item))

    def delete(self, item, commit=True):
        self._write(lambda: self.session.delete(item))
