"""The usage window: which UTC days a task covers, resolved in one place for operators and sensor.

A window is half-open, ``[start, end)``, in whole UTC days, exactly like an Airflow data interval
and FOCUS ``ChargePeriodEnd``. It is never silently widened or narrowed: values that do not fall
on a UTC day boundary are refused with an error that says how to fix them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_cfbilling import validation
from airflow_provider_cfbilling.endpoints import PAYGO_ENDPOINTS, UsageEndpoint, max_request_gap
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.version_compat import AirflowSkipException

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Window:
    """Whole UTC days ``[start, end)``."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise CloudflareInputError(
                "period_end",
                f"{self.end} is not after period_start {self.start}; the window is half-open [start, end)",
                "Set period_end to the day after the last day you want (e.g. start 2025-05-01, end 2025-05-02 "
                "for one day)",
            )

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def last_day(self) -> dt.date:
        return self.end - ONE_DAY

    def chunks(self, max_days: int) -> Iterator[Window]:
        """Consecutive sub-windows of at most ``max_days`` days that tile this one exactly."""
        cursor = self.start
        while cursor < self.end:
            stop = min(cursor + dt.timedelta(days=max_days), self.end)
            yield Window(cursor, stop)
            cursor = stop

    @property
    def start_timestamp(self) -> dt.datetime:
        return dt.datetime(self.start.year, self.start.month, self.start.day, tzinfo=dt.timezone.utc)

    @property
    def end_timestamp(self) -> dt.datetime:
        return dt.datetime(self.end.year, self.end.month, self.end.day, tzinfo=dt.timezone.utc)

    def as_strings(self) -> tuple[str, str]:
        return self.start.isoformat(), self.end.isoformat()


def utc_day(value: Any, parameter: str) -> dt.date:
    """A UTC day from a ``YYYY-MM-DD`` string, a date, or a datetime at a UTC day boundary."""
    if isinstance(value, str):
        text = value.strip()
        if validation.DATE_PATTERN.match(text):
            try:
                return dt.date.fromisoformat(text)
            except ValueError:
                raise CloudflareInputError(
                    parameter, f"{value!r} is not a real calendar date", "Use YYYY-MM-DD"
                ) from None
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise CloudflareInputError(
                parameter,
                f"{value!r} is neither a date nor a timestamp",
                "Use YYYY-MM-DD (or an ISO timestamp at 00:00 UTC)",
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise CloudflareInputError(
                parameter,
                f"{value.isoformat()} has no time zone",
                "Pass a date (YYYY-MM-DD) or a timezone-aware datetime at 00:00 UTC",
            )
        utc = value.astimezone(dt.timezone.utc)
        if (utc.hour, utc.minute, utc.second, utc.microsecond) != (0, 0, 0, 0):
            raise CloudflareInputError(
                parameter,
                f"{value.isoformat()} is not at a UTC day boundary; usage is daily in UTC and the window "
                "would have to be widened or narrowed",
                "Leave period_start and period_end unset to fetch the UTC days whose midnight lies in the "
                "run's data interval (right in any timezone), or pass dates (YYYY-MM-DD, UTC days)",
            )
        return utc.date()
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    raise CloudflareInputError(
        parameter, f"expected a date, got {type(value).__name__}", "Pass a YYYY-MM-DD string, a date or a datetime"
    )


def _context_value(context: Mapping[str, Any], key: str) -> Any:
    try:
        return context.get(key)
    except Exception:  # a lazy context value that cannot be resolved counts as absent
        return None


def _reference_time(context: Mapping[str, Any]) -> tuple[dt.datetime, str] | None:
    logical_date = _context_value(context, "logical_date")
    if logical_date is not None:
        return logical_date, "logical date"
    dag_run = _context_value(context, "dag_run")
    run_after = getattr(dag_run, "run_after", None) if dag_run is not None else None
    if run_after is not None:
        return run_after, "run_after"
    return None


def _day_before(reference: dt.datetime) -> Window:
    day = reference.astimezone(dt.timezone.utc).date() if reference.tzinfo else reference.date()
    return Window(day - ONE_DAY, day)


def _utc(moment: dt.datetime) -> dt.datetime:
    # Python compares two datetimes that share a tzinfo by wall time, ignoring ``fold``: the
    # hour a clock repeats would compare equal to the hour before it. Compare instants.
    return moment.astimezone(dt.timezone.utc) if moment.tzinfo is not None else moment


class EmptyWindow(AirflowSkipException):
    """The run's data interval holds no UTC midnight, so it owns no UTC day: nothing to fetch.

    A skip, not a failure: the neighbouring run whose interval holds the next UTC midnight
    fetches that day (an hourly DAG fetches each day once, in the run that crosses midnight).
    """


def first_utc_day_on_or_after(moment: dt.datetime, parameter: str) -> dt.date:
    """The UTC day whose midnight is the first at or after ``moment``."""
    if moment.tzinfo is None:
        raise CloudflareInputError(parameter, f"{moment.isoformat()} has no time zone", "Use timezone-aware datetimes")
    utc = moment.astimezone(dt.timezone.utc)
    day = utc.date()
    return day if utc == dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc) else day + ONE_DAY


