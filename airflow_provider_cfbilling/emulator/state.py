"""Everything the :class:`~airflow_provider_cfbilling.emulator.core.Emulator` knows, without its server.

:class:`EmulatorState` holds the configuration and what changes while the emulator runs: the switches
(``settings.py``), the clock (``clock.py``), faults, rate limit, counters and the request log
(``traffic.py``, what the server consults for every request), the restated days (``restatements.py``)
and, from ``expected.py``, the answers to "what does a request return now".

The HTTP layer (``server.py``, ``api.py``, ``handlers.py``, ``control.py``) is handed an
``EmulatorState`` and never imports ``core.py``; ``core.py`` adds the lifecycle (start, stop, the
port and URLs) on top. So the modules import each other one way only, type annotations included.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from airflow_provider_cfbilling.emulator import settings as switches
from airflow_provider_cfbilling.emulator.clock import EmulatorClock, to_utc
from airflow_provider_cfbilling.emulator.credentials import ACCOUNT_ID_PATTERN, Credentials
from airflow_provider_cfbilling.emulator.data import AccountData, DataSettings
from airflow_provider_cfbilling.emulator.days import as_day
from airflow_provider_cfbilling.emulator.expected import ExpectedData
from airflow_provider_cfbilling.emulator.faults import Fault, RateLimitConfig, fault_from_any
from airflow_provider_cfbilling.emulator.restatements import (
    DEFAULT_CORRECTIONS,
    DEFAULT_FACTOR,
    Restatement,
    RestatementBook,
    parse_day,
)
from airflow_provider_cfbilling.emulator.traffic import Traffic, fresh_copy
from airflow_provider_cfbilling.emulator.urls import LOOPBACK_HOSTS


def _day(value: date | str) -> date:
    """A day from a ``date``/``datetime`` (its UTC day) or strict ``YYYY-MM-DD`` text."""
    return as_day(value) if isinstance(value, date) else parse_day(value)


class EmulatorState(ExpectedData):
    """The emulator without its HTTP server: configuration, switches, clock, traffic and restatements.

    The parameters are :class:`~airflow_provider_cfbilling.emulator.core.Emulator`'s (documented there).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        availability_delay: timedelta | float = timedelta(hours=6),
        clock: datetime | None = None,
        clock_running: bool = False,
        to_inclusive: bool = False,
        populate_costs: bool = False,
        extra_fields: bool = False,
        zones: int = 3,
        scale: int = 1,
        ignore_metric_filter: bool = False,
        shuffle_records: bool = False,
        history_items: int = 25,
        history_repeat_pages: bool = False,
        history_hide_page_count: bool = False,
        organizations: Mapping[str, Iterable[str]] | None = None,
        credentials: Credentials | None = None,
        faults: Iterable[str | Mapping[str, Any] | Fault] = (),
        rate_limit: str | Mapping[str, Any] | RateLimitConfig | None = None,
        restatements: Iterable[str | Mapping[str, Any] | Restatement] = (),
        host: str = "127.0.0.1",
        port: int = 0,
        request_log_limit: int = 10_000,
        handler_timeout: float = 30.0,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the emulator listens on loopback only; host must be one of {LOOPBACK_HOSTS}")
        self.host = "127.0.0.1"
        self.requested_port = int(port)
        self.handler_timeout = float(handler_timeout)
        self.credentials = credentials if credentials is not None else Credentials.default()
        self._init_switches(
            {
                "seed": seed,
                "availability_delay": availability_delay,
                "to_inclusive": to_inclusive,
                "populate_costs": populate_costs,
                "extra_fields": extra_fields,
                "zones": zones,
                "scale": scale,
                "ignore_metric_filter": ignore_metric_filter,
                "shuffle_records": shuffle_records,
                "history_items": history_items,
                "history_repeat_pages": history_repeat_pages,
                "history_hide_page_count": history_hide_page_count,
                "organizations": organizations,
            }
        )
        self._initial_settings = self._switches()

        self.clock = EmulatorClock(clock, running=clock_running)
        self._initial_clock = (to_utc(clock) if clock is not None else None, clock_running)
        self._lock = threading.RLock()
        #: Faults, rate limit, counters and request log: what the server consults for every request.
        self.traffic = Traffic(
            now=self.now,
            secrets=lambda: self.credentials.secrets(),
            lock=self._lock,
            faults=[fault if isinstance(fault, Fault) else fault_from_any(fault) for fault in faults],
            rate_limit=RateLimitConfig.from_any(rate_limit) if rate_limit is not None else None,
            log_limit=request_log_limit,
        )
        self._data_cache: dict[tuple[DataSettings, str], AccountData] = {}
        self._restatements = RestatementBook(
            lock=self._lock, restatements=[Restatement.from_any(item) for item in restatements]
        )

    # -- settings --------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The current switches as plain JSON-able values, and the rate limit's state (``rate_limit``)."""
        return {**switches.to_json(self._switches()), "rate_limit": self.traffic.rate_limit_state()}

    # -- clock -----------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The emulator's current time (aware UTC)."""
        return self.clock.now()

    def set_clock(self, value: datetime, *, running: bool = False) -> None:
        """Freeze the clock at ``value`` (naive = UTC), or let it run on from there with ``running=True``."""
        self.clock.set(value, running=running)

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def use_real_clock(self) -> None:
        self.clock.use_real_time()

    # -- restatements ----------------------------------------------------------------------------

    def restate(
        self,
        account_id: str,
        day: date | str,
        *,
        factor: float = DEFAULT_FACTOR,
        corrections: int = DEFAULT_CORRECTIONS,
    ) -> dict[str, Any]:
        """Restate ``account_id``'s UTC ``day``, the way Cloudflare revises usage after publishing it.

        From now on every usage route of the account (v2 and the three PayGo paths) and
        :meth:`expected_records` serve that day changed: every regular quantity multiplied by
        ``factor`` (> 0, at most 1000) and ``corrections`` (0..1000) correction rows added. v2 shows
        them as ``ChargeClass: "Correction"`` rows; PayGo rows fold them into the day's quantities, and
        the ``Cumulated*`` sums of the later days of the billing period follow. Restating a day again
        stacks: factors multiply, correction rows add up (the earlier ones stay as they were).
        ValueError when the account id, day or numbers are invalid, or nothing would change.
        Returns what the day now stands for (as in :attr:`restatements`).
        """
        return self._restatements.add(Restatement(account_id, _day(day), factor, corrections))

    def add_restatement(self, spec: str | Mapping[str, Any] | Restatement) -> dict[str, Any]:
        """:meth:`restate` from the text form (``"ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]"``), a mapping of
        its fields or a :class:`Restatement`."""
        return self._restatements.add(Restatement.from_any(spec))

    @property
    def restatements(self) -> list[dict[str, Any]]:
        """Every restated day, by account and day: ``account_id``, ``day``, the combined ``factor`` and
        ``corrections``, and ``revisions`` (how many restatements made it)."""
        return self._restatements.listing()

    def restated_days(self, account_id: str) -> dict[date, Restatement]:
        """A snapshot of ``account_id``'s restated days: day -> the day's combined restatement."""
        return self._restatements.of_account(account_id)

    def clear_restatements(self, account_id: str | None = None, day: date | str | None = None) -> int:
        """Undo restatements: all of them, or only ``account_id``'s, or only one ``day`` (of
        ``account_id`` if given, else of every account). Returns how many days were cleared."""
        if account_id is not None and not ACCOUNT_ID_PATTERN.match(account_id):
            raise ValueError(f"account_id must be 32 lowercase hex characters, got {account_id!r}")
        return self._restatements.clear(account_id, None if day is None else _day(day))

    # -- faults and rate limit -------------------------------------------------------------------

    def add_fault(
        self,
        route: str = "*",
        kind: str = "status",
        *,
        status: int | None = None,
        code: int | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        retry_after_http_date: bool = False,
        seconds: float = 0.0,
        mode: str = "length",
        nth: int | None = None,
        count: int | None = None,
        from_nth: int | None = None,
    ) -> Fault:
        """Arm a fault (see ``faults.py`` for kinds and selectors). Requests are counted per fault from now:
        ``nth=3`` is the third matching request after this call, ``count=2`` the next two, ``from_nth=5``
        every one from the fifth; none of them: every matching request until :meth:`clear_faults`."""
        fault = Fault(
            route=route,
            kind=kind,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
            retry_after_http_date=retry_after_http_date,
            seconds=seconds,
            mode=mode,
            nth=nth,
            count=count,
            from_nth=from_nth,
        )
        return self.traffic.arm(fault)

    def add_fault_spec(self, spec: str | Mapping[str, Any] | Fault) -> Fault:
        """Arm a fault from its text form (``"v2:nth=3:status=503"``), a mapping of fields or a :class:`Fault`."""
        return self.traffic.arm(fresh_copy(spec) if isinstance(spec, Fault) else fault_from_any(spec))

    def clear_faults(self) -> None:
        self.traffic.clear_faults()

    @property
    def faults(self) -> list[dict[str, Any]]:
        return self.traffic.faults

    def set_rate_limit(
        self,
        max_requests: int | None,
        window_seconds: float = 300.0,
        block_seconds: float = 300.0,
        *,
        retry_after_http_date: bool = False,
    ) -> None:
        """Cloudflare-like limit: after ``max_requests`` in ``window_seconds`` (emulator clock) every request
        gets 429 for ``block_seconds`` with ``Retry-After`` = the seconds left. ``None`` disables it."""
        config = None
        if max_requests is not None:
            config = RateLimitConfig(int(max_requests), window_seconds, block_seconds, retry_after_http_date)
        self.traffic.set_rate_limit(config)

    def route_counts(self) -> dict[str, int]:
        """How many requests each route got since the start or the last :meth:`reset`."""
        return self.traffic.route_counts()

    # -- request log -----------------------------------------------------------------------------

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """A copy of the log: ``method``, ``path``, ``query``, ``auth_scheme``, ``status`` (None when the
        connection was dropped), plus ``route``, ``fault`` (kind or None) and ``time`` (emulator clock)."""
        return self.traffic.request_log

    def clear_request_log(self) -> None:
        self.traffic.clear_request_log()

    # -- reset -----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Back to how the emulator started: settings, clock, faults, rate limit and restatements as
        configured at construction (counters and blocks cleared; restatements made since are gone),
        and an empty request log."""
        with self._lock:
            for name, value in self._initial_settings.items():
                setattr(self, name, value)
            start, running = self._initial_clock
            if start is None:
                self.clock.use_real_time()
            else:
                self.clock.set(start, running=running)
            self.traffic.reset()
            self._restatements.reset()
