"""Benchmark: the student list (/student/list/) as bureau staff of a 10,000-student county, of the 200,000-student
county and of the province (every school), against the bare SQL of the same page measured in the same run.

    .venv/bin/python bench/bench_list.py [--students 1000000] [--database-url URL] [--repeat 30] [--fresh]

The province comes from bench/generate.py (reused when the database already holds one of this size; --fresh
regenerates). Cases per county: two filters (在校 and one 年级), a 1- and a 2-character name search, a 学籍号
prefix; for the province bureau (bench_province): 在校 + 年级, 在校 + 性别 and 在校 + a 2-character name. Each
case runs `repeat` times alternating the page (server time through the Flask test client, signed in through the
login form) and its bare SQL (the page's own statements minus FAB's reload of the signed-in
user, replayed on a raw DBAPI connection), so both see the same machine load. Reported: median and p95 of
both, their ratio, SQL statements per request, the plan of each statement, and checks: no permission query,
only the listed columns, no N+1, no whole-table scan. Writes the "list-<database>" section of
docs/PERFORMANCE.md ("-5m" etc. for a province of another size than the report's default)."""
import os
import re
import sys
import time
from datetime import date
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import pages, province  # noqa: E402
from bench.common import section_name, write_report  # noqa: E402

TARGET_RATIO, TARGET_10K_MS = 1.5, 60
DIALECTS = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
NAME_1, NAME_2 = "涵", "王浩"
LISTED = {"xjh", "name", "sex", "birth_date", "cohort_year", "status", "has_problem", "id", "school_id"}


def cases(info):
    year = info["school_year"]
    out = []
    for key, user in (("county", "bench_county"), ("big_county", "bench_big_county")):
        county = info[key]
        label = f"{county['students']:,}-student county"
        # born January–September 13 years ago, in the county (a made-up county's students carry a real one's code)
        prefix = f"G{province.address_code(county['code'])}{year - 13}0"
        out += [(label, user, "在校 + 年级 (two filters)", f"_flt_3_status={quote('在校')}&_flt_0_cohort_year={year - 1}"),
                (label, user, f"姓名 contains 1 character ({NAME_1})", f"_flt_2_name={quote(NAME_1)}"),
                (label, user, f"姓名 contains 2 characters ({NAME_2})", f"_flt_2_name={quote(NAME_2)}"),
                (label, user, f"学籍号 starts with {prefix}", f"_flt_0_xjh={prefix}")]
    # the province bureau sees every school: its filters count across the whole province
    label = f"province ({info['students']:,} students)"
    status = f"_flt_3_status={quote('在校')}"
    out += [(label, "bench_province", "在校 + 年级 (two filters)", f"{status}&_flt_0_cohort_year={year - 1}"),
            (label, "bench_province", "在校 + 性别 (two filters)", f"{status}&_flt_0_sex=2"),
            (label, "bench_province", f"在校 + 姓名 contains 2 characters ({NAME_2})",
             f"{status}&_flt_2_name={quote(NAME_2)}")]
    return out


def fab_default_shape(conn, dialect, county, year):
    """What the page ran before this work, bare: FAB's count over every column, the page with every student
    column and five joins (eager school, region, class, class's school, region), ORDER BY id, and the scope
    as an IN-subquery (twice). Timed a few times for the report's "before" line."""
    p = "%s" if dialect == "postgresql" else "?"
    scope = f"student.school_id IN (SELECT school.id FROM school WHERE school.county_code = {p})"
    where = f"student.cohort_year = {p} AND student.status = {p} AND {scope} AND {scope}"
    params = (year - 1, "在校", county, county)
    count = f"SELECT count(*) FROM (SELECT student.* FROM student WHERE {where}) AS anon_1"
    page = (f"SELECT student.*, school_1.*, region_1.*, school_class_1.*, school_2.*, region_2.* FROM student "
            "LEFT OUTER JOIN school AS school_1 ON school_1.id = student.school_id "
            "LEFT OUTER JOIN region AS region_1 ON region_1.code = school_1.county_code "
            "LEFT OUTER JOIN school_class AS school_class_1 ON school_class_1.id = student.class_id "
            "LEFT OUTER JOIN school AS school_2 ON school_2.id = school_class_1.school_id "
            "LEFT OUTER JOIN region AS region_2 ON region_2.code = school_2.county_code "
            f"WHERE {where} ORDER BY student.id ASC LIMIT 25")
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        pages.replay(conn, [(count, params), (page, params)])
        runs.append(time.perf_counter() - start)
    return min(runs)


