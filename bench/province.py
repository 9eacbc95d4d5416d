"""A province-shaped data set for the scale benchmarks (bench/generate.py builds it; bench_list and
bench_statistics reuse it).

Shape: the small demo world (河南省 410000, 郑州市, two demo counties), plus generated cities 410200, 410300 …
of about ten counties each. One big county holds 200,000 students (half of N below N = 400,000), the other
counties about 10,000 each: 1,000,000 students make 9 cities, 5,000,000 make 49 (the 16 real 河南 cities after
郑州, then made-up ones, 豫18市 …). A made-up county's code exists in no GB/T 2260 table, so its students' ID
numbers carry a real 河南 county's address code instead (`County.address`): every ID number still validates.
Per county: 初中, 高中, 完全中学 and 九年一贯制 schools with 3 grades per stage,
classes of 40–55, students with weighted surnames and common given-name characters, valid 18-digit ID numbers
(MOD 11-2 check digit from python-stdnum), G学籍号 = 'G' + ID, sex from the ID, birth dates matching the cohort,
about 95 % 在校, one open enrollment span each, and requests (wf_request + steps) in every state.

Everything goes in with bulk SQL: psycopg COPY on PostgreSQL, executemany on a raw sqlite3 connection on SQLite
(SQLAlchemy Core batches elsewhere); the student and enrollment indexes are dropped for the load and rebuilt
from the models afterwards, so what is rebuilt is exactly what the migrations create.
"""
from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import create_engine, inspect as sa_inspect, text
from sqlalchemy.engine import make_url

GENERATOR_VERSION = 2            # 2: a province bureau account (bench_province); made-up cities for 5,000,000
BIG_COUNTY = 200_000
COUNTY = 10_000
COUNTIES_PER_CITY = 10
PROVINCE_CODE, PROVINCE_NAME = "410000", "河南省"
PASSWORD = "Xueji#2026"
MARKER = "bench_world"
# Real 河南 cities after 郑州 (the demo's), then made-up ones for very large N.
CITIES = [("410200", "开封市"), ("410300", "洛阳市"), ("410400", "平顶山市"), ("410500", "安阳市"),
          ("410600", "鹤壁市"), ("410700", "新乡市"), ("410800", "焦作市"), ("410900", "濮阳市"),
          ("411000", "许昌市"), ("411100", "漯河市"), ("411200", "三门峡市"), ("411300", "南阳市"),
          ("411400", "商丘市"), ("411500", "信阳市"), ("411600", "周口市"), ("411700", "驻马店市")]
CITIES += [(f"41{n:02d}00", f"豫{n}市") for n in range(18, 90)]
COUNTY_FIRST = "东西南北新永长安平宁顺兴德武文太临广华昌清和通济"
COUNTY_SECOND = "城安宁平阳丰泰和乐江河山川源州陵"
STREETS = ["人民路", "建设路", "解放路", "中山路", "文化路", "新华路", "胜利街", "和平路", "东风路", "朝阳路",
           "光明街", "友谊路", "团结路", "青年路", "民主路", "工业路", "长江路", "黄河路", "迎宾大道", "学府路"]
ENTRY_AGE = {"初中": 12, "高中": 15}
STAGES_OF = {"初中": ("初中",), "高中": ("高中",), "完全中学": ("初中", "高中"), "九年一贯制": ("初中",)}
SCHOOLING = {"初中": "初中3年", "高中": "高中3年", "完全中学": "初中3年+高中3年", "九年一贯制": "九年一贯制"}
SCHOOL_SUFFIX = {"初中": "初级中学", "高中": "高级中学", "完全中学": "中学", "九年一贯制": "九年一贯制学校"}
# (type, weight, classes per grade low, high)
SCHOOL_MIX = [("初中", 45, 4, 10), ("高中", 25, 6, 14), ("完全中学", 15, 3, 8), ("九年一贯制", 15, 2, 4)]
# not 在校 (about 5 %): (status, weight); 退学/开除 only outside compulsory education (高中)
LEAVING = [("休学", 30), ("转出", 25), ("出国", 10), ("其他离校", 10), ("失踪", 5), ("退学", 15), ("死亡", 1)]
OTHER_PROVINCE_CODES = ["340102", "320324", "370102", "420102", "130102", "610102", "140105", "360102"]
MALE_CHARS = "浩宇轩子涵博文昊俊泽睿晨嘉明天瑞鑫杰伟鹏凯磊然豪航辰阳铭逸宸皓煜一诚毅恒峰旭杨帅鸿翔志宏健康亮斌超龙飞海波强军勇刚林森楠朗乐晟哲彬骏亦锦安"
FEMALE_CHARS = "欣怡雨佳思诺涵萱琪妍悦彤可心馨梦婷静雅晴晓颖琳璐洁慧敏丹丽娜娟芳雪倩媛茜露月瑶菲蕾薇语嫣若依一子梓艺紫晗玥钰"
DIGITS = "〇一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1 → 一, 12 → 十二, 20 → 二十, 105 → 一百零五 (school numbers)."""
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return "十" + (DIGITS[n % 10] if n % 10 else "")
    if n < 100:
        return DIGITS[n // 10] + "十" + (DIGITS[n % 10] if n % 10 else "")
    rest = n % 100
    return DIGITS[n // 100] + "百" + ("" if not rest else ("零" + DIGITS[rest] if rest < 10 else chinese_number(rest)
                                                           if rest >= 20 else "一" + chinese_number(rest)))


