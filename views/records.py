"""Screens and REST resources of the 学籍 records: regions, schools, classes, students, family members,
enrollment history, code tables and settings."""
import json
import threading
import time

from flask import abort, current_app, flash, g, has_app_context, redirect, request, send_file, url_for
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose as api_expose, protect, safe
from flask_appbuilder.models.sqla.filters import (FilterContains, FilterEndsWith, FilterEqual, FilterNotContains,
                                                  FilterNotEndsWith, FilterNotStartsWith, FilterStartsWith,
                                                  SQLAFilterConverter, get_field_setup_query)
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from flask_appbuilder.widgets import SearchWidget
from flask_babel import get_locale
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, aliased, contains_eager, lazyload, load_only
from wtforms import BooleanField

from app import classes as class_rules
from app import grades
from app.codes import FIELD_TABLES, REGION_FIELDS, field_label, label, region_label, when
from app import clock, photos
from app.demo import current_school_year
from app.errors import RuleError, json_error
from app.exports import GRADE
from app.extensions import db
from app.i18n import _l
from app.roles import VIEW_RW
from app.scoping import ScopeFilter, ScopedInterface, apply_scope, current_scope, resolved_scope_condition
from models import AuditEvent, Code, Enrollment, Guardian, Region, School, SchoolClass, Setting, Student
from models.requests import Problem, Request
from views.base import FkSchemaConverter, XuejiApi, XuejiModelView
from views.fields import code_field, code_formatter, yes_no
from views.identity import IdentifierSchemaConverter, clean_text, identifier_form_field

REGION_LABELS = {"code": _l("行政区划代码"), "name": _l("名称"), "level": _l("级别"), "level_label": _l("级别"),
                 "parent": _l("上级区划"), "parent_code": _l("上级代码")}
SCHOOL_LABELS = {"code": _l("学校标识码"), "name": _l("学校名称"), "county": _l("所属区县"), "county_code": _l("区县代码"),
                 "city_code": _l("地市代码"), "province_code": _l("省代码"), "school_type": _l("办学类型"),
                 "schooling": _l("学制"), "address": _l("地址"), "principal": _l("校长"), "phone": _l("联系电话")}
CLASS_LABELS = {"school": _l("学校"), "school_id": _l("学校ID"), "stage": _l("学段"), "cohort_year": _l("年级(入学年份)"),
                "class_no": _l("班号"), "name": _l("班级名称"), "capacity": _l("班额(空=区县默认)")}
STUDENT_LABELS = {
    "xjh": _l("全国学籍号"), "name": _l("姓名"), "sex": _l("性别"), "sex_label": _l("性别"), "birth_date": _l("出生日期"),
    "birthplace": _l("出生地"), "native_place": _l("籍贯"), "ethnicity": _l("民族"), "nationality": _l("国籍/地区"),
    "id_type": _l("身份证件类型"), "id_number": _l("身份证件号"), "gatq": _l("港澳台侨外"), "political": _l("政治面貌"),
    "health": _l("健康状况"), "name_pinyin": _l("姓名拼音"), "former_name": _l("曾用名"),
    "id_valid_until": _l("身份证件有效期"), "hukou_place": _l("户口所在地"), "hukou_type": _l("户口性质"),
    "specialty": _l("特长"), "aux_no": _l("学籍辅号"), "seat_no": _l("班内学号"), "entry_ym": _l("入学年月"),
    "entry_mode": _l("入学方式"), "study_mode": _l("就读方式"), "source": _l("学生来源"),
    "current_address": _l("现住址"), "mail_address": _l("通信地址"), "home_address": _l("家庭地址"),
    "phone": _l("联系电话"), "postcode": _l("邮政编码"), "email": _l("电子信箱"), "homepage": _l("主页地址"),
    "only_child": _l("是否独生子女"), "preschool": _l("是否受过学前教育"), "left_behind": _l("是否留守儿童"),
    "migrant_child": _l("是否进城务工人员随迁子女"), "orphan": _l("是否孤儿"), "martyr_child": _l("是否烈士或优抚子女"),
    "inclusive": _l("随班就读"), "disability": _l("残疾类型"), "gov_degree": _l("是否由政府购买学位"),
    "needs_aid": _l("是否需要申请资助"), "one_subsidy": _l("是否享受一补"), "distance_km": _l("上下学距离(公里)"),
    "transport": _l("上下学交通方式"), "school_bus": _l("是否需要乘坐校车"), "school": _l("学校"),
    "school_id": _l("学校ID"), "stage": _l("学段"), "cohort_year": _l("年级"), "school_class": _l("班级"),
    "class_id": _l("班级ID"), "status": _l("学籍状态"), "has_problem": _l("问题学籍"), "deleted_at": _l("删除时间"),
    "delete_reason": _l("删除原因"), "photo": _l("学生照片"),
}
BASIC = ["xjh", "name", "sex", "birth_date", "birthplace", "native_place", "ethnicity", "nationality", "id_type",
         "id_number", "gatq", "political", "health"]
