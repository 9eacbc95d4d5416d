"""招生入学: quotas (招生计划数) and their change requests, admission by template (自主招生) or by county list
(统一招生), 重复招生 arbitration and 调档.

The batch path: upload → `check_admissions` (set-wise: one query per key column, never per row) → preview with
per-cell issues and an annotated workbook → `commit_batch` (all valid rows, or none unless all are valid) →
a county review request → on approval, 调档 moves every admitted record with set-based UPDATEs.
"""
import hashlib
import os
import uuid
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy import func, insert, select, update

from app import clock, spreadsheets, workflow
from app.errors import RuleError
from app.scoping import system_write
from app.spreadsheets import Column, Issue, Row
from app.workflow import Kind, register
from models import AuditEvent, Enrollment, School, Student
from models.admissions import (CANCELLED, CONFLICT, TO_CONFIRM, TO_REVIEW, TRANSFERRED, Admission,
                               ImportBatch, Quota)

COLUMNS = [Column("姓名"), Column("学籍号", kind="id", width=24),
           Column("中学阶段", required=False, kind="choice", choices=("初中", "高中"), width=12)]
INSTRUCTIONS = ["本模板用于学校自主招生录取名单导入，字段和列的顺序不能修改。",
                "学籍号填写毕业生的全国学籍号（G/J/L开头19位），没有学籍号的可填写18位身份证件号。",
                "学籍号、身份证件号列已设为文本格式，请不要改为数字格式，否则会丢失位数。",
                "中学阶段可不填，不填时为本校招生学段。",
                "上传后系统先校验，确认无误后再提交，提交后由区县教育局审核并调档。"]
PREVIOUS_STAGE = {"高中": "初中"}          # 高一 admits 初中 graduates; 初一 admits 小学 graduates (not held here)
STAGES_OF = {"初中": ("初中",), "高中": ("高中",), "完全中学": ("初中", "高中"), "九年一贯制": ("初中",)}


# --- quotas -------------------------------------------------------------------------------------------------

def used(session, school_id: int, year: int, stage: str) -> int:
    return session.execute(select(func.count()).select_from(Admission).where(
        Admission.school_id == school_id, Admission.year == year, Admission.stage == stage,
        Admission.current == 1)).scalar() or 0


def quota_row(session, school_id, year, stage, lock=False) -> Quota | None:
    q = select(Quota.id).where(Quota.school_id == school_id, Quota.year == year, Quota.stage == stage)
    if lock:
        q = q.with_for_update()                  # serialises admissions into one school's plan
    qid = session.execute(q).scalar()
    return session.get(Quota, qid) if qid else None


def check_room(session, school_id, year, stage, incoming: int) -> None:
    """Inside the writing transaction, with the quota row locked: used + incoming must fit the plan."""
    quota = quota_row(session, school_id, year, stage, lock=True)
    if quota is None:
        raise RuleError(f"{year}年{stage}招生计划数尚未由区县教育局设置，不能录取", code="no_quota")
    taken = used(session, school_id, year, stage)
    if taken + incoming > quota.planned:
        raise RuleError(f"超出招生计划：计划{quota.planned}人，已录取{taken}人，本次{incoming}人，"
                        f"剩余{max(quota.planned - taken, 0)}人", code="over_quota")


# --- checking a batch ---------------------------------------------------------------------------------------

@dataclass
class Checked:
    rows: list[Row]
    issues: list[Issue]
    matches: dict[int, int] = field(default_factory=dict)      # row number → student id (valid rows only)
    conflicts: dict[int, int] = field(default_factory=dict)    # row number → the other school's admission id
    stage: str = ""

    @property
    def bad_rows(self) -> set[int]:
        return {i.row for i in self.issues if i.code != "conflict"}

    @property
    def valid(self) -> list[int]:
        return [r.number for r in self.rows if r.number not in self.bad_rows and r.number in self.matches]


def _issue(row, column, code, message) -> Issue:
    return Issue(row, column, code, f"第{row}行“{column}”：{message}" if column else f"第{row}行：{message}")