# --- the plan: cities, counties, schools, classes -------------------------------------------------------

@dataclass
class School:
    code: str
    name: str
    kind: str
    classes: list = field(default_factory=list)      # (stage, cohort, class_no, size)
    id: int | None = None


@dataclass
class County:
    code: str
    name: str
    city_code: str
    target: int
    big: bool = False
    schools: list = field(default_factory=list)
    address: str = ""              # the address code of its students' ID numbers: its own code when GB/T 2260 has it

    def __post_init__(self):
        self.address = self.address or address_code(self.code)


@dataclass
class City:
    code: str
    name: str
    counties: list = field(default_factory=list)


def county_sizes(students: int) -> tuple[int, list[int]]:
    """(big county, [other counties]) summing to `students`."""
    big = min(BIG_COUNTY, students // 2)
    rest = students - big
    sizes = [COUNTY] * (rest // COUNTY)
    remainder = rest % COUNTY
    if remainder >= COUNTY // 5 or not sizes:
        if remainder:
            sizes.append(remainder)
    else:
        big += remainder
    return big, sizes


def _class_sizes(rng, total: int) -> list[int]:
    n = max(1, round(total / 48))
    sizes = [rng.randint(40, 55) for _ in range(n)]
    diff = total - sum(sizes)
    low, high = (40, 55) if 40 * n <= total <= 55 * n else (1, max(55, total))
    while diff:
        i = rng.randrange(n)
        step = 1 if diff > 0 else -1
        if low <= sizes[i] + step <= high:
            sizes[i] += step
            diff -= step
    return sizes


def _county_schools(rng, county: County, year: int) -> None:
    sizes = _class_sizes(rng, county.target)
    weights = [w for _, w, _, _ in SCHOOL_MIX]
    slots = []                                  # (school index, stage, cohort, class_no)
    seen = defaultdict(int)
    while len(slots) < len(sizes):
        kind, _w, low, high = rng.choices(SCHOOL_MIX, weights)[0]
        seen[kind] += 1
        index = len(county.schools)
        number = chinese_number(seen[kind])
        county.schools.append(School(code=f"{county.code}{index + 1:04d}", kind=kind,
                                     name=f"{county.name}第{number}{SCHOOL_SUFFIX[kind]}"))
        k = rng.randint(low, high)
        for stage in STAGES_OF[kind]:
            for offset in range(3):
                per_grade = max(1, k + rng.randint(-1, 1))
                for no in range(1, per_grade + 1):
                    slots.append((index, stage, year - offset, no))
    slots = slots[:len(sizes)]                  # the last school may lack its top grades (newly opened)
    county.schools = county.schools[:slots[-1][0] + 1]
    rng.shuffle(sizes)
    for (index, stage, cohort, no), size in zip(slots, sizes):
        county.schools[index].classes.append((stage, cohort, no, size))


def plan_province(students: int, year: int, seed: int = 2026) -> list[City]:
    rng = random.Random(seed)
    big, sizes = county_sizes(students)
    cities = []
    for i in range(0, len(sizes), COUNTIES_PER_CITY):
        code, name = CITIES[len(cities)]
        cities.append(City(code, name))
        for j, size in enumerate(sizes[i:i + COUNTIES_PER_CITY]):
            cities[-1].counties.append(County(_county_code(code, j), _county_name(rng, j), code, size))
    code, name = CITIES[len(cities)]
    cities.append(City(code, name, [County(_county_code(code, 0), _county_name(rng, 0), code, big, big=True)]))
    for city in cities:
        for county in city.counties:
            _county_schools(rng, county, year)
    return cities


def _county_code(city_code: str, j: int) -> str:
    """Districts 02, 03, 04, then counties 21, 22 … (GB/T 2260 style). A code GB/T 2260 never had (開封 has no
    410226) is replaced by the city's first real code not taken by this scheme, so every generated ID number
    and G学籍号 passes app.identity (its address code must exist or have existed). A made-up city has no real
    codes to spare: its counties keep the scheme's codes and borrow an address code (`address_code`)."""
    from app.identity import region_known
    wanted = [city_code[:4] + (f"{k + 2:02d}" if k < 3 else f"{21 + k - 3:02d}") for k in range(COUNTIES_PER_CITY)]
    code = wanted[j]
    if region_known(code):
        return code
    spare = [c for c in (f"{city_code[:4]}{n:02d}" for n in range(2, 100)) if region_known(c) and c not in wanted]
    missing = [c for c in wanted[:j + 1] if not region_known(c)]
    return spare[len(missing) - 1] if len(missing) <= len(spare) else code


_REAL_COUNTIES: list[str] = []


def address_code(county_code: str) -> str:
    """The county's own code when GB/T 2260 knows it, else a real 河南 county's (the same one for the same code)."""
    from app.identity import region_known
    if region_known(county_code):
        return county_code
    if not _REAL_COUNTIES:
        _REAL_COUNTIES.extend(c for c in (f"41{city:02d}{n:02d}" for city in range(1, 18) for n in range(2, 100))
                              if region_known(c))
    return _REAL_COUNTIES[int(county_code) % len(_REAL_COUNTIES)]


def _county_name(rng, j: int) -> str:
    return rng.choice(COUNTY_FIRST) + rng.choice(COUNTY_SECOND) + ("区" if j < 3 else "县")


# --- people -------------------------------------------------------------------------------------------

def _zipf(chars: str, s: float = 0.9):
    population = list(dict.fromkeys(chars))
    weights = [1 / (rank + 1) ** s for rank in range(len(population))]
    return population, _cumulative(weights)


def _cumulative(weights):
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


class People:
    """Names, ID numbers and the rest of a student's record, drawn from fixed distributions."""

    def __init__(self, seed: int):
        from faker.providers.person.zh_CN import Provider
        from stdnum.cn import ric
        self.rng = random.Random(seed)
        self.surnames = list(Provider.last_names)
        self.surname_cum = _cumulative(Provider.last_names.values())
        self.male, self.male_cum = _zipf(MALE_CHARS)
        self.female, self.female_cum = _zipf(FEMALE_CHARS)
        self.check = ric.calc_check_digit
        self.next_seq = {}                      # (address code, birth date, parity) → next sequence number
        self.next_temp = defaultdict(int)       # (county, birth date) → last L学籍号 sequence
        self.days = {}

    def names(self, sexes):
        rand = self.rng.random
        surnames = self.rng.choices(self.surnames, cum_weights=self.surname_cum, k=len(sexes))
        choices = self.rng.choices
        out = []
        for surname, sex in zip(surnames, sexes):
            pool, cum = (self.male, self.male_cum) if sex == "1" else (self.female, self.female_cum)
            out.append(surname + "".join(choices(pool, cum_weights=cum, k=1 if rand() < 0.2 else 2)))
        return out

    def day(self, ordinal: int):
        """(date, 'YYYYMMDD') of a day ordinal, cached (strftime per row is slow)."""
        hit = self.days.get(ordinal)
        if hit is None:
            d = date.fromordinal(ordinal)
            hit = self.days[ordinal] = (d, d.strftime("%Y%m%d"))
        return hit

    def id_number(self, address: str, born: str, sex: str) -> str:
        """A unique 18-digit number: address code, birth date (YYYYMMDD), a sequence whose parity is the sex,
        and the MOD 11-2 check digit (python-stdnum)."""
        key = (address, born, sex)
        seq = self.next_seq.get(key)
        if seq is None:
            seq = int(self.rng.random() * 100) * 2 + (1 if sex == "1" else 0)
        if seq > 999:
            raise ValueError(f"ID sequence exhausted for {key}")
        self.next_seq[key] = seq + 2
        body = f"{address}{born}{seq:03d}"
        return body + self.check(body + "0")        # calc_check_digit ignores the last character

    def temporary_xjh(self, county: str, born: str) -> str:
        key = (county, born)
        self.next_temp[key] += 1
        return f"L{county}{born}{self.next_temp[key]:04d}"


STUDENT_COLUMNS = ("id", "xjh", "name", "sex", "birth_date", "birthplace", "native_place", "ethnicity",
                   "nationality", "id_type", "id_number", "gatq", "political", "health", "hukou_place",
                   "hukou_type", "seat_no", "entry_ym", "entry_mode", "study_mode", "source", "current_address",
                   "mail_address", "home_address", "phone", "postcode", "only_child", "preschool", "left_behind",
                   "migrant_child", "orphan", "martyr_child", "inclusive", "disability", "gov_degree", "needs_aid",
                   "one_subsidy", "distance_km", "transport", "school_bus", "school_id", "stage", "cohort_year",
                   "class_id", "status", "has_problem")
MINORITIES = ["03", "06", "11", "02", "08", "15"]
DISABLED = [("1", "11"), ("2", "12"), ("5", "13")]
LEAVING_WEIGHTS = [w for _, w in LEAVING]


def class_rows(people: People, next_id: int, county: County, city_name: str, school_id: int, class_id: int,
               stage: str, cohort: int, size: int):
    """The student rows of one class, as tuples in STUDENT_COLUMNS order."""
    rng = people.rng
    rand, choice, day = rng.random, rng.choice, people.day
    sexes = ["1" if rand() < 0.52 else "2" for _ in range(size)]
    names = people.names(sexes)
    base = date(cohort - ENTRY_AGE[stage], 9, 1).toordinal()
    place = f"{PROVINCE_NAME}{city_name}{county.name}"
    native = "河南" + county.name[:2]
    entry_ym, entry_mode = f"{cohort}09", "1" if stage == "初中" else "2"
    senior = stage == "高中"
    n_streets, n_minor = len(STREETS), len(MINORITIES)
    rows = []
    for seat, (sex, name) in enumerate(zip(sexes, names), 1):
        born, born_s = day(base - 1 - int(rand() * 365) - (365 if rand() < 0.03 else 0))
        migrant = rand() < 0.15
        id_code = choice(OTHER_PROVINCE_CODES) if migrant and rand() < 0.6 else county.address
        if rand() < 0.003:                                  # no usable ID: L学籍号, id_type 其他
            number, xjh, id_type = None, people.temporary_xjh(county.address, born_s), "Z"
        else:
            number = people.id_number(id_code, born_s, sex)
            xjh, id_type = "G" + number, "1"
        if rand() < 0.95:
            status, klass = "在校", class_id
        else:
            status = rng.choices(LEAVING, LEAVING_WEIGHTS)[0][0]
            if status == "退学" and not senior:
                status = "休学"                             # no 退学 in compulsory education
            klass = None                                    # a leaving student's seat is freed
        disability, inclusive = choice(DISABLED) if rand() < 0.003 else ("0", "00")
        far = rand() < 0.2
        address = f"{place}{STREETS[int(rand() * n_streets)]}{1 + int(rand() * 299)}号"
        birthplace = f"{id_code}{1 + int(rand() * 19):03d}{1 + int(rand() * 29):03d}"
        rows.append((
            next_id, xjh, name, sex, born, birthplace, native,
            "01" if rand() < 0.94 else MINORITIES[int(rand() * n_minor)], "CHN", id_type, number, "00",
            "03" if senior and rand() < 0.3 else "13", "10", birthplace, "1" if rand() < 0.6 else "2",
            str(seat), entry_ym, entry_mode, "2" if far else "1", "1", address, address, address,
            f"1{'35789'[int(rand() * 5)]}{int(rand() * 1e9):09d}", "450000", rand() < 0.4, True,
            "0" if rand() < 0.8 else ("1" if rand() < 0.5 else "2"), migrant, rand() < 0.003, rand() < 0.002,
            inclusive, disability, False, rand() < 0.05, False, (3 + int(rand() * (120 if far else 30))) / 10,
            "12345"[int(rand() * 5)], far, school_id, stage, cohort, klass, status, False))
        next_id += 1
    return rows


# --- bulk writing ---------------------------------------------------------------------------------------

class BulkWriter:
    """COPY on PostgreSQL, executemany on a raw sqlite3 connection, SQLAlchemy Core batches elsewhere."""

    def __init__(self, url: str):
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "postgresql":
            import psycopg
            self.conn = psycopg.connect(self.url.set(drivername="postgresql").render_as_string(hide_password=False))
            try:
                with self.conn.cursor() as cur:              # no FK trigger per row (superuser only)
                    cur.execute("SET session_replication_role = replica")
                    cur.execute("SET synchronous_commit = off")
            except psycopg.Error:
                self.conn.rollback()
        elif self.dialect == "sqlite":
            self.conn = sqlite3.connect(self.url.database)
            self.conn.execute("PRAGMA synchronous=OFF")
            self.conn.execute("PRAGMA cache_size=-200000")
        else:
            self.engine = create_engine(url)
            self.conn = self.engine.connect()

    def write(self, table: str, columns, rows) -> int:
        """Write an iterable of tuples (or lists of tuples) in the given column order; returns the row count."""
        n = 0
        cols = ", ".join(columns)
        if self.dialect == "postgresql":
            with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for batch in rows:
                    for row in batch:
                        copy.write_row(row)
                    n += len(batch)
        elif self.dialect == "sqlite":
            sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(columns))})"
            for batch in rows:
                self.conn.executemany(sql, batch)
                n += len(batch)
        else:
            from sqlalchemy import column, insert, table as sa_table
            t = sa_table(table, *[column(c) for c in columns])
            for batch in rows:
                self.conn.execute(insert(t), [dict(zip(columns, r)) for r in batch])
                n += len(batch)
        return n

    def execute(self, sql: str, params=None):
        if self.dialect in ("postgresql", "sqlite"):
            cur = self.conn.execute(sql.replace(":p", "%s" if self.dialect == "postgresql" else "?")
                                    if params else sql, params or ())
            return cur
        return self.conn.execute(text(sql), params or {})

    def commit(self):
        self.conn.commit()

    def close(self):
        self.conn.close()


