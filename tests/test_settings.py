"""Settings are validated by the rules they express (issue 15), when saved through the screens or any API: a flush
rule on Setting (app.settings.setting_is_valid)."""
import re

import pytest
from sqlalchemy import select

from app import settings
from app.errors import RuleError
from app.extensions import db
from models import Setting


def saved(app, key, region=None):
    with app.app_context():
        return db.session.scalars(select(Setting.value).where(Setting.key == key,
                                                              Setting.region_code == region)).first()


def add(client, key, value, region=""):
    return client.post("/setting/add", data={"key": key, "value": value, "region_code": region, "note": ""},
                       follow_redirects=True)


def test_a_county_cannot_save_a_class_cap_of_56_or_more(app, world, as_user):
    c = as_user("county_a_clerk")
    page = add(c, "class_cap.高中", "80").get_data(as_text=True)
    assert "不能达到56人" in page and "大班额" in page
    assert saved(app, "class_cap.高中", "410102") is None
    assert "不能达到56人" in add(c, "class_cap.初中", "56").get_data(as_text=True)
    add(c, "class_cap.高中", "55")
    assert saved(app, "class_cap.高中", "410102") == "55"


def test_editing_a_cap_is_checked_too(app, world, as_user):
    c = as_user("county_b_clerk")
    add(c, "class_cap.初中", "45")
    with app.app_context():
        sid = db.session.scalar(select(Setting.id).where(Setting.key == "class_cap.初中",
                                                         Setting.region_code == "410105"))
    c.post(f"/setting/edit/{sid}", data={"key": "class_cap.初中", "value": "99", "region_code": "410105",
                                          "note": ""})
    with c.session_transaction() as browser:       # refused (FAB's edit form flashes its own error text)
        assert [category for category, _ in browser.get("_flashes", [])] == ["danger"]
    assert saved(app, "class_cap.初中", "410105") == "45"


@pytest.mark.parametrize("key,value,message", [
    ("class_cap.初中", "-5", "正整数"),
    ("class_cap.初中", "0", "正整数"),
    ("class_cap.初中", "abc", "正整数"),
    ("class_cap.初中", "4.5", "正整数"),
    ("evidence.max_bytes", "-1", "正整数"),
    ("evidence.max_bytes", "999999999", "不能超过"),
    ("workflow.due_days", "-3", "正整数"),
    ("exchange.package_days", "0", "正整数"),
    ("calendar.transfer_pause", "07-15-08-14", "月-日..月-日"),
    ("calendar.transfer_pause", "13-01..08-14", "月-日..月-日"),
    ("calendar.graduating_freeze", "07-01..02-30", "月-日..月-日"),
    ("calendar.cross_province_windows", "08-15..12-14,3-1..5-31", "3-1..5-31"),
    ("calendar.admission_switch", "7月1日", "月-日"),
    ("rules.no_repeat_compulsory", "yes", "1（启用）或 0（停用）"),
    ("key_fields.extra", "hukou_place,password", "password"),
    ("graduation.cert_pattern", "{school}{serial}", "{school_code}"),
    ("calendar.school_year", "明年", "年份"),
    ("class_cap.小学", "40", "未知参数"),
    ("no.such.key", "1", "未知参数"),
])
def test_values_their_rule_cannot_use_are_refused(app, world, as_user, key, value, message):
    page = add(as_user("admin"), key, value).get_data(as_text=True)
    assert message in page, key
    assert saved(app, key) is None


@pytest.mark.parametrize("key,value", [
    ("class_cap.初中", "45"), ("class_cap.hard_limit", "50"), ("evidence.max_bytes", "1048576"),
    ("workflow.due_days", "5"), ("exchange.package_days", "60"), ("calendar.transfer_pause", "07-10..08-20"),
    ("calendar.cross_province_windows", "08-15..12-14, 03-01..05-31"), ("calendar.graduating_freeze", "12-20..01-05"),
    ("calendar.admission_switch", "02-29"), ("rules.no_repeat_compulsory", "0"), ("key_fields.extra", "hukou_place"),
    ("graduation.cert_pattern", "{school_code}-{year}-{serial:05d}"), ("calendar.school_year", "2027"),
])
def test_good_values_are_saved(app, world, as_user, key, value):
    add(as_user("admin"), key, value)
    assert saved(app, key) == value.strip()