AUXILIARY = ["name_pinyin", "former_name", "id_valid_until", "hukou_place", "hukou_type", "specialty"]
REGISTRY = ["aux_no", "seat_no", "school", "stage", "cohort_year", "school_class", "entry_ym", "entry_mode",
            "study_mode", "source", "status"]
CONTACT = ["current_address", "mail_address", "home_address", "phone", "postcode", "email", "homepage"]
EXTENSION = ["only_child", "preschool", "left_behind", "migrant_child", "orphan", "martyr_child", "inclusive",
             "disability", "gov_degree", "needs_aid", "one_subsidy"]
TRANSPORT = ["distance_km", "transport", "school_bus"]
SECTIONS = [(_l("学生个人基础信息"), BASIC), (_l("学生个人辅助信息"), AUXILIARY), (_l("学生学籍基本信息"), REGISTRY),
            (_l("学生个人联系信息"), CONTACT), (_l("学生个人扩展信息"), EXTENSION), (_l("学生上下学交通方式"), TRANSPORT)]
CODED = FIELD_TABLES["student"]          # app.codes: the one map of coded columns
REQUIRED_CODED = {"sex", "ethnicity", "nationality", "id_type", "gatq", "health", "hukou_type", "entry_mode",
                  "study_mode"}
KEY_FIELDS = {"name", "id_number", "sex", "birth_date", "cohort_year", "school_class"}
IN_SCOPE = [["id", ScopeFilter, None]]


# --- words, not codes ------------------------------------------------------------------------------

def grade_of(row, status=True) -> str:
    """年级 of a student or class row (初三; "2024级" once a student has left), the county's school year looked
    up once per request (app.grades)."""
    school = row.school
    if school is None:
        return grades.grade_name(row.stage, row.cohort_year, None)
    return grades.grade_name(row.stage, row.cohort_year, grades.school_years(db.session)(school.county_code),
                             school.schooling, row.status if status else None)


def class_grade(klass) -> str:
    """A class's grade with its cohort: 初一（2026级）."""
    name = grade_of(klass, status=False)
    cohort = f"{klass.cohort_year}级"
    return name if name == cohort else f"{name}（{cohort}）"


def photo_limit(student) -> str:
    """photo.max_bytes for the student's county, as the upload form names it (2MB)."""
    from app import settings
    from app.evidence import limit_words
    county = student.school.county_code if student.school is not None else None
    return limit_words(settings.get_int(db.session, "photo.max_bytes", county))


def student_value(student, field: str) -> str:
    """One field of a student as the page and the 学籍卡 show it."""
    if field == "cohort_year":
        return grade_of(student)
    value = getattr(student, field, None)
    if field in ("school", "school_class"):
        return value.name if value is not None else ""
    if isinstance(value, bool):
        return yes_no(value)
    if field in CODED or field in REGION_FIELDS["student"]:
        return field_label(db.session, "student", field, value) or ""
    return when(value)


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


class RegionView(XuejiModelView):
    datamodel = WordsInterface(Region)
    class_permission_name = "Region"
    route_base = "/region"
    list_title = show_title = _l("行政区划")
    add_title, edit_title = _l("新增行政区划"), _l("编辑行政区划")
    label_columns = REGION_LABELS
    list_columns = ["code", "name", "level_label", "parent"]
    add_columns = edit_columns = ["code", "name", "level", "parent"]
    show_columns = ["code", "name", "level_label", "parent"]
    search_columns = ["code", "name", "level"]
    base_order = ("code", "asc")


