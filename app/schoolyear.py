"""学年 and 年级: the one module that says which school year it is, what a cohort's grade is called and which
cohort graduates (used by promotion, graduation, the 异动 and transfer rules, 新增年级, lists, exports and the demo).

- The school year is per county. Grades are not stored: a student's grade is their cohort (入学年份) read against
  the county's current school year and the school's 学制. 升级 (promotion) therefore moves every non-graduating
  student of a county at once by advancing one setting (calendar.school_year) — no student row is rewritten, so
  it is idempotent and instant however large the county. Without the setting, the year follows the calendar
  (a new school year from August 1st: the summer's 招生 and 分班 already belong to it).
- 学制 (School.schooling): "初中3年", "初中4年" (五四制), "高中3年", "6年" / "六年一贯制" for a school whose
  pupils enter 初一 and leave after 高三. A stage lasts as many years as it has grade names; its graduating cohort
  is the one in its last grade."""
import re

from sqlalchemy import func, select

from app import clock, settings
from app.errors import RuleError
from app.service import service
from models import School, Setting, Student

KEY = "calendar.school_year"


def by_date(today=None) -> int:
    """The school year by the calendar alone: 2026 from 2026-08-01 to 2027-07-31."""
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
        select(Student.stage, Student.cohort_year, School.schooling, func.count())
        .join(School, School.id == Student.school_id)
        .where(School.county_code == county_code, Student.status == "在校", Student.deleted_at.is_(None))
        .group_by(Student.stage, Student.cohort_year, School.schooling)).all()
    grades, graduating = {}, {}
    for stage, cohort, schooling, n in rows:
        grades[(stage, cohort)] = grades.get((stage, cohort), 0) + n
        if is_graduating(stage, cohort, year, schooling):
            graduating[(stage, cohort)] = graduating.get((stage, cohort), 0) + n
    return {"year": year, "next": year + 1, "grades": sorted((s, c, n) for (s, c), n in grades.items()),
            "not_graduated": sorted((s, c, n) for (s, c), n in graduating.items())}


@service
def promote(session, actor, county_code: str, to_year: int) -> bool:
    """升级: advance the county to `to_year` (county bureau staff of that county only). Running it again for the
    same year changes nothing (returns False)."""
    _may_promote(session, actor, county_code)
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
    return True


def _may_promote(session, actor, county_code: str) -> None:
    from app.roles import BUREAU_ROLES
    from app.scoping import scope_of
    scope = scope_of(actor) if actor is not None else None
    if actor is None:                                  # the CLI and system jobs act for the installation
        return
    if not set(BUREAU_ROLES) & {r.name for r in actor.roles} or scope.kind != "region" or \
            scope.region_level != "county" or scope.region_code != county_code:
        raise RuleError("升级由本区县教育局办理", code="forbidden", status=403)


# --- 年级: names and the graduating cohort ----------------------------------------------------------------------

STAGE_YEARS = {"初中": 3, "高中": 3}
_NUMBERS = ("一", "二", "三", "四", "五", "六")
_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
IN_SCHOOL = ("在校", "休学")


def _years(text: str) -> int | None:
    text = _DIGITS.get(text, text)
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def grade_names(stage: str, schooling: str | None = None) -> tuple[str, ...]:
    """The grade names of a stage under a 学制, entry grade first."""
    schooling = (schooling or "").strip()
    years = None
    own = re.search(rf"{stage}\s*([0-9一二三四五六])\s*年", schooling)
    if own:
        years = _years(own.group(1))
    elif not re.search(r"(初中|高中|小学)", schooling):
        total = re.search(r"([0-9一二三四五六])\s*年", schooling)
        years = _years(total.group(1)) if total else None
    if stage == "初中" and years == 6:          # 初高中六年一贯: a cohort enters 初一 and leaves after 高三
        return tuple(f"初{n}" for n in _NUMBERS[:3]) + tuple(f"高{n}" for n in _NUMBERS[:3])
    prefix = {"初中": "初", "高中": "高"}.get(stage)
    if prefix is None:
        return ()
    if not years or years > 4:
        years = STAGE_YEARS[stage]
    return tuple(f"{prefix}{n}" for n in _NUMBERS[:years])


def grade_name(stage: str, cohort_year, school_year: int | None, schooling: str | None = None,
               status: str | None = None) -> str:
    """初一…初三 / 高一…高三 for a student (or class) of ``cohort_year`` in ``school_year``; "2024级" for a
    student no longer in school (``status`` other than 在校/休学) or a cohort outside the school's years."""
    if cohort_year in (None, ""):
        return ""
    cohort_year = int(cohort_year)
    if status is not None and status not in IN_SCHOOL or school_year is None:
        return f"{cohort_year}级"
    names = grade_names(stage, schooling)
    offset = int(school_year) - cohort_year
    return names[offset] if 0 <= offset < len(names) else f"{cohort_year}级"


class SchoolYears:
    """The current school year of each county, looked up once (per request or per export): a list of 25 or an
    export of 100,000 rows asks the settings once per county, never per row."""

    def __init__(self, session):
        self.session, self._years = session, {}

    def __call__(self, county_code: str | None) -> int:
        if county_code not in self._years:
            self._years[county_code] = current(self.session, county_code)
        return self._years[county_code]


def school_years(session) -> SchoolYears:
    """The request's (or, outside a request, the session's transaction's) SchoolYears."""
    from flask import g, has_request_context
    if has_request_context():
        years = g.get("xueji_school_years")
        if years is None or years.session is not session:
            years = g.xueji_school_years = SchoolYears(session)
        return years
    return session.info.setdefault("xueji_school_years", SchoolYears(session))


def stage_years(stage: str, schooling: str | None = None) -> int:
    """How many school years the stage lasts at a school of this 学制 (3; 4 for 五四制 初中; 6 for 六年一贯)."""
    return len(grade_names(stage, schooling)) or STAGE_YEARS.get(stage, 3)


def graduating_cohort(year: int, stage: str, schooling: str | None = None) -> int:
    """The cohort in the stage's last grade in school year `year` (初三 / 高三, 初四 under 五四制)."""
    return int(year) - stage_years(stage, schooling) + 1


def is_graduating(stage: str, cohort_year: int, year: int, schooling: str | None = None) -> bool:
    """In (or past) the stage's last grade in school year `year`."""
    return int(cohort_year) <= graduating_cohort(year, stage, schooling)
