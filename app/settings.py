"""Settings that a province, city or county may set differently (班额, evidence size, extra key fields …).

The most specific level wins: county → city → province → installation (region_code NULL) → DEFAULTS below.
Facts the domain notes mark as weakly sourced ([W]/[I]) live here rather than in code.
"""
import re
from datetime import date

from flask import has_request_context
from sqlalchemy import select

from app.errors import RuleError
from app.rules import rule
from models.codes import Setting

DEFAULTS = {
    "class_cap.初中": "50",          # 班额 default per stage (DOMAIN §6: provinces cap 初中/高中 at 50)
    "class_cap.高中": "50",
    "class_cap.hard_limit": "56",   # 56+ is 大班额: never without an explicit per-class county override
    "evidence.max_bytes": str(2 * 1024 * 1024),
    "key_fields.extra": "",         # comma-separated Student columns the superadmin marks as key data
    "workflow.due_days": "10",      # working days per step (DOMAIN §4.2)
    "problems.proof_allows_invalid_id": "1",   # 2017 help: 佐证 allowed for 身份证号错误 too
    # 学籍异动 national rules (DOMAIN §4.3), switchable per province/county
    "rules.compulsory_no_withdrawal": "1",     # no 退学/开除 in compulsory education
    "rules.no_repeat_compulsory": "1",         # no 留级 in compulsory education
    "rules.no_repeat_graduating": "1",         # no 留级 in a graduating grade
    "rules.skip_once_per_stage": "1",          # 跳级 at most once per stage
    "calendar.graduating_freeze": "07-01..08-14",   # graduating grades take no new business
    "calendar.transfer_pause": "07-15..08-14",      # no new transfer applications
    "calendar.cross_province_windows": "08-15..12-14,03-01..05-31",   # 毕业后跨省就学 applications
    "calendar.school_year": "",                     # the county's current 学年 (set by 升级); empty: by date
    "calendar.admission_switch": "07-01",           # from this day the next year's entrants are admitted
    "graduation.cert_pattern": "{school_code}{year}{serial:04d}",   # 毕业证号 (no national K-12 format)
    # 毕业 only in this season: DOMAIN §7 national calendar (教基司厅函〔2017〕23号) has schools finish 毕业/结业 by 7/30;
    # the start (June, the school year's last month) is ours [I]. A county may move it.
    "calendar.graduation_window": "06-01..07-30",
    "rules.no_transfer_entry_first_term": "1",      # none in the entry grade's first term
    "rules.no_transfer_graduating_last_term": "1",  # none in the graduating grade's last term
    "exchange.package_days": "30",                  # 跨省转学 packages are refused after this many days
}


def region_chain(county_code: str | None) -> list[str | None]:
    """Codes to try, most specific first: county, city, province, installation."""
    if not county_code:
        return [None]
    return [county_code, county_code[:4] + "00", county_code[:2] + "0000", None]


def get(session, key: str, county_code: str | None = None) -> str:
    chain = region_chain(county_code)
    rows = dict(session.execute(
        select(Setting.region_code, Setting.value).where(Setting.key == key,
                                                         (Setting.region_code.in_([c for c in chain if c])) |
                                                         Setting.region_code.is_(None))).all())
    for code in chain:
        if code in rows:
            return rows[code]
    return DEFAULTS[key]


def get_int(session, key: str, county_code: str | None = None) -> int:
    return int(get(session, key, county_code))


# --- validation: a setting is saved only if the rule it expresses can use it ---------------------------------

_MMDD = re.compile(r"^(\d{2})-(\d{2})$")


def _month_day(text: str) -> bool:
    m = _MMDD.match(text)
    if not m:
        return False
    try:
        date(2024, int(m.group(1)), int(m.group(2)))        # a leap year: 02-29 is a real day
    except ValueError:
        return False
    return True


def _window(text: str) -> bool:
    start, sep, end = text.partition("..")
    return sep == ".." and _month_day(start) and _month_day(end)


def _whole(value: str) -> int | None:
    """A whole number written plainly (no sign, no spaces inside, no decimals), else None."""
    return int(value) if re.fullmatch(r"\d{1,9}", value) else None


def _positive(key, value, *, upper=None, unit="") -> None:
    n = _whole(value)
    if value.startswith("-") or n is None or n < 1:
        raise RuleError(f"参数“{key}”应为正整数{unit}，不能是“{value}”", code="invalid_setting")
    if upper is not None and n > upper:
        raise RuleError(f"参数“{key}”不能超过{upper}{unit}（填写的是{n}）", code="invalid_setting")


