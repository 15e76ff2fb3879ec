"""The :class:`Emulator`: the one object a test or a developer drives.

Start it (in-process, on a free loopback port), point a client at :attr:`Emulator.base_url`, change
its switches, move the clock, script faults, restate days, read the request log and ask for the records
a request should return. This module holds the lifecycle (start, stop, the port and the URLs); the
rest is ``state.py`` (:class:`~airflow_provider_cfbilling.emulator.state.EmulatorState`, its base
class), which delegates to:

* ``settings.py``: the switches (names, reading, validation);
* ``clock.py``: the emulator clock (``emu.clock``);
* ``traffic.py``: faults, rate limit, counters and the request log (``emu.traffic``, what the server
  consults for every request);
* ``restatements.py``: which days are restated;
* ``expected.py``: what a request returns now (``expected_records`` and friends, a base class);
* ``server.py`` (started here): the HTTP server thread, with ``api.py`` behind it for the Cloudflare
  routes and ``control.py`` for the control API. They are handed an ``EmulatorState`` and never import
  this module.
"""

from __future__ import annotations

from airflow_provider_cfbilling.emulator.server import RunningServer
from airflow_provider_cfbilling.emulator.state import EmulatorState
from airflow_provider_cfbilling.emulator.urls import api_url, control_url


class Emulator(EmulatorState):
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

    _server: RunningServer | None = None

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
