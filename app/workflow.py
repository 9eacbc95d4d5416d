"""The approval engine: one for every request kind (关键数据变更, 问题学籍佐证, later 学籍异动, 转学 …).

A kind says who files it, which chain it follows, what evidence it needs, how it is validated and what it does
when finally approved. Chains are data (wf_chain / wf_chain_step). The engine guarantees:
- the filer never decides its own request; each step is decided by its party's role in its party's scope;
- one transition per step: a step is claimed with a conditional UPDATE on (id, version, state, step), so two
  reviewers (or a double click) produce exactly one decision;
- the effect is applied in the same transaction as the final approval, after the kind re-validates;
- 在办业务: a student has at most one open request of a locking kind.
"""
import json
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload

from app import clock, settings
from app.errors import OutOfScope, RuleError
from app.roles import (ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER, ROLE_SCHOOL_REGISTRAR)
from app.scoping import apply_scope, school_in_scope, scope_of, system_write
from app.service import service
from app.students import applying_request
from app.workdays import add_working_days
from models import School, Student
from models.requests import (APPROVED, CLEARED, OPEN_STATES, PENDING, REJECTED, RETURNED, WITHDRAWN, Chain,
                             ChainStep,
                             Evidence, Request, RequestStep)

APPROVE, REJECT, RETURN = "通过", "不通过", "退回修改"
DECISIONS = (APPROVE, REJECT, RETURN)


@dataclass
class Kind:
    code: str
    title: str
    chain: str
    validate: Callable                       # (session, student, payload) -> None, raises RuleError
    apply: Callable                          # (session, request, payload) -> None
    describe: Callable                       # (session, student, payload) -> str (the request's summary)
    filer_role: str = ROLE_SCHOOL_REGISTRAR
    min_evidence: int = 1
    locks_student: bool = True               # 在办业务: one open request of a locking kind per student
    final_check: Callable | None = None      # extra check at final approval only
    between_schools: bool = False            # filed by another school about this student (转学): the student's
                                             # school becomes the counterpart
    chain_for: Callable | None = None        # (session, student, filing school id) -> chain code, when it varies
    on_end: Callable | None = None           # (session, request, payload) when it ends unapproved (撤销, 清理)
    validate_knows_request: bool = False     # validate(…, request=) gets the request being decided or resubmitted
                                             # (a duplicate check must not count the request itself)

    def check(self, session, student, payload, request=None) -> None:
        """Run `validate`; the request itself (None at filing) goes to a validate that asks for it."""
        if self.validate_knows_request:
            self.validate(session, student, payload, request=request)
        else:
            self.validate(session, student, payload)

    def chain_code(self, session, student, school_id) -> str:
        return self.chain_for(session, student, school_id) if self.chain_for else self.chain


KINDS: dict[str, Kind] = {}

