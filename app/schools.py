"""School rules: a school's city and province follow from its county (kept denormalised for scoping)."""
from app.errors import RuleError
from app.rules import rule
from app.scoping import effective
from models import Region, School


def region_chain(county_code: str) -> tuple[str, str]:
    """(city_code, province_code) of a GB/T 2260 county code."""
    return county_code[:4] + "00", county_code[:2] + "0000"


@rule(School)
def place_in_region(school: School, session) -> None:
    code = effective(school, "county", "county_code")
    county = session.query(Region).filter_by(code=code).one_or_none()
    if county is None or county.level != "county":
        raise RuleError(f"所属区县 {code} 不是已登记的区县", code="invalid_region")
    school.county_code = code
    school.city_code, school.province_code = region_chain(code)
    if not (school.code or "").isdigit() or len(school.code) != 10:
        raise RuleError("学校标识码应为10位数字", code="invalid")


@rule(School)
def schooling_confirmed(school: School, session) -> None:
    """学制 decides the graduating grade (app.schoolyear): changing it on a school that has students graduates them
    early or strands them, so it needs an explicit confirmation — `school.confirm_schooling = True`, set by the
    edit form's checkbox and by the REST API's `?confirm_schooling=1` — on every path alike."""
    from sqlalchemy import select
    from app.rules import changed, is_new
    from models import Student
    if is_new(school) or not changed(school, "schooling") or getattr(school, "confirm_schooling", False):
        return
    with session.no_autoflush:
        has_students = session.execute(select(Student.id).where(Student.school_id == school.id).limit(1)).first()
    if has_students:
        raise RuleError("该校已有学生，修改学制会影响毕业年级。请确认后再保存（勾选“确认修改学制”）。",
                        code="confirm_required")
