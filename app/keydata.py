"""关键数据变更 and 问题学籍佐证: the first two request kinds of the workflow engine.

关键数据变更: 姓名, 身份证件号, 性别, 出生日期, 年级, 班级 (and fields the superadmin marks) never change in
place; the registrar files old and new values with evidence; 学校学籍主管领导 then 区县教育局 approve; only the
final approval writes the record (history kept forever in the request and the audit log).
"""
from datetime import date

from sqlalchemy import select

from app import problems
from app.errors import RuleError
from app.students import FINISHED, applying_request, key_fields
from app.workflow import Kind, register
from models import School, SchoolClass, Student
from models.requests import Problem


def _convert(field: str, value):
    if value in (None, ""):
        return None
    if field == "birth_date":
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    if field in ("cohort_year", "class_id"):
        return int(value)
    return str(value).strip()


def _display(session, field, value):
    if field == "class_id" and value is not None:
        klass = session.get(SchoolClass, int(value))
        return f"{klass.cohort_year}级{klass.name}" if klass else str(value)
    if field == "sex":
        return {"1": "男", "2": "女"}.get(str(value), value)
    return "" if value is None else str(value)


def validate_key_change(session, student: Student, payload: dict) -> None:
    changes = payload.get("changes") or {}
    if not changes:
        raise RuleError("请至少填写一项要变更的关键数据", code="no_change")
    if student.status in FINISHED:
        raise RuleError("已毕业（结业、肄业）学生的基本信息只读", code="read_only")
    county = session.execute(select(School.county_code).where(School.id == student.school_id)).scalar()
    allowed = key_fields(session, county)
    for field, change in changes.items():
        if field not in allowed:
            raise RuleError(f"“{field}”不是关键数据项", code="invalid")
        new = _convert(field, change.get("new"))
        if new == getattr(student, field):
            raise RuleError(f"{allowed[field]}的新值与原值相同", code="no_change")
    if payload.get("problem_id"):
        _own_problem(session, student, payload["problem_id"])
    _dry_run(session, student, changes)


def _dry_run(session, student: Student, changes: dict) -> None:
    """Run every record rule on the new values inside a savepoint, then undo: a request that could never be
    applied is refused at filing, with the same message the final approval would give."""
    nested = session.begin_nested()
    try:
        with applying_request(session):
            for field, change in changes.items():
                setattr(student, field, _convert(field, change.get("new")))
            session.flush()
    finally:
        nested.rollback()
        session.info.pop("xueji_detect", None)


def apply_key_change(session, req, payload: dict) -> None:
    student = session.get(Student, req.student_id)
    for field, change in payload["changes"].items():
        setattr(student, field, _convert(field, change.get("new")))
    session.flush()
    problems.detect(session, student_ids={student.id})
    if payload.get("problem_id"):
        problem = session.get(Problem, payload["problem_id"])
        if problem is not None and problem.current == 1:
            raise RuleError("变更后复核仍不通过：" + problem.detail, code="still_problem")
        if problem is not None:
            problem.resolution, problem.request_id = "变更", req.id


def describe_key_change(session, student, payload):
    labels = key_fields(session)
    parts = [f"{labels.get(f, f)}：{_display(session, f, c.get('old'))}→{_display(session, f, c.get('new'))}"
             for f, c in (payload.get("changes") or {}).items()]
    return f"关键数据变更 {student.name}（{student.xjh}）" + "；".join(parts)


register(Kind(code="key_change", title="关键数据变更", chain="key_change", validate=validate_key_change,
              apply=apply_key_change, describe=describe_key_change))


def key_change_payload(session, student: Student, new_values: dict, reason: str, problem_id=None) -> dict:
    """Build the payload (old and new values) from the fields the user filled in."""
    changes = {}
    for field, value in new_values.items():
        if value in (None, ""):
            continue
        changes[field] = {"old": getattr(student, field), "new": value}
    payload = {"changes": changes, "reason": (reason or "").strip()}
    if problem_id:
        payload["problem_id"] = int(problem_id)
    return payload


# --- 佐证: evidence that the data is right --------------------------------------------------------------

def _own_problem(session, student, problem_id) -> Problem:
    problem = session.get(Problem, int(problem_id))
    if problem is None or problem.student_id != student.id:
        raise RuleError("问题学籍记录不存在", code="not_found", status=404)
    if problem.current != 1:
        raise RuleError("该问题学籍已处理", code="not_open", status=409)
    return problem


def validate_proof(session, student, payload) -> None:
    problem = _own_problem(session, student, payload.get("problem_id") or 0)
    if problem.kind == "invalid_id":
        from app import settings
        if settings.get(session, "problems.proof_allows_invalid_id") != "1":
            raise RuleError("身份证件号错误只能变更或删除，不能佐证", code="invalid")
    if not (payload.get("reason") or "").strip():
        raise RuleError("请填写佐证说明", code="reason_required")


def final_check_proof(session, req, payload) -> None:
    """For a duplicated ID number only one record may be approved (name/sex/birth duplicates: several may)."""
    problem = session.get(Problem, payload["problem_id"])
    if problem.kind != "dup_id":
        return
    student = session.get(Student, req.student_id)
    other = session.execute(
        select(Student.xjh).join(Problem, Problem.student_id == Student.id)
        .where(Problem.kind == "dup_id", Problem.resolution == "佐证", Student.id != student.id,
               Student.id_number == student.id_number, Student.deleted_at.is_(None))).scalar()
    if other:
        raise RuleError(f"身份证件号{student.id_number}已有一条学籍（{other}）通过佐证，其余学籍只能变更或删除",
                        code="dup_id_proven")


def apply_proof(session, req, payload) -> None:
    problems.resolve(session, payload["problem_id"], "佐证", req.id)
    session.flush()
    problems.detect(session, student_ids={req.student_id})


def describe_proof(session, student, payload):
    problem = session.get(Problem, int(payload.get("problem_id") or 0))
    what = problems.KINDS.get(problem.kind, "") if problem else ""
    return f"问题学籍佐证 {student.name}（{student.xjh}）{what}"


register(Kind(code="problem_proof", title="问题学籍佐证", chain="problem_proof", validate=validate_proof,
              apply=apply_proof, describe=describe_proof, final_check=final_check_proof))


# --- who may file: the route's own check, asked by the pages before they show a button -----------------------

def may_file(session, actor, student: Student | None = None, kind_code: str = "key_change") -> bool:
    """Whether `actor` may file 关键数据变更 (or 问题学籍佐证) for this student now (app.workflow.may_file)."""
    from app.workflow import may_file as may_file_kind
    return may_file_kind(session, actor, kind_code, student)
