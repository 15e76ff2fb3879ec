"""An account's synthetic series: one deterministic quantity per metric, account / region / zone and UTC day.

Everything here is a pure function of ``(seed, account id, day)`` and the data settings: the same seed
gives the same quantities (and, once ``shapes.py`` serialises them, the same bytes), a different seed
different ones. No state is kept between calls other than caches, so the HTTP server and
:meth:`Emulator.expected_records` agree exactly.

The model: each account uses every metric of :data:`~airflow_provider_cfbilling.emulator.catalog.CATALOG`.
A metric is measured per account, per R2 region (the account has 1 to 3) or per zone (``zones * scale``
zones). One *series* is one metric for one account / region / zone, and each series has one quantity per
UTC day, plus a deterministic baseline correction after roughly one quantity in 50. Billing periods run
from the account's anchor day-of-month (1..28) to the same day of the next month. The record shapes
built from these series are in ``shapes.py``.

A restated day (a :class:`~airflow_provider_cfbilling.emulator.restatements.Restatement`, passed in by
the caller, since which days are restated is state and this module keeps none) changes deterministically:
every series quantity of the day is multiplied by the factor (the baseline corrections stay as they
were), and each of its N restatement corrections is a signed fraction of one series' quantity, the series
picked from ``(seed, account, day, k)`` (:meth:`AccountData.restated`).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling.emulator.catalog import ACCOUNT_WORDS, CATALOG, REGIONS, ZONE_TLDS, ZONE_WORDS, Metric
from airflow_provider_cfbilling.emulator.days import add_month, days_in_month, sub_month, timestamp

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.restatements import Restatement

CORRECTION_RATE = 1 / 50


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
class DayFacts:
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
class Group:
    """The series reported as one PayGo row: a whole metric (``zone_index`` None) or one zone of it."""

    metric: Metric
    key: str
    zone_index: int | None


@dataclass(frozen=True)
class Restated:
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
    """All synthetic facts about one account: names, anchor day, zones, regions, and the quantity of each
    series on each day (``shapes.py`` turns them into records)."""

    def __init__(self, settings: DataSettings, account_id: str) -> None:
        self.settings = settings
        self.account_id = account_id
        self._base = hashlib.blake2b(f"cfbilling-emulator|{settings.seed}|{account_id}|".encode(), digest_size=16)
        self._factors: dict[str, float] = {}
        self._account_factors: dict[str, float] = {}
        self._days: dict[date, DayFacts] = {}
        self._restated_cache: dict[tuple[date, float, int], Restated] = {}
        u_anchor, u_name = self.units("account")
        self.anchor_day = 1 + int(u_anchor * 28)
        word = ACCOUNT_WORDS[int(u_name * len(ACCOUNT_WORDS))]
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
        word = ZONE_WORDS[raw[0] % len(ZONE_WORDS)]
        tld = ZONE_TLDS[raw[1] % len(ZONE_TLDS)]
        name = f"{word}.{tld}" if index == 0 else f"{word}-{index}.{tld}"
        return raw.hex(), name

    def zones(self) -> Iterator[tuple[str, str]]:
        for index in range(self.settings.zone_count):
            yield self.zone(index)

    def subscription_info(self) -> dict[str, Any]:
        start = timestamp(self.subscription_start)
        return {"id": self.subscription_id, "start_timestamp": start, "billing_cycle_anchor_timestamp": start}

    def day_facts(self, day: date) -> DayFacts:
        cached = self._days.get(day)
        if cached is not None:
            return cached
        if len(self._days) > 1024:
            self._days.clear()
        context = self._days[day] = self._make_day(day)
        return context

    def _make_day(self, day: date) -> DayFacts:
        period_start, period_end = self.billing_period(day)
        return DayFacts(
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

    def series_keys(self, metric: Metric) -> Iterator[str]:
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

    def _raw_quantity(self, metric: Metric, key: str, day: DayFacts) -> tuple[float, float]:
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

    def quantity(
        self, metric: Metric, key: str, day: DayFacts, restated: Restated | None = None
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

    def group_consumed(self, group: Group, day: DayFacts, restated: Restated | None) -> float:
        """The consumed quantity of a PayGo row: its series summed, restatement corrections folded in."""
        metric = group.metric
        if group.zone_index is not None:
            keys: Iterable[str] = (f"z:{group.zone_index}",)
        else:
            keys = self.series_keys(metric)
        total: float = 0
        for key in keys:
            total += self.quantity(metric, key, day, restated)[0]
            if restated is not None:
                total += sum(restated.of(metric, key))
        return round(total) if metric.integer else round(total, 6)

    # -- restatements ----------------------------------------------------------------------------

    def restated(self, day: DayFacts, restatements: Mapping[date, Restatement]) -> Restated | None:
        """The worked-out restatement of ``day``, or None if the day is not restated."""
        restatement = restatements.get(day.day)
        if restatement is None:
            return None
        cache_key = (day.day, restatement.factor, restatement.corrections)
        worked = self._restated_cache.get(cache_key)
        if worked is None:
            if len(self._restated_cache) > 256:
                self._restated_cache.clear()
            worked = self._restated_cache[cache_key] = self._work_out(day, restatement.factor, restatement.corrections)
        return worked

    def _work_out(self, day: DayFacts, factor: float, corrections: int) -> Restated:
        """Pick the series of each restatement correction and size it: correction ``k`` depends only on
        ``(seed, account, day, k)``, so restating again keeps the earlier correction rows as they were."""
        series = [(metric, key) for metric in CATALOG for key in self.series_keys(metric)]
        found: dict[tuple[str, str], list[float]] = {}
        for index in range(corrections):
            u_pick, u_size = self._units_text(f"restatement|{day.ordinal}|{index}")
            metric, key = series[int(u_pick * len(series))]
            quantity, _ = self._raw_quantity(metric, key, day)
            sign = -1 if u_size < 0.5 else 1
            spread = (u_size * 2) % 1.0  # uniform in [0, 1) again
            found.setdefault((metric.id, key), []).append(_correction_amount(metric, quantity, sign, spread))
        return Restated(factor, {series_key: tuple(amounts) for series_key, amounts in found.items()})
