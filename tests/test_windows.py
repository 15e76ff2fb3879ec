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
