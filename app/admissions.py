"""招生入学: quotas (招生计划数) and their change requests, admission by template (自主招生) or by county list
(统一招生), 重复招生 arbitration and 调档.

The batch path: upload → `check_admissions` (set-wise: one query per key column, never per row) → preview with
per-cell issues and an annotated workbook → `commit_batch` (all valid rows, or none unless all are valid) →
a county review request → on approval, 调档 moves every admitted record with set-based UPDATEs.
"""
import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from app import clock, identity, rosters, spreadsheets, tasks, uploads, workflow
from app.audit import event_row
from app.errors import RuleError, with_retry
from app.scoping import system_write
from app.service import service
from app.spreadsheets import Column, Issue, Row
from app.workflow import Kind, register
from models import AuditEvent, Enrollment, School, Student
from models.admissions import (CANCELLED, CONFLICT, TO_CONFIRM, TO_REVIEW, TRANSFERRED, Admission,
                               ImportBatch, Quota)

COLUMNS = [Column("姓名", kind="name"), Column("学籍号", kind="id", width=24),
           Column("中学阶段", required=False, kind="choice", choices=("初中", "高中"), width=12)]
INSTRUCTIONS = ["本模板用于学校自主招生录取名单导入，字段和列的顺序不能修改。",
                "学籍号填写毕业生的全国学籍号（G、J或L开头，共19位）；不能填写身份证件号"
                "（有居民身份证的学生，学籍号为G加18位身份证件号）。",
                "学籍号列已设为文本格式，请不要改为数字格式，否则会丢失位数。",
                "姓名与学籍库中的姓名一致：汉字（少数民族姓名可用间隔号“·”）或外文字母，不能有数字和符号。",
                "所有单元格请直接填写内容，不要使用公式（公式单元格会被拒绝）。",
                "中学阶段可不填，不填时为本校招生学段。",
                "上传后系统先校验（全角字符、首尾空格等会自动转换并提示），确认无误后再提交，提交后由区县教育局审核并调档。"]
PREVIOUS_STAGE = {"高中": "初中", "初中": "小学"}   # 高一 admits 初中 graduates; 初一 the county rosters' 小学 graduates
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
    """The verdict on one file. `issues` holds every error of every row (a row reports all its problems, each on
    its column) plus the 重复招生 warnings (code "conflict": the row is still admitted), sorted by row and column;
    `notices` the cells accepted after normalising (level "notice"). `bad_rows` and `valid` are computed once
    by `settle()`, never per lookup, so everything is linear in rows + issues."""
    rows: list[Row]
    issues: list[Issue]
    matches: dict[int, int] = field(default_factory=dict)      # row number → student id (valid rows only)
    conflicts: dict[int, int] = field(default_factory=dict)    # row number → the other school's admission id
    stage: str = ""
    bad_rows: set[int] = field(default_factory=set)            # rows with at least one error
    valid: list[int] = field(default_factory=list)             # rows to admit, in file order
    notices: list[Issue] = field(default_factory=list)
    checked_at: str | None = None                               # when the check ran (ISO), for the preview

    def settle(self, sort: bool = True) -> "Checked":
        if sort:
            order = {c.name: i for i, c in enumerate(COLUMNS)}
            last = len(order)
            self.issues.sort(key=lambda i: (i.row, order.get(i.column, last)))
        self.bad_rows = {i.row for i in self.issues if i.code != "conflict"}
        self.valid = [r.number for r in self.rows if r.number in self.matches and r.number not in self.bad_rows]
        self.notices = [n for r in self.rows for n in r.notices]
        return self

    def by_row(self) -> dict[int, list[Issue]]:
        """Errors, warnings and notices of each row (one pass)."""
        out: dict[int, list[Issue]] = {}
        for issue in self.issues:
            out.setdefault(issue.row, []).append(issue)
        for notice in self.notices:
            out.setdefault(notice.row, []).append(notice)
        return out

    def to_json(self) -> dict:
        issue = lambda i: [i.row, i.column, i.code, i.message, i.level]  # noqa: E731
        return {"stage": self.stage, "checked_at": self.checked_at,
                "rows": [[r.number, r.values, [issue(n) for n in r.notices]] for r in self.rows],
                "issues": [issue(i) for i in self.issues],
                "matches": list(self.matches.items()), "conflicts": list(self.conflicts.items())}

    @classmethod
    def from_json(cls, data: dict) -> "Checked":
        rows = [Row(n, values, [Issue(*i) for i in notices]) for n, values, notices in data["rows"]]
        checked = cls(rows, [Issue(*i) for i in data["issues"]], dict(map(tuple, data["matches"])),
                      dict(map(tuple, data["conflicts"])), data["stage"], checked_at=data.get("checked_at"))
        return checked.settle()


