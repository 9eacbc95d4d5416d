"""Demo data: 河南省 → 郑州市 → 中原区 (county A) and 金水区 (county B), one 初中 and one 高中 in each, the
demo accounts of the README, classes of the current school year (a few near their 班额), about 1,500 students
with full national records (Faker zh_CN names, valid 18-digit ID numbers, G学籍号, two family members each),
last year's 初中 graduates for admission demos, and a few 问题学籍 of every kind.

Bulk rows go in with Core INSERTs (no ORM row-by-row); accounts go through the security manager so the password
policy applies; problems are found by the real detector.
"""
import random
from datetime import date, timedelta

from faker import Faker
from flask import current_app
from sqlalchemy import insert, select

from app import problems
from app.identity import with_check_char
from app.roles import (ROLE_ADMIN, ROLE_BUREAU_CLERK, ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER,
                       ROLE_SCHOOL_REGISTRAR)
from app.schoolyear import by_date, stage_years
from app.schools import region_chain
from models import Enrollment, Guardian, Quota, Region, School, SchoolClass, Student

REGIONS = [("410000", "河南省", "province", None), ("410100", "郑州市", "city", "410000"),
           ("410102", "中原区", "county", "410100"), ("410105", "金水区", "county", "410100")]
SCHOOLS = [  # key, 学校标识码, name, county, type, 学制, stage
    ("a1", "4101020001", "郑州市中原区第一初级中学", "410102", "初中", "初中3年", "初中"),
    ("a2", "4101020002", "郑州市中原区实验高级中学", "410102", "高中", "高中3年", "高中"),
    ("b1", "4101050001", "郑州市金水区第一初级中学", "410105", "初中", "初中3年", "初中"),
    ("b2", "4101050002", "郑州市金水区实验高级中学", "410105", "高中", "高中3年", "高中"),
]
COUNTY_ACCOUNTS = {"410102": "county_a", "410105": "county_b"}
ENTRY_AGE = {"初中": 12, "高中": 15}
STREETS = {"410102": "中原区", "410105": "金水区"}


def has_data(session) -> bool:
    return session.execute(select(School.id).limit(1)).first() is not None


def load_demo(appbuilder, classes_per_grade=3, students_per_class=42, graduates=200, seed=2026,
              password=None, near_cap=True, with_problems=True):
    session = appbuilder.sm.session
    password = password or current_app.config["DEMO_PASSWORD"]
    rng, fake = random.Random(seed), Faker("zh_CN")
    fake.seed_instance(seed)

    session.execute(insert(Region), [dict(code=c, name=n, level=lv, parent_code=p) for c, n, lv, p in REGIONS])
    school_rows = []
    for key, code, name, county, kind, schooling, _stage in SCHOOLS:
        city, province = region_chain(county)
        school_rows.append(dict(code=code, name=name, county_code=county, city_code=city, province_code=province,
                                school_type=kind, schooling=schooling,
                                address=f"郑州市{STREETS[county]}{fake.street_name()}",
                                principal=fake.name(), phone=_phone(fake)))
    session.execute(insert(School), school_rows)
    ids = dict(session.execute(select(School.code, School.id)).all())
    school_id = {key: ids[code] for key, code, *_ in SCHOOLS}

    year = by_date()                       # a new installation: no county has run 升级 yet
    class_rows = []
    for key, code, _n, _c, _k, schooling, stage in SCHOOLS:
        for offset in range(stage_years(stage, schooling)):
            for no in range(1, classes_per_grade + 1):
                class_rows.append(dict(school_id=school_id[key], stage=stage, cohort_year=year - offset,
                                       class_no=no, name=f"{no}班"))
    session.execute(insert(SchoolClass), class_rows)
    session.execute(insert(Quota), [dict(school_id=school_id[key], year=year, stage=stage, planned=60)
                                    for key, *_rest, stage in SCHOOLS])
    classes = session.execute(select(SchoolClass.id, SchoolClass.school_id, SchoolClass.stage,
                                     SchoolClass.cohort_year, SchoolClass.class_no)).all()
    county_of = {school_id[key]: county for key, _code, _n, county, *_ in SCHOOLS}

    used: set[str] = set()
    students = []
    for class_id, sid, stage, cohort, no in classes:
        size = 49 if near_cap and no == 1 and cohort == year else students_per_class   # near the 班额 of 50
        for _ in range(size):
            students.append(_student(rng, fake, used, county_of[sid], sid, stage, cohort, class_id, "在校"))
    junior = [school_id["a1"], school_id["b1"]]           # last year's 初中 graduates
    for i in range(graduates):
        sid = junior[i % 2]
        students.append(_student(rng, fake, used, county_of[sid], sid, "初中", year - 3, None, "毕业"))
    if with_problems:
        students.extend(_problem_students(rng, fake, used, school_id, county_of, classes, year))
    for start in range(0, len(students), 1000):
        session.execute(insert(Student), students[start:start + 1000])
    _guardians_and_enrollments(session, rng, fake)
    session.commit()
    if with_problems:
        problems.detect(session)
        session.commit()
    _accounts(appbuilder, school_id, password, fake)
    return {"schools": len(school_rows), "classes": len(class_rows), "students": len(students)}


