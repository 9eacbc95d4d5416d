"""The system clock, in one place so tests can fix it (calendar windows, password age, lockout)."""
from datetime import date, datetime

_fixed: datetime | None = None


def now() -> datetime:
    return _fixed or datetime.now()


def today() -> date:
    return now().date()


def fix(moment: datetime | None) -> None:
    """Tests only: freeze the clock at ``moment`` (None releases it)."""
    global _fixed
    _fixed = moment
