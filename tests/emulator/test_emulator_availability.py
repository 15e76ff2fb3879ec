"""A day's usage appears only `availability_delay` after the day ends, on a clock tests can move."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import httpx
from emulator_helpers import ACCOUNT, BEARER, usage_path

from airflow_provider_cfbilling.emulator import Emulator

DAY = date(2026, 1, 9)
WINDOW = {"from": "2026-01-09", "to": "2026-01-10"}


def test_day_appears_after_the_delay_as_the_clock_advances() -> None:
    end_of_day = datetime(2026, 1, 10, tzinfo=timezone.utc)
    with (
        Emulator(clock=end_of_day, availability_delay=timedelta(hours=2)) as emu,
        httpx.Client(base_url=emu.base_url, headers=BEARER, verify=False) as http,
    ):
        assert emu.available_at(DAY) == end_of_day + timedelta(hours=2)
        assert http.get(usage_path("v2"), params=WINDOW).json()["result"] == []
        assert emu.expected_records(ACCOUNT, DAY) == []
        emu.advance_clock(2 * 3600 - 1)
        assert http.get(usage_path("v2"), params=WINDOW).json()["result"] == []
        emu.advance_clock(1)
        records = http.get(usage_path("v2"), params=WINDOW).json()["result"]
        assert records and records == emu.expected_records(ACCOUNT, DAY)


def test_set_clock_freezes_and_accepts_naive_utc(emu: Emulator, client: httpx.Client) -> None:
    emu.set_clock(datetime(2026, 1, 9, 23, 0))
    assert emu.now() == datetime(2026, 1, 9, 23, 0, tzinfo=timezone.utc)
    assert client.get(usage_path("paygo"), params=WINDOW).json()["result"] == []
    emu.set_clock(datetime(2026, 1, 10, 7, 0, tzinfo=timezone(timedelta(hours=1))))  # 06:00 UTC
    assert client.get(usage_path("paygo"), params=WINDOW).json()["result"]


def test_zero_delay_and_running_clock() -> None:
    emu = Emulator(availability_delay=0, clock=datetime(2026, 1, 10, tzinfo=timezone.utc), clock_running=True)
    assert emu.clock.mode == "offset"
    first = emu.now()
    assert first >= datetime(2026, 1, 10, tzinfo=timezone.utc)
    assert emu.now() >= first
    assert emu.expected_records(ACCOUNT, DAY)
    emu.use_real_clock()
    assert abs((emu.now() - datetime.now(timezone.utc)).total_seconds()) < 5


def test_real_clock_is_the_default() -> None:
    emu = Emulator()
    assert emu.clock.mode == "real"
    yesterday = datetime.now(timezone.utc).date() - timedelta(days=2)
    assert emu.expected_records(ACCOUNT, yesterday)