def _issue(row, column, code, message) -> Issue:
    return Issue(row, column, code, f"第{row}行“{column}”：{message}" if column else f"第{row}行：{message}")


def check_admissions(session, school: School, year: int, rows: list[Row], issues: list[Issue]) -> Checked:
    """Validate every row, reporting every problem of a row: 学籍号 syntax (check character, date, prefix, a bare
    ID number) before any lookup, 中学阶段, duplicates (after normalisation), then set-wise against the database
    (one query per 5,000 学籍号, one admissions lookup, one quota). A cell the reader already refused (formula,
    ID turned into a number, empty, bad name) is not checked again."""
    stage = next((s for s in STAGES_OF.get(school.school_type, ()) if s == "高中"), None) or "初中"
    offered = STAGES_OF.get(school.school_type, ())
    result = Checked(rows, list(issues), stage=stage, checked_at=clock.now().isoformat(timespec="seconds"))
    refused = {(i.row, i.column) for i in issues}
    today = clock.today()
    keys: dict[int, str] = {}                       # row → its well-formed 学籍号 (first occurrence only)
    first: dict[str, int] = {}
    stage_ok: dict[int, str] = {}                   # row → its 中学阶段 when the school admits it
    for row in rows:
        n = row.number
        value = row.values.get("学籍号")
        if value and (n, "学籍号") not in refused:
            check = identity.check_xjh(value, today=today, generated=True)   # L: assigned earlier by the system
            if not check.valid:
                code = "id_number_as_xjh" if check.code == "not_xjh" else f"xjh_{check.code}"
                result.issues.append(_issue(n, "学籍号", code, f"{value}：{check.message}"))
            elif check.normalized in first:
                result.issues.append(_issue(n, "学籍号", "duplicate_row",
                                            f"与第{first[check.normalized]}行重复（{check.normalized}）"))
            else:
                first[check.normalized] = n
                keys[n] = check.normalized
        if (n, "中学阶段") not in refused:
            row_stage = row.values.get("中学阶段") or stage
            if row_stage in offered:
                stage_ok[n] = row_stage
            else:
                result.issues.append(_issue(n, "中学阶段", "bad_stage", f"本校不招收{row_stage}学生"))
    wanted = (Student.id, Student.xjh, Student.name, Student.stage, Student.status)
    found = {}
    wanted_keys = sorted(set(keys.values()))
    for chunk in range(0, len(wanted_keys), 5000):     # bounded IN lists, a few queries per file
        for s in session.execute(select(*wanted).where(Student.xjh.in_(wanted_keys[chunk:chunk + 5000]),
                                                       Student.deleted_at.is_(None))):
            found[s.xjh] = s
    for row in rows:
        n = row.number
        key = keys.get(n)
        if key is None:
            continue
        student = found.get(key)
        if student is None:
            result.issues.append(_issue(n, "学籍号", "unknown_xjh", f"{key} 在学籍库中不存在"))
            continue
        name = row.values.get("姓名")
        named = (n, "姓名") in refused or student.name == name
        if not named:
            result.issues.append(_issue(n, "姓名", "name_mismatch", f"“{name}”与学籍号{student.xjh}的姓名不符"))
        row_stage = stage_ok.get(n)
        if row_stage is not None:
            previous = PREVIOUS_STAGE.get(row_stage)
            if previous is None or student.stage != previous or student.status != "毕业":
                who = student.name if named and (n, "姓名") not in refused else "该生"
                result.issues.append(_issue(n, "学籍号", "not_graduate",
                                            f"{who}不是{previous or '上一学段'}毕业生，不能录取为{row_stage}新生"))
                continue
        if named and (n, "姓名") not in refused:
            result.matches[n] = student.id
    result.settle(sort=False)
    _against_admissions(session, school, year, result)
    result.settle(sort=False)
    _against_quota(session, school, year, result)
    result.settle()
    kept = set(result.valid)
    result.matches = {n: sid for n, sid in result.matches.items() if n in kept}
    result.conflicts = {n: aid for n, aid in result.conflicts.items() if n in kept}
    return result