def _id_number(rng, used, county, born, sex):
    while True:
        seq = rng.randrange(0, 999)
        if (seq % 2 == 1) != (sex == "1"):     # odd sequence = male (GB 11643)
            seq = (seq + 1) % 1000
        number = with_check_char(f"{county}{born:%Y%m%d}{seq:03d}")
        if number not in used:
            used.add(number)
            return number


def _student(rng, fake, used, county, sid, stage, cohort, class_id, status, **over):
    sex = over.pop("sex", None) or rng.choice("12")
    born = over.pop("birth_date", None) or date(cohort - ENTRY_AGE[stage], 9, 1) - timedelta(days=rng.randint(0, 364))
    number = over.pop("id_number") if "id_number" in over else _id_number(rng, used, county, born, sex)
    name = fake.name_male() if sex == "1" else fake.name_female()
    place = f"{county}{rng.randint(1, 20):03d}{rng.randint(1, 30):03d}"       # 12-digit 行政区划代码
    address = f"河南省郑州市{STREETS.get(county, '')}{fake.street_name()}{rng.randint(1, 200)}号"
    far = rng.random() < 0.2
    row = dict(xjh="G" + (number or ""), name=name, sex=sex, birth_date=born, birthplace=place, native_place="河南郑州",
               ethnicity="03" if rng.random() < 0.02 else "01", nationality="CHN", id_type="1", id_number=number,
               gatq="00", political="03" if stage == "高中" and rng.random() < 0.3 else "13", health="10",
               name_pinyin=None, hukou_place=place, hukou_type=rng.choice("12"), entry_ym=f"{cohort}09",
               entry_mode="1" if stage == "初中" else "2", study_mode="2" if far else "1", source="1",
               current_address=address, mail_address=address, home_address=address, phone=_phone_rng(rng),
               postcode="450000", only_child=rng.random() < 0.4, preschool=True,
               left_behind=rng.choice("0000000012"), migrant_child=rng.random() < 0.15,
               orphan=rng.random() < 0.003, martyr_child=rng.random() < 0.002, inclusive="00", disability="0",
               gov_degree=False, needs_aid=rng.random() < 0.05, one_subsidy=False,
               distance_km=round(rng.uniform(0.3, 12 if far else 3), 1), transport=rng.choice("12345"),
               school_bus=far, school_id=sid, stage=stage, cohort_year=cohort, class_id=class_id, status=status,
               has_problem=False)
    row.update(over)
    return row


