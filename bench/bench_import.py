"""Benchmark: a 20,000-row admission template, dry run (read + set-wise check) and commit, against baselines
measured in the same run: python-calamine reading the same file, and a bulk INSERT of the same rows. Then the
worst realistic first upload: the same number of rows, every one with a problem (bad check characters, bare ID
numbers, unknown 学籍号, wrong names, formulas, stages the school does not admit, duplicates, future dates),
against the clean file, on the CLI path (check_admissions) and the web preview (upload through the test client:
read + check + keep the result, then the first page of the preview).

    .venv/bin/python bench/bench_import.py [--rows 20000] [--repeat 5] [--database-url URL]

Prints median and p95 per step and the ratio to its baseline; writes nothing into the project database
(a scratch SQLite file, or the given URL's database, which it empties first)."""
import argparse
import io
import os
import sys
from datetime import date, datetime, timedelta

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.common import ratio_table, scratch_app, timed, write_report  # noqa: E402


HANZI_DIGITS = str.maketrans("0123456789", "零一二三四五六七八九")     # names have no digits (学生一二三)


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
        year = admissions.admission_year(db.session, "410102")
        db.session.execute(Quota.__table__.update().where(Quota.school_id == school.id).values(planned=args.rows))
        graduates = []
        for i in range(args.rows):                       # graduates of the 初中 to admit (temporary L学籍号)
            born = date(2011, 1, 1) + timedelta(days=i // 9000)
            graduates.append(dict(xjh=f"L410102{born:%Y%m%d}{i % 9000 + 1:04d}", name="学生" + str(i).translate(HANZI_DIGITS), sex="1",
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

        bad_data = _every_row_bad(graduates, year)

        def dry_run_bad():
            rows_, issues = spreadsheets.read_table(bad_data, "bad.xlsx", admissions.COLUMNS)
            checked = admissions.check_admissions(db.session, school, year, rows_, issues)
            assert not checked.valid and len(checked.bad_rows) == args.rows, (len(checked.valid),
                                                                              len(checked.bad_rows))
            db.session.rollback()

        app.config["WTF_CSRF_ENABLED"] = False
        client = app.test_client()
        client.post("/login/", data={"username": "school_a2_clerk", "password": app.config["DEMO_PASSWORD"]})

        def preview(payload, name):
            def run():
                resp = client.post("/admissionimport/upload", headers={"X-Requested-With": "XMLHttpRequest"},
                                   data={"school_id": str(school.id), "file": (io.BytesIO(payload), name)},
                                   content_type="multipart/form-data")
                assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
                page = client.get(resp.get_json()["redirect"])
                assert page.status_code == 200 and "校验结果" in page.get_data(as_text=True)
            run()                                          # warm-up: first request, templates compiled
            return run

        def preview_page(payload, name):
            resp = client.post("/admissionimport/upload", headers={"X-Requested-With": "XMLHttpRequest"},
                               data={"school_id": str(school.id), "file": (io.BytesIO(payload), name)},
                               content_type="multipart/form-data")
            url = resp.get_json()["redirect"]
            return lambda: client.get(url)

        results = [("read (python-calamine), baseline", timed(read_baseline, args.repeat), None),
                   ("dry run: read + check", timed(dry_run, args.repeat), 0),
                   ("bulk INSERT of the rows, baseline", timed(insert_baseline, args.repeat), None),
                   ("commit: check again + insert + review request", timed(commit, args.repeat), 2)]
        worst = [("CLI path (read + check_admissions), clean file, baseline", timed(dry_run, args.repeat), None),
                 ("CLI path, every row with a problem", timed(dry_run_bad, args.repeat), 0),
                 ("web preview (upload: read + check + keep; then page 1), clean file, baseline",
                  timed(preview(data, "clean.xlsx"), args.repeat), None),
                 ("web preview, every row with a problem", timed(preview(bad_data, "bad.xlsx"), args.repeat), 2),
                 ("preview page only (GET, 200 rows of the kept check), clean file",
                  timed(preview_page(data, "clean.xlsx"), args.repeat), None),
                 ("preview page only, every row with a problem", timed(preview_page(bad_data, "bad.xlsx"),
                                                                        args.repeat), 4)]
    dialect = url.split(":", 1)[0].split("+")[0]
    lines = [f"### Admission import — {dialect}", "",
             f"`bench/bench_import.py --rows {args.rows}` — {date.today()}, {args.rows:,} rows, {dialect}, "
             f"{os.cpu_count()} cores, median and p95 of {args.repeat} runs.", ""] + ratio_table(results)
    floor = results[0][1][0] + results[2][1][0]
    total = results[1][1][0] + results[3][1][0]
    lines += ["", f"Dry run + commit {total:.2f} s against a floor of {floor:.2f} s (calamine read + one bulk INSERT): "
              f"**{total / floor:.1f}x** (target ≤ 5x, about 3 s)."]
    lines += ["", f"Every row with a problem ({args.rows:,} rows: 1/8 each wrong check character, bare 18-digit ID "
              "number, unknown 学籍号, wrong name, formula cell, stage the school does not admit, duplicate of an "
              "earlier row, birth date in the future), against the clean file of the same size:", ""]
    lines += ratio_table(worst, "ratio to the clean file", "**{:.2f}x** (target ≤ 2x)")
    print("\n".join(lines))
    write_report(f"import-{dialect}", "\n".join(lines))

def _every_row_bad(graduates, year) -> bytes:
    """The worst realistic first upload: every row has a problem, eight kinds in turn."""
    from datetime import date as _date

    from openpyxl import Workbook

    from app.identity import with_check_char
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("录取名单")
    ws.append(["姓名", "学籍号", "中学阶段"])
    future = _date.today().year + 1
    for i, g in enumerate(graduates):
        body = f"410102{2011 + i % 3}{i % 12 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}"
        good = with_check_char(body)
        kind = i % 8
        if kind == 0:                                     # wrong check character
            ws.append([g["name"], "G" + body + ("0" if good[-1] != "0" else "1"), None])
        elif kind == 1:                                   # a bare ID number
            ws.append([g["name"], good, None])
        elif kind == 2:                                   # well-formed, unknown
            ws.append([g["name"], "G" + good, None])
        elif kind == 3:                                   # wrong name
            ws.append(["错名字", g["xjh"], None])
        elif kind == 4:                                   # a formula typed as the name
            ws.append([f'=B{i + 2}&""', g["xjh"], None])
        elif kind == 5:                                   # a stage the 高中 does not admit
            ws.append([g["name"], g["xjh"], "初中"])
        elif kind == 6:                                   # the previous row's student again
            prev = graduates[i - 1]
            ws.append(["错名字", prev["xjh"], None])
        else:                                             # birth date in the future
            ws.append([g["name"], "G" + with_check_char(f"410102{future}0101{i % 1000:03d}"), None])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


if __name__ == "__main__":
    main()