def _against_admissions(session, school, year, result: Checked) -> None:
    """Students this school or another already admitted this year (matched rows only)."""
    rows_of = {sid: n for n, sid in result.matches.items()}
    if not rows_of:
        return
    ids = sorted(rows_of)
    found = []
    for chunk in range(0, len(ids), 5000):
        found.extend(session.execute(
            select(Admission.id, Admission.student_id, Admission.school_id, School.name)
            .join(School, School.id == Admission.school_id)
            .where(Admission.student_id.in_(ids[chunk:chunk + 5000]), Admission.year == year,
                   Admission.current == 1)).all())
    for adm in found:
        n = rows_of[adm.student_id]
        if adm.school_id == school.id:
            result.issues.append(_issue(n, "学籍号", "already_admitted", "本校已录取该生"))
        else:
            result.conflicts[n] = adm.id
            result.issues.append(_issue(n, "学籍号", "conflict",
                                        f"该生已被{adm.name}录取，提交后将交区县教育局仲裁（重复招生）"))


def _against_quota(session, school, year, result: Checked) -> None:
    valid = result.valid
    if not valid:
        return
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

def receive(session, data: bytes, filename: str, school: School, year: int, actor, kind="admission",
            method="自主招生") -> ImportBatch:
    """Keep the uploaded file once: the same file for the same school and kind is the same batch."""
    digest = hashlib.sha256(data).hexdigest()
    batch = session.scalars(select(ImportBatch).where(ImportBatch.school_id == school.id,
                                                      ImportBatch.kind == kind, ImportBatch.sha256 == digest)).first()
    if batch is not None:
        return batch
    stored = uploads.keep(session, data, filename)
    batch = ImportBatch(school_id=school.id, kind=kind, method=method, year=year, stage="", filename=filename[:200],
                        stored_name=stored, sha256=digest, uploaded_by_id=getattr(actor, "id", None),
                        uploaded_at=clock.now())
    session.add(batch)
    session.flush()
    return batch


@service
def upload(session, actor, school: School, data: bytes, filename: str) -> tuple[ImportBatch, "Checked | None"]:
    """招生录取 by template, step 1: the file is read by its content (a file that cannot be read is refused before
    anything is kept), kept once, and checked; the batch's counts are stored. A bureau uploads 统一招生 lists, a
    school its 自主招生 list. A file of more rows than XUEJI_BACKGROUND_ROWS is checked by a background task
    instead (app.tasks; the checked result is then None and the batch page shows the check's progress)."""
    from app.scoping import scope_of
    authorize(session, actor, school.id)
    method = "统一招生" if scope_of(actor).kind == "region" else "自主招生"
    table = spreadsheets.read_table(data, filename, COLUMNS)
    batch = receive(session, data, filename, school, admission_year(session, school.county_code), actor,
                    method=method)
    if batch.state == "已校验" and tasks.background(len(table[0])):
        batch.rows = len(table[0])
        tasks.start(session, actor, "admission_check", batch.id, total=batch.rows)
        return batch, None
    return batch, check_batch(session, batch, table)


@service
def recheck(session, batch: ImportBatch, actor=None, record=None) -> "Checked":
    """Check a batch's kept file again (the preview's 重新校验): the batch's counts follow. ``record(session,
    checked)`` runs inside this transaction (a background task records its outcome with the work)."""
    authorize(session, actor, batch.school_id)
    checked = check_batch(session, batch)
    if record is not None:
        record(session, checked)
    return checked


