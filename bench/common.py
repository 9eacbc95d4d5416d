"""What every benchmark shares: a timing helper (median and p95) and a scratch app on a fresh database."""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def timed(fn, repeat):
    """(median, p95) seconds of `repeat` runs of fn()."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    runs.sort()
    return statistics.median(runs), runs[min(len(runs) - 1, int(round(0.95 * (len(runs) - 1))))]


def scratch_app(database_url=None):
    """A migrated app with the small demo world on an emptied database (a scratch SQLite file by default).
    Returns (app, url); the caller works inside app.app_context()."""
    from app import create_app
    from app.cli import prepare_database
    from app.demo import load_demo
    from tests.conftest import drop_everything
    tmp = tempfile.mkdtemp(prefix="xueji-bench-")
    url = database_url or f"sqlite:///{tmp}/bench.db"
    drop_everything(url)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "UPLOAD_FOLDER": f"{tmp}/uploads",
                      "FAB_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1",
                      "XUEJI_ARGON2": {"time_cost": 1, "memory_cost": 8, "parallelism": 1}})
    with app.app_context():
        prepare_database(False)
        load_demo(app.appbuilder, classes_per_grade=1, students_per_class=1, graduates=0, with_problems=False,
                  near_cap=False)
    return app, url


def p95(runs):
    """The 95th percentile of a list of timings (nearest rank)."""
    runs = sorted(runs)
    return runs[min(len(runs) - 1, int(round(0.95 * (len(runs) - 1))))]


REPORT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "PERFORMANCE.md")


# The province each database kind's report sections are written for; a province of another size (the 5,000,000
# set) writes sections of its own beside them ("list-postgresql-5m"), so both stay in docs/PERFORMANCE.md.
REPORT_STUDENTS = {"postgresql": 1_000_000, "sqlite": 200_000}


def section_name(kind: str, dialect: str, students: int | None = None) -> str:
    """"<kind>-<database>", with "-5m" (or "-<N>") added for a province other than the report's default size."""
    name = f"{kind}-{dialect}"
    if students is None or students == REPORT_STUDENTS.get(dialect):
        return name
    return name + (f"-{students // 1_000_000}m" if students % 1_000_000 == 0 else f"-{students}")


def write_report(section, markdown):
    """Put `markdown` into docs/PERFORMANCE.md between <!-- bench:section --> markers (appended the first
    time), so each benchmark rewrites only its own part of the report."""
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    text = open(REPORT, encoding="utf-8").read() if os.path.exists(REPORT) else "# Performance\n"
    block = f"{start}\n{markdown.strip()}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(REPORT, "w", encoding="utf-8") as f:
        f.write(text)


def ratio_table(results, heading="ratio to baseline", ratio_format="{:.1f}x") -> list[str]:
    """Markdown rows for [(step, (median, p95), index of its baseline in results or None)]."""
    lines = [f"| step | median s | p95 s | {heading} |", "|---|---|---|---|"]
    for name, (median, p95_), base in results:
        ratio = ratio_format.format(median / results[base][1][0]) if base is not None else "—"
        lines.append(f"| {name} | {median:.3f} | {p95_:.3f} | {ratio} |")
    return lines
