"""学生学籍: the student list, page, 学籍卡, photo and edit form; family members and enrollment history; and
their REST resources. Key data never changes here (app.students; 关键数据变更 goes through app.filing)."""
import json

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder.actions import action
from flask_appbuilder.api import expose as api_expose, protect
from flask_appbuilder.security.decorators import has_access
from flask_appbuilder.views import expose
from sqlalchemy import select

from app import students as student_rules
from app.codes import FIELD_TABLES, REGION_FIELDS, field_label, label, region_label, when
from app import clock, photos
from app.errors import RuleError, json_error
from app.exports import GRADE
from app.extensions import db
from app.i18n import _l
from app.roles import VIEW_RW
from app.scoping import ScopedInterface, current_scope
from models import AuditEvent, Enrollment, Guardian, School, Student
from models.requests import Problem, Request
from views.base import FkSchemaConverter, XuejiApi, XuejiModelView, refused, rest_safe
from views.fields import code_field, code_formatter, yes_no
from views.identity import IdentifierSchemaConverter, clean_text, identifier_form_field
from views.student_list import (IDENTIFIER_COLUMNS, CachedSearchWidget, StudentListInterface, 
                                 WordsInterface, grade_of)


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
REQUIRED_CODED = set(CODED) & set(student_rules.REQUIRED)      # app.students: the ★ fields


def _form_field(column: str) -> str:
    """A student column as the form names it (the class is the `school_class` relationship)."""
    return "school_class" if column == "class_id" else column


KEY_FIELDS = {_form_field(f) for f in student_rules.KEY_FIELDS}   # the built-in ones; key_fields.extra per county


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

    def _extra_key_fields(self) -> set[str]:
        """Fields the county marks as key data too (setting key_fields.extra, app.students.key_fields): shown
        read-only on the edit form and never written by it, like the built-in ones the form leaves out."""
        student = db.session.get(Student, (request.view_args or {}).get("pk") or 0)
        county = db.session.execute(select(School.county_code).where(School.id == student.school_id)).scalar() \
            if student is not None else None
        return {_form_field(f) for f in student_rules.key_fields(db.session, county)} - KEY_FIELDS

    def prefill_form(self, form, pk):
        for field in self._extra_key_fields():
            if hasattr(form, field):
                getattr(form, field).render_kw = {"readonly": True, "disabled": True,
                                                  "title": "关键数据：须提交关键数据变更申请"}

    def process_form(self, form, is_created):
        if not is_created:
            for field in self._extra_key_fields():
                if hasattr(form, field):
                    delattr(form, field)

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
        read_only = student_rules.read_only_reason(student)
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
                                    may_photo=photos.may_set_photo(db.session, g.user, student),
                                    photo_limit=photo_limit(student), read_only=read_only)

    @expose("/edit/<pk>", methods=["GET", "POST"])
    @has_access
    def edit(self, pk):
        """A record that is read-only now (deleted, graduated) has no edit form: its page says why."""
        student = self.datamodel.get(pk)
        if student is None:
            abort(404)
        reason = student_rules.read_only_reason(student)
        if reason:
            flash(reason, "warning")
            return redirect(url_for("StudentView.show", pk=pk))
        return super().edit(pk)

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
        resp = photos.send(student) if student is not None else None
        if resp is None:
            abort(404)
        return resp

    @expose("/photo/<int:pk>", methods=["POST"])
    @has_access
    def photo_upload(self, pk):
        """上传照片 from the student page (form field `photo`): app.photos.set_photo checks, crops and commits."""
        student = self.datamodel.get(pk)
        if student is None:
            abort(404)
        upload = request.files.get("photo") or request.files.get("file")
        with refused():
            photos.set_photo(db.session, g.user, student, upload.stream if upload else None,
                             upload.filename if upload else None)
            flash("照片已保存（已按26×32毫米比例裁剪）", "success")
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
    @rest_safe
    def photo(self, pk):
        """Upload the student's photo (multipart field `photo` or `file`, JPG or PNG): checked, cropped to
        26×32 mm (390×480 px) and kept as the page does it (app.photos.set_photo), with the same messages."""
        student = self.datamodel.get(pk)
        if student is None:
            raise RuleError("学生不存在或不在您的管辖范围内", code="not_found", status=404)
        upload = request.files.get("photo") or request.files.get("file")
        photos.set_photo(self.datamodel.session, g.user, student, upload.stream if upload else None,
                         upload.filename if upload else None)
        return self.response(200, result={"id": student.id, "photo": url_for("StudentView.photo", pk=student.id),
                                          "width": photos.SIZE[0], "height": photos.SIZE[1]})

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