def check_admissions(session, school: School, year: int, rows: list[Row], issues: list[Issue]) -> Checked:
    """Validate every row against the database set-wise: two key lookups, one admissions lookup, one quota."""
    stage = next((s for s in STAGES_OF.get(school.school_type, ()) if s == "高中"), None) or "初中"
    result = Checked(rows, list(issues), stage=stage)
    keys = {r.number: (r.values.get("学籍号") or "") for r in rows}
    wanted = (Student.id, Student.xjh, Student.id_number, Student.name, Student.stage, Student.status)
    live = Student.deleted_at.is_(None)
    by_xjh, by_id = {}, {}
    xjhs = sorted({k for k in keys.values() if len(k) == 19})
    numbers = sorted({k for k in keys.values() if len(k) == 18})
    for chunk in range(0, max(len(xjhs), len(numbers)), 5000):     # bounded IN lists, a few queries per file
        for s in session.execute(select(*wanted).where(Student.xjh.in_(xjhs[chunk:chunk + 5000]), live)):
            by_xjh[s.xjh] = s
        for s in session.execute(select(*wanted).where(Student.id_number.in_(numbers[chunk:chunk + 5000]), live)):
            by_id[s.id_number] = s
    seen: dict[int, int] = {}
    flagged = {i.row for i in issues}
    for row in rows:
        if row.number in flagged:
            continue
        key = keys[row.number]
        row_stage = row.values.get("中学阶段") or stage
        if row_stage not in STAGES_OF.get(school.school_type, ()):
            result.issues.append(_issue(row.number, "中学阶段", "bad_stage", f"本校不招收{row_stage}学生"))
            continue
        student = by_xjh.get(key) if len(key) == 19 else by_id.get(key)
        if student is None:
            result.issues.append(_issue(row.number, "学籍号", "unknown_xjh", f"{key} 在学籍库中不存在"))
            continue
        if student.name != (row.values.get("姓名") or ""):
            result.issues.append(_issue(row.number, "姓名", "name_mismatch",
                                        f"“{row.values.get('姓名')}”与学籍号{student.xjh}的姓名不符"))
            continue
        previous = PREVIOUS_STAGE.get(row_stage)
        if previous is None or student.stage != previous or student.status != "毕业":
            result.issues.append(_issue(row.number, "学籍号", "not_graduate",
                                        f"{student.name}不是{previous or '上一学段'}毕业生，不能录取为{row_stage}新生"))
            continue
        if student.id in seen:
            result.issues.append(_issue(row.number, "学籍号", "duplicate_row",
                                        f"与第{seen[student.id]}行重复"))
            continue
        seen[student.id] = row.number
        result.matches[row.number] = student.id
    _against_admissions(session, school, year, result)
    _against_quota(session, school, year, result)
    return result


def _against_admissions(session, school, year, result: Checked) -> None:
    ids = set(result.matches.values())
    if not ids:
        return
    rows_of = {sid: n for n, sid in result.matches.items()}
    found = []
    ids = sorted(ids)
    for chunk in range(0, len(ids), 5000):
        found.extend(session.scalars(select(Admission).where(Admission.student_id.in_(ids[chunk:chunk + 5000]),
                                                             Admission.year == year, Admission.current == 1)))
    for adm in found:
        n = rows_of[adm.student_id]
        if adm.school_id == school.id:
            result.issues.append(_issue(n, "学籍号", "already_admitted", "本校已录取该生"))
        else:
            result.conflicts[n] = adm.id
            result.issues.append(_issue(n, "学籍号", "conflict",
                                        f"该生已被{adm.school.name}录取，提交后将交区县教育局仲裁（重复招生）"))


def _against_quota(session, school, year, result: Checked) -> None:
    valid = result.valid
    quota = quota_row(session, school.id, year, result.stage)
    if quota is None:
        for n in valid:
            result.issues.append(_issue(n, None, "no_quota", f"{year}年{result.stage}招生计划数尚未设置"))
        return
    room = quota.planned - used(session, school.id, year, result.stage)
    for n in valid[max(room, 0):]:
        result.issues.append(_issue(n, None, "over_quota",
                                    f"超出招生计划（计划{quota.planned}人，剩余{max(room, 0)}人）"))


# --- upload, commit ---------------------------------------------------------------------------------------

def _folder() -> str:
    path = os.path.join(current_app.config["UPLOAD_FOLDER"], "imports")
    os.makedirs(path, exist_ok=True)
    return path


def receive(session, data: bytes, filename: str, school: School, year: int, actor, kind="admission",
            method="自主招生") -> ImportBatch:
    """Keep the uploaded file once: the same file for the same school and kind is the same batch."""
    digest = hashlib.sha256(data).hexdigest()
    batch = session.scalars(select(ImportBatch).where(ImportBatch.school_id == school.id,
                                                      ImportBatch.kind == kind, ImportBatch.sha256 == digest)).first()
    if batch is not None:
        return batch
    stored = f"{uuid.uuid4().hex}{os.path.splitext(filename)[1][:6]}"
    with open(os.path.join(_folder(), stored), "wb") as f:
        f.write(data)
    batch = ImportBatch(school_id=school.id, kind=kind, method=method, year=year, stage="", filename=filename[:200],
                        stored_name=stored, sha256=digest, uploaded_by_id=getattr(actor, "id", None),
                        uploaded_at=clock.now())
    session.add(batch)
    session.flush()
    return batch


def load(batch: ImportBatch) -> bytes:
    with open(os.path.join(_folder(), batch.stored_name), "rb") as f:
        return f.read()