def main():
    args, info, conn, dialect, machine = pages.page_bench(__doc__.splitlines()[0], repeat=30)
    with pages.quiet_logs():
        app = pages.make_app(args.database_url)
        with app.app_context():
            from app.extensions import db
            engine = db.engine
        clients = {}
        results = []
        for label, user, what, query in cases(info):
            client = clients.get(user) or clients.setdefault(user, pages.signed_in(app, user))
            url = "/student/list/?" + query
            for _ in range(3):                                    # warm: caches, plans, permission cache
                assert client.get(url).status_code == 200
            with pages.StatementLog(engine) as log:
                html = client.get(url).get_data(as_text=True)
            statements = pages.data_statements(log.statements)
            found = re.search(r"记录数目:</strong>\s*(\d+)|Record Count:</strong>\s*(\d+)", html)
            rows = int(next(g for g in found.groups() if g)) if found else None
            plans = [pages.plan(conn, s, p) for s, p in statements if "student" in s]
            page_sql = next((s for s, _ in statements if "LIMIT" in s and "FROM student" in s), "")
            selected = set(re.findall(r"student\.(\w+) AS student_\w+", page_sql))
            page_runs, bare_runs, sql_in_page = [], [], []
            for _ in range(args.repeat):
                with pages.StatementLog(engine) as timing:
                    start = time.perf_counter()
                    resp = client.get(url)
                    page_runs.append(time.perf_counter() - start)
                assert resp.status_code == 200
                sql_in_page.append(timing.seconds)
                start = time.perf_counter()
                pages.replay(conn, statements)
                bare_runs.append(time.perf_counter() - start)
            results.append(dict(label=label, what=what, rows=rows, page=pages.summary(page_runs),
                                bare=pages.summary(bare_runs), sql_in_page=pages.summary(sql_in_page)[0],
                                statements=len(log.statements), data_statements=len(statements),
                                permission=len(pages.permission_statements(log.statements)),
                                extra_columns=sorted(selected - LISTED), plans=plans,
                                full_scan=any(pages.scans_whole_table(p) for p in plans)))
            r = results[-1]
            print(f"{label:26s} {what:40s} rows {rows!s:>7} page {r['page'][0] * 1000:7.1f} ms "
                  f"bare {r['bare'][0] * 1000:6.1f} ms  x{r['page'][0] / r['bare'][0]:.2f}  "
                  f"{r['statements']} statements", flush=True)
        before = fab_default_shape(conn, dialect, info["big_county"]["code"], info["school_year"])
    report = render(info, machine, dialect, args, results, before)
    print("\n" + report)
    if not args.no_report:
        write_report(section_name("list", dialect, args.students), report)


def verdict(r):
    ratio = r["page"][0] / r["bare"][0]
    small = r["label"].startswith(f"{province.COUNTY:,}")
    ok = r["page"][0] * 1000 < TARGET_10K_MS if small else ratio <= TARGET_RATIO
    return ratio, ok


def render(info, machine, dialect, args, results, before) -> str:
    big, county = info["big_county"], info["county"]
    lines = [f"## Student list at province scale (学生学籍, bureau staff) — {DIALECTS[dialect]}, "
             f"{info['students']:,} students", "",
             f"`bench/bench_list.py --students {args.students} --repeat {args.repeat}` on {dialect} — "
             f"{date.today().isoformat()}. Machine: {machine}. Data: {info['students']:,} students in "
             f"{info['cities']} cities, {info['counties']} counties, {info['schools']:,} schools, "
             f"{info['classes']:,} classes (bench/generate.py, seed {info['seed']}); the 10,000 county is "
             f"{county['code']} ({county['schools']} schools), the big county {big['code']} "
             f"({big['students']:,} students, {big['schools']} schools, the last rows of the table); the province "
             f"bureau (bench_province) sees all {info['schools']:,} schools."
             + (f" Generating it took {info['seconds']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in
                info["phases"].items()) + ")." if info.get("phases") else ""), "",
             "Page = server time of `GET /student/list/?…` through the Flask test client (signed in through "
             "the login form; routing, session, permission checks, SQL, Jinja). Bare SQL = the page's own "
             "statements replayed on a raw DBAPI connection (the school ids of the county, the count, the page), "
             "without FAB's reload of the signed-in user. Both alternate in one loop, "
             f"{args.repeat} runs each after 3 warm-ups; times in ms.", "",
             "| scope | search | rows | page median | page p95 | bare SQL median | bare p95 | ratio | SQL inside "
             "the page | statements | target |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ratio, ok = verdict(r)
        small = r["label"].startswith(f"{province.COUNTY:,}")
        target = f"< {TARGET_10K_MS} ms" if small else f"≤ {TARGET_RATIO}x"
        lines.append(f"| {r['label']} | {r['what']} | {r['rows'] if r['rows'] is not None else '?':,} | "
                     f"{r['page'][0] * 1000:.1f} | {r['page'][1] * 1000:.1f} | {r['bare'][0] * 1000:.1f} | "
                     f"{r['bare'][1] * 1000:.1f} | {ratio:.2f}x | {r['sql_in_page'] * 1000:.1f} | "
                     f"{r['statements']} | {target} {'met' if ok else '**missed**'} |")
    lines += ["", "Checks on every case: " + "; ".join([
        "permission queries per request: " + str(max(r["permission"] for r in results)),
        "student columns selected beyond the listed ones: " +
        (", ".join(sorted({c for r in results for c in r["extra_columns"]})) or "none"),
        "statements per request: " + "–".join(str(n) for n in sorted({r["statements"] for r in results})) +
        " (the signed-in account with its roles and groups in one statement; then the county's school ids, "
        "the count and the page with school and class names joined in: no N+1; the search form with its 学校 "
        "dropdown comes from a 30 s cache per scope)",
        "a whole-table scan of student in a county's case: " + (
            "**yes**" if any(r["full_scan"] for r in results if not r["label"].startswith("province")) else "none")
        + (" (the province's cases: " + ", ".join(
            f"{r['what']} {'a whole-table scan' if r['full_scan'] else 'index ranges'}"
            for r in results if r["label"].startswith("province")) + "; their scope is every school)"
           if any(r["label"].startswith("province") for r in results) else "")]) + ".",
        "", "Plans (bare statements that read student, in order):", ""]
    for r in results:
        lines.append(f"- {r['label']}, {r['what']}: " + " | ".join(r["plans"]))
    lines += ["", f"Before this work the same big-county page (在校 + 年级) ran FAB's default SQL: a count over "
              f"every column and a page of all 56 student columns with five eager joins, `ORDER BY id`, the "
              f"scope as an IN-subquery twice — {before * 1000:.0f} ms of SQL alone (best of 3"
              + ("; the planner walks the primary key from id 1, and the big county's rows are the last ones"
                 if dialect == "postgresql" else "") + "), plus a dropdown of every class of the county in the "
              "search form."]
    lines += ["", *notes(results, dialect)]
    return "\n".join(lines)


