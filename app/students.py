"""Rules of the student record (学生基本信息, DOMAIN.md §2): identifiers, code tables, required fields,
cross-field rules, key data, the graduate freeze and the enrollment history. All run at flush time.

On an update only the fields that change are re-validated: a 问题学籍 with a bad ID can still have its phone
number corrected while its ID goes through 变更 or 佐证.
"""
import re

from sqlalchemy import select

from app import clock, settings
from app.codes import codes
from app.codes_data import SBJD_CJLX
from app.errors import RuleError
from app.identity import check_id_number, check_xjh, j_xjh, normalise, temporary_xjh
from app.rules import changed, is_new, original, rule
from app.scoping import effective
from models import School, SchoolClass, Student
from models.student import STATUSES, Enrollment, Guardian

# field → (label, code table)
CODED = {"sex": ("性别", "XB"), "ethnicity": ("民族", "MZ"), "nationality": ("国籍/地区", "GJ"),
         "id_type": ("身份证件类型", "SFZJLX"), "gatq": ("港澳台侨外", "GATQ"), "political": ("政治面貌", "ZZMM"),
         "health": ("健康状况", "JKZK"), "hukou_type": ("户口性质", "HKXZ"), "entry_mode": ("入学方式", "RXFS"),
         "study_mode": ("就读方式", "JDFS"), "source": ("学生来源", "XSLY"), "left_behind": ("留守儿童", "LSET"),
         "inclusive": ("随班就读", "SBJD"), "disability": ("残疾类型", "CJLX"), "transport": ("交通方式", "JTFS")}
# ★ fields of the national form (besides the enrollment and those checked elsewhere)
REQUIRED = {"name": "姓名", "sex": "性别", "birth_date": "出生日期", "birthplace": "出生地", "native_place": "籍贯",
            "ethnicity": "民族", "nationality": "国籍/地区", "id_type": "身份证件类型", "gatq": "港澳台侨外",
            "health": "健康状况", "hukou_place": "户口所在地", "hukou_type": "户口性质", "entry_ym": "入学年月",
            "entry_mode": "入学方式", "study_mode": "就读方式", "current_address": "现住址",
            "mail_address": "通信地址", "home_address": "家庭地址", "phone": "联系电话", "postcode": "邮政编码",
            "only_child": "是否独生子女", "preschool": "是否受过学前教育"}
KEY_FIELDS = {"name": "姓名", "id_number": "身份证件号", "sex": "性别", "birth_date": "出生日期",
              "cohort_year": "年级", "class_id": "班级"}
ENROLLMENT_FIELDS = ("school_id", "stage", "cohort_year", "class_id", "status", "has_problem", "deleted_at",
                     "delete_reason", "seat_no")
FINISHED = ("毕业", "结业", "肄业")
MAINLAND_ID_TYPES = ("1", "2")
FOREIGN_ID_TYPES = ("6", "7", "8", "9", "A")
DIGITS12 = re.compile(r"^\d{12}$")
MOBILE = re.compile(r"^1\d{10}$")
POSTCODE = re.compile(r"^\d{6}$")
ENTRY_YM = re.compile(r"^(19|20)\d{2}(0[1-9]|1[0-2])$")
ALNUM = re.compile(r"^[0-9A-Za-z]+$")


def key_fields(session, county_code=None) -> dict[str, str]:
    """The built-in key fields plus those the superadmin marks (setting key_fields.extra)."""
    extra = [f.strip() for f in settings.get(session, "key_fields.extra", county_code).split(",") if f.strip()]
    return {**KEY_FIELDS, **{f: f for f in extra if hasattr(Student, f)}}


def applying(session) -> bool:
    """True while the workflow engine applies an approved request (the only way key data changes)."""
    return bool(session.info.get("xueji_applying"))


class applying_request:
    """`with applying_request(session, reason):` the approved effect of a request is being written (nestable)."""

    def __init__(self, session, reason=None):
        self.session, self.reason = session, reason

    def __enter__(self):
        info = self.session.info
        info["xueji_applying"] = info.get("xueji_applying", 0) + 1
        self.saved_reason = info.get("xueji_reason")
        if self.reason:
            info["xueji_reason"] = self.reason
        return self.session

    def __exit__(self, *exc):
        info = self.session.info
        info["xueji_applying"] -= 1
        info["xueji_reason"] = self.saved_reason


def read_only_reason(student: Student) -> str | None:
    """Why a record's basic information cannot be edited now (None when it can): the rule key_data_and_freeze holds
    at flush, asked here so the page shows no 编辑 button that would end in its refusal."""
    if student.deleted_at is not None:
        return "该学籍已删除，只能查看"
    if student.status in FINISHED:
        return f"{student.status}学生的基本信息只读（如需更正请由区县办理毕业生回退）"
    return None


def _fail(student, message, code="invalid"):
    who = student.name or student.xjh or "学生"
    raise RuleError(f"{who}：{message}", code=code)


