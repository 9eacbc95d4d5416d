"""问题学籍: detection, the per-school / per-county queue, and handling (变更, 佐证, 删除).

Detection runs on every create and identity change (at commit, for the rows touched) and on demand for a
school or a county. Duplicates are looked for across the whole database, whatever the user's scope.
"""

from sqlalchemy import and_, event, func, or_, select, update

from app import clock, tasks
from app.errors import RuleError
from app.service import service
from app.identity import check_id_number
from app.rules import changed, flush_rule
from app.scoping import system_write
from models import School, Student
from models.requests import PROBLEM_KINDS, Problem

KINDS = PROBLEM_KINDS
OPEN, IN_PROGRESS, RESOLVED = "待处理", "处理中", "已解决"
IDENTITY_FIELDS = ("id_type", "id_number", "name", "sex", "birth_date", "deleted_at")


def _checks(row) -> list[tuple[str, str]]:
    """Single-record problems of one (id_type, id_number, sex, birth_date) row."""
    if row.id_type != "1" or not row.id_number:
        return []
    check = check_id_number(row.id_number)
    if not check.valid:
        return [("invalid_id", check.message)]
    out = []
    if row.sex and check.sex != row.sex:
        out.append(("id_mismatch", "性别与身份证件号第17位不符"))
    if row.birth_date and check.birth_date != row.birth_date:
        out.append(("id_mismatch", f"出生日期与身份证件号不符（证件号为{check.birth_date:%Y-%m-%d}）"))
    return out[:1]


@service
def detect_in_scope(session, actor, record=None, progress=None) -> dict:
    """问题学籍检测 run on demand over the actor's whole scope (a school, or every school of its region).
    ``record(session, counts)`` runs inside this transaction (a background task records its outcome with it)."""
    authorize(actor)
    counts = detect(session, school_ids=_scope_schools(session, actor), progress=progress)
    if record is not None:
        record(session, counts)
    return counts


def detect_or_queue(session, actor):
    """检测 as the page asks it: over a scope of more students than XUEJI_BACKGROUND_ROWS a background task runs it
    (returned; the one already running for this scope, if any), over a smaller one it runs now ({kind: count})."""
    authorize(actor)
    students = _scope_students(session, actor)
    if not tasks.background(students):
        return detect_in_scope(session, actor)
    return _queue_detection(session, actor, students)


@service
def _queue_detection(session, actor, students: int):
    return tasks.start(session, actor, "detect", scope_key(actor), total=students)


def authorize(actor) -> None:
    """Who may run detection over a scope: an active account holding 问题学籍检测 (asked again when a background
    task runs: the account may have been disabled since the click). No actor: a system job."""
    if actor is not None and not tasks.may(actor, "can_detect", "Problem"):
        raise RuleError("您的账号已停用或不再有问题学籍检测的权限，未检测", code="forbidden", status=403)


def scope_key(actor) -> str:
    """The scope a detection runs over, as a task's target: one live detection per scope."""
    from app.scoping import scope_of
    scope = scope_of(actor)
    if scope.is_all:
        return "all"
    return f"school:{scope.school_id}" if scope.kind == "school" else f"region:{scope.region_code}"


def _scope_schools(session, actor) -> list[int]:
    from app.scoping import apply_scope, scope_of
    return list(session.scalars(apply_scope(select(School.id), School, scope_of(actor))))


def _scope_students(session, actor) -> int:
    return session.scalar(select(func.count()).select_from(Student).where(
        Student.school_id.in_(_scope_schools(session, actor)), Student.deleted_at.is_(None))) or 0


def detected_message(counts: dict) -> str:
    total = sum(counts.values())
    return f"检测完成：发现{total}条问题" + ("（" + "，".join(
        f"{KINDS[k]}{n}条" for k, n in counts.items()) + "）" if counts else "")


def detect_task(session, actor, task, progress) -> None:
    """detect: detect_in_scope over the scope the task was started for; an account whose scope has changed
    since is refused (its new scope is another task's)."""
    if scope_key(actor) != task.target:
        raise RuleError("发起检测的账号的管辖范围已变化，未检测；请重新检测", code="forbidden", status=403)
    progress.step("检测")
    detect_in_scope(session, actor, progress=progress,
                    record=lambda s, counts: tasks.finish(s, task, detected_message(counts)))


