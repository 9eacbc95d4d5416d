"""Rules of the 学生基本信息 record (app.identity, app.students, app.classes; DOMAIN.md §1–2).

Most rules are exercised through the REST API as school_a1_clerk, so the whole stack (schema load, scope
check, flush rules, JSON error body) runs; every refusal must answer 422 {"code", "message"} and write nothing.
"""
from datetime import date

import pytest
from sqlalchemy import delete, func, select

from app.extensions import db
from app.identity import birth_of, id_number_problem, sex_of, temporary_xjh, with_check_char, xjh_problem
from models import Code, SchoolClass, Student
from models.student import Guardian
from tests.conftest import api_headers, student_body

STUDENTS = "/api/v1/student/"
GUARDIANS = "/api/v1/guardian/"
L_XJH = "L410102201109010001"             # a temporary 学籍号 (never check-digit checked)
# python-stdnum 2.2's ric.validate() also matches the address code against its own county table for the birth
# year (e.g. 440524 "[1983-1993]潮阳县") and raises KeyError for codes missing from it (340524): these DOMAIN §1.2
# vectors guard against using it again.
# 34052419800101001X (also a DOMAIN vector) has a check character that is right, but 340524 was never a county of
# GB/T 2260 (python-stdnum's table): it is refused now (tests/test_identity.py).
VALID_IDS = ["11010519491231002X", "440524188001010014", "513101198201130014", "370101190102039973",
             "110101202311012176"]
FEB_31 = with_check_char("11010520110231002")           # only the date is wrong
REGION_99 = with_check_char("99010519491231002")        # only the province is wrong


@pytest.fixture
def h(world, client):
    return api_headers(client, "school_a1_clerk")


def post(client, h, world, **over):
    return client.post(STUDENTS, json=student_body(world.schools["a1"], **over), headers=h)