def drop_indexes(engine, tables):
    """Drop the non-unique indexes the models declare on `tables`, and on PostgreSQL their single-column UNIQUE
    constraints too (no foreign key points at those), for create_indexes to rebuild after the load: a sorted
    build is several times faster than maintaining each index row by row."""
    dropped = []
    inspector = sa_inspect(engine)
    existing = {t: {i["name"] for i in inspector.get_indexes(t.name)} for t in tables}
    with engine.begin() as conn:
        for t in tables:
            for index in sorted(t.indexes, key=lambda i: i.name):
                if not index.unique and index.name in existing[t]:
                    index.drop(conn)
                    dropped.append(index)
            if engine.dialect.name == "postgresql":
                for uc in inspector.get_unique_constraints(t.name):
                    if len(uc["column_names"]) == 1:
                        conn.execute(text(f'ALTER TABLE {t.name} DROP CONSTRAINT "{uc["name"]}"'))
                        dropped.append((t.name, uc["name"], uc["column_names"]))
    return dropped


def create_indexes(engine, indexes, progress=None):
    for index in indexes:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SET maintenance_work_mem = '512MB'"))
            if isinstance(index, tuple):                      # a UNIQUE constraint dropped on PostgreSQL
                table, name, columns = index
                conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" UNIQUE ({", ".join(columns)})'))
            else:
                index.create(conn)
        if progress is not None:
            progress.update(1)