# Default chains, shipped as data (`xueji init` inserts the missing ones; the superadmin may edit them).
DEFAULT_CHAINS = {
    "key_change": ("关键数据变更", [("学校审核", "school", ROLE_SCHOOL_LEADER),
                                    ("区县教育局审核", "bureau", ROLE_BUREAU_REVIEWER)]),
    "problem_proof": ("问题学籍佐证", [("学校审核", "school", ROLE_SCHOOL_LEADER),
                                       ("区县教育局审核", "bureau", ROLE_BUREAU_REVIEWER)]),
    "status_change": ("学籍异动", [("学校审核", "school", ROLE_SCHOOL_LEADER),
                                   ("区县教育局审核", "bureau", ROLE_BUREAU_REVIEWER)]),
    "quota_change": ("招生计划数变更申请", [("学校审核", "school", ROLE_SCHOOL_LEADER),
                                           ("区县教育局审核", "bureau", ROLE_BUREAU_REVIEWER)]),
    "admission_batch": ("录取名单审核", [("区县教育局审核", "bureau", ROLE_BUREAU_REVIEWER)]),
    "graduation": ("高中毕业审核", [("区县教育局审核", "bureau", ROLE_BUREAU_REVIEWER)]),
    "graduate_move": ("毕业后跨省就学", [("接收学校审核", "school", ROLE_SCHOOL_LEADER),
                                         ("接收地教育局审核", "bureau", ROLE_BUREAU_REVIEWER),
                                         ("毕业学校所在地教育局审核", "counterpart_bureau", ROLE_BUREAU_REVIEWER)]),
    # 跨省转学 between two installations (app.exchange): each side's part of the chain
    "transfer_in": ("跨省转入", [("转入校审核", "school", ROLE_SCHOOL_LEADER),
                                 ("转入地教育局审核", "bureau", ROLE_BUREAU_REVIEWER),
                                 ("转入省教育厅审核", "province", ROLE_BUREAU_REVIEWER)]),
    "transfer_out": ("跨省转出", [("转出校审核", "school", ROLE_SCHOOL_LEADER),
                                  ("转出地教育局审核", "bureau", ROLE_BUREAU_REVIEWER),
                                  ("转出省教育厅审核", "province", ROLE_BUREAU_REVIEWER)]),
    # 转学, DOMAIN §4.2: same county; other county (same province)
    "transfer_county": ("转学（县内）", [("转入校审核", "school", ROLE_SCHOOL_LEADER),
                                         ("转出校审核", "counterpart_school", ROLE_SCHOOL_LEADER),
                                         ("区县教育局审核", "bureau", ROLE_BUREAU_REVIEWER)]),
    "transfer_other_county": ("转学（跨县）", [("转入校审核", "school", ROLE_SCHOOL_LEADER),
                                               ("转入地教育局审核", "bureau", ROLE_BUREAU_REVIEWER),
                                               ("转出校审核", "counterpart_school", ROLE_SCHOOL_LEADER),
                                               ("转出地教育局审核", "counterpart_bureau", ROLE_BUREAU_REVIEWER)]),
}


def register(kind: Kind) -> Kind:
    KINDS[kind.code] = kind
    return kind


def sync_chains(session) -> None:
    have = set(session.scalars(select(Chain.code)))
    for code, (name, steps) in DEFAULT_CHAINS.items():
        if code in have:
            continue
        session.add(Chain(code=code, name=name, steps=[
            ChainStep(seq=i, name=n, party=p, role=r, due_days=10) for i, (n, p, r) in enumerate(steps, 1)]))
    session.flush()


def payload_of(req: Request) -> dict:
    return json.loads(req.payload or "{}")


def steps_of(session, req: Request) -> list[ChainStep]:
    return list(session.scalars(select(ChainStep).where(ChainStep.chain_code == req.chain_code)
                                .order_by(ChainStep.seq)))


def _due(session, step: ChainStep, county: str | None):
    days = step.due_days or settings.get_int(session, "workflow.due_days", county)
    return add_working_days(clock.today(), days)


def _county(session, school_id):
    return session.execute(select(School.county_code).where(School.id == school_id)).scalar()


def open_request(session, student_id: int, exclude_id=None) -> Request | None:
    """The student's open request of a locking kind (在办业务), if any."""
    locking = [k.code for k in KINDS.values() if k.locks_student]
    q = select(Request).where(Request.student_id == student_id, Request.state.in_(OPEN_STATES),
                              Request.kind.in_(locking))
    if exclude_id:
        q = q.where(Request.id != exclude_id)
    return session.scalars(q.limit(1)).first()


def _roles(user) -> set[str]:
    return {r.name for r in user.roles}


def _history(session, req, seq, step_name, actor, decision, comment=None, role=None):
    session.add(RequestStep(request_id=req.id, seq=seq, step_name=step_name, actor_id=getattr(actor, "id", None),
                            actor_name=getattr(actor, "username", "system"), role=role, decision=decision,
                            comment=comment, at=clock.now()))


def _load_scoped(session, actor, request_id) -> Request:
    q = apply_scope(select(Request).where(Request.id == request_id), Request, scope_of(actor))
    req = session.scalars(q).first()
    if req is None:
        raise OutOfScope("申请不存在或不在您的管辖范围内")
    return req


