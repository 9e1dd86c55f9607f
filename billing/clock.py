"""The clinic's calendar: invoice dates, due dates and "today" are in the clinic's time zone."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

CLINIC_TIME = ZoneInfo("Europe/London")


def today_at_clinic() -> date:
    return datetime.now(CLINIC_TIME).date()


def start_of_day(day: date) -> datetime:
    """Midnight at the clinic on `day`, as an aware datetime."""
    return datetime(day.year, day.month, day.day, tzinfo=CLINIC_TIME)
