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
    "photo.max_bytes": str(2 * 1024 * 1024),      # 学生照片 upload (stored cropped, about 50 KB)
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


# What each setting means, one short sentence (参数设置 lists every key with it).
MEANINGS = {
    "class_cap.初中": "初中每班默认班额（人数上限），个别班级可由区县单独设置。",
    "class_cap.高中": "高中每班默认班额（人数上限），个别班级可由区县单独设置。",
    "class_cap.hard_limit": "大班额界限：默认班额必须低于此人数，达到即为大班额。",
    "evidence.max_bytes": "上传的每个证明材料文件的大小上限。",
    "photo.max_bytes": "上传的学生照片（JPG或PNG）文件的大小上限；照片保存时裁剪为26×32毫米比例。",
    "key_fields.extra": "除姓名、身份证件号、性别、出生日期、年级、班级外，另需走关键数据变更审批的学生字段。",
    "workflow.due_days": "审批每个环节的办理时限（工作日）。",
    "problems.proof_allows_invalid_id": "身份证件号错误的问题学籍是否允许通过佐证办结。",
    "rules.compulsory_no_withdrawal": "义务教育阶段是否禁止退学、开除。",
    "rules.no_repeat_compulsory": "义务教育阶段是否禁止留级。",
    "rules.no_repeat_graduating": "毕业年级是否禁止留级。",
    "rules.skip_once_per_stage": "每个学段是否最多只能跳级一次。",
    "calendar.graduating_freeze": "毕业年级在此期间不受理新的学籍业务。",
    "calendar.transfer_pause": "此期间不受理新的转学申请。",
    "calendar.cross_province_windows": "受理毕业后跨省就学申请的时间段。",
    "calendar.school_year": "本地当前学年（由升级设置）；留空则按日期推算。",
    "calendar.admission_switch": "自该日起招生录取计入下一学年的新生。",
    "graduation.cert_pattern": "毕业证号的生成格式（学校标识码、年份、流水号）。",
    "calendar.graduation_window": "只在此期间办理毕业。",
    "rules.no_transfer_entry_first_term": "起始年级第一学期是否禁止转学。",
    "rules.no_transfer_graduating_last_term": "毕业年级最后一学期是否禁止转学。",
    "exchange.package_days": "跨省转学数据包的有效天数，超过即拒收。",
}

LEVELS = {"default": "全国默认", "installation": "全系统", "province": "省级", "city": "市级", "county": "区县"}


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
    if key in ("evidence.max_bytes", "photo.max_bytes"):
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


# --- 参数设置 overview: every key, its default, the value in force for one region and who set it ----------------

def level_of(region_code: str | None) -> str:
    """The level a setting row belongs to: 全系统 (no region), 省级, 市级 or 区县."""
    if not region_code:
        return "installation"
    if region_code.endswith("0000"):
        return "province"
    if region_code.endswith("00"):
        return "city"
    return "county"


def _md_words(text: str) -> str:
    m = _MMDD.match(text.strip())
    return f"{int(m.group(1))}月{int(m.group(2))}日" if m else text


def display(key: str, value: str | None, field_labels: dict | None = None) -> str:
    """A setting's value in words: 是/否 for flags, 7月1日至8月14日 for windows, units for numbers;
    `field_labels` names the student fields of key_fields.extra (the screens pass their labels)."""
    value = "" if value is None else str(value)
    if key.startswith("rules.") or key == "problems.proof_allows_invalid_id":
        return {"1": "是", "0": "否"}.get(value, value)
    if key.startswith("calendar.") and ".." in value:
        parts = []
        for part in value.split(","):
            start, _, end = part.strip().partition("..")
            parts.append(f"{_md_words(start)}至{_md_words(end)}")
        return "、".join(parts)
    if key == "calendar.admission_switch":
        return _md_words(value)
    if key == "calendar.school_year":
        return f"{value}—{int(value) + 1}学年" if _whole(value) is not None else "按日期推算"
    if key.startswith("class_cap."):
        return f"{value}人"
    if key in ("evidence.max_bytes", "photo.max_bytes") and _whole(value) is not None:
        n = int(value)
        return f"{n / 1024 / 1024:g} MB" if n % (1024 * 1024) == 0 else f"{n / 1024:.0f} KB"
    if key == "workflow.due_days":
        return f"{value}个工作日"
    if key == "exchange.package_days":
        return f"{value}天"
    if key == "key_fields.extra":
        if not value.strip():
            return "无"
        labels = field_labels or {}
        return "、".join(str(labels.get(f.strip(), f.strip())) for f in value.split(",") if f.strip())
    return value


def overview(session, region_code: str | None, field_labels: dict | None = None) -> list[dict]:
    """Every key of DEFAULTS for one region (a county, city or province code; None: the installation): its
    meaning, the national default, the value in force there, the level that set it and that region's own row.
    Only the region's own chain is read, so a county never sees another county's rows."""
    chain = list(dict.fromkeys(region_chain(region_code) if region_code else [None]))
    codes = [c for c in chain if c]
    rows = session.execute(select(Setting).where(Setting.region_code.in_(codes) | Setting.region_code.is_(None))
                           ).scalars().all() if codes else \
        session.execute(select(Setting).where(Setting.region_code.is_(None))).scalars().all()
    by_key: dict[str, dict] = {}
    for row in rows:
        by_key.setdefault(row.key, {})[row.region_code] = row
    result = []
    for key, default in DEFAULTS.items():
        found = by_key.get(key, {})
        value, level, set_row = default, "default", None
        for code in chain:
            if code in found:
                set_row = found[code]
                value, level = set_row.value, level_of(code)
                break
        own = found.get(region_code)
        result.append({"key": key, "meaning": MEANINGS.get(key, ""), "default": default,
                       "default_words": display(key, default, field_labels), "value": value,
                       "value_words": display(key, value, field_labels),
                       "level": level, "level_label": LEVELS[level],
                       "set_in": set_row.region_code if set_row is not None else None,
                       "own_id": own.id if own is not None else None, "note": own.note if own is not None else None})
    return result
