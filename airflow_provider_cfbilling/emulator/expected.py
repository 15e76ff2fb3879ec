"""What the emulator serves, asked directly: the records, subscriptions and billing history a request
returns now, and the account facts (anchor day, billing periods, availability) behind them.

:class:`ExpectedData` is the part of :class:`~airflow_provider_cfbilling.emulator.core.Emulator` that
answers these questions; it reads the switches (``settings.py``), the clock and the restated days the
``Emulator`` keeps and computes with ``data.py``, ``shapes.py`` and ``billing.py``. The HTTP routes
(``handlers.py``) use the same calls, so the server and these answers agree byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from airflow_provider_cfbilling.emulator import shapes
from airflow_provider_cfbilling.emulator.billing import billing_history, subscriptions
from airflow_provider_cfbilling.emulator.credentials import ACCOUNT_ID_PATTERN
from airflow_provider_cfbilling.emulator.data import AccountData, DataSettings
from airflow_provider_cfbilling.emulator.days import as_day, utc_midnight
from airflow_provider_cfbilling.emulator.organizations import ORGANIZATION_ID_PATTERN
from airflow_provider_cfbilling.emulator.restatements import Restatement
from airflow_provider_cfbilling.emulator.settings import Switches
from airflow_provider_cfbilling.emulator.shapes import SOURCES

_DATA_CACHE_LIMIT = 64


class ExpectedData(Switches):
    """The emulator's answers to "what does a request return now" (a base class of ``Emulator``)."""

    # What the Emulator provides besides the switches: its lock and a cache of account facts.
    _data_cache: dict[tuple[DataSettings, str], AccountData]

    def now(self) -> datetime:
        raise NotImplementedError

    def restated_days(self, account_id: str) -> dict[date, Restatement]:
        raise NotImplementedError

    # -- availability ----------------------------------------------------------------------------

    def is_available(self, day: date, now: datetime | None = None) -> bool:
        """Whether ``day``'s usage is published at ``now`` (default: the emulator clock)."""
        moment = now if now is not None else self.now()
        return moment >= utc_midnight(day + timedelta(days=1)) + self.availability_delay

    def available_at(self, day: date | str) -> datetime:
        """The instant ``day``'s usage appears."""
        return utc_midnight(as_day(day) + timedelta(days=1)) + self.availability_delay

    # -- account facts ---------------------------------------------------------------------------

    def account_data(self, account_id: str) -> AccountData:
        """The synthetic facts of ``account_id`` under the current settings."""
        if not ACCOUNT_ID_PATTERN.match(account_id):
            raise ValueError("account_id must be 32 lowercase hex characters")
        key = (DataSettings(self.seed, self.zones, self.scale, self.populate_costs, self.extra_fields), account_id)
        with self._lock:
            data = self._data_cache.get(key)
            if data is None:
                if len(self._data_cache) >= _DATA_CACHE_LIMIT:
                    self._data_cache.clear()
                data = self._data_cache[key] = AccountData(key[0], account_id)
        return data

    def anchor_day(self, account_id: str) -> int:
        """The account's billing-cycle anchor day-of-month (1..28)."""
        return self.account_data(account_id).anchor_day

    def billing_period(self, account_id: str, day: date | str) -> tuple[date, date]:
        """The billing period ``[start, end)`` of ``account_id`` that contains ``day``."""
        return self.account_data(account_id).billing_period(as_day(day))

    # -- usage records ---------------------------------------------------------------------------

    def expected_records(
        self, account_id: str, day: date | str, source: str = "v2", metric: str | Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        """The records the server returns for ``day`` (empty if the day is not yet available).

        ``metric`` (one id or several) keeps only those metrics, i.e. what a correct client ends up with,
        whatever ``ignore_metric_filter`` says. The PayGo anchor-day rule is not applied: these are the
        records of a request whose range contains the anchor day.
        """
        return list(self.iter_expected_records(account_id, day, source=source, metric=metric))

    def iter_expected_records(
        self,
        account_id: str,
        start: date | str,
        end: date | str | None = None,
        *,
        source: str = "v2",
        metric: str | Iterable[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`expected_records` for the days ``[start, end)`` (default: just ``start``), lazily."""
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
        first = as_day(start)
        last = as_day(end) if end is not None else first + timedelta(days=1)
        now = self.now()
        days = [first + timedelta(days=n) for n in range((last - first).days)]
        days = [day for day in days if self.is_available(day, now)]
        metric_ids = None if metric is None else frozenset([metric] if isinstance(metric, str) else metric)
        data = self.account_data(account_id)
        return shapes.records(data, days, source, metric_ids, self.restated_days(account_id))

    # -- organizations ---------------------------------------------------------------------------

    def organization_accounts(self, organization_id: str) -> list[str]:
        """The accounts of ``organization_id``, in the order its records list them within a day; ``[]``
        for an organization the emulator does not know (ValueError if the id is not 32 lowercase hex)."""
        if not ORGANIZATION_ID_PATTERN.match(organization_id):
            raise ValueError(f"organization_id must be 32 lowercase hex characters, got {organization_id!r}")
        with self._lock:
            return list(self.organizations.get(organization_id, ()))

    def expected_organization_records(self, organization_id: str, day: date | str) -> list[dict[str, Any]]:
        """The records ``/organizations/{organization_id}/billable/usage`` returns for ``day``: each of its
        accounts' :meth:`expected_records` (v2) for the day, in the organization's account order (empty if
        the day is not yet available or the organization is unknown)."""
        return list(self.iter_expected_organization_records(organization_id, day))

    def iter_expected_organization_records(
        self, organization_id: str, start: date | str, end: date | str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Like :meth:`expected_organization_records` for the days ``[start, end)`` (default: just
        ``start``), lazily: by day, then by account in the organization's order."""
        accounts = self.organization_accounts(organization_id)
        first = as_day(start)
        last = as_day(end) if end is not None else first + timedelta(days=1)

        def records() -> Iterator[dict[str, Any]]:
            for offset in range((last - first).days):
                day = first + timedelta(days=offset)
                for account_id in accounts:
                    yield from self.iter_expected_records(account_id, day)

        return records()

    # -- subscriptions and billing history --------------------------------------------------------

    def expected_subscriptions(self, account_id: str) -> list[dict[str, Any]]:
        """What ``/accounts/{account_id}/subscriptions`` returns now (see ``billing.py``)."""
        return subscriptions(self.account_data(account_id), self.now())

    def expected_billing_history(self, account_id: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """Every item of the account's billing history now, newest first (``history_items`` of them, or
        those of ``status`` among them): what walking ``/accounts/{account_id}/billing/history`` page by
        page collects (without ``history_repeat_pages``)."""
        return billing_history(self.account_data(account_id), self.now(), self.history_items, status)
