"""Student rules (the foundation subset; the full national record comes with the records issue)."""
from app.errors import RuleError
from app.identity import id_number_problem, normalise, xjh_problem
from app.rules import rule
from app.scoping import effective
from models import SchoolClass, Student
from models.student import STATUSES


@rule(Student)
def identity_and_placement(student: Student, session) -> None:
    student.xjh = normalise(student.xjh)
    problem = xjh_problem(student.xjh)
    if problem:
        raise RuleError(f"学籍号 {student.xjh}：{problem}", code="invalid_xjh")
    if student.id_type == "1":
        student.id_number = normalise(student.id_number)
        problem = id_number_problem(student.id_number)
        if problem:
            raise RuleError(f"身份证件号 {student.id_number}：{problem}", code="invalid_id")
    if student.status not in STATUSES:
        raise RuleError(f"学籍状态“{student.status}”无效", code="invalid")
    class_id = effective(student, "school_class", "class_id")
    if class_id is not None:
        klass = session.get(SchoolClass, class_id)
        if klass is None or klass.school_id != effective(student, "school", "school_id"):
            raise RuleError("班级不属于该生所在学校", code="invalid_class")
        student.stage, student.cohort_year = klass.stage, klass.cohort_year
