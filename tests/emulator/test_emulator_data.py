"""The synthetic data: shapes per path version, determinism, billing periods, cumulated fields, knobs."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from emulator_helpers import ACCOUNT, FROZEN, OTHER_ACCOUNT

from airflow_provider_cfbilling.emulator import CATALOG, Emulator

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T00:00:00Z$")
DAY = date(2026, 1, 8)

PAYGO_BETA_FIELDS = {
    "BillingCurrency",
    "BillingPeriodStart",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "CumulatedContractedCost",
    "CumulatedPricingQuantity",
    "PricingQuantity",
    "ServiceName",
}
PAYGO_V1_FIELDS = PAYGO_BETA_FIELDS | {"ServiceFamilyName", "SubscriptionId"}
PAYGO_V1_ZONE_FIELDS = {"ZoneId", "ZoneName"}
BILLABLE_USAGE_FIELDS = {
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "CumulatedContractedCost",
    "CumulatedPricingQuantity",
    "EffectiveCost",
    "HostProviderName",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ServiceFamilyName",
    "ServiceName",
    "ServiceProviderName",
    "SubscriptionId",
    "ZoneId",
    "ZoneName",
}
V2_FIELDS = {
    "BillingAccountId",
    "BillingAccountName",
    "ChargeCategory",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ConsumedQuantity",
    "ConsumedUnit",
    "HostProviderName",
    "InvoiceIssuerName",
    "ServiceProviderName",
    "x_BillableMetricName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeClass",
    "RegionId",
    "RegionName",
    "SubAccountId",
    "SubAccountName",
    "x_BillableMetricId",
    "x_ProductFamilyName",
    "x_ZoneId",
    "x_ZoneName",
}
V2_COST_FIELDS = {
    "BilledCost",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "ListCost",
    "ListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
}


@pytest.fixture
def emu_offline() -> Emulator:
    """An emulator that is never started: expected_records needs no server."""
    return Emulator(clock=FROZEN)


def test_v2_records_have_the_focus_fields_of_document_003_without_costs(emu_offline: Emulator) -> None:
    records = emu_offline.expected_records(ACCOUNT, DAY, "v2")
    assert records
    for record in records:
        assert set(record) == V2_FIELDS
        assert record["ChargeCategory"] == "Usage"
        assert record["ChargeFrequency"] == "Usage-Based"
        assert record["ChargePeriodStart"] == "2026-01-08T00:00:00Z"
        assert record["ChargePeriodEnd"] == "2026-01-09T00:00:00Z"
        assert TS.match(record["BillingPeriodStart"]) and TS.match(record["BillingPeriodEnd"])
        assert record["ChargeClass"] in (None, "Correction")


def test_populate_costs_adds_the_cost_and_pricing_fields() -> None:
    records = Emulator(clock=FROZEN, populate_costs=True).expected_records(ACCOUNT, DAY, "v2")
    for record in records:
        assert set(record) == V2_FIELDS | V2_COST_FIELDS
        assert record["ListCost"] == pytest.approx(record["PricingQuantity"] * record["ListUnitPrice"], abs=1e-6)


@pytest.mark.parametrize(
    ("source", "fields"),
    [("paygo", PAYGO_BETA_FIELDS), ("billable-usage", BILLABLE_USAGE_FIELDS)],
)
def test_paygo_records_have_the_fields_of_their_path_version(
    emu_offline: Emulator, source: str, fields: set[str]
) -> None:
    records = emu_offline.expected_records(ACCOUNT, DAY, source)
    assert records
    assert all(set(record) == fields for record in records)


def test_paygo_usage_adds_service_family_and_zone_fields_only_for_zone_metrics(emu_offline: Emulator) -> None:
    records = emu_offline.expected_records(ACCOUNT, DAY, "paygo-usage")
    with_zone = [r for r in records if "ZoneId" in r]
    without_zone = [r for r in records if "ZoneId" not in r]
    assert with_zone and without_zone
    assert all(set(r) == PAYGO_V1_FIELDS | PAYGO_V1_ZONE_FIELDS for r in with_zone)
    assert all(set(r) == PAYGO_V1_FIELDS for r in without_zone)


def test_beta_paygo_has_one_row_per_metric_and_day(emu_offline: Emulator) -> None:
    records = emu_offline.expected_records(ACCOUNT, DAY, "paygo")
    assert len(records) == len(CATALOG)
    assert len({r["ServiceName"] for r in records}) == len(CATALOG)


def test_some_metrics_are_per_zone_and_others_account_level(emu_offline: Emulator) -> None:
    records = emu_offline.expected_records(ACCOUNT, DAY, "v2")
    zoned = [r for r in records if r["x_ZoneId"] is not None]
    assert zoned and len(zoned) < len(records)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["x_ZoneId"]) and "." in r["x_ZoneName"] for r in zoned)
    assert len({r["x_ZoneId"] for r in zoned}) == 3  # the default zone count
    assert {r["x_ProductFamilyName"] for r in records} >= {"Workers", "R2", "Images", "Stream", "Argo Smart Routing"}
    assert any(r["RegionId"] for r in records)
    units = {r["x_BillableMetricId"]: r["ConsumedUnit"] for r in records}
    assert units["workers_standard_requests"] == "Requests"
    assert units["r2_storage_gb_month"] == "GB-month"


def test_zones_and_scale_multiply_the_zone_rows() -> None:
    def zone_rows(zones: int, scale: int = 1) -> int:
        records = Emulator(clock=FROZEN, zones=zones, scale=scale).expected_records(ACCOUNT, DAY, "v2")
        return sum(1 for r in records if r["x_ZoneId"] and r["ChargeClass"] is None)

    zone_metrics = sum(1 for metric in CATALOG if metric.scope == "zone")
    assert zone_rows(zones=5) == 5 * zone_metrics
    assert zone_rows(zones=5, scale=4) == 20 * zone_metrics
    assert zone_rows(zones=0) == 0


def test_same_seed_same_records_different_seed_different() -> None:
    first = Emulator(seed=1, clock=FROZEN).expected_records(ACCOUNT, DAY, "v2")
    again = Emulator(seed=1, clock=FROZEN).expected_records(ACCOUNT, DAY, "v2")
    other = Emulator(seed=2, clock=FROZEN).expected_records(ACCOUNT, DAY, "v2")
    assert first == again
    assert first != other


def test_every_account_gets_data_and_its_own_anchor_day(emu_offline: Emulator) -> None:
    accounts = [f"{n:032x}" for n in range(40)]
    anchors = {emu_offline.anchor_day(account) for account in accounts}
    assert anchors <= set(range(1, 29))
    assert len(anchors) > 5
    assert emu_offline.expected_records(OTHER_ACCOUNT, DAY, "v2")


def test_billing_period_runs_from_anchor_day_to_the_next_months_anchor_day(emu_offline: Emulator) -> None:
    anchor = emu_offline.anchor_day(ACCOUNT)
    start, end = emu_offline.billing_period(ACCOUNT, DAY)
    assert start.day == anchor and end.day == anchor
    assert start <= DAY < end
    assert (end.month - start.month) % 12 == 1
    for record in emu_offline.expected_records(ACCOUNT, DAY, "paygo"):
        assert record["BillingPeriodStart"] == f"{start.isoformat()}T00:00:00Z"


@pytest.mark.parametrize("source", ["paygo", "paygo-usage", "billable-usage"])
def test_cumulated_fields_are_running_sums_from_the_billing_period_start(source: str) -> None:
    emu = Emulator(clock=FROZEN)
    start, end = emu.billing_period(ACCOUNT, date(2025, 12, 20))
    days = [start + timedelta(days=n) for n in range((end - start).days + 3)]  # into the next period
    totals: dict[tuple[str, str | None], tuple[int, int]] = {}
    for day in days:
        for record in emu.expected_records(ACCOUNT, day, source):
            key = (record["ServiceName"], record.get("ZoneId"))
            if day in (start, end):
                totals[key] = (0, 0)
            quantity, micros = totals[key]
            quantity += record["PricingQuantity"]
            micros += round(record["ContractedCost"] * 1_000_000)
            totals[key] = (quantity, micros)
            assert record["CumulatedPricingQuantity"] == quantity
            assert round(record["CumulatedContractedCost"] * 1_000_000) == micros
            assert record["PricingQuantity"] == max(0, round(record["ConsumedQuantity"]))


def test_corrections_appear_in_about_one_record_in_fifty() -> None:
    emu = Emulator(clock=FROZEN, zones=10)
    records = list(emu.iter_expected_records(ACCOUNT, date(2025, 10, 1), date(2025, 12, 31), source="v2"))
    corrections = [i for i, r in enumerate(records) if r["ChargeClass"] == "Correction"]
    assert 0.005 < len(corrections) / len(records) < 0.05
    for index in corrections:
        base, correction = records[index - 1], records[index]
        assert base["ChargeClass"] is None
        assert base["x_BillableMetricId"] == correction["x_BillableMetricId"]
        assert base["x_ZoneId"] == correction["x_ZoneId"]
        assert correction["ConsumedQuantity"] != 0


@pytest.mark.parametrize("source", ["v2", "paygo", "paygo-usage", "billable-usage"])
def test_extra_fields_adds_unknown_keys(source: str) -> None:
    records = Emulator(clock=FROZEN, extra_fields=True).expected_records(ACCOUNT, DAY, source)
    assert records and all("x_FutureField" in record for record in records)


def test_expected_records_respect_availability_and_metric(emu_offline: Emulator) -> None:
    assert emu_offline.expected_records(ACCOUNT, date(2026, 1, 10), "v2") == []
    only = emu_offline.expected_records(ACCOUNT, DAY, "v2", metric="r2_class_a_operations")
    assert only and {r["x_BillableMetricId"] for r in only} == {"r2_class_a_operations"}
    with pytest.raises(ValueError):
        emu_offline.expected_records("not-an-account", DAY)
    with pytest.raises(ValueError):
        emu_offline.expected_records(ACCOUNT, DAY, "nope")