def count(app, model=Student, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def stored(app, sid, *fields):
    with app.app_context():
        s = db.session.get(Student, sid)
        return tuple(getattr(s, f) for f in fields)


def refused(resp, code=None):
    assert resp.status_code == 422, resp.get_json()
    body = resp.get_json()
    assert body["message"] and (code is None or body["code"] == code), body
    return body


def id_body(number, **over):
    """Overrides for a student whose sex and birth date agree with a valid 18-digit ID number."""
    return {"id_number": number, "sex": sex_of(number),
            "birth_date": birth_of(number).isoformat(), **over}


# --- 1. 身份证件号 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("number", VALID_IDS + ["１１０１０５１９４９１２３１００２Ｘ", "11010519491231002x"])
def test_id_number_valid_vectors(number):
    assert id_number_problem(number) is None


@pytest.mark.parametrize("number,why", [
    ("110101202311012171", "校验位"),
    (FEB_31, "出生日期"),
    ("110105491231002", "15位旧身份证"),
    (REGION_99, "地区码"),
    ("11010519491231002", "18位"),
    ("1101051949123100AX", "数字"),
])
def test_id_number_invalid_vectors(number, why):
    assert why in id_number_problem(number)


@pytest.mark.parametrize("region", ["810000", "820000", "830000"])
def test_residence_permit_numbers_are_valid(region):
    """港澳台居民居住证 numbers use address codes 810000/820000/830000 (DOMAIN §1.2)."""
    assert id_number_problem(with_check_char(region + "20110901001")) is None


@pytest.mark.parametrize("number", VALID_IDS)
def test_id_number_valid_accepted_by_api(app, client, h, world, number):
    resp = post(client, h, world, **id_body(number))
    assert resp.status_code == 201, resp.get_json()
    assert stored(app, resp.get_json()["id"], "id_number") == (number,)


@pytest.mark.parametrize("number", ["110101202311012171", FEB_31, "110105491231002", REGION_99,
                                    with_check_char("11019920100101001"),      # county 110199 never existed
                                    with_check_char("11010520900101001"),      # born 2090
                                    "110105 19491231002X", "110105\u300019491231002X"])
def test_id_number_invalid_refused_by_api(app, client, h, world, number):
    before = count(app)
    refused(post(client, h, world, id_number=number), "invalid_id")
    assert count(app) == before


@pytest.mark.parametrize("entered", ["１１０１０５１９４９１２３１００２Ｘ", "11010519491231002x", " 11010519491231002X\u00a0",
                                     "\u300011010519491231002X", "11010519\u200b491231002X"])
def test_id_number_normalised_before_storing(app, client, h, world, entered):
    resp = post(client, h, world, id_number=entered)
    assert resp.status_code == 201, resp.get_json()
    assert stored(app, resp.get_json()["id"], "id_number") == ("11010519491231002X",)


# --- 2. 性别 and 出生日期 agree with the number ------------------------------------------------------------

@pytest.mark.parametrize("over", [{"sex": "1"}, {"birth_date": "1949-12-30"}], ids=["sex", "birth_date"])
def test_sex_and_birth_date_must_match_id_number(app, client, h, world, over):
    before = count(app)
    refused(post(client, h, world, **over), "id_mismatch")
    assert count(app) == before


# --- 3. 全国学籍号 ---------------------------------------------------------------------------------------

J_OK = "J" + with_check_char("41010220110901001")
J_BAD = J_OK[:-1] + ("0" if J_OK[-1] != "0" else "1")
L_ANY = "L" + J_BAD[1:]                                   # same digits, wrong check char: fine for L


@pytest.mark.parametrize("xjh", ["G11010519491231002X", "g11010519491231002x", J_OK, L_ANY, L_XJH])
def test_xjh_accepted(xjh):
    assert xjh_problem(xjh) is None


@pytest.mark.parametrize("xjh", [
    "G110101202311012171",        # G: ID part has a bad check char
    J_BAD,                        # J: bad check char
    "G11010519491231002",         # 18 characters
    "G11010519491231002X1",       # 20 characters
    "L41010220110901000",         # 18 characters (L: no ID check hides the length)
    "L4101022011090100011",       # 20 characters
    "L41010220110901X001",        # X not last
    "Q11010519491231002X",        # unknown prefix
])
def test_xjh_refused(xjh):
    assert xjh_problem(xjh) is not None


def test_xjh_is_not_accepted_by_the_api_on_create(app, client, h, world):
    """The registrar never types a 学籍号: the system generates it (app.students)."""
    before = count(app)
    for xjh in ("G11010519491231002X", "G110101202311012171", J_BAD):
        assert "系统生成" in refused(post(client, h, world, xjh=xjh), "xjh_generated")["message"]
    assert count(app) == before


def test_new_student_gets_g_plus_id_number(app, client, h, world):
    resp = post(client, h, world, id_number="11010519491231002x")
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["result"]["xjh"] == "G11010519491231002X"
    assert stored(app, resp.get_json()["id"], "xjh") == ("G11010519491231002X",)


# --- 4. cross-field rules ---------------------------------------------------------------------------------

FOREIGNER = dict(id_type="A", id_number="E12345678", nationality="USA", sex="1",
                 birth_date="2011-09-01")

CROSS_OK = {
    "inclusive_11_with_visual": dict(inclusive="11", disability="1"),
    "inclusive_13_with_intellectual": dict(inclusive="13", disability="5"),
    "id_type_Z_blank_number": dict(id_type="Z", id_number=""),
    "passport_foreigner": dict(FOREIGNER, gatq="51"),
}
CROSS_REFUSED = {
    "inclusive_11_without_disability": (dict(inclusive="11", disability="0"), "invalid"),
    "not_inclusive_with_disability": (dict(inclusive="00", disability="5"), "invalid"),
    "resident_id_blank_number": (dict(id_number=""), "id_required"),
    "hukoubu_blank_number": (dict(id_type="2", id_number=""), "id_required"),
    "passport_with_gatq_00": (dict(FOREIGNER, gatq="00"), "invalid"),
    "passport_number_not_alnum": (dict(FOREIGNER, gatq="51", id_number="E1234-5678"), "invalid_id"),
    "birthplace_10_digits": (dict(birthplace="4101020010"), "invalid"),
    "hukou_place_with_letter": (dict(hukou_place="41010200100A"), "invalid"),
    "phone_landline": (dict(phone="0371-6612345"), "invalid"),
    "phone_not_mobile": (dict(phone="23912345678"), "invalid"),
    "postcode_5_digits": (dict(postcode="45000"), "invalid"),
    "entry_ym_with_dash": (dict(entry_ym="2026-9"), "invalid"),
    "entry_ym_month_13": (dict(entry_ym="202613"), "invalid"),
}


@pytest.mark.parametrize("over", CROSS_OK.values(), ids=CROSS_OK.keys())
def test_cross_field_rules_accept(client, h, world, over):
    resp = post(client, h, world, **over)
    assert resp.status_code == 201, resp.get_json()


@pytest.mark.parametrize("over,code", CROSS_REFUSED.values(), ids=CROSS_REFUSED.keys())
def test_cross_field_rules_refuse(app, client, h, world, over, code):
    before = count(app)
    refused(post(client, h, world, **over), code)
    assert count(app) == before


# --- 5. code tables ---------------------------------------------------------------------------------------

CODE_77 = {"table": "MZ", "table_name": "民族", "code": "77", "name": "测试族", "sort": "99", "active": "y"}


@pytest.fixture
def no_code_77(app):
    """The code table is not part of the per-test wipe: make sure MZ 77 exists only inside the test."""
    def drop():
        with app.app_context():
            db.session.execute(delete(Code).where(Code.table == "MZ", Code.code == "77"))
            db.session.commit()
    drop()
    yield
    drop()


def test_unknown_code_refused_until_superadmin_adds_it(app, client, h, world, as_user, no_code_77):
    before = count(app)
    body = refused(post(client, h, world, ethnicity="77"), "invalid_code")
    assert "民族" in body["message"] and count(app) == before
    resp = as_user("admin").post("/code/add", data=CODE_77)
    assert resp.status_code == 302
    assert count(app, Code, Code.table == "MZ", Code.code == "77") == 1
    resp = post(client, h, world, ethnicity="77")
    assert resp.status_code == 201, resp.get_json()


def test_school_user_cannot_add_codes(app, world, as_user, no_code_77):
    resp = as_user("school_a1_clerk").post("/code/add", data=CODE_77)
    assert resp.status_code == 403
    assert count(app, Code, Code.table == "MZ", Code.code == "77") == 0


# --- 6. ★ required fields ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field,label", [("hukou_place", "户口所在地"), ("native_place", "籍贯"),
                                         ("phone", "联系电话"), ("only_child", "是否独生子女"),
                                         ("entry_ym", "入学年月")])
