"""学生概况统计 and the numbers behind the charts, in the user's scope; no student rows are loaded. Each table
function returns (headers, rows) so a table, a chart and an .xlsx share them.

The four student tables (各区县, 学生概况, 各年级, 户口性质) and the class sizes (班额) are cut from one GROUP BY
over the scope's 在校 students (per school, stage, grade and class, with the flag counts summed), so a city's
page reads its 100,000 rows once instead of five times; the cut is memoised on the session until it flushes,
commits or rolls back.

Grades are named (初一…高三, app.schoolyear.grade_name) from cohort, the school's 学制 and its county's school year, the
school years of all counties read in one query. The page's filters (学校 within the scope, 统计年度) are a Filter
(`choose`): the chosen school narrows the scope, so every table, chart and .xlsx download is cut the same way
from the same single pass."""
from collections import defaultdict
from dataclasses import dataclass
from operator import add

from sqlalchemy import Integer, case, cast, event, extract, func, select
from sqlalchemy.orm import Session

from app import settings
from app.schoolyear import grade_name
from app.scoping import Scope, apply_scope, resolved_scope_condition
from app.service import service
from models import Region, School, SchoolClass, Student
from models.admissions import Admission, Quota
from models.codes import Setting
from models.requests import Request

LIVE = (Student.status == "在校") & Student.deleted_at.is_(None)
# counted per group: (key, condition); the tables below pick and add them up
FLAGS = [("male", Student.sex == "1"), ("female", Student.sex == "2"), ("minority", Student.ethnicity != "01"),
         ("migrant", Student.migrant_child.is_(True)), ("rural", Student.hukou_type == "1"),
         ("left_behind", Student.left_behind != "0"), ("orphan", Student.orphan.is_(True)),
         ("martyr", Student.martyr_child.is_(True)), ("aid", Student.needs_aid.is_(True)),
         ("disabled", Student.disability != "0"), ("problem", Student.has_problem.is_(True))]
GROUP = (Student.school_id, Student.stage, Student.cohort_year, Student.class_id)
HUKOU = ("1", "2", None)          # 户口性质 counted per group; any other code is counted in a second, rare query
_MEMO = "xueji_statistics"


def _count_if(cond):
    # cast: MariaDB sums integers into DECIMAL, which would reach the charts' JSON as the string "4"
    return cast(func.sum(case((cond, 1), else_=0)), Integer)


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_transaction_end")
def _forget(session, *_args):
    session.info.pop(_MEMO, None)


