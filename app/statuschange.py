"""学籍异动: 休学, 复学, 退学, 开除, 失踪, 其他离校, 恢复入学资格, 出国, 回国复学, 死亡, 留级, 跳级.

One request kind ("status_change") driven by the type table below (SEED.md [P18] pairing is the contract;
DOMAIN.md §4.3 national rules are settings with the national default). Checked at filing and again at the final
approval (the engine runs `validate` both times); applied in the final approval's transaction.
"""
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from app import clock, problems, schoolyear, settings
from app.errors import RuleError
from app.students import applying_request
from app.workflow import Kind, register
from models import School, SchoolClass, Student
from models.student import Enrollment

LIVE = ("在校", "休学", "出国", "失踪", "其他离校")


@dataclass(frozen=True)
class ChangeType:
    name: str
    from_status: tuple          # statuses the student must be in
    to_status: str
    evidence: str               # what the evidence file must show (shown to the user)
    needs_class: bool = False   # entry types place the student into a class of the chosen grade
    grade_step: int = 0         # 留级 +1 cohort year (a grade lower), 跳级 -1 (a grade higher)
    leaving: bool = False


TYPES = {t.name: t for t in (
    ChangeType("休学", ("在校",), "休学", "医院证明等休学证明（电子照片）", leaving=True),
    ChangeType("复学", ("休学",), "在校", "身体康复证明、复学申请表", needs_class=True),
    ChangeType("退学", ("在校", "休学"), "退学", "本人签字的退学申请表", leaving=True),
    ChangeType("开除", ("在校", "休学"), "开除", "学校处分决定", leaving=True),
    ChangeType("失踪", ("在校", "休学"), "失踪", "学校与公安等部门出具的情况说明", leaving=True),
    ChangeType("其他离校", ("在校", "休学"), "其他离校", "离校情况说明", leaving=True),
    ChangeType("恢复入学资格", ("开除", "退学", "失踪", "其他离校"), "在校", "恢复入学资格的证明材料",
               needs_class=True),
    ChangeType("出国", ("在校", "休学"), "出国", "出国（境）证明材料", leaving=True),
    ChangeType("回国复学", ("出国",), "在校", "回国证明、复学申请表", needs_class=True),
    ChangeType("死亡", LIVE, "死亡", "死亡证明", leaving=True),
    ChangeType("留级", ("在校",), "在校", "留级申请表（校长签字）", needs_class=True, grade_step=1),
    ChangeType("跳级", ("在校",), "在校", "跳级申请表及考核材料", needs_class=True, grade_step=-1),
)}
COMPULSORY = ("初中",)               # 义务教育 stages handled here (小学 is out of scope)


def graduating(student: Student, year: int, schooling: str | None) -> bool:
    """In the stage's last grade (初三 / 高三; 初四 under 五四制) in school year `year`."""
    return schoolyear.is_graduating(student.stage, student.cohort_year, year, schooling)


def _setting(session, key, county):
    return settings.get(session, key, county)


def in_window(window: str, today: date) -> bool:
    """'07-01..08-14' (month-day, inclusive) contains today."""
    start, end = window.split("..")
    md = today.strftime("%m-%d")
    return start <= md <= end if start <= end else (md >= start or md <= end)


class _Now:
    """What the rules need to know about a student today, looked up once (the county, today, the school year,
    the settings, the 问题学籍 check) whether one type is checked (`validate`) or all of them (`available_types`)."""

    def __init__(self, session, student: Student):
        self.session, self.student = session, student
        self.county, schooling = session.execute(select(School.county_code, School.schooling)
                                                 .where(School.id == student.school_id)).one()
        self.today, self.year = clock.today(), schoolyear.current(session, self.county)
        self.graduating = graduating(student, self.year, schooling)
        self._settings, self._problem = {}, False

    def setting(self, key: str) -> str:
        if key not in self._settings:
            self._settings[key] = _setting(self.session, key, self.county)
        return self._settings[key]

    def problem(self) -> None:
        """problems.blocks, asked once: raises its RuleError (2003) again on every later call."""
        if self._problem is False:
            try:
                problems.blocks(self.session, self.student.id)
                self._problem = None
            except RuleError as exc:
                self._problem = exc
        if self._problem is not None:
            raise self._problem


def _check(kind: ChangeType, now: _Now) -> None:
    """Every rule that decides whether this student may have `kind` now, before any form value is looked at.
    Raises the first RuleError that applies. `validate` (filing, final approval) and `available_types` (the
    学籍异动 start page) both run exactly this, so a type is offered only when filing it could pass."""
    student = now.student
    if student.deleted_at is not None:
        raise RuleError("该学籍已删除", code="deleted")
    if student.status not in kind.from_status:
        need = "、".join(kind.from_status)
        raise RuleError(f"该生学籍状态为“{student.status}”，不能办理{kind.name}（须为{need}）", code="wrong_status")
    now.problem()
    if now.graduating and in_window(now.setting("calendar.graduating_freeze"), now.today):
        raise RuleError("毕业年级学生在7月1日至8月14日期间不能办理新的业务", code="calendar_closed")
    if kind.name in ("退学", "开除") and student.stage in COMPULSORY and \
            now.setting("rules.compulsory_no_withdrawal") == "1":
        raise RuleError(f"义务教育阶段学生不能办理{kind.name}", code="compulsory")
    if kind.name == "留级":
        if student.stage in COMPULSORY and now.setting("rules.no_repeat_compulsory") == "1":
            raise RuleError("义务教育阶段原则上不办理留级", code="no_repeat")
        if now.graduating and now.setting("rules.no_repeat_graduating") == "1":
            raise RuleError("毕业年级不办理留级", code="no_repeat")
    if kind.name == "跳级":
        if now.setting("rules.skip_once_per_stage") == "1" and _skipped_before(now.session, student):
            raise RuleError("同一学段只能跳级一次", code="skip_once")
        if now.graduating:
            raise RuleError("毕业年级不能跳级", code="invalid")


