"""Generate a province-shaped database for the scale benchmarks (bench/province.py has the shape and the bulk
loaders).

    .venv/bin/python bench/generate.py --students N [--database-url URL] [--seed 2026] [--reuse]

N up to 5,000,000 on PostgreSQL (49 cities; about 3 minutes on 2 cores) and 200,000 on SQLite. Without
--database-url the data goes into a scratch SQLite file (its URL is printed). The database is emptied first
(never point this at a database you want to keep); --reuse keeps a province already generated there with the same
N, seed and generator version (migrated in place when the schema has moved on).
Bench accounts (password Xueji#2026, not forced to change): bench_big_county (教育局经办 of the big county),
bench_county (教育局经办 of a 10,000-student county), bench_city (a city bureau), bench_province (the province
bureau, 410000: every school), bench_school (学校学籍管理员 of a school in that county); the demo accounts of the
README exist too.
"""
import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LIMITS = {"postgresql": 5_000_000, "sqlite": 200_000}
DEFAULT_URL = f"sqlite:///{os.path.join(tempfile.gettempdir(), 'xueji-bench-province.db')}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--students", type=int, required=True)
    ap.add_argument("--database-url", default=DEFAULT_URL)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--reuse", action="store_true", help="keep a matching province already in the database")
    args = ap.parse_args(argv)
    from sqlalchemy.engine import make_url

    from bench import province
    backend = make_url(args.database_url).get_backend_name()
    limit = LIMITS.get(backend, 200_000)
    if not 1000 <= args.students <= limit:
        ap.error(f"--students must be between 1,000 and {limit:,} on {backend}")
    info = province.ensure_world(args.database_url, args.students, args.seed, fresh=not args.reuse)
    print(f"\n{args.students:,} students on {make_url(args.database_url).render_as_string()}")
    if "phases" in info:
        print("  " + ", ".join(f"{k} {v} s" for k, v in info["phases"].items()) + f"; total {info['seconds']} s")
    print(f"  {info['cities']} cities, {info['counties']} counties, {info['schools']} schools, "
          f"{info['classes']} classes, {info['requests']} requests")
    print(f"  big county {info['big_county']['code']} {info['big_county']['name']} "
          f"({info['big_county']['students']:,}): bench_big_county")
    print(f"  county {info['county']['code']} {info['county']['name']} ({info['county']['students']:,}): "
          f"bench_county; a school of it: bench_school")
    print(f"  city {info['city']['code']} {info['city']['name']} ({info['city']['students']:,}): bench_city")
    print(f"  province 410000 ({info['students']:,}): bench_province")
    print(f"DATABASE_URL={args.database_url}")


if __name__ == "__main__":
    main()
