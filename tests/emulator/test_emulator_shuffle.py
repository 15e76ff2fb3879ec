"""The ``shuffle_records`` switch: the same records in another order on every usage response."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from emulator_helpers import ACCOUNT, BEARER, usage_path

from airflow_provider_cfbilling.emulator import Emulator, api

# Through the anchor day (21) of the default account, so every PayGo path answers.
WINDOW = {"from": "2025-12-20", "to": "2025-12-23"}


def multiset(records: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(record, sort_keys=True) for record in records)


def served(client: httpx.Client, route: str) -> list[dict[str, Any]]:
    response = client.get(usage_path(route), params=WINDOW)
    assert response.status_code == 200
    records: list[dict[str, Any]] = response.json()["result"]
    assert records
    return records


@pytest.mark.parametrize("route", ["v2", "paygo", "paygo-usage", "billable-usage"])
def test_shuffle_changes_the_order_not_the_records(emu: Emulator, client: httpx.Client, route: str) -> None:
    canonical = served(client, route)
    assert served(client, route) == canonical  # off by default: canonical order every time
    emu.configure(shuffle_records=True)
    first, second = served(client, route), served(client, route)
    for shuffled in (first, second):
        assert shuffled != canonical
        assert multiset(shuffled) == multiset(canonical)
    assert first != second  # a new permutation per request
    emu.configure(shuffle_records=False)
    assert served(client, route) == canonical


def test_shuffle_is_deterministic_per_request_and_leaves_expected_records_alone(
    emu: Emulator, client: httpx.Client
) -> None:
    emu.configure(shuffle_records=True)
    emu.restate(ACCOUNT, "2025-12-21", corrections=3)
    orders = [served(client, "v2") for _ in range(3)]
    expected = list(emu.iter_expected_records(ACCOUNT, "2025-12-20", "2025-12-23"))
    assert all(multiset(order) == multiset(expected) for order in orders)
    emu.reset()  # the request counter starts over: the n-th shuffled response is ordered the same way
    emu.configure(shuffle_records=True)
    emu.restate(ACCOUNT, "2025-12-21", corrections=3)
    assert [served(client, "v2") for _ in range(3)] == orders
    assert [r["ChargePeriodStart"] for r in expected] == sorted(r["ChargePeriodStart"] for r in expected)


def test_a_shuffled_body_regenerates_the_same_bytes(emu: Emulator) -> None:
    """The truncate fault sizes a body, then sends it again: both must be the same permutation."""
    emu.configure(shuffle_records=True)
    headers = {name.lower(): value for name, value in BEARER.items()}
    request = api.Request("GET", usage_path("v2"), {name: [value] for name, value in WINDOW.items()}, headers)
    response = api.handle(emu, request, "v2", {"account": ACCOUNT})
    assert response.status == 200
    first = b"".join(response.chunks())
    emu.restate(ACCOUNT, "2025-12-21")  # later changes do not reach a response already made
    assert b"".join(response.chunks()) == first
    assert json.loads(first)["result"] != list(emu.iter_expected_records(ACCOUNT, "2025-12-20", "2025-12-23"))