def _check_filer(session, actor, kind: Kind, school_id: int) -> None:
    if kind.filer_role not in _roles(actor):
        raise RuleError(f"只有{kind.filer_role}可以提交{kind.title}申请", code="forbidden", status=403)
    if not school_in_scope(school_id, scope_of(actor), session):
        raise OutOfScope()


def may_file(session, actor, kind_code: str, student: Student | None = None) -> bool:
    """Whether `actor` may file a request of this kind at all (no student) or for this student now: the filer
    check `file` makes (the kind's filer role, the student's school in scope) and a record that is not deleted.
    Pages ask it before they show a filing button; the filing routes answer 403 when it says no."""
    kind = KINDS[kind_code]
    if actor is None or kind.filer_role not in {r.name for r in getattr(actor, "roles", ())}:
        return False
    if student is None:
        return True
    try:
        _check_filer(session, actor, kind, student.school_id)
    except RuleError:
        return False
    return student.deleted_at is None


def _attach_evidence(session, actor, req: Request, evidence_ids, kind: Kind, uploads=()) -> None:
    """Link evidence uploaded earlier (REST: POST /api/v1/evidence/upload → ids) and store the files that came with
    the filing itself (web forms: (stream, filename) pairs) — only now, after the request has passed validation,
    so a refused request keeps no file."""
    from app import evidence
    ids = [int(i) for i in evidence_ids or ()]
    if any(name for _, name in uploads):
        county = _county(session, req.school_id)
        ids += [evidence.store(session, stream, name, req.school_id, actor, req.student_id, county).id
                for stream, name in uploads if name]
    if ids:
        rows = list(session.scalars(select(Evidence).where(Evidence.id.in_(ids))))
        if len(rows) != len(set(ids)) or any(e.school_id != req.school_id or
                                             (e.request_id not in (None, req.id)) for e in rows):
            raise RuleError("证明材料不存在或不属于本校", code="invalid_evidence")
        for e in rows:
            e.request_id, e.student_id = req.id, req.student_id
    attached = session.scalars(select(Evidence.id).where(Evidence.request_id == req.id)).all() if req.id else []
    if len(set(attached) | set(ids)) < kind.min_evidence:
        raise RuleError(f"{kind.title}须上传至少{kind.min_evidence}份证明材料（JPG/PNG/PDF）",
                        code="evidence_required")


@service
def file(session, actor, kind_code: str, student: Student | None, payload: dict, evidence_ids=(), comment=None,
         school_id: int | None = None, uploads=()) -> Request:
    """提交: validate, lock the student (在办业务), open the first step. A service that files as part of its own
    use case (an admission list, 毕业) joins its transaction. Requests about a school rather than a student
    (招生计划数变更, an admission batch) pass student=None and the school's id."""
    kind = KINDS[kind_code]
    counterpart = None
    if kind.between_schools:                 # the filer's school files; the student is the other school's
        counterpart = student.school_id
        if school_id is None or school_id == counterpart:
            raise RuleError("转入学校不能是学生目前所在的学校", code="invalid")
    else:
        school_id = student.school_id if student is not None else school_id
    _check_filer(session, actor, kind, school_id)
    if kind.locks_student and student is not None:
        busy = open_request(session, student.id)
        if busy is not None:
            raise RuleError(f"2002：该生有在办业务（#{busy.id} {busy.summary}，{busy.state}），"
                            "办结或撤销后才能提交新的申请", code="2002")
    kind.check(session, student, payload)
    chain = kind.chain_code(session, student, school_id)
    steps = steps_of(session, Request(chain_code=chain))
    req = Request(kind=kind.code, subtype=(payload.get("type") or None) if isinstance(payload, dict) else None,
                  chain_code=chain, student_id=getattr(student, "id", None),
                  school_id=school_id, counterpart_school_id=counterpart, state=PENDING, step_seq=steps[0].seq,
                  step_due_on=_due(session, steps[0], _county(session, school_id)),
                  payload=json.dumps(payload, ensure_ascii=False, default=str),
                  summary=kind.describe(session, student, payload)[:300], filed_by_id=actor.id,
                  filed_at=clock.now(), version=1,
                  student_lock=student.id if kind.locks_student and student is not None else None)
    try:
        with session.begin_nested():          # the database holds the lock: a simultaneous filer loses here
            session.add(req)
            session.flush()
    except IntegrityError:
        raise RuleError("2002：该生刚刚已有其他在办业务提交，办结或撤销后才能提交新的申请", code="2002") from None
    _attach_evidence(session, actor, req, evidence_ids, kind, uploads)
    _history(session, req, 0, "提交", actor, "提交", comment, role=kind.filer_role)
    session.flush()
    return req