def facts(session, scope) -> dict:
    """The scope's 在校 students cut five ways from one GROUP BY (school, stage, 年级 and class, with every flag
    and each 户口性质 counted): per school, per county, per grade, per 户口性质 and per class. A region's schools
    are resolved to ids first (app.scoping.resolved_scope_condition): an index range per school instead of the
    IN-subquery's scan of the whole table. Memoised on the session until it flushes, commits or rolls back."""
    memo = session.info.setdefault(_MEMO, {})
    if scope in memo and not (session.new or session.dirty or session.deleted):
        return memo[scope]
    hukou_counts = [_count_if(Student.hukou_type.is_(None) if h is None else Student.hukou_type == h)
                    for h in HUKOU]
    q = (select(*GROUP, func.count(), *[_count_if(cond) for _key, cond in FLAGS], *hukou_counts)
         .where(LIVE).group_by(*GROUP))
    cond = resolved_scope_condition(Student, session, scope)
    if cond is not None:
        q = q.where(cond)
    width = 1 + len(FLAGS)                            # n and the flags, summed per school
    groups = session.execute(q).all()
    info = {i: (c, n, k, schooling) for i, c, n, k, schooling in session.execute(
        select(School.id, School.code, School.name, School.county_code, School.schooling)
        .where(School.id.in_(sorted({g[0] for g in groups}))))} if groups else {}
    years = school_years(session, {v[2] for v in info.values()})
    school, grade, size = {}, {}, {}
    hukou = dict.fromkeys(HUKOU, 0)
    grade_classes = defaultdict(set)
    for sid, stage, cohort, class_id, *counts in groups:
        totals = school.get(sid)
        school[sid] = counts[:width] if totals is None else list(map(add, totals, counts[:width]))
        _code, _name, county, schooling = info[sid]
        key = (stage, grade_name(stage, cohort, years[county], schooling))     # 初一…高三, as the school says it
        by_sex = grade.setdefault(key, [0, 0])
        by_sex[0] += counts[1 + MALE]
        by_sex[1] += counts[1 + FEMALE]
        for h, n in zip(HUKOU, counts[width:]):
            hukou[h] += n
        if class_id is not None:
            size[class_id] = size.get(class_id, 0) + counts[0]
            grade_classes[key].add(class_id)
    other = sum(t[0] for t in school.values()) - sum(hukou.values())
    if other:                                         # codes beyond 农业/非农业/未填 (the table is extensible)
        q = (select(Student.hukou_type, func.count()).where(LIVE, Student.hukou_type.is_not(None),
                                                            Student.hukou_type.not_in(HUKOU[:2]))
             .group_by(Student.hukou_type))
        hukou.update(session.execute(q if cond is None else q.where(cond)).all())
    hukou = {h: n for h, n in hukou.items() if n}
    cut = {"school": school, "info": info, "grade": grade, "grade_classes": grade_classes, "hukou": hukou,
           "size": size, "years": years}
    session.info.setdefault(_MEMO, {})[scope] = cut
    return cut


FLAG = {key: i for i, (key, _cond) in enumerate(FLAGS)}
MALE, FEMALE = FLAG["male"], FLAG["female"]


def _pick(totals, keys):
    """The counts of `keys` ('n' or a flag) from a school's totals."""
    return [totals[0] if k == "n" else totals[1 + FLAG[k]] for k in keys]


def overview(session, scope):
    """学生概况统计表: one row per school."""
    cut = facts(session, scope)
    keys = ["n", "male", "female", "minority", "migrant", "rural", "left_behind", "orphan", "martyr", "aid",
            "disabled", "problem"]
    rows = [(cut["info"][sid][1], *_pick(totals, keys))
            for sid, totals in sorted(cut["school"].items(), key=lambda kv: cut["info"][kv[0]][0])]
    headers = ["学校", "在校生", "男", "女", "少数民族", "随迁子女", "农业户口", "留守儿童", "孤儿", "烈士或优抚子女",
               "申请资助", "残疾", "问题学籍"]
    return headers, rows


def by_county(session, scope):
    """The same counts one level up: a row per county (a city bureau compares its counties)."""
    cut = facts(session, scope)
    keys = ["n", "female", "minority", "migrant", "left_behind", "problem"]
    per_county = {}
    for sid, totals in cut["school"].items():
        county = cut["info"][sid][2]
        schools, sums = per_county.setdefault(county, [0, [0] * len(keys)])
        per_county[county][0] = schools + 1
        for i, v in enumerate(_pick(totals, keys)):
            sums[i] += v
    names = dict(session.execute(select(Region.code, Region.name).where(Region.code.in_(sorted(per_county)))).all()) \
        if per_county else {}
    rows = [(names[code], per_county[code][0], *per_county[code][1]) for code in sorted(per_county) if code in names]
    headers = ["区县", "学校数", "在校生", "女", "少数民族", "随迁子女", "留守儿童", "问题学籍"]
    return headers, rows


def by_grade(session, scope):
    """各年级学生: per stage and grade name (初一…高三 from cohort, 学制 and the county's school year; "2024级" for a
    cohort outside its school's years), boys, girls and classes."""
    cut = facts(session, scope)
    rows = [(stage, name, male, female, len(cut["grade_classes"][(stage, name)]))
            for (stage, name), (male, female) in sorted(cut["grade"].items(), key=lambda kv: _grade_order(*kv[0]))]
    return ["学段", "年级", "男", "女", "班级数"], rows