class SchoolView(XuejiModelView):
    datamodel = ScopedInterface(School)
    class_permission_name = "School"
    route_base = "/school"
    list_title = show_title = _l("学校信息")
    add_title, edit_title = _l("新增学校"), _l("学校信息维护")
    label_columns = SCHOOL_LABELS
    list_columns = ["code", "name", "county", "school_type", "schooling", "principal", "phone"]
    show_columns = ["code", "name", "county", "school_type", "schooling", "address", "principal", "phone"]
    add_columns = edit_columns = show_columns
    search_columns = ["code", "name", "county", "school_type"]
    add_form_query_rel_fields = edit_form_query_rel_fields = {"county": [["level", FilterEqual, "county"]]}
    description_columns = {"schooling": _l("学制决定毕业年级：填错会导致学生提前毕业或丢失学籍，修改须确认")}
    base_order = ("code", "asc")

    def pre_update(self, item):
        """A wrong 学制 graduates students early: changing it on a school with students needs confirmation."""
        from app.rules import changed
        if changed(item, "schooling") and request.form.get("confirm_schooling") not in ("y", "1", "on"):
            has_students = db.session.execute(select(Student.id).where(Student.school_id == item.id)
                                              .limit(1)).first()
            if has_students:
                raise RuleError("该校已有学生，修改学制会影响毕业年级。请确认后再保存（勾选“确认修改学制”）。",
                                code="confirm_required")

    edit_columns = show_columns + ["confirm_schooling"]
    edit_form_extra_fields = {"confirm_schooling": BooleanField(_l("确认修改学制"), default=False)}

    def process_form(self, form, is_created):
        if hasattr(form, "confirm_schooling"):          # a confirmation, not a column
            del form.confirm_schooling


class SchoolClassView(XuejiModelView):
    datamodel = ClassInterface(SchoolClass)
    class_permission_name = "SchoolClass"
    route_base = "/schoolclass"
    method_permission_name = {**VIEW_RW, "addgrade": "write"}
    list_title = show_title = _l("班级")
    add_title, edit_title = _l("新增班级"), _l("编辑班级")
    label_columns = {**CLASS_LABELS, "seats": _l("在籍人数"), "cap": _l("班额")}
    list_columns = ["school", "stage", "cohort_year", "class_no", "name", "capacity"]
    add_columns = edit_columns = show_columns = ["school", "stage", "cohort_year", "class_no", "name",
                                                 "capacity"]
    search_columns = ["school", "stage", "cohort_year", "name"]
    base_order = ("cohort_year", "desc")
    list_template = "xueji/class_list.html"
    formatters_columns = {"capacity": lambda v: v if v not in (None, "") else "区县默认"}

    @expose("/addgrade", methods=["GET", "POST"])
    @has_access
    def addgrade(self):
        """每学年追加一年级班级: the entry grade and its classes in one step."""
        scope = current_scope()
        schools = list(db.session.scalars(apply_scope(select(School), School, scope).order_by(School.code)))
        if request.method == "POST":
            try:
                school_id = int(request.form.get("school_id") or 0)
                if school_id not in {s.id for s in schools}:
                    abort(404)
                made = class_rules.add_grade(db.session, school_id, request.form.get("stage", ""),
                                             int(request.form.get("cohort_year") or 0),
                                             int(request.form.get("classes") or 0))
                db.session.commit()
                flash(f"已新增{len(made)}个班级", "success")
                return redirect(url_for("SchoolClassView.list"))
            except (RuleError, ValueError) as exc:
                db.session.rollback()
                flash(getattr(exc, "message", "请填写正确的数字"), "danger")
        return self.render_template("xueji/add_grade.html", schools=schools,
                                    year=current_school_year(), title=_l("新增年级"))


STUDENT_LIST = ["xjh", "name", "sex_label", "birth_date", "school", "cohort_year", "school_class", "status",
                "has_problem"]


