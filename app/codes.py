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
        event.listen(session_factory, name, lambda s: s.info.pop("xueji_codes", None))
