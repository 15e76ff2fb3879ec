"""The API's rules over real loopback HTTP: dates only, windows, `to` semantics, anchor day, filters, routes."""

from __future__ import annotations

from datetime import date, timedelta

import httpx
import pytest
from emulator_helpers import ACCOUNT, BEARER, FROZEN, usage_path

from airflow_provider_cfbilling.emulator import Emulator


def days_of(records: list[dict]) -> set[str]:
    return {record["ChargePeriodStart"][:10] for record in records}


def assert_bad_request(response: httpx.Response, text: str = "") -> None:
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 1183
    assert text in body["errors"][0]["message"]


@pytest.mark.parametrize("route", ["v2", "paygo", "paygo-usage", "billable-usage"])
@pytest.mark.parametrize("bad", ["2026-01-01T00:00:00Z", "2026-01-01 00:00", "20260101", "2026-02-30", ""])
def test_dates_only(client: httpx.Client, route: str, bad: str) -> None:
    response = client.get(usage_path(route), params={"from": bad, "to": "2026-01-09"})
    assert_bad_request(response, "'from'")
    if "T" in bad:
        assert "dates only" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("params", [{"from": "2026-01-01"}, {"to": "2026-01-05"}])
def test_v2_needs_from_and_to_together(client: httpx.Client, params: dict[str, str]) -> None:
    assert_bad_request(client.get(usage_path("v2"), params=params), "together")


def test_v2_range_is_at_most_31_days(client: httpx.Client) -> None:
    assert client.get(usage_path("v2"), params={"from": "2025-12-01", "to": "2026-01-01"}).status_code == 200
    assert_bad_request(client.get(usage_path("v2"), params={"from": "2025-12-01", "to": "2026-01-02"}), "31 days")


def test_range_limits_are_counted_the_way_to_is_read(emu: Emulator, client: httpx.Client) -> None:
    # Read inclusively, a calendar month from=05-01&to=06-01 covers 32 days: over the limit.
    emu.configure(to_inclusive=True)
    assert_bad_request(client.get(usage_path("v2"), params={"from": "2025-05-01", "to": "2025-06-01"}), "32 days")
    assert client.get(usage_path("v2"), params={"from": "2025-05-01", "to": "2025-05-31"}).status_code == 200
    # The beta PayGo path documents 62 days; the others are held to a year (366 days).
    assert_bad_request(client.get(usage_path("paygo"), params={"from": "2025-01-01", "to": "2025-03-04"}), "62 days")
    assert client.get(usage_path("paygo"), params={"from": "2025-01-01", "to": "2025-03-03"}).status_code == 200
    for route in ("paygo-usage", "billable-usage"):
        params = {"from": "2024-01-01", "to": "2024-12-31"}
        assert client.get(usage_path(route), params=params).status_code == 200
        assert_bad_request(client.get(usage_path(route), params={"from": "2024-01-01", "to": "2025-01-01"}), "366")
    emu.configure(to_inclusive=False)
    assert client.get(usage_path("v2"), params={"from": "2025-05-01", "to": "2025-06-01"}).status_code == 200
    assert (
        client.get(usage_path("billable-usage"), params={"from": "2024-01-01", "to": "2025-01-01"}).status_code == 200
    )


@pytest.mark.parametrize("route", ["v2", "paygo", "paygo-usage", "billable-usage"])
def test_from_after_to_is_rejected(client: httpx.Client, route: str) -> None:
    assert_bad_request(client.get(usage_path(route), params={"from": "2026-01-05", "to": "2026-01-04"}))


def test_v2_without_dates_covers_the_first_of_the_month_through_today(client: httpx.Client) -> None:
    records = client.get(usage_path("v2")).json()["result"]
    # The clock is 2026-01-10 12:00 with a 6 h delay: 1..9 January are published, the 10th is not.
    assert days_of(records) == {f"2026-01-{day:02d}" for day in range(1, 10)}


def test_to_is_exclusive_by_default(client: httpx.Client) -> None:
    records = client.get(usage_path("v2"), params={"from": "2026-01-05", "to": "2026-01-07"}).json()["result"]
    assert days_of(records) == {"2026-01-05", "2026-01-06"}
    assert client.get(usage_path("v2"), params={"from": "2026-01-05", "to": "2026-01-05"}).json()["result"] == []


def test_to_inclusive_switch(emu: Emulator, client: httpx.Client) -> None:
    emu.configure(to_inclusive=True)
    records = client.get(usage_path("v2"), params={"from": "2026-01-05", "to": "2026-01-07"}).json()["result"]
    assert days_of(records) == {"2026-01-05", "2026-01-06", "2026-01-07"}
    paygo = client.get(usage_path("paygo"), params={"from": "2026-01-05", "to": "2026-01-05"}).json()["result"]
    assert days_of(paygo) == {"2026-01-05"}


def test_response_is_exactly_expected_records(emu: Emulator, client: httpx.Client) -> None:
    params = {"from": "2026-01-03", "to": "2026-01-06"}
    for route in ("v2", "paygo", "paygo-usage", "billable-usage"):
        anchor = emu.anchor_day(ACCOUNT)
        start = date(2025, 12, anchor)
        window = {"from": start.isoformat(), "to": (start + timedelta(days=3)).isoformat()}
        query = params if route in ("v2", "paygo") else window
        first = date.fromisoformat(query["from"])
        expected = [
            record
            for offset in range(3)
            for record in emu.expected_records(ACCOUNT, first + timedelta(days=offset), route)
        ]
        assert client.get(usage_path(route), params=query).json()["result"] == expected