class StudentView(XuejiModelView):
    datamodel = StudentListInterface(Student, list_columns=STUDENT_LIST)
    class_permission_name = "Student"
    route_base = "/student"
    method_permission_name = {**VIEW_RW, "card": "read", "place": "write", "photo": "read", "photo_upload": "write"}
    list_title = show_title = _l("学生学籍")
    add_title, edit_title = _l("新增学生"), _l("编辑学生（关键数据须通过变更申请修改）")
    label_columns = STUDENT_LABELS
    list_columns = STUDENT_LIST
    show_fieldsets = [(title, {"fields": fields}) for title, fields in SECTIONS]
    # 学籍号 is generated by the system when the record is saved (app.students): never typed on the add form
    add_fieldsets = [(title, {"fields": [f for f in fields if f != "xjh"]}) for title, fields in SECTIONS]
    edit_fieldsets = [(title, {"fields": [f for f in fields if f not in KEY_FIELDS and f not in
                                          ("xjh", "school", "stage", "status")]}) for title, fields in SECTIONS]
    export_columns = ["xjh", "name", "sex", "birth_date", "id_number", "school.name", "stage",
                      "cohort_year", "school_class.name", "status"]
    search_columns = ["name", "xjh", "id_number", "school", "stage", "cohort_year", "school_class", "status",
                      "sex", "ethnicity", "hukou_type", "left_behind", "migrant_child", "has_problem", "entry_ym"]
    # by school, then by id (the order a school's rows were entered): for a bureau the database reads one
    # school's index range per page, where ORDER BY id alone walks the primary key through the whole province
    base_order = ("school_id", "asc")
    add_form_extra_fields = {**{f: code_field(str(STUDENT_LABELS[f]), t, f in REQUIRED_CODED)
                                for f, t in CODED.items()},
                             "id_number": identifier_form_field(
                                 str(STUDENT_LABELS["id_number"]), "id_number",
                                 _l("居民身份证为18位；保存后系统生成学籍号（G加身份证件号，无居民身份证的为J字头）"))}
    edit_form_extra_fields = add_form_extra_fields
    add_template = edit_template = "xueji/student_form.html"
    formatters_columns = {**{f: code_formatter(t) for f, t in CODED.items()},
                          **{f: yes_no for f in ("only_child", "preschool", "migrant_child", "orphan",
                                                 "martyr_child", "gov_degree", "needs_aid", "one_subsidy",
                                                 "school_bus", "has_problem")},
                          **{f: (lambda v: region_label(db.session, v)) for f in REGION_FIELDS["student"]},
                          "deleted_at": when}
    export_formatters = {"cohort_year": GRADE}            # 初三, not 2024 (app.exports)
    show_template = "xueji/student_show.html"
    search_widget = CachedSearchWidget

    def _get_search_widget(self, form=None, exclude_cols=None, widgets=None):
        """The 班级 filter is a dropdown of every class in scope: a school's few dozen, but thousands for a county
        (a query and a 300 KB <select> on every page). Bureau staff filter by school and 年级 instead; the
        filter itself still works from a link (``_flt_0_school_class=<id>``)."""
        widgets = widgets or {}
        columns = self.search_columns
        if current_scope().kind != "school":
            columns = [c for c in columns if c != "school_class"]
        widgets["search"] = self.search_widget(route_base=self.route_base, form=form, include_cols=columns,
                                               exclude_cols=exclude_cols or [], filters=self._filters)
        return widgets

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        student = self.datamodel.get(pk)
        if student is None:
            abort(404)
        widgets = self._show(pk)
        # the student's own changes: an export is logged against the export, and older rows that named a
        # student's table and an export job's id are no change of this student
        trail = db.session.scalars(select(AuditEvent).where(AuditEvent.entity == "student",
                                                            AuditEvent.entity_id == str(student.id),
                                                            AuditEvent.action != "export")
                                   .order_by(AuditEvent.id.desc()).limit(200)).all()
        requests_ = db.session.scalars(select(Request).where(Request.student_id == student.id)
                                       .order_by(Request.id.desc())).all()
        enrollments = db.session.scalars(select(Enrollment).where(Enrollment.student_id == student.id)
                                         .order_by(Enrollment.id)).all()
        problems_ = db.session.scalars(select(Problem).where(Problem.student_id == student.id)
                                       .order_by(Problem.id.desc())).all()
        return self.render_template(self.show_template, pk=pk, title=self.show_title, widgets=widgets,
                                    related_views=self._related_views, student=student, trail=trail,
                                    requests=requests_, enrollments=enrollments, problems=problems_,
                                    label=lambda t, v: label(db.session, t, v),
                                    field_name=lambda f: STUDENT_LABELS.get(f, f or ""),
                                    school_year=current_school_year(),
                                    may_photo=photos.may_set_photo(db.session, g.user, student),
                                    photo_limit=photo_limit(student))

    @expose("/card/<pk>")
    @has_access
    def card(self, pk):
        """学籍卡: a printable one-page record."""
        student = self.datamodel.get(pk)
        if student is None:
            abort(404)
        return self.render_template("xueji/student_card.html", s=student, sections=SECTIONS,
                                    labels=STUDENT_LABELS, value=lambda f: student_value(student, f),
                                    label=lambda t, v: label(db.session, t, v), yes_no=yes_no,
                                    printed_by=g.user, printed_at=when(clock.now()))

    @expose("/photo/<int:pk>", methods=["GET"])
    @has_access
    def photo(self, pk):
        """学生照片 of an in-scope student (404 otherwise, or when there is none), never from static."""
        student = self.datamodel.get(pk)
        path = photos.path_of(student) if student is not None else None
        if path is None:
            abort(404)
        resp = send_file(path, mimetype="image/jpeg", conditional=False, etag=False, max_age=0)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Cache-Control"] = "private, no-cache"
        resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return resp

    @expose("/photo/<int:pk>", methods=["POST"])
    @has_access
    def photo_upload(self, pk):
        """上传照片 from the student page (form field `photo`): app.photos.set_photo checks, crops and commits."""
        student = self.datamodel.get(pk)
        if student is None:
            abort(404)
        upload = request.files.get("photo") or request.files.get("file")
        try:
            photos.set_photo(db.session, g.user, student, upload.stream if upload else None,
                             upload.filename if upload else None)
            flash("照片已保存（已按26×32毫米比例裁剪）", "success")
        except RuleError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        return redirect(url_for("StudentView.show", pk=pk))

    @action("export_selected", _l("导出所选 (Excel)"), None, "fa-file-excel-o")
    def export_selected(self, items):
        items = items if isinstance(items, list) else [items]
        return self.send_selected(items)

    @action("place", _l("分班"), None, "fa-th")
    def place(self, items):
        items = items if isinstance(items, list) else [items]
        return redirect(url_for("PlacementView.select", ids=[i.id for i in items]))


