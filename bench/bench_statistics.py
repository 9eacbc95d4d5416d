"""Benchmark: the statistics page (/statistics/) of a whole city (bench_city) and of the whole province
(bench_province), each against its own statements run bare in the same run; the snapshot's refresh; and, for
comparison, the same pages counted live.

    .venv/bin/python bench/bench_statistics.py [--students 1000000] [--database-url URL] [--repeat 15] [--fresh]

The province comes from bench/generate.py (reused when the database holds one of this size). First the snapshot is
refreshed (app.statistics.refresh, three times: its median is reported), then each page runs `repeat` times
alternating with its own data statements replayed bare on a raw DBAPI connection (the baseline: the page minus
Python, Jinja and FAB's reload of the signed-in user). Province and city bureaus read the snapshot
(XUEJI_STATISTICS_SUMMARY_LEVELS); the same pages with the snapshot switched off show what the live GROUP BY over
the students costs. Writes the "statistics-<database>" section of docs/PERFORMANCE.md ("-5m" etc. for a province
of another size than the report's default)."""
import os
import re
import sys
import time
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import pages  # noqa: E402
from bench.common import section_name, write_report  # noqa: E402

TARGET_RATIO = 1.5


def before_queries(dialect, city):
    """The page's student SQL before this work (app/statistics.py at 2026-11-28): four GROUP BYs over the same
    rows and a class-size join, each with the scope as an IN-subquery."""
    p = "%s" if dialect == "postgresql" else "?"
    scope = f"student.school_id IN (SELECT school.id FROM school WHERE school.city_code = {p})"
    live = "student.status = '在校' AND student.deleted_at IS NULL"

    def c(cond):
        return f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)"
    yes = "true" if dialect == "postgresql" else "1"
    return [
        (f"SELECT region.name, count(DISTINCT school.id), count(*), {c(chr(39).join(['student.sex = ', '2', '']))}, "
         f"{c(chr(39).join(['student.ethnicity != ', '01', '']))}, {c('student.migrant_child = ' + yes)}, "
         f"{c(chr(39).join(['student.left_behind != ', '0', '']))}, {c('student.has_problem = ' + yes)} "
         "FROM student JOIN school ON school.id = student.school_id JOIN region ON region.code = school.county_code "
         f"WHERE {live} AND {scope} GROUP BY region.code, region.name ORDER BY region.code", (city,)),
        (f"SELECT school.name, count(*), {c(chr(39).join(['student.sex = ', '1', '']))}, "
         f"{c(chr(39).join(['student.sex = ', '2', '']))}, {c(chr(39).join(['student.ethnicity != ', '01', '']))}, "
         f"{c('student.migrant_child = ' + yes)}, {c(chr(39).join(['student.hukou_type = ', '1', '']))}, "
         f"{c(chr(39).join(['student.left_behind != ', '0', '']))}, {c('student.orphan = ' + yes)}, "
         f"{c('student.martyr_child = ' + yes)}, {c('student.needs_aid = ' + yes)}, "
         f"{c(chr(39).join(['student.disability != ', '0', '']))}, {c('student.has_problem = ' + yes)} "
         f"FROM student JOIN school ON school.id = student.school_id WHERE {live} AND {scope} "
         "GROUP BY school.code, school.name ORDER BY school.code", (city,)),
        (f"SELECT student.stage, student.cohort_year, {c(chr(39).join(['student.sex = ', '1', '']))}, "
         f"{c(chr(39).join(['student.sex = ', '2', '']))}, count(DISTINCT student.class_id) FROM student "
         f"WHERE {live} AND {scope} GROUP BY student.stage, student.cohort_year "
         "ORDER BY student.stage, student.cohort_year DESC", (city,)),
        (f"SELECT student.hukou_type, count(*) FROM student WHERE {live} AND {scope} GROUP BY student.hukou_type",
         (city,)),
        ("SELECT school.name, school.county_code, school_class.stage, school_class.cohort_year, school_class.name, "
         "school_class.capacity, count(student.id) FROM school_class JOIN school ON school.id = school_class.school_id "
         f"LEFT OUTER JOIN student ON student.class_id = school_class.id AND {live} "
         f"WHERE school_class.school_id IN (SELECT school.id FROM school WHERE school.city_code = {p}) "
         "GROUP BY school.code, school.name, school.county_code, school_class.id, school_class.stage, "
         "school_class.cohort_year, school_class.name, school_class.capacity "
         "ORDER BY school.code, school_class.cohort_year DESC, school_class.name", (city,)),
    ]


def timed_replay(conn, statements, repeat):
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        pages.replay(conn, statements)
        runs.append(time.perf_counter() - start)
    return pages.summary(runs)