def check_batch(session, batch: ImportBatch) -> Checked:
    rows, issues = spreadsheets.read_table(load(batch), batch.filename, COLUMNS)
    checked = check_admissions(session, batch.school, batch.year, rows, issues)
    batch.stage = checked.stage
    batch.rows, batch.valid_rows = len(rows), len(checked.valid)
    batch.error_count = len(checked.bad_rows)
    return checked


def committed_rows(session, batch: ImportBatch) -> list:
    """A committed batch's outcome, row by row (source row, 姓名, 学籍号, admission state): what the batch page shows
    once the file is in, instead of checking it again (every row would then read as already admitted)."""
    return session.execute(
        select(Admission.source_row, Student.name, Student.xjh, Admission.state)
        .join(Student, Student.id == Admission.student_id)
        .where(Admission.batch_id == batch.id).order_by(Admission.source_row)).all()


def commit_batch(session, batch: ImportBatch, actor, all_or_nothing: bool = False) -> tuple[int, int]:
    """Admit the valid rows (re-checked now, inside the transaction, with the quota row locked). Idempotent: a
    batch is committed once. Returns (admitted, conflicts) and files the county review request."""
    if batch.state != "已校验":
        return 0, 0
    checked = check_batch(session, batch)
    if all_or_nothing and checked.bad_rows:
        raise RuleError(f"名单有{len(checked.bad_rows)}行未通过校验，按“全部正确才提交”未提交任何记录",
                        code="has_errors")
    valid = checked.valid
    if not valid:
        raise RuleError("没有可以提交的有效行", code="nothing_valid")
    check_room(session, batch.school_id, batch.year, checked.stage, len(valid))
    now = clock.now()
    state = TO_CONFIRM if batch.method == "统一招生" else TO_REVIEW
    rows = [dict(student_id=checked.matches[n], school_id=batch.school_id, year=batch.year, stage=checked.stage,
                 method=batch.method, state=CONFLICT if n in checked.conflicts else state, batch_id=batch.id,
                 source_row=n, created_at=now, current=1) for n in valid]
    session.execute(insert(Admission), rows)
    if checked.conflicts:                         # the other school's admission goes to arbitration too
        session.execute(update(Admission).where(Admission.id.in_(list(checked.conflicts.values())))
                        .values(state=CONFLICT).execution_options(synchronize_session=False))
    batch.state, batch.committed_at = "已提交", now
    session.flush()
    if batch.method == "自主招生":
        req = workflow.file(session, actor, "admission_batch", None,
                            {"batch_id": batch.id, "rows": len(valid)}, (), None, school_id=batch.school_id)
        batch.request_id = req.id
    session.commit()
    return len(valid), len(checked.conflicts)


# --- 统一招生: the county's list, confirmed by the school -------------------------------------------------------

def confirm(session, actor, school_id: int, admission_ids) -> int:
    """The school confirms the students the county assigned it; then the county reviews as for 自主招生."""
    ids = [int(i) for i in admission_ids]
    rows = list(session.scalars(select(Admission).where(Admission.id.in_(ids), Admission.school_id == school_id,
                                                        Admission.state == TO_CONFIRM)))
    if len(rows) != len(set(ids)):
        raise RuleError("部分录取记录不存在、不属于本校或已确认", code="not_found", status=404)
    for adm in rows:
        adm.state = TO_REVIEW
    session.flush()
    workflow.file(session, actor, "admission_batch", None, {"admission_ids": ids, "rows": len(ids)}, (), None,
                  school_id=school_id)
    return len(rows)


# --- 重复招生 arbitration --------------------------------------------------------------------------------------

def arbitrate(session, actor, keep_id: int, reason: str) -> None:
    """The bureau keeps one admission of a double-admitted student; the others are cancelled (places freed)."""
    from app.roles import ROLE_BUREAU_REVIEWER
    from app.scoping import school_in_scope, scope_of
    if ROLE_BUREAU_REVIEWER not in {r.name for r in actor.roles}:
        raise RuleError("重复招生由区县教育局审核人员仲裁", code="forbidden", status=403)
    keep = session.get(Admission, keep_id)
    if keep is None or keep.state != CONFLICT:
        raise RuleError("该录取记录不在重复招生仲裁中", code="not_found", status=404)
    others = list(session.scalars(select(Admission).where(Admission.student_id == keep.student_id,
                                                          Admission.year == keep.year, Admission.current == 1,
                                                          Admission.id != keep.id)))
    scope = scope_of(actor)
    if not any(school_in_scope(a.school_id, scope, session) for a in [keep] + others):
        raise RuleError("该重复招生不涉及您管辖的学校", code="not_found", status=404)
    now = clock.now()
    with system_write(session):
        keep.state, keep.decided_at, keep.note = TO_REVIEW, now, f"仲裁保留：{reason}"[:200]
        for other in others:
            other.state, other.current, other.decided_at = CANCELLED, None, now
            other.note = f"仲裁取消（保留{keep.school.name}）：{reason}"[:200]
        session.commit()


