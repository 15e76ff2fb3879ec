"""UTC day arithmetic shared by the data, the routes and the emulator: day boundaries as Cloudflare
writes them, months, and turning what a caller passes into a day.

Standard library only, importing only ``clock.py``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

from airflow_provider_cfbilling.emulator.clock import to_utc

#: A day as the API and the control API spell it: ``YYYY-MM-DD`` (validity checked separately).
DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def timestamp(day: date) -> str:
    """A UTC day boundary as Cloudflare formats it: ``2025-05-01T00:00:00Z``."""
    return f"{day.isoformat()}T00:00:00Z"


def utc_midnight(day: date) -> datetime:
    """The instant ``day`` starts (aware UTC)."""
    return datetime.combine(day, datetime.min.time(), tzinfo=timezone.utc)


def add_month(day: date) -> date:
    """The same day-of-month one month later (callers only use days 1..28)."""
    if day.month == 12:
        return day.replace(year=day.year + 1, month=1)
    return day.replace(month=day.month + 1)


def sub_month(day: date) -> date:
    if day.month == 1:
        return day.replace(year=day.year - 1, month=12)
    return day.replace(month=day.month - 1)


def days_in_month(day: date) -> int:
    return (add_month(day.replace(day=1)) - day.replace(day=1)).days


def as_day(value: date | str) -> date:
    """A day from a ``date``, an ISO ``YYYY-MM-DD`` text, or a ``datetime`` (its UTC day)."""
    if isinstance(value, datetime):
        return to_utc(value).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)
