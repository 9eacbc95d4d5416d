"""分班: placing students without a class into classes, by template (学籍号, 姓名, 班级) or by selection.

A file that would overfill any class is refused whole, naming each class with its size, the incoming number and
its cap; the class capacity rule (app.classes) re-checks under row locks when the placements are written.
"""
import re
from collections import Counter

from sqlalchemy import select

from app import classes as class_rules, spreadsheets
from app.errors import RuleError
from app.service import service
from app.spreadsheets import Column, Issue, Row
from models import SchoolClass, Student

COLUMNS = [Column("学籍号", kind="id", width=24), Column("姓名"), Column("班级", width=16)]
INSTRUCTIONS = ["本模板用于批量分班：每行一名学生，班级填写本校已建立的班级名称（如“3班”或“2026级3班”）。",
                "只能为尚未分班的学生分班；已分班学生调班属于关键数据变更，须另行申请。",
                "任何班级超过班额时整个文件不予导入，请调整后重新上传。"]


def _class_key(value: str) -> tuple[int | None, str]:
    """'2026级3班' → (2026, '3班'); '3班' → (None, '3班'); '3' → (None, '3班')."""
    value = value.strip()
    m = re.match(r"^(\d{4})级?\s*(.+)$", value)
    year, name = (int(m.group(1)), m.group(2).strip()) if m else (None, value)
    return year, (f"{name}班" if name.isdigit() else name)


def check_placements(session, school_id: int, rows: list[Row], issues: list[Issue]):
    """Returns (placements {student_id: class_id}, issues). Set-wise: one query for students, one for classes."""
    issues = list(issues)
    flagged = {i.row for i in issues}
    students = {s.xjh: s for s in session.scalars(select(Student).where(
        Student.school_id == school_id, Student.deleted_at.is_(None),
        Student.xjh.in_({r.values.get("学籍号") for r in rows if r.values.get("学籍号")})))}
    klasses = list(session.scalars(select(SchoolClass).where(SchoolClass.school_id == school_id)))
    placements, seen = {}, {}
    for row in rows:
        if row.number in flagged:
            continue
        n, xjh = row.number, row.values.get("学籍号")
        student = students.get(xjh)
        if student is None:
            issues.append(Issue(n, "学籍号", "unknown_xjh", f"第{n}行“学籍号”：{xjh} 不是本校学生"))
            continue
        if student.name != row.values.get("姓名"):
            issues.append(Issue(n, "姓名", "name_mismatch", f"第{n}行“姓名”：与学籍号{xjh}的姓名“{student.name}”不符"))
            continue
        if student.id in seen:
            issues.append(Issue(n, "学籍号", "duplicate_row", f"第{n}行“学籍号”：与第{seen[student.id]}行重复"))
            continue
        seen[student.id] = n
        if student.class_id is not None:
            issues.append(Issue(n, "班级", "already_placed",
                                f"第{n}行“班级”：该生已在{student.school_class.name}，调班须提交关键数据变更申请"))
            continue
        year, name = _class_key(row.values.get("班级") or "")
        match = [k for k in klasses if k.name == name and k.stage == student.stage
                 and k.cohort_year == (year or student.cohort_year)]
        if len(match) != 1:
            issues.append(Issue(n, "班级", "unknown_class",
                                f"第{n}行“班级”：本校{student.cohort_year}级没有“{row.values.get('班级')}”"))
            continue
        placements[student.id] = match[0].id
    return placements, issues


def overfilled(session, placements: dict[int, int]) -> list[str]:
    """'2026级3班：已有48人，本次分入5人，班额50人' for every class the placements would overfill."""
    out = []
    for class_id, incoming in sorted(Counter(placements.values()).items()):
        klass = session.get(SchoolClass, class_id)
        seated = class_rules.seated_count(session, class_id)
        cap = class_rules.capacity_of(session, klass)
        if seated + incoming > cap:
            out.append(f"{klass.cohort_year}级{klass.name}：已有{seated}人，本次分入{incoming}人，班额{cap}人")
    return out


@service
def place_from_file(session, actor, school_id: int, data: bytes, filename: str, dry_run: bool = False):
    """分班 by template (web upload and `xueji assign-classes`): every row checked first; with any problem, or a
    class that would overflow its 班额, nothing is placed. Returns (rows, issues, placed)."""
    _school_in_scope(session, actor, school_id)
    rows, issues = spreadsheets.read_table(data, filename, COLUMNS)
    places, issues = check_placements(session, school_id, rows, issues)
    if issues:
        return rows, issues, 0
    if dry_run:                                    # a dry run reports an overflowing class as the real run would
        _refuse_overfilled(session, places)
        return rows, issues, 0
    return rows, issues, apply_placements(session, places)


@service
def place_selected(session, actor, student_ids, class_id: int) -> int:
    """分班 of students chosen on the list into one class of their school."""
    from app.scoping import apply_scope, scope_of
    ids = {int(i) for i in student_ids}
    students = list(session.scalars(apply_scope(select(Student).where(Student.id.in_(ids)), Student,
                                                scope_of(actor))))
    klass = session.get(SchoolClass, int(class_id or 0))
    if len(students) != len(ids) or not students or klass is None or \
            any(s.school_id != klass.school_id for s in students):
        raise RuleError("学生或班级不存在或不在您的管辖范围内", code="not_found", status=404)
    return apply_placements(session, {s.id: klass.id for s in students})


def _refuse_overfilled(session, placements) -> None:
    full = overfilled(session, placements)
    if full:
        raise RuleError("以下班级将超过班额，整个文件未导入：" + "；".join(full), code="class_full")


def _school_in_scope(session, actor, school_id) -> None:
    from app.errors import OutOfScope
    from app.scoping import school_in_scope, scope_of
    if actor is not None and not school_in_scope(school_id, scope_of(actor), session):
        raise OutOfScope("学校不存在或不在您的管辖范围内")


@service
def apply_placements(session, placements: dict[int, int]) -> int:
    """Write the placements in one flush; the capacity rule locks each class and re-counts."""
    _refuse_overfilled(session, placements)
    students = {s.id: s for s in session.scalars(select(Student).where(Student.id.in_(list(placements))))}
    for sid, class_id in placements.items():
        students[sid].class_id = class_id
    return len(placements)
