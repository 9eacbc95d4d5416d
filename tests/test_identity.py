"""The one identifier module (app.identity) and every entry point that uses it: the record rules at flush, the
generated 学籍号 of a new student (web add form and REST), the form and schema fields that normalise before their
length limit, the list search filters, transfers, 问题学籍 detection and GET /api/v1/identity/check."""
from datetime import date
from urllib.parse import quote

import pytest
from sqlalchemy import select, update

from app.errors import RuleError
from app.extensions import db
from app.identity import (check_id_number, check_xjh, clean, id_number_problem, j_xjh, normalise, with_check_char,
                          xjh_problem)
from models import Student
from tests.conftest import api_headers, student_body

TODAY = date(2026, 5, 1)
ID = "11010519491231002X"                                       # DOMAIN §1.2 vector: 女, 1949-12-31
FUTURE = with_check_char("11010520900101001")                 # born 2090-01-01
UNKNOWN_COUNTIES = [with_check_char("11019920100101001"), with_check_char("32099920100101001")]
# 110103 崇文区 was merged into 东城区 in 2010: gone from today's GB/T 2260, still in python-stdnum's table
HISTORIC = with_check_char("11010320110901001")
J_OK = "J" + with_check_char("41010220110901001")
STUDENTS = "/api/v1/student/"
CHECK = "/api/v1/identity/check"


# --- 1. clean: normalise first, report each change ---------------------------------------------------------

@pytest.mark.parametrize("entered,note", [
    ("１１０１０５１９４９１２３１００２Ｘ", "已将全角字符转换为半角"),
    ("11010519491231002ｘ", "已将全角字符转换为半角"),
    ("11010519491231002x", "已将小写x转换为大写X"),
    (" 11010519491231002X ", "已去除首尾空格"),
    ("\u00a011010519491231002X\u00a0", "已去除首尾空格"),
    ("\u300011010519491231002X\u3000", "已去除首尾空格"),
    ("\u200911010519491231002X\u2003", "已去除首尾空格"),
    ("\t11010519491231002X\n", "已去除首尾空格"),
    ("\ufeff11010519491231002X", "已去除不可见字符"),
    ("1101051949\u200b1231002X", "已去除不可见字符"),
    ("11010519491231002X\u2060", "已去除不可见字符"),
])
def test_normalised_values_are_accepted_with_a_note(entered, note):
    r = check_id_number(entered, TODAY)
    assert r.valid and r.normalized == ID and note in r.notes, r
    assert normalise(entered) == ID and id_number_problem(entered, TODAY) is None


def test_a_clean_value_has_no_notes():
    assert clean(ID) == (ID, ())
    assert check_id_number(ID, TODAY).notes == ()


@pytest.mark.parametrize("entered", ["110105 19491231002X", "110105\u300019491231002X", "110105\u00a019491231002X",
                                     "110105-19491231002X", "110105_19491231002X", "110105.19491231002X"])
def test_separators_inside_are_refused_not_removed(entered):
    r = check_id_number(entered, TODAY)
    assert not r.valid and r.code == "inner_separator" and "中间有" in r.message and "第7位" in r.message
    x = check_xjh("G" + entered, today=TODAY)
    assert not x.valid and x.code == "inner_separator" and "学籍号" in x.message


# --- 2. 身份证件号 -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("entered,code,words", [
    ("110105491231002", "old_15", "15位"),
    ("11010519491231002", "bad_length", "实际为17位"),
    ("110105194912310021X", "bad_length", "实际为19位"),
    ("", "empty", "为空"),
    ("1101051949123100AX", "bad_chars", "数字"),
    (with_check_char("11010520110231002"), "bad_date", "20110231"),
    (FUTURE, "future_date", "2090-01-01"),
    ("110101202311012171", "bad_check", "校验位"),
])
def test_id_number_refusals_name_what_is_wrong(entered, code, words):
    r = check_id_number(entered, TODAY)
    assert (r.valid, r.code) == (False, code) and words in r.message, r


@pytest.mark.parametrize("number", UNKNOWN_COUNTIES + [with_check_char("34052419800101001")])
def test_county_codes_that_never_existed_are_refused(number):
    r = check_id_number(number, TODAY)
    assert r.code == "bad_region" and number[:6] in r.message