class system_xjh:
    """`with system_xjh(session):` the 学籍号 of the rows written comes from a system, not a keyboard (a record
    arriving by cross-province package, demo data, generators): its format is checked and L is allowed, but it
    is not compared with the ID number (DOMAIN §1.1: after an ID-number change the two may differ)."""

    def __init__(self, session):
        self.session = session

    def __enter__(self):
        self.session.info["xueji_xjh_system"] = self.session.info.get("xueji_xjh_system", 0) + 1
        return self.session

    def __exit__(self, *exc):
        self.session.info["xueji_xjh_system"] -= 1


def _xjh_taken(session, prefix: str) -> set[str]:
    """学籍号 starting with `prefix`, in the database (one index range query) and among this flush's new rows."""
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    taken = set(session.scalars(select(Student.xjh).where(Student.xjh >= prefix, Student.xjh < upper)))
    taken.update(o.xjh for o in session.new if isinstance(o, Student) and o.xjh and o.xjh.startswith(prefix))
    return taken


def _generate_xjh(student: Student, session) -> str:
    """新建学籍: G + the resident ID number; J (school county + birth date + sequence + check char) for any
    other document; a temporary L when the ID number already has a 学籍 (the duplicate becomes a 问题学籍)."""
    if student.id_type == "1" and student.id_number:
        candidate = "G" + student.id_number
        if candidate not in _xjh_taken(session, candidate):
            return candidate
    school_id = effective(student, "school", "school_id")
    county = session.execute(select(School.county_code).where(School.id == school_id)).scalar() if school_id \
        else None
    if not county:
        _fail(student, "学校为必填项", "required")
    if student.birth_date is None:
        _fail(student, "出生日期为必填项", "required")
    if student.id_type == "1":
        return temporary_xjh(county, student.birth_date, lambda prefix: _xjh_taken(session, prefix))
    return j_xjh(county, student.birth_date, lambda prefix: _xjh_taken(session, prefix))


@rule(Student)
def identifiers(student: Student, session) -> None:
    if changed(student, "id_type", "id_number", "sex", "birth_date"):
        number = normalise(student.id_number) or None
        student.id_number = number
        if student.id_type == "Z":
            pass                                 # 其他: the number may be blank (就读证明 on file)
        elif not number:
            _fail(student, "除身份证件类型为“其他”外，身份证件号不能为空", "id_required")
        elif student.id_type == "1":
            check = check_id_number(number)
            if not check.valid:
                _fail(student, f"{check.message}（{number}）", "invalid_id")
            if student.sex and check.sex != student.sex:
                _fail(student, "性别与身份证件号不符（第17位奇数为男、偶数为女）", "id_mismatch")
            if student.birth_date and check.birth_date != student.birth_date:
                _fail(student, f"出生日期与身份证件号不符（证件号为{check.birth_date:%Y-%m-%d}）", "id_mismatch")
        elif not ALNUM.match(number):
            _fail(student, "非居民身份证的证件号只能由字母和数字组成", "invalid_id")
    if is_new(student) and not student.xjh:
        student.xjh = _generate_xjh(student, session)
    elif changed(student, "xjh"):
        system = bool(session.info.get("xueji_xjh_system"))
        check = check_xjh(student.xjh, student.id_type, None if system else student.id_number, generated=system)
        if not check.valid:
            _fail(student, f"{check.message}（{normalise(student.xjh)}）", "invalid_xjh")
        student.xjh = check.normalized


@rule(Student)
def coded_fields(student: Student, session) -> None:
    for field, (label, table) in CODED.items():
        value = getattr(student, field)
        if value not in (None, "") and changed(student, field) and str(value) not in codes(session, table):
            _fail(student, f"{label}代码“{value}”不在代码表中", "invalid_code")


# national-form defaults a new record takes when the field is left out (the column defaults apply only at
# INSERT, after the rules have run)
DEFAULTS = {"nationality": "CHN", "gatq": "00", "health": "10", "political": "13", "left_behind": "0",
            "inclusive": "00", "disability": "0", "status": "在校"}


@rule(Student)
def required_fields(student: Student, session) -> None:
    if is_new(student):
        for field, value in DEFAULTS.items():
            if getattr(student, field) in (None, ""):
                setattr(student, field, value)
    for field, label in REQUIRED.items():
        if changed(student, field) and getattr(student, field) in (None, ""):
            _fail(student, f"{label}为必填项", "required")


@rule(Student)
def cross_field_rules(student: Student, session) -> None:
    if changed(student, "inclusive", "disability"):
        allowed = SBJD_CJLX.get(student.inclusive or "00", ())
        if (student.disability or "0") not in allowed:
            _fail(student, "随班就读与残疾类型不一致（非随班就读须为无残疾，随班就读须填写对应的残疾类型）")
    if changed(student, "id_type", "gatq"):
        if student.id_type in FOREIGN_ID_TYPES and (student.gatq or "00") == "00":
            _fail(student, "港澳台及境外证件须选择相应的港澳台侨外身份（不能为“否”）")
    for field, label in (("birthplace", "出生地"), ("hukou_place", "户口所在地")):
        value = getattr(student, field)
        if value and changed(student, field) and not DIGITS12.match(value):
            _fail(student, f"{label}应为12位行政区划代码")
    if student.phone and changed(student, "phone") and not MOBILE.match(student.phone):
        _fail(student, "联系电话应为11位手机号码")
    if student.postcode and changed(student, "postcode") and not POSTCODE.match(student.postcode):
        _fail(student, "邮政编码应为6位数字")
    if student.entry_ym and changed(student, "entry_ym") and not ENTRY_YM.match(student.entry_ym):
        _fail(student, "入学年月应为YYYYMM格式，如202609")
    if student.distance_km is not None and changed(student, "distance_km") and student.distance_km < 0:
        _fail(student, "上下学距离不能为负数")


