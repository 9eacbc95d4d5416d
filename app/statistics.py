"""学生概况统计 and the numbers behind the charts, in the user's scope; no student rows are loaded. Each table
function returns (headers, rows) so a table, a chart and an .xlsx share them.

The four student tables (各区县, 学生概况, 各年级, 户口性质) and the class sizes (班额) are cut from one GROUP BY
over the scope's 在校 students (per school, stage, grade and class, with the flag counts summed), so a city's
page reads its 100,000 rows once instead of five times; the cut is memoised on the session until it flushes,
commits or rolls back.

Grades are named (初一…高三, app.schoolyear.grade_name) from cohort, the school's 学制 and its county's school year, the
school years of all counties read in one query. The page's filters (学校 within the scope, 统计年度) are a Filter
(`choose`): the chosen school narrows the scope, so every table, chart and .xlsx download is cut the same way
from the same single pass.

Province and city bureaus (XUEJI_STATISTICS_SUMMARY_LEVELS) read that GROUP BY's output from a snapshot instead
(models/statistics.py: student_tally), written by `refresh` — one INSERT … SELECT of the same statement in one
transaction, from the command line (cron), the queue, or the page's 刷新统计 button — and shown with its 数据截至
time: a province's live pass over millions of students takes seconds, the snapshot's rows a fraction of that. The
cut is the same code either way, so the tables, charts and downloads equal the live ones at the refresh. Schools
and counties stay live (exact, and fast enough); without a snapshot a bureau gets live numbers and is told so."""
import logging
import os
import time
from bisect import bisect_left
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from operator import add

from flask import current_app, has_app_context
from sqlalchemy import (Integer, case, cast, delete, event, extract, func, insert, literal_column, or_, select, text,
                        update)
from sqlalchemy.orm import Session

from app import settings
from app.errors import RuleError
from app.schoolyear import grade_name
from app.scoping import Scope, apply_scope, resolved_scope_condition, scope_condition, scope_of
from app.service import service
from models import Region, School, SchoolClass, Student
from models.admissions import Admission, Quota
from models.codes import Setting
from models.requests import Request
from models.statistics import StatisticsRefresh, StudentTally

log = logging.getLogger(__name__)
# 初一…高三 from (stage, cohort, school year, 学制): a province has 100,000 classes and a handful of combinations
_grade_name = lru_cache(maxsize=4096)(grade_name)

LIVE = (Student.status == "在校") & Student.deleted_at.is_(None)
# counted per group: (key, condition); the tables below pick and add them up
FLAGS = [("male", Student.sex == "1"), ("female", Student.sex == "2"), ("minority", Student.ethnicity != "01"),
         ("migrant", Student.migrant_child.is_(True)), ("rural", Student.hukou_type == "1"),
         ("left_behind", Student.left_behind != "0"), ("orphan", Student.orphan.is_(True)),
         ("martyr", Student.martyr_child.is_(True)), ("aid", Student.needs_aid.is_(True)),
         ("disabled", Student.disability != "0"), ("problem", Student.has_problem.is_(True))]
GROUP = (Student.school_id, Student.stage, Student.cohort_year, Student.class_id)
HUKOU = ("1", "2", None)          # 户口性质 counted per group (hukou_1, hukou_2, hukou_none)
# Any other 户口性质 code (the code table is extensible) is a key of the GROUP BY, so its rare students form groups
# of their own and the snapshot keeps them too. Literals, not parameters: the GROUP BY repeats the expression.
HUKOU_OTHER = case((Student.hukou_type.not_in([literal_column("'1'"), literal_column("'2'")]), Student.hukou_type))
# the GROUP BY's output columns, which are also the snapshot's (models/statistics.py)
COUNTS = ("n", *(key for key, _cond in FLAGS), "hukou_1", "hukou_2", "hukou_none")
TALLY = ("school_id", "stage", "cohort_year", "class_id", "hukou_other", *COUNTS)
_MEMO = "xueji_statistics"


