"""提交申请: the one service every face files a request through — the web forms (关键数据变更, 学籍异动, 问题学籍佐证,
转学, 招生计划数变更), POST /api/v1/request/file and the tests' scripts — for every kind a user files.

`file_request(session, actor, kind, values, uploads)` finds the student or school the request is about *within the
actor's scope* (404 otherwise), checks that this actor may file this kind for it (the same check that shows the
filing buttons), builds the kind's payload from the submitted values, files it through the workflow engine
(which validates, takes the 在办业务 lock and only then stores the uploaded evidence), marks a 问题学籍 it handles
as 处理中 — all in one transaction, committed once. Each face passes what it received: a dict of values, the ids of
evidence uploaded beforehand (REST) and/or the files that came with the form (web)."""
from dataclasses import dataclass

from sqlalchemy import select

from app import keydata, problems, statuschange, transfers, workflow
from app.errors import OutOfScope, RuleError
from app.scoping import apply_scope, scope_of
from app.service import service
from models import Quota, Student
from models.requests import Problem, Request


@dataclass
class Filing:
    """What a kind's builder makes of the submitted values."""
    student: Student | None
    payload: dict
    school_id: int | None = None          # the filing school, for kinds not filed by the student's own school
    comment: str | None = None


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _student(session, actor, values) -> Student:
    student = session.scalars(apply_scope(select(Student).where(Student.id == _int(values.get("student_id"))),
                                          Student, scope_of(actor))).first()
    if student is None:
        raise OutOfScope("学生不存在或不在您的管辖范围内")
    return student


def _own_school(actor, what: str) -> int:
    scope = scope_of(actor)
    if scope.kind != "school":
        raise RuleError(f"{what}由学校提交", code="forbidden", status=403)
    return scope.school_id


def _refuse_unless(allowed: bool) -> None:
    if not allowed:
        raise RuleError("没有权限提交此申请", code="forbidden", status=403)


def _key_change(session, actor, values) -> Filing:
    student = _student(session, actor, values)
    _refuse_unless(keydata.may_file(session, actor, student))
    reason = values.get("reason")
    payload = keydata.key_change_payload(session, student, values.get("changes") or {}, reason,
                                         values.get("problem_id"))
    return Filing(student, payload, comment=reason)


def _problem_proof(session, actor, values) -> Filing:
    problem = session.scalars(apply_scope(select(Problem).where(Problem.id == _int(values.get("problem_id"))),
                                          Problem, scope_of(actor))).first()
    if problem is None:
        raise OutOfScope("问题学籍不存在或不在您的管辖范围内")
    _refuse_unless(problems.may_handle(session, actor, problem))
    reason = values.get("reason") or ""
    return Filing(session.get(Student, problem.student_id), {"problem_id": problem.id, "reason": reason},
                  comment=reason)


def _status_change(session, actor, values) -> Filing:
    student = _student(session, actor, values)
    _refuse_unless(statuschange.may_file(session, actor, student))
    payload = {"type": values.get("type"), "date": values.get("date"), "reason": values.get("reason") or "",
               "class_id": values.get("class_id") or None}
    return Filing(student, payload, comment=payload["reason"])


def _transfer(kind):
    def build(session, actor, values) -> Filing:
        """转学 / 毕业后跨省就学: filed by the receiving school about another school's student, by 学籍号 and 姓名."""
        school_id = _own_school(actor, "转学申请由转入（接收）学校")
        student = transfers.find_student(session, values.get("xjh") or "", values.get("name") or "")
        payload = {"xjh": values.get("xjh") or "", "name": values.get("name") or "",
                   "class_id": values.get("class_id"), "to_school_id": school_id,
                   "reason": values.get("reason") or "", "date": values.get("date"), "stage": values.get("stage")}
        return Filing(student, payload, school_id=school_id, comment=values.get("reason"))
    return build


def _transfer_in(session, actor, values) -> Filing:
    """跨省转入: the student is in the other province's system."""
    school_id = _own_school(actor, "跨省转入")
    payload = {k: values.get(k) for k in ("xjh", "name", "class_id", "from_province", "reason")}
    payload["to_school_id"] = school_id
    return Filing(None, payload, school_id=school_id, comment=values.get("reason"))


def _new_record(session, actor, values) -> Filing:
    """新建学籍（移民）: the record itself is the request."""
    school_id = _own_school(actor, "新建学籍")
    payload = {"record": values.get("record") or {}, "school_id": school_id, "reason": values.get("reason") or ""}
    return Filing(None, payload, school_id=school_id, comment=values.get("reason"))


def _quota_change(session, actor, values) -> Filing:
    """招生计划数变更: about a school's plan, not a student."""
    quota = session.scalars(apply_scope(select(Quota).where(Quota.id == _int(values.get("quota_id"))), Quota,
                                        scope_of(actor))).first()
    if quota is None:
        raise OutOfScope("招生计划不存在或不在您的管辖范围内")
    payload = {"quota_id": quota.id, "current": quota.planned, "requested": values.get("requested"),
               "reason": values.get("reason") or ""}
    return Filing(None, payload, school_id=quota.school_id, comment=values.get("reason"))


BUILDERS = {"key_change": _key_change, "problem_proof": _problem_proof, "status_change": _status_change,
            "transfer": _transfer("transfer"), "graduate_move": _transfer("graduate_move"),
            "transfer_in": _transfer_in, "new_record": _new_record, "quota_change": _quota_change}


@service
def file_request(session, actor, kind: str, values: dict, evidence_ids=(), uploads=()) -> Request:
    """File a request of `kind` from the submitted `values` (see the module docstring); `uploads` are
    (stream, filename) pairs stored only once the request has passed validation."""
    build = BUILDERS.get(kind)
    if build is None:
        raise RuleError("不支持的申请类型", code="invalid")
    filing = build(session, actor, values)
    req = workflow.file(session, actor, kind, filing.student, filing.payload, evidence_ids or (), filing.comment,
                        school_id=filing.school_id, uploads=uploads)
    if filing.payload.get("problem_id"):
        problems.resolve_in_progress(session, int(filing.payload["problem_id"]), req.id)
    return req



@service
def upload_evidence(session, actor, stream, filename, student_id=None):
    """证明材料 uploaded ahead of filing (REST: POST /api/v1/evidence/ → its id, then `evidence_ids` when filing):
    for a student in scope, or for the actor's own school. Checked and kept like the files that come with a form."""
    from app import evidence
    from models import School
    student, school_id = None, scope_of(actor).school_id
    if student_id not in (None, ""):
        student = _student(session, actor, {"student_id": student_id})
        school_id = student.school_id
    if school_id is None:
        raise RuleError("请指定学生", code="invalid")
    if stream is None:
        raise RuleError("请选择文件", code="file_required")
    county = session.execute(select(School.county_code).where(School.id == school_id)).scalar()
    return evidence.store(session, stream, filename, school_id, actor, getattr(student, "id", None), county)
