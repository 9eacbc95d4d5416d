"""Code tables (代码表): lookups for validation and labels, and the sync of the national defaults."""
from sqlalchemy import select

from app.codes_data import CODE_TABLES
from models.codes import Code


def codes(session, table: str) -> dict[str, str]:
    """{code: name} of the active codes of one table, read once per transaction."""
    cache = session.info.setdefault("xueji_codes", {})
    if table not in cache:
        cache[table] = dict(session.execute(
            select(Code.code, Code.name).where(Code.table == table, Code.active.is_(True))).all())
    return cache[table]


def label(session, table: str, code) -> str:
    return "" if code in (None, "") else codes(session, table).get(str(code), str(code))


# Which columns hold a code of which table: the one map the screens, the 学籍卡, exports and the audit log use.
FIELD_TABLES = {
    "student": {"sex": "XB", "ethnicity": "MZ", "nationality": "GJ", "id_type": "SFZJLX", "gatq": "GATQ",
                "political": "ZZMM", "health": "JKZK", "hukou_type": "HKXZ", "entry_mode": "RXFS",
                "study_mode": "JDFS", "source": "XSLY", "left_behind": "LSET", "inclusive": "SBJD",
                "disability": "CJLX", "transport": "JTFS"},
    "guardian": {"relation": "GX", "ethnicity": "MZ", "id_type": "SFZJLX"},
}
# Columns that hold a 行政区划代码 (6 or 12 digits): shown as 省市县 names with the code.
REGION_FIELDS = {"student": ("birthplace", "native_place", "hukou_place"), "guardian": ("hukou_place",)}


def field_label(session, entity: str | None, field: str | None, value):
    """``value`` of ``entity.field`` as people read it (a code's name, a region's 省市县), else unchanged."""
    if value in (None, ""):
        return value
    table = FIELD_TABLES.get(entity or "", {}).get(field or "")
    if table:
        return label(session, table, value)
    if field in REGION_FIELDS.get(entity or "", ()):
        return region_label(session, value)
    return value


def _latest(name: str) -> str:
    """python-stdnum's names carry their history ("[1983-1989]南头区办事处,[1990-]南山区"): the latest one."""
    last = name.split(",")[-1]
    return last.split("]", 1)[-1].strip()


def _stdnum_name(code6: str) -> str | None:
    try:
        from stdnum import numdb
        info = numdb.get("cn/loc").info(code6)
    except Exception:           # noqa: BLE001 - an unreadable table leaves the code as it is
        return None
    for _part, props in info[1:]:
        if props.get("county"):
            return _latest(props["county"])
    return None


def region_names(session, code) -> str:
    """省市县 names of a 6- or 12-digit 行政区划代码: from the Region table where held, else from GB/T 2260
    (python-stdnum's table, which also knows codes no longer in use). "" when neither knows it."""
    text = str(code or "").strip()
    if len(text) < 6 or not text[:6].isdigit():
        return ""
    cache = session.info.setdefault("xueji_regions", {})
    key = text[:6]
    if key not in cache:
        from models import Region
        levels = [key[:2] + "0000", key[:4] + "00", key]
        levels = list(dict.fromkeys(levels))          # 410000 → 410000 only once
        held = dict(session.execute(select(Region.code, Region.name).where(Region.code.in_(levels))).all())
        names = []
        for level in levels:
            name = held.get(level) or _stdnum_name(level)
            if level != levels[0] and name in ("市辖区", "县", "省直辖县级行政区划", "自治区直辖县级行政区划"):
                continue
            if name and name not in names:
                names.append(name)
        cache[key] = "".join(names)
    return cache[key]


def region_label(session, code) -> str:
    """"河南省郑州市中原区（410102017021）"; the bare code when no table knows it; "" for none."""
    text = str(code or "").strip()
    if not text:
        return ""
    names = region_names(session, text)
    return f"{names}（{text}）" if names else text


def sync_defaults(session) -> int:
    """Insert the national codes that are missing; never touch or delete rows the superadmin changed or added."""
    have = {(t, c) for t, c in session.execute(select(Code.table, Code.code)).all()}
    rows = [dict(table=table, table_name=title, code=code, name=name, sort=i, active=True)
            for table, (title, entries) in CODE_TABLES.items()
            for i, (code, name) in enumerate(entries) if (table, code) not in have]
    if rows:
        from sqlalchemy import insert
        session.execute(insert(Code), rows)
    session.info.pop("xueji_codes", None)
    return len(rows)


def install(session_factory) -> None:
    """Codes are read once per transaction: forget them at commit and rollback."""
    from sqlalchemy import event
    for name in ("after_commit", "after_rollback"):
        event.listen(session_factory, name, _forget)


def _forget(session) -> None:
    for key in ("xueji_codes", "xueji_regions", "xueji_school_years"):
        session.info.pop(key, None)


def when(value, seconds: bool = False) -> str:
    """A date as 2026-11-30, a time to the minute (2026-11-30 10:23), nothing for none: never microseconds."""
    import datetime
    if value is None or value == "":
        return ""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    if isinstance(value, datetime.date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def words(value, entity: str | None = None, field: str | None = None) -> str:
    """Any value as a page shows it (the Jinja filter ``words``): times to the minute, a coded field's name, a
    region code's 省市县, booleans as 是/否, and nothing — never "None" — for a missing value."""
    import datetime
    if value is None:
        return ""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return when(value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if entity and field:
        from app.extensions import db
        return str(field_label(db.session, entity, field, value))
    return str(value)
