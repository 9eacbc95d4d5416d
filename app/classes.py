"""班级 and 班额: grades, classes and class capacity.

Capacity is enforced inside the writing transaction: the class row is locked (SELECT … FOR UPDATE) before its
students are counted, so two registrars filling the last seat at once cannot both succeed.
"""
from collections import Counter

from sqlalchemy import func, select

from app import settings
from app.errors import OutOfScope, RuleError
from app.service import service
from app.rules import changed, flush_rule, is_new, rule
from app.scoping import effective
from models import School, SchoolClass, Student

SEATED = ("在校", "休学")          # students who hold a seat in their class
STAGES_OF = {"初中": ("初中",), "高中": ("高中",), "完全中学": ("初中", "高中"), "九年一贯制": ("初中",)}
# 年级 names (初一…高三) come from one function: app.schoolyear.grade_name (cohort, 学制, the county's school year)


def capacity_of(session, klass: SchoolClass) -> int:
    """The class's own cap (a county override) or its county's default for the stage (never 56+)."""
    if klass.capacity is not None:
        return klass.capacity
    county = session.execute(select(School.county_code).where(School.id == klass.school_id)).scalar()
    default = settings.get_int(session, f"class_cap.{klass.stage}", county)
    hard = settings.get_int(session, "class_cap.hard_limit", county)
    return min(default, hard - 1)


def seated_count(session, class_id: int, exclude_ids=()) -> int:
    q = select(func.count()).select_from(Student).where(
        Student.class_id == class_id, Student.status.in_(SEATED), Student.deleted_at.is_(None))
    if exclude_ids:
        q = q.where(Student.id.not_in(list(exclude_ids)))
    return session.execute(q).scalar() or 0


def check_room(session, class_id: int, incoming: int, exclude_ids=()) -> None:
    # lock the class row itself (a bare id select: joined eager loads cannot be FOR UPDATE on PostgreSQL)
    session.execute(select(SchoolClass.id).where(SchoolClass.id == class_id).with_for_update()).scalar_one()
    klass = session.get(SchoolClass, class_id)
    current = seated_count(session, class_id, exclude_ids)
    cap = capacity_of(session, klass)
    if current + incoming > cap:
        raise RuleError(f"{klass.cohort_year}级{klass.name}已有{current}人，班额{cap}人，"
                        f"不能再分入{incoming}人", code="class_full")


@flush_rule
def class_capacity(session, touched) -> None:
    """Every student newly placed in a class (insert or class change) needs a free seat there."""
    incoming, movers = Counter(), set()
    for obj in touched:
        if isinstance(obj, Student) and changed(obj, "class_id", "school_class", "status"):
            class_id = effective(obj, "school_class", "class_id")
            if class_id is not None and obj.status in SEATED and obj.deleted_at is None:
                incoming[class_id] += 1
                if obj.id is not None:
                    movers.add(obj.id)
    for class_id in sorted(incoming):         # fixed lock order: no deadlock between two batches
        check_room(session, class_id, incoming[class_id], movers)


@rule(SchoolClass)
def class_fields(klass: SchoolClass, session) -> None:
    if klass.stage not in ("初中", "高中"):
        raise RuleError("学段只能是初中或高中", code="invalid")
    if klass.capacity is not None and not (1 <= klass.capacity <= 100):
        raise RuleError("班额应在1到100之间", code="invalid")
    if changed(klass, "capacity") and (klass.capacity is not None or not is_new(klass)):
        from app.scoping import current_scope
        scope = current_scope()
        if scope.kind == "school":
            raise RuleError("班额由区县教育局设置，学校不能修改", code="forbidden", status=403)


@service
def add_grade(session, actor, school_id: int, stage: str, cohort_year: int, classes: int) -> list[SchoolClass]:
    """新增年级: the entry grade's classes in one step (numbers continue after existing ones; spares welcome)."""
    from app.scoping import school_in_scope, scope_of
    if not school_in_scope(school_id, scope_of(actor), session):
        raise OutOfScope("学校不存在或不在您的管辖范围内")
    if not 1 <= classes <= 40:
        raise RuleError("班级数应在1到40之间", code="invalid")
    school = session.get(School, school_id)
    if stage not in STAGES_OF.get(school.school_type, ()):
        raise RuleError(f"{school.school_type}学校不能设置{stage}年级", code="invalid")
    last = session.execute(select(func.max(SchoolClass.class_no)).where(
        SchoolClass.school_id == school_id, SchoolClass.stage == stage,
        SchoolClass.cohort_year == cohort_year)).scalar() or 0
    made = [SchoolClass(school_id=school_id, stage=stage, cohort_year=cohort_year, class_no=no, name=f"{no}班")
            for no in range(last + 1, last + 1 + classes)]
    session.add_all(made)
    session.flush()
    return made
