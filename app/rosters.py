"""小学毕业生名单 (小升初): a county's primary-school graduates, as the primary-school system exports them, held
read-only so that any 初中 of the installation can admit them by 学籍号 + 姓名 exactly as 高中 admits 初中 graduates
(DOMAIN.md §6 [I]: an installation holding only 中学 receives the roster first).

A graduate is a Student of stage 小学 and status 毕业 at a School of type 小学 in the county, with one closed
enrollment span. They are never 在校 and never editable (the record rules refuse it, app.students); 调档 makes the
same record the 初中's 在校 student and flags the ★ fields the roster did not carry as 待补录.

The path is the admission one: upload → `check_roster` (set-wise: one query per key column) → preview with per-cell
issues and the annotated workbook → `import_roster` (the valid rows, in bulk; a re-import updates by 学籍号).
"""
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import bindparam, insert, select

from app import clock, schoolyear, spreadsheets, tasks, uploads
from app.audit import event_row
from app.errors import RuleError
from app.service import service
from app.identity import check_id_number, check_xjh
from app.rules import is_new, original, rule
from app.spreadsheets import Column, Issue, Row
from models import AuditEvent, Enrollment, Region, School, Student
from models.admissions import RosterBatch

PRIMARY = "小学"
ID_TYPES = {"居民身份证": "1", "户口簿": "2", "香港特区护照/身份证明": "6", "澳门特区护照/身份证明": "7",
            "台湾居民来往大陆通行证": "8", "境外永久居住证": "9", "护照": "A", "其他": "Z"}
SEX = {"男": "1", "女": "2"}
COLUMNS = [Column("学籍号", kind="id", width=24), Column("姓名", kind="name", width=14),
           Column("性别", kind="choice", choices=tuple(SEX), width=8), Column("出生日期", width=14),
           Column("身份证件类型", kind="choice", choices=tuple(ID_TYPES), width=22),
           Column("身份证件号", required=False, kind="id", width=24), Column("毕业学校", width=30),
           Column("学校标识码", required=False, kind="id", width=14), Column("毕业年份", width=10)]
INSTRUCTIONS = ["本模板用于区县教育局导入小学毕业生名单（小升初），列与小学学籍系统导出的毕业生名单一致，字段和列的顺序不能修改。",
                "学籍号为全国学籍号（G/J/L开头共19位）；身份证件类型为“其他”时身份证件号可不填。",
                "学籍号、身份证件号、学校标识码列已设为文本格式，请不要改为数字格式，否则会丢失位数。",
                "出生日期写作2014-09-01；毕业年份写作4位年份，须与导入时选择的年份一致。",
                "学校标识码已知时请填写；不填时按毕业学校名称在本区县内识别学校。",
                "同一名单可以重复导入：已导入的学生按学籍号更新，不会重复建立。",
                "导入的毕业生只读，不计入在校生；初中学校按学籍号和姓名录取后调档。"]
PRIMARY_YEARS = 6                       # 学制 of a school the roster creates (小学6年); cohort = 毕业年份 − 6
CHUNK = 5000
DATE_RE = re.compile(r"^(\d{4})\D?(\d{1,2})\D?(\d{1,2})\D?$")
SCHOOL_CODE_RE = re.compile(r"^\d{10}$")


@dataclass
class Graduate:
    row: int
    xjh: str
    name: str
    sex: str
    birth_date: date
    id_type: str
    id_number: str | None
    school_name: str
    school_code: str | None


@dataclass
class CheckedRoster:
    rows: list[Row]
    issues: list[Issue]
    graduates: dict[int, Graduate] = field(default_factory=dict)     # row → graduate (valid rows only)
    existing: dict[str, int] = field(default_factory=dict)           # 学籍号 → student id, re-imported graduates
    checked_at: str | None = None                                   # when the check ran (ISO), for the page

    @property
    def bad_rows(self) -> set[int]:
        return {i.row for i in self.issues}

    def to_json(self) -> dict:
        """A large roster's check, kept for its page (save_check): rows, issues and which rows are valid. The
        graduates themselves are not kept: importing always checks again, inside its transaction."""
        issue = lambda i: [i.row, i.column, i.code, i.message, i.level]  # noqa: E731
        return {"checked_at": self.checked_at, "rows": [[r.number, r.values] for r in self.rows],
                "issues": [issue(i) for i in self.issues], "valid": sorted(self.graduates),
                "existing": self.existing}

    @classmethod
    def from_json(cls, data: dict) -> "CheckedRoster":
        """A saved check, for showing only: its graduates map the valid rows to None."""
        return cls([Row(n, values, []) for n, values in data["rows"]], [Issue(*i) for i in data["issues"]],
                   dict.fromkeys(data["valid"]), dict(data["existing"]), data.get("checked_at"))