CASES = (("city", "bench_city"), ("province", "bench_province"))
TARGET_PROVINCE_MS = 1000


def main():
    args, info, conn, dialect, machine = pages.page_bench(__doc__.splitlines()[0], repeat=15)
    with pages.quiet_logs():
        app = pages.make_app(args.database_url)
        refresh = refresh_runs(app, 3)
        results = {name: page_case(app, conn, user, args.repeat) for name, user in CASES}
        live_app = pages.make_app(args.database_url, XUEJI_STATISTICS_SUMMARY_LEVELS="")
        live = {name: live_case(live_app, conn, user, max(2, args.repeat // 5)) for name, user in CASES}
        before = timed_replay(conn, before_queries(dialect, info["city"]["code"]), max(3, args.repeat // 5))
    report = render(info, machine, dialect, args, results, live, refresh, before)
    print("\n" + report)
    if not args.no_report:
        write_report(section_name("statistics", dialect, args.students), report)


def refresh_runs(app, repeat):
    """Refresh the snapshot `repeat` times (the CLI's and the button's service); the last one is what the pages
    read. Returns (median seconds, p95, the last run's row count and students)."""
    from app import statistics
    from app.extensions import db
    runs = []
    with app.app_context():
        for _ in range(repeat):
            start = time.perf_counter()
            run = statistics.refresh(db.session, None)
            runs.append(time.perf_counter() - start)
            groups, students = run.groups, run.students
        db.session.remove()
    return (*pages.summary(runs), groups, students)


def _engine(app):
    from app.extensions import db
    with app.app_context():
        return db.engine


def page_case(app, conn, user, repeat):
    """The page as `user` (server time through the test client) alternating with its data statements bare."""
    engine = _engine(app)
    client = pages.signed_in(app, user)
    for _ in range(2):
        assert client.get("/statistics/").status_code == 200
    with pages.StatementLog(engine) as log:
        html = client.get("/statistics/").get_data(as_text=True)
    statements = pages.data_statements(log.statements)
    page_runs, bare_runs, sql_in_page = [], [], []
    for _ in range(repeat):
        with pages.StatementLog(engine) as timing:
            start = time.perf_counter()
            assert client.get("/statistics/").status_code == 200
            page_runs.append(time.perf_counter() - start)
        sql_in_page.append(timing.seconds)
        start = time.perf_counter()
        pages.replay(conn, statements)
        bare_runs.append(time.perf_counter() - start)
    heavy = sorted(((sec, s, p) for s, p, sec in log.statements if s in {x for x, _ in statements}),
                   key=lambda x: -x[0])[:3]
    return dict(page=pages.summary(page_runs), bare=pages.summary(bare_runs), sql=pages.summary(sql_in_page)[0],
                statements=len(log.statements), data=len(statements), size=len(html.encode()),
                permission=len(pages.permission_statements(log.statements)),
                as_of=re.search(r"数据截至 [0-9-]+ [0-9:]+", html).group(0) if "数据截至" in html else None,
                reads_student=any(re.search(r"\bFROM student\b", s) for s, _ in statements),
                plans=[(_what(s), round(sec * 1000), pages.plan(conn, s, p)) for sec, s, p in heavy])


def _what(statement: str) -> str:
    """A few words naming a statement of the page."""
    table = re.search(r"\bFROM (\w+)", statement).group(1)
    return f"{table}{' GROUP BY' if 'GROUP BY' in statement else ''}"


def live_case(app, conn, user, repeat):
    """The same page counted live (the snapshot switched off) and its GROUP BY over the students bare."""
    engine = _engine(app)
    client = pages.signed_in(app, user)
    assert client.get("/statistics/").status_code == 200
    with pages.StatementLog(engine) as log:
        client.get("/statistics/")
    group_by = [(s, p) for s, p in pages.data_statements(log.statements)
                if re.search(r"\bFROM student\b", s) and "GROUP BY" in s]
    page_runs, bare_runs = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        assert client.get("/statistics/").status_code == 200
        page_runs.append(time.perf_counter() - start)
        start = time.perf_counter()
        pages.replay(conn, group_by)
        bare_runs.append(time.perf_counter() - start)
    return dict(page=pages.summary(page_runs), bare=pages.summary(bare_runs),
                plan=pages.plan(conn, *group_by[0]) if group_by else "")


def render(info, machine, dialect, args, results, live, refresh, before) -> str:
    city = info["city"]
    ms = lambda v: f"{v * 1000:.0f}" if v >= 0.1 else f"{v * 1000:.1f}"  # noqa: E731
    db_name = "PostgreSQL" if dialect == "postgresql" else "SQLite"
    scopes = {"city": f"city {city['code']} {city['name']}: {city['counties']} counties, {city['students']:,} students",
              "province": f"province 410000: {info['cities']} cities, {info['counties']} counties, "
                          f"{info['schools']:,} schools, {info['classes']:,} classes, {info['students']:,} students"}
    lines = [f"## Statistics of a city and of the province (学籍统计, city and province bureaus) — {db_name}, "
             f"{info['students']:,} students", "",
             f"`bench/bench_statistics.py --students {args.students} --repeat {args.repeat}` on {dialect} — "
             f"{date.today().isoformat()}. Machine: {machine}. Data: bench/generate.py; the {scopes['city']}; the "
             f"{scopes['province']}. Page = server time of `GET /statistics/` through the Flask test client (seven "
             f"tables, four charts' data); bare SQL = the page's own data statements replayed on a raw DBAPI "
             f"connection. Page and bare SQL alternate in one loop, {args.repeat} runs after 2 warm-ups; times in "
             "ms.", "",
             "| page | numbers | page median | page p95 | its SQL bare, median | ratio | SQL inside the page | "
             "statements | HTML | target |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        ratio = r["page"][0] / r["bare"][0]
        if name == "province":
            met = r["page"][0] * 1000 < TARGET_PROVINCE_MS
            target = f"< {TARGET_PROVINCE_MS} ms " + ("met" if met else "**missed**")
        else:                  # and against the live GROUP BY the snapshot replaces
            target = (f"≤ {TARGET_RATIO}x " + ("met" if ratio <= TARGET_RATIO else "**missed**")
                      + f"; {r['page'][0] / live[name]['bare'][0]:.2f}x the live GROUP BY alone")
        lines.append(f"| {name} ({'bench_' + name}) | snapshot, {r['as_of'] or 'live'} | {ms(r['page'][0])} | "
                     f"{ms(r['page'][1])} | {ms(r['bare'][0])} | {ratio:.2f}x | {ms(r['sql'])} | "
                     f"{r['statements']} ({r['data']} data) | {r['size'] / 1024:.0f} KB | {target} |")
    lines += ["", "The same pages counted live (the snapshot switched off with `XUEJI_STATISTICS_SUMMARY_LEVELS=""`), "
              "and the live GROUP BY over the scope's students alone:", "",
              "| page, live | page median | page p95 | its GROUP BY over student bare, median | p95 |",
              "|---|---|---|---|---|"]
    for name, r in live.items():
        lines.append(f"| {name} | {ms(r['page'][0])} | {ms(r['page'][1])} | {ms(r['bare'][0])} | {ms(r['bare'][1])} |")
    lines += ["", f"Refreshing the snapshot (`flask --app run xueji refresh-statistics`, app.statistics.refresh: one "
              f"transaction deleting the old rows and inserting the GROUP BY over every 在校 student of the "
              f"installation, {refresh[3]:,} students into {refresh[2]:,} rows"
              f"{', then ANALYZE' if dialect == 'postgresql' else ''}): median "
              f"**{refresh[0]:.2f} s** (p95 {refresh[1]:.2f} s) of 3.", "",
              f"For comparison, the city's five per-table GROUP BYs the page ran before the single pass, bare: "
              f"{ms(before[0])} ms.", "",
              "Checks: " + "; ".join([
                  "permission queries per request: " + str(max(r["permission"] for r in results.values())),
                  "statements reading the student table on the snapshot pages: " +
                  ("**yes**" if any(r["reads_student"] for r in results.values()) else "none")]) + ".", "",
              "Heaviest statements of each snapshot page (ms in the captured request, plan):", ""]
    for name, r in results.items():
        lines += [f"- {name}: " + " | ".join(f"{what} {t} ms: {plan}" for what, t, plan in r["plans"])]
    lines += [f"- live GROUP BY, {name}: {r['plan']}" for name, r in live.items()]
    city_r = results["city"]
    python = city_r["page"][0] - city_r["sql"]
    lines += ["", "How: province and city bureaus read the snapshot (`student_tally`, the live GROUP BY's rows stored "
              "by the refresh, and `statistics_refresh`, its 数据截至 time): the seven tables are cut from one "
              "aggregate of the snapshot per (school, stage, cohort) instead of its row per class "
              f"({info['classes']:,} classes in the province), and 班额 counts its size bands in SQL and reads only "
              "the classes that may be full; the page lists the first rows of its per-school tables (the .xlsx "
              "has all). Schools and counties are counted live. "
              f"The city page's ratio to its own SQL is the fixed cost of any page ({ms(python)} ms of Python, "
              f"Jinja and FAB) over {ms(city_r['sql'])} ms of SQL; against the live GROUP BY it replaces it is "
              f"{city_r['page'][0] / live['city']['bare'][0]:.2f}x."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