def test_required_fields(app, client, h, world, field, label):
    body = student_body(world.schools["a1"])
    del body[field]
    before = count(app)
    resp = client.post(STUDENTS, json=body, headers=h)
    assert label in refused(resp, "required")["message"]
    assert count(app) == before


def test_required_field_cannot_be_blanked_on_edit(app, client, h, world):
    sid = world.student_of("a1")
    before = stored(app, sid, "hukou_place")
    refused(client.put(f"{STUDENTS}{sid}", json={"hukou_place": ""}, headers=h), "required")
    assert stored(app, sid, "hukou_place") == before


# --- 7. 家庭成员或监护人 -------------------------------------------------------------------------------------

@pytest.fixture
def new_student(app, client, h, world):
    """A fresh student of a1 with no family members yet."""
    resp = post(client, h, world)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def guardian(student_id, **over):
    body = {"student_id": student_id, "seq": 1, "name": "王父", "relation": "01", "hukou_place": "410102001001",
            "phone": "13812345678", "is_guardian": True, "id_type": "1", "id_number": "11010519491231002X"}
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize("over", [{}, {"seq": 2, "relation": "02"},
                                  {"id_type": "A", "id_number": "E12345678", "hukou_place": None}],
                         ids=["resident", "second", "foreign_without_hukou"])