def detect(session, student_ids=None, school_ids=None, progress=None) -> dict:
    """Find the problems of the given students (or schools; all when both are None) and sync the queue.
    Returns {kind: count of open problems found}. ``progress(rows done)`` is told every 1,000 records."""
    live = Student.deleted_at.is_(None)
    target = select(Student.id, Student.id_type, Student.id_number, Student.sex, Student.birth_date,
                    Student.name, Student.deleted_at)
    if student_ids is not None:
        target = target.where(Student.id.in_(list(student_ids)))
    elif school_ids is not None:
        target = target.where(Student.school_id.in_(list(school_ids)))
    rows_all = session.execute(target).all()            # deleted ones too: their peers need a re-check
    rows = [r for r in rows_all if r.deleted_at is None]
    found: dict[tuple[int, str], str] = {}
    peers: set[int] = set()
    for done, row in enumerate(rows):
        if progress is not None and done % 1000 == 0:
            progress(done)
        for kind, detail in _checks(row):
            found[(row.id, kind)] = detail
    # 身份证件号重复: the same number on two live records anywhere
    numbers = {r.id_number for r in rows_all if r.id_number and r.id_type != "Z"}
    if numbers:
        holders = session.execute(
            select(Student.id, Student.id_number, School.name).join(School, School.id == Student.school_id)
            .where(live, Student.id_number.in_(numbers))).all()
        per_number: dict[str, list] = {}
        for sid, number, school in holders:
            per_number.setdefault(number, []).append((sid, school))
            peers.add(sid)
        for number, holders_of in per_number.items():
            if len(holders_of) > 1:
                schools = "、".join(sorted({h[1] for h in holders_of}))
                for sid, _ in holders_of:
                    found[(sid, "dup_id")] = f"身份证件号{number}在{len(holders_of)}条学籍中出现（{schools}）"[:300]
    # 无证件号重复: same name, sex and birth date among records without an ID number
    keys = {(r.name, r.sex, r.birth_date) for r in rows_all if not r.id_number}
    if keys:
        blank = or_(Student.id_number.is_(None), Student.id_number == "")
        cond = or_(*[and_(Student.name == n, Student.sex == s, Student.birth_date == b) for n, s, b in keys])
        per_key: dict[tuple, list[int]] = {}
        for sid, n, s, b in session.execute(select(Student.id, Student.name, Student.sex, Student.birth_date)
                                            .where(live, blank, cond)).all():
            per_key.setdefault((n, s, b), []).append(sid)
            peers.add(sid)
        for ids in per_key.values():
            if len(ids) > 1:
                for sid in ids:
                    found[(sid, "dup_identity")] = "无证件号，姓名、性别、出生日期与其他学籍相同"
    affected = {r.id for r in rows_all} | peers | {sid for sid, _ in found}
    _sync(session, affected, found)
    counts: dict[str, int] = {}
    for _, kind in found:
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def _sync(session, affected: set[int], found: dict) -> None:
    if not affected:
        return
    ids = list(affected)
    existing = {(p.student_id, p.kind): p for p in session.scalars(
        select(Problem).where(Problem.student_id.in_(ids), Problem.current == 1))}
    proven = {(sid, kind) for sid, kind in session.execute(
        select(Problem.student_id, Problem.kind).where(Problem.student_id.in_(ids), Problem.resolution == "佐证"))}
    schools = dict(session.execute(select(Student.id, Student.school_id).where(Student.id.in_(ids))).all())
    now = clock.now()
    with system_write(session):
        for key, detail in found.items():
            if key not in existing and key not in proven:
                session.add(Problem(student_id=key[0], school_id=schools[key[0]], kind=key[1], detail=detail,
                                    state=OPEN, detected_at=now, current=1))
        for key, problem in existing.items():
            if key not in found:
                problem.state, problem.current, problem.resolved_at = RESOLVED, None, now
                problem.resolution = problem.resolution or "复核通过"
        session.flush()
        flagged = set(session.scalars(select(Problem.student_id).where(Problem.student_id.in_(ids),
                                                                        Problem.current == 1)))
        session.execute(update(Student).where(Student.id.in_(ids))
                        .values(has_problem=Student.id.in_(flagged) if flagged else False)
                        .execution_options(synchronize_session=False))