class GuardianView(XuejiModelView):
    datamodel = WordsInterface(Guardian)
    class_permission_name = "Guardian"
    route_base = "/guardian"
    list_title = show_title = _l("家庭成员或监护人")
    add_title, edit_title = _l("新增家庭成员"), _l("编辑家庭成员")
    label_columns = {"student": _l("学生"), "seq": _l("序号"), "name": _l("姓名"), "relation": _l("关系"),
                     "relation_note": _l("关系说明"), "ethnicity": _l("民族"), "employer": _l("工作单位"),
                     "address": _l("现住址"), "hukou_place": _l("户口所在地"), "phone": _l("联系电话"),
                     "is_guardian": _l("是否监护人"), "id_type": _l("身份证件类型"), "id_number": _l("身份证件号"),
                     "position": _l("职务")}
    list_columns = ["student", "seq", "name", "relation", "phone", "is_guardian"]
    add_columns = edit_columns = show_columns = ["student", "seq", "name", "relation", "relation_note",
                                                 "ethnicity", "employer", "address", "hukou_place", "phone",
                                                 "is_guardian", "id_type", "id_number", "position"]
    search_columns = ["name", "phone"]
    add_form_extra_fields = edit_form_extra_fields = {
        "relation": code_field("关系", "GX", True), "ethnicity": code_field("民族", "MZ"),
        "id_type": code_field("身份证件类型", "SFZJLX")}
    formatters_columns = {"relation": code_formatter("GX"), "ethnicity": code_formatter("MZ"),
                          "id_type": code_formatter("SFZJLX"), "is_guardian": yes_no,
                          "hukou_place": lambda v: region_label(db.session, v)}
    base_order = ("id", "asc")


