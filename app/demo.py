"""Demo data: 河南省 → 郑州市 → 中原区 (county A) and 金水区 (county B), one 初中 and one 高中 in each, the
demo accounts of the README, classes of the current school year and about 1,500 students with realistic names
(Faker zh_CN), valid 18-digit ID numbers and G学籍号; plus last year's 初中 graduates for admission demos.

Bulk rows go in with one Core INSERT per table (no ORM row-by-row); accounts go through the security
manager so the password policy applies.
"""
import random
from datetime import date, timedelta

from faker import Faker
from flask import current_app
from sqlalchemy import insert, select

from app import clock
from app.identity import with_check_char
from app.roles import (ROLE_ADMIN, ROLE_BUREAU_CLERK, ROLE_BUREAU_REVIEWER, ROLE_SCHOOL_LEADER,
                       ROLE_SCHOOL_REGISTRAR)
from app.schools import region_chain
from models import Region, School, SchoolClass, Student

REGIONS = [("410000", "河南省", "province", None), ("410100", "郑州市", "city", "410000"),
           ("410102", "中原区", "county", "410100"), ("410105", "金水区", "county", "410100")]
SCHOOLS = [  # key, 学校标识码, name, county, type, 学制, stage
    ("a1", "4101020001", "郑州市中原区第一初级中学", "410102", "初中", "初中3年", "初中"),
    ("a2", "4101020002", "郑州市中原区实验高级中学", "410102", "高中", "高中3年", "高中"),
    ("b1", "4101050001", "郑州市金水区第一初级中学", "410105", "初中", "初中3年", "初中"),
    ("b2", "4101050002", "郑州市金水区实验高级中学", "410105", "高中", "高中3年", "高中"),
]
COUNTY_ACCOUNTS = {"410102": "county_a", "410105": "county_b"}
GRADE_NAMES = {"初中": ("初一", "初二", "初三"), "高中": ("高一", "高二", "高三")}
ENTRY_AGE = {"初中": 12, "高中": 15}


def current_school_year(today: date | None = None) -> int:
    """学年 starts in September: Nov 2026 is school year 2026 (2026–2027)."""
    today = today or clock.today()
    return today.year if today.month >= 8 else today.year - 1


def has_data(session) -> bool:
    return session.execute(select(School.id).limit(1)).first() is not None


def load_demo(appbuilder, classes_per_grade=3, students_per_class=42, graduates=200, seed=2026,
              password=None):
    session = appbuilder.sm.session
    password = password or current_app.config["DEMO_PASSWORD"]
    rng, fake = random.Random(seed), Faker("zh_CN")
    fake.seed_instance(seed)

    session.execute(insert(Region), [dict(code=c, name=n, level=lv, parent_code=p) for c, n, lv, p in REGIONS])
    school_rows = []
    for key, code, name, county, kind, schooling, _stage in SCHOOLS:
        city, province = region_chain(county)
        school_rows.append(dict(code=code, name=name, county_code=county, city_code=city, province_code=province,
                                school_type=kind, schooling=schooling, address=f"郑州市{fake.street_address()}",
                                principal=fake.name(), phone=fake.phone_number()))
    session.execute(insert(School), school_rows)
    ids = dict(session.execute(select(School.code, School.id)).all())
    school_id = {key: ids[code] for key, code, *_ in SCHOOLS}

    year = current_school_year()
    class_rows = []
    for key, code, _n, _c, _k, _s, stage in SCHOOLS:
        for offset, grade in enumerate(GRADE_NAMES[stage]):
            for no in range(1, classes_per_grade + 1):
                class_rows.append(dict(school_id=school_id[key], stage=stage, cohort_year=year - offset,
                                       class_no=no, name=f"{grade}({no})班"))
    session.execute(insert(SchoolClass), class_rows)
    classes = session.execute(select(SchoolClass.id, SchoolClass.school_id, SchoolClass.stage,
                                     SchoolClass.cohort_year)).all()
    county_of = {school_id[key]: county for key, _code, _n, county, *_ in SCHOOLS}

    used: set[str] = set()
    students = []
    for class_id, sid, stage, cohort in classes:
        for _ in range(students_per_class):
            students.append(_student(rng, fake, used, county_of[sid], sid, stage, cohort, class_id, "在校"))
    # last year's 初中 graduates (the pool 高中 admission draws from)
    junior = [school_id["a1"], school_id["b1"]]
    for i in range(graduates):
        sid = junior[i % 2]
        students.append(_student(rng, fake, used, county_of[sid], sid, "初中", year - 3, None, "毕业"))
    for start in range(0, len(students), 1000):
        session.execute(insert(Student), students[start:start + 1000])
    session.commit()
    _accounts(appbuilder, school_id, password, fake)
    return {"schools": len(school_rows), "classes": len(class_rows), "students": len(students)}


def _student(rng, fake, used, county, sid, stage, cohort, class_id, status):
    sex = rng.choice("12")
    born = date(cohort - ENTRY_AGE[stage], 9, 1) - timedelta(days=rng.randint(0, 364))
    while True:
        seq = rng.randrange(0, 999)
        if (seq % 2 == 1) != (sex == "1"):     # odd sequence = male (GB 11643)
            seq = (seq + 1) % 1000
        number = with_check_char(f"{county}{born:%Y%m%d}{seq:03d}")
        if number not in used:
            used.add(number)
            break
    name = fake.name_male() if sex == "1" else fake.name_female()
    return dict(xjh="G" + number, name=name, sex=sex, birth_date=born, id_type="1", id_number=number,
                ethnicity="03" if rng.random() < 0.02 else "01", school_id=sid, stage=stage, cohort_year=cohort,
                class_id=class_id, status=status)


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