def may_decide(session, actor, req: Request, step: ChainStep) -> str | None:
    """Why `actor` may not decide this step (None when it may)."""
    if actor.id == req.filed_by_id:
        return "不能审核自己提交的申请"
    if step.role not in _roles(actor):
        return f"此步骤（{step.name}）须由{step.role}审核"
    scope = scope_of(actor)
    target = req.counterpart_school_id if step.party.startswith("counterpart") else req.school_id
    if step.party in ("school", "counterpart_school"):
        if scope.kind != "school" or scope.school_id != target:
            return f"此步骤（{step.name}）须由相应学校办理"
    elif step.party in ("bureau", "counterpart_bureau", "city", "province"):
        level = {"bureau": "county", "counterpart_bureau": "county", "city": "city", "province": "province"}
        if scope.kind != "region" or scope.region_level != level[step.party] or \
                not school_in_scope(target, scope, session):
            return f"此步骤（{step.name}）须由相应教育行政部门办理"
    return None


def _step_number(value) -> int | None:
    """The step a form or API client says it saw: a whole number, or nothing (clients that do not send it)."""
    if value is None or value == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or not 0 < number < 1000:
        raise RuleError("审核环节（step）须为正整数", code="invalid")
    return number


@service
def decide(session, actor, request_id: int, decision: str, comment: str | None = None, seen_step=None) -> Request:
    """通过 / 不通过 / 退回修改 at the current step. Commits; raises RuleError (nothing written) when refused.
    ``seen_step``: the step the reviewer was shown (the web form and API clients send it). When the request has
    moved on since, the decision is refused as handled by someone else instead of being applied to a step the
    reviewer never saw (someone holding both roles would otherwise pass the next step too)."""
    seen_step = _step_number(seen_step)
    if decision not in DECISIONS:
        raise RuleError("审核意见只能是通过、不通过或退回修改", code="invalid")
    comment = (comment or "").strip() or None
    if decision in (REJECT, RETURN) and not comment:
        raise RuleError(f"选择“{decision}”时必须填写意见", code="comment_required")
    req = _load_scoped(session, actor, request_id)
    if req.state != PENDING:
        raise RuleError(f"该申请当前状态为“{req.state}”，不能审核", code="not_pending", status=409)
    if seen_step is not None and seen_step != req.step_seq:
        raise RuleError("该申请刚刚已被他人处理，请刷新后查看", code="conflict", status=409)
    steps = steps_of(session, req)
    step = next(s for s in steps if s.seq == req.step_seq)
    why = may_decide(session, actor, req, step)
    if why:
        raise RuleError(why, code="forbidden", status=403)
    final = decision == APPROVE and step.seq == steps[-1].seq
    values = {"version": req.version + 1}
    if decision == APPROVE and not final:
        nxt = next(s for s in steps if s.seq > step.seq)
        values.update(step_seq=nxt.seq, step_due_on=_due(session, nxt, _county(session, req.school_id)))
    elif final:
        values.update(state=APPROVED, closed_at=clock.now(), step_due_on=None, student_lock=None)
    else:
        values.update(state=REJECTED if decision == REJECT else RETURNED, step_due_on=None)
    claimed = session.execute(
        update(Request).where(Request.id == req.id, Request.version == req.version, Request.state == PENDING,
                              Request.step_seq == step.seq).values(**values)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise RuleError("该申请刚刚已被他人处理，请刷新后查看", code="conflict", status=409)
    session.expire(req)
    _history(session, req, step.seq, step.name, actor, decision, comment, role=step.role)
    if final:
        kind = KINDS[req.kind]
        payload = payload_of(req)
        student = session.get(Student, req.student_id) if req.student_id else None
        with system_write(session), applying_request(session, f"{kind.title} #{req.id}"):
            kind.check(session, student, payload, request=req)
            if kind.final_check:
                kind.final_check(session, req, payload)
            kind.apply(session, req, payload)
            session.flush()
    return req


def acts_for_filer(session, actor, req: Request) -> bool:
    """Who acts for the filer (撤销, 重新提交): the filing school's registrar; for a kind a bureau files on a
    school's behalf (跨省转出, imported by the county), also an account of that filer role whose region holds
    the school. The request page shows the buttons by the same rule."""
    roles, scope = _roles(actor), scope_of(actor)
    if ROLE_SCHOOL_REGISTRAR in roles and scope.school_id == req.school_id:
        return True
    kind = KINDS.get(req.kind)
    return kind is not None and kind.filer_role != ROLE_SCHOOL_REGISTRAR and kind.filer_role in roles and \
        scope.kind == "region" and school_in_scope(req.school_id, scope, session)


def _filer_side(session, actor, req: Request) -> None:
    if not acts_for_filer(session, actor, req):
        raise RuleError("只有提交申请的学校学籍管理员可以办理", code="forbidden", status=403)


@service
def withdraw(session, actor, request_id: int, comment: str | None = None) -> Request:
    """撤销: the filing school takes its request back, at any time before the final step is reached."""
    req = _load_scoped(session, actor, request_id)
    _filer_side(session, actor, req)
    steps = steps_of(session, req)
    if req.state not in OPEN_STATES or (req.state == PENDING and req.step_seq == steps[-1].seq):
        raise RuleError("申请已到最后审核环节或已办结，不能撤销", code="too_late", status=409)
    claimed = session.execute(update(Request).where(Request.id == req.id, Request.version == req.version)
                              .values(state=WITHDRAWN, version=req.version + 1, closed_at=clock.now(), student_lock=None,
                                      step_due_on=None).execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise RuleError("该申请刚刚已被他人处理，请刷新后查看", code="conflict", status=409)
    session.expire(req)
    _history(session, req, req.step_seq, "撤销", actor, "撤销", comment, role=ROLE_SCHOOL_REGISTRAR)
    _on_end(session, req)
    return req


@service
def resubmit(session, actor, request_id: int, payload: dict | None = None, evidence_ids=(),
             comment: str | None = None, uploads=()) -> Request:
    """重新提交 after 退回修改 or 不通过: revised data and evidence, back to the first step."""
    req = _load_scoped(session, actor, request_id)
    _filer_side(session, actor, req)
    if req.state not in (RETURNED, REJECTED):
        raise RuleError("只有被退回或不通过的申请可以重新提交", code="not_returned", status=409)
    kind = KINDS[req.kind]
    student = session.get(Student, req.student_id) if req.student_id else None
    busy = (open_request(session, req.student_id, exclude_id=req.id)
            if kind.locks_student and req.student_id else None)
    if busy is not None:
        raise RuleError(f"该生有其他在办业务（#{busy.id}），不能重新提交", code="2002")
    payload = payload if payload is not None else payload_of(req)
    kind.check(session, student, payload, request=req)
    _attach_evidence(session, actor, req, evidence_ids, kind, uploads)
    steps = steps_of(session, req)
    claimed = session.execute(update(Request).where(Request.id == req.id, Request.version == req.version)
                              .values(state=PENDING, step_seq=steps[0].seq, version=req.version + 1,
                                      payload=json.dumps(payload, ensure_ascii=False, default=str),
                                      summary=kind.describe(session, student, payload)[:300],
                                      step_due_on=_due(session, steps[0], _county(session, req.school_id)))
                              .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise RuleError("该申请刚刚已被他人处理，请刷新后查看", code="conflict", status=409)
    session.expire(req)
    _history(session, req, 0, "重新提交", actor, "重新提交", comment, role=ROLE_SCHOOL_REGISTRAR)
    return req


@service
def clear(session, actor, request_ids, reason: str) -> int:
    """在办业务清理: a bureau ends open requests of its schools in bulk (e.g. graduating grades on 7/15). Nothing
    of a request is applied before its final approval, so ending it rolls the student back to plain 在校 and
    releases the lock; the reason is kept in each request's history."""
    from app.roles import BUREAU_ROLES
    if not set(BUREAU_ROLES) & _roles(actor) or scope_of(actor).kind != "region":
        raise RuleError("只有区县教育局可以清理在办业务", code="forbidden", status=403)
    if not (reason or "").strip():
        raise RuleError("请填写清理原因", code="reason_required")
    ids = [int(i) for i in request_ids]
    q = apply_scope(select(Request).where(Request.id.in_(ids), Request.state.in_(OPEN_STATES)), Request,
                    scope_of(actor))
    reqs = list(session.scalars(q))
    if len(reqs) != len(set(ids)):
        raise OutOfScope("部分申请不存在、不在您的管辖范围内或已办结")
    now = clock.now()
    for req in reqs:
        req.state, req.closed_at, req.step_due_on, req.version = CLEARED, now, None, req.version + 1
        req.student_lock = None
        _history(session, req, req.step_seq, "在办业务清理", actor, "清理", reason.strip()[:500])
        _on_end(session, req)
    return len(reqs)


def _on_end(session, req: Request) -> None:
    """A request ended without approval: a 问题学籍 it was handling is open again; the kind's own hook undoes what
    filing reserved (an admission list's places)."""
    kind = KINDS.get(req.kind)
    if kind is not None and kind.on_end is not None:
        kind.on_end(session, req, payload_of(req))
    problem_id = payload_of(req).get("problem_id")
    if problem_id:
        from models.requests import Problem
        problem = session.get(Problem, int(problem_id))
        if problem is not None and problem.current == 1:
            problem.state = "待处理"


# The 待办 lists show number, summary, state, school and due date: a request's other eager relationships (the
# student's full record, the filer, history, evidence) load only if something asks for them.
_LIST_ONLY = (lazyload(Request.student), lazyload(Request.filed_by), lazyload(Request.history),
              lazyload(Request.evidence))


def returned_to(session, actor) -> list[Request]:
    """The filer's requests that came back (退回修改 / 不通过): the 待办 list's second block."""
    scope = scope_of(actor)
    if scope.kind != "school" or ROLE_SCHOOL_REGISTRAR not in _roles(actor):
        return []
    return list(session.scalars(select(Request).where(Request.school_id == scope.school_id,
                                                      Request.state.in_((RETURNED, REJECTED)))
                                .options(*_LIST_ONLY).order_by(Request.id.desc()).limit(200)))


def waiting_for(session, actor) -> list[Request]:
    """Requests whose current step this user may decide (the 待办 list's first block), overdue first."""
    # Only steps of a role the user holds: filtered in SQL, so the limit counts requests this user may decide
    # (requests waiting for other roles would otherwise be loaded and dropped, and could fill the 500).
    at_my_role = select(ChainStep.id).where(ChainStep.chain_code == Request.chain_code,
                                            ChainStep.seq == Request.step_seq,
                                            ChainStep.role.in_(_roles(actor))).exists()
    q = apply_scope(select(Request).where(Request.state == PENDING, at_my_role), Request, scope_of(actor))
    q = q.options(*_LIST_ONLY)
    reqs = list(session.scalars(q.order_by(Request.step_due_on, Request.id).limit(500)))
    chains = {}
    out = []
    for req in reqs:
        if req.chain_code not in chains:         # one query per chain (setdefault would query per request)
            chains[req.chain_code] = steps_of(session, req)
        steps = chains[req.chain_code]
        step = next((s for s in steps if s.seq == req.step_seq), None)
        if step is not None and may_decide(session, actor, req, step) is None:
            out.append(req)
    return out