# --- the marker: what is in the database, so benchmarks can reuse it ----------------------------------------

def read_marker(url: str) -> dict | None:
    engine = create_engine(url)
    try:
        if MARKER not in sa_inspect(engine).get_table_names():
            return None
        with engine.connect() as conn:
            value = conn.execute(text(f"SELECT value FROM {MARKER} WHERE name = 'world'")).scalar()
        return json.loads(value) if value else None
    finally:
        engine.dispose()


def write_marker(url: str, info: dict) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {MARKER} (name VARCHAR(20) PRIMARY KEY, value TEXT)"))
        conn.execute(text(f"DELETE FROM {MARKER}"))
        conn.execute(text(f"INSERT INTO {MARKER} (name, value) VALUES ('world', :v)"),
                     {"v": json.dumps(info, ensure_ascii=False)})
    engine.dispose()


def schema_head() -> str:
    """The migrations' head revision: a world generated under another schema is not reused."""
    import os
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(root, "migrations"))
    return ",".join(sorted(ScriptDirectory.from_config(cfg).get_heads()))


def usable(marker: dict | None, students: int, seed: int, schema: bool = True) -> bool:
    return bool(marker) and marker.get("version") == GENERATOR_VERSION and marker.get("students") == students \
        and marker.get("seed") == seed and (not schema or marker.get("schema") == schema_head())


