"""Subscriptions over real loopback HTTP: a deterministic snapshot consistent with the usage routes (the
PayGo subscription of ``/billable-usage/info``, billing periods from the anchor day, the usage zones)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

import httpx
import pytest
from emulator_helpers import ACCOUNT, BEARER, FROZEN, OTHER_ACCOUNT, subscriptions_path, usage_path

from airflow_provider_cfbilling.emulator import CATALOG, Emulator

RATE_PLAN_KEYS = {"id", "public_name", "currency", "scope", "externally_managed", "is_contract", "sets"}
SUBSCRIPTION_KEYS = {
    "id",
    "currency",
    "current_period_start",
    "current_period_end",
    "frequency",
    "price",
    "state",
    "rate_plan",
    "component_values",
}


def served(client: httpx.Client, account_id: str = ACCOUNT) -> list[dict[str, Any]]:
    response = client.get(subscriptions_path(account_id))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and "result_info" not in body  # SinglePage: one request, no paging
    return list(body["result"])


def test_shape_of_every_subscription(emu: Emulator, client: httpx.Client) -> None:
    subscriptions = served(client)
    assert [s["rate_plan"]["id"] for s in subscriptions] == ["workers_paid", "pro", "business"]
    for subscription in subscriptions:
        assert SUBSCRIPTION_KEYS <= set(subscription) <= SUBSCRIPTION_KEYS | {"zone"}
        assert set(subscription["rate_plan"]) == RATE_PLAN_KEYS
        assert subscription["currency"] == subscription["rate_plan"]["currency"] == "USD"
        assert subscription["frequency"] == "monthly" and subscription["state"] == "Paid"
        assert isinstance(subscription["price"], float)
        assert subscription["rate_plan"]["is_contract"] is False
        assert subscription["rate_plan"]["externally_managed"] is False
        assert all(isinstance(item, str) for item in subscription["rate_plan"]["sets"])
        for component in subscription["component_values"]:
            assert {"name", "display_name", "kind", "default", "price"} <= set(component)
            assert component["kind"] in ("enum", "sum", "usage")
    assert len({s["id"] for s in subscriptions}) == 3
    pro = subscriptions[1]
    assert (pro["price"], pro["rate_plan"]["scope"], pro["rate_plan"]["public_name"]) == (20.0, "zone", "Pro Plan")
    assert subscriptions[2]["price"] == 200.0
    assert emu.expected_subscriptions(ACCOUNT) == subscriptions


def test_paygo_subscription_is_the_one_the_usage_routes_know(emu: Emulator, client: httpx.Client) -> None:
    paygo = served(client)[0]
    for info_path in (f"/accounts/{ACCOUNT}/billable-usage/info", f"/accounts/{ACCOUNT}/paygo-usage-info"):
        info = client.get(info_path).json()["result"]
        assert [s["id"] for s in info["subscriptions"]] == [paygo["id"]]
    # The PayGo records carry the same SubscriptionId; the v2 records' billing period is the current one.
    window = {"from": "2025-12-21", "to": "2026-01-09"}  # holds the anchor day (21)
    records = client.get(usage_path("paygo-usage"), params=window).json()["result"]
    assert records and {r["SubscriptionId"] for r in records} == {paygo["id"]}
    v2 = client.get(usage_path("v2"), params={"from": "2026-01-09", "to": "2026-01-10"}).json()["result"]
    assert {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in v2} == {
        (paygo["current_period_start"], paygo["current_period_end"])
    }
    # Its components are the catalog the usage records' metric ids come from.
    assert [c["name"] for c in paygo["component_values"]] == [metric.id for metric in CATALOG]
    assert {r["x_BillableMetricId"] for r in v2} == {c["name"] for c in paygo["component_values"]}


def test_current_period_follows_the_anchor_day_and_the_clock(emu: Emulator, client: httpx.Client) -> None:
    anchor = emu.anchor_day(ACCOUNT)
    start, end = emu.billing_period(ACCOUNT, FROZEN.date())
    assert start.day == end.day == anchor
    for subscription in served(client):
        assert subscription["current_period_start"] == f"{start.isoformat()}T00:00:00Z"
        assert subscription["current_period_end"] == f"{end.isoformat()}T00:00:00Z"
    emu.set_clock(datetime(2026, 1, anchor, 0, 0, tzinfo=timezone.utc))  # the next period starts
    moved = served(client)
    assert {s["current_period_start"] for s in moved} == {f"{end.isoformat()}T00:00:00Z"}
    assert {s["current_period_end"] for s in moved} == {f"{date(2026, 2, anchor).isoformat()}T00:00:00Z"}


def test_zone_plans_are_on_the_usage_zones(client: httpx.Client) -> None:
    subscriptions = served(client)
    v2 = client.get(usage_path("v2"), params={"from": "2026-01-09", "to": "2026-01-10"}).json()["result"]
    usage_zones = {(r["x_ZoneId"], r["x_ZoneName"]) for r in v2 if r["x_ZoneId"]}
    plan_zones = {(s["zone"]["id"], s["zone"]["name"]) for s in subscriptions if "zone" in s}
    assert len(plan_zones) == 2 and plan_zones <= usage_zones
    assert "zone" not in subscriptions[0]


@pytest.mark.parametrize(("zones", "plans"), [(0, ["workers_paid"]), (1, ["workers_paid", "pro"])])
def test_fewer_zones_fewer_zone_plans(emu: Emulator, client: httpx.Client, zones: int, plans: list[str]) -> None:
    emu.configure(zones=zones)
    assert [s["rate_plan"]["id"] for s in served(client)] == plans


def test_deterministic_per_account_and_seed(emu: Emulator, client: httpx.Client) -> None:
    first = client.get(subscriptions_path())
    assert client.get(subscriptions_path(), params={"page": "2"}).content == first.content  # no paging
    other = served(client, OTHER_ACCOUNT)
    assert {s["id"] for s in other}.isdisjoint({s["id"] for s in first.json()["result"]})
    with Emulator(clock=FROZEN, seed=3) as reseeded, httpx.Client(base_url=reseeded.base_url, headers=BEARER) as http:
        assert http.get(subscriptions_path()).content != first.content


def test_faults_and_other_methods(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault_spec("subscriptions:nth=1:status=503")
    assert client.get(subscriptions_path()).status_code == 503
    assert client.get(subscriptions_path()).status_code == 200
    assert client.post(subscriptions_path(), json={}).status_code == 405
    assert client.get(subscriptions_path("acme")).status_code == 404
    assert emu.route_counts()["subscriptions"] == 4