@service
def recheck_or_queue(session, actor, batch: ImportBatch) -> "Checked | tasks.BackgroundTask":
    """重新校验 as the page asks it: a list of more rows than XUEJI_BACKGROUND_ROWS gets a background task (the one
    already running, if any), a smaller one is checked now."""
    authorize(session, actor, batch.school_id)
    if tasks.background(batch.rows):
        return tasks.start(session, actor, "admission_check", batch.id, total=batch.rows)
    return recheck(session, batch, actor)


def authorize(session, actor, school_id: int) -> None:
    """Who may upload, check and commit a school's admission list: an active account holding 招生录取导入 with the
    school in its scope. Asked by every entry point, so a background task asks again when it runs (the account
    may have been disabled, or moved, since the click). No actor: the CLI, a system job."""
    from app.errors import OutOfScope
    from app.scoping import school_in_scope, scope_of
    if actor is None:
        return
    if not tasks.may(actor, "can_import", "Admission"):
        raise RuleError("您的账号已停用或不再有导入录取名单的权限，未处理该名单", code="forbidden", status=403)
    if not school_in_scope(school_id, scope_of(actor), session):
        raise OutOfScope("该名单的学校不在您的管辖范围内，未处理该名单")


def load(batch: ImportBatch) -> bytes:
    return uploads.read(batch.stored_name)


def check_batch(session, batch: ImportBatch, table=None) -> Checked:
    """Read (unless `table`, the (rows, issues) of read_table, is given) and check the batch's file; updates the
    batch's counts."""
    rows, issues = table if table is not None else spreadsheets.read_table(load(batch), batch.filename, COLUMNS)
    checked = check_admissions(session, batch.school, batch.year, rows, issues)
    batch.stage = checked.stage
    batch.rows, batch.valid_rows = len(rows), len(checked.valid)
    batch.error_count = len(checked.bad_rows)
    return checked


def _check_path(batch: ImportBatch) -> str:
    """The saved check's name in the file store's "imports" area, beside the batch's file."""
    return f"{batch.stored_name}.check.json"