def test_a_birth_date_after_today_is_refused_by_the_clock():
    tomorrow = with_check_char("11010520260502001")
    assert check_id_number(tomorrow, TODAY).code == "future_date"
    assert check_id_number(tomorrow, date(2026, 5, 2)).valid


def test_a_historic_county_code_is_accepted():
    from stdnum.cn import ric
    assert not ric.is_valid(HISTORIC)             # stdnum's full validate refuses it (county gone by 2011) …
    r = check_id_number(HISTORIC, TODAY)          # … the number keeps the code it was issued with
    assert r.valid and (r.sex, r.birth_date) == ("1", date(2011, 9, 1))


@pytest.mark.parametrize("region", ["810000", "820000", "830000"])
def test_residence_permit_codes_are_accepted(region):
    assert check_id_number(with_check_char(region + "20110901002"), TODAY).valid


def test_sex_and_birth_date_come_from_the_number():
    r = check_id_number(ID, TODAY)
    assert (r.sex, r.sex_label, r.birth_date) == ("2", "女", date(1949, 12, 31))


# --- 3. 学籍号 ----------------------------------------------------------------------------------------------

def test_g_follows_the_id_number_rules():
    assert check_xjh("G" + ID, today=TODAY).valid
    assert check_xjh("g" + ID.lower(), today=TODAY).normalized == "G" + ID
    assert check_xjh("G" + FUTURE, today=TODAY).code == "future_date"
    for number in UNKNOWN_COUNTIES:
        assert check_xjh("G" + number, today=TODAY).code == "bad_region"
    assert check_xjh("G" + HISTORIC, today=TODAY).valid


def test_g_must_be_g_plus_the_id_number():
    other = with_check_char("11010519491231004")
    r = check_xjh("G" + ID, "1", other, TODAY)
    assert r.code == "g_mismatch" and other in r.message
    assert check_xjh("G" + ID, "1", " " + ID.lower(), TODAY).valid
    assert check_xjh("G" + ID, "A", "E12345678", TODAY).valid       # a passport number is not compared


def test_a_bare_id_number_is_not_an_xjh():
    r = check_xjh(ID, today=TODAY)
    assert r.code == "not_xjh" and r.message.startswith("这是身份证件号，不是学籍号")


@pytest.mark.parametrize("entered,code", [("G11010519491231002", "bad_length"), ("G11010519491231002X1", "bad_length"),
                                          ("Q11010519491231002X", "bad_prefix"), ("L41010220110901X001", "bad_chars")])
def test_xjh_shape(entered, code):
    r = check_xjh(entered, today=TODAY, generated=True)
    assert r.code == code, r
    if code == "bad_length":
        assert "学籍号应为19位（G/J/L加18位）" in r.message


def test_j_only_without_a_resident_id():
    assert check_xjh(J_OK, "A", "E12345678", TODAY).valid
    assert check_xjh(J_OK, "Z", None, TODAY).birth_date == date(2011, 9, 1)
    assert check_xjh(J_OK, "1", ID, TODAY).code == "j_for_resident"
    bad = J_OK[:-1] + ("0" if J_OK[-1] != "0" else "1")
    assert check_xjh(bad, "A", today=TODAY).code == "bad_check"
    assert check_xjh("J" + with_check_char("41010220900101001"), "A", today=TODAY).code == "future_date"


def test_l_only_when_the_system_generated_it():
    assert check_xjh("L410102201109010001", today=TODAY).code == "l_not_typed"
    assert check_xjh("L410102201109010001", today=TODAY, generated=True).valid
    assert xjh_problem("L410102201109010001") is None         # the old wrapper: an assigned number may be L


def test_j_generator_takes_the_first_free_sequence_with_a_check_char():
    born = date(2012, 3, 5)
    first = j_xjh("410102", born, lambda prefix: [])
    assert first[:18] == "J41010220120305001" and check_xjh(first, "A", today=TODAY).valid
    taken = {first, j_xjh("410102", born, lambda prefix: [first])}
    assert taken == {first, "J" + with_check_char("41010220120305002")}
    assert j_xjh("410102", born, lambda prefix: taken)[:18] == "J41010220120305003"