def test_the_hard_limit_cannot_be_raised_above_the_national_56(app, world, as_user):
    c = as_user("county_a_clerk")
    assert "不能超过56" in add(c, "class_cap.hard_limit", "100").get_data(as_text=True)
    assert saved(app, "class_cap.hard_limit", "410102") is None


def test_a_lower_hard_limit_bounds_the_caps_below_it(app, world, as_user):
    admin = as_user("admin")
    add(admin, "class_cap.hard_limit", "46", region="410000")
    assert "不能达到46人" in add(admin, "class_cap.初中", "50", region="410102").get_data(as_text=True)


def test_every_write_in_a_request_is_checked_not_only_the_form(app, world):
    """What any API or action saves meets the same flush rule."""
    with app.test_request_context():
        db.session.add(Setting(key="class_cap.高中", region_code="410102", value="80"))
        with pytest.raises(RuleError) as exc:
            db.session.flush()
        db.session.rollback()
    assert exc.value.code == "class_cap_too_large" and "56" in exc.value.message


def test_every_default_passes_its_own_rule(app):
    with app.app_context():
        for key, value in settings.DEFAULTS.items():
            settings.validate(Setting(key=key, value=value), db.session)


# --- 参数设置 overview (issue 16): every key, its meaning, default, value in force and level -----------------

def test_overview_lists_every_setting_with_meaning_default_and_words(app, world, as_user):
    from app.settings import DEFAULTS, MEANINGS
    assert set(MEANINGS) == set(DEFAULTS) and all(MEANINGS.values())
    page = as_user("county_a_clerk").get("/setting/overview").get_data(as_text=True)
    for key in DEFAULTS:
        assert f'data-key="{key}"' in page and MEANINGS[key] in page, key
    assert "7月1日至8月14日" in page and "全国默认" in page and "是" in page
    assert "07-01..08-14" not in page and "None" not in page


def test_overview_shows_own_and_inherited_values_never_another_countys(app, world, as_user):
    admin = as_user("admin")
    add(admin, "workflow.due_days", "7")                       # installation-wide
    add(as_user("county_b_clerk"), "class_cap.初中", "41")     # another county
    a = as_user("county_a_clerk")
    add(a, "class_cap.高中", "45")
    page = a.get("/setting/overview").get_data(as_text=True)
    row = lambda key: re.search(rf'data-key="{re.escape(key)}".*?</tr>', page, re.S).group(0)   # noqa: E731
    assert "7个工作日" in row("workflow.due_days") and "全系统" in row("workflow.due_days")
    assert "设置" in row("workflow.due_days")                  # the county may set its own
    assert "45人" in row("class_cap.高中") and "区县" in row("class_cap.高中") and "/setting/edit/" in row("class_cap.高中")
    assert "41人" not in page and "50人" in row("class_cap.初中")
    form = a.get("/setting/add?key=class_cap.初中").get_data(as_text=True)
    assert 'value="class_cap.初中"' in form
    # the superadmin sees installation-wide values; a school reads without edit links
    assert "7个工作日" in admin.get("/setting/overview").get_data(as_text=True)
    school = as_user("school_a1_leader").get("/setting/overview").get_data(as_text=True)
    assert "45人" in school and "/setting/add" not in school and "/setting/edit/" not in school


def test_menu_points_to_the_overview(app, world, as_user):
    assert 'href="/setting/overview"' in as_user("county_a_clerk").get("/").get_data(as_text=True)


def test_display_words():
    assert settings.display("rules.no_repeat_graduating", "0") == "否"
    assert settings.display("calendar.cross_province_windows", "08-15..12-14,03-01..05-31") == \
        "8月15日至12月14日、3月1日至5月31日"
    assert settings.display("evidence.max_bytes", str(2 * 1024 * 1024)) == "2 MB"
    assert settings.display("calendar.school_year", "") == "按日期推算"