def _issue(row, column, code, message) -> Issue:
    return Issue(row, column, code, f"第{row}行“{column}”：{message}" if column else f"第{row}行：{message}")


def _date(text: str | None) -> date | None:
    m = DATE_RE.match((text or "").replace("年", "-").replace("月", "-").replace("日", ""))
    if not m:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def _check_row(row: Row, year: int) -> tuple[Graduate | None, list[Issue]]:
    """Every problem of one row on its own (no database): identifiers, name, sex, date, school, year."""
    v, n, issues = row.values, row.number, []
    add = lambda col, code, msg: issues.append(_issue(n, col, code, msg))      # noqa: E731
    id_type = ID_TYPES.get(v.get("身份证件类型") or "")
    id_number, born, sex = v.get("身份证件号"), _date(v.get("出生日期")), SEX.get(v.get("性别") or "")
    if v.get("出生日期") and born is None:
        add("出生日期", "bad_date", f"“{v['出生日期']}”不是有效日期，应写作2014-09-01")
    elif born and born > clock.today():
        add("出生日期", "bad_date", "出生日期不能晚于今天")
    if id_type == "1":
        if not id_number:
            add("身份证件号", "required", "身份证件类型为居民身份证时必填")
        else:
            idc = check_id_number(id_number)
            if not idc.valid:
                add("身份证件号", idc.code or "invalid_id", idc.message)
            else:
                id_number = idc.normalized
                if sex and idc.sex != sex:
                    add("性别", "id_mismatch", "与身份证件号不符（第17位奇数为男、偶数为女）")
                if born and idc.birth_date != born:
                    add("出生日期", "id_mismatch", f"与身份证件号不符（证件号为{idc.birth_date:%Y-%m-%d}）")
    elif id_type and id_type != "Z" and not id_number:
        add("身份证件号", "required", "除身份证件类型为“其他”外必填")
    xjh = None
    if v.get("学籍号"):
        xc = check_xjh(v["学籍号"], id_type=id_type, id_number=id_number if id_type == "1" else None,
                       generated=True)
        if xc.valid:
            xjh = xc.normalized
        else:
            add("学籍号", xc.code or "invalid_xjh", xc.message)
    name = v.get("姓名") or ""          # the reader refuses what no name looks like (spreadsheets.name_problem)
    code = v.get("学校标识码")
    if code and not SCHOOL_CODE_RE.match(code):
        add("学校标识码", "bad_school_code", "应为10位数字")
    grad_year = v.get("毕业年份")
    if grad_year and grad_year != str(year):
        add("毕业年份", "wrong_year", f"“{grad_year}”与本次导入的{year}年毕业生名单不符")
    if issues or not (xjh and name and sex and born and id_type and v.get("毕业学校") and grad_year):
        return None, issues
    return Graduate(n, xjh, name, sex, born, id_type, id_number, v["毕业学校"], code), issues


def check_roster(session, county_code: str, year: int, rows: list[Row], issues: list[Issue],
                 progress=None) -> CheckedRoster:
    """Every row's problems, then the database set-wise: who is already held (by 学籍号, by 身份证件号).
    ``progress(rows done)`` is told every 1,000 rows (a background task shows it)."""
    result = CheckedRoster(rows, list(issues), checked_at=clock.now().isoformat(timespec="seconds"))
    candidates: dict[int, Graduate] = {}
    for done, row in enumerate(rows):
        if progress is not None and done % 1000 == 0:
            progress(done)
        grad, problems = _check_row(row, year)
        result.issues.extend(problems)
        if grad is not None:
            candidates[row.number] = grad
    _duplicates_in_file(candidates, result)
    held = _held(session, [g.xjh for g in candidates.values()], Student.xjh)
    by_id = _held(session, [g.id_number for g in candidates.values() if g.id_type == "1" and g.id_number],
                  Student.id_number)
    school_ids = {s.school_id for s in (*held.values(), *by_id.values())}
    county_of = {sid: code for sid, code in session.execute(
        select(School.id, School.county_code).where(School.id.in_(school_ids))).all()} if school_ids else {}
    bad = result.bad_rows                                    # once: the reader's issues and the row checks
    for n, grad in candidates.items():
        problems = []
        student = held.get(grad.xjh)
        if student is not None and student.stage != PRIMARY:
            problems.append(_issue(n, "学籍号", "has_secondary_record",
                                   f"{grad.xjh}已有{student.stage}学籍（{student.name}），不能作为小学毕业生导入"))
        elif student is not None and county_of.get(student.school_id) != county_code:
            problems.append(_issue(n, "学籍号", "other_county", f"{grad.xjh}已在其他区县的小学毕业生名单中"))
        other = by_id.get(grad.id_number) if grad.id_type == "1" else None
        if other is not None and other.xjh != grad.xjh:
            problems.append(_issue(n, "身份证件号", "dup_id", f"与已有学籍{other.xjh}（{other.name}）的身份证件号相同"))
        result.issues.extend(problems)
        if not problems and n not in bad:
            result.graduates[n] = grad
            if student is not None:
                result.existing[grad.xjh] = student.id
    return result


