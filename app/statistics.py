"""学生概况统计 and the numbers behind the charts: every table is one GROUP BY query in the user's scope; no
student rows are loaded. Each function returns (headers, rows) so a table, a chart and an .xlsx share them."""
from sqlalchemy import case, extract, func, select

from app import settings
from app.scoping import apply_scope
from models import School, SchoolClass, Student
from models.admissions import Admission, Quota
from models.requests import Request

LIVE = (Student.status == "在校") & Student.deleted_at.is_(None)


def _count_if(cond):
    return func.sum(case((cond, 1), else_=0))


def overview(session, scope):
    """学生概况统计表: one row per school."""
    q = (select(School.name, func.count(), _count_if(Student.sex == "1"), _count_if(Student.sex == "2"),
                _count_if(Student.ethnicity != "01"), _count_if(Student.migrant_child.is_(True)),
                _count_if(Student.hukou_type == "1"), _count_if(Student.left_behind != "0"),
                _count_if(Student.orphan.is_(True)), _count_if(Student.martyr_child.is_(True)),
                _count_if(Student.needs_aid.is_(True)), _count_if(Student.disability != "0"),
                _count_if(Student.has_problem.is_(True)))
         .join(School, School.id == Student.school_id).where(LIVE).group_by(School.code, School.name)
         .order_by(School.code))
    headers = ["学校", "在校生", "男", "女", "少数民族", "随迁子女", "农业户口", "留守儿童", "孤儿", "烈士或优抚子女",
               "申请资助", "残疾", "问题学籍"]
    return headers, [tuple(r) for r in session.execute(apply_scope(q, Student, scope)).all()]


def by_county(session, scope):
    """The same counts one level up: a row per county (a city bureau compares its counties)."""
    from models import Region
    q = (select(Region.name, func.count(func.distinct(School.id)), func.count(), _count_if(Student.sex == "2"),
                _count_if(Student.ethnicity != "01"), _count_if(Student.migrant_child.is_(True)),
                _count_if(Student.left_behind != "0"), _count_if(Student.has_problem.is_(True)))
         .join(School, School.id == Student.school_id).join(Region, Region.code == School.county_code)
         .where(LIVE).group_by(Region.code, Region.name).order_by(Region.code))
    headers = ["区县", "学校数", "在校生", "女", "少数民族", "随迁子女", "留守儿童", "问题学籍"]
    return headers, [tuple(r) for r in session.execute(apply_scope(q, Student, scope)).all()]


def by_grade(session, scope):
    q = (select(Student.stage, Student.cohort_year, _count_if(Student.sex == "1"), _count_if(Student.sex == "2"),
                func.count(func.distinct(Student.class_id)))
         .where(LIVE).group_by(Student.stage, Student.cohort_year).order_by(Student.stage, Student.cohort_year.desc()))
    rows = session.execute(apply_scope(q, Student, scope)).all()
    return ["学段", "年级", "男", "女", "班级数"], [(s, f"{c}级", m, f, k) for s, c, m, f, k in rows]


def hukou(session, scope):
    q = select(Student.hukou_type, func.count()).where(LIVE).group_by(Student.hukou_type)
    names = {"1": "农业户口", "2": "非农业户口"}
    rows = session.execute(apply_scope(q, Student, scope)).all()
    return ["户口性质", "人数"], [(names.get(h, h or "未填"), n) for h, n in rows]


def status_changes(session, scope, year: int):
    """学籍异动 approved per type and month of the year."""
    month = extract("month", Request.closed_at)
    q = (select(Request.subtype, month, func.count()).where(
        Request.kind == "status_change", Request.state == "已通过", extract("year", Request.closed_at) == year)
        .group_by(Request.subtype, month).order_by(Request.subtype, month))
    rows = session.execute(apply_scope(q, Request, scope)).all()
    return ["异动类型", "月份", "人数"], [(t, int(m), n) for t, m, n in rows]


def admissions_vs_plan(session, scope, year: int):
    used = (select(Admission.school_id, func.count().label("n")).where(Admission.current == 1, Admission.year == year)
            .group_by(Admission.school_id).subquery())
    q = (select(School.name, Quota.stage, Quota.planned, func.coalesce(used.c.n, 0))
         .join(School, School.id == Quota.school_id).outerjoin(used, used.c.school_id == Quota.school_id)
         .where(Quota.year == year).order_by(School.code))
    return ["学校", "学段", "招生计划", "已录取"], [tuple(r) for r in session.execute(apply_scope(q, Quota, scope)).all()]


def class_sizes(session, scope):
    """班额: each class's size against its cap; 56+ is 大班额."""
    q = (select(School.name, School.county_code, SchoolClass.stage, SchoolClass.cohort_year, SchoolClass.name,
                SchoolClass.capacity, func.count(Student.id))
         .join(School, School.id == SchoolClass.school_id)
         .outerjoin(Student, (Student.class_id == SchoolClass.id) & LIVE)
         .group_by(School.code, School.name, School.county_code, SchoolClass.id, SchoolClass.stage,
                   SchoolClass.cohort_year, SchoolClass.name, SchoolClass.capacity)
         .order_by(School.code, SchoolClass.cohort_year.desc(), SchoolClass.name))
    rows = session.execute(apply_scope(q, SchoolClass, scope)).all()
    defaults = {}                                # one settings lookup per county and stage, not per class
    out = []
    for school, county, stage, cohort, name, cap, n in rows:
        if cap is None:
            key = (county, stage)
            if key not in defaults:
                defaults[key] = min(settings.get_int(session, f"class_cap.{stage}", county),
                                    settings.get_int(session, "class_cap.hard_limit", county) - 1)
            cap = defaults[key]
        out.append((school, f"{cohort}级{name}", n, cap, "大班额" if n >= 56 else ("已满" if n >= cap else "")))
    return ["学校", "班级", "人数", "班额", "提示"], out


TABLES = {"counties": ("各区县学生概况", by_county), "overview": ("学生概况统计表", overview), "grades": ("各年级学生", by_grade), "hukou": ("户口性质", hukou),
          "changes": ("学籍异动（按类型、月份）", status_changes), "admissions": ("招生计划与录取", admissions_vs_plan),
          "classes": ("班额", class_sizes)}


def table(session, scope, name: str, year: int | None = None):
    """(title, headers, rows) of one named table; `year` for the yearly ones (异动: calendar year; 招生: plan year)."""
    from app import clock
    title, fn = TABLES[name]
    if name in ("changes", "admissions"):
        return (title, *fn(session, scope, year or clock.today().year))
    return (title, *fn(session, scope))