# --- 调档 ---------------------------------------------------------------------------------------------------

def transfer_records(session, admission_ids: list[int], reason: str) -> int:
    """调档: each admitted graduate's record moves to the receiving school as an 在校 student of the new entry
    grade without a class. Set-based: one UPDATE for students, one for old spans, one INSERT of new spans."""
    adms = session.execute(select(Admission.id, Admission.student_id, Admission.school_id, Admission.year,
                                  Admission.stage).where(Admission.id.in_(admission_ids),
                                                         Admission.state == TO_REVIEW)).all()
    if not adms:
        return 0
    today, now = clock.today(), clock.now()
    student_ids = [a.student_id for a in adms]
    session.execute(update(Enrollment).where(Enrollment.student_id.in_(student_ids), Enrollment.current == 1)
                    .values(current=None, ended_on=today).execution_options(synchronize_session=False))
    groups: dict[tuple, list[int]] = {}
    for a in adms:
        groups.setdefault((a.school_id, a.year, a.stage), []).append(a.student_id)
    for (school_id, year, stage), ids in groups.items():
        session.execute(update(Student).where(Student.id.in_(ids)).values(
            school_id=school_id, stage=stage, cohort_year=year, class_id=None, status="在校",
            entry_ym=f"{year}09").execution_options(synchronize_session=False))
    session.execute(insert(Enrollment), [dict(student_id=a.student_id, school_id=a.school_id, stage=a.stage,
                                              cohort_year=a.year, class_id=None, status="在校", started_on=today,
                                              current=1, reason=reason) for a in adms])
    session.execute(insert(AuditEvent), [dict(at=now, action="update", entity="student", entity_id=str(a.student_id),
                                              field="school_id", new_value=str(a.school_id), school_id=a.school_id,
                                              username="调档") for a in adms])
    session.execute(update(Admission).where(Admission.id.in_([a.id for a in adms]))
                    .values(state=TRANSFERRED, decided_at=now).execution_options(synchronize_session=False))
    return len(adms)


# --- request kinds -----------------------------------------------------------------------------------------------

def _batch_admissions(session, payload) -> list[int]:
    if payload.get("batch_id"):
        return list(session.scalars(select(Admission.id).where(Admission.batch_id == payload["batch_id"])))
    return [int(i) for i in payload.get("admission_ids") or ()]


def _validate_batch(session, student, payload) -> None:
    if not _batch_admissions(session, payload):
        raise RuleError("录取名单为空", code="invalid")


def _apply_batch(session, req, payload) -> None:
    n = transfer_records(session, _batch_admissions(session, payload), f"录取调档 #{req.id}")
    if payload.get("batch_id"):
        session.execute(update(ImportBatch).where(ImportBatch.id == payload["batch_id"]).values(state="已通过")
                        .execution_options(synchronize_session=False))
    req.summary = (req.summary + f"（已调档{n}人）")[:300]


register(Kind(code="admission_batch", title="录取名单审核", chain="admission_batch", validate=_validate_batch,
              apply=_apply_batch, describe=lambda s, st, p: f"录取名单审核（{p.get('rows', 0)}人）",
              min_evidence=0, locks_student=False))


def _validate_quota_change(session, student, payload) -> None:
    quota = session.get(Quota, int(payload.get("quota_id") or 0))
    if quota is None:
        raise RuleError("招生计划不存在", code="not_found", status=404)
    if quota.year != admission_year():
        raise RuleError(f"只能申请变更本年度（{admission_year()}年）的招生计划数", code="not_current_year")
    requested = int(payload.get("requested") or 0)
    if requested <= 0 or requested == quota.planned:
        raise RuleError("请填写与现计划不同的申请计划数", code="invalid")
    if requested < used(session, quota.school_id, quota.year, quota.stage):
        raise RuleError("申请计划数不能少于已录取人数", code="invalid")
    if not (payload.get("reason") or "").strip():
        raise RuleError("请说明变更理由（复学、转入等占用计划的情况须说明）", code="reason_required")


def _apply_quota_change(session, req, payload) -> None:
    quota = session.get(Quota, int(payload["quota_id"]))
    quota.planned = int(payload["requested"])


register(Kind(code="quota_change", title="招生计划数变更申请", chain="quota_change", validate=_validate_quota_change,
              apply=_apply_quota_change, min_evidence=0, locks_student=False,
              describe=lambda s, st, p: f"招生计划数变更：{p.get('current')}→{p.get('requested')}人"))


def admission_year() -> int:
    """The calendar year's admission (招生 happens in summer; the plan is the current year's)."""
    return clock.today().year
