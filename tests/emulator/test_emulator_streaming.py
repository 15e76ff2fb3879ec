"""Scale: a large day is generated lazily and streamed with chunked encoding, never held in memory."""

from __future__ import annotations

import tracemalloc
from datetime import date, timedelta

import httpx
from emulator_helpers import ACCOUNT, BEARER, FROZEN, usage_path

from airflow_provider_cfbilling.emulator import Emulator

MARKER = b'"ChargePeriodStart"'


def count_streamed_records(response: httpx.Response) -> tuple[int, int]:
    """Count records and bytes of a streamed body, keeping only a small tail between chunks."""
    records = size = 0
    tail = b""
    for chunk in response.iter_raw():
        size += len(chunk)
        window = tail + chunk
        records += window.count(MARKER)
        tail = window[-(len(MARKER) - 1) :]
    return records, size


def test_large_day_is_streamed_without_building_the_body() -> None:
    day = date(2026, 1, 8)
    with (
        Emulator(clock=FROZEN, zones=1000, scale=5) as emu,
        httpx.Client(base_url=emu.base_url, headers=BEARER, timeout=60, verify=False) as http,
    ):
        expected = sum(1 for _ in emu.iter_expected_records(ACCOUNT, day, source="v2"))
        assert expected > 20_000
        tracemalloc.start()
        try:
            with http.stream("GET", usage_path("v2"), params={"from": "2026-01-08", "to": "2026-01-09"}) as response:
                assert response.status_code == 200
                assert response.headers["Transfer-Encoding"] == "chunked"
                assert "Content-Length" not in response.headers
                records, size = count_streamed_records(response)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert records == expected
    assert size > 15_000_000
    assert peak < size / 3  # the server (same process) never held the body


def test_small_bodies_have_a_content_length(client: httpx.Client) -> None:
    response = client.get(usage_path("v2"), params={"from": "2026-01-08", "to": "2026-01-09"})
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_streamed_body_equals_expected_records() -> None:
    with (
        Emulator(clock=FROZEN, zones=300) as emu,
        httpx.Client(base_url=emu.base_url, headers=BEARER, timeout=60, verify=False) as http,
    ):
        start = date(2025, 12, emu.anchor_day(ACCOUNT))
        end = start + timedelta(days=3)
        response = http.get(usage_path("paygo-usage"), params={"from": str(start), "to": str(end)})
        assert response.headers["Transfer-Encoding"] == "chunked"
        expected = list(emu.iter_expected_records(ACCOUNT, start, end, source="paygo-usage"))
        assert len(expected) > 3000
        assert response.json()["result"] == expected