def _duplicates_in_file(candidates: dict[int, Graduate], result: CheckedRoster) -> None:
    """A 学籍号 or 身份证件号 twice in the file (after normalising): the later rows are refused."""
    first_xjh, first_id = {}, {}
    for n, grad in list(candidates.items()):
        for key, seen, col in ((grad.xjh, first_xjh, "学籍号"),
                               (grad.id_number if grad.id_type == "1" else None, first_id, "身份证件号")):
            if not key:
                continue
            if key in seen:
                result.issues.append(_issue(n, col, "duplicate_row", f"与第{seen[key]}行重复"))
                candidates.pop(n, None)
            else:
                seen[key] = n


def _held(session, keys, column) -> dict:
    found = {}
    keys = sorted(set(keys))
    for i in range(0, len(keys), CHUNK):
        for s in session.execute(select(Student.id, Student.xjh, Student.id_number, Student.name, Student.stage,
                                        Student.school_id).where(column.in_(keys[i:i + CHUNK]),
                                                                 Student.deleted_at.is_(None))):
            found[getattr(s, column.key)] = s
    return found


# --- the file and its batch ------------------------------------------------------------------------------------

def county_of(session, code: str) -> Region:
    region = session.scalars(select(Region).where(Region.code == (code or ""))).first()
    if region is None or region.level != "county":
        raise RuleError(f"区县代码 {code} 不存在", code="not_found", status=404)
    return region


def receive(session, actor, data: bytes, filename: str, county_code: str, year: int) -> RosterBatch:
    """Keep the uploaded file once (the same file for the same county is the same batch). A file that cannot be read
    is refused before anything is kept; the rows read stay on the batch for this request's check."""
    parsed = spreadsheets.read_table(data, filename, COLUMNS)
    county_of(session, county_code)
    digest = hashlib.sha256(data).hexdigest()
    batch = session.scalars(select(RosterBatch).where(RosterBatch.county_code == county_code,
                                                      RosterBatch.sha256 == digest)).first()
    if batch is None:
        batch = RosterBatch(county_code=county_code, year=year, filename=filename[:200],
                            stored_name=uploads.keep(session, data, filename),
                            sha256=digest, uploaded_by_id=getattr(actor, "id", None), uploaded_at=clock.now())
        session.add(batch)
        session.flush()
    batch.parsed = parsed
    return batch


def load(batch: RosterBatch) -> bytes:
    return uploads.read(batch.stored_name)


@service
def upload(session, actor, data: bytes, filename: str, county_code: str,
           year) -> tuple[RosterBatch, CheckedRoster | None]:
    """小学毕业生名单, step 1 (county staff of that county, or the CLI): keep the file once and check it. A roster of
    more rows than XUEJI_BACKGROUND_ROWS is checked by a background task instead (app.tasks; the checked result
    is then None and the batch page shows the check's progress)."""
    authorize(session, actor, county_code)
    if not filename:
        raise RuleError("请选择要上传的文件", code="no_file")
    if not isinstance(year, int) or not 2000 <= year <= 2100:
        raise RuleError("请填写4位的毕业年份", code="invalid")
    batch = receive(session, actor, data, filename, county_code, year)
    if batch.state == "已校验" and tasks.background(len(batch.parsed[0])):
        batch.rows = len(batch.parsed[0])
        tasks.start(session, actor, "roster_check", batch.id, total=batch.rows)
        return batch, None
    return batch, check_batch(session, batch)


