"""年级 as a registrar says it: the one place a cohort (入学年份) becomes 初一…初三 / 高一…高三.

A grade is not stored (app.schoolyear): it is the student's cohort read against the county's current school year
and the school's 学制 (School.schooling: "初中3年", "初中4年" (五四制), "高中3年", "6年" / "六年一贯制" for a
school whose pupils enter 初一 and leave after 高三). A student who is not in school any more (毕业, 转出 …), or a
cohort outside the school's years, shows as "2024级"."""
import re

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
            from app import schoolyear
            self._years[county_code] = schoolyear.current(self.session, county_code)
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
