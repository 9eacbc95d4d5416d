"""转学 (DOMAIN.md §4.2–4.3): filed by the receiving school (转入学校) with the student's 学籍号 and 姓名; the
sending school is wherever the student is enrolled. Same county: 转入校审核 → 转出校审核 → 区县教育局; other
county: 转入校 → 转入地教育局 → 转出校 → 转出地教育局. National error codes: 2001 (学籍号/姓名 do not match),
2002 (在办业务, enforced by the engine), 2003 (问题学籍). Transfers keep the grade; calendar pauses are settings.
"""
from sqlalchemy import select

from app import classes as class_rules, clock, problems, schoolyear, settings
from app.errors import RuleError
from app.identity import check_xjh, normalise
from app.statuschange import graduating, in_window
from app.students import applying_request
from app.workflow import Kind, register
from models import School, SchoolClass, Student
from models.student import Enrollment


def find_student(session, xjh: str, name: str) -> Student:
    """The student a transfer is about, wherever enrolled: both 学籍号 and 姓名 must match (2001)."""
    student = session.scalars(select(Student).where(Student.xjh == normalise(xjh),
                                                    Student.deleted_at.is_(None))).first()
    if student is None or student.name != (name or "").strip():
        check = check_xjh(xjh, generated=True)
        hint = f"（{check.message}）" if student is None and not check.valid else ""
        raise RuleError(f"2001：学籍号与姓名不匹配，请核对后重新提交{hint}", code="2001")
    return student


def _counties(session, *school_ids):
    return dict(session.execute(select(School.id, School.county_code).where(School.id.in_(school_ids))).all())


def chain_for(session, student, to_school_id) -> str:
    counties = _counties(session, student.school_id, to_school_id)
    if counties[student.school_id][:2] != counties[to_school_id][:2]:
        raise RuleError("跨省转学须通过转学数据包在两地系统间办理", code="cross_province")
    return "transfer_county" if counties[student.school_id] == counties[to_school_id] else "transfer_other_county"


def validate(session, student: Student, payload: dict) -> None:
    if student.xjh != normalise(payload.get("xjh")) or student.name != (payload.get("name") or "").strip():
        raise RuleError("2001：学籍号与姓名不匹配，请核对后重新提交", code="2001")
    problems.blocks(session, student.id)
    if student.status != "在校":
        raise RuleError(f"该生学籍状态为“{student.status}”，不能转学（休学、受处分等学生不能转学）",
                        code="wrong_status")
    to_school = int(payload.get("to_school_id") or 0)
    county = session.execute(select(School.county_code).where(School.id == to_school)).scalar()
    today = clock.today()
    home, schooling = session.execute(select(School.county_code, School.schooling)
                                      .where(School.id == student.school_id)).one()
    year = schoolyear.current(session, home)
    if in_window(settings.get(session, "calendar.transfer_pause", county), today):
        raise RuleError("7月15日至8月14日期间不受理新的转学申请", code="calendar_closed")
    if settings.get(session, "rules.no_transfer_entry_first_term", county) == "1" and \
            student.cohort_year == year and today.month in (9, 10, 11, 12, 1):
        raise RuleError("起始年级第一学期不能转学", code="calendar_closed")
    if settings.get(session, "rules.no_transfer_graduating_last_term", county) == "1" and \
            graduating(student, year, schooling) and 2 <= today.month <= 7:
        raise RuleError("毕业年级最后一学期不能转学", code="calendar_closed")
    klass = session.get(SchoolClass, int(payload.get("class_id") or 0))
    if klass is None or klass.school_id != to_school:
        raise RuleError("请选择转入学校的班级", code="class_required")
    if klass.stage != student.stage or klass.cohort_year != student.cohort_year:
        raise RuleError("转学不能变更就读年级，请选择同一年级的班级", code="grade_change")
    _within_plan(session, to_school, student)
    seated, cap = class_rules.seated_count(session, klass.id), class_rules.capacity_of(session, klass)
    if seated + 1 > cap:
        raise RuleError(f"{klass.cohort_year}级{klass.name}已有{seated}人，班额{cap}人，不能再转入", code="class_full")


def _within_plan(session, school_id: int, student: Student) -> None:
    """Transfers-in occupy places of the receiving school's plan for that cohort (SEED P13), when one is set."""
    from sqlalchemy import func
    from models import Quota
    quota = session.scalars(select(Quota).where(Quota.school_id == school_id, Quota.year == student.cohort_year,
                                                Quota.stage == student.stage)).first()
    if quota is None:
        return
    enrolled = session.execute(select(func.count()).select_from(Student).where(
        Student.school_id == school_id, Student.cohort_year == student.cohort_year, Student.stage == student.stage,
        Student.status.in_(("在校", "休学")), Student.deleted_at.is_(None))).scalar()
    if enrolled + 1 > quota.planned:
        raise RuleError(f"转入学校{student.cohort_year}级已有{enrolled}人，招生计划{quota.planned}人，已无名额",
                        code="over_quota")