def _flag(key, value) -> None:
    if value not in ("0", "1"):
        raise RuleError(f"参数“{key}”只能是 1（启用）或 0（停用）", code="invalid_setting")


def _windows(key, value, many=False) -> None:
    parts = value.split(",") if many else [value]
    bad = [p for p in parts if not _window(p.strip())]
    if bad:
        raise RuleError(f"参数“{key}”应为“月-日..月-日”格式的日期区间（如 07-15..08-14）"
                        f"{'，多个区间用逗号分隔' if many else ''}，“{bad[0]}”不符合", code="invalid_setting")


def _class_cap(key, value, setting, session) -> None:
    _positive(key, value, unit="人")
    hard = int(get(session, "class_cap.hard_limit", setting.region_code))
    if int(value) >= hard:
        raise RuleError(f"班额“{key}”不能达到{hard}人（{hard}人及以上为大班额）；个别班级确需超额，"
                        f"请由区县教育局在该班级上单独设置班额", code="class_cap_too_large")


def _hard_limit(key, value, setting, session) -> None:
    national = int(DEFAULTS["class_cap.hard_limit"])
    _positive(key, value, upper=national, unit="人")


def _key_fields(key, value, setting, session) -> None:
    from models import Student
    columns = set(Student.__table__.columns.keys())
    unknown = [f.strip() for f in value.split(",") if f.strip() and f.strip() not in columns]
    if unknown:
        raise RuleError(f"参数“{key}”中“{unknown[0]}”不是学生信息的字段", code="invalid_setting")


def _cert_pattern(key, value, setting, session) -> None:
    try:
        sample = value.format(school_code="4101020001", year=2026, serial=1)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        raise RuleError(f"参数“{key}”只能使用 {{school_code}}、{{year}}、{{serial}}（如 {{serial:04d}}）",
                        code="invalid_setting") from None
    if not sample or len(sample) > 40:
        raise RuleError(f"参数“{key}”生成的毕业证号应为1到40个字符", code="invalid_setting")


def _switch_day(key, value, setting, session) -> None:
    if not _month_day(value):
        raise RuleError(f"参数“{key}”应为“月-日”格式的日期（如 07-01）", code="invalid_setting")


def _school_year(key, value, setting, session) -> None:
    if value and (_whole(value) is None or not 2000 <= int(value) <= 2100):
        raise RuleError(f"参数“{key}”应为学年开始的年份（如 2026），或留空", code="invalid_setting")


def _validator(key: str):
    if key.startswith("class_cap.") and key != "class_cap.hard_limit":
        return _class_cap
    if key == "class_cap.hard_limit":
        return _hard_limit
    if key in ("evidence.max_bytes",):
        return lambda k, v, s, sess: _positive(k, v, upper=12 * 1024 * 1024, unit="字节")
    if key in ("workflow.due_days", "exchange.package_days"):
        return lambda k, v, s, sess: _positive(k, v, upper=3650, unit="天")
    if key.startswith("rules.") or key == "problems.proof_allows_invalid_id":
        return lambda k, v, s, sess: _flag(k, v)
    if key == "calendar.cross_province_windows":
        return lambda k, v, s, sess: _windows(k, v, many=True)
    if key.startswith("calendar.") and DEFAULTS.get(key, "").count("..") == 1:
        return lambda k, v, s, sess: _windows(k, v)
    return {"calendar.admission_switch": _switch_day, "key_fields.extra": _key_fields, "graduation.cert_pattern": _cert_pattern,
            "calendar.school_year": _school_year}.get(key)


def validate(setting: Setting, session) -> None:
    """Refuse a value its rule cannot use, in Chinese. Raises RuleError."""
    key = (setting.key or "").strip()
    if key not in DEFAULTS:
        raise RuleError(f"未知参数“{setting.key}”；可用参数：{'、'.join(DEFAULTS)}", code="unknown_setting")
    if setting.region_code is not None and not str(setting.region_code).strip():
        setting.region_code = None          # left blank on the form: the whole installation
    value = "" if setting.value is None else str(setting.value)
    if value != value.strip():
        setting.value = value = value.strip()
    check = _validator(key)
    if check is not None:
        check(key, value, setting, session)


@rule(Setting)
def setting_is_valid(setting: Setting, session) -> None:
    """Settings saved through the screens and the REST API (any signed-in request) are checked; the code's own
    writes (升级 moving calendar.school_year, the CLI, migrations) are trusted."""
    if has_request_context():
        validate(setting, session)
