"""Benchmark: a 20,000-row admission template, dry run (read + set-wise check) and commit, against baselines
measured in the same run: python-calamine reading the same file, and a bulk INSERT of the same rows.

    .venv/bin/python bench/bench_import.py [--rows 20000] [--repeat 5] [--database-url URL]

Prints median and p95 per step and the ratio to its baseline; writes nothing into the project database
(a scratch SQLite file, or the given URL's database, which it empties first)."""
import argparse
import io
import os
import sys
from datetime import date, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import scratch_app, timed, write_report  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    app, url = scratch_app(args.database_url)

    from openpyxl import Workbook
    from python_calamine import CalamineWorkbook
    from sqlalchemy import delete, insert, select

    from app import admissions, spreadsheets
    from app.extensions import db
    from models import Quota, School, Student
    from models.admissions import Admission

    with app.app_context():
        school = db.session.scalar(select(School).where(School.code == "4101020002"))
        junior = db.session.scalar(select(School.id).where(School.code == "4101020001"))
        year = admissions.admission_year()
        db.session.execute(Quota.__table__.update().where(Quota.school_id == school.id).values(planned=args.rows))
        graduates = []
        for i in range(args.rows):                       # graduates of the 初中 to admit (temporary L学籍号)
            born = date(2011, 1, 1) + timedelta(days=i // 9000)
            graduates.append(dict(xjh=f"L410102{born:%Y%m%d}{i % 9000 + 1:04d}", name=f"学生{i}", sex="1",
                                  birth_date=born, id_type="Z", id_number=None, school_id=junior, stage="初中",
                                  cohort_year=year - 3, status="毕业", has_problem=False))
        for start in range(0, len(graduates), 5000):
            db.session.execute(insert(Student), graduates[start:start + 5000])
        db.session.commit()
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("录取名单")
        ws.append(["姓名", "学籍号", "中学阶段"])
        for g in graduates:
            ws.append([g["name"], g["xjh"], None])
        buf = io.BytesIO()
        wb.save(buf)
        data = buf.getvalue()

        def read_baseline():
            CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()

        def dry_run():
            rows_, issues = spreadsheets.read_table(data, "bench.xlsx", admissions.COLUMNS)
            checked = admissions.check_admissions(db.session, school, year, rows_, issues)
            assert len(checked.valid) == args.rows, (len(checked.valid), checked.issues[:3])
            db.session.rollback()

        ids = [sid for (sid,) in db.session.execute(select(Student.id).where(Student.school_id == junior))]

        def insert_baseline():
            db.session.execute(insert(Admission), [dict(student_id=s, school_id=school.id, year=year, stage="高中",
                                                         state="待审核", current=1, created_at=datetime.now())
                                                    for s in ids])
            db.session.rollback()

        def commit():
            from models import XuejiUser
            actor = db.session.scalar(select(XuejiUser).where(XuejiUser.username == "school_a2_clerk"))
            batch = admissions.receive(db.session, data, "bench.xlsx", school, year, actor)
            admissions.commit_batch(db.session, batch, actor)
            db.session.execute(delete(Admission))
            from models.admissions import ImportBatch
            from models.requests import Request, RequestStep
            db.session.execute(delete(RequestStep))
            db.session.execute(delete(ImportBatch))
            db.session.execute(delete(Request))
            db.session.commit()

        results = [("read (python-calamine), baseline", timed(read_baseline, args.repeat), None),
                   ("dry run: read + check", timed(dry_run, args.repeat), 0),
                   ("bulk INSERT of the rows, baseline", timed(insert_baseline, args.repeat), None),
                   ("commit: check again + insert + review request", timed(commit, args.repeat), 2)]
    dialect = url.split(":", 1)[0].split("+")[0]
    lines = [f"### Admission import — {dialect}", "",
             f"`bench/bench_import.py --rows {args.rows}` — {date.today()}, {args.rows:,} rows, {dialect}, "
             f"{os.cpu_count()} cores, median and p95 of {args.repeat} runs.", "",
             "| step | median s | p95 s | ratio to baseline |", "|---|---|---|---|"]
    for name, (median, p95), base in results:
        ratio = f"{median / results[base][1][0]:.1f}x" if base is not None else "—"
        lines.append(f"| {name} | {median:.3f} | {p95:.3f} | {ratio} |")
    floor = results[0][1][0] + results[2][1][0]
    total = results[1][1][0] + results[3][1][0]
    lines += ["", f"Dry run + commit {total:.2f} s against a floor of {floor:.2f} s (calamine read + one bulk INSERT): "
              f"**{total / floor:.1f}x** (target ≤ 5x, about 3 s)."]
    print("\n".join(lines))
    write_report(f"import-{dialect}", "\n".join(lines))

if __name__ == "__main__":
    main()
