"""Benchmark: a background .xlsx export of 100,000 students (the 学生学籍 list's export columns, as a county
clerk), against baselines measured in the same run on the same rows: openpyxl's write-only mode and XlsxWriter's
constant-memory mode writing the rows alone (no database). Memory: a fresh process runs one export and reports its
resident size before and its peak after (target: flat, under 150 MB).

    .venv/bin/python bench/bench_export.py [--rows 100000] [--repeat 3] [--database-url URL]
    .venv/bin/python bench/bench_export.py --province 5000000 --database-url URL [--repeat 3]

Empties the given database first and fills one school with --rows students (a scratch SQLite file by default).
With --province N it leaves the database alone and exports from the province bench/generate.py built there (made
first if missing): the 学生学籍 list of a city bureau (bench_city, a city of 100,000 students) among N."""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import scratch_app, section_name, timed, write_report  # noqa: E402

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"


def fill(app, rows):
    """`rows` students in county 410102's 初中 (bulk insert), spread over the demo's classes."""
    from sqlalchemy import insert, select
    from app.extensions import db
    from models import School, SchoolClass, Student
    with app.app_context():
        school = db.session.scalar(select(School.id).where(School.code == "4101020001"))
        classes = db.session.execute(select(SchoolClass.id, SchoolClass.cohort_year)
                                     .where(SchoolClass.school_id == school)).all()
        batch = []
        for i in range(rows):
            cid, cohort = classes[i % len(classes)]
            birth = date(cohort - 12, 1 + i % 12, 1 + i % 28)
            given = GIVEN[i % len(GIVEN)] + GIVEN[(i // len(GIVEN)) % len(GIVEN)] * (i % 2)
            batch.append(dict(xjh=f"L410102{i:012d}", name=SURNAMES[i % len(SURNAMES)] + given,
                              sex=str(1 + i % 2), birth_date=birth, id_type="1",
                              id_number=f"410102{birth:%Y%m%d}{i % 10000:04d}", school_id=school, stage="初中",
                              cohort_year=cohort, class_id=cid, status="在校", has_problem=False))
            if len(batch) == 10_000:
                db.session.execute(insert(Student), batch)
                batch = []
        if batch:
            db.session.execute(insert(Student), batch)
        db.session.commit()


def export_once(app, view, user_id):
    """One export as the user would start it (the list's scoped ids, the view's columns); returns its row count."""
    from flask import g
    from app import exportjobs
    from app.extensions import db
    from models import ExportJob, XuejiUser
    with app.test_request_context("/student/export/xlsx", method="POST"):
        g.user = db.session.get(XuejiUser, user_id)
        job = exportjobs.start(db.session, user_id, view.export_spec(), view._export_ids(), "学生学籍")
        job_id = job.id
        exportjobs.wait(job_id, timeout=3600)
        db.session.expire_all()
        job = db.session.get(ExportJob, job_id)
        assert job.state == "done", job.error
        os.remove(exportjobs.file_path(job))
        return job.total


def setup(url, username="county_a_clerk"):
    """The app (already filled) with the exporting clerk and the student list view."""
    from sqlalchemy import select
    from app import create_app
    from app.extensions import db
    from models import XuejiUser
    from views.students import StudentView
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "UPLOAD_FOLDER": tempfile.mkdtemp(prefix="xueji-export-")})
    view = next(v for v in app.appbuilder.baseviews if type(v) is StudentView)
    with app.app_context():
        user_id = db.session.scalar(select(XuejiUser.id).where(XuejiUser.username == username))
    return app, view, user_id


def child_memory(url, username):
    """Run in a fresh process: RSS before the export and the process's peak after, in MB."""
    app, view, user = setup(url, username)
    before = _rss_mb()
    n = export_once(app, view, user)
    print(f"{before:.1f} {_peak_mb():.1f} {n}")


