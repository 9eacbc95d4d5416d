"""Benchmark: 升级 of a county of N students (default 200,000) against the baseline of one set-based UPDATE of
the same rows (what a row-rewriting promotion would cost at best).

    .venv/bin/python bench/bench_promotion.py [--students 200000] [--repeat 5] [--database-url URL]

Grades here are cohort + the county's school year, so 升级 is the preview's GROUP BY plus one setting row."""
import argparse
import os
import sys
from datetime import date

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import scratch_app, timed, write_report  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--database-url")
    args = ap.parse_args()
    app, url = scratch_app(args.database_url)

    from sqlalchemy import delete, insert, select, text

    from app import schoolyear
    from app.extensions import db
    from models import School, SchoolClass, Setting, Student

    with app.app_context():
        db.session.execute(delete(Student).where(Student.cohort_year == schoolyear.by_date() - 2))  # graduated
        schools = list(db.session.scalars(select(School.id).where(School.county_code == "410102")))
        classes = db.session.execute(select(SchoolClass.id, SchoolClass.school_id, SchoolClass.stage,
                                            SchoolClass.cohort_year).where(SchoolClass.school_id.in_(schools),
                                                                           SchoolClass.cohort_year > schoolyear.by_date() - 2)).all()
        rows = []
        for i in range(args.students):
            cid, sid, stage, cohort = classes[i % len(classes)]
            rows.append(dict(xjh=f"L410102{i:012d}", name=f"学生{i}", sex="1", birth_date=date(2012, 1, 1), id_type="Z", school_id=sid,
                             stage=stage, cohort_year=cohort, class_id=None, status="在校", has_problem=False))
        for start in range(0, len(rows), 10000):
            db.session.execute(insert(Student), rows[start:start + 10000])
        db.session.commit()
        year = schoolyear.current(db.session, "410102")

        def promote():
            assert schoolyear.promote(db.session, None, "410102", year + 1)
            db.session.execute(delete(Setting).where(Setting.key == schoolyear.KEY))
            db.session.commit()

        def baseline():
            db.session.execute(text("UPDATE student SET cohort_year = cohort_year - 1 WHERE status = '在校' AND "
                                    "school_id IN (SELECT id FROM school WHERE county_code = '410102')"))
            db.session.rollback()

        base, prom = timed(baseline, args.repeat), timed(promote, args.repeat)
    dialect = url.split(":", 1)[0].split("+")[0]
    lines = [f"### 升级 of a {args.students:,}-student county — {dialect}", "",
             f"`bench/bench_promotion.py --students {args.students}` — {date.today()}, {dialect}, median and p95 of "
             f"{args.repeat} runs.", "",
             "| step | median s | p95 s | ratio to baseline |", "|---|---|---|---|",
             f"| one set-based UPDATE of the county's rows, baseline | {base[0]:.3f} | {base[1]:.3f} | — |",
             f"| 升级 (preview GROUP BY + setting) | {prom[0]:.3f} | {prom[1]:.3f} | **{prom[0] / base[0]:.2f}x** |"]
    print("\n".join(lines))
    write_report(f"promotion-{dialect}", "\n".join(lines))

if __name__ == "__main__":
    main()
