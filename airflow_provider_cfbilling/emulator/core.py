"""The :class:`Emulator`: configuration, state (clock, faults, rate limit, restated days, request log)
and lifecycle.

One object holds everything a test or a developer drives: start it (in-process, on a free loopback
port), point a client at :attr:`Emulator.base_url`, move the clock, script faults, restate days, read
the request log and ask for the records a request should return. The HTTP plumbing lives in
``server.py``, the Cloudflare behaviour in ``api.py`` and the data in ``data.py``.
"""

from __future__ import annotations

import copy
import re
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from airflow_provider_cfbilling.emulator.api import API_PREFIX, utc_midnight
from airflow_provider_cfbilling.emulator.billing import MAX_HISTORY_ITEMS, billing_history, subscriptions
from airflow_provider_cfbilling.emulator.clock import EmulatorClock, format_instant, to_utc
from airflow_provider_cfbilling.emulator.credentials import (
    ACCOUNT_ID_PATTERN,
    EMAIL_PATTERN,
    GLOBAL_KEY_PATTERN,
    TOKEN_PATTERN,
    Credentials,
)
from airflow_provider_cfbilling.emulator.data import SOURCES, AccountData, DataSettings
from airflow_provider_cfbilling.emulator.faults import Fault, RateLimitConfig, RateLimiter, fault_from_any
from airflow_provider_cfbilling.emulator.organizations import (
    ORGANIZATION_ID_PATTERN,
    Organizations,
    organizations_over_default,
)
from airflow_provider_cfbilling.emulator.restatements import (
    DEFAULT_CORRECTIONS,
    DEFAULT_FACTOR,
    Restatement,
    combine,
    parse_day,
)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
REDACTED = "[REDACTED]"
_SENSITIVE_NAME = re.compile(r"token|key|secret|passw|auth|email|signature|credential|session", re.I)
_SETTINGS = (
    "seed",
    "availability_delay",
    "to_inclusive",
    "populate_costs",
    "extra_fields",
    "zones",
    "scale",
    "ignore_metric_filter",
    "shuffle_records",
    "history_items",
    "history_repeat_pages",
    "history_hide_page_count",
    "organizations",
)


def _as_delay(value: timedelta | float | int) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return timedelta(seconds=float(value))


def _as_day(value: date | str) -> date:
    if isinstance(value, datetime):
        return to_utc(value).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


