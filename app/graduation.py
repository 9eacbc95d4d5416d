"""毕业 (DOMAIN.md §7): the school picks its graduating grade, sees who graduates and who is blocked (在办业务,
问题学籍, a status other than 在校), and confirms. 义务教育 (初中) graduates at once; 高中 needs the county's
approval (request kind "graduation"), and may also record 结业 or 肄业. Certificate numbers follow the setting
graduation.cert_pattern. Graduation is done only inside the season window (setting calendar.graduation_window), in
`graduate` itself, so the web page and any other caller are refused alike. The county can roll graduates back
(毕业生回退).

Both write like every other business that changes a status: through the ORM and the record rules at flush, so the
enrollment history closes the 在校 span and opens one of the real outcome (毕业, 结业 or 肄业) or, on 回退, a new
在校 span, and the audit log names the real actor (the school's registrar, or the county reviewer who approved).
The grade is read in one query with its spans and written in one flush."""
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import clock, schoolyear, settings
from app.errors import OutOfScope, RuleError
from app.scoping import school_in_scope, scope_of, system_write
from app.service import service
from app.statuschange import in_window
from app.students import applying_request
from app.workflow import Kind, register
from models import School, SchoolClass, Student
from models.requests import OPEN_STATES, Problem, Request

OUTCOMES = ("毕业", "结业", "肄业")          # 结业 / 肄业 for 高中 only


def _md(text: str) -> str:
    month, day = text.split("-")
    return f"{int(month)}月{int(day)}日"


def window_of(session, county_code) -> tuple[str, bool]:
    """The graduation season as words (“6月1日至7月30日”) and whether today is inside it."""
    window = settings.get(session, "calendar.graduation_window", county_code)
    start, end = window.split("..")
    return f"{_md(start)}至{_md(end)}", in_window(window, clock.today())


def check_window(session, county_code) -> None:
    words, open_ = window_of(session, county_code)
    if not open_:
        raise RuleError(f"毕业只能在每年{words}办理（参数 calendar.graduation_window），今天（{clock.today():%Y-%m-%d}）"
                        "不在此期间", code="calendar_closed")


def preview(session, school_id: int, stage: str) -> dict:
    """The graduating grade of a school: eligible students and the blocked ones with their reasons, and the same
    grouped by class (blocked first in each class) with counts. Three queries whatever the grade's size: the
    students with their class, their open requests, their open problems."""
    school = session.get(School, school_id)
    year = schoolyear.current(session, school.county_code)
    cohort = schoolyear.graduating_cohort(year, stage, school.schooling)
    rows = session.execute(select(Student.id, Student.name, Student.xjh, Student.status, Student.class_id,
                                  SchoolClass.name.label("class_name"), SchoolClass.class_no)
                           .outerjoin(SchoolClass, SchoolClass.id == Student.class_id).where(
        Student.school_id == school_id, Student.stage == stage, Student.cohort_year == cohort,
        Student.deleted_at.is_(None), Student.status.not_in(OUTCOMES))
        .order_by(SchoolClass.class_no, Student.id)).all()
    ids = [r.id for r in rows]
    busy = set(session.scalars(select(Request.student_id).where(Request.student_id.in_(ids),
                                                                Request.state.in_(OPEN_STATES)))) if ids else set()
    flagged = set(session.scalars(select(Problem.student_id).where(Problem.student_id.in_(ids),
                                                                   Problem.current == 1))) if ids else set()
    eligible, blocked, classes = [], [], {}
    for r in rows:
        reasons = ([f"学籍状态为{r.status}"] if r.status != "在校" else []) + \
            (["有在办业务"] if r.id in busy else []) + (["问题学籍未处理"] if r.id in flagged else [])
        entry = (r, "、".join(reasons))
        (blocked if reasons else eligible).append(entry)
        group = classes.setdefault(r.class_id, {"name": r.class_name or "未分班", "eligible": [], "blocked": []})
        group["blocked" if reasons else "eligible"].append(entry)
    window, window_open = window_of(session, school.county_code)
    blocked_reasons = list(dict.fromkeys(x for _, why in blocked for x in why.split("、")))
    return {"school": school, "stage": stage, "year": year, "cohort": cohort, "eligible": eligible,
            "blocked": blocked, "classes": list(classes.values()),
            "class_count": sum(1 for c in classes.values() if c["eligible"]), "blocked_reasons": blocked_reasons,
            "window": window, "window_open": window_open}


def confirm_text(plan: dict) -> str:
    """What the confirmation asks, with the numbers: “将为3个班共126名学生办理毕业，2名学生因有在办业务不能毕业”."""
    n, classes = len(plan["eligible"]), plan["class_count"]
    text = (f"将为{classes}个班共{n}名学生提交毕业申请（须经区县教育局审核）" if plan["stage"] == "高中"
            else f"将为{classes}个班共{n}名学生办理毕业")
    if plan["blocked"]:
        text += f"，{len(plan['blocked'])}名学生因{'、'.join(plan['blocked_reasons'])}不能毕业"
    return text + "。确定吗？"


