"""Working days (工作日) with Chinese public holidays and 调休 working weekends, from chinese-calendar.

Years the package does not cover yet fall back to Monday–Friday (the State Council publishes each year's
arrangement in the preceding November; upgrade the package to pick it up)."""
from datetime import date, timedelta

import chinese_calendar


def is_workday(day: date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The date `days` working days after `start` (start itself not counted)."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if is_workday(current):
            left -= 1
    return current