GRADE_ORDER = ("初一", "初二", "初三", "初四", "高一", "高二", "高三")


def _grade_order(stage, name):
    rank = GRADE_ORDER.index(name) if name in GRADE_ORDER else len(GRADE_ORDER)
    return stage, rank, -int(name[:4]) if name[:4].isdigit() else 0


def school_years(session, counties) -> dict:
    """county → its current school year (app.schoolyear.current) for all `counties` in one query."""
    from app import schoolyear
    counties = sorted(c for c in counties if c)
    if not counties:
        return {}
    codes = {c for county in counties for c in settings.region_chain(county) if c}
    values = dict(session.execute(select(Setting.region_code, Setting.value).where(
        Setting.key == schoolyear.KEY, Setting.region_code.in_(sorted(codes)) | Setting.region_code.is_(None))).all())
    out = {}
    for county in counties:
        value = next((values[c] for c in settings.region_chain(county) if c in values),
                     settings.DEFAULTS.get(schoolyear.KEY, ""))
        out[county] = int(value) if value else schoolyear.by_date()
    return out


def hukou(session, scope):
    counts = facts(session, scope)["hukou"]
    names = {"1": "农业户口", "2": "非农业户口"}
    return ["户口性质", "人数"], [(names.get(h, h or "未填"), counts[h])
                              for h in sorted(counts, key=lambda h: (h is None, h or ""))]


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


def _caps(session, counties, stages) -> dict:
    """(county, stage) → the default 班额 (the stage's cap, below the hard limit), as app.settings resolves it
    (county → city → province → installation → default), for all counties in one query."""
    keys = [f"class_cap.{s}" for s in stages] + ["class_cap.hard_limit"]
    codes = {c for county in counties for c in settings.region_chain(county) if c}
    values = {}
    if counties:
        values = {(k, code): v for k, code, v in session.execute(
            select(Setting.key, Setting.region_code, Setting.value).where(
                Setting.key.in_(keys), Setting.region_code.in_(sorted(codes)) | Setting.region_code.is_(None)))}

    def get(key, county):
        for code in settings.region_chain(county):
            if (key, code) in values:
                return int(values[(key, code)])
        return int(settings.DEFAULTS[key])
    return {(c, s): min(get(f"class_cap.{s}", c), get("class_cap.hard_limit", c) - 1)
            for c in counties for s in stages}


def class_sizes(session, scope):
    """班额: each class's size against its cap; 56+ is 大班额. Sizes come from the same GROUP BY (a student's class
    is always one of the student's school's: app.students checks it at every write)."""
    cut = facts(session, scope)
    size = cut["size"]
    q = (select(School.name, School.county_code, SchoolClass.id, SchoolClass.stage, SchoolClass.cohort_year,
                SchoolClass.name, SchoolClass.capacity, School.schooling)
         .join(School, School.id == SchoolClass.school_id)
         .order_by(School.code, SchoolClass.cohort_year.desc(), SchoolClass.name))
    classes = session.execute(apply_scope(q, SchoolClass, scope)).all()
    defaults = _caps(session, sorted({c.county_code for c in classes if c.capacity is None}),
                     sorted({c.stage for c in classes if c.capacity is None}))
    years = dict(cut["years"])
    missing = {c.county_code for c in classes} - years.keys()       # schools without 在校 students
    if missing:
        years.update(school_years(session, missing))
    out = []
    for school, county, cid, stage, cohort, name, cap, schooling in classes:
        n = size.get(cid, 0)
        cap = defaults[(county, stage)] if cap is None else cap
        out.append((school, f"{grade_name(stage, cohort, years[county], schooling)}{name}", n, cap, "大班额" if n >= 56 else ("已满" if n >= cap else "")))
    return ["学校", "班级", "人数", "班额", "提示"], out