class EnrollmentView(XuejiModelView):
    datamodel = WordsInterface(Enrollment)
    class_permission_name = "Student"
    route_base = "/enrollment"
    include_route_methods = {"list", "show"}
    list_title = show_title = _l("学籍变动历史")
    label_columns = {"student": _l("学生"), "school": _l("学校"), "stage": _l("学段"), "cohort_year": _l("年级"),
                     "school_class": _l("班级"), "status": _l("学籍状态"), "started_on": _l("开始"),
                     "ended_on": _l("结束"), "reason": _l("原因")}
    list_columns = ["school", "stage", "cohort_year", "school_class", "status", "started_on", "ended_on", "reason"]
    show_columns = ["student"] + list_columns
    search_columns = ["school", "status", "started_on"]
    base_order = ("id", "asc")


class CodeView(XuejiModelView):
    """代码表 maintenance (superadmin): national defaults plus local additions; deactivate instead of delete."""
    datamodel = ScopedInterface(Code)
    class_permission_name = "Code"
    route_base = "/code"
    list_title = show_title = _l("代码表")
    add_title, edit_title = _l("新增代码"), _l("编辑代码")
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


# --- REST --------------------------------------------------------------------------------------------

class RegionApi(XuejiApi):
    resource_name = "region"
    datamodel = ScopedInterface(Region)
    class_permission_name = "Region"
    list_columns = show_columns = ["id", "code", "name", "level", "parent_code"]
    add_columns = edit_columns = ["code", "name", "level", "parent_code"]


class SchoolApi(XuejiApi):
    resource_name = "school"
    datamodel = ScopedInterface(School)
    class_permission_name = "School"
    list_columns = show_columns = ["id", "code", "name", "county_code", "city_code", "province_code",
                                   "school_type", "schooling", "address", "principal", "phone"]
    add_columns = edit_columns = ["code", "name", "county_code", "school_type", "schooling", "address",
                                  "principal", "phone"]
    search_columns = ["code", "name", "county_code", "school_type"]


class SchoolClassApi(XuejiApi):
    resource_name = "schoolclass"
    datamodel = ScopedInterface(SchoolClass)
    class_permission_name = "SchoolClass"
    list_columns = show_columns = ["id", "school_id", "stage", "cohort_year", "class_no", "name", "capacity"]
    add_columns = edit_columns = ["school_id", "stage", "cohort_year", "class_no", "name", "capacity"]
    search_columns = ["school_id", "stage", "cohort_year"]


STUDENT_API_FIELDS = ["xjh", "name", "sex", "birth_date", "birthplace", "native_place", "ethnicity", "nationality",
                      "id_type", "id_number", "gatq", "political", "health", "name_pinyin", "former_name",
                      "id_valid_until", "hukou_place", "hukou_type", "specialty", "aux_no", "seat_no", "entry_ym",
                      "entry_mode", "study_mode", "source", "current_address", "mail_address", "home_address",
                      "phone", "postcode", "email", "homepage", "only_child", "preschool", "left_behind",
                      "migrant_child", "orphan", "martyr_child", "inclusive", "disability", "gov_degree",
                      "needs_aid", "one_subsidy", "distance_km", "transport", "school_bus", "school_id", "stage",
                      "cohort_year", "class_id", "status"]


class IdentifierFkSchemaConverter(IdentifierSchemaConverter, FkSchemaConverter):
    """Plain ids, and identifiers cleaned before their Chinese length limit (views.identity)."""


