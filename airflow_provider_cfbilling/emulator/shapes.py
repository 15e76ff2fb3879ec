"""The four usage record shapes, built from an account's series (``data.py``).

* ``v2`` (``/billable/usage``, FOCUS v1.3 of document 003): one record per series and day, plus a
  ``ChargeClass: "Correction"`` row after each baseline or restatement correction of the series; cost
  and pricing fields only with ``populate_costs``.
* ``paygo`` (``/billing/usage/paygo``, the 11-field beta record): one record per metric and day, summed
  over zones and regions.
* ``paygo-usage`` (``/paygo-usage``, adds ``ServiceFamilyName``, ``SubscriptionId``, zone fields) and
  ``billable-usage`` (``/billable-usage``, the wide FOCUS-like record): one record per metric and zone
  (regions summed).

PayGo ``Cumulated*`` fields are running sums from ``BillingPeriodStart`` through the record's day; costs
are kept in integer micro-dollars so the running sums are exact. The PayGo shapes have no correction
rows: they fold a restated day's corrections into the day's row of their series (quantity, cost, and the
``Cumulated*`` sums of the rest of the billing period).

Records are produced lazily (:func:`records`), so a day with hundreds of thousands of them can be streamed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling.emulator.catalog import CATALOG, Metric
from airflow_provider_cfbilling.emulator.data import AccountData, DayFacts, Group, Restated

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.restatements import Restatement

SOURCES = ("v2", "paygo", "paygo-usage", "billable-usage")

_MICROS = 1_000_000


def records(
    data: AccountData,
    days: Iterable[date],
    source: str,
    metric_ids: Collection[str] | None = None,
    restatements: Mapping[date, Restatement] | None = None,
) -> Iterator[dict[str, Any]]:
    """The records of ``source`` for ``days`` (ascending), optionally only ``metric_ids``, with the
    account's restated days (``restatements``: day -> the day's combined restatement) applied."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    metrics = [m for m in CATALOG if metric_ids is None or m.id in metric_ids]
    restated_days: Mapping[date, Restatement] = restatements or {}
    if source == "v2":
        for day in days:
            context = data.day_facts(day)
            restated = data.restated(context, restated_days)
            for metric in metrics:
                yield from _v2_rows(data, metric, context, restated)
        return
    running: dict[str, list[Any]] = {}
    for day in days:
        context = data.day_facts(day)
        for metric in metrics:
            if source == "paygo" or metric.scope != "zone":
                groups: Iterable[Group] = (Group(metric, metric.id, None),)
            else:
                groups = (Group(metric, f"{metric.id}|z:{index}", index) for index in range(data.settings.zone_count))
            for group in groups:
                yield _paygo_record(data, group, context, source, running, restated_days)


def _v2_rows(data: AccountData, metric: Metric, day: DayFacts, restated: Restated | None) -> Iterator[dict[str, Any]]:
    for key in data.series_keys(metric):
        zone: tuple[str, str] | None = None
        region: tuple[str, str] | None = None
        if key.startswith("z:"):
            zone = data.zone(int(key[2:]))
        elif key.startswith("r:"):
            region = next(r for r in data.regions if r[0] == key[2:])
        quantity, correction = data.quantity(metric, key, day, restated)
        yield _v2_record(data, metric, zone, region, day, quantity, False)
        if correction is not None:
            yield _v2_record(data, metric, zone, region, day, correction, True)
        if restated is not None:
            for amount in restated.of(metric, key):
                yield _v2_record(data, metric, zone, region, day, amount, True)


def _v2_record(
    data: AccountData,
    metric: Metric,
    zone: tuple[str, str] | None,
    region: tuple[str, str] | None,
    day: DayFacts,
    quantity: float,
    correction: bool,
) -> dict[str, Any]:
    costs = data.settings.populate_costs
    cost = round(quantity * metric.unit_price, 8)
    record: dict[str, Any] = {
        "BillingAccountId": data.account_id,
        "BillingAccountName": data.name,
        "ChargeCategory": "Usage",
        "ChargeDescription": f"{metric.name} \u2014 {'correction' if correction else 'daily usage'}",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": day.end,
        "ChargePeriodStart": day.start,
        "ConsumedQuantity": quantity,
        "ConsumedUnit": metric.consumed_unit,
        "HostProviderName": "Cloudflare",
        "InvoiceIssuerName": "Cloudflare",
        "ServiceProviderName": "Cloudflare",
        "x_BillableMetricName": metric.name,
    }
    if costs:
        record["BilledCost"] = cost
    record["BillingCurrency"] = "USD"
    record["BillingPeriodEnd"] = day.period_end_ts
    record["BillingPeriodStart"] = day.period_start_ts
    record["ChargeClass"] = "Correction" if correction else None
    if costs:
        record["ContractedCost"] = cost
        record["ContractedUnitPrice"] = metric.unit_price
        record["EffectiveCost"] = cost
        record["ListCost"] = cost
        record["ListUnitPrice"] = metric.unit_price
        record["PricingQuantity"] = quantity
        record["PricingUnit"] = metric.pricing_unit
    record["RegionId"] = region[0] if region else None
    record["RegionName"] = region[1] if region else None
    record["SubAccountId"] = data.sub_account_id
    record["SubAccountName"] = "Pay-as-you-go"
    record["x_BillableMetricId"] = metric.id
    record["x_ProductFamilyName"] = metric.family_name
    record["x_ZoneId"] = zone[0] if zone else None
    record["x_ZoneName"] = zone[1] if zone else None
    if data.settings.extra_fields:
        record["x_ProductCategoryName"] = metric.category
        record["x_ProductFamilyId"] = metric.family_id
        record["x_FutureField"] = f"emulated-{metric.family_id}"
    return record