def authorize(session, actor, county_code: str) -> None:
    """Who may upload, check and import a county's roster: an active account holding 小学毕业生名单导入 with the
    county in its scope. Asked by every entry point, so a background task asks again when it runs (the account
    may have been disabled, or moved, since the click). No actor: the CLI, a system job."""
    from app.errors import OutOfScope
    from app.scoping import region_in_scope, scope_of
    if actor is None:
        return
    if not region_in_scope(county_code, scope_of(actor)):
        raise OutOfScope("区县不存在或不在您的管辖范围内")
    if not tasks.may(actor, "can_import", "PrimaryRoster"):
        raise RuleError("您的账号已停用或不再有导入小学毕业生名单的权限，未处理该名单", code="forbidden", status=403)


@service
def recheck(session, batch: RosterBatch, actor=None, record=None, progress=None) -> CheckedRoster:
    """Check a kept roster again (its page shows the result against today's data); the batch's counts follow.
    ``record(session, checked)`` runs inside this transaction (a background task records its outcome with it)."""
    authorize(session, actor, batch.county_code)
    checked = check_batch(session, batch, progress)
    if record is not None:
        record(session, checked)
    return checked


@service
def recheck_or_queue(session, actor, batch: RosterBatch):
    """重新校验 as the page asks it: a roster of more rows than XUEJI_BACKGROUND_ROWS gets a background task (the
    one already running, if any), a smaller one is checked now."""
    authorize(session, actor, batch.county_code)
    if background(batch):
        return tasks.start(session, actor, "roster_check", batch.id, total=batch.rows)
    return recheck(session, batch, actor)


def background(batch: RosterBatch) -> bool:
    """Whether the roster's checks and import run as background tasks (and its page shows a saved check)."""
    return tasks.background(batch.rows)


def check_batch(session, batch: RosterBatch, progress=None) -> CheckedRoster:
    rows, issues = getattr(batch, "parsed", None) or spreadsheets.read_table(load(batch), batch.filename, COLUMNS)
    checked = check_roster(session, batch.county_code, batch.year, rows, issues, progress)
    if batch.state == "已校验":
        batch.rows, batch.valid_rows, batch.error_count = len(rows), len(checked.graduates), len(checked.bad_rows)
    return checked


def _check_name(batch: RosterBatch) -> str:
    """The saved check's name in the file store's "imports" area, beside the roster's file."""
    return f"{batch.stored_name}.check.json"


