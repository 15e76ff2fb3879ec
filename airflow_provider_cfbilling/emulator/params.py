"""The query-parameter rules of the usage and history routes: dates, ranges and their limits, paging.

Limits come from the package's endpoint registry (``endpoints.py``); every violation is Cloudflare's
``400`` / ``1183`` "Invalid request parameters" with a readable detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

from airflow_provider_cfbilling.emulator.days import DAY_PATTERN
from airflow_provider_cfbilling.emulator.responses import ApiError
from airflow_provider_cfbilling.endpoints import ORGANIZATION_USAGE, PAYGO_ENDPOINTS, V2_USAGE

MAX_V2_RANGE_DAYS = V2_USAGE.max_range_days
# The organization route has the account v2 route's rules, 31 days included (more-endpoints.md §1).
MAX_ORGANIZATION_RANGE_DAYS = ORGANIZATION_USAGE.max_range_days
#: Billing history paging: ``per_page`` when the request has none, and the most it may ask for.
HISTORY_DEFAULT_PER_PAGE = 20
HISTORY_MAX_PER_PAGE = 50
MAX_METRIC_IDS = 10
# Route names here are the registry's, except the beta path's ("paygo").
PAYGO_LIMITS = {
    ("paygo" if endpoint.source == "paygo" else name): endpoint.max_range_days
    for name, endpoint in PAYGO_ENDPOINTS.items()
}


def bad_params(detail: str) -> ApiError:
    return ApiError(400, 1183, f"Invalid request parameters: {detail}")


def date_param(query: Mapping[str, list[str]], name: str) -> date | None:
    values = query.get(name)
    if not values:
        return None
    text = values[0].strip()
    if not DAY_PATTERN.match(text):
        raise bad_params(f"'{name}' must be a date in YYYY-MM-DD format (dates only, no time or timezone)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise bad_params(f"'{name}' is not a valid calendar date (YYYY-MM-DD)")


def check_range_limit(start: date, end: date, inclusive: bool, max_days: int) -> None:
    """Refuse a range covering more than ``max_days`` days, counted the way ``to`` is read: with
    ``to`` inclusive, ``from=2025-05-01&to=2025-06-01`` covers 32 days."""
    covered = (end - start).days + (1 if inclusive else 0)
    if covered > max_days:
        reading = "inclusive" if inclusive else "exclusive"
        raise bad_params(
            f"the maximum date range is {max_days} days (from {start} to {end} covers {covered} days, 'to' {reading})"
        )


def day_range(start: date, end: date, inclusive: bool) -> list[date]:
    last = end if inclusive else end - timedelta(days=1)
    return [start + timedelta(days=offset) for offset in range((last - start).days + 1)]


def int_param(query: Mapping[str, list[str]], name: str, default: int, maximum: int | None = None) -> int:
    values = query.get(name)
    if not values or not values[0].strip():
        return default
    text = values[0].strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise bad_params(f"'{name}' must be a whole number of at least 1")
    value = int(text)
    if maximum is not None and value > maximum:
        raise bad_params(f"'{name}' must be at most {maximum}")
    return value


def v2_days(query: Mapping[str, list[str]], now: datetime, max_days: int, inclusive: bool) -> list[date]:
    """The days a v2-style request (account or organization) covers, before availability."""
    start = date_param(query, "from")
    end = date_param(query, "to")
    if (start is None) != (end is None):
        raise bad_params("'from' and 'to' must be given together (or both omitted)")
    today = now.date()
    if start is None or end is None:
        return day_range(today.replace(day=1), today, inclusive=True)
    if start > end:
        raise bad_params("'from' must not be after 'to'")
    check_range_limit(start, end, inclusive, max_days)
    return day_range(start, end, inclusive=inclusive)