# --- 4. the record rules (flush) ---------------------------------------------------------------------------

@pytest.fixture
def h(world, client):
    return api_headers(client, "school_a1_clerk")


def post(client, h, world, **over):
    return client.post(STUDENTS, json=student_body(world.schools["a1"], **over), headers=h)


def refused(resp, code):
    assert resp.status_code == 422, resp.get_json()
    assert resp.get_json()["code"] == code, resp.get_json()
    return resp.get_json()["message"]


def born(number):
    r = check_id_number(number)
    return {"id_number": number, "sex": r.sex, "birth_date": r.birth_date.isoformat()}


@pytest.mark.parametrize("number", UNKNOWN_COUNTIES + [FUTURE, "110105\u3000" + ID[6:]])
def test_record_rules_refuse_invalid_id_numbers(app, client, h, world, number):
    over = {"id_number": number, "birth_date": "2010-01-01"}
    message = refused(post(client, h, world, **over), "invalid_id")
    assert "身份证件号" in message


def test_record_rules_accept_a_historic_county(app, client, h, world):
    resp = post(client, h, world, **born(HISTORIC))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["result"]["xjh"] == "G" + HISTORIC


def student_obj(world, **over):
    body = student_body(world.schools["a1"], **over)
    body["birth_date"] = date.fromisoformat(body["birth_date"])
    return Student(**body)


def flush_refused(app, world, code, **over):
    with app.app_context():
        db.session.add(student_obj(world, **over))
        with pytest.raises(RuleError) as caught:
            db.session.flush()
        db.session.rollback()
    assert caught.value.code == code, caught.value.message
    return caught.value.message


def flush_ok(app, world, **over):
    with app.app_context():
        s = student_obj(world, **over)
        db.session.add(s)
        db.session.flush()
        xjh = s.xjh
        db.session.rollback()
    return xjh


def test_a_typed_g_must_match_the_id_number(app, world):
    other = with_check_char("11010519491231004")
    assert "G加身份证件号" in flush_refused(app, world, "invalid_xjh", xjh="G" + other)
    assert flush_ok(app, world, xjh=" g" + ID.lower() + "\u00a0") == "G" + ID


def test_a_typed_g_with_a_future_birth_is_refused(app, world):
    assert "2090" in flush_refused(app, world, "invalid_xjh", xjh="G" + FUTURE)


def test_j_is_refused_for_a_resident_id(app, world):
    flush_refused(app, world, "invalid_xjh", xjh=J_OK)
    assert flush_ok(app, world, xjh=J_OK, id_type="A", id_number="E12345678", nationality="USA", gatq="51",
                    sex="1", birth_date="2011-09-01") == J_OK


def test_a_typed_l_is_refused_for_a_new_student_but_not_from_a_system(app, world):
    from app.students import system_xjh
    over = dict(xjh="L410102201109010001", id_type="Z", id_number=None, sex="1", birth_date="2011-09-01")
    flush_refused(app, world, "invalid_xjh", **over)
    with app.app_context():
        with system_xjh(db.session):
            s = student_obj(world, **over)
            db.session.add(s)
            db.session.flush()
        assert s.xjh == "L410102201109010001"
        db.session.rollback()


def test_an_existing_l_row_stays_editable(app, client, h, world):
    sid = world.student_of("a1")
    with app.app_context():
        db.session.execute(update(Student).where(Student.id == sid).values(xjh="L410102201109010009"))
        db.session.commit()
    resp = client.put(f"{STUDENTS}{sid}", json={"phone": "13900000001"}, headers=h)
    assert resp.status_code == 200, resp.get_json()


def test_g_is_not_compared_when_only_the_id_number_changes(app, world):
    """DOMAIN §1.1: after a key-data change of the ID number, G and the number may differ."""
    from app.students import applying_request
    sid = world.student_of("a1")
    with app.app_context():
        s = db.session.get(Student, sid)
        old = s.id_number
        new = with_check_char(old[:14] + ("9" if old[14] != "9" else "8") + old[15:17])
        with applying_request(db.session):
            s.id_number = new
            db.session.flush()
        assert (s.xjh, s.id_number) == ("G" + old, new)
        db.session.rollback()


