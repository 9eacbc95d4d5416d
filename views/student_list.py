"""Student lists at province scale, and words instead of codes in every list: grade names from cohort and
学制 (app.schoolyear), code labels, case-insensitive and identifier-cleaning filters, a counted list query that
reads one school's index range per page, and the search form cached per role (it lists every class in scope)."""
import threading
import time

from flask import current_app, has_app_context
from flask_appbuilder.models.sqla.filters import (FilterContains, FilterEndsWith, FilterNotContains,
                                                  FilterNotEndsWith, FilterNotStartsWith, FilterStartsWith,
                                                  SQLAFilterConverter, get_field_setup_query)
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.widgets import SearchWidget
from flask_babel import get_locale
from sqlalchemy import event, func
from sqlalchemy.orm import Session, aliased, contains_eager, lazyload, load_only

from app import schoolyear
from app.extensions import db
from app.scoping import ScopedInterface, current_scope, resolved_scope_condition
from models import School, SchoolClass
from views.identity import clean_text


# --- words, not codes ------------------------------------------------------------------------------

def grade_of(row, status=True) -> str:
    """年级 of a student or class row (初三; "2024级" once a student has left), the county's school year looked
    up once per request (app.schoolyear)."""
    school = row.school
    if school is None:
        return schoolyear.grade_name(row.stage, row.cohort_year, None)
    return schoolyear.grade_name(row.stage, row.cohort_year,
                                 schoolyear.school_years(db.session)(school.county_code), school.schooling,
                                 row.status if status else None)


def class_grade(klass) -> str:
    """A class's grade with its cohort: 初一（2026级）."""
    name = grade_of(klass, status=False)
    cohort = f"{klass.cohort_year}级"
    return name if name == cohort else f"{name}（{cohort}）"





class WordsMixin:
    """Values of a show or list page as people read them: 年级 as a grade name, nothing for a missing value
    (never "None"); booleans stay booleans for their 是/否 formatter."""
    GRADE = staticmethod(grade_of)

    def _get_attr_value(self, item, col):
        if col == "cohort_year":
            return self.GRADE(item)
        value = SQLAInterface._get_attr_value(item, col)
        if value is None:
            try:
                boolean = self.is_boolean(col)
            except Exception:               # noqa: BLE001 - a property or a dotted path: not a boolean column
                boolean = False
            return None if boolean else ""
        return value


class ClassInterface(WordsMixin, ScopedInterface):
    GRADE = staticmethod(class_grade)


class WordsInterface(WordsMixin, ScopedInterface):
    """Any scoped screen: nothing for a missing value."""

# --- student lists at province scale ------------------------------------------------------------------

def _caseless(value) -> bool:
    """True when the text has no letters with case (汉字, digits): LIKE then matches exactly what ILIKE does."""
    return isinstance(value, str) and value.lower() == value.upper()


class _CaselessLike:
    """FAB's text filters emit ILIKE, which costs about 3x LIKE on PostgreSQL (PERF-BASELINES B.2(2)) and
    lower() on both sides elsewhere. For a search text without cased letters (a Chinese name) both give the
    same rows, so the cheaper LIKE is used; anything with Latin letters keeps ILIKE."""
    pattern = "{}"
    negate = False

    def apply(self, query, value):
        if not _caseless(value):
            return super().apply(query, value)
        query, field = get_field_setup_query(query, self.model, self.column_name)
        cond = field.like(self.pattern.format(value))
        return query.filter(~cond if self.negate else cond)


class CaselessStartsWith(_CaselessLike, FilterStartsWith):
    pattern = "{}%"


class CaselessEndsWith(_CaselessLike, FilterEndsWith):
    pattern = "%{}"


class CaselessContains(_CaselessLike, FilterContains):
    pattern = "%{}%"


class CaselessNotStartsWith(_CaselessLike, FilterNotStartsWith):
    pattern, negate = "{}%", True


class CaselessNotEndsWith(_CaselessLike, FilterNotEndsWith):
    pattern, negate = "%{}", True


class CaselessNotContains(_CaselessLike, FilterNotContains):
    pattern, negate = "%{}%", True


class IdentifierStartsWith(FilterStartsWith):
    """学籍号 / 身份证件号 prefix as a range (``xjh >= 'G4102' AND xjh < 'G4103'``): identifiers are stored
    upper-case ASCII, so this is the rows ``ILIKE 'g4102%'`` finds, and it uses the column's plain unique index
    under any collation (PostgreSQL cannot use a btree for LIKE under a non-C collation and scans the table)."""

    def apply(self, query, value):
        prefix = value.strip().upper() if isinstance(value, str) else ""
        if not prefix or not prefix.isascii() or not prefix.isalnum():
            return super().apply(query, value)
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(field >= prefix, field < prefix[:-1] + chr(ord(prefix[-1]) + 1))


IDENTIFIER_COLUMNS = ("xjh", "id_number")
_CLEANING: dict[type, type] = {}


def _cleaning(cls: type) -> type:
    """The filter class `cls` applied to the identifier as app.identity.clean leaves it (a 学籍号 pasted with a
    trailing NBSP, full-width digits …). FAB keeps one class per operator name for REST filters, whichever was
    built last (flask_appbuilder.models.filters.map_args_filter), so the cleaning is limited to identifier
    columns: on any other column the class behaves exactly like `cls`."""
    if cls not in _CLEANING:
        def apply(self, query, value):
            if self.column_name in IDENTIFIER_COLUMNS:
                value = clean_text(value)
            return cls.apply(self, query, value)
        _CLEANING[cls] = type(f"Cleaned{cls.__name__}", (cls,), {"apply": apply})
    return _CLEANING[cls]