def validate(session, student: Student, payload: dict) -> None:
    kind = TYPES.get(payload.get("type"))
    if kind is None:
        raise RuleError("请选择学籍异动类型", code="invalid")
    _check(kind, _Now(session, student))
    if not payload.get("date"):
        raise RuleError("请填写异动日期", code="required")
    if kind.needs_class:
        _target_class(session, student, kind, payload)


def available_types(session, student: Student) -> list[tuple[ChangeType, str | None]]:
    """Every 异动 type with None when this student may have it now, else the reason it is not offered: the
    在办业务 lock (2002, as `workflow.file` refuses it), then the same `_check` that `validate` runs."""
    from app.workflow import open_request
    busy = open_request(session, student.id)
    now = _Now(session, student)
    out = []
    for kind in TYPES.values():
        if busy is not None:
            out.append((kind, f"2002：该生有在办业务（#{busy.id} {busy.summary}，{busy.state}），"
                              "办结或撤销后才能提交新的申请"))
            continue
        try:
            _check(kind, now)
            out.append((kind, None))
        except RuleError as exc:
            out.append((kind, exc.message))
    return out


def _skipped_before(session, student) -> bool:
    return session.execute(select(Enrollment.id).where(
        Enrollment.student_id == student.id, Enrollment.stage == student.stage,
        Enrollment.reason.like("%（跳级）%")).limit(1)).first() is not None


def _target_class(session, student, kind: ChangeType, payload) -> SchoolClass:
    class_id = payload.get("class_id")
    if not class_id:
        raise RuleError(f"{kind.name}须选择安排的班级", code="class_required")
    klass = session.get(SchoolClass, int(class_id))
    if klass is None or klass.school_id != student.school_id or klass.stage != student.stage:
        raise RuleError("所选班级不属于本校本学段", code="invalid_class")
    if kind.grade_step and klass.cohort_year != student.cohort_year + kind.grade_step:
        want = f"{student.cohort_year + kind.grade_step}级"
        raise RuleError(f"{kind.name}须安排到{want}的班级", code="invalid_class")
    if kind.name in ("复学", "回国复学", "恢复入学资格") and klass.cohort_year < student.cohort_year:
        raise RuleError("复学不能安排到比原年级更高的年级", code="invalid_class")
    return klass


def apply(session, req, payload) -> None:
    kind = TYPES[payload["type"]]
    student = session.get(Student, req.student_id)
    with applying_request(session, f"学籍异动（{kind.name}）#{req.id}"):     # the enrollment span's reason
        if kind.needs_class:
            klass = _target_class(session, student, kind, payload)
            student.cohort_year, student.class_id = klass.cohort_year, klass.id
        elif kind.leaving:
            student.class_id = None                 # the seat is freed while the student is away
        student.status = kind.to_status
        session.flush()


def describe(session, student, payload) -> str:
    return f"学籍异动 {payload.get('type', '')} {student.name}（{student.xjh}）"


register(Kind(code="status_change", title="学籍异动", chain="status_change", validate=validate, apply=apply,
              describe=describe))


def may_file(session, actor, student: Student | None = None) -> bool:
    """Whether `actor` may file 学籍异动 at all (no student) or for this student (app.workflow.may_file)."""
    from app.workflow import may_file as may_file_kind
    return may_file_kind(session, actor, "status_change", student)


def allowed_types(session, student: Student) -> list[ChangeType]:
    """The types offered now (see `available_types`)."""
    return [t for t, reason in available_types(session, student) if reason is None]


# --- 新建学籍（移民）: an entry type with no leaving type (SEED [P18]) -------------------------------------------

def _new_student(session, payload) -> Student:
    from sqlalchemy import inspect as sa_inspect
    fields = {c.key for c in sa_inspect(Student).column_attrs} - {"id", "has_problem", "deleted_at", "delete_reason",
                                                                   "graduated_on", "cert_no"}
    record = {k: v for k, v in (payload.get("record") or {}).items() if k in fields}
    if record.get("birth_date") and isinstance(record["birth_date"], str):
        record["birth_date"] = date.fromisoformat(record["birth_date"])
    record.update(school_id=payload["school_id"], status="在校")
    return Student(**record)


def validate_new_record(session, student, payload) -> None:
    """The full record must pass every record rule: tried in a savepoint and undone."""
    if not payload.get("record", {}).get("class_id"):
        raise RuleError("新建学籍须选择安排的班级", code="class_required")
    nested = session.begin_nested()
    try:
        with applying_request(session):
            session.add(_new_student(session, payload))
            session.flush()
    finally:
        nested.rollback()
        session.info.pop("xueji_detect", None)


def apply_new_record(session, req, payload) -> None:
    with applying_request(session, f"新建学籍（移民）#{req.id}"):
        student = _new_student(session, payload)
        session.add(student)
        session.flush()
        req.student_id = student.id


register(Kind(code="new_record", title="新建学籍（移民）", chain="status_change", validate=validate_new_record,
              apply=apply_new_record, locks_student=False,
              describe=lambda s, st, p: f"新建学籍（移民）{(p.get('record') or {}).get('name', '')}"))
