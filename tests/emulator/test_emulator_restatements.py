"""Restating a day over real loopback HTTP: what changes on v2 and every PayGo path, what does not,
stacking, undoing, and the Python form's validation."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from emulator_helpers import ACCOUNT, FROZEN, OTHER_ACCOUNT, usage_path

from airflow_provider_cfbilling.emulator import CATALOG, Emulator, Restatement

#: The default account's billing period around the restated day runs 2025-12-21 .. 2026-01-21 (anchor 21).
PERIOD_START = date(2025, 12, 21)
DAY = date(2026, 1, 5)
PAYGO_ROUTES = ("paygo", "paygo-usage", "billable-usage")
CUMULATED = ("CumulatedPricingQuantity", "CumulatedContractedCost")
SERVICE_OF = {metric.id: metric.service_name for metric in CATALOG}


def v2_day(client: httpx.Client, day: date, account_id: str = ACCOUNT) -> httpx.Response:
    params = {"from": day.isoformat(), "to": (day + timedelta(days=1)).isoformat()}
    response = client.get(usage_path("v2", account_id), params=params)
    assert response.status_code == 200
    return response


def by_day(client: httpx.Client, route: str, start: date, end: date) -> dict[date, list[dict[str, Any]]]:
    """The records of ``route`` for ``[start, end)``, grouped by day (the range must hold the anchor day)."""
    params = {"from": start.isoformat(), "to": end.isoformat()}
    response = client.get(usage_path(route), params=params)
    assert response.status_code == 200
    grouped: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for record in response.json()["result"]:
        grouped[date.fromisoformat(record["ChargePeriodStart"][:10])].append(record)
    assert grouped, "the range returned nothing"
    return grouped


def series(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["x_BillableMetricId"], record["x_ZoneId"], record["RegionId"])


def group_of(record: dict[str, Any]) -> tuple[Any, ...]:
    return (record["ServiceName"], record.get("ZoneId"))


def without(record: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name not in names}


def test_v2_restated_day_has_scaled_quantities_and_correction_rows(emu: Emulator, client: httpx.Client) -> None:
    before = v2_day(client, DAY).json()["result"]
    neighbours = {day: v2_day(client, day).content for day in (DAY - timedelta(days=1), DAY + timedelta(days=1))}

    assert emu.restate(ACCOUNT, DAY, factor=1.5, corrections=3) == {
        "account_id": ACCOUNT,
        "day": "2026-01-05",
        "factor": 1.5,
        "corrections": 3,
        "revisions": 1,
    }
    after = v2_day(client, DAY).json()["result"]

    regular_before = [r for r in before if r["ChargeClass"] is None]
    regular_after = [r for r in after if r["ChargeClass"] is None]
    assert [series(r) for r in regular_after] == [series(r) for r in regular_before]
    for old, new in zip(regular_before, regular_after, strict=True):
        assert without(new, "ConsumedQuantity") == without(old, "ConsumedQuantity")
        assert new["ConsumedQuantity"] == pytest.approx(old["ConsumedQuantity"] * 1.5, rel=1e-6, abs=1)
        assert new["ConsumedQuantity"] != old["ConsumedQuantity"]

    # The day's own correction rows stay; the restatement adds three, each right after its series' rows.
    old_corrections = [r for r in before if r["ChargeClass"] == "Correction"]
    new_corrections = [r for r in after if r["ChargeClass"] == "Correction"]
    assert len(new_corrections) == len(old_corrections) + 3
    assert all(r in new_corrections for r in old_corrections)
    for index, record in enumerate(after):
        if record["ChargeClass"] == "Correction":
            assert series(after[index - 1]) == series(record)
            assert record["ConsumedQuantity"] != 0
            assert record["ChargePeriodStart"] == "2026-01-05T00:00:00Z"
            assert record["ChargeDescription"].endswith("correction")

    assert emu.expected_records(ACCOUNT, DAY) == after
    for day, content in neighbours.items():
        assert v2_day(client, day).content == content  # byte for byte


def test_v2_costs_follow_the_restated_quantities() -> None:
    emu = Emulator(clock=FROZEN, populate_costs=True)
    emu.restate(ACCOUNT, DAY, factor=2.0, corrections=2)
    for record in emu.expected_records(ACCOUNT, DAY):
        assert record["PricingQuantity"] == record["ConsumedQuantity"]
        assert record["ListCost"] == pytest.approx(record["ConsumedQuantity"] * record["ListUnitPrice"], abs=1e-6)


@pytest.mark.parametrize("route", PAYGO_ROUTES)
def test_paygo_restated_day_changes_and_the_rest_of_the_period_carries_it(
    emu: Emulator, client: httpx.Client, route: str
) -> None:
    period_end = FROZEN.date()  # exclusive: the days published so far, 2025-12-21 .. 2026-01-09
    previous = {"from": "2025-11-21", "to": "2025-12-21"}
    before = by_day(client, route, PERIOD_START, period_end)
    previous_period = client.get(usage_path(route), params=previous).content

    emu.restate(ACCOUNT, DAY, factor=2.0, corrections=0)
    after = by_day(client, route, PERIOD_START, period_end)

    assert after.keys() == before.keys()
    delta_quantity: dict[tuple[Any, ...], int] = {}
    delta_micros: dict[tuple[Any, ...], int] = {}
    for day in sorted(before):
        old_rows, new_rows = before[day], after[day]
        assert [group_of(r) for r in new_rows] == [group_of(r) for r in old_rows]  # no rows added on PayGo
        if day < DAY:
            assert new_rows == old_rows
        for old, new in zip(old_rows, new_rows, strict=True):
            key = group_of(old)
            if day == DAY:
                # Each row sums up to three series, each rounded after the factor: tolerance 3.
                assert new["ConsumedQuantity"] == pytest.approx(old["ConsumedQuantity"] * 2, rel=1e-6, abs=3)
                assert new["PricingQuantity"] == max(0, round(new["ConsumedQuantity"]))
                delta_quantity[key] = new["PricingQuantity"] - old["PricingQuantity"]
                delta_micros[key] = round((new["ContractedCost"] - old["ContractedCost"]) * 1_000_000)
                changed = {name for name in new if new[name] != old[name]}
                assert "ConsumedQuantity" in changed
            if day > DAY:
                # Later days of the period: only the running sums move, by the restated day's change.
                assert without(new, *CUMULATED) == without(old, *CUMULATED)
                assert new["CumulatedPricingQuantity"] - old["CumulatedPricingQuantity"] == delta_quantity[key]
                micros = round((new["CumulatedContractedCost"] - old["CumulatedContractedCost"]) * 1_000_000)
                assert micros == delta_micros[key]
    assert any(delta_quantity.values())
    assert client.get(usage_path(route), params=previous).content == previous_period  # byte for byte

    for day, records in after.items():
        assert emu.expected_records(ACCOUNT, day, route) == records


def test_paygo_folds_the_correction_rows_of_v2_into_the_days_totals(emu: Emulator, client: httpx.Client) -> None:
    """The same restatement seen through v2 (correction rows) and the PayGo beta path (one row per metric)."""
    window = (PERIOD_START, FROZEN.date())
    before_v2 = v2_day(client, DAY).json()["result"]
    before = by_day(client, "paygo", *window)[DAY]
    emu.restate(ACCOUNT, DAY, factor=1.0, corrections=6)
    after_v2 = v2_day(client, DAY).json()["result"]
    after = by_day(client, "paygo", *window)[DAY]

    added = [r for r in after_v2 if r not in before_v2]
    assert len(added) == 6 and all(r["ChargeClass"] == "Correction" for r in added)
    assert [r for r in after_v2 if r["ChargeClass"] is None] == [r for r in before_v2 if r["ChargeClass"] is None]
    correction_per_service: dict[str, float] = defaultdict(float)
    for record in added:
        correction_per_service[SERVICE_OF[record["x_BillableMetricId"]]] += record["ConsumedQuantity"]
    for old, new in zip(before, after, strict=True):
        correction = correction_per_service.get(old["ServiceName"])
        if correction is None:
            assert new == old
        else:
            assert new["ConsumedQuantity"] == pytest.approx(old["ConsumedQuantity"] + correction, abs=1e-5)
            assert new["PricingQuantity"] == max(0, round(new["ConsumedQuantity"]))


@pytest.mark.parametrize(
    ("first_restatement", "second_restatement", "combined"),
    [((1.25, 2), (2.0, 3), (2.5, 5)), ((1.5, 2), (1.1, 1), (1.65, 3)), ((1.1, 1), (0.9, 0), (0.99, 1))],
)
def test_restating_again_stacks_deterministically(
    first_restatement: tuple[float, int], second_restatement: tuple[float, int], combined: tuple[float, int]
) -> None:
    stacked = Emulator(clock=FROZEN)
    stacked.restate(ACCOUNT, DAY, factor=first_restatement[0], corrections=first_restatement[1])
    first = stacked.expected_records(ACCOUNT, DAY)
    again = stacked.restate(ACCOUNT, DAY, factor=second_restatement[0], corrections=second_restatement[1])
    assert (again["factor"], again["corrections"], again["revisions"]) == (*combined, 2)
    once = Emulator(clock=FROZEN)
    once.restate(ACCOUNT, DAY, factor=combined[0], corrections=combined[1])

    for source in ("v2", *PAYGO_ROUTES):
        assert stacked.expected_records(ACCOUNT, DAY, source) == once.expected_records(ACCOUNT, DAY, source)
    later = stacked.expected_records(ACCOUNT, DAY)
    first_corrections = [r for r in first if r["ChargeClass"] == "Correction"]
    assert all(record in later for record in first_corrections)  # the earlier correction rows stay as they were
    assert stacked.restatements == [
        {"account_id": ACCOUNT, "day": "2026-01-05", "factor": combined[0], "corrections": combined[1], "revisions": 2}
    ]


def test_a_datetime_is_restated_as_its_utc_day() -> None:
    emu = Emulator(clock=FROZEN)
    emu.restate(ACCOUNT, datetime(2026, 1, 5, 23, 30, tzinfo=timezone(timedelta(hours=-5))))
    assert [r["day"] for r in emu.restatements] == ["2026-01-06"]


def test_restatements_are_per_account_and_day(emu: Emulator, client: httpx.Client) -> None:
    other_before = v2_day(client, DAY, OTHER_ACCOUNT).content
    emu.restate(ACCOUNT, DAY)  # defaults: factor 1.1, one correction row
    assert v2_day(client, DAY, OTHER_ACCOUNT).content == other_before
    assert emu.expected_records(OTHER_ACCOUNT, DAY) == json.loads(other_before)["result"]
    listed = emu.restatements
    assert listed == [{"account_id": ACCOUNT, "day": "2026-01-05", "factor": 1.1, "corrections": 1, "revisions": 1}]


def test_clear_and_reset_undo_restatements(emu: Emulator, client: httpx.Client) -> None:
    original = v2_day(client, DAY).content
    other_day = DAY - timedelta(days=2)
    emu.restate(ACCOUNT, DAY)
    emu.restate(ACCOUNT, other_day, factor=0.5)
    emu.restate(OTHER_ACCOUNT, DAY, corrections=4, factor=1)
    assert v2_day(client, DAY).content != original

    assert emu.clear_restatements(ACCOUNT, DAY) == 1
    assert v2_day(client, DAY).content == original
    assert [(r["account_id"], r["day"]) for r in emu.restatements] == [
        (OTHER_ACCOUNT, "2026-01-05"),
        (ACCOUNT, "2026-01-03"),
    ]
    assert emu.clear_restatements(account_id=OTHER_ACCOUNT) == 1
    assert emu.clear_restatements() == 1
    assert emu.restatements == []

    emu.restate(ACCOUNT, DAY)
    emu.reset()
    assert emu.restatements == []
    assert v2_day(client, DAY).content == original


def test_startup_restatements_come_back_on_reset() -> None:
    emu = Emulator(
        clock=FROZEN, restatements=[f"{ACCOUNT}:2026-01-05:1.5:2", {"account_id": ACCOUNT, "day": "2026-01-06"}]
    )
    startup = emu.restatements
    assert [(r["day"], r["factor"], r["corrections"]) for r in startup] == [
        ("2026-01-05", 1.5, 2),
        ("2026-01-06", 1.1, 1),
    ]
    emu.restate(ACCOUNT, "2026-01-07")
    emu.restate(ACCOUNT, "2026-01-05")
    emu.reset()
    assert emu.restatements == startup
    emu.clear_restatements()
    assert emu.restatements == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"account_id": "not-an-account"}, "32 lowercase hex"),
        ({"account_id": ACCOUNT.upper()}, "32 lowercase hex"),
        ({"day": "2026-02-30"}, "not a valid calendar date"),
        ({"day": "08/01/2026"}, "YYYY-MM-DD"),
        ({"factor": -1.1}, "positive"),
        ({"factor": 0}, "positive"),
        ({"factor": float("nan")}, "positive"),
        ({"factor": 5000}, "at most"),
        ({"corrections": -1}, "whole number"),
        ({"corrections": 1.5}, "whole number"),
        ({"factor": 1, "corrections": 0}, "change something"),
    ],
)
def test_restate_rejects_bad_input(kwargs: dict[str, Any], message: str) -> None:
    emu = Emulator(clock=FROZEN)
    arguments: dict[str, Any] = {"account_id": ACCOUNT, "day": DAY, **kwargs}
    with pytest.raises(ValueError, match=message):
        emu.restate(arguments.pop("account_id"), arguments.pop("day"), **arguments)
    assert emu.restatements == []


def test_stacking_past_the_bounds_is_refused_and_leaves_the_day_as_it_was() -> None:
    emu = Emulator(clock=FROZEN)
    emu.restate(ACCOUNT, DAY, factor=100)
    with pytest.raises(ValueError, match="too far"):
        emu.restate(ACCOUNT, DAY, factor=100)
    assert emu.restatements[0]["factor"] == 100 and emu.restatements[0]["revisions"] == 1


def test_restatement_text_form() -> None:
    assert Restatement.parse(f"{ACCOUNT}:2026-01-05") == Restatement(ACCOUNT, DAY, 1.1, 1)
    assert Restatement.parse(f"{ACCOUNT}:2026-01-05:0.9") == Restatement(ACCOUNT, DAY, 0.9, 1)
    assert Restatement.parse(f" {ACCOUNT}:2026-01-05::4 ") == Restatement(ACCOUNT, DAY, 1.1, 4)
    assert Restatement.parse(f"{ACCOUNT}:2026-01-05:2:0").to_dict() == {
        "account_id": ACCOUNT,
        "day": "2026-01-05",
        "factor": 2.0,
        "corrections": 0,
    }
    for bad in (ACCOUNT, f"{ACCOUNT}:2026-01-05:1:2:3", f"{ACCOUNT}:2026-01-05:lots", f"{ACCOUNT}:5 Jan"):
        with pytest.raises(ValueError):
            Restatement.parse(bad)


def test_a_restated_day_that_is_not_yet_published_appears_restated(emu: Emulator, client: httpx.Client) -> None:
    future = FROZEN.date()  # published at 2026-01-11 06:00
    emu.restate(ACCOUNT, future, factor=3)
    assert v2_day(client, future).json()["result"] == []
    emu.set_clock(emu.available_at(future))
    served = v2_day(client, future).json()["result"]
    assert served and served == emu.expected_records(ACCOUNT, future)
    assert len([r for r in served if r["ChargeClass"] == "Correction"]) >= 1