def test_metric_and_repeated_metric_id_filter(client: httpx.Client) -> None:
    window = {"from": "2026-01-05", "to": "2026-01-07"}
    one = client.get(usage_path("v2"), params={**window, "metric": "workers_standard_requests"}).json()["result"]
    assert {r["x_BillableMetricId"] for r in one} == {"workers_standard_requests"}
    two = client.get(
        usage_path("v2"),
        params=[*window.items(), ("metric_id", "r2_class_a_operations"), ("metric_id", "images_transformations")],
    ).json()["result"]
    assert {r["x_BillableMetricId"] for r in two} == {"r2_class_a_operations", "images_transformations"}
    too_many = httpx.QueryParams([*window.items(), *(("metric_id", f"metric_{n}") for n in range(11))])
    assert_bad_request(client.get(usage_path("v2"), params=too_many), "metric_id")


def test_ignore_metric_filter_returns_everything(emu: Emulator, client: httpx.Client) -> None:
    emu.configure(ignore_metric_filter=True)
    params = {"from": "2026-01-05", "to": "2026-01-06", "metric": "workers_standard_requests"}
    records = client.get(usage_path("v2"), params=params).json()["result"]
    assert len({r["x_BillableMetricId"] for r in records}) > 1


@pytest.mark.parametrize("route", ["paygo-usage", "billable-usage"])
def test_anchor_day_rule_on_v1_paths(emu: Emulator, client: httpx.Client, route: str) -> None:
    anchor = emu.anchor_day(ACCOUNT)
    start = date(2025, 12, anchor)
    with_anchor = {"from": start.isoformat(), "to": (start + timedelta(days=2)).isoformat()}
    without = {"from": (start + timedelta(days=1)).isoformat(), "to": (start + timedelta(days=3)).isoformat()}
    assert client.get(usage_path(route), params=with_anchor).json()["result"]
    response = client.get(usage_path(route), params=without)
    assert response.status_code == 200
    assert response.json() == {"result": [], "success": True, "errors": [], "messages": []}
    # The beta path has no such rule.
    assert client.get(usage_path("paygo"), params=without).json()["result"]


def test_exclusive_to_on_the_anchor_day_misses_it(emu: Emulator, client: httpx.Client) -> None:
    anchor = date(2025, 12, emu.anchor_day(ACCOUNT))
    window = {"from": (anchor - timedelta(days=2)).isoformat(), "to": anchor.isoformat()}
    assert client.get(usage_path("paygo-usage"), params=window).json()["result"] == []
    emu.configure(to_inclusive=True)
    assert client.get(usage_path("paygo-usage"), params=window).json()["result"]


@pytest.mark.parametrize("route", ["paygo", "paygo-usage", "billable-usage"])
def test_paygo_without_dates_returns_the_current_billing_period(
    emu: Emulator, client: httpx.Client, route: str
) -> None:
    start, _ = emu.billing_period(ACCOUNT, FROZEN.date())
    records = client.get(usage_path(route)).json()["result"]
    expected_days = {(start + timedelta(days=n)).isoformat() for n in range((date(2026, 1, 10) - start).days)}
    assert days_of(records) == expected_days


@pytest.mark.parametrize("path", ["billable-usage/info", "paygo-usage-info"])
def test_info_endpoints_return_the_subscription_anchor(emu: Emulator, client: httpx.Client, path: str) -> None:
    body = client.get(f"/accounts/{ACCOUNT}/{path}").json()
    assert body["success"] is True
    result = body["result"]
    assert result["covered"] is True
    (subscription,) = result["subscriptions"]
    assert set(subscription) == {"id", "start_timestamp", "billing_cycle_anchor_timestamp"}
    assert int(subscription["billing_cycle_anchor_timestamp"][8:10]) == emu.anchor_day(ACCOUNT)
    usage = client.get(usage_path("paygo-usage")).json()["result"]
    assert {r["SubscriptionId"] for r in usage} == {subscription["id"]}


def test_billing_profile_is_snake_case_with_personal_fields(client: httpx.Client) -> None:
    profile = client.get(f"/accounts/{ACCOUNT}/billing/profile").json()["result"]
    for name in ("card_number", "payment_nonce", "validation_code", "first_name", "primary_email", "vat"):
        assert name in profile
    assert all(key == key.lower() for key in profile)


def test_unknown_routes_answer_7003(client: httpx.Client) -> None:
    for path in ("/nope", f"/accounts/{ACCOUNT}/billing/usage", "/accounts/not-hex/billable/usage"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == 7003
    outside = httpx.get(client.base_url.copy_with(path="/elsewhere"), headers=BEARER, verify=False)
    assert outside.status_code == 404
    assert outside.json()["errors"][0]["message"] == "No route for the URI"


def test_other_methods_are_not_allowed(client: httpx.Client) -> None:
    response = client.post(usage_path("v2"), json={"TimePeriod": {}})
    assert response.status_code == 405
    assert response.json()["success"] is False


def test_same_seed_same_bytes_different_seed_different_bytes() -> None:
    params = {"from": "2026-01-01", "to": "2026-01-09"}

    def body(seed: int) -> bytes:
        with Emulator(seed=seed, clock=FROZEN) as emu:
            return httpx.get(emu.base_url + usage_path("v2"), params=params, headers=BEARER, verify=False).content

    assert body(3) == body(3)
    assert body(3) != body(4)
