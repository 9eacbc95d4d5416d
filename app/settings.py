"""Settings that a province, city or county may set differently (班额, evidence size, extra key fields …).

The most specific level wins: county → city → province → installation (region_code NULL) → DEFAULTS below.
Facts the domain notes mark as weakly sourced ([W]/[I]) live here rather than in code.
"""
from sqlalchemy import select

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
    "rules.no_transfer_entry_first_term": "1",      # none in the entry grade's first term
    "rules.no_transfer_graduating_last_term": "1",  # none in the graduating grade's last term
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
