"""The :class:`Emulator`: the one object a test or a developer drives.

Start it (in-process, on a free loopback port), point a client at :attr:`Emulator.base_url`, change
its switches, move the clock, script faults, restate days, read the request log and ask for the records
a request should return. This module holds the configuration and the lifecycle and delegates the rest:

* ``settings.py``: the switches (names, reading, validation);
* ``clock.py``: the emulator clock (``emu.clock``);
* ``traffic.py``: faults, rate limit, counters and the request log (``emu.traffic``, what the server
  consults for every request);
* ``restatements.py``: which days are restated;
* ``expected.py``: what a request returns now (``expected_records`` and friends, a base class);
* ``server.py``: the HTTP server thread, with ``api.py`` behind it for the Cloudflare routes and
  ``control.py`` for the control API.
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
from airflow_provider_cfbilling.emulator.server import RunningServer
from airflow_provider_cfbilling.emulator.traffic import Traffic, fresh_copy
from airflow_provider_cfbilling.emulator.urls import LOOPBACK_HOSTS, api_url, control_url


def _day(value: date | str) -> date:
    """A day from a ``date``/``datetime`` (its UTC day) or strict ``YYYY-MM-DD`` text."""
    return as_day(value) if isinstance(value, date) else parse_day(value)


class Emulator(ExpectedData):
    """A local Cloudflare billing API (see ``docs/emulator.md``).

    Besides the methods below it has :meth:`configure` (from ``settings.Switches``) and the questions
    of ``expected.ExpectedData``: :meth:`expected_records`, :meth:`iter_expected_records`,
    :meth:`expected_organization_records`, :meth:`expected_subscriptions`,
    :meth:`expected_billing_history`, :meth:`account_data`, :meth:`anchor_day`, :meth:`billing_period`,
    :meth:`organization_accounts`, :meth:`is_available` and :meth:`available_at`.

    :param seed: data seed; the same seed gives the same records, byte for byte.
    :param availability_delay: how long after the end of a UTC day its usage appears
        (a ``timedelta`` or seconds).
    :param clock: ``None`` for real UTC time, or an instant to freeze the clock at.
    :param clock_running: with ``clock``, let the clock tick on from that instant instead of freezing.
    :param to_inclusive: whether ``to`` is inclusive (``[from, to]``) or exclusive (``[from, to)``).
    :param populate_costs: fill the v2 cost and pricing fields (absent by default, as documented).
    :param extra_fields: add fields no document knows (``x_FutureField`` and later v2 columns).
    :param zones: zones per account; zone-level metrics give one record per zone.
    :param scale: multiplies the number of zones (for large responses).
    :param ignore_metric_filter: make v2 ignore ``metric`` / ``metric_id`` (clients must filter too).
    :param shuffle_records: answer every usage request with its records in another order (a
        deterministic permutation per request), so clients are tested not to rely on order.
    :param history_items: how many items each account's billing history holds (0..1000).
    :param history_repeat_pages: make the billing history misbehave: every page number answers the
        first page (a server that never returns an empty page).
    :param history_hide_page_count: leave ``total_count`` and ``total_pages`` out of the billing
        history's ``result_info``.
    :param organizations: organizations laid over the default one: organization id -> its account ids
        (an entry for :data:`DEFAULT_ORGANIZATION_ID` replaces its accounts); see ``organizations.py``.
    :param credentials: accepted credentials; :meth:`Credentials.default` when omitted.
    :param faults: faults armed from the start (text specs, mappings or :class:`Fault` objects).
    :param rate_limit: ``"MAX/WINDOW/BLOCK"``, a mapping or :class:`RateLimitConfig`; None: no limit.
    :param restatements: days restated from the start (``"ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]"``,
        mappings or :class:`Restatement` objects); see :meth:`restate`.
    :param host: loopback only (``127.0.0.1`` or ``localhost``).
    :param port: 0 picks a free port.
    :param request_log_limit: how many requests the log keeps (oldest dropped first).
    :param handler_timeout: socket timeout for idle keep-alive connections and slow clients.
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
        self._server: RunningServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving in a background thread; returns ``self``."""
        with self._lock:
            if self._server is None:
                self._server = RunningServer(self, (self.host, self.requested_port), self.handler_timeout)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection and join the threads. Safe to call twice."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(timeout)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._server.port

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (keep-alive clients reuse one)."""
        return self._server.connections_accepted if self._server is not None else 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the server root)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/client/v4``: what a Cloudflare client uses as its base URL."""
        return api_url(self.url)

    @property
    def control_url(self) -> str:
        """``http://127.0.0.1:PORT/__emulator__``: the HTTP control API (``EmulatorClient`` drives it)."""
        return control_url(self.url)

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"Emulator({where}, seed={self.seed})"

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
