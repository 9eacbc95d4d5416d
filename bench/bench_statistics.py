"""Benchmark: the statistics page (/statistics/) of a whole city as the city bureau user (bench_city), against
its GROUP BY queries run bare in the same run.

    .venv/bin/python bench/bench_statistics.py [--students 1000000] [--database-url URL] [--repeat 15] [--fresh]

The province comes from bench/generate.py (reused when the database holds one of this size). Each run alternates
the page (server time through the Flask test client: every table, the charts' data, Jinja) and the page's own
statements replayed bare on a raw DBAPI connection; the baseline is their GROUP BY statements (the one pass over
the city's students, 学籍异动 per month, 招生 per school), and the report also gives all of the page's data
statements and, for comparison, the five per-table GROUP BYs the page ran before. Writes the "statistics" section
of docs/PERFORMANCE.md (one per database kind)."""
import os
import sys
import time
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import pages  # noqa: E402
from bench.common import write_report  # noqa: E402

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


def main():
    args, info, conn, dialect, machine = pages.page_bench(__doc__.splitlines()[0], repeat=15)
    with pages.quiet_logs():
        app = pages.make_app(args.database_url)
        with app.app_context():
            from app.extensions import db
            engine = db.engine
        client = pages.signed_in(app, "bench_city")
        for _ in range(2):
            assert client.get("/statistics/").status_code == 200
        with pages.StatementLog(engine) as log:
            size = len(client.get("/statistics/").data)
        statements = pages.data_statements(log.statements)
        group_by = [(s, p) for s, p in statements if "GROUP BY" in s]
        plans = [pages.plan(conn, s, p) for s, p in group_by]
        page_runs, bare_runs, all_runs, sql_in_page = [], [], [], []
        for _ in range(args.repeat):
            with pages.StatementLog(engine) as timing:
                start = time.perf_counter()
                assert client.get("/statistics/").status_code == 200
                page_runs.append(time.perf_counter() - start)
            sql_in_page.append(timing.seconds)
            start = time.perf_counter()
            pages.replay(conn, group_by)
            bare_runs.append(time.perf_counter() - start)
            start = time.perf_counter()
            pages.replay(conn, statements)
            all_runs.append(time.perf_counter() - start)
        before = timed_replay(conn, before_queries(dialect, info["city"]["code"]), max(3, args.repeat // 5))
    r = dict(page=pages.summary(page_runs), bare=pages.summary(bare_runs), all=pages.summary(all_runs),
             sql=pages.summary(sql_in_page)[0], statements=len(log.statements), data=len(statements),
             group_by=len(group_by), plans=plans, size=size, before=before,
             permission=len(pages.permission_statements(log.statements)))
    report = render(info, machine, dialect, args, r)
    print("\n" + report)
    if not args.no_report:
        write_report(f"statistics-{dialect}", report)      # one section per database kind


def render(info, machine, dialect, args, r) -> str:
    city = info["city"]
    ratio = r["page"][0] / r["bare"][0]
    ms = lambda v: f"{v * 1000:.1f}"  # noqa: E731
    lines = [f"## Statistics of a city (学籍统计, city bureau) — {'PostgreSQL' if dialect == 'postgresql' else 'SQLite'}",
             "",
             f"`bench/bench_statistics.py --students {args.students} --repeat {args.repeat}` on {dialect} — "
             f"{date.today().isoformat()}. Machine: {machine}. Data: {info['students']:,} students "
             f"(bench/generate.py); city {city['code']} {city['name']}: {city['counties']} counties, "
             f"{city['students']:,} students. Signed in as bench_city; page = server time of `GET /statistics/` "
             f"(seven tables, four charts' data, {r['size'] / 1024:.0f} KB of HTML). Page and bare SQL alternate "
             f"in one loop, {args.repeat} runs after 2 warm-ups; times in ms.", "",
             "| what | median | p95 | ratio to the GROUP BY baseline |", "|---|---|---|---|",
             f"| page | {ms(r['page'][0])} | {ms(r['page'][1])} | {ratio:.2f}x (target ≤ {TARGET_RATIO}x: "
             f"{'met' if ratio <= TARGET_RATIO else '**missed**'}) |",
             f"| its GROUP BY statements bare ({r['group_by']}), baseline | {ms(r['bare'][0])} | "
             f"{ms(r['bare'][1])} | — |",
             f"| all its data statements bare ({r['data']}) | {ms(r['all'][0])} | {ms(r['all'][1])} | "
             f"{r['all'][0] / r['bare'][0]:.2f}x |",
             f"| SQL time inside the page{' (execute() only on SQLite)' if dialect == 'sqlite' else ''} | "
             f"{ms(r['sql'])} | | |",
             f"| before: the five per-table GROUP BYs the page ran until now, bare | {ms(r['before'][0])} | "
             f"{ms(r['before'][1])} | {r['before'][0] / r['bare'][0]:.2f}x |", "",
             f"Statements per request: {r['statements']} (3 are FAB reloading the signed-in user; the page used to "
             "issue 50 for this city: five passes over the students, two settings lookups per county and stage); "
             f"permission queries: {r['permission']}. Plans of the GROUP BYs: " + " | ".join(r["plans"]) + ".", "",
             "How: app/statistics.py cuts 各区县, 学生概况, 各年级, 户口性质 and 班额 from one GROUP BY (school, "
             "stage, 年级 and class, every flag and 户口性质 summed) over the city's 在校 students, with the city's schools "
             "resolved to ids first (an index range per school, not a scan of the whole table), memoised on the "
             "session for the page's seven tables; the county 班额 defaults come from one settings query."]
    if ratio > TARGET_RATIO:
        python = r["page"][0] - r["sql"]
        lines += ["", f"Missed: of the page's {ms(r['page'][0])} ms, {ms(r['sql'])} are SQL and {ms(python)} are "
                  "Python — mostly Jinja writing the 班额 table (a row per class of the city, about 2,000) and the "
                  "school table into HTML and JSON for the charts. What would fix it: page the 班额 table (or show "
                  "only full and 大班额 classes, with the whole table as the .xlsx download) and render the charts "
                  "from the smaller tables; the SQL is one pass and at its floor."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