def _count_if(cond):
    # cast: MariaDB sums integers into DECIMAL, which would reach the charts' JSON as the string "4"
    return cast(func.sum(case((cond, 1), else_=0)), Integer)


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_transaction_end")
def _forget(session, *_args):
    session.info.pop(_MEMO, None)


def _read(session, statement):
    """Rows of a large read as plain Core rows: the session's connection (the same bind, after the same autoflush)
    without the ORM's per-row result processing, which cost a province page a few hundred ms."""
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()
    return session.connection().execute(statement)


def tally_select():
    """The one GROUP BY over the 在校 students, its columns in TALLY order: what the page reads live and what a
    refresh stores."""
    hukou = [_count_if(Student.hukou_type.is_(None) if h is None else Student.hukou_type == h) for h in HUKOU]
    return (select(*GROUP, HUKOU_OTHER, func.count(), *[_count_if(cond) for _key, cond in FLAGS], *hukou)
            .where(LIVE).group_by(*GROUP, HUKOU_OTHER))


def _live(session, scope):
    """The live GROUP BY for the scope (one pass at class grain) folded to (school, stage, cohort) rows like
    `_stored`'s, with the other 户口性质 codes and each class's size. A region's schools are resolved to ids
    first (app.scoping.resolved_scope_condition): an index range per school instead of the IN-subquery's scan of
    the whole table."""
    cond = resolved_scope_condition(Student, session, scope)
    q = tally_select()
    folded, other, sizes = {}, {}, {}
    for sid, stage, cohort, class_id, code, *counts in _read(session, q if cond is None else q.where(cond)):
        classes, totals = folded.get((sid, stage, cohort)) or folded.setdefault((sid, stage, cohort),
                                                                                 (set(), [0] * len(COUNTS)))
        totals[:] = map(add, totals, counts)
        if class_id is not None:
            classes.add(class_id)
            sizes[class_id] = sizes.get(class_id, 0) + counts[0]
        if code is not None:
            other[code] = other.get(code, 0) + counts[0]
    return [(*key, len(classes), *totals) for key, (classes, totals) in folded.items()], other, sizes


def _stored(session, scope, snap):
    """The snapshot's rows of the scope summed to (school, stage, cohort, classes, COUNTS…) in SQL — a province's
    100,000 class rows become 16,000 — and the other 户口性质 codes; class sizes are read when a table needs them
    (`_sizes`). The scope as a subquery: the snapshot is read whole, so a hash join beats an id list."""
    T = StudentTally
    where = _stored_where(scope, snap)
    rows = _read(session, select(T.school_id, T.stage, T.cohort_year, func.count(T.class_id.distinct()),
                                 *[cast(func.sum(getattr(T, c)), Integer) for c in COUNTS])
                 .where(*where).group_by(T.school_id, T.stage, T.cohort_year)).all()
    other = dict(_read(session, select(T.hukou_other, cast(func.sum(T.n), Integer))
                       .where(*where, T.hukou_other.is_not(None)).group_by(T.hukou_other)).all())
    return rows, other, None


def _stored_where(scope, snap) -> list:
    cond = scope_condition(StudentTally, scope)
    return [StudentTally.refresh_id == snap.id] + ([] if cond is None else [cond])


def _sizes(session, scope, snap) -> dict:
    """class id → 在校 students, from the snapshot."""
    T = StudentTally
    return dict(_read(session, select(T.class_id, cast(func.sum(T.n), Integer))
                      .where(*_stored_where(scope, snap), T.class_id.is_not(None)).group_by(T.class_id)).all())