class StudentApi(XuejiApi):
    resource_name = "student"
    datamodel = ScopedInterface(Student)
    model2schemaconverter = IdentifierFkSchemaConverter
    class_permission_name = "Student"
    list_columns = ["id", "xjh", "name", "sex", "birth_date", "id_number", "school_id", "stage", "cohort_year",
                    "class_id", "status", "has_problem"]
    show_columns = ["id"] + STUDENT_API_FIELDS + ["has_problem", "deleted_at", "delete_reason"]
    # 学籍号 is generated when the record is saved (G + 身份证件号, else J): it is in the answer, not the request
    add_columns = edit_columns = [f for f in STUDENT_API_FIELDS if f != "xjh"]
    search_columns = ["xjh", "name", "id_number", "school_id", "stage", "cohort_year", "class_id", "status", "sex",
                      "has_problem"]
    order_columns = ["id", "xjh", "name", "cohort_year"]
    # POST /api/v1/student/export writes the same file as the screen's 导出 Excel
    label_columns = STUDENT_LABELS
    export_columns = StudentView.export_columns
    formatters_columns = StudentView.formatters_columns
    export_formatters = StudentView.export_formatters

    method_permission_name = {**XuejiApi.method_permission_name, "photo": "write"}

    @api_expose("/<int:pk>/photo", methods=["POST"])
    @protect()
    @safe
    def photo(self, pk):
        """Upload the student's photo (multipart field `photo` or `file`, JPG or PNG): checked, cropped to
        26×32 mm (390×480 px) and kept as the page does it (app.photos.set_photo), with the same messages."""
        try:
            student = self.datamodel.get(pk)
            if student is None:
                raise RuleError("学生不存在或不在您的管辖范围内", code="not_found", status=404)
            upload = request.files.get("photo") or request.files.get("file")
            photos.set_photo(self.datamodel.session, g.user, student, upload.stream if upload else None,
                             upload.filename if upload else None)
            return self.response(200, result={"id": student.id, "photo": url_for("StudentView.photo", pk=student.id),
                                              "width": photos.SIZE[0], "height": photos.SIZE[1]})
        except RuleError as exc:
            self.datamodel.session.rollback()
            return json_error(exc.status, exc.code, exc.message)

    def _handle_filters_args(self, rison_args):
        """REST filters on 学籍号 / 身份证件号 search the cleaned value (a pasted trailing NBSP, 全角 digits)."""
        for flt in rison_args.get("filters") or []:
            if isinstance(flt, dict) and flt.get("col") in IDENTIFIER_COLUMNS and isinstance(flt.get("value"), str):
                flt["value"] = clean_text(flt["value"])
        return super()._handle_filters_args(rison_args)

    def post_headless(self):
        body = request.get_json(silent=True)
        if isinstance(body, dict) and "xjh" in body:
            return json_error(422, "xjh_generated", "学籍号由系统生成（有居民身份证的为G加身份证件号，否则为J字头），"
                                                    "新增学生时不要填写xjh")
        resp = super().post_headless()
        if resp.status_code == 201:                   # the answer shows the generated 学籍号
            data = resp.get_json()
            student = self.datamodel.session.get(Student, data.get("id"))
            if student is not None and isinstance(data.get("result"), dict):
                data["result"]["xjh"] = student.xjh
                resp.set_data(json.dumps(data, ensure_ascii=False))
        return resp


class GuardianApi(XuejiApi):
    resource_name = "guardian"
    datamodel = ScopedInterface(Guardian)
    model2schemaconverter = IdentifierFkSchemaConverter
    class_permission_name = "Guardian"
    list_columns = show_columns = ["id", "student_id", "seq", "name", "relation", "relation_note", "ethnicity",
                                   "employer", "address", "hukou_place", "phone", "is_guardian", "id_type",
                                   "id_number", "position"]
    add_columns = edit_columns = show_columns[1:]
    search_columns = ["student_id"]


class EnrollmentApi(XuejiApi):
    resource_name = "enrollment"
    datamodel = ScopedInterface(Enrollment)
    class_permission_name = "Student"
    include_route_methods = {"get", "get_list", "info"}
    list_columns = show_columns = ["id", "student_id", "school_id", "stage", "cohort_year", "class_id", "status",
                                   "started_on", "ended_on", "reason", "current"]
    search_columns = ["student_id", "school_id", "status"]