def open_problems(session, student_id: int) -> list[Problem]:
    return list(session.scalars(select(Problem).where(Problem.student_id == student_id, Problem.current == 1)))


def blocks(session, student_id: int) -> None:
    """A 问题学籍 blocks transfer and graduation (national code 2003)."""
    problems = open_problems(session, student_id)
    if problems:
        raise RuleError(f"2003：该生为问题学籍（{KINDS[problems[0].kind]}），请先处理", code="2003")


# --- detection on create and change ------------------------------------------------------------------

@flush_rule
def _remember_identity_changes(session, touched) -> None:
    ids = session.info.setdefault("xueji_detect", set())
    for obj in touched:
        if isinstance(obj, Student) and changed(obj, *IDENTITY_FIELDS):
            ids.add(obj)


def _detect_before_commit(session) -> None:
    session.flush()                          # the commit's own flush comes after this hook: run it now
    pending = session.info.pop("xueji_detect", None)
    if not pending:
        return
    ids = {obj.id for obj in pending if obj.id is not None}
    if ids:
        detect(session, student_ids=ids)


def install(session_factory) -> None:
    event.listen(session_factory, "before_commit", _detect_before_commit)
    event.listen(session_factory, "after_rollback", lambda s: s.info.pop("xueji_detect", None))


# --- handling ------------------------------------------------------------------------------------------

@service
def delete_record(session, actor, problem: Problem, reason: str, confirmed: bool) -> None:
    """删除 (人籍不一致: the student is not at this school): needs a reason and a second confirmation; the
    record is soft-deleted and stays visible to the school and the county as deleted."""
    from app.roles import ROLE_SCHOOL_REGISTRAR
    if ROLE_SCHOOL_REGISTRAR not in {r.name for r in actor.roles}:
        raise RuleError("只有学校学籍管理员可以删除问题学籍", code="forbidden", status=403)
    if not (reason or "").strip():
        raise RuleError("删除问题学籍必须填写原因", code="reason_required")
    if not confirmed:
        raise RuleError("删除问题学籍须再次确认", code="confirm_required")
    if problem.current != 1:
        raise RuleError("该问题已处理", code="not_open", status=409)
    from app.workflow import open_request
    busy = open_request(session, problem.student_id)
    if busy is not None:
        raise RuleError(f"该生有在办业务（#{busy.id}），请先撤销", code="2002")
    student = session.get(Student, problem.student_id)
    now = clock.now()
    student.deleted_at, student.delete_reason = now, reason.strip()[:200]
    for p in open_problems(session, student.id):
        p.state, p.resolution, p.current, p.resolved_at = RESOLVED, "删除", None, now


def resolve(session, problem_id: int, resolution: str, request_id: int | None = None) -> None:
    problem = session.get(Problem, problem_id)
    if problem is not None and problem.current == 1:
        problem.state, problem.resolution, problem.current = RESOLVED, resolution, None
        problem.resolved_at, problem.request_id = clock.now(), request_id or problem.request_id


def queue_count(session, scope) -> int:
    from app.scoping import apply_scope
    q = apply_scope(select(func.count()).select_from(Problem).where(Problem.current == 1), Problem, scope)
    return session.execute(q).scalar() or 0



def resolve_in_progress(session, problem_id: int, request_id: int) -> None:
    """A 变更 or 佐证 request was filed for this problem: show it as 处理中 until the request ends."""
    problem = session.get(Problem, problem_id)
    if problem is not None and problem.current == 1:
        problem.state, problem.request_id = IN_PROGRESS, request_id


def may_handle(session, actor, problem: Problem) -> bool:
    """Whether `actor` may handle this 问题学籍 now (变更, 佐证, 删除): an open problem, a record not deleted, and
    the school's registrar — the same checks `delete_record` and the filing of 变更/佐证 make."""
    from app.roles import ROLE_SCHOOL_REGISTRAR
    from app.scoping import school_in_scope, scope_of
    if actor is None or problem is None or problem.current != 1:
        return False
    if ROLE_SCHOOL_REGISTRAR not in {r.name for r in getattr(actor, "roles", ())}:
        return False
    student = session.get(Student, problem.student_id)
    return student is not None and student.deleted_at is None and \
        school_in_scope(student.school_id, scope_of(actor), session)
