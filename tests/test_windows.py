"""The one window resolver shared by the operators and the sensor."""

from __future__ import annotations

import datetime as dt
import itertools
from types import SimpleNamespace

import pendulum
import pytest

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.windows import Window, resolve_day, resolve_window, utc_day

UTC = dt.timezone.utc


@pytest.mark.parametrize(
    "value",
    [
        "2025-05-01",
        dt.date(2025, 5, 1),
        dt.datetime(2025, 5, 1, tzinfo=UTC),
        pendulum.datetime(2025, 5, 1, tz="UTC"),
        pendulum.date(2025, 5, 1),
        "2025-05-01T00:00:00+00:00",
        "2025-05-01T00:00:00Z",
        pendulum.datetime(2025, 5, 1, 2, tz="Europe/Berlin"),  # 00:00 UTC
    ],
)
def test_accepted_forms_of_a_day(value):
    assert utc_day(value, "period_start") == dt.date(2025, 5, 1)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("2025-05-01T05:00:00Z", "not at a UTC day boundary"),
        (dt.datetime(2025, 5, 1), "no time zone"),
        (pendulum.datetime(2025, 5, 1, tz="Europe/Berlin"), "not at a UTC day boundary"),
        ("yesterday", "neither a date nor a timestamp"),
        ("2025-02-30", "not a real calendar date"),
        (20250501, "expected a date"),
    ],
)
def test_refused_forms_of_a_day(value, fragment):
    with pytest.raises(CloudflareInputError, match=fragment) as raised:
        utc_day(value, "period_start")
    assert raised.value.parameter == "period_start"


def test_explicit_window_wins_over_the_context():
    context = {"data_interval_start": pendulum.datetime(2024, 1, 1), "data_interval_end": pendulum.datetime(2024, 1, 2)}
    assert resolve_window("2025-05-01", "2025-05-04", context) == Window(dt.date(2025, 5, 1), dt.date(2025, 5, 4))


def test_reversed_or_empty_window_is_refused():
    with pytest.raises(CloudflareInputError, match="not after period_start"):
        resolve_window("2025-05-04", "2025-05-01", {})
    with pytest.raises(CloudflareInputError, match="not after period_start"):
        resolve_window("2025-05-04", "2025-05-04", {})


def test_half_given_window_is_refused():
    with pytest.raises(CloudflareInputError, match="only one end") as raised:
        resolve_window("2025-05-04", None, {})
    assert raised.value.parameter == "period_end"


def test_data_interval_is_the_default():
    context = {
        "data_interval_start": pendulum.datetime(2025, 5, 1),
        "data_interval_end": pendulum.datetime(2025, 5, 8),
        "logical_date": pendulum.datetime(2025, 5, 1),
    }
    assert resolve_window(None, None, context) == Window(dt.date(2025, 5, 1), dt.date(2025, 5, 8))
    assert resolve_window("", "", context).days == 7


def test_empty_data_interval_falls_back_to_the_day_before_the_logical_date():
    moment = pendulum.datetime(2025, 5, 10, 6, 30)
    context = {"data_interval_start": moment, "data_interval_end": moment, "logical_date": moment}
    assert resolve_window(None, None, context) == Window(dt.date(2025, 5, 9), dt.date(2025, 5, 10))


def test_no_logical_date_falls_back_to_run_after():
    context = {"dag_run": SimpleNamespace(run_after=pendulum.datetime(2025, 5, 10, 23, 59))}
    assert resolve_window(None, None, context) == Window(dt.date(2025, 5, 9), dt.date(2025, 5, 10))


def test_nothing_to_derive_from_is_an_error():
    with pytest.raises(CloudflareInputError, match="no data interval"):
        resolve_window(None, None, {})


def test_chunks_tile_the_window_exactly():
    window = Window(dt.date(2025, 1, 1), dt.date(2025, 3, 15))
    chunks = list(window.chunks(31))
    assert chunks[0].start == window.start
    assert chunks[-1].end == window.end
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert all(chunk.days <= 31 for chunk in chunks)
    assert sum(chunk.days for chunk in chunks) == window.days


def test_sensor_day_is_the_last_day_of_the_default_window():
    context = {"data_interval_start": pendulum.datetime(2025, 5, 1), "data_interval_end": pendulum.datetime(2025, 5, 8)}
    assert resolve_day(None, context) == dt.date(2025, 5, 7)
    assert resolve_day("2025-01-02", context) == dt.date(2025, 1, 2)


# ---------------------------------------------------------------- any timezone, any timetable

TIMEZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Tokyo", "Asia/Kolkata", "Pacific/Chatham"]


