"""Benchmark: a county's 20,000-row 小学毕业生名单 (小升初), dry run (read + per-row identifier checks + set-wise
lookups), first import (bulk INSERT of graduates and their spans) and re-import (UPDATE by 学籍号), against
baselines measured in the same run: python-calamine reading the same file and one bulk INSERT of the same rows.

    .venv/bin/python bench/bench_roster.py [--rows 20000] [--repeat 5] [--database-url URL]

Writes nothing into the project database (a scratch SQLite file, or the given URL's database, emptied first)."""
import argparse
import io
import os
import statistics
import sys
import time
from datetime import date, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import p95, ratio_table, scratch_app, timed, write_report  # noqa: E402

YEAR = 2026


def roster_file(rows: int) -> tuple[bytes, list[dict]]:
    """A roster as the primary system exports it: valid G学籍号 = G + ID number, 60 schools of the county."""
    from openpyxl import Workbook
    from app.identity import with_check_char
    from app.rosters import COLUMNS
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("小学毕业生名单")
    ws.append([c.name for c in COLUMNS])
    people = []
    for i in range(rows):
        born = date(2013, 9, 1) + timedelta(days=i % 365)
        seq = i // 365                                   # up to 999 a day: 365,000 distinct numbers
        number = with_check_char(f"410102{born:%Y%m%d}{seq:03d}")
        sex = "男" if seq % 2 else "女"
        school = i % 60
        person = dict(xjh=f"G{number}", name=f"王{'明红刚丽'[i % 4]}{i}"[:2] + "某", sex=sex, born=born,
                      number=number, school=f"中原区第{school + 1}小学", code=f"41010210{school:02d}")
        ws.append([person["xjh"], person["name"], sex, born.isoformat(), "居民身份证", number, person["school"],
                   person["code"], str(YEAR)])
        people.append(person)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue(), people


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    app, url = scratch_app(args.database_url)

    from python_calamine import CalamineWorkbook
    from sqlalchemy import delete, insert, select

    from app import rosters, spreadsheets
    from app.extensions import db
    from models import AuditEvent, Enrollment, School, Student
    from models.admissions import RosterBatch

    data, people = roster_file(args.rows)
    with app.app_context():
        school_id = db.session.scalar(select(School.id).where(School.code == "4101020001"))

        def read_baseline():
            CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()

        def dry_run():
            rows_, issues = spreadsheets.read_table(data, "bench.xlsx", rosters.COLUMNS)
            checked = rosters.check_roster(db.session, "410102", YEAR, rows_, issues)
            assert len(checked.graduates) == args.rows, (len(checked.graduates), checked.issues[:3])
            db.session.rollback()

        def insert_baseline():
            db.session.execute(insert(Student.__table__), [
                dict(xjh=p["xjh"], name=p["name"], sex="1", birth_date=p["born"], id_type="1", id_number=p["number"],
                     school_id=school_id, stage="小学", cohort_year=YEAR - 6, status="毕业", has_problem=False,
                     needs_completion=False) for p in people])
            db.session.rollback()

        def wipe():
            ids = select(Student.id).where(Student.stage == "小学")
            db.session.execute(delete(Enrollment).where(Enrollment.student_id.in_(ids)))
            db.session.execute(delete(AuditEvent))           # a scratch database: the audit rows of the run
            db.session.execute(delete(Student).where(Student.stage == "小学"))
            db.session.execute(delete(School).where(School.school_type == "小学"))
            db.session.execute(delete(RosterBatch))
            db.session.commit()

        def first_import():
            runs = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                batch = rosters.receive(db.session, None, data, "bench.xlsx", "410102", YEAR)
                created, _ = rosters.import_batch(db.session, None, batch)
                runs.append(time.perf_counter() - start)
                assert created == args.rows
                wipe()
            return statistics.median(runs), p95(runs)

        def reimport():
            batch = rosters.receive(db.session, None, data, "bench.xlsx", "410102", YEAR)
            _, updated = rosters.import_batch(db.session, None, batch)
            assert updated == args.rows

        results = [("read (python-calamine), baseline", timed(read_baseline, args.repeat), None),
                   ("dry run: read + check", timed(dry_run, args.repeat), 0),
                   ("bulk INSERT of the rows, baseline", timed(insert_baseline, args.repeat), None),
                   ("first import: read + check again + insert graduates, spans, audit", first_import(), 2)]
        batch = rosters.receive(db.session, None, data, "bench.xlsx", "410102", YEAR)
        rosters.import_batch(db.session, None, batch)
        results.append(("re-import of the same roster: check + UPDATE by 学籍号", timed(reimport, args.repeat), 2))
        wipe()
    dialect = url.split(":", 1)[0].split("+")[0]
    lines = [f"### 小学毕业生名单 import — {dialect}", "",
             f"`bench/bench_roster.py --rows {args.rows}` — {date.today()}, {args.rows:,} rows, {dialect}, "
             f"{os.cpu_count()} cores, median and p95 of {args.repeat} runs.", ""] + ratio_table(results)
    floor = results[0][1][0] + results[2][1][0]
    total = results[1][1][0] + results[3][1][0]
    lines += ["", f"Dry run + import {total:.2f} s against a floor of {floor:.2f} s (calamine read + one bulk INSERT): "
              f"**{total / floor:.1f}x** (target ≤ 5x, as for the admission import)."]
    print("\n".join(lines))
    write_report(f"roster-{dialect}", "\n".join(lines))


if __name__ == "__main__":
    main()