class Emulator:
    """A local Cloudflare billing API (see ``docs/emulator.md``).

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

        self.seed = int(seed)
        self.availability_delay = _as_delay(availability_delay)
        self.to_inclusive = bool(to_inclusive)
        self.populate_costs = bool(populate_costs)
        self.extra_fields = bool(extra_fields)
        self.zones = int(zones)
        self.scale = int(scale)
        self.ignore_metric_filter = bool(ignore_metric_filter)
        self.shuffle_records = bool(shuffle_records)
        self.history_items = int(history_items)
        self.history_repeat_pages = bool(history_repeat_pages)
        self.history_hide_page_count = bool(history_hide_page_count)
        self.organizations: Organizations = organizations_over_default(organizations)
        self._validate_settings()

        self.clock = EmulatorClock(clock, running=clock_running)
        self._initial_clock = (to_utc(clock) if clock is not None else None, clock_running)

        self._lock = threading.RLock()
        self._initial_faults = [self._copy_fault(fault_from_any(f) if not isinstance(f, Fault) else f) for f in faults]
        self._faults: list[Fault] = []
        self._fault_ids = 0
        self._route_counts: Counter[str] = Counter()
        self._initial_rate_limit = RateLimitConfig.from_any(rate_limit) if rate_limit is not None else None
        self._rate_limiter: RateLimiter | None = None
        self._log: deque[dict[str, Any]] = deque(maxlen=max(1, int(request_log_limit)))
        self._initial_settings = {name: getattr(self, name) for name in _SETTINGS}
        self._data_cache: dict[tuple[DataSettings, str], AccountData] = {}
        self._restore_faults_and_limits()
        # Restated days: (account, day) -> its restatements in the order they were made.
        self._restatements: dict[tuple[str, date], list[Restatement]] = {}
        self._shuffled_responses = 0
        for restatement in restatements:
            self._add_restatement(Restatement.from_any(restatement))
        self._initial_restatements = copy.deepcopy(self._restatements)

        self._server: Any = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Emulator:
        """Start serving in a background thread; returns ``self``."""
        from airflow_provider_cfbilling.emulator.server import EmulatorHTTPServer

        with self._lock:
            if self._server is not None:
                return self
            server = EmulatorHTTPServer(self, (self.host, self.requested_port), self.handler_timeout)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.02},
                name=f"cfbilling-emulator-server-{server.server_address[1]}",
                daemon=True,
            )
            self._server = server
            self._thread = thread
            thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection and join the threads. Safe to call twice."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
        if server is None:
            return
        server.stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections(timeout)
        if thread is not None:
            thread.join(timeout)

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
        return int(self._server.server_address[1])

    @property
    def connections_accepted(self) -> int:
        """How many TCP connections the server has accepted (keep-alive clients reuse one)."""
        return int(self._server.connections_accepted) if self._server is not None else 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (the server root)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/client/v4``: what a Cloudflare client uses as its base URL."""
        return self.url + API_PREFIX

    @property
    def control_url(self) -> str:
        """``http://127.0.0.1:PORT/__emulator__``: the HTTP control API."""
        return self.url + "/__emulator__"

    def __repr__(self) -> str:
        where = self.base_url if self.running else "stopped"
        return f"Emulator({where}, seed={self.seed})"

    # -- settings --------------------------------------------------------------------------------

    def _validate_settings(self) -> None:
        if self.zones < 0 or self.scale < 1:
            raise ValueError("zones must be >= 0 and scale >= 1")
        if not 0 <= self.history_items <= MAX_HISTORY_ITEMS:
            raise ValueError(f"history_items must be from 0 to {MAX_HISTORY_ITEMS}")

    def configure(self, **settings: Any) -> None:
        """Change switches at runtime: ``seed``, ``availability_delay`` (timedelta or seconds),
        ``to_inclusive``, ``populate_costs``, ``extra_fields``, ``zones``, ``scale``, ``ignore_metric_filter``,
        ``shuffle_records``, ``history_items``, ``history_repeat_pages``, ``history_hide_page_count`` and
        ``organizations`` (laid over the default organization, replacing earlier definitions). Nothing
        changes if any value is invalid (ValueError)."""
        unknown = set(settings) - set(_SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}; known: {list(_SETTINGS)}")
        with self._lock:
            before = {name: getattr(self, name) for name in _SETTINGS}
            try:
                for name, value in settings.items():
                    if name == "availability_delay":
                        self.availability_delay = _as_delay(value)
                    elif name == "organizations":
                        self.organizations = organizations_over_default(value)
                    elif name in ("seed", "zones", "scale", "history_items"):
                        setattr(self, name, int(value))
                    else:
                        setattr(self, name, bool(value))
                self._validate_settings()
            except (ValueError, TypeError):
                for name, value in before.items():
                    setattr(self, name, value)
                raise

    def settings(self) -> dict[str, Any]:
        """The current switches as plain JSON-able values."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _SETTINGS}
        values["availability_delay"] = self.availability_delay.total_seconds()
        values["organizations"] = {org: list(accounts) for org, accounts in self.organizations.items()}
        values["rate_limit"] = self._rate_limiter.describe() if self._rate_limiter else None
        return values

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

    def is_available(self, day: date, now: datetime | None = None) -> bool:
        """Whether ``day``'s usage is published at ``now`` (default: the emulator clock)."""
        moment = now if now is not None else self.now()
        return moment >= utc_midnight(day + timedelta(days=1)) + self.availability_delay

    def available_at(self, day: date | str) -> datetime:
        """The instant ``day``'s usage appears."""
        return utc_midnight(_as_day(day) + timedelta(days=1)) + self.availability_delay

    # -- data ------------------------------------------------------------------------------------

    def data_settings(self) -> DataSettings:
        return DataSettings(self.seed, self.zones, self.scale, self.populate_costs, self.extra_fields)

    def account_data(self, account_id: str) -> AccountData:
        """The synthetic facts of ``account_id`` under the current settings."""
        if not ACCOUNT_ID_PATTERN.match(account_id):
            raise ValueError("account_id must be 32 lowercase hex characters")
        key = (self.data_settings(), account_id)
        with self._lock:
            data = self._data_cache.get(key)
            if data is None:
                if len(self._data_cache) >= 64:
                    self._data_cache.clear()
                data = self._data_cache[key] = AccountData(key[0], account_id)
        return data

    def anchor_day(self, account_id: str) -> int:
        """The account's billing-cycle anchor day-of-month (1..28)."""
        return self.account_data(account_id).anchor_day

    def billing_period(self, account_id: str, day: date | str) -> tuple[date, date]:
        """The billing period ``[start, end)`` of ``account_id`` that contains ``day``."""
        return self.account_data(account_id).billing_period(_as_day(day))

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
        first = _as_day(start)
        last = _as_day(end) if end is not None else first + timedelta(days=1)
        now = self.now()
        days = [first + timedelta(days=n) for n in range((last - first).days)]
        days = [day for day in days if self.is_available(day, now)]
        metric_ids = None if metric is None else frozenset([metric] if isinstance(metric, str) else metric)
        data = self.account_data(account_id)
        return data.records(days, source, metric_ids, self.restated_days(account_id))

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
        first = _as_day(start)
        last = _as_day(end) if end is not None else first + timedelta(days=1)

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

    def next_shuffle_key(self) -> str:
        """A fresh seed for one shuffled response (``shuffle_records``): the data seed and a counter of
        shuffled responses, so the n-th shuffled response after a start or :meth:`reset` is always
        ordered the same way."""
        with self._lock:
            self._shuffled_responses += 1
            return f"{self.seed}|{self._shuffled_responses}"

    # -- restatements ----------------------------------------------------------------------------

    def _add_restatement(self, restatement: Restatement) -> dict[str, Any]:
        if not restatement.changes_anything:
            raise ValueError("a restatement must change something: a factor other than 1 or corrections > 0")
        key = (restatement.account_id, restatement.day)
        with self._lock:
            revisions = [*self._restatements.get(key, []), restatement]
            combined = combine(revisions)  # ValueError (and nothing stored) if it goes out of bounds
            self._restatements[key] = revisions
        return {**combined.to_dict(), "revisions": len(revisions)}

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
        restatement = Restatement(
            account_id, _as_day(day) if isinstance(day, date) else parse_day(day), factor, corrections
        )
        return self._add_restatement(restatement)

    def add_restatement(self, spec: str | Mapping[str, Any] | Restatement) -> dict[str, Any]:
        """:meth:`restate` from the text form (``"ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]"``), a mapping of
        its fields or a :class:`Restatement`."""
        restatement = Restatement.from_any(spec)
        return self.restate(
            restatement.account_id, restatement.day, factor=restatement.factor, corrections=restatement.corrections
        )

    @property
    def restatements(self) -> list[dict[str, Any]]:
        """Every restated day, by account and day: ``account_id``, ``day``, the combined ``factor`` and
        ``corrections``, and ``revisions`` (how many restatements made it)."""
        with self._lock:
            items = sorted(self._restatements.items())
        return [{**combine(revisions).to_dict(), "revisions": len(revisions)} for _, revisions in items]

    def restated_days(self, account_id: str) -> dict[date, Restatement]:
        """A snapshot of ``account_id``'s restated days: day -> the day's combined restatement."""
        with self._lock:
            return {
                day: combine(revisions)
                for (account, day), revisions in self._restatements.items()
                if account == account_id
            }

    def clear_restatements(self, account_id: str | None = None, day: date | str | None = None) -> int:
        """Undo restatements: all of them, or only ``account_id``'s, or only one ``day`` (of
        ``account_id`` if given, else of every account). Returns how many days were cleared."""
        if account_id is not None and not ACCOUNT_ID_PATTERN.match(account_id):
            raise ValueError(f"account_id must be 32 lowercase hex characters, got {account_id!r}")
        wanted_day = None if day is None else _as_day(day) if isinstance(day, date) else parse_day(day)
        with self._lock:
            cleared = [
                key
                for key in self._restatements
                if (account_id is None or key[0] == account_id) and (wanted_day is None or key[1] == wanted_day)
            ]
            for key in cleared:
                del self._restatements[key]
        return len(cleared)

    # -- faults and rate limit -------------------------------------------------------------------

    @staticmethod
    def _copy_fault(fault: Fault) -> Fault:
        fresh = copy.copy(fault)
        fresh.seen = 0
        fresh.fired = 0
        return fresh

    def _restore_faults_and_limits(self) -> None:
        with self._lock:
            self._faults = []
            self._route_counts.clear()
            for fault in self._initial_faults:
                self._arm(self._copy_fault(fault))
            limit = self._initial_rate_limit
            self._rate_limiter = RateLimiter(limit) if limit is not None else None

    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._fault_ids += 1
            fault.id = self._fault_ids
            self._faults.append(fault)
        return fault

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
        return self._arm(fault)

    def add_fault_spec(self, spec: str | Mapping[str, Any] | Fault) -> Fault:
        """Arm a fault from its text form (``"v2:nth=3:status=503"``), a mapping of fields or a :class:`Fault`."""
        if isinstance(spec, Fault):
            return self._arm(self._copy_fault(spec))
        return self._arm(fault_from_any(spec))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = []

    @property
    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [fault.to_dict() for fault in self._faults]

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
        with self._lock:
            if max_requests is None:
                self._rate_limiter = None
            else:
                config = RateLimitConfig(int(max_requests), window_seconds, block_seconds, retry_after_http_date)
                self._rate_limiter = RateLimiter(config)

    def select_faults(self, route: str) -> tuple[float, Fault | None]:
        """Count one request on ``route``; return (total latency, the fault that answers it or None)."""
        latency = 0.0
        action: Fault | None = None
        with self._lock:
            self._route_counts[route] += 1
            for fault in self._faults:
                if not fault.applies_to(route) or not fault.observe():
                    continue
                fault.fired += 1
                if fault.kind == "latency":
                    latency += fault.seconds
                elif action is None:
                    action = fault
        return min(latency, 600.0), action

    def check_rate_limit(self) -> tuple[float, bool] | None:
        """Count one request against the rate limit: None, or (seconds to wait, send an HTTP date)."""
        limiter = self._rate_limiter
        if limiter is None:
            return None
        wait = limiter.check(self.now())
        if wait is None:
            return None
        return wait, limiter.config.retry_after_http_date

    def route_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._route_counts)

    # -- request log -----------------------------------------------------------------------------

    def _secret_values(self, extra: Iterable[str]) -> list[str]:
        return [value for value in (*self.credentials.secrets(), *extra) if value and len(value) >= 6]

    def _is_secret(self, text: str, secrets: list[str]) -> bool:
        if not text:
            return False
        if TOKEN_PATTERN.match(text) or GLOBAL_KEY_PATTERN.match(text) or EMAIL_PATTERN.match(text):
            return True
        lowered = text.lower()
        return any(secret.lower() in lowered for secret in secrets)

    def redact_query(self, query: Mapping[str, list[str]], presented: Iterable[str] = ()) -> dict[str, list[str]]:
        """A copy of ``query`` without anything that looks like a credential."""
        secrets = self._secret_values(presented)
        clean: dict[str, list[str]] = {}
        for name, values in query.items():
            key = REDACTED if self._is_secret(name, secrets) else name
            if key != REDACTED and _SENSITIVE_NAME.search(name):
                clean.setdefault(key, []).extend(REDACTED for _ in values)
                continue
            clean.setdefault(key, []).extend(REDACTED if self._is_secret(v, secrets) else v for v in values)
        return clean

    def redact_path(self, path: str, presented: Iterable[str] = ()) -> str:
        secrets = self._secret_values(presented)
        return "/".join(REDACTED if self._is_secret(part, secrets) else part for part in path.split("/"))

    def record_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._log.append(entry)

    @property
    def request_log(self) -> list[dict[str, Any]]:
        """A copy of the log: ``method``, ``path``, ``query``, ``auth_scheme``, ``status`` (None when the
        connection was dropped), plus ``route``, ``fault`` (kind or None) and ``time`` (emulator clock)."""
        with self._lock:
            return copy.deepcopy(list(self._log))

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()

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
            self._restore_faults_and_limits()
            self._restatements = copy.deepcopy(self._initial_restatements)
            self._shuffled_responses = 0
            self._log.clear()

    def describe_clock(self) -> dict[str, str]:
        return {"now": format_instant(self.now()), "mode": self.clock.mode}