def _peak_mb():
    """This process's peak resident size (VmHWM). Not getrusage's ru_maxrss: Linux carries that across exec, so
    a child started by the parent (which holds the baseline's rows) would report the parent's peak."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def _rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--database-url")
    ap.add_argument("--province", type=int, metavar="N", help="export from the generated province of N students")
    ap.add_argument("--no-report", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    ap.add_argument("--child-memory")
    ap.add_argument("--user", default="county_a_clerk")
    args = ap.parse_args()
    if args.child_memory:
        return child_memory(args.child_memory, args.user)

    if args.province:
        from bench import province
        from bench.generate import DEFAULT_URL
        url = args.database_url or DEFAULT_URL
        world = province.ensure_world(url, args.province)
        username = "bench_city"
    else:
        scratch, url = scratch_app(args.database_url)
        fill(scratch, args.rows)
        username = "county_a_clerk"
    app, view, user = setup(url, username)

    import xlsxwriter
    from openpyxl import Workbook
    from flask import g
    from app.exports import export_rows
    from app.extensions import db
    from models import XuejiUser

    with app.test_request_context("/student/export/xlsx"):
        g.user = db.session.get(XuejiUser, user)
        spec = view.export_spec()
        ids = list(db.session.scalars(view._export_ids()))
        rows = [[("" if v is None else str(v)) for v in row] for row in export_rows(db.session, spec, ids)]
    assert args.province or len(rows) >= args.rows          # the province's city exports what it has
    out = os.path.join(tempfile.mkdtemp(prefix="xueji-export-"), "baseline.xlsx")

    def openpyxl_alone():
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("导出")
        ws.append(spec.headers)
        for row in rows:
            ws.append(row)
        wb.save(out)

    def xlsxwriter_alone():
        wb = xlsxwriter.Workbook(out, {"constant_memory": True})
        ws = wb.add_worksheet("导出")
        ws.write_row(0, 0, spec.headers)
        for r, row in enumerate(rows, 1):
            ws.write_row(r, 0, row)
        wb.close()

    base_openpyxl = timed(openpyxl_alone, args.repeat)
    base_xlsxwriter = timed(xlsxwriter_alone, args.repeat)
    job = timed(lambda: export_once(app, view, user), args.repeat)
    mem = subprocess.run([sys.executable, __file__, "--child-memory", url, "--user", username], capture_output=True,
                         text=True, check=True).stdout.split()
    before, peak = float(mem[0]), float(mem[1])

    dialect = url.split(":", 1)[0].split("+")[0]
    cells = len(rows) * len(spec.headers)
    lines = [
        f"## Export of {len(rows):,} rows to .xlsx (后台导出) — {dialect}"
        + (f", from the province of {world['students']:,} students" if args.province else ""),
        "",
        (f"`bench/bench_export.py --province {args.province}` — {date.today()}, {dialect}, {os.cpu_count()} cores, "
         f"load average {os.getloadavg()[0]:.1f} at the end, median and p95 of {args.repeat} runs; "
         f"{len(spec.headers)} columns ({cells:,} cells), the 学生学籍 list's export columns as the city bureau "
         f"bench_city (city {world['city']['code']} {world['city']['name']}, every student of its "
         f"{world['city']['counties']} counties) in the generated province of {world['students']:,} students "
         "(bench/generate.py), school and class names joined, codes turned into labels."
         if args.province else
         f"`bench/bench_export.py --rows {args.rows}` — {date.today()}, {dialect}, {os.cpu_count()} cores, median and "
         f"p95 of {args.repeat} runs; {len(spec.headers)} columns ({cells:,} cells), the 学生学籍 list's export "
         "columns as a county clerk (school and class names joined, codes turned into labels)."),
        "",
        "| step | median s | p95 s | ratio to openpyxl baseline |",
        "|---|---|---|---|",
        f"| openpyxl write-only, the same rows from memory (baseline) | {base_openpyxl[0]:.2f} | {base_openpyxl[1]:.2f} | — |",
        f"| XlsxWriter constant-memory, the same rows from memory | {base_xlsxwriter[0]:.2f} | {base_xlsxwriter[1]:.2f} | "
        f"{base_xlsxwriter[0] / base_openpyxl[0]:.2f}x |",
        f"| background export job: id snapshot + chunked SELECTs + formatting + writing | {job[0]:.2f} | {job[1]:.2f} | "
        f"**{job[0] / base_openpyxl[0]:.2f}x** ({job[0] / base_xlsxwriter[0]:.2f}x of XlsxWriter alone) |",
        "",
        f"Memory (a fresh process running one export): {before:.0f} MB resident before the export, "
        f"**{peak:.0f} MB peak** after it (target < 150 MB: {'met' if peak < 150 else '**missed**'}). "
        "The ids are the only thing held for the whole "
        "export (8 bytes each); rows are read 2,000 at a time and XlsxWriter's constant-memory mode flushes each "
        "row to a temporary file, so the peak does not grow with the row count.",
    ]
    print("\n".join(lines))
    # one section per database kind; the province's export beside it ("export-postgresql-5m")
    name = f"export-{dialect}"
    if args.province:
        name = section_name("export", dialect, args.province)
        name += "-province" if name == f"export-{dialect}" else ""
    if not args.no_report:
        write_report(name, "\n".join(lines))


if __name__ == "__main__":
    main()