@rule(Student)
def status_and_placement(student: Student, session) -> None:
    if student.status not in STATUSES:
        _fail(student, f"学籍状态“{student.status}”无效")
    class_id = effective(student, "school_class", "class_id")
    if class_id is not None and changed(student, "class_id", "school_class", "school_id", "school"):
        klass = session.get(SchoolClass, class_id)
        if klass is None or klass.school_id != effective(student, "school", "school_id"):
            _fail(student, "班级不属于该生所在学校", "invalid_class")
        student.stage, student.cohort_year = klass.stage, klass.cohort_year


@rule(Student)
def key_data_and_freeze(student: Student, session) -> None:
    """关键数据 never changes in place; a finished student's basic information is read-only."""
    if is_new(student) or applying(session):
        return
    county = session.execute(select(School.county_code).where(School.id == student.school_id)).scalar()
    if changed(student, "status") and original(student, "status") != student.status:
        raise RuleError("学籍状态只能通过学籍异动、毕业等业务办理，不能直接修改", code="status_locked")
    for field, label in key_fields(session, county).items():
        if field == "class_id" and original(student, "class_id") is None:
            continue                              # 分班: a first class is placement, not a change
        if changed(student, field) and original(student, field) != getattr(student, field):
            raise RuleError(f"{label}是关键数据，不能直接修改，请提交关键数据变更申请", code="key_data")
    if original(student, "status") in FINISHED:
        from sqlalchemy import inspect
        state = inspect(student)
        for attr in state.mapper.column_attrs:
            if attr.key not in ENROLLMENT_FIELDS and state.attrs[attr.key].history.has_changes():
                raise RuleError("已毕业（结业、肄业）学生的基本信息只读", code="read_only")


@rule(Student)
def enrollment_history(student: Student, session) -> None:
    """Open a span on entry; close it and open another when the school, stage, cohort or status changes."""
    today = clock.today()
    if is_new(student):
        student.enrollments.append(Enrollment(
            school_id=effective(student, "school", "school_id"), stage=student.stage,
            cohort_year=student.cohort_year, class_id=effective(student, "school_class", "class_id"),
            status=student.status or "在校", started_on=today, current=1, reason="建立学籍"))
        return
    if not changed(student, "school_id", "school", "stage", "cohort_year", "status", "class_id", "school_class"):
        return
    current = next((e for e in student.enrollments if e.current == 1), None)
    reason = session.info.get("xueji_reason")
    if current is not None and not changed(student, "school_id", "school", "stage", "cohort_year", "status"):
        current.class_id = effective(student, "school_class", "class_id")     # 分班/调班 within the span
        return
    if current is not None:
        current.current, current.ended_on = None, today
        current.reason = current.reason if not reason else f"{current.reason}；{reason}"
    student.enrollments.append(Enrollment(
        school_id=effective(student, "school", "school_id"), stage=student.stage,
        cohort_year=student.cohort_year, class_id=effective(student, "school_class", "class_id"),
        status=student.status, started_on=today, current=1, reason=reason or "学籍信息变更"))


@rule(Guardian)
def guardian_fields(guardian: Guardian, session) -> None:
    who = f"家庭成员{guardian.seq or ''}"
    if guardian.seq not in (1, 2):
        raise RuleError(f"{who}：最多填写两位家庭成员或监护人（序号1或2）", code="invalid")
    for field, label in (("name", "姓名"), ("relation", "关系")):
        if not getattr(guardian, field):
            raise RuleError(f"{who}：{label}为必填项", code="required")
    if guardian.relation not in codes(session, "GX"):
        raise RuleError(f"{who}：关系代码“{guardian.relation}”不在代码表中", code="invalid_code")
    if guardian.id_number is not None:
        guardian.id_number = normalise(guardian.id_number) or None
    if guardian.id_type == "1" and guardian.id_number:
        check = check_id_number(guardian.id_number)
        if not check.valid:
            raise RuleError(f"{who}：{check.message}（{guardian.id_number}）", code="invalid_id")
    foreign = guardian.id_type in FOREIGN_ID_TYPES
    if not foreign and not guardian.hukou_place:
        raise RuleError(f"{who}：户口所在地为必填项（境外人员除外）", code="required")
    if guardian.hukou_place and not DIGITS12.match(guardian.hukou_place):
        raise RuleError(f"{who}：户口所在地应为12位行政区划代码", code="invalid")
    if guardian.phone and not MOBILE.match(guardian.phone) and not re.match(r"^[\d\-+ ]{7,20}$", guardian.phone):
        raise RuleError(f"{who}：联系电话格式不正确", code="invalid")