def save_check(session, batch: RosterBatch, checked: CheckedRoster) -> None:
    """Keep a large roster's check for its page (in the caller's transaction), instead of checking 50,000 rows on
    every view; importing always checks again."""
    from app import filestore
    data = json.dumps(checked.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    filestore.put(session, "imports", _check_name(batch), data)


def saved_check(batch: RosterBatch) -> CheckedRoster | None:
    from app import filestore
    try:
        return CheckedRoster.from_json(json.loads(filestore.get("imports", _check_name(batch))))
    except (OSError, ValueError, KeyError, TypeError):
        return None


# --- writing ---------------------------------------------------------------------------------------------------

@service
def import_batch(session, actor, batch: RosterBatch, all_or_nothing: bool = False, record=None,
                 progress=None) -> tuple[int, int]:
    """Write the valid rows (re-checked now, inside the transaction): new graduates in bulk, graduates already
    held updated by 学籍号. Returns (created, updated). One commit; a refusal leaves the database as it was.
    ``record(session, result)`` runs inside the transaction (a background task records its outcome with it)."""
    authorize(session, actor, batch.county_code)
    checked = check_batch(session, batch, progress)
    if all_or_nothing and checked.bad_rows:
        raise RuleError(f"名单有{len(checked.bad_rows)}行未通过校验，按“全部正确才导入”未导入任何记录",
                        code="has_errors")
    if not checked.graduates:
        raise RuleError("没有可以导入的有效行", code="nothing_valid")
    if progress is not None:
        progress.step("写入")             # before this transaction writes (SQLite: one writer at a time)
    created, updated = write_graduates(session, actor, batch.county_code, batch.year, checked)
    batch.state, batch.committed_at = "已导入", clock.now()
    batch.created, batch.updated = batch.created + created, batch.updated + updated
    if record is not None:
        record(session, (created, updated))
    return created, updated


def import_or_queue(session, actor, batch: RosterBatch, all_or_nothing: bool = False):
    """导入 as the page asks it: a roster of more rows than XUEJI_BACKGROUND_ROWS is imported by a background task
    (returned; the one already running, if any), a smaller one now ((created, updated))."""
    if not background(batch):
        return import_batch(session, actor, batch, all_or_nothing)
    return _queue_import(session, actor, batch, all_or_nothing)


@service
def _queue_import(session, actor, batch: RosterBatch, all_or_nothing: bool):
    authorize(session, actor, batch.county_code)
    return tasks.start(session, actor, "roster_import", batch.id, total=batch.rows,
                       options={"all_or_nothing": bool(all_or_nothing)})


def imported_message(created: int, updated: int) -> str:
    return f"已导入小学毕业生：新增{created}人，更新{updated}人"


def checked_message(checked: CheckedRoster) -> str:
    return (f"校验完成：共{len(checked.rows)}行，可导入{len(checked.graduates)}行，"
            f"有问题{len(checked.bad_rows)}行")


# --- background tasks (app.tasks): the same services, run by a job ---------------------------------------------

TASK_KINDS = ("roster_check", "roster_import")           # a batch page shows the newest of these

def _task_batch(session, task) -> RosterBatch:
    batch = session.get(RosterBatch, int(task.target))
    if batch is None:
        raise RuleError("该名单已不存在", code="not_found", status=404)
    return batch


def check_task(session, actor, task, progress) -> None:
    """roster_check: the kept roster checked again by the account that uploaded it; the check is saved for the
    page, and the task ends with the work's transaction."""
    batch = _task_batch(session, task)
    progress.step("校验")

    def record(session, checked):
        save_check(session, batch, checked)
        tasks.finish(session, task, checked_message(checked))
    recheck(session, batch, actor, record=record, progress=progress)


def import_task(session, actor, task, progress) -> None:
    """roster_import: import_batch as the page would have run it; its outcome is recorded in its transaction, so a
    retry after a kill finds the task ended and imports nothing twice."""
    batch = _task_batch(session, task)
    progress.step("校验")
    import_batch(session, actor, batch, bool(task.options.get("all_or_nothing")), progress=progress,
                 record=lambda s, result: tasks.finish(s, task, imported_message(*result)))


def write_graduates(session, actor, county_code: str, year: int, checked: CheckedRoster) -> tuple[int, int]:
    """Set-based: schools resolved in two queries (and created when new), one INSERT of new graduates, one of their
    closed 小学 spans, one executemany UPDATE of those already held, one INSERT of audit rows."""
    schools = _schools(session, county_code, checked.graduates.values())
    graduated = date(year, 7, 1)
    new = [g for g in checked.graduates.values() if g.xjh not in checked.existing]
    old = [g for g in checked.graduates.values() if g.xjh in checked.existing]
    fields = lambda g: dict(name=g.name, sex=g.sex, birth_date=g.birth_date, id_type=g.id_type,   # noqa: E731
                            id_number=g.id_number, school_id=schools[_school_key(g)])
    if new:
        session.execute(insert(Student), [dict(xjh=g.xjh, stage=PRIMARY, cohort_year=year - PRIMARY_YEARS,
                                               status="毕业", graduated_on=graduated, nationality="CHN",
                                               **fields(g)) for g in new])
        ids = _held(session, [g.xjh for g in new], Student.xjh)
        session.execute(insert(Enrollment.__table__), [   # Core: an explicit NULL stays NULL
           
            dict(student_id=ids[g.xjh].id, school_id=schools[_school_key(g)], stage=PRIMARY,
                 cohort_year=year - PRIMARY_YEARS, status="毕业", started_on=graduated, ended_on=graduated,
                 current=None, reason=f"{year}年小学毕业（小学毕业生名单导入）") for g in new])
    else:
        ids = {}
    if old:
        table = Student.__table__
        session.execute(table.update().where(table.c.id == bindparam("sid"), table.c.stage == PRIMARY)
                        .values(name=bindparam("n"), sex=bindparam("s"), birth_date=bindparam("b"),
                                id_type=bindparam("t"), id_number=bindparam("i"), school_id=bindparam("sc")),
                        [dict(sid=checked.existing[g.xjh], n=g.name, s=g.sex, b=g.birth_date, t=g.id_type,
                              i=g.id_number, sc=schools[_school_key(g)]) for g in old])
    who = dict(user_id=actor.id, username=actor.username) if actor is not None else {}   # else the request's user
    session.execute(insert(AuditEvent), [
        event_row("insert", entity="student", entity_id=ids[g.xjh].id, field="xjh", new=g.xjh,
                  school_id=schools[_school_key(g)], **who) for g in new] + [
        event_row("update", entity="student", entity_id=checked.existing[g.xjh], field="小学毕业生名单",
                  new=f"{g.name} {g.xjh}", school_id=schools[_school_key(g)], **who) for g in old])
    return len(new), len(old)


def _school_key(g: Graduate):
    return ("code", g.school_code) if g.school_code else ("name", g.school_name)


def _schools(session, county_code: str, graduates) -> dict:
    """毕业学校 → school id: by 学校标识码 where the roster has it, else by name among the county's 小学; schools not
    held yet are created as type 小学 (those without a known code get a local one, P + county + serial)."""
    graduates = list(graduates)
    codes = {g.school_code: g.school_name for g in graduates if g.school_code}
    names = {g.school_name for g in graduates if not g.school_code}
    found = {}
    if codes:
        for sid, code, county, kind in session.execute(select(School.id, School.code, School.county_code,
                                                              School.school_type).where(School.code.in_(codes))):
            if kind != PRIMARY:
                raise RuleError(f"学校标识码{code}是{kind}，不是小学", code="not_primary")
            found[("code", code)] = sid
    local = dict(session.execute(select(School.name, School.id).where(
        School.county_code == county_code, School.school_type == PRIMARY)).all())
    for name in names:
        if name in local:
            found[("name", name)] = local[name]
    missing = [("code", c, n) for c, n in codes.items() if ("code", c) not in found] +               [("name", None, n) for n in sorted(names) if ("name", n) not in found]
    if missing:
        serial = len(session.execute(select(School.id).where(School.code.like(f"P{county_code}%"))).all())
        rows = []
        for kind, code, name in missing:
            if code is None:
                serial += 1
                code = f"P{county_code}{serial:03d}"
            rows.append(dict(code=code, name=name[:100], county_code=county_code, city_code=county_code[:4] + "00",
                             province_code=county_code[:2] + "0000", school_type=PRIMARY,
                             schooling=f"小学{PRIMARY_YEARS}年"))
        session.execute(insert(School), rows)
        made = dict(session.execute(select(School.code, School.id).where(
            School.code.in_([r["code"] for r in rows]))).all())
        for (kind, code, name), row in zip(missing, rows, strict=True):
            found[(kind, code if kind == "code" else name)] = made[row["code"]]
    return found


def default_year(session, county_code: str | None) -> int:
    """The roster to import now: the 小学 graduates who enter 初一 in the county's current admission year."""
    return schoolyear.admission_year(session, county_code)


# --- the records: read-only graduates, 待补录 after 调档 -------------------------------------------------------------

@rule(Student)
def primary_graduates_read_only(student: Student, session) -> None:
    """A 小学毕业生 is the primary system's record: no form, API or import here creates or edits one (the roster
    import and 调档 write set-wise, below the rules); corrections come with a corrected roster."""
    if student.stage == PRIMARY or (not is_new(student) and original(student, "stage") == PRIMARY):
        raise RuleError("小学毕业生名单中的学生信息只读（来自小学学籍系统）；如有错误，请更正名单后重新导入",
                        code="read_only")


def _missing(student) -> list[str]:
    from app.students import REQUIRED
    return [label for f, label in REQUIRED.items() if getattr(student, f) in (None, "")]


def missing_labels(student) -> str:
    return "、".join(_missing(student))


@rule(Student)
def completion(student: Student, session) -> None:
    """待补录 ends when every ★ field is filled (the required-field rule refuses saving a half-completed form)."""
    if student.needs_completion and not _missing(student):
        student.needs_completion = False


def flag_incomplete(session, student_ids) -> None:
    """调档: entrants whose ★ fields the roster did not carry are 待补录 (one UPDATE; nothing is invented)."""
    from sqlalchemy import or_, update
    from app.students import REQUIRED
    missing = or_(*[getattr(Student, f).is_(None) for f in REQUIRED])
    ids = list(student_ids)
    for i in range(0, len(ids), CHUNK):
        session.execute(update(Student).where(Student.id.in_(ids[i:i + CHUNK]), missing)
                        .values(needs_completion=True).execution_options(synchronize_session=False))