def _problem_students(rng, fake, used, school_id, county_of, classes, year):
    """A few 问题学籍 of each kind, as an Excel import of old would have left them."""
    first_class = {sid: cid for cid, sid, _st, cohort, no in sorted(classes) if cohort == year - 1 and no == 2}
    a1, a2, b1, b2 = (school_id[k] for k in ("a1", "a2", "b1", "b2"))
    rows = []

    def add(sid, stage, **over):
        rows.append(_student(rng, fake, used, county_of[sid], sid, stage, year - 1, first_class.get(sid),
                             "在校", **over))
        return rows[-1]

    for _ in range(2):                                    # 身份证件号错误: wrong check character
        good = _id_number(rng, used, "410102", date(year - 13, 3, 5), "1")
        bad = good[:17] + ("0" if good[17] != "0" else "1")
        add(a1, "初中", sex="1", birth_date=date(year - 13, 3, 5), id_number=bad, xjh="G" + bad)
    born = date(year - 13, 6, 1)                          # 证件号与性别不符
    number = _id_number(rng, used, "410105", born, "1")
    add(b1, "初中", sex="2", birth_date=born, id_number=number, xjh="G" + number)
    original = add(b2, "高中")                           # 身份证件号重复 across two counties
    add(a2, "高中", sex=original["sex"], birth_date=original["birth_date"], id_number=original["id_number"],
        xjh="L" + original["id_number"][:17] + "1")
    twin = dict(sex="2", birth_date=date(year - 13, 2, 2), id_type="Z", id_number=None)   # 无证件号重复
    name = "王小雨"
    add(a1, "初中", name=name, xjh=f"L410102{twin['birth_date']:%Y%m%d}0001", **twin)
    add(b1, "初中", name=name, xjh=f"L410105{twin['birth_date']:%Y%m%d}0001", **twin)
    return rows


def _guardians_and_enrollments(session, rng, fake):
    students = session.execute(select(Student.id, Student.hukou_place, Student.stage, Student.cohort_year,
                                      Student.school_id, Student.class_id, Student.status)).all()
    guardians, spans = [], []
    for sid, place, stage, cohort, school, klass, status in students:
        father, mother = fake.name_male(), fake.name_female()
        for seq, (name, relation) in enumerate(((father, "01"), (mother, "02")), 1):
            guardians.append(dict(student_id=sid, seq=seq, name=name, relation=relation, ethnicity="01",
                                  employer=fake.company(), address=None, hukou_place=place or "410102001001",
                                  phone=_phone_rng(rng), is_guardian=True, id_type="1", id_number=None))
        spans.append(dict(student_id=sid, school_id=school, stage=stage, cohort_year=cohort, class_id=klass,
                          status=status, started_on=date(cohort, 9, 1), current=1, reason="建立学籍",
                          ended_on=None))
    for start in range(0, len(guardians), 2000):
        session.execute(insert(Guardian), guardians[start:start + 2000])
    for start in range(0, len(spans), 2000):
        session.execute(insert(Enrollment), spans[start:start + 2000])


def _accounts(appbuilder, school_id, password, fake):
    sm = appbuilder.sm
    role = sm.find_role

    def add(username, last, first, roles, **scope):
        sm.add_user(username, first, last, f"{username}@xueji.example", role=[role(r) for r in roles],
                    password=password, must_change_password=False, phone=_phone(fake), **scope)

    add("admin", "系统", "管理员", [ROLE_ADMIN])
    for county, prefix in COUNTY_ACCOUNTS.items():
        add(f"{prefix}_clerk", fake.last_name(), fake.first_name(), [ROLE_BUREAU_CLERK], region_code=county)
        add(f"{prefix}_reviewer", fake.last_name(), fake.first_name(), [ROLE_BUREAU_REVIEWER], region_code=county)
    for key in ("a1", "a2", "b1", "b2"):
        add(f"school_{key}_clerk", fake.last_name(), fake.first_name(), [ROLE_SCHOOL_REGISTRAR],
            school_id=school_id[key])
        add(f"school_{key}_leader", fake.last_name(), fake.first_name(), [ROLE_SCHOOL_LEADER],
            school_id=school_id[key])


def _phone(fake) -> str:
    number = fake.phone_number()
    return number if number.isdigit() and len(number) == 11 else "13800000000"


def _phone_rng(rng) -> str:
    return "1" + rng.choice("3578") + "".join(rng.choice("0123456789") for _ in range(9))
