"""学年 per county. Grades are not stored: a student's grade is their cohort (入学年份) read against the county's
current school year. 升级 (promotion) therefore moves every non-graduating student of a county at once by
advancing one setting (calendar.school_year) — no student row is rewritten, so it is idempotent and instant
however large the county. Without the setting, the year follows the calendar (a new year from August)."""
from sqlalchemy import func, select

from app import clock, settings
from app.errors import RuleError
from models import School, Setting, Student

KEY = "calendar.school_year"


def by_date(today=None) -> int:
    today = today or clock.today()
    return today.year if today.month >= 8 else today.year - 1


def current(session, county_code: str | None) -> int:
    value = settings.get(session, KEY, county_code) if county_code else ""
    return int(value) if value else by_date()


def admission_year(session, county_code: str | None, today=None) -> int:
    """The entry cohort whose plan (招生计划数) and admissions are open: the current school year's entrants, so the
    2026 plan stays open (复学 and transfers-in still take places in January) until the next year's 招生 opens on
    the switch date (setting calendar.admission_switch, MM-DD; 7月1日 by default) or the county runs 升级."""
    today = today or clock.today()
    month, day = (int(x) for x in settings.get(session, "calendar.admission_switch", county_code).split("-"))
    by_switch = today.year if (today.month, today.day) >= (month, day) else today.year - 1
    return max(by_switch, current(session, county_code))


def preview(session, county_code: str) -> dict:
    """What 升级 to the next school year would do: students per stage and grade now, and who is still in the
    graduating grade without having graduated (they block the run)."""
    year = current(session, county_code)
    rows = session.execute(
        select(Student.stage, Student.cohort_year, func.count()).join(School, School.id == Student.school_id)
        .where(School.county_code == county_code, Student.status == "在校", Student.deleted_at.is_(None))
        .group_by(Student.stage, Student.cohort_year)).all()
    graduating = [(stage, cohort, n) for stage, cohort, n in rows if year - cohort >= 2]
    return {"year": year, "next": year + 1, "grades": sorted(rows), "not_graduated": graduating}


def promote(session, county_code: str, to_year: int) -> bool:
    """Advance the county to `to_year`. Running it again for the same year changes nothing (returns False)."""
    year = current(session, county_code)
    if to_year <= year:
        return False
    if to_year != year + 1:
        raise RuleError(f"只能升级到下一学年（{year + 1}）", code="invalid")
    waiting = preview(session, county_code)["not_graduated"]
    if waiting:
        n = sum(c for _, _, c in waiting)
        raise RuleError(f"毕业年级还有{n}名在校学生未办理毕业（或结业、肄业），请先完成毕业", code="not_graduated")
    row = session.scalars(select(Setting).where(Setting.key == KEY, Setting.region_code == county_code)).first()
    if row is None:
        session.add(Setting(key=KEY, region_code=county_code, value=str(to_year), note="升级"))
    else:
        row.value = str(to_year)
    session.commit()
    return True