def apply(session, req, payload) -> None:
    """One transaction: the old span ends as 转出, the student joins the receiving school's class."""
    student = session.get(Student, req.student_id)
    today = clock.today()
    for span in session.scalars(select(Enrollment).where(Enrollment.student_id == student.id,
                                                         Enrollment.current == 1)):
        span.status, span.ended_on, span.current = "转出", today, None
        span.reason = f"转学转出 #{req.id}"
    with applying_request(session, f"转学转入 #{req.id}"):
        student.school_id, student.class_id = req.school_id, int(payload["class_id"])
        session.flush()


def describe(session, student, payload) -> str:
    return f"转学 {student.name}（{student.xjh}）"


register(Kind(code="transfer", title="转学", chain="transfer_county", chain_for=chain_for, validate=validate,
              apply=apply, describe=describe, min_evidence=0, between_schools=True))


# --- 毕业后跨省就学 (DOMAIN §7): a school of another province admits one of our graduates -----------------------

def validate_graduate_move(session, student: Student, payload: dict, request=None) -> None:
    """学籍号 (G/J/L, 19 characters) and 姓名 must match a graduate; applications only in the windows
    8/15–12/14 and 3/1–5/31 (setting calendar.cross_province_windows); one application per school and student."""
    xjh = normalise(payload.get("xjh"))
    if student.xjh != xjh:
        check = check_xjh(xjh, generated=True)
        if not check.valid:
            raise RuleError(f"2001：{check.message}", code="2001")
    if student.xjh != xjh or student.name != (payload.get("name") or "").strip():
        raise RuleError("2001：学籍号与姓名不匹配，请核对后重新提交", code="2001")
    if student.status != "毕业":
        raise RuleError("只有已毕业的学生可以办理毕业后跨省就学", code="wrong_status")
    to_school = session.get(School, int(payload.get("to_school_id") or 0))
    home = session.get(School, student.school_id)
    if to_school is None or to_school.province_code == home.province_code:
        raise RuleError("毕业后跨省就学须由外省学校申请", code="invalid")
    windows = settings.get(session, "calendar.cross_province_windows", to_school.county_code).split(",")
    if not any(in_window(w.strip(), clock.today()) for w in windows):
        raise RuleError("毕业后跨省就学只在8月15日至12月14日、3月1日至5月31日受理", code="calendar_closed")
    from models.requests import OPEN_STATES, Request
    dup = session.execute(select(Request.id).where(Request.kind == "graduate_move", Request.student_id == student.id,
                                                   Request.school_id == to_school.id,
                                                   Request.id != getattr(request, "id", 0),
                                                   Request.state.in_(OPEN_STATES + ("已通过",)))).first()
    if dup:
        raise RuleError("本校已为该生提交过申请", code="duplicate")
    stage = payload.get("stage") or ("高中" if student.stage == "初中" else student.stage)
    if stage not in ("初中", "高中"):
        raise RuleError("入学学段不正确", code="invalid")


def apply_graduate_move(session, req, payload) -> None:
    """调档: the graduate's record moves to the receiving school as an 在校 student of the new entry grade."""
    from app import schoolyear
    student = session.get(Student, req.student_id)
    to_school = session.get(School, req.school_id)
    stage = payload.get("stage") or ("高中" if student.stage == "初中" else student.stage)
    year = schoolyear.current(session, to_school.county_code)
    for span in session.scalars(select(Enrollment).where(Enrollment.student_id == student.id,
                                                         Enrollment.current == 1)):
        span.current, span.ended_on = None, clock.today()
    with applying_request(session, f"毕业后跨省就学调档 #{req.id}"):
        student.school_id, student.stage, student.cohort_year = to_school.id, stage, year
        student.class_id, student.status, student.graduated_on, student.cert_no = None, "在校", None, None
        session.flush()


register(Kind(code="graduate_move", title="毕业后跨省就学", chain="graduate_move", validate=validate_graduate_move,
              validate_knows_request=True,
              apply=apply_graduate_move, min_evidence=0, between_schools=True, locks_student=True,
              describe=lambda s, st, p: f"毕业后跨省就学 {st.name}（{st.xjh}）"))