def notes(results, dialect):
    import statistics as stats
    fixed = stats.median((r["page"][0] - r["sql_in_page"]) * 1000 for r in results)
    out = ["What the page does: `StudentListInterface` (views/student_list.py) counts with `SELECT count(*) FROM "
           "student WHERE …` and loads the page with only the listed columns, the school name and class joined "
           "in; the county's schools are resolved to ids first (`app.scoping.resolved_scope_condition`) and "
           "the list is ordered by school, then id, so the database reads one school's index range per page; "
           "Chinese name searches use LIKE instead of ILIKE (same rows for text without cased letters) and a "
           "学籍号 prefix is a range, read per school from the index (school_id, xjh); the composite index "
           "(school_id, status, cohort_year, id) serves the filtered count (index-only) and the ordered page.",
           "", f"Python per page (page minus its SQL, median of all cases): {fixed:.0f} ms — FAB's Jinja page "
           "around the list (base layout, the search form with its fifteen fields and their filter choices, "
           "the user menu), the table's cells, and Flask-Login, the session and the request hooks; the menu is "
           "rendered once per role set and language and the row buttons once per page (docs/ARCHITECTURE.md, "
           "\"A page's fixed cost\"). It does not grow with the county."
           + (" On SQLite the statement timer sees execute() only (rows are fetched later), so this is an upper "
              "bound." if dialect == "sqlite" else "")]
    small = [r for r in results if r["label"].startswith(f"{province.COUNTY:,}") and not verdict(r)[1]]
    big = [r for r in results if not r["label"].startswith(f"{province.COUNTY:,}") and not verdict(r)[1]]
    if not small and not big:
        return out + ["", "All targets met in this run."]
    if small:
        out += ["", "Missed, 10,000 county: " + ", ".join(f"{r['what']} {r['page'][0] * 1000:.0f} ms" for r in small)
                + f". The SQL is {min(r['sql_in_page'] for r in small) * 1000:.0f}–"
                f"{max(r['sql_in_page'] for r in small) * 1000:.0f} ms of it; the rest is the fixed cost above, "
                "which on this shared 2-core machine moves with the load (the load average is in the first "
                "line)."]
    if big:
        need = 2 * fixed
        out += ["", "Missed (ratio ≤ 1.5x): " + ", ".join(
            f"{r['label']}, {r['what']} {verdict(r)[0]:.1f}x" for r in big)
            + f". A ratio of 1.5 needs the bare SQL to be at "
            f"least twice the page's fixed Python cost, about {need:.0f} ms; with the indexes and the school-id "
            "scope the big county's SQL is faster than that, so the fixed cost dominates the ratio while the "
            "page itself is fast. (FAB's default SQL, measured above, would have come closer to the ratio by "
            "being slow.) Done so far (2026-11-30): the account and its roles in one statement instead of "
            "three, the menu rendered once per role set and language, the row buttons built once per page and "
            "the cells formatted in one pass, the search filters converted once per view — the fixed cost went "
            "from about 31 ms to the figure above, and the big county's pages from 45–83 ms (2026-11-29) to the ones in the table; on PostgreSQL a region's schools are one array parameter (`school_id = ANY(:ids)`), so the statements' text no longer grows with the county. Still to do: "
            "the search form (rendered in full on every list page though hidden until opened) kept per scope "
            "and language, or loaded only when opened; counting only on the first page (or an estimate past "
            "10,000 rows) would cut the big county's count, which is most of its SQL."]
    return out


if __name__ == "__main__":
    main()