def _days_fetched(intervals):
    """The UTC days each interval's default window covers (empty windows skip)."""
    from airflow_provider_cfbilling.windows import EmptyWindow

    fetched = []
    for start, end in intervals:
        try:
            window = resolve_window(None, None, {"data_interval_start": start, "data_interval_end": end})
        except EmptyWindow:
            continue
        fetched.extend(window.start + dt.timedelta(days=offset) for offset in range(window.days))
    return fetched


@pytest.mark.parametrize("timezone", TIMEZONES)
def test_a_year_of_local_daily_runs_covers_every_utc_day_exactly_once(timezone):
    # Daily intervals at local midnight, as CronDataIntervalTimetable("0 0 * * *", timezone=...)
    # makes them: 23- and 25-hour days at the clock changes included.
    first = pendulum.datetime(2025, 1, 1, tz=timezone)
    bounds = [first.add(days=offset) for offset in range(367)]
    fetched = _days_fetched(itertools.pairwise(bounds))
    utc_first = first.in_timezone("UTC")
    expected_first = utc_first.date() if utc_first.time() == dt.time(0) else utc_first.date() + dt.timedelta(days=1)
    assert fetched == [expected_first + dt.timedelta(days=offset) for offset in range(len(fetched))]
    assert len(fetched) in (365, 366)
    assert len(set(fetched)) == len(fetched)


@pytest.mark.parametrize("timezone", TIMEZONES)
def test_hourly_runs_fetch_each_utc_day_once_and_skip_the_rest(timezone):
    from airflow_provider_cfbilling.windows import EmptyWindow

    # Hourly boundaries as instants (one hour apart in absolute time), shown in local time.
    first = pendulum.datetime(2025, 3, 1, tz=timezone).in_timezone("UTC")
    bounds = [first.add(hours=offset).in_timezone(timezone) for offset in range(24 * 60 + 1)]
    fetched = _days_fetched(itertools.pairwise(bounds))
    assert len(fetched) == len(set(fetched)) == 60
    assert all(b - a == dt.timedelta(days=1) for a, b in itertools.pairwise(fetched))
    without_midnight = next((a, b) for a, b in itertools.pairwise(bounds) if a.in_timezone("UTC").hour not in (0, 23))
    with pytest.raises(EmptyWindow, match="no UTC midnight"):
        resolve_window(
            None, None, {"data_interval_start": without_midnight[0], "data_interval_end": without_midnight[1]}
        )


@pytest.mark.parametrize(
    ("local_start", "local_end", "timezone", "expected_day"),
    [
        # Europe/London: the spring-forward day (23 h) and the fall-back day (25 h).
        ((2025, 3, 30), (2025, 3, 31), "Europe/London", dt.date(2025, 3, 30)),
        ((2025, 10, 26), (2025, 10, 27), "Europe/London", dt.date(2025, 10, 26)),
        ((2025, 10, 25), (2025, 10, 26), "Europe/London", dt.date(2025, 10, 25)),
        # Asia/Tokyo: local 2025-06-18 holds the UTC midnight of 2025-06-18, not 06-17.
        ((2025, 6, 18), (2025, 6, 19), "Asia/Tokyo", dt.date(2025, 6, 18)),
        ((2025, 6, 18), (2025, 6, 19), "America/New_York", dt.date(2025, 6, 19)),
    ],
)
def test_local_days_map_to_the_utc_day_whose_midnight_they_hold(local_start, local_end, timezone, expected_day):
    context = {
        "data_interval_start": pendulum.datetime(*local_start, tz=timezone),
        "data_interval_end": pendulum.datetime(*local_end, tz=timezone),
    }
    assert resolve_window(None, None, context) == Window(expected_day, expected_day + dt.timedelta(days=1))
    assert resolve_day(None, context) == expected_day


def test_an_interval_without_a_utc_midnight_is_skipped_with_a_reason():
    from airflow_provider_cfbilling.version_compat import AirflowSkipException
    from airflow_provider_cfbilling.windows import EmptyWindow

    context = {
        "data_interval_start": pendulum.datetime(2025, 6, 18, 5, tz="UTC"),
        "data_interval_end": pendulum.datetime(2025, 6, 18, 6, tz="UTC"),
    }
    with pytest.raises(EmptyWindow, match="holds no UTC midnight") as raised:
        resolve_window(None, None, context)
    assert isinstance(raised.value, AirflowSkipException)
    with pytest.raises(EmptyWindow):
        resolve_day(None, context)


def test_a_non_midnight_explicit_datetime_explains_the_rule_without_recommending_ds():
    with pytest.raises(CloudflareInputError, match="UTC days whose midnight lies in") as raised:
        utc_day(pendulum.datetime(2025, 6, 18, tz="Europe/London"), "period_start")
    assert "| ds" not in str(raised.value)