def test_guardian_accepted(app, client, h, new_student, over):
    resp = client.post(GUARDIANS, json=guardian(new_student, **over), headers=h)
    assert resp.status_code == 201, resp.get_json()


@pytest.mark.parametrize("over,code", [
    ({"relation": "99"}, "invalid_code"),
    ({"hukou_place": None}, "required"),
    ({"hukou_place": "4101020010"}, "invalid"),
    ({"seq": 3}, "invalid"),
    ({"seq": 0}, "invalid"),
    ({"id_number": "110101202311012171"}, "invalid_id"),
], ids=["relation_not_gx", "hukou_required", "hukou_12_digits", "seq_3", "seq_0", "bad_id_number"])
def test_guardian_refused(app, client, h, new_student, over, code):
    refused(client.post(GUARDIANS, json=guardian(new_student, **over), headers=h), code)
    assert count(app, Guardian, Guardian.student_id == new_student) == 0


# --- 8. temporary L学籍号 -----------------------------------------------------------------------------------

def test_temporary_xjh_is_county_birth_date_and_first_free_sequence():
    born = date(2012, 3, 4)
    assert temporary_xjh("410102", born, lambda prefix: []) == "L410102201203040001"
    taken = {"L410102201203040001", "L410102201203040002", "L410102201203040004"}
    assert temporary_xjh("410102", born, lambda prefix: taken) == "L410102201203040003"
    assert xjh_problem(temporary_xjh("410102", born, lambda prefix: taken)) is None


# --- 9. graduates are read-only ------------------------------------------------------------------------------

def test_basic_information_of_a_current_student_can_be_edited(app, client, h, world):
    sid = world.student_of("a1")
    resp = client.put(f"{STUDENTS}{sid}", json={"phone": "13900000000"}, headers=h)
    assert resp.status_code == 200, resp.get_json()
    assert stored(app, sid, "phone") == ("13900000000",)


def graduate(app, sid):
    """Mark a student graduated as the (set-based) graduation run does, below the ORM rules."""
    from sqlalchemy import update
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == sid).values(status="毕业", class_id=None))
        db.session.commit()


def test_graduate_is_read_only(app, client, h, world):
    sid = world.student_of("a1")
    graduate(app, sid)
    before = stored(app, sid, "phone", "status")
    refused(client.put(f"{STUDENTS}{sid}", json={"phone": "13900000000"}, headers=h), "read_only")
    assert stored(app, sid, "phone", "status") == before


def test_graduate_cannot_be_reopened_by_editing_status(app, client, h, world):
    sid = world.student_of("a1")
    graduate(app, sid)
    resp = client.put(f"{STUDENTS}{sid}", json={"status": "在校"}, headers=h)
    assert stored(app, sid, "status") == ("毕业",)
    refused(resp, "status_locked")


@pytest.mark.parametrize("status", ["退学", "休学", "死亡"])
def test_status_never_changes_by_editing(app, client, h, world, status):
    """学籍状态 changes only through 学籍异动 and graduation requests, never a plain edit."""
    sid = world.student_of("a1")
    refused(client.put(f"{STUDENTS}{sid}", json={"status": status}, headers=h), "status_locked")
    assert stored(app, sid, "status") == ("在校",)


# --- 10. 关键数据 -------------------------------------------------------------------------------------------

def _other_id_number(number):
    """Another valid number with the same birth date and sex (so only the number itself changes)."""
    return with_check_char(number[:14] + ("9" if number[14] != "9" else "8") + number[15:17])


@pytest.fixture
def z_student(app, client, h, world):
    """A student without an ID number (id_type Z), whose sex and birth date are not derived from one."""
    resp = post(client, h, world, id_type="Z", id_number="", sex="1", birth_date="2011-09-01")
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


@pytest.mark.parametrize("field,value", [("name", "新名字"), ("sex", "2"), ("birth_date", "2011-09-02")])
def test_key_data_cannot_be_edited_in_place(app, client, h, z_student, field, value):
    before = stored(app, z_student, field)
    refused(client.put(f"{STUDENTS}{z_student}", json={field: value}, headers=h), "key_data")
    assert stored(app, z_student, field) == before