def facts(session, scope) -> dict:
    """The scope's 在校 students cut five ways from one GROUP BY (school, stage, 年级 and class, with every flag
    and each 户口性质 counted): per school, per county, per grade, per 户口性质 and per class — live, or from the
    snapshot for the scopes that use it (`source`); the same cut either way. Memoised on the session until it
    flushes, commits or rolls back."""
    snap = source(session, scope)
    memo_key = (scope, snap.id if snap else None)
    memo = session.info.setdefault(_MEMO, {})
    if memo_key in memo and not (session.new or session.dirty or session.deleted):
        return memo[memo_key]
    rows, other, size = _stored(session, scope, snap) if snap else _live(session, scope)
    width = 1 + len(FLAGS)                            # n and the flags, summed per school
    info = {i: (c, n, k, schooling) for i, c, n, k, schooling in _read(session, apply_scope(
        select(School.id, School.code, School.name, School.county_code, School.schooling), School, scope))} \
        if rows else {}
    years = school_years(session, {v[2] for v in info.values()})
    school, grade, grade_classes = {}, {}, defaultdict(int)
    hukou = dict.fromkeys(HUKOU, 0)
    for sid, stage, cohort, classes, *counts in rows:
        totals = school.get(sid)
        school[sid] = counts[:width] if totals is None else list(map(add, totals, counts[:width]))
        _code, _name, county, schooling = info[sid]
        key = (stage, _grade_name(stage, cohort, years[county], schooling))     # 初一…高三, as the school says it
        by_sex = grade.setdefault(key, [0, 0])
        by_sex[0] += counts[1 + MALE]
        by_sex[1] += counts[1 + FEMALE]
        grade_classes[key] += classes                 # a class belongs to one school: the counts add up
        for h, n in zip(HUKOU, counts[width:]):
            hukou[h] += n
    for code, n in other.items():                     # codes beyond 农业/非农业/未填
        hukou[code] = hukou.get(code, 0) + n
    hukou = {h: n for h, n in hukou.items() if n}
    cut = {"school": school, "info": info, "grade": grade, "grade_classes": grade_classes, "hukou": hukou,
           "size": size, "years": years, "snapshot": snap}
    session.info.setdefault(_MEMO, {})[memo_key] = cut
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
    rows = [(stage, name, male, female, cut["grade_classes"][(stage, name)])
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


_CLASS_COLUMNS = (School.name, School.county_code, SchoolClass.id, SchoolClass.stage, SchoolClass.cohort_year,
                  SchoolClass.name, SchoolClass.capacity, School.schooling)
_CLASS_ORDER = (School.code, SchoolClass.cohort_year.desc(), SchoolClass.name)


def class_sizes(session, scope):
    """班额: each class's size against its cap; 56+ is 大班额. Sizes come from the same GROUP BY (a student's class
    is always one of the student's school's: app.students checks it at every write)."""
    cut = facts(session, scope)
    size = cut["size"] if cut["snapshot"] is None else _sizes(session, scope, cut["snapshot"])
    q = select(*_CLASS_COLUMNS).join(School, School.id == SchoolClass.school_id).order_by(*_CLASS_ORDER)
    classes = _read(session, apply_scope(q, SchoolClass, scope)).all()
    rows = _class_rows(session, cut, [(*c, size.get(c.id, 0)) for c in classes])
    return CLASS_HEADERS, rows


CLASS_HEADERS = ["学校", "班级", "人数", "班额", "提示"]
# beyond this many rows a table of schools lists its first ones on the page (a province has 5,000 schools, 500
# counties: those are listed whole); the .xlsx has all. The charted tables are short and whole.
ROWS_ON_SCREEN = 200
LONG_TABLES = ("overview", "admissions")


def _class_rows(session, cut, classes) -> list:
    """The 班额 rows of (school, county, class id, stage, cohort, name, capacity, 学制, size): the grade named, the
    cap a class without its own takes from its county's setting (one query), the 已满 / 大班额 flag."""
    unset = [c for c in classes if c[6] is None]
    defaults = _caps(session, sorted({c[1] for c in unset}), sorted({c[3] for c in unset}))
    years = dict(cut["years"])
    missing = {c[1] for c in classes} - years.keys()       # schools without 在校 students
    if missing:
        years.update(school_years(session, missing))
    out = []
    for school, county, _cid, stage, cohort, name, cap, schooling, n in classes:
        cap = defaults[(county, stage)] if cap is None else cap
        out.append((school, f"{_grade_name(stage, cohort, years[county], schooling)}{name}", n, cap,
                    "大班额" if n >= 56 else ("已满" if n >= cap else "")))
    return out


# A city has thousands of classes: beyond this many, the page lists only the full and 大班额 ones and charts the
# sizes in bands (the .xlsx download keeps every class).
SHOW_ALL_CLASSES = 60
SIZE_BANDS = ((30, "30人及以下"), (40, "31–40人"), (45, "41–45人"), (50, "46–50人"), (55, "51–55人"),
              (None, "56人及以上"))


def class_size_bands(rows) -> list[tuple[str, int]]:
    """班额分布: how many classes fall into each size band (rows as class_sizes returns them)."""
    return _bands(row[2] for row in rows)


def _bands(sizes) -> list[tuple[str, int]]:
    tops = [top for top, _ in SIZE_BANDS[:-1]]
    counts = [0] * len(SIZE_BANDS)
    for n in sizes:
        counts[bisect_left(tops, n)] += 1          # the first band whose top is at least n
    return [(label, n) for (_, label), n in zip(SIZE_BANDS, counts)]


# A province has thousands of full classes: the page lists this many of them, 大班额 first (the .xlsx has all)
MAX_FLAGGED_ON_SCREEN = 200


def classes_on_screen(rows) -> list:
    """The 班额 rows the page lists: all of a school's or small county's, else only those flagged 已满 / 大班额 (at
    most MAX_FLAGGED_ON_SCREEN, 大班额 first)."""
    if len(rows) <= SHOW_ALL_CLASSES:
        return list(rows)
    return _first_flagged([r for r in rows if r[-1]])


def _first_flagged(flagged) -> list:
    if len(flagged) > MAX_FLAGGED_ON_SCREEN:
        flagged = sorted(flagged, key=lambda r: r[-1] != "大班额")[:MAX_FLAGGED_ON_SCREEN]
    return flagged


@dataclass(frozen=True)
class ClassPage:
    """班额 as the page shows it: the rows it lists, how many classes there are, the size bands (when it lists
    only some) and how many classes are 已满 or 大班额."""
    rows: list
    count: int
    bands: list | None
    flagged: int


def classes_for_page(session, scope) -> ClassPage:
    """The page's 班额. Live, or a snapshot of few classes: from class_sizes. A snapshot of many (a province has
    100,000 classes; building each row in Python took half a second): the bands counted in SQL, and only the
    classes that may be full read and flagged as class_sizes does. The same page either way (tested)."""
    cut = facts(session, scope)
    snap = cut["snapshot"]
    count = _read(session, apply_scope(select(func.count()).select_from(SchoolClass), SchoolClass, scope)).scalar() \
        if snap else 0
    if count <= SHOW_ALL_CLASSES:
        _, rows = class_sizes(session, scope)
        shown = classes_on_screen(rows)
        many = len(shown) < len(rows)
        return ClassPage(shown, len(rows), class_size_bands(rows) if many else None,
                         sum(1 for r in rows if r[-1]) if many else 0)
    bands = _stored_bands(session, _stored_sizes(scope, snap), count)
    flagged = [r for r in _class_rows(session, cut, _stored_candidates(session, scope, cut)) if r[-1]]
    shown = _first_flagged(flagged)
    return ClassPage(shown, count, bands if len(shown) < count else None, len(flagged))


def _stored_sizes(scope, snap, at_least: int | None = None):
    """class id → 在校 students in the snapshot (a subquery), only the classes of `at_least` when given."""
    T = StudentTally
    q = (select(T.class_id, func.sum(T.n).label("n")).where(*_stored_where(scope, snap), T.class_id.is_not(None))
         .group_by(T.class_id))
    return (q if at_least is None else q.having(func.sum(T.n) >= at_least)).subquery()


def _stored_bands(session, sizes, count) -> list[tuple[str, int]]:
    """班额分布 of the scope's `count` classes: the snapshot's sizes of the classes that still exist, banded in SQL
    (literals, not parameters: the GROUP BY repeats the expression); the others have no 在校 students: size 0."""
    band = case(*[(sizes.c.n <= literal_column(str(top)), literal_column(str(i)))
                  for i, (top, _) in enumerate(SIZE_BANDS) if top is not None],
                else_=literal_column(str(len(SIZE_BANDS) - 1)))
    counts = dict(_read(session, select(band, func.count()).select_from(sizes)
                        .join(SchoolClass, SchoolClass.id == sizes.c.class_id).group_by(band)).all())
    counts[0] = counts.get(0, 0) + count - sum(counts.values())
    return [(label, counts.get(i, 0)) for i, (_top, label) in enumerate(SIZE_BANDS)]


def _stored_candidates(session, scope, cut) -> list:
    """The classes that may be 已满 or 大班额, with their snapshot size, in class_sizes' order: those with a cap of
    their own, and those of at least the lowest default cap of their county (any stage) — a superset;
    `_class_rows` flags exactly."""
    stages = sorted({s for s, _ in cut["grade"]} | {"初中", "高中"})
    counties = sorted({i[2] for i in cut["info"].values()})
    defaults = _caps(session, counties, stages)
    by_lowest = defaultdict(list)                      # few distinct values: one condition each
    for county in counties:
        by_lowest[min([56, *(defaults[(county, s)] for s in stages)])].append(county)
    own = _read(session, apply_scope(select(func.min(SchoolClass.capacity)), SchoolClass, scope)).scalar()
    # only classes of at least the lowest cap that may apply are joined (a province's 100,000 are not)
    sizes = _stored_sizes(scope, cut["snapshot"], min([56, *by_lowest, *([own] if own is not None else [])]))
    n = func.coalesce(sizes.c.n, 0)
    full = or_(SchoolClass.capacity.is_not(None),
               *[School.county_code.in_(codes) & (sizes.c.n >= lowest) for lowest, codes in by_lowest.items()])
    q = (select(*_CLASS_COLUMNS, n).join(School, School.id == SchoolClass.school_id)
         .outerjoin(sizes, sizes.c.class_id == SchoolClass.id).where(full).order_by(*_CLASS_ORDER))
    return [tuple(r) for r in _read(session, apply_scope(q, SchoolClass, scope))]


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
    schools = tuple(tuple(r) for r in _read(
        session, apply_scope(select(School.id, School.name).order_by(School.code), School, scope)).all())
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


# --- the snapshot (统计快照) of the large scopes ---------------------------------------------------------------

LEVELS_SETTING = "XUEJI_STATISTICS_SUMMARY_LEVELS"
# "all" is the superadmin's whole installation; a region scope goes by its level; "school" would be a school's
DEFAULT_LEVELS = ("all", "province", "city")
STALE_AFTER = timedelta(minutes=15)    # a refresh asked for this long ago and not finished has died (a killed worker)
REFUSED = "只有省级、市级教育局的账号可以刷新统计"
QUEUE_DOWN = "统计刷新服务暂时不可用（任务队列无法连接），请稍后重试"


def summary_levels() -> set:
    """The scope levels that read the snapshot: config XUEJI_STATISTICS_SUMMARY_LEVELS (from the environment,
    comma-separated), else DEFAULT_LEVELS; "" switches the snapshot off (every page live)."""
    value = os.environ.get(LEVELS_SETTING, ",".join(DEFAULT_LEVELS))
    if has_app_context():
        value = current_app.config.get(LEVELS_SETTING, value)
    return {v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()}


def uses_summary(scope) -> bool:
    """Whether the scope's student numbers come from the snapshot: province and city bureaus (and the
    superadmin) by default; schools and counties are counted live."""
    level = "all" if scope.is_all else scope.region_level if scope.kind == "region" else scope.kind
    return level in summary_levels()


def may_refresh(actor) -> bool:
    """The command line (actor None) and the accounts whose numbers come from the snapshot."""
    return actor is None or uses_summary(scope_of(actor))


def snapshot(session):
    """The newest finished refresh (id, as_of), or None; memoised with the cut."""
    memo = session.info.setdefault(_MEMO, {})
    if "snapshot" not in memo:
        memo["snapshot"] = session.execute(
            select(StatisticsRefresh.id, StatisticsRefresh.as_of).where(StatisticsRefresh.state == "done")
            .order_by(StatisticsRefresh.id.desc()).limit(1)).first()
    return memo["snapshot"]


def source(session, scope):
    """The snapshot the scope's numbers come from, or None for live numbers (a school, a county, or no
    snapshot yet)."""
    return snapshot(session) if uses_summary(scope) else None


@dataclass(frozen=True)
class Freshness:
    """What the page says about where its numbers come from."""
    summary: bool                      # the scope is one that reads the snapshot
    as_of: datetime | None             # 数据截至 (None: live numbers)
    running_since: datetime | None     # a refresh asked for and not finished
    failed: str | None                 # the newest refresh failed (the older snapshot stays)
    may_refresh: bool


def freshness(session, scope, actor) -> Freshness:
    """For the page: the numbers' source (`scope`: the user's, or the school chosen in the filter, which is counted
    live) and, for those who may refresh, whether a refresh runs or the last one failed."""
    summary, may = uses_summary(scope), may_refresh(actor)
    if not (summary or may):
        return Freshness(False, None, None, None, False)
    done = snapshot(session)
    newest = session.scalars(select(StatisticsRefresh).order_by(StatisticsRefresh.id.desc()).limit(1)).first()
    failed = newest.error or "未知原因" if newest is not None and newest.state == "failed" else None
    active = _active(session)
    return Freshness(summary, done.as_of if summary and done else None, active.requested_at if active else None,
                     failed, may)


def _active(session):
    """The refresh asked for and not finished (queued or running), unless it is older than STALE_AFTER."""
    from app import clock
    return session.scalars(select(StatisticsRefresh).where(
        StatisticsRefresh.state == "queued", StatisticsRefresh.requested_at >= clock.now() - STALE_AFTER)
        .order_by(StatisticsRefresh.id.desc()).limit(1)).first()


def _check(actor):
    if not may_refresh(actor):
        raise RuleError(REFUSED, code="statistics_refresh_forbidden", status=403)


def _new_run(session, actor) -> StatisticsRefresh:
    """A run row (audited like every row). The system's bookkeeping, not a record in the user's scope: the
    authority was checked by the caller (`_check`)."""
    from app import clock
    from app.scoping import system_write
    run = StatisticsRefresh(state="queued", requested_at=clock.now(),
                            requested_by=actor.username if actor is not None else None)
    with system_write(session):
        session.add(run)
        session.flush()
    return run


@service
def request_refresh(session, actor) -> tuple[StatisticsRefresh, bool]:
    """刷新统计: a queued refresh (committed, so every web worker shows it running), or the one already asked
    for — a second click while it runs starts nothing. Returns (the run, whether it is new)."""
    _check(actor)
    active = _active(session)
    return (active, False) if active is not None else (_new_run(session, actor), True)


def start_refresh(session, actor) -> StatisticsRefresh:
    """The button: ask for a refresh and hand it to app.jobs (a thread of this process, or an RQ job for a
    `xueji worker`)."""
    from app import jobs
    run, new = request_refresh(session, actor)
    if new:
        try:
            jobs.enqueue("app.statistics.run_refresh", run.id, job_id=f"statistics-{run.id}-{uuid.uuid4().hex[:8]}",
                         on_lost="app.statistics.refresh_lost")
        except jobs.Unavailable as exc:
            log.error("statistics refresh %s: the queue is unavailable (%s)", run.id, exc)
            _finish_failed(session, run.id, QUEUE_DOWN)
            raise RuleError(QUEUE_DOWN, code="queue_unavailable", status=503)
    return run


def run_refresh(run_id: int) -> None:
    """The background job: the refresh as the account that asked for it (its authority checked again)."""
    from app.extensions import db
    from models import XuejiUser
    session = db.session
    try:
        name = session.scalar(select(StatisticsRefresh.requested_by).where(StatisticsRefresh.id == run_id))
        actor = session.scalar(select(XuejiUser).where(XuejiUser.username == name)) if name else None
        if name and actor is None:
            raise RuleError(REFUSED, code="statistics_refresh_forbidden", status=403)
        refresh(session, actor, run_id)
    except Exception as exc:                   # recorded on the run; the older snapshot stays
        log.exception("statistics refresh %s failed", run_id)
        _finish_failed(session, run_id, exc.message if isinstance(exc, RuleError) else "刷新出错，请联系系统管理员")
    finally:
        session.remove()


def refresh_lost(run_id: int, retrying: bool = False) -> None:
    """app.jobs' on_lost: a queued run that died is retried (still queued) or recorded failed."""
    if not retrying:
        from app.extensions import db
        _finish_failed(db.session, run_id, "刷新任务中断")


def _finish_failed(session, run_id: int, message: str) -> None:
    from app import clock
    session.rollback()
    session.execute(update(StatisticsRefresh).where(StatisticsRefresh.id == run_id,
                                                    StatisticsRefresh.state == "queued")
                    .values(state="failed", error=message[:500], finished_at=clock.now()))
    session.commit()


def _replace_tally(session, run_id: int) -> None:
    """The older snapshots' rows out, this one's in: one set-based INSERT … SELECT of the page's own GROUP BY."""
    session.execute(delete(StudentTally).where(StudentTally.refresh_id < run_id))
    _insert_tally(session, run_id)


def _insert_tally(session, run_id: int) -> None:
    q = tally_select()
    q = q.with_only_columns(literal_column(str(int(run_id))), *q.selected_columns)
    session.execute(insert(StudentTally).from_select(["refresh_id", *TALLY], q))


@service
def refresh(session, actor, run_id: int | None = None) -> StatisticsRefresh | None:
    """Write a new snapshot in one transaction: claim the run (a queued one, or a new one from the command
    line), delete the older snapshots' rows, insert this one's, record its 数据截至 time. Readers see the old
    snapshot or the new one, never half; a failure rolls everything back and leaves the old one. None when the
    run was already handled by another worker (a duplicate job)."""
    from app import clock
    _check(actor)
    started = time.perf_counter()
    if run_id is None:
        run_id = _new_run(session, actor).id
    elif not session.execute(update(StatisticsRefresh).where(        # claimed once: a duplicate does nothing
            StatisticsRefresh.id == run_id, StatisticsRefresh.state == "queued").values(state="done")).rowcount:
        return None
    as_of = clock.now()
    _replace_tally(session, run_id)
    if session.connection().dialect.name == "postgresql":
        # the planner's row counts for the new snapshot at once (ANALYZE counts this transaction's own rows),
        # not after autovacuum: with a stale estimate the page's aggregates spill to disk
        session.execute(text("ANALYZE student_tally"))
    groups, students = session.execute(select(func.count(), func.coalesce(func.sum(StudentTally.n), 0))
                                       .where(StudentTally.refresh_id == run_id)).one()
    session.execute(update(StatisticsRefresh).where(StatisticsRefresh.id == run_id).values(
        state="done", as_of=as_of, finished_at=clock.now(), groups=groups, students=int(students),
        millis=int((time.perf_counter() - started) * 1000)))
    return session.get(StatisticsRefresh, run_id)