def save_check(batch: ImportBatch, checked: Checked) -> None:
    """Keep a check's result next to the file: the preview pages and the annotated workbook read it instead of
    checking the file again on every request (committing always checks again, inside its transaction). Written
    on the batch's session: in the caller's transaction inside a service, else in a transaction of its own."""
    from sqlalchemy.orm import object_session
    from app.extensions import db
    from app.service import in_service
    session = object_session(batch) or db.session
    data = json.dumps(checked.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if in_service(session):      # the caller's transaction: its failure is the caller's
        _store_check(session, _check_path(batch), data)
        return
    try:
        _store_check(session, _check_path(batch), data)
    except IntegrityError:       # a cache: another request saved the same check meanwhile, and that one is kept
        pass


@service
def _store_check(session, name: str, data: bytes) -> None:
    from app import filestore
    filestore.put(session, "imports", name, data)


def saved_check(batch: ImportBatch) -> Checked | None:
    from app import filestore
    try:
        return Checked.from_json(json.loads(filestore.get("imports", _check_path(batch))))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def committed_rows(session, batch: ImportBatch) -> list:
    """A committed batch's outcome, row by row (source row, 姓名, 学籍号, admission state): what the batch page shows
    once the file is in, instead of checking it again (every row would then read as already admitted)."""
    return session.execute(
        select(Admission.source_row, Student.name, Student.xjh, Admission.state)
        .join(Student, Student.id == Admission.student_id)
        .where(Admission.batch_id == batch.id).order_by(Admission.source_row)).all()


def commit_batch(session, batch: ImportBatch, actor, all_or_nothing: bool = False,
                 record=None) -> tuple[int, int]:
    """Admit the valid rows (re-checked now, inside the transaction, with the quota row locked). Idempotent: a
    batch is committed once. Returns (admitted, conflicts) and files the county review request. Schools committing
    the same students at once can deadlock on the claim index (InnoDB): the loser's transaction runs again.
    ``record(session, result)`` runs inside the transaction (a background task records its outcome with it)."""
    batch_id = batch.id
    return with_retry(session, lambda: _commit_batch(session, session.get(ImportBatch, batch_id), actor,
                                                     all_or_nothing, record))


def commit_or_queue(session, actor, batch: ImportBatch, all_or_nothing: bool = False):
    """提交 as the page asks it: a list of more rows than XUEJI_BACKGROUND_ROWS is committed by a background task
    (returned; the one already running, if any), a smaller one now ((admitted, conflicts))."""
    if not tasks.background(batch.rows):
        return commit_batch(session, batch, actor, all_or_nothing)
    return _queue_commit(session, actor, batch, all_or_nothing)


@service
def _queue_commit(session, actor, batch: ImportBatch, all_or_nothing: bool):
    authorize(session, actor, batch.school_id)
    return tasks.start(session, actor, "admission_commit", batch.id, total=batch.rows,
                       options={"all_or_nothing": bool(all_or_nothing)})


def committed_message(batch: ImportBatch, admitted: int, conflicts: int) -> str:
    if not admitted:
        return "该名单已提交，未重复提交"
    return (f"已提交{admitted}名学生" + (f"，其中{conflicts}名重复招生待仲裁" if conflicts else "") +
            ("，等待学校确认" if batch.method == "统一招生" else "，等待区县教育局审核"))


@service
def _commit_batch(session, batch: ImportBatch, actor, all_or_nothing: bool, record=None) -> tuple[int, int]:
    authorize(session, actor, batch.school_id)
    if batch.state != "已校验":
        if record is not None:
            record(session, (0, 0))
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
    conflicts = _admit(session, [dict(student_id=checked.matches[n], school_id=batch.school_id, year=batch.year,
                                      stage=checked.stage, method=batch.method, state=state, batch_id=batch.id,
                                      source_row=n, created_at=now, current=1) for n in valid])
    batch.state, batch.committed_at = "已提交", now
    session.flush()
    if batch.method == "自主招生":
        req = workflow.file(session, actor, "admission_batch", None,
                            {"batch_id": batch.id, "rows": len(valid)}, (), None,
                            school_id=batch.school_id)    # one transaction: admissions, list and its request
        batch.request_id = req.id
        session.execute(update(Admission).where(Admission.batch_id == batch.id).values(request_id=req.id)
                        .execution_options(synchronize_session=False))
    if record is not None:
        record(session, (len(valid), conflicts))
    return len(valid), conflicts


# --- background tasks (app.tasks): the same services, run by a job ---------------------------------------------

TASK_KINDS = ("admission_check", "admission_commit")     # a batch page shows the newest of these

def _task_batch(session, task) -> ImportBatch:
    batch = session.get(ImportBatch, int(task.target))
    if batch is None:
        raise RuleError("该名单已不存在", code="not_found", status=404)
    return batch


def checked_message(checked: "Checked") -> str:
    return f"校验完成：共{len(checked.rows)}行，有效{len(checked.valid)}行，有问题{len(checked.bad_rows)}行"


def check_task(session, actor, task, progress) -> None:
    """admission_check: the kept file checked again by the account that uploaded it; the result is saved for the
    preview, and the task ends with the work's transaction."""
    batch = _task_batch(session, task)
    if batch.state != "已校验":             # committed meanwhile: a check now would call every row admitted
        return tasks.conclude(session, task, "名单已提交，无需再校验")
    progress.step("读取并校验")

    def record(session, checked):
        save_check(batch, checked)            # joins this transaction (a nested service)
        tasks.finish(session, task, checked_message(checked))
    recheck(session, batch, actor, record=record)


def commit_task(session, actor, task, progress) -> None:
    """admission_commit: commit_batch as the page would have run it, its outcome recorded in its transaction: a
    retry after a kill finds the task ended (nothing twice), and commit_batch is idempotent per batch anyway."""
    batch = _task_batch(session, task)
    progress.step("校验并提交")
    commit_batch(session, batch, actor, bool(task.options.get("all_or_nothing")),
                 record=lambda s, result: tasks.finish(s, task, committed_message(batch, *result)))


def _admit(session, rows: list[dict], attempts: int = 3) -> int:
    """Insert admissions. The first admission of a student for the year holds the claim; one whose student another
    school holds (or contests) already is a 重复招生 conflict, and the other school's admissions go to arbitration
    too. The claim is unique in the database, so a school committing the same student at the same moment loses its
    insert (it waits for the winner's commit): the savepoint is undone and the rows are decided again against the
    winner — a conflict, never a 500, never a second admission. Rows go in student order (no deadlock between two
    lists of the same students). Returns how many rows are conflicts."""
    rows = sorted(rows, key=lambda r: r["student_id"])
    wanted = rows[0]["state"]                     # one list: one state (待确认 or 待审核)
    for attempt in range(attempts):
        held, here = _admitted(session, [r["student_id"] for r in rows], rows[0]["year"], rows[0]["school_id"])
        if here:
            raise RuleError(f"{len(here)}名学生已由本校另一份名单录取（可能刚刚提交），请重新校验后提交",
                            code="already_admitted", status=409)
        for r in rows:
            contested = r["student_id"] in held
            r["state"], r["claim"] = (CONFLICT, None) if contested else (wanted, 1)
        try:
            with session.begin_nested():
                session.execute(insert(Admission.__table__), rows)
        except IntegrityError:
            if attempt == attempts - 1:
                raise RuleError("同一批学生正在被其他学校同时录取，请稍后重新提交", code="busy", status=409) from None
            continue
        others = [i for ids in held.values() for i in ids]
        if others:
            session.execute(update(Admission).where(Admission.id.in_(others)).values(state=CONFLICT)
                            .execution_options(synchronize_session=False))
        return sum(1 for r in rows if r["student_id"] in held)
    return 0


def _admitted(session, student_ids, year: int, school_id: int) -> tuple[dict[int, list[int]], set[int]]:
    """The students' active admissions this year, read now (after any concurrent winner's commit): other schools'
    (student id → admission ids) and the students this school has already."""
    held: dict[int, list[int]] = {}
    here: set[int] = set()
    ids = sorted(set(student_ids))
    for i in range(0, len(ids), 5000):
        for adm_id, sid, school in session.execute(select(Admission.id, Admission.student_id, Admission.school_id)
                                                   .where(Admission.student_id.in_(ids[i:i + 5000]),
                                                          Admission.year == year, Admission.current == 1)).all():
            if school == school_id:
                here.add(sid)
            else:
                held.setdefault(sid, []).append(adm_id)
    return held, here


# --- 统一招生: the county's list, confirmed by the school -------------------------------------------------------

@service
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
    req = workflow.file(session, actor, "admission_batch", None, {"admission_ids": ids, "rows": len(ids)}, (),
                        None, school_id=school_id)   # the confirmation and its review request, in one transaction
    for adm in rows:
        adm.request_id = req.id
    return len(rows)


# --- 重复招生 arbitration --------------------------------------------------------------------------------------

@service
def arbitrate(session, actor, keep_id: int, reason: str) -> None:
    """The bureau keeps one admission of a double-admitted student; the others are cancelled (places freed). The
    kept one then continues where its list is: its review (still open), 调档 at once (its list was approved while
    the student was in arbitration), or the school's confirmation (统一招生 not yet confirmed)."""
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
        for other in others:
            other.state, other.current, other.claim, other.decided_at = CANCELLED, None, None, now
            other.note = f"仲裁取消（保留{keep.school.name}）：{reason}"[:200]
        session.flush()                            # the claim is free before the kept admission takes it
        keep.claim, keep.decided_at, keep.note = 1, now, f"仲裁保留：{reason}"[:200]
        _continue(session, keep)
        session.flush()                            # inside system_write: the flush rules see the system write


def _continue(session, adm: Admission) -> None:
    """An admission no longer contested goes on where its list is (see arbitrate)."""
    from models.requests import APPROVED, OPEN_STATES, Request
    req = session.get(Request, adm.request_id) if adm.request_id else None
    if req is None:
        adm.state = TO_CONFIRM if adm.method == "统一招生" else TO_REVIEW
        if adm.method != "统一招生":
            raise RuleError("该录取没有可审核的录取名单，不能保留", code="no_request", status=409)
    elif req.state in OPEN_STATES:
        adm.state = TO_REVIEW                      # its list's approval will move it
    elif req.state == APPROVED:
        adm.state = TO_REVIEW
        session.flush()
        transfer_records(session, [adm.id], f"录取调档 #{req.id}（重复招生仲裁后）")
    else:
        raise RuleError(f"该录取所在的录取名单#{req.id}已{req.state}，不能保留", code="list_ended", status=409)


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
    rosters.flag_incomplete(session, student_ids)      # ★ fields a 小学 roster did not carry: 待补录
    session.execute(insert(Enrollment), [dict(student_id=a.student_id, school_id=a.school_id, stage=a.stage,
                                              cohort_year=a.year, class_id=None, status="在校", started_on=today,
                                              current=1, reason=reason) for a in adms])
    # the acting user (the approver, the arbitrating reviewer) and address, as for every other write
    session.execute(insert(AuditEvent), [event_row("update", entity="student", entity_id=a.student_id,
                                                   field="school_id", new=f"{a.school_id}（{reason}）",
                                                   school_id=a.school_id) for a in adms])
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
    """Approval moves the list's uncontested admissions; those in 重复招生 arbitration wait for its outcome, which
    moves the kept one then (arbitrate → _continue)."""
    ids = _batch_admissions(session, payload)
    n = transfer_records(session, ids, f"录取调档 #{req.id}")
    waiting = session.execute(select(func.count()).select_from(Admission).where(
        Admission.id.in_(ids), Admission.state == CONFLICT)).scalar() if ids else 0
    if payload.get("batch_id"):
        session.execute(update(ImportBatch).where(ImportBatch.id == payload["batch_id"]).values(state="已通过")
                        .execution_options(synchronize_session=False))
    note = f"（已调档{n}人" + (f"，{waiting}人在重复招生仲裁中，仲裁保留后自动调档）" if waiting else "）")
    req.summary = (req.summary + note)[:300]


def _end_batch(session, req, payload) -> None:
    """A list withdrawn or cleared before approval gives its places and its students back: its admissions are
    cancelled, and a student another school also admitted is no longer contested there."""
    ids = _batch_admissions(session, payload)
    gone = list(session.scalars(select(Admission).where(Admission.id.in_(ids), Admission.current == 1))) if ids else []
    now = clock.now()
    with system_write(session):
        for adm in gone:
            adm.state, adm.current, adm.claim, adm.decided_at = CANCELLED, None, None, now
            adm.note = f"录取名单#{req.id}已{req.state}"[:200]
        session.flush()
        for adm in gone:
            rest = list(session.scalars(select(Admission).where(Admission.student_id == adm.student_id,
                                                                Admission.year == adm.year, Admission.current == 1)))
            if len(rest) == 1 and rest[0].state == CONFLICT:
                rest[0].claim = 1
                _continue(session, rest[0])


register(Kind(code="admission_batch", title="录取名单审核", chain="admission_batch", validate=_validate_batch,
              on_end=_end_batch,
              apply=_apply_batch, describe=lambda s, st, p: f"录取名单审核（{p.get('rows', 0)}人）",
              min_evidence=0, locks_student=False))


def _validate_quota_change(session, student, payload) -> None:
    quota = session.get(Quota, int(payload.get("quota_id") or 0))
    if quota is None:
        raise RuleError("招生计划不存在", code="not_found", status=404)
    year = admission_year(session, quota.school.county_code)
    if quota.year != year:
        raise RuleError(f"只能申请变更本年度（{year}年）的招生计划数", code="not_current_year")
    try:
        requested = int(str(payload.get("requested") or 0).strip())
    except ValueError:
        raise RuleError("申请计划数请填写正确的数字", code="invalid") from None
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


def admission_year(session, county_code: str | None) -> int:
    """The entry cohort admitted now (app.schoolyear.admission_year): plans, batches and change requests use it."""
    from app import schoolyear
    return schoolyear.admission_year(session, county_code)