def test_id_number_is_key_data(app, client, h, world):
    sid = world.student_of("a1")
    (number,) = stored(app, sid, "id_number")
    other = _other_id_number(number)
    assert id_number_problem(other) is None
    refused(client.put(f"{STUDENTS}{sid}", json={"id_number": other}, headers=h), "key_data")
    assert stored(app, sid, "id_number") == (number,)


def _classes_of(app, school_id):
    with app.app_context():
        return [(c.id, c.stage, c.cohort_year) for c in db.session.scalars(
            select(SchoolClass).where(SchoolClass.school_id == school_id).order_by(SchoolClass.id))]


def test_class_change_is_key_data(app, client, h, world):
    sid = world.student_of("a1")
    (class_id, cohort) = stored(app, sid, "class_id", "cohort_year")
    other = next(c for c, _stage, year in _classes_of(app, world.schools["a1"]) if year == cohort and c != class_id)
    refused(client.put(f"{STUDENTS}{sid}", json={"class_id": other}, headers=h), "key_data")
    assert stored(app, sid, "class_id") == (class_id,)


def test_first_class_placement_is_allowed(app, client, h, world):
    class_id, stage, cohort = _classes_of(app, world.schools["a1"])[0]
    resp = post(client, h, world, stage=stage, cohort_year=cohort)
    assert resp.status_code == 201, resp.get_json()
    sid = resp.get_json()["id"]
    assert stored(app, sid, "class_id") == (None,)
    resp = client.put(f"{STUDENTS}{sid}", json={"class_id": class_id}, headers=h)
    assert resp.status_code == 200, resp.get_json()
    assert stored(app, sid, "class_id") == (class_id,)


# --- 11. 新增年级 -------------------------------------------------------------------------------------------

def _class_nos(app, school_id, cohort):
    with app.app_context():
        return sorted(db.session.scalars(select(SchoolClass.class_no).where(
            SchoolClass.school_id == school_id, SchoolClass.stage == "初中", SchoolClass.cohort_year == cohort)))


@pytest.mark.parametrize("actor", ["school_a1_clerk", "county_a_clerk"])
@pytest.mark.parametrize("cohort_offset", [0, 1], ids=["existing_grade", "new_grade"])
def test_add_grade_numbers_classes_after_existing_ones(app, world, as_user, actor, cohort_offset):
    school = world.schools["a1"]
    cohort = max(year for _c, _s, year in _classes_of(app, school)) + cohort_offset
    existing = _class_nos(app, school, cohort)
    resp = as_user(actor).post("/schoolclass/addgrade", data={
        "school_id": school, "stage": "初中", "cohort_year": cohort, "classes": 3})
    assert resp.status_code == 302
    n = len(existing)
    assert _class_nos(app, school, cohort) == existing + [n + 1, n + 2, n + 3]


@pytest.mark.parametrize("actor,foreign", [("school_a1_clerk", "a2"), ("school_a1_clerk", "b1"),
                                           ("county_a_clerk", "b1")])
def test_add_grade_for_another_school_answers_404(app, world, as_user, actor, foreign):
    before = count(app, SchoolClass)
    resp = as_user(actor).post("/schoolclass/addgrade", data={
        "school_id": world.schools[foreign], "stage": "初中", "cohort_year": 2030, "classes": 3})
    assert resp.status_code == 404
    assert count(app, SchoolClass) == before


def test_add_grade_stage_must_fit_the_school(app, world, as_user):
    """A 初中 school cannot open 高中 classes (学段 follows 办学类型)."""
    school = world.schools["a1"]
    before = _class_nos(app, school, 2027)
    page = as_user("school_a1_clerk").post("/schoolclass/addgrade", data={
        "school_id": school, "stage": "高中", "cohort_year": 2027, "classes": 2}, follow_redirects=True)
    assert "初中学校不能设置高中年级" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(SchoolClass).where(
            SchoolClass.school_id == school, SchoolClass.stage == "高中")) == 0
    assert _class_nos(app, school, 2027) == before