class IdentifierFilterConverter(SQLAFilterConverter):
    """FAB's filters (same order, so ``_flt_<n>_<column>`` URLs keep their meaning); those of 学籍号 and
    身份证件号 clean the searched value first."""
    IDENTIFIERS = IDENTIFIER_COLUMNS
    SWAP: dict = {}

    def convert(self, col_name):
        filters = super().convert(col_name)
        if not filters or not self.datamodel.is_string(col_name):
            return filters
        identifier = col_name in self.IDENTIFIERS
        swap = {**self.SWAP, **({FilterStartsWith: IdentifierStartsWith} if identifier else {})}
        out = []
        for f in filters:
            cls = swap.get(type(f), type(f))
            out.append((_cleaning(cls) if identifier else cls)(col_name, self.datamodel))
        return out


class StudentFilterConverter(IdentifierFilterConverter):
    """…with the text ones replaced by the index-friendly versions above."""
    SWAP = {FilterStartsWith: CaselessStartsWith, FilterEndsWith: CaselessEndsWith,
            FilterContains: CaselessContains, FilterNotStartsWith: CaselessNotStartsWith,
            FilterNotEndsWith: CaselessNotEndsWith, FilterNotContains: CaselessNotContains}


class StudentListInterface(WordsMixin, ScopedInterface):
    """The student lists (学生学籍 and the 综合查询 screens) for a county of 200,000: two statements, a count and
    a page, each selecting only what the list shows (its columns, the columns its properties read, the school's
    name and the class's grade and name joined in: no N+1), and the region's schools resolved to ids first
    (app.scoping.resolved_scope_condition). Everything else (show, edit, export, actions) is ScopedInterface."""
    filter_converter_class = StudentFilterConverter
    RELATED = {"school": (School, ("name", "county_code", "schooling"), ("county",)),  # __repr__ + 年级 read,
               "school_class": (SchoolClass, ("cohort_year", "name"), ("school",))}  # eager joins to skip
    PROPERTIES = {"sex_label": ("sex",), "cohort_year": ("cohort_year", "stage", "status")}
    ORDER_BY = {"sex_label": "sex"}      # the 性别 header sorts by the code (a property cannot be ordered by)

    def __init__(self, obj, session=None, list_columns=()):
        super().__init__(obj, session)
        self.list_load = tuple(list_columns)
        # built once: a fresh alias per request makes SQLAlchemy re-derive each join (a few ms a page)
        self._joins, columns = [], {"id", "school_id"}
        for col in self.list_load:
            if col in self.RELATED:
                target, shown, skip = self.RELATED[col]
                path = getattr(obj, col).of_type(alias := aliased(target))
                self._joins.append((alias, path, contains_eager(path).options(
                    load_only(*[getattr(alias, c) for c in shown]), *[lazyload(getattr(alias, r)) for r in skip])))
            else:
                columns.update(self.PROPERTIES.get(col, (col,)))
        self._load = load_only(*[getattr(obj, c) for c in sorted(columns)])

    def query(self, filters=None, order_column="", order_direction="", page=None, page_size=None,
              select_columns=None, outer_default_load=False):
        model = self.obj
        base = SQLAInterface.apply_filters(self, self.session.query(model), filters)
        cond = resolved_scope_condition(model, self.session)
        if cond is not None:
            base = base.filter(cond)
        count = base.with_entities(func.count()).order_by(None).scalar()
        q = base
        for alias, path, _option in self._joins:
            q = q.outerjoin(alias, path)
        q = q.options(self._load, *[option for *_rest, option in self._joins])
        order_column = self.ORDER_BY.get(order_column, order_column)
        q = self.apply_order_by(q, order_column, order_direction, add_pk=True)
        q = self.apply_pagination(q, page, page_size)
        return count, q.all()


SEARCH_FORM_TTL = 30.0          # seconds, like the permission cache (app/security.py)
_search_lock = threading.Lock()


def _search_forms() -> dict:
    return current_app.extensions.setdefault("xueji_search_forms", {})


class CachedSearchWidget(SearchWidget):
    """FAB renders every field of the search form on every list page (13 fields for students, one of them the
    学校 dropdown with its two queries): about 10 ms of a 50 ms page. The rendered fields do not depend on the
    request (the active filters travel separately), only on the view, the user's scope and the language, so
    they are kept per app for 30 s, and dropped at once when a school is added, changed or deleted in this
    process (like the permission cache)."""

    def __call__(self, **kwargs):
        args = self.template_args
        key = (args["route_base"], current_scope(), str(get_locale()), tuple(args["include_cols"]))
        now = time.monotonic()
        with _search_lock:
            hit = _search_forms().get(key)
        if hit is None or now - hit[0] > SEARCH_FORM_TTL:
            dict_filters = self.filters.get_search_filters()
            form = args["form"]
            hit = (now, {c: str(form[c].label.text) for c in args["include_cols"]},
                   {c: form[c]() for c in args["include_cols"]},
                   {c: [str(flt.name) for flt in dict_filters[c]] for c in args["include_cols"]})
            with _search_lock:
                _search_forms()[key] = hit
        _, kwargs["label_columns"], kwargs["form_fields"], kwargs["search_filters"] = hit
        kwargs["active_filters"] = self.filters.get_filters_values_tojson()
        return super(SearchWidget, self).__call__(**kwargs)


@event.listens_for(Session, "after_flush")
def _forget_search_forms(session, _context):
    if has_app_context() and any(isinstance(o, School) for o in (*session.new, *session.dirty, *session.deleted)):
        with _search_lock:
            _search_forms().clear()