# A city has thousands of classes: beyond this many, the page lists only the full and 大班额 ones and charts the
# sizes in bands (the .xlsx download keeps every class).
SHOW_ALL_CLASSES = 60
SIZE_BANDS = ((30, "30人及以下"), (40, "31–40人"), (45, "41–45人"), (50, "46–50人"), (55, "51–55人"),
              (None, "56人及以上"))


def class_size_bands(rows) -> list[tuple[str, int]]:
    """班额分布: how many classes fall into each size band (rows as class_sizes returns them)."""
    counts = [0] * len(SIZE_BANDS)
    for row in rows:
        counts[next(i for i, (top, _) in enumerate(SIZE_BANDS) if top is None or row[2] <= top)] += 1
    return [(label, n) for (_, label), n in zip(SIZE_BANDS, counts)]


def classes_on_screen(rows) -> list:
    """The 班额 rows the page lists: all of a school's or small county's, else only those flagged 已满 / 大班额."""
    return list(rows) if len(rows) <= SHOW_ALL_CLASSES else [r for r in rows if r[-1]]


TABLES = {"counties": ("各区县学生概况", by_county), "overview": ("学生概况统计表", overview), "grades": ("各年级学生", by_grade), "hukou": ("户口性质", hukou),
          "changes": ("学籍异动（按类型、月份）", status_changes), "admissions": ("招生计划与录取", admissions_vs_plan),
          "classes": ("班额", class_sizes)}


@dataclass(frozen=True)
class Filter:
    """The page's filters as they apply: `scope` is the user's scope, narrowed to the chosen school when that
    school is in it (another school's id is ignored); `year` is the 统计年度 of the yearly tables (异动: calendar
    year; 招生: plan year). The page and every .xlsx download take their numbers through the same Filter."""
    scope: Scope
    school_id: int | None
    year: int
    schools: tuple                     # (id, name) of the schools the user may choose, in 学校标识码 order


YEARS_BACK = 5


def choose(session, scope, school_id: int | None = None, year: int | None = None) -> Filter:
    """The filter of a request: the schools in the user's scope (one scoped query) and the chosen school and year,
    each checked against what may be chosen."""
    from app import clock
    schools = tuple(tuple(r) for r in session.execute(
        apply_scope(select(School.id, School.name).order_by(School.code), School, scope)).all())
    this_year = clock.today().year
    if year is None or not (this_year - 50 <= year <= this_year + 1):
        year = this_year
    if school_id is None or scope.kind == "school" or school_id not in {i for i, _ in schools}:
        return Filter(scope, None, year, schools)
    return Filter(Scope("school", school_id=school_id, user_id=scope.user_id), school_id, year, schools)


def year_choices(flt: Filter) -> list[int]:
    from app import clock
    this_year = clock.today().year
    return sorted({*range(this_year - YEARS_BACK, this_year + 1), flt.year}, reverse=True)


def table(session, scope, name: str, year: int | None = None):
    """(title, headers, rows) of one named table; `year` for the yearly ones (异动: calendar year; 招生: plan year)."""
    from app import clock
    title, fn = TABLES[name]
    if name in ("changes", "admissions"):
        return (title, *fn(session, scope, year or clock.today().year))
    return (title, *fn(session, scope))


@service
def download(session, actor, scope, name: str, year: int | None = None, school_id: int | None = None):
    """下载 one table (the chart's numbers as .xlsx): the table, and the export in the audit log."""
    from app import audit
    title, headers, rows = table(session, scope, name, year)
    chosen = f" school={school_id}" if school_id else ""
    audit.record(session, "export", entity="statistics", field=name, new=f"rows={len(rows)}{chosen} year={year}")
    return title, headers, rows


def class_label(row) -> str:
    """A 班额 chart label: the school's name and the class, so bars of different schools differ."""
    return f"{row[0]} {row[1]}"