def _outcomes(stage: str, student_ids, outcomes: dict | None) -> dict[int, str]:
    outcomes = {int(k): v for k, v in (outcomes or {}).items()}
    result = {}
    for sid in student_ids:
        outcome = outcomes.get(sid, "毕业")
        if outcome not in OUTCOMES or (outcome != "毕业" and stage != "高中"):
            raise RuleError("结业、肄业只适用于高中", code="invalid")
        result[sid] = outcome
    return result


@service
def graduate(session, actor, school_id: int, stage: str, outcomes: dict | None = None):
    """Confirm the preview (the school's registrar; actor None: the installation's own scripts). 初中: applied
    now. 高中: files the county approval request. Returns (n, request)."""
    from app import workflow
    from app.roles import ROLE_SCHOOL_REGISTRAR
    if actor is not None:
        scope = scope_of(actor)
        if scope.kind != "school" or scope.school_id != school_id:
            raise OutOfScope("学校不存在或不在您的管辖范围内")
        if ROLE_SCHOOL_REGISTRAR not in {r.name for r in actor.roles}:
            raise RuleError("毕业由学校学籍管理员办理", code="forbidden", status=403)
    check_window(session, session.get(School, school_id).county_code)
    plan = preview(session, school_id, stage)
    ids = [r.id for r, _ in plan["eligible"]]
    if not ids:
        raise RuleError("没有可以办理毕业的学生", code="nothing")
    chosen = _outcomes(stage, ids, outcomes)
    if stage == "高中":
        req = workflow.file(session, actor, "graduation", None,
                            {"stage": stage, "cohort": plan["cohort"], "outcomes": chosen, "rows": len(ids)},
                            (), None, school_id=school_id)
        return len(ids), req
    return apply(session, school_id, chosen, "毕业（义务教育）"), None


def _cert_numbers(session, school: School, ids, year: int) -> dict[int, str]:
    pattern = settings.get(session, "graduation.cert_pattern", school.county_code)
    start = session.execute(select(Student.cert_no).where(Student.school_id == school.id,
                                                          Student.cert_no.like(f"{school.code}{year}%"))).all()
    serial = len(start)
    out = {}
    for sid in sorted(ids):
        serial += 1
        out[sid] = pattern.format(school_code=school.code, year=year, serial=serial)
    return out


def apply(session, school_id: int, outcomes: dict[int, str], reason: str) -> int:
    """Graduate the chosen students still 在校 (a second run changes nothing): their rows are locked and read with
    their spans in one query, then written in one flush through the record rules."""
    school = session.get(School, school_id)
    today = clock.today()
    students = list(session.scalars(select(Student).where(Student.id.in_(list(outcomes)), Student.status == "在校")
                                    .options(selectinload(Student.enrollments)).order_by(Student.id)
                                    .with_for_update(of=Student)))
    if not students:
        return 0
    certs = _cert_numbers(session, school, [s.id for s in students if outcomes[s.id] == "毕业"], today.year)
    with system_write(session), applying_request(session, reason):
        for student in students:
            student.status, student.graduated_on = outcomes[student.id], today
            student.cert_no = certs.get(student.id)
        session.flush()
    return len(students)


@service
def rollback(session, actor, student_ids, reason: str) -> int:
    """毕业生回退 (county): graduates back to 在校 in their last class; certificate numbers withdrawn. The history
    keeps the graduation and opens a new 在校 span with the reason."""
    from app.roles import BUREAU_ROLES
    if not set(BUREAU_ROLES) & {r.name for r in actor.roles}:
        raise RuleError("毕业生回退由区县教育局办理", code="forbidden", status=403)
    ids = {int(i) for i in student_ids}
    if not ids:
        raise RuleError("请选择要回退的毕业生", code="required")
    if not (reason or "").strip():
        raise RuleError("请填写回退原因", code="reason_required")
    students = list(session.scalars(select(Student).where(
        Student.id.in_(ids), Student.status.in_(OUTCOMES), Student.graduated_on.is_not(None))
        .options(selectinload(Student.enrollments)).order_by(Student.id).with_for_update(of=Student)))
    scope = scope_of(actor)
    if len(students) != len(ids) or not all(school_in_scope(s.school_id, scope, session) for s in students):
        raise RuleError("部分学生不存在、不在您的管辖范围内或未毕业", code="not_found", status=404)
    with system_write(session), applying_request(session, f"毕业生回退：{reason.strip()[:150]}"):
        for student in students:
            student.status, student.graduated_on, student.cert_no = "在校", None, None
        session.flush()
    return len(students)


def _validate(session, student, payload) -> None:
    if not payload.get("outcomes"):
        raise RuleError("毕业名单为空", code="invalid")


def _apply(session, req, payload) -> None:
    n = apply(session, req.school_id, {int(k): v for k, v in payload["outcomes"].items()}, f"毕业 #{req.id}")
    req.summary = (req.summary + f"（已办理{n}人）")[:300]


def _in_season(session, req, payload) -> None:
    """At the county's approval too: a request filed in June and approved in August must not graduate anyone."""
    check_window(session, session.get(School, req.school_id).county_code)


register(Kind(code="graduation", title="高中毕业审核", chain="graduation", validate=_validate, apply=_apply,
              final_check=_in_season,
              describe=lambda s, st, p: f"高中毕业（{p.get('cohort')}级，{p.get('rows')}人）", min_evidence=0,
              locks_student=False))
