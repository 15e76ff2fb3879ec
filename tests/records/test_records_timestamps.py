"""parse_timestamp gives aware UTC datetimes for every timestamp spelling the API uses."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from airflow_provider_cfbilling.records import parse_timestamp

UTC = timezone.utc


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-02-01T00:00:00Z", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-02-01T00:00:00z", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-02-01T00:00:00+00:00", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-02-01T01:30:00+01:30", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-01-31T19:00:00-05:00", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2014-03-01T12:21:59.3456Z", datetime(2014, 3, 1, 12, 21, 59, 345600, tzinfo=UTC)),
        ("2025-02-01T00:00:00.123456789Z", datetime(2025, 2, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2025-02-01T00:00:00", datetime(2025, 2, 1, tzinfo=UTC)),
        ("2025-02-01", datetime(2025, 2, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(text, expected):
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


def test_datetimes_and_dates_are_accepted_too():
    assert parse_timestamp(datetime(2025, 2, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == datetime(
        2025, 2, 1, tzinfo=UTC
    )
    assert parse_timestamp(datetime(2025, 2, 1)).tzinfo is not None
    assert parse_timestamp(date(2025, 2, 1)) == datetime(2025, 2, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "yesterday", "2025-13-01T00:00:00Z", "2025-02-01T00:00:00+25:00", 17])
def test_garbage_is_a_value_error(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_strings_are_cached():
    text = "2025-03-04T00:00:00Z"
    assert parse_timestamp(text) is parse_timestamp(text)


def test_the_slow_path_for_what_python_3_10_fromisoformat_refuses():
    from airflow_provider_cfbilling.records import _parse_iso_slow

    assert _parse_iso_slow("2014-03-01T12:21:59.3456Z") == datetime(2014, 3, 1, 12, 21, 59, 345600)
    assert _parse_iso_slow("2025-02-01T00:00:00.5+0130") == datetime(
        2025, 2, 1, 0, 0, 0, 500000, tzinfo=timezone(timedelta(hours=1, minutes=30))
    )
    assert _parse_iso_slow("2025-02-01 10:00Z") == datetime(2025, 2, 1, 10)
    with pytest.raises(ValueError):
        _parse_iso_slow("not a date")