def ensure_world(url: str, students: int, seed: int = 2026, fresh: bool = False) -> dict:
    """The marker of a province of `students` on `url`: the existing one when it matches, else generated now. A
    province generated under older migrations is migrated to the current heads in place (what production does)
    rather than generated again: 5,000,000 students take minutes to generate, a new table or index seconds."""
    marker = None if fresh else read_marker(url)
    if usable(marker, students, seed, schema=False) and not usable(marker, students, seed):
        marker = migrate_world(url, marker)
    if usable(marker, students, seed):
        print(f"reusing the generated province on {make_url(url).render_as_string()} "
              f"({students:,} students, generated {marker['generated_at']})")
        return marker
    return generate(url, students, seed)


def migrate_world(url: str, marker: dict) -> dict:
    """Upgrade a generated province to the migrations' heads and record the new schema in its marker."""
    from app import create_app
    from app.cli import prepare_database
    head = schema_head()
    print(f"migrating the generated province on {make_url(url).render_as_string()} to {head}")
    app = create_app({"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        prepare_database(False)
        from app.extensions import db
        db.engine.dispose()
    marker = {**marker, "schema": head, "migrated_at": datetime.now().isoformat(timespec="seconds")}
    write_marker(url, {k: v for k, v in marker.items() if k != "url"})
    return marker


# --- generation ------------------------------------------------------------------------------------------

def _bar(total, desc, unit="rows"):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, dynamic_ncols=True, mininterval=0.5)


def generate(url: str | None, students: int, seed: int = 2026) -> dict:
    """Build the province on an emptied database (the scratch demo world first); returns the marker."""
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sqlalchemy import insert, select

    from app import schoolyear
    from app.extensions import db
    from bench.common import scratch_app
    from models import Region, Setting, School as SchoolRow, SchoolClass, Student, XuejiUser
    from models.admissions import Quota
    from models.student import Enrollment

    started = time.perf_counter()
    timings = {}
    schema = schema_head()          # what the migration below builds (a migration added meanwhile is not in it)

    def phase(name, t0):
        timings[name] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    app, url = scratch_app(url)
    phase("migrate + demo world", t0)
    with app.app_context():
        year = schoolyear.by_date()
        cities = plan_province(students, year, seed)
        engine = db.engine
        dialect = engine.dialect.name

        # --- regions, schools, classes, settings, quotas ---------------------------------------------
        t0 = time.perf_counter()
        counties = [c for city in cities for c in city.counties]
        schools = [(county, s) for county in counties for s in county.schools]
        bar = _bar(len(cities) + len(counties) + len(schools), "regions and schools", "rows")
        regions = []
        for city in cities:
            regions.append(dict(code=city.code, name=city.name, level="city", parent_code=PROVINCE_CODE))
            regions += [dict(code=c.code, name=c.name, level="county", parent_code=city.code) for c in city.counties]
        db.session.execute(insert(Region), regions)
        bar.update(len(regions))
        names = {city.code: city.name for city in cities}
        rng = random.Random(seed + 1)
        rows = [dict(code=s.code, name=names[county.city_code] + s.name, county_code=county.code,
                     city_code=county.city_code, province_code=PROVINCE_CODE, school_type=s.kind,
                     schooling=SCHOOLING[s.kind], address=f"{PROVINCE_NAME}{names[county.city_code]}{county.name}"
                     f"{rng.choice(STREETS)}{rng.randint(1, 300)}号", principal=None,
                     phone=f"0371{rng.randrange(10 ** 7, 10 ** 8)}") for county, s in schools]
        for i in range(0, len(rows), 2000):
            db.session.execute(insert(SchoolRow), rows[i:i + 2000])
        bar.update(len(rows))
        bar.close()
        ids = dict(db.session.execute(select(SchoolRow.code, SchoolRow.id)
                                      .where(SchoolRow.county_code.in_([c.code for c in counties]))).all())
        for county, s in schools:
            s.id = ids[s.code]
        class_rows_ = [dict(school_id=s.id, stage=stage, cohort_year=cohort, class_no=no, name=f"{no}班")
                       for _, s in schools for stage, cohort, no, _size in s.classes]
        for i in range(0, len(class_rows_), 5000):
            db.session.execute(insert(SchoolClass), class_rows_[i:i + 5000])
        class_ids = {(sid, stage, cohort, no): cid for cid, sid, stage, cohort, no in db.session.execute(
            select(SchoolClass.id, SchoolClass.school_id, SchoolClass.stage, SchoolClass.cohort_year,
                   SchoolClass.class_no).where(SchoolClass.school_id.in_(list(ids.values()))))}
        # classes of up to 55: each generated county sets its 班额 to 55 (the national ceiling is 56)
        db.session.execute(insert(Setting), [dict(key=f"class_cap.{stage}", region_code=c.code, value="55",
                                                  note="bench") for c in counties for stage in ("初中", "高中")])
        quotas = defaultdict(int)
        for _, s in schools:
            for stage, cohort, _no, size in s.classes:
                if cohort == year:
                    quotas[(s.id, stage)] += size
        db.session.execute(insert(Quota), [dict(school_id=sid, year=year, stage=stage, planned=n + n // 20)
                                           for (sid, stage), n in quotas.items()])
        db.session.commit()
        phase("regions, schools, classes", t0)

        # --- accounts ------------------------------------------------------------------------------
        t0 = time.perf_counter()
        accounts = _accounts(app, db, cities, counties, schools)
        phase("accounts", t0)

        # --- students and enrollments ------------------------------------------------------------------
        t0 = time.perf_counter()
        tables = [Student.__table__, Enrollment.__table__]
        dropped = drop_indexes(engine, tables)
        engine.dispose()
        writer = BulkWriter(url)
        first_id = (writer.execute("SELECT COALESCE(MAX(id), 0) FROM student").fetchone()[0] or 0) + 1
        people = People(seed)
        bar = _bar(students, "students")

        def batches():
            next_id = first_id
            for city in cities:
                for county in city.counties:
                    for s in county.schools:
                        batch = []
                        for stage, cohort, no, size in s.classes:
                            batch += class_rows(people, next_id, county, city.name, s.id,
                                                class_ids[(s.id, stage, cohort, no)], stage, cohort, size)
                            next_id += size
                        bar.update(len(batch))
                        yield batch

        written = writer.write("student", STUDENT_COLUMNS, batches())
        writer.commit()
        bar.close()
        assert written == students, (written, students)
        phase("students", t0)
        t0 = time.perf_counter()
        started_on = {"postgresql": "make_date(cohort_year, 9, 1)", "sqlite": "printf('%d-09-01', cohort_year)"}.get(
            dialect, "STR_TO_DATE(CONCAT(cohort_year, '-09-01'), '%Y-%m-%d')")
        with _bar(students, "enrollments") as ebar:
            step = 250_000
            for lo in range(first_id, first_id + students, step):
                writer.execute(f"INSERT INTO enrollment (student_id, school_id, stage, cohort_year, class_id, status, "
                               f"started_on, current, reason) SELECT id, school_id, stage, cohort_year, class_id, "
                               f"status, {started_on}, 1, '建立学籍' FROM student WHERE id >= {lo} AND "
                               f"id < {min(lo + step, first_id + students)}")
                writer.commit()
                ebar.update(min(step, first_id + students - lo))
        phase("enrollments", t0)

        # --- requests in every state ------------------------------------------------------------------
        t0 = time.perf_counter()
        n_requests = _requests(writer, people, first_id, students, accounts, year)
        writer.commit()
        if dialect == "postgresql":
            for table, column in (("student", "id"), ("wf_request", "id")):
                writer.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                               f"(SELECT MAX({column}) FROM {table}))")
            writer.commit()
        writer.close()
        phase("requests", t0)

        # --- indexes, statistics ----------------------------------------------------------------------
        t0 = time.perf_counter()
        with _bar(len(dropped), "indexes", "indexes") as ibar:
            create_indexes(engine, dropped, ibar)
        phase("indexes", t0)
        t0 = time.perf_counter()
        with _bar(1, "analyze", "steps") as abar:
            if dialect == "postgresql":
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE"))
            elif dialect == "sqlite":
                with engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
            else:
                with engine.begin() as conn:
                    for table in ("student", "enrollment", "school", "school_class", "wf_request"):
                        conn.execute(text(f"ANALYZE TABLE {table}"))
            abar.update(1)
        phase("analyze", t0)
        engine.dispose()

    big = next(c for c in counties if c.big)
    county10k = next((c for c in counties if not c.big and c.target == COUNTY), None) or \
        next(c for c in counties if not c.big)
    city = next(city for city in cities if county10k in city.counties)
    info = {"version": GENERATOR_VERSION, "students": students, "seed": seed, "schema": schema,
            "generated_at": datetime.now().isoformat(timespec="seconds"), "dialect": dialect,
            "seconds": round(time.perf_counter() - started, 1), "phases": timings, "school_year": year,
            "big_county": {"code": big.code, "name": big.name, "students": big.target, "schools": len(big.schools)},
            "county": {"code": county10k.code, "name": county10k.name, "students": county10k.target,
                       "schools": len(county10k.schools)},
            "city": {"code": city.code, "name": city.name, "students": sum(c.target for c in city.counties),
                     "counties": len(city.counties)},
            "province": {"code": PROVINCE_CODE, "name": PROVINCE_NAME},
            "school": accounts["bench_school_id"], "cities": len(cities), "counties": len(counties),
            "schools": len(schools), "classes": len(class_ids), "requests": n_requests,
            "accounts": ["bench_big_county", "bench_county", "bench_city", "bench_province", "bench_school"]}
    write_marker(url, info)
    info["url"] = url
    return info


def _accounts(app, db, cities, counties, schools) -> dict:
    """Bench accounts through the security manager (password policy, not forced to change), and a registrar
    and a leader per school, a reviewer per county (the requests' actors) in bulk with one shared hash."""
    from sqlalchemy import insert, select
    from app.passwords import hash_password
    from app.roles import ROLE_BUREAU_CLERK, ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER, ROLE_SCHOOL_REGISTRAR
    from flask_appbuilder.security.sqla.models import assoc_user_role
    from models import XuejiUser

    sm = app.appbuilder.sm
    role = {r: sm.find_role(r) for r in (ROLE_BUREAU_CLERK, ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER,
                                         ROLE_SCHOOL_REGISTRAR)}
    big = next(c for c in counties if c.big)
    county10k = next((c for c in counties if not c.big and c.target == COUNTY), None) or \
        next(c for c in counties if not c.big)
    city = next(city for city in cities if county10k in city.counties)
    school = next(s for s in county10k.schools if "初中" in STAGES_OF[s.kind])

    def add(username, last, first, role_name, **scope):
        sm.add_user(username, first, last, f"{username}@bench.example", role=[role[role_name]], password=PASSWORD,
                    must_change_password=False, **scope)

    add("bench_big_county", "大县", "经办", ROLE_BUREAU_CLERK, region_code=big.code)
    add("bench_county", "区县", "经办", ROLE_BUREAU_CLERK, region_code=county10k.code)
    add("bench_city", "地市", "经办", ROLE_BUREAU_CLERK, region_code=city.code)
    add("bench_province", "省厅", "经办", ROLE_BUREAU_CLERK, region_code=PROVINCE_CODE)
    add("bench_school", "学校", "学籍员", ROLE_SCHOOL_REGISTRAR, school_id=school.id)

    hashed = hash_password(PASSWORD)
    now = datetime.now()
    users = []
    for county, s in schools:
        for prefix, last in (("reg", "学籍员"), ("lead", "主管")):
            users.append(dict(username=f"{prefix}{s.code}", first_name=s.code[-4:], last_name=last,
                              email=f"{prefix}{s.code}@bench.example", password=hashed, active=True,
                              school_id=s.id, region_code=None, must_change_password=False, password_changed_on=now,
                              created_on=now, changed_on=now, login_count=0, fail_login_count=0))
    for county in counties:
        users.append(dict(username=f"rev{county.code}", first_name=county.code, last_name="审核",
                          email=f"rev{county.code}@bench.example", password=hashed, active=True,
                          school_id=None, region_code=county.code, must_change_password=False, password_changed_on=now,
                          created_on=now, changed_on=now, login_count=0, fail_login_count=0))
    for i in range(0, len(users), 2000):
        db.session.execute(insert(XuejiUser.__table__), users[i:i + 2000])
    ids = dict(db.session.execute(select(XuejiUser.username, XuejiUser.id)
                                  .where(XuejiUser.email.like("%@bench.example"))).all())
    role_of = {"reg": ROLE_SCHOOL_REGISTRAR, "lea": ROLE_SCHOOL_LEADER, "rev": ROLE_BUREAU_REVIEWER}
    links = [dict(user_id=uid, role_id=role[role_of[name[:3]]].id) for name, uid in ids.items()
             if name[:3] in role_of]
    for i in range(0, len(links), 5000):
        db.session.execute(insert(assoc_user_role), links[i:i + 5000])
    db.session.commit()
    return {"ids": ids, "bench_school_id": school.id, "county_of_school": {s.id: county.code for county, s in schools},
            "code_of_school": {s.id: s.code for _county, s in schools}}


REQUEST_STATES = [  # (state, step_seq, weight): pending at each step, and every end state
    ("审核中", 1, 25), ("审核中", 2, 20), ("已通过", 2, 25), ("不通过", 2, 10), ("退回修改", 1, 10), ("已撤销", 1, 10)]
CHANGE_OF = {"休学": "休学", "出国": "出国", "失踪": "失踪", "其他离校": "其他离校", "退学": "退学", "死亡": "死亡"}


def _requests(writer, people, first_id, students, accounts, year) -> int:
    """About one request per 200 students: 关键数据变更 and 学籍异动 in every state, with their history rows.
    Approved 学籍异动 belong to students whose status is the change's result; open ones lock distinct students."""
    rng = random.Random(people.rng.random())
    ids, county_of, code_of = accounts["ids"], accounts["county_of_school"], accounts["code_of_school"]
    name_of = {uid: name for name, uid in ids.items()}
    total = max(60, students // 200)
    sample = sorted(rng.sample(range(first_id, first_id + students), min(students, total * 3)))
    rows = writer.execute("SELECT id, name, xjh, school_id, status FROM student WHERE id IN (" +
                          ",".join(map(str, sample)) + ")").fetchall()
    live = [r for r in rows if r[4] == "在校"]
    left = [r for r in rows if r[4] in CHANGE_OF]
    rng.shuffle(live)
    first_req = (writer.execute("SELECT COALESCE(MAX(id), 0) FROM wf_request").fetchone()[0] or 0) + 1
    now = datetime.now().replace(microsecond=0)
    requests, steps = [], []
    weights = [w for *_, w in REQUEST_STATES]
    bar = _bar(total, "requests")
    for n in range(total):
        state, seq, _w = rng.choices(REQUEST_STATES, weights)[0]
        rid = first_req + n
        if state == "已通过" and left and rng.random() < 0.5:
            sid, name, xjh, school, status = left.pop()
            kind, subtype, chain = "status_change", CHANGE_OF[status], "status_change"
            payload = {"type": subtype, "date": str(now.date() - timedelta(days=rng.randint(1, 200))),
                       "reason": "家长申请"}
            summary = f"学籍异动 {subtype} {name}（{xjh}）"
        elif live:
            sid, name, xjh, school, status = live.pop()
            if rng.random() < 0.5:
                kind, subtype, chain = "status_change", "休学", "status_change"
                payload = {"type": "休学", "date": str(now.date()), "reason": "因病休学"}
                summary = f"学籍异动 休学 {name}（{xjh}）"
            else:
                new = name[0] + people.names(["1" if rng.random() < 0.5 else "2"])[0][1:]
                kind, subtype, chain = "key_change", None, "key_change"
                old, new = (new, name) if state == "已通过" else (name, new)   # approved: the record has the new name
                payload = {"changes": {"name": {"old": old, "new": new}}, "reason": "户籍姓名变更"}
                summary = f"关键数据变更 {new if state == '已通过' else name}（{xjh}）姓名：{old}→{new}"
        else:
            break
        code = code_of[school]
        filer, leader, reviewer = ids[f"reg{code}"], ids[f"lead{code}"], ids[f"rev{county_of[school]}"]
        filed = now - timedelta(days=rng.randint(1, 120), minutes=rng.randint(0, 600))
        at = filed
        history = [(0, "提交", filer, "学校学籍管理员", "提交", None)]
        closed = None
        if state == "审核中" and seq == 2 or state in ("已通过", "不通过"):
            history.append((1, "学校审核", leader, "学校学籍主管领导", "通过", None))
        if state == "已通过":
            history.append((2, "区县教育局审核", reviewer, "教育局审核", "通过", None))
        elif state == "不通过":
            history.append((2, "区县教育局审核", reviewer, "教育局审核", "不通过", "证明材料不全"))
        elif state == "退回修改":
            history.append((1, "学校审核", leader, "学校学籍主管领导", "退回修改", "请补充证明材料"))
        elif state == "已撤销":
            history.append((1, "撤销", filer, "学校学籍管理员", "撤销", "提交有误"))
        for hseq, hname, actor, role, decision, comment in history:
            at = at + timedelta(hours=rng.randint(1, 72))
            steps.append((rid, hseq, hname, actor, name_of[actor], role, decision, comment, at))
        if state in ("已通过", "已撤销"):
            closed = at
        due = (now.date() + timedelta(days=rng.randint(-3, 14))) if state == "审核中" else None
        requests.append((rid, kind, subtype, chain, sid, school, None, state, seq, due,
                         json.dumps(payload, ensure_ascii=False), summary[:300], filer, filed, closed,
                         len(history)))
        bar.update(1)
    bar.close()
    writer.write("wf_request", ("id", "kind", "subtype", "chain_code", "student_id", "school_id",
                                "counterpart_school_id", "state", "step_seq", "step_due_on", "payload", "summary",
                                "filed_by_id", "filed_at", "closed_at", "version"), [requests])
    writer.write("wf_request_step", ("request_id", "seq", "step_name", "actor_id", "actor_name", "role",
                                     "decision", "comment", "at"), [steps])
    return len(requests)