# --- 5. generated 学籍号 ------------------------------------------------------------------------------------

FOREIGN = dict(id_type="A", id_number="E12345678", nationality="USA", gatq="51", sex="1", birth_date="2011-09-01")


def test_rest_generates_g_for_a_resident_and_j_otherwise(app, client, h, world):
    resp = post(client, h, world, id_number=ID.lower())
    assert resp.status_code == 201 and resp.get_json()["result"]["xjh"] == "G" + ID
    first = post(client, h, world, **FOREIGN)
    second = post(client, h, world, **dict(FOREIGN, id_number="E87654321"))
    j1, j2 = first.get_json()["result"]["xjh"], second.get_json()["result"]["xjh"]
    assert (j1[:18], j2[:18]) == ("J41010220110901001", "J41010220110901002")     # school county + birth + seq
    assert check_xjh(j1, "A").valid and check_xjh(j2, "A").valid
    with app.app_context():
        assert db.session.get(Student, second.get_json()["id"]).xjh == j2


def test_a_duplicate_id_number_gets_a_temporary_l(app, client, h, world):
    with app.app_context():
        other = db.session.get(Student, world.student_of("b1"))
        number, sex, birth = other.id_number, other.sex, other.birth_date
    resp = post(client, h, world, id_number=number, sex=sex, birth_date=birth.isoformat())
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["result"]["xjh"] == f"L410102{birth:%Y%m%d}0001"


def test_rest_refuses_a_typed_xjh(app, client, h, world):
    assert "系统生成" in refused(post(client, h, world, xjh="G" + ID), "xjh_generated")


def web_form(world, **over):
    body = student_body(world.schools["a1"], **over)
    form = {k: ("y" if v is True else v) for k, v in body.items() if v is not False and k != "school_id"}
    form["school"] = world.schools["a1"]
    return form


def test_web_add_form_has_no_xjh_and_generates_it(app, world, as_user):
    c = as_user("school_a1_clerk")
    page = c.get("/student/add").get_data(as_text=True)
    assert 'name="xjh"' not in page and 'name="id_number"' in page
    assert "/api/v1/identity/check" in page                 # the inline check as the registrar types
    resp = c.post("/student/add", data=web_form(world, id_number=ID))
    assert resp.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Student.xjh).where(Student.id_number == ID)) == "G" + ID
    c.post("/student/add", data=web_form(world, **FOREIGN))
    with app.app_context():
        xjh = db.session.scalar(select(Student.xjh).where(Student.id_number == "E12345678"))
    assert xjh[:18] == "J41010220110901001"


def test_web_add_form_normalises_before_its_length_limit(app, world, as_user):
    c = as_user("school_a1_clerk")
    padded = "\u00a0" + ID + " " * 14 + "\u3000"                 # 34 characters as pasted, 18 after cleaning
    assert c.post("/student/add", data=web_form(world, id_number=padded)).status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Student.xjh).where(Student.id_number == ID)) == "G" + ID
    page = c.post("/student/add", data=web_form(world, id_number="1" * 31)).get_data(as_text=True)
    assert "身份证件号不能超过30位" in page


def test_rest_normalises_before_its_length_limit(app, client, h, world):
    padded = "\u00a0" + ID + " " * 14 + "\u3000"
    resp = post(client, h, world, id_number=padded)
    assert resp.status_code == 201, resp.get_json()
    message = refused(post(client, h, world, id_number="1" * 31), "invalid")
    assert "身份证件号不能超过30位" in message and "Longer" not in message


# --- 6. searching and transfers with a pasted number ----------------------------------------------------------