def _running_totals(
    data: AccountData,
    group: Group,
    day: DayFacts,
    running: dict[str, list[Any]],
    restatements: Mapping[date, Restatement],
) -> tuple[float, int, int, int, int]:
    """The day's consumed quantity, pricing quantity and cost (micro-USD), and the pricing quantity
    and cost summed from the start of the billing period through the day."""
    metric = group.metric
    one_day = timedelta(days=1)
    state = running.get(group.key)
    if state is None or state[0] != day.period_start or state[1] != day.day - one_day:
        # Start (or restart) the running sums at the beginning of the billing period.
        state = [day.period_start, day.period_start - one_day, 0, 0]
        running[group.key] = state
    consumed: float = 0
    pricing_quantity = cost_micros = 0
    current = state[1] + one_day
    while current <= day.day:
        context = data.day_facts(current)
        consumed = data.group_consumed(group, context, data.restated(context, restatements))
        pricing_quantity = max(0, round(consumed))
        cost_micros = round(pricing_quantity * metric.unit_price * _MICROS)
        state[2] += pricing_quantity
        state[3] += cost_micros
        current += one_day
    state[1] = day.day
    return consumed, pricing_quantity, cost_micros, state[2], state[3]


def _paygo_record(
    data: AccountData,
    group: Group,
    day: DayFacts,
    source: str,
    running: dict[str, list[Any]],
    restatements: Mapping[date, Restatement],
) -> dict[str, Any]:
    metric = group.metric
    consumed, pricing_quantity, cost_micros, cumulated_quantity, cumulated_micros = _running_totals(
        data, group, day, running, restatements
    )
    cost = cost_micros / _MICROS
    cumulated_cost = cumulated_micros / _MICROS
    zone = data.zone(group.zone_index) if group.zone_index is not None else None
    unit = metric.consumed_unit
    if source != "paygo" and metric.paygo_unit is not None:
        unit = metric.paygo_unit
    if source == "billable-usage":
        record: dict[str, Any] = {
            "BilledCost": cost,
            "BillingAccountId": data.account_id,
            "BillingAccountName": data.name,
            "BillingCurrency": "USD",
            "BillingPeriodStart": day.period_start_ts,
            "ChargeCategory": "Usage",
            "ChargeClass": None,
            "ChargeDescription": f"{metric.service_name} usage measured in {unit or 'Count'}",
            "ChargePeriodEnd": day.end,
            "ChargePeriodStart": day.start,
            "ConsumedQuantity": consumed,
            "ConsumedUnit": unit,
            "ContractedCost": cost,
            "CumulatedContractedCost": cumulated_cost,
            "CumulatedPricingQuantity": cumulated_quantity,
            "EffectiveCost": cost,
            "HostProviderName": "Cloudflare, Inc.",
            "InvoiceIssuerName": "Cloudflare, Inc.",
            "ListCost": cost,
            "PricingQuantity": pricing_quantity,
            "PricingUnit": metric.pricing_unit or "Count",
            "ServiceFamilyName": metric.family_name,
            "ServiceName": metric.service_name,
            "ServiceProviderName": "Cloudflare, Inc.",
            "SubscriptionId": data.subscription_id,
            "ZoneId": zone[0] if zone else None,
            "ZoneName": zone[1] if zone else None,
        }
    else:
        record = {
            "BillingCurrency": "USD",
            "BillingPeriodStart": day.period_start_ts,
            "ChargePeriodEnd": day.end,
            "ChargePeriodStart": day.start,
            "ConsumedQuantity": consumed,
            "ConsumedUnit": unit,
            "ContractedCost": cost,
            "CumulatedContractedCost": cumulated_cost,
            "CumulatedPricingQuantity": cumulated_quantity,
            "PricingQuantity": pricing_quantity,
            "ServiceName": metric.service_name,
        }
        if source == "paygo-usage":
            record["ServiceFamilyName"] = metric.family_name
            record["SubscriptionId"] = data.subscription_id
            if zone is not None:
                record["ZoneId"] = zone[0]
                record["ZoneName"] = zone[1]
    if data.settings.extra_fields:
        record["x_FutureField"] = f"emulated-{metric.family_id}"
    return record