def interval_window(interval_start: dt.datetime, interval_end: dt.datetime) -> Window:
    """The UTC days whose midnight lies in the data interval ``[interval_start, interval_end)``.

    Consecutive intervals of any timetable, in any timezone, tile time, so their windows tile
    the UTC days: every day is fetched exactly once, DST days included (a 23- or 25-hour local
    day still holds exactly one UTC midnight). Raises :class:`EmptyWindow` when the interval
    holds no UTC midnight.
    """
    start = first_utc_day_on_or_after(interval_start, "data_interval_start")
    end = first_utc_day_on_or_after(interval_end, "data_interval_end")
    if end <= start:
        raise EmptyWindow(
            f"The data interval [{interval_start.isoformat()}, {interval_end.isoformat()}) holds no UTC midnight, "
            "so this run owns no UTC day of usage (Cloudflare's usage is daily in UTC): nothing to fetch. The run "
            "whose interval holds the next UTC midnight fetches that day."
        )
    return Window(start, end)


def resolve_window(period_start: Any, period_end: Any, context: Mapping[str, Any] | None) -> Window:
    """The task's window: explicit values, else the UTC days whose midnight lies in the data
    interval (:func:`interval_window`), else the UTC day before the logical date, else the UTC
    day before ``run_after``."""
    if period_start not in (None, "") or period_end not in (None, ""):
        if period_start in (None, "") or period_end in (None, ""):
            missing = "period_end" if period_start not in (None, "") else "period_start"
            raise CloudflareInputError(
                missing,
                "only one end of the window was given",
                "Give both period_start and period_end (half-open), or neither to use the run's data interval",
            )
        return Window(utc_day(period_start, "period_start"), utc_day(period_end, "period_end"))
    context = context or {}
    interval_start = _context_value(context, "data_interval_start")
    interval_end = _context_value(context, "data_interval_end")
    if interval_start is not None and interval_end is not None and _utc(interval_end) > _utc(interval_start):
        return interval_window(interval_start, interval_end)
    reference = _reference_time(context)
    if reference is None:
        raise CloudflareInputError(
            "period_start",
            "the run has no data interval, logical date or run_after to derive a window from",
            "Pass period_start and period_end",
        )
    return _day_before(reference[0])


def resolve_day(day: Any, context: Mapping[str, Any] | None) -> dt.date:
    """The sensor's day: explicit, else the last day of the run's default window (raises
    :class:`EmptyWindow` when that window is empty)."""
    if day not in (None, ""):
        return utc_day(day, "day")
    return resolve_window(None, None, context).last_day


# PayGo paths whose server returns nothing unless the requested range contains a billing-cycle
# anchor day (the spec's warning on /paygo-usage and /billable-usage).
ANCHOR_RULE_PATHS = frozenset(name for name, endpoint in PAYGO_ENDPOINTS.items() if endpoint.anchor_rule)


@dataclass(frozen=True)
class UsageRequest:
    """One request of a window: ``from=request_start&to=days.end``; it contributes the records of
    ``days`` (the requests' ``days`` tile the window, so no record is fetched for two of them)."""

    days: Window
    request_start: dt.date

    @property
    def request_end(self) -> dt.date:
        return self.days.end


def plan_requests(
    window: Window, endpoint: UsageEndpoint, anchored: Callable[[dt.date], dt.date] | None = None
) -> list[UsageRequest]:
    """The requests that fetch ``window`` from ``endpoint``, each within its range limit under
    either reading of ``to`` (``to - from`` at most :func:`~.endpoints.max_request_gap`).

    ``anchored`` maps a day to where a request for it must start (the anchor-day rule); the limit
    then counts from that earlier start, so a long window is split into more requests.
    """
    gap = max_request_gap(endpoint)
    requests: list[UsageRequest] = []
    cursor = window.start
    while cursor < window.end:
        start = anchored(cursor) if anchored is not None else cursor
        stop = min(window.end, start + dt.timedelta(days=gap))
        if stop <= cursor:
            raise CloudflareInputError(
                "period_start",
                f"a request for {cursor} must start at the billing-cycle anchor day {start}, further back than "
                f"the {endpoint.max_range_days} days one request to {endpoint.route} may cover",
                "Use another paygo_path (billing/usage/paygo has no anchor rule)",
            )
        requests.append(UsageRequest(Window(cursor, stop), start))
        cursor = stop
    return requests


def latest_anchor_on_or_before(day: dt.date, anchor_day: int) -> dt.date:
    """The latest date on or before ``day`` that is a billing-cycle anchor day (clamped to month end)."""
    year, month = day.year, day.month
    for _ in range(2):
        last = (dt.date(year + (month == 12), month % 12 + 1, 1) - ONE_DAY).day
        candidate = dt.date(year, month, min(anchor_day, last))
        if candidate <= day:
            return candidate
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    raise AssertionError("unreachable: the previous month always has an anchor day")


def anchored_start(info: Mapping[str, Any], day: dt.date) -> dt.date:
    """Where a PayGo request must start so its range contains every subscription's anchor day:
    the earliest of their latest anchor days on or before ``day`` (``info`` is the result of the
    path's info endpoint; ``day`` itself when it lists no anchor)."""
    from airflow_provider_cfbilling.records import parse_timestamp

    subscriptions: Iterable[Any] = info.get("subscriptions") or []
    anchors = {
        parse_timestamp(item["billing_cycle_anchor_timestamp"]).day
        for item in subscriptions
        if isinstance(item, Mapping) and item.get("billing_cycle_anchor_timestamp")
    }
    return min((latest_anchor_on_or_before(day, anchor) for anchor in anchors), default=day)