def test_list_search_accepts_a_pasted_xjh(app, world, as_user, client):
    import prison
    sid = world.student_of("a1")
    with app.app_context():
        xjh, number = db.session.execute(select(Student.xjh, Student.id_number).where(Student.id == sid)).one()
    c = as_user("school_a1_clerk")
    for flt in (f"_flt_3_xjh={quote(xjh + chr(0xa0))}", f"_flt_0_xjh={quote(chr(0x3000) + xjh[:9])}",
                f"_flt_3_id_number={quote(number + chr(0xfeff))}",
                f"_flt_1_id_number={quote('　' + number[-6:].translate(str.maketrans('0123456789X', '０１２３４５６７８９Ｘ')))}"):
        page = c.get(f"/student/list/?{flt}").get_data(as_text=True)
        assert xjh in page, flt
    h = api_headers(client, "school_a1_clerk")
    q = prison.dumps({"filters": [{"col": "xjh", "opr": "eq", "value": xjh + "\u00a0"}]})
    rows = client.get(f"{STUDENTS}?q={quote(q)}", headers=h).get_json()["result"]
    assert [r["xjh"] for r in rows] == [xjh]


def test_transfer_finds_a_pasted_xjh_and_names_a_malformed_one(app, world):
    from app.transfers import find_student
    sid = world.student_of("a1")
    with app.app_context():
        s = db.session.get(Student, sid)
        assert find_student(db.session, s.xjh + "\u00a0", s.name).id == sid
        with pytest.raises(RuleError) as caught:
            find_student(db.session, s.xjh[:7] + " " + s.xjh[7:], s.name)
        assert caught.value.code == "2001" and "中间有空格" in caught.value.message


# --- 7. 问题学籍 detection ---------------------------------------------------------------------------------------

def test_detection_flags_unknown_counties_and_future_births(app, world):
    from app import problems
    from models.requests import Problem
    a, b = world.students["a1"][:2]
    with app.app_context():
        for sid, number in ((a, UNKNOWN_COUNTIES[0]), (b, FUTURE)):
            db.session.execute(update(Student).where(Student.id == sid).values(id_number=number))
        db.session.commit()
        problems.detect(db.session, student_ids=[a, b])
        db.session.commit()
        found = dict(db.session.execute(select(Problem.student_id, Problem.kind).where(Problem.current == 1)).all())
    assert found == {a: "invalid_id", b: "invalid_id"}


# --- 8. GET /api/v1/identity/check ------------------------------------------------------------------------------

def test_identity_check_answers_valid_numbers(app, world, client):
    h = api_headers(client, "school_a1_clerk")
    body = client.get(f"{CHECK}?kind=id_number&value={quote(' ' + ID.lower())}", headers=h).get_json()
    assert body == {"valid": True, "normalized": ID, "sex": "女", "birth_date": "1949-12-31", "code": None,
                    "message": None, "notes": ["已去除首尾空格", "已将小写x转换为大写X"]}
    body = client.get(f"{CHECK}?kind=xjh&value=G{ID}&id_type=1&id_number={ID}", headers=h).get_json()
    assert body["valid"] and body["sex"] == "女"


def test_identity_check_answers_invalid_numbers(app, world, client):
    h = api_headers(client, "school_a1_clerk")
    body = client.get(f"{CHECK}?kind=id_number&value={UNKNOWN_COUNTIES[0]}", headers=h).get_json()
    assert (body["valid"], body["code"], body["sex"], body["birth_date"]) == (False, "bad_region", None, None)
    assert "地区码" in body["message"]
    body = client.get(f"{CHECK}?kind=xjh&value={ID}", headers=h).get_json()
    assert body["code"] == "not_xjh"
    body = client.get(f"{CHECK}?kind=xjh&value={J_OK}&id_type=1&id_number={ID}", headers=h).get_json()
    assert body["code"] == "j_for_resident"
    resp = client.get(f"{CHECK}?kind=phone&value=1", headers=h)
    assert resp.status_code == 422 and resp.get_json()["code"] == "invalid"


def test_identity_check_needs_a_signed_in_user_of_any_role(app, world, client, as_user):
    assert client.get(f"{CHECK}?kind=id_number&value={ID}").status_code == 401
    for user in ("admin", "county_a_clerk", "county_a_reviewer", "school_a1_clerk", "school_a1_leader"):
        h = api_headers(client, user)
        assert client.get(f"{CHECK}?kind=id_number&value={ID}", headers=h).get_json()["valid"], user
    # the student form calls it with the browser's session
    assert as_user("school_a1_leader").get(f"{CHECK}?kind=id_number&value={ID}").get_json()["valid"]
