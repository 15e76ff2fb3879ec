"""Deterministic synthetic billing data for any account and day.

Everything here is a pure function of ``(seed, account id, day)`` and the data settings: the same seed
gives the same records (and, once serialised, the same bytes), a different seed different ones. No
state is kept between calls, so the HTTP server and :meth:`Emulator.expected_records` agree exactly.

The model: each account uses every metric of :data:`CATALOG`. A metric is measured per account, per R2
region (the account has 1 to 3) or per zone (``zones * scale`` zones). One *series* is one metric for
one account / region / zone, and each series has one quantity per UTC day. The four record shapes are
views of the same series:

* ``v2`` (``/billable/usage``, FOCUS v1.3 of document 003): one record per series and day, plus a
  deterministic ``ChargeClass: "Correction"`` row after roughly one record in 50; cost and pricing
  fields only with ``populate_costs``.
* ``paygo`` (``/billing/usage/paygo``, the 11-field beta record): one record per metric and day, summed
  over zones and regions.
* ``paygo-usage`` (``/paygo-usage``, adds ``ServiceFamilyName``, ``SubscriptionId``, zone fields) and
  ``billable-usage`` (``/billable-usage``, the wide FOCUS-like record): one record per metric and zone
  (regions summed).

PayGo ``Cumulated*`` fields are running sums from ``BillingPeriodStart`` through the record's day; costs
are kept in integer micro-dollars so the running sums are exact. Billing periods run from the account's
anchor day-of-month (1..28) to the same day of the next month.

A restated day (a :class:`~airflow_provider_cfbilling.emulator.restatements.Restatement`, passed in by
the caller, since which days are restated is state and this module keeps none) changes deterministically:
every series quantity of the day is multiplied by the factor (the baseline correction rows stay as they
were), and each of its N restatement corrections is a signed fraction of one series' quantity, the series
picked from ``(seed, account, day, k)``. v2 shows each such correction as a ``ChargeClass: "Correction"``
row right after its series' rows; the PayGo shapes have no correction rows, so they fold each one into the
day's row of its series (quantity, cost, and the ``Cumulated*`` sums of the rest of the billing period).

Records are produced lazily, so a day with hundreds of thousands of records can be streamed.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.restatements import Restatement

SOURCES = ("v2", "paygo", "paygo-usage", "billable-usage")

CORRECTION_RATE = 1 / 50


@dataclass(frozen=True)
class Metric:
    """One billable metric of the synthetic catalog.

    ``daily_base`` is a typical daily quantity in ``consumed_unit`` (for storage: GB stored, turned into
    GB-month per day). ``unit_price`` is USD per ``pricing_unit``. ``scope`` is ``account``, ``region``
    or ``zone``. ``paygo_unit`` overrides ``ConsumedUnit`` on the v1 PayGo paths (``""``: implicit).
    """

    id: str
    name: str
    family_id: str
    family_name: str
    category: str
    service_name: str
    consumed_unit: str
    pricing_unit: str
    unit_price: float
    scope: str
    daily_base: float
    integer: bool = True
    storage: bool = False
    weekly: bool = True
    paygo_unit: str | None = None


_DEV = "Developer Platform"
_PERF = "Application Performance"
_SEC = "Application Security"

CATALOG: tuple[Metric, ...] = (
    Metric(
        "workers_standard_requests",
        "Workers Standard Requests",
        "workers",
        "Workers",
        _DEV,
        "Workers Standard",
        "Requests",
        "Requests",
        3e-07,
        "account",
        180_000,
    ),
    Metric(
        "workers_standard_cpu_ms",
        "Workers Standard CPU Time",
        "workers",
        "Workers",
        _DEV,
        "Workers Standard CPU",
        "CPU ms",
        "CPU ms",
        2e-08,
        "account",
        2_400_000,
    ),
    Metric(
        "workers_kv_read_operations",
        "Workers KV Read Operations",
        "workers_kv",
        "Workers KV",
        _DEV,
        "Workers KV Reads",
        "Operations",
        "Operations",
        5e-07,
        "account",
        450_000,
    ),
    Metric(
        "durable_objects_requests",
        "Durable Objects Requests",
        "durable_objects",
        "Durable Objects",
        _DEV,
        "Durable Objects Requests",
        "Requests",
        "Requests",
        1.5e-07,
        "account",
        95_000,
    ),
    Metric(
        "d1_rows_read", "D1 Rows Read", "d1", "D1", _DEV, "D1 Rows Read", "Rows", "Rows", 1e-09, "account", 6_000_000
    ),
    Metric(
        "r2_storage_gb_month",
        "R2 Standard Storage",
        "r2",
        "R2",
        _DEV,
        "R2 Storage",
        "GB-month",
        "GB-month",
        0.015,
        "region",
        250.0,
        integer=False,
        storage=True,
        weekly=False,
    ),
    Metric(
        "r2_class_a_operations",
        "R2 Class A Operations",
        "r2",
        "R2",
        _DEV,
        "R2 Class A Operations",
        "Operations",
        "Operations",
        4.5e-06,
        "region",
        25_000,
    ),
    Metric(
        "r2_class_b_operations",
        "R2 Class B Operations",
        "r2",
        "R2",
        _DEV,
        "R2 Class B Operations",
        "Operations",
        "Operations",
        3.6e-07,
        "region",
        300_000,
    ),
    Metric(
        "images_transformations",
        "Images Transformations",
        "images",
        "Images",
        _DEV,
        "Images Transformations",
        "Transformations",
        "Transformations",
        0.0005,
        "zone",
        2_500,
    ),
    Metric(
        "images_delivered",
        "Images Delivered",
        "images",
        "Images",
        _DEV,
        "Images Delivered",
        "Images",
        "Images",
        1e-05,
        "account",
        60_000,
    ),
    Metric(
        "stream_minutes_delivered",
        "Stream Minutes Delivered",
        "stream",
        "Stream",
        _DEV,
        "Stream Minutes Delivered",
        "Minutes",
        "Minutes",
        0.001,
        "account",
        9_000,
    ),
    Metric(
        "argo_smart_routing_data_transfer",
        "Argo Smart Routing Data Transfer",
        "argo",
        "Argo Smart Routing",
        _PERF,
        "Argo Smart Routing",
        "GB",
        "GB",
        0.1,
        "zone",
        40.0,
        integer=False,
    ),
    Metric(
        "load_balancing_dns_queries",
        "Load Balancing DNS Queries",
        "load_balancing",
        "Load Balancing",
        _PERF,
        "Load Balancing",
        "Queries",
        "Queries",
        1e-06,
        "zone",
        150_000,
        paygo_unit="",
    ),
    Metric(
        "rate_limiting_requests",
        "Rate Limiting Requests",
        "rate_limiting",
        "Rate Limiting",
        _SEC,
        "Rate Limiting",
        "Requests",
        "Requests",
        5e-06,
        "zone",
        70_000,
    ),
)

METRICS_BY_ID = {metric.id: metric for metric in CATALOG}

REGIONS: tuple[tuple[str, str], ...] = (
    ("WNAM", "Western North America"),
    ("ENAM", "Eastern North America"),
    ("WEUR", "Western Europe"),
    ("EEUR", "Eastern Europe"),
    ("APAC", "Asia-Pacific"),
    ("OC", "Oceania"),
)

_ZONE_WORDS = (
    "example",
    "shop",
    "blog",
    "static",
    "media",
    "status",
    "docs",
    "app",
    "cdn",
    "api",
    "store",
    "news",
    "portal",
    "assets",
    "files",
    "play",
    "learn",
    "market",
    "travel",
    "photos",
)
_ZONE_TLDS = ("com", "net", "org", "io", "dev", "app", "co", "eu")
_ACCOUNT_WORDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Vandelay")

_MICROS = 1_000_000


def timestamp(day: date) -> str:
    """A UTC day boundary as Cloudflare formats it: ``2025-05-01T00:00:00Z``."""
    return f"{day.isoformat()}T00:00:00Z"


def add_month(day: date) -> date:
    """The same day-of-month one month later (callers only use days 1..28)."""
    if day.month == 12:
        return day.replace(year=day.year + 1, month=1)
    return day.replace(month=day.month + 1)


def sub_month(day: date) -> date:
    if day.month == 1:
        return day.replace(year=day.year - 1, month=12)
    return day.replace(month=day.month - 1)


def days_in_month(day: date) -> int:
    return (add_month(day.replace(day=1)) - day.replace(day=1)).days


@dataclass(frozen=True)
class DataSettings:
    """The knobs that shape the data (all part of the emulator's configuration)."""

    seed: int = 0
    zones: int = 3
    scale: int = 1
    populate_costs: bool = False
    extra_fields: bool = False

    @property
    def zone_count(self) -> int:
        return max(0, self.zones) * max(1, self.scale)


@dataclass(frozen=True)
class _Day:
    """Everything about one UTC day that every record of that day shares (computed once per day)."""

    day: date
    ordinal: int
    month_days: int
    weekend: bool
    start: str
    end: str
    period_start: date
    period_start_ts: str
    period_end_ts: str


@dataclass(frozen=True)
class _Group:
    """The series reported as one PayGo row: a whole metric (``zone_index`` None) or one zone of it."""

    metric: Metric
    key: str
    zone_index: int | None


@dataclass(frozen=True)
class _Restated:
    """A restated day worked out: the factor, and the restatement corrections of each series (keyed by
    ``(metric id, series key)``, quantities in the order of the restatement's correction index)."""

    factor: float
    corrections: Mapping[tuple[str, str], tuple[float, ...]]

    def of(self, metric: Metric, key: str) -> tuple[float, ...]:
        return self.corrections.get((metric.id, key), ())


def _correction_amount(metric: Metric, quantity: float, sign: int, spread: float) -> float:
    """A correction of ``quantity`` by ``sign * (1% + 10% * spread)``, never zero, rounded like a quantity."""
    correction = sign * quantity * (0.01 + 0.1 * spread)
    if metric.integer:
        return sign * max(1, round(abs(correction)))
    return round(correction, 6) or sign * 1e-06


_FACTOR_CACHE_LIMIT = 262_144


class AccountData:
    """All synthetic facts about one account: names, anchor day, zones, regions, usage records."""

    def __init__(self, settings: DataSettings, account_id: str) -> None:
        self.settings = settings
        self.account_id = account_id
        self._base = hashlib.blake2b(f"cfbilling-emulator|{settings.seed}|{account_id}|".encode(), digest_size=16)
        self._factors: dict[str, float] = {}
        self._account_factors: dict[str, float] = {}
        self._days: dict[date, _Day] = {}
        self._restated: dict[tuple[date, float, int], _Restated] = {}
        u_anchor, u_name = self.units("account")
        self.anchor_day = 1 + int(u_anchor * 28)
        word = _ACCOUNT_WORDS[int(u_name * len(_ACCOUNT_WORDS))]
        self.name = f"{word} {account_id[:6]}"
        self.subscription_id = base64.b32encode(self.digest("subscription")).decode()[:26]
        self.sub_account_id = str(uuid.UUID(bytes=self.digest("sub-account")))
        u_year, u_month = self.units("subscription-start")
        self.subscription_start = date(2022 + int(u_year * 3), 1 + int(u_month * 12), self.anchor_day)
        u_regions, _ = self.units("regions")
        ranked = sorted(REGIONS, key=lambda region: self.digest("region", region[0]))
        self.regions: tuple[tuple[str, str], ...] = tuple(ranked[: 1 + int(u_regions * 3)])

    # -- hashing helpers -------------------------------------------------------------------------

    def _digest_text(self, text: str) -> bytes:
        hasher = self._base.copy()
        hasher.update(text.encode())
        return hasher.digest()

    def _units_text(self, text: str) -> tuple[float, float]:
        value = int.from_bytes(self._digest_text(text), "big")
        return (value >> 64) / 2**64, (value & 0xFFFFFFFFFFFFFFFF) / 2**64

    def digest(self, *parts: object) -> bytes:
        """16 deterministic bytes for ``parts`` (seed and account id included)."""
        return self._digest_text("|".join(str(part) for part in parts))

    def units(self, *parts: object) -> tuple[float, float]:
        """Two independent uniform numbers in [0, 1) for ``parts``."""
        return self._units_text("|".join(str(part) for part in parts))

    # -- account facts ---------------------------------------------------------------------------

    def billing_period(self, day: date) -> tuple[date, date]:
        """The billing period ``[start, end)`` that contains ``day``."""
        start = day.replace(day=self.anchor_day)
        if day.day < self.anchor_day:
            start = sub_month(start)
        return start, add_month(start)

    def zone(self, index: int) -> tuple[str, str]:
        """Zone ``index`` of the account: ``(zone id, zone name)``."""
        raw = self._digest_text(f"zone|{index}")
        word = _ZONE_WORDS[raw[0] % len(_ZONE_WORDS)]
        tld = _ZONE_TLDS[raw[1] % len(_ZONE_TLDS)]
        name = f"{word}.{tld}" if index == 0 else f"{word}-{index}.{tld}"
        return raw.hex(), name

    def zones(self) -> Iterator[tuple[str, str]]:
        for index in range(self.settings.zone_count):
            yield self.zone(index)

    def subscription_info(self) -> dict[str, Any]:
        start = timestamp(self.subscription_start)
        return {"id": self.subscription_id, "start_timestamp": start, "billing_cycle_anchor_timestamp": start}

    def _day(self, day: date) -> _Day:
        cached = self._days.get(day)
        if cached is not None:
            return cached
        if len(self._days) > 1024:
            self._days.clear()
        context = self._days[day] = self._make_day(day)
        return context

    def _make_day(self, day: date) -> _Day:
        period_start, period_end = self.billing_period(day)
        return _Day(
            day=day,
            ordinal=day.toordinal(),
            month_days=days_in_month(day),
            weekend=day.weekday() >= 5,
            start=timestamp(day),
            end=timestamp(day + timedelta(days=1)),
            period_start=period_start,
            period_start_ts=timestamp(period_start),
            period_end_ts=timestamp(period_end),
        )

    # -- quantities ------------------------------------------------------------------------------

    def _series_keys(self, metric: Metric) -> Iterator[str]:
        """Identifiers of the metric's series: ``account``, ``r:<region>`` or ``z:<zone index>``."""
        if metric.scope == "account":
            yield "account"
        elif metric.scope == "region":
            for region_id, _ in self.regions:
                yield f"r:{region_id}"
        else:
            for index in range(self.settings.zone_count):
                yield f"z:{index}"

    def _factor(self, metric: Metric, key: str) -> float:
        """How big a series is relative to the metric's ``daily_base`` (stable over time)."""
        cache_key = f"{metric.id}|{key}"
        value = self._factors.get(cache_key)
        if value is not None:
            return value
        account_factor = self._account_factors.get(metric.id)
        if account_factor is None:
            u_account, _ = self._units_text(f"account-factor|{metric.id}")
            account_factor = self._account_factors[metric.id] = 0.3 + 2.7 * u_account * u_account
        u_series, _ = self._units_text(f"series-factor|{cache_key}")
        value = account_factor * (0.1 + 1.9 * u_series)
        if len(self._factors) < _FACTOR_CACHE_LIMIT:
            self._factors[cache_key] = value
        return value

    def _raw_quantity(self, metric: Metric, key: str, day: _Day) -> tuple[float, float]:
        """The day's unrounded quantity of a series, and the uniform number that decides its correction."""
        u_noise, u_correction = self._units_text(f"q|{metric.id}|{key}|{day.ordinal}")
        factor = self._factor(metric, key)
        if metric.storage:
            quantity = metric.daily_base * factor * (0.98 + 0.04 * u_noise) / day.month_days
        else:
            quantity = metric.daily_base * factor * (0.75 + 0.5 * u_noise)
            if metric.weekly and day.weekend:
                quantity *= 0.7
        return quantity, u_correction

    def _quantity(
        self, metric: Metric, key: str, day: _Day, restated: _Restated | None = None
    ) -> tuple[float, float | None]:
        """The day's quantity of a series (restated, if ``restated``), and the quantity of its baseline
        correction row if it has one (a restatement leaves that row as it was)."""
        quantity, u_correction = self._raw_quantity(metric, key, day)
        correction: float | None = None
        if u_correction < CORRECTION_RATE:
            spread = u_correction / CORRECTION_RATE  # uniform in [0, 1) again
            correction = _correction_amount(metric, quantity, -1 if spread < 0.7 else 1, spread)
        if restated is not None:
            quantity *= restated.factor
        value: float = round(quantity) if metric.integer else round(quantity, 6)
        return value, correction

    def _group_consumed(self, group: _Group, day: _Day, restated: _Restated | None) -> float:
        """The consumed quantity of a PayGo row: its series summed, restatement corrections folded in."""
        metric = group.metric
        if group.zone_index is not None:
            keys: Iterable[str] = (f"z:{group.zone_index}",)
        else:
            keys = self._series_keys(metric)
        total: float = 0
        for key in keys:
            total += self._quantity(metric, key, day, restated)[0]
            if restated is not None:
                total += sum(restated.of(metric, key))
        return round(total) if metric.integer else round(total, 6)

    # -- restatements ----------------------------------------------------------------------------

    def _restatement(self, day: _Day, restatements: Mapping[date, Restatement]) -> _Restated | None:
        """The worked-out restatement of ``day``, or None if the day is not restated."""
        restatement = restatements.get(day.day)
        if restatement is None:
            return None
        cache_key = (day.day, restatement.factor, restatement.corrections)
        worked = self._restated.get(cache_key)
        if worked is None:
            if len(self._restated) > 256:
                self._restated.clear()
            worked = self._restated[cache_key] = self._work_out(day, restatement.factor, restatement.corrections)
        return worked

    def _work_out(self, day: _Day, factor: float, corrections: int) -> _Restated:
        """Pick the series of each restatement correction and size it: correction ``k`` depends only on
        ``(seed, account, day, k)``, so restating again keeps the earlier correction rows as they were."""
        series = [(metric, key) for metric in CATALOG for key in self._series_keys(metric)]
        found: dict[tuple[str, str], list[float]] = {}
        for index in range(corrections):
            u_pick, u_size = self._units_text(f"restatement|{day.ordinal}|{index}")
            metric, key = series[int(u_pick * len(series))]
            quantity, _ = self._raw_quantity(metric, key, day)
            sign = -1 if u_size < 0.5 else 1
            spread = (u_size * 2) % 1.0  # uniform in [0, 1) again
            found.setdefault((metric.id, key), []).append(_correction_amount(metric, quantity, sign, spread))
        return _Restated(factor, {series_key: tuple(amounts) for series_key, amounts in found.items()})

    # -- records ---------------------------------------------------------------------------------

    def records(
        self,
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
                context = self._day(day)
                restated = self._restatement(context, restated_days)
                for metric in metrics:
                    yield from self._v2_rows(metric, context, restated)
            return
        running: dict[str, list[Any]] = {}
        for day in days:
            context = self._day(day)
            for metric in metrics:
                if source == "paygo" or metric.scope != "zone":
                    groups: Iterable[_Group] = (_Group(metric, metric.id, None),)
                else:
                    groups = (
                        _Group(metric, f"{metric.id}|z:{index}", index) for index in range(self.settings.zone_count)
                    )
                for group in groups:
                    yield self._paygo_record(group, context, source, running, restated_days)

    def _v2_rows(self, metric: Metric, day: _Day, restated: _Restated | None) -> Iterator[dict[str, Any]]:
        for key in self._series_keys(metric):
            zone: tuple[str, str] | None = None
            region: tuple[str, str] | None = None
            if key.startswith("z:"):
                zone = self.zone(int(key[2:]))
            elif key.startswith("r:"):
                region = next(r for r in self.regions if r[0] == key[2:])
            quantity, correction = self._quantity(metric, key, day, restated)
            yield self._v2_record(metric, zone, region, day, quantity, False)
            if correction is not None:
                yield self._v2_record(metric, zone, region, day, correction, True)
            if restated is not None:
                for amount in restated.of(metric, key):
                    yield self._v2_record(metric, zone, region, day, amount, True)

    def _v2_record(
        self,
        metric: Metric,
        zone: tuple[str, str] | None,
        region: tuple[str, str] | None,
        day: _Day,
        quantity: float,
        correction: bool,
    ) -> dict[str, Any]:
        costs = self.settings.populate_costs
        cost = round(quantity * metric.unit_price, 8)
        record: dict[str, Any] = {
            "BillingAccountId": self.account_id,
            "BillingAccountName": self.name,
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
        record["SubAccountId"] = self.sub_account_id
        record["SubAccountName"] = "Pay-as-you-go"
        record["x_BillableMetricId"] = metric.id
        record["x_ProductFamilyName"] = metric.family_name
        record["x_ZoneId"] = zone[0] if zone else None
        record["x_ZoneName"] = zone[1] if zone else None
        if self.settings.extra_fields:
            record["x_ProductCategoryName"] = metric.category
            record["x_ProductFamilyId"] = metric.family_id
            record["x_FutureField"] = f"emulated-{metric.family_id}"
        return record

    def _running_totals(
        self, group: _Group, day: _Day, running: dict[str, list[Any]], restatements: Mapping[date, Restatement]
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
            context = self._day(current)
            consumed = self._group_consumed(group, context, self._restatement(context, restatements))
            pricing_quantity = max(0, round(consumed))
            cost_micros = round(pricing_quantity * metric.unit_price * _MICROS)
            state[2] += pricing_quantity
            state[3] += cost_micros
            current += one_day
        state[1] = day.day
        return consumed, pricing_quantity, cost_micros, state[2], state[3]

    def _paygo_record(
        self,
        group: _Group,
        day: _Day,
        source: str,
        running: dict[str, list[Any]],
        restatements: Mapping[date, Restatement],
    ) -> dict[str, Any]:
        metric = group.metric
        consumed, pricing_quantity, cost_micros, cumulated_quantity, cumulated_micros = self._running_totals(
            group, day, running, restatements
        )
        cost = cost_micros / _MICROS
        cumulated_cost = cumulated_micros / _MICROS
        zone = self.zone(group.zone_index) if group.zone_index is not None else None
        unit = metric.consumed_unit
        if source != "paygo" and metric.paygo_unit is not None:
            unit = metric.paygo_unit
        if source == "billable-usage":
            record: dict[str, Any] = {
                "BilledCost": cost,
                "BillingAccountId": self.account_id,
                "BillingAccountName": self.name,
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
                "SubscriptionId": self.subscription_id,
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
                record["SubscriptionId"] = self.subscription_id
                if zone is not None:
                    record["ZoneId"] = zone[0]
                    record["ZoneName"] = zone[1]
        if self.settings.extra_fields:
            record["x_FutureField"] = f"emulated-{metric.family_id}"
        return record
