"""A small client of the emulator's control API, for tests and tools that drive an emulator running in
another process (``python -m airflow_provider_cfbilling.emulator``, the demo, a deployment test)::

    with EmulatorClient("http://127.0.0.1:8787/client/v4") as emulator:
        emulator.set_clock("2026-01-11T06:00:00Z")
        emulator.add_faults("v2:nth=1:status=503")
        records = emulator.expected(account_id=DEFAULT_ACCOUNT_ID, day="2026-01-10")

Every method is one request to a route of ``control.py`` (whose docstring lists the routes and their
payloads); a non-2xx answer raises :class:`EmulatorControlError` with the control API's own message.
The client only talks to the loopback emulator URL it is given: no other host, no proxy from the
environment, no redirects.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

from airflow_provider_cfbilling.emulator.urls import api_url, control_url, root_of

#: Host names the client accepts in the URL it is given (the emulator listens on loopback only).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class EmulatorControlError(RuntimeError):
    """The control API answered a request with an error (or not with JSON).

    :ivar status: the HTTP status.
    :ivar message: the control API's ``{"error": ...}`` message (or the start of the body).
    :ivar method: the request's method; :ivar url: its URL.
    """

    def __init__(self, method: str, url: str, status: int, message: str) -> None:
        super().__init__(f"emulator control API: {method} {url} answered {status}: {message}")
        self.method = method
        self.url = url
        self.status = status
        self.message = message


def _instant(value: datetime | str) -> str:
    if isinstance(value, str):
        return value
    aware = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return aware.isoformat().replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """``value`` in a form JSON and query strings take: days as ``YYYY-MM-DD``, delays in seconds."""
    if isinstance(value, datetime):
        return _instant(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return value


class EmulatorClient:
    """Drive a running emulator through its control API (``/__emulator__``).

    :param url: the emulator's base URL (``http://127.0.0.1:PORT/client/v4``), its control URL
        (``.../__emulator__``) or its root; loopback hosts only (ValueError otherwise).
    :param timeout: seconds per request.
    :param verify: TLS verification, as httpx takes it (``True``, ``False`` or a CA bundle path); the
        emulator itself speaks plain HTTP.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, verify: bool | str = True) -> None:
        root = root_of(url)
        host = urlsplit(root).hostname
        if host not in LOOPBACK_NAMES:
            raise ValueError(f"the emulator runs on loopback only; {url!r} is not a loopback URL")
        self.base_url = api_url(root)
        self.control_url = control_url(root)
        tls: bool | ssl.SSLContext
        if isinstance(verify, str):
            if os.path.isdir(verify):
                tls = ssl.create_default_context(capath=verify)
            else:
                tls = ssl.create_default_context(cafile=verify)
        else:
            tls = verify
        self._http = httpx.Client(
            base_url=self.control_url, timeout=timeout, verify=tls, trust_env=False, follow_redirects=False
        )

    # -- plumbing --------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        content = None if body is None else json.dumps(body, default=_plain).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        query = {name: _plain(value) for name, value in (params or {}).items() if value is not None}
        response = self._http.request(method, "/" + path, content=content, headers=headers, params=query)
        if not response.is_success:
            try:
                message = str(response.json()["error"])
            except (ValueError, KeyError, TypeError):
                message = response.text[:500] or response.reason_phrase
            raise EmulatorControlError(method, str(response.url), response.status_code, message)
        return response

    def _json(self, method: str, path: str, *, body: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        response = self._send(method, path, body=body, params=params)
        try:
            return response.json()
        except ValueError:
            raise EmulatorControlError(method, str(response.url), response.status_code, "the answer is not JSON")

    def close(self) -> None:
        """Close the connection pool (the emulator keeps running)."""
        self._http.close()

    def __enter__(self) -> EmulatorClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmulatorClient({self.control_url})"

    # -- health, clock, request log --------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"ok": true, "base_url": ..., "now": ...}``."""
        return dict(self._json("GET", "health"))

    def now(self) -> str:
        """The emulator clock, e.g. ``"2026-01-10T12:00:00Z"``."""
        return str(self._json("GET", "clock")["now"])

    def set_clock(self, instant: datetime | str, *, running: bool | None = None) -> str:
        """Freeze the clock at ``instant`` (a naive datetime is UTC; text as ``2026-01-10T12:00:00Z``), or
        with ``running=True`` let it tick on from there. Returns the new "now"."""
        body: dict[str, Any] = {"set": _instant(instant)}
        if running is not None:
            body["running"] = bool(running)
        return str(self._json("POST", "clock", body=body)["now"])

    def advance_clock(self, seconds: float) -> str:
        """Move the clock by ``seconds`` (negative: back). Returns the new "now"."""
        return str(self._json("POST", "clock", body={"advance_seconds": float(seconds)})["now"])

    def use_real_clock(self) -> str:
        """Back to the machine's UTC time. Returns the new "now"."""
        return str(self._json("POST", "clock", body={"real": True})["now"])

    def requests(self) -> list[dict[str, Any]]:
        """The request log (oldest first; see the emulator's ``request_log``)."""
        return list(self._json("GET", "requests"))

    def clear_requests(self) -> None:
        """Empty the request log."""
        self._send("DELETE", "requests")

    # -- faults, switches, reset -----------------------------------------------------------------

    def add_faults(
        self,
        *faults: str | Mapping[str, Any],
        replace: bool = False,
        rate_limit: str | Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Arm faults (specs such as ``"v2:nth=3:status=503"`` or mappings of fault fields), after
        clearing the armed ones with ``replace=True``; set the rate limit with ``rate_limit``
        (``"MAX/WINDOW/BLOCK"`` or a mapping; :meth:`set_rate_limit` also removes it). All faults are
        checked before any is armed. Returns ``{"faults", "rate_limit", "route_counts"}``."""
        body: dict[str, Any] = {"faults": list(faults), "replace": bool(replace)}
        if rate_limit is not None:
            body["rate_limit"] = rate_limit
        return dict(self._json("POST", "faults", body=body))

    def set_rate_limit(self, rate_limit: str | Mapping[str, Any] | None) -> dict[str, Any]:
        """Replace the rate limit (``"MAX/WINDOW/BLOCK"`` or a mapping), or remove it with None.
        Returns ``{"faults", "rate_limit", "route_counts"}``."""
        return dict(self._json("POST", "faults", body={"rate_limit": rate_limit}))

    def faults(self) -> dict[str, Any]:
        """``{"faults": [...], "rate_limit": ... | None, "route_counts": {...}}``."""
        return dict(self._json("GET", "faults"))

    def clear_faults(self) -> None:
        """Disarm every fault (the rate limit stays)."""
        self._send("DELETE", "faults")

    def reset(self) -> None:
        """Back to the startup state: switches, clock, faults, rate limit, restatements; empty log."""
        self._send("POST", "reset")

    def config(self, **switches: Any) -> dict[str, Any]:
        """The switches; with ``switches`` (e.g. ``to_inclusive=True``, ``availability_delay=3600`` or a
        ``timedelta``), change them first, all or nothing. Returns the switches as they now are."""
        if not switches:
            return dict(self._json("GET", "config"))
        return dict(self._json("POST", "config", body=switches))

    # -- expected records ------------------------------------------------------------------------

    @staticmethod
    def _expected_params(
        account_id: str | None, organization_id: str | None, day: date | str | None, source: str, params: Any
    ) -> dict[str, Any]:
        return {"account_id": account_id, "organization_id": organization_id, "day": day, "source": source, **params}

    def expected(
        self,
        *,
        account_id: str | None = None,
        organization_id: str | None = None,
        day: date | str | None = None,
        source: str = "v2",
        **params: Any,
    ) -> Any:
        """What the emulator serves, parsed: ``account_id`` + ``day`` (+ ``source``: ``v2``, ``paygo``,
        ``paygo-usage``, ``billable-usage``; ``metric=`` one id or a list) for a day's records;
        ``organization_id`` + ``day`` for an organization's; ``account_id`` with ``source="subscriptions"``
        or ``source="billing-history"`` (``status=``) for those. A list of records (with ``format="jsonl"``
        too, read line by line)."""
        query = self._expected_params(account_id, organization_id, day, source, params)
        response = self._send("GET", "expected", params=query)
        try:
            if response.headers.get("content-type", "").startswith("application/x-ndjson"):
                return [json.loads(line) for line in response.text.splitlines() if line]
            return response.json()
        except ValueError:
            raise EmulatorControlError("GET", str(response.url), response.status_code, "the answer is not JSON")

    def expected_bytes(
        self,
        *,
        account_id: str | None = None,
        organization_id: str | None = None,
        day: date | str | None = None,
        source: str = "v2",
        **params: Any,
    ) -> bytes:
        """Like :meth:`expected`, the raw body (e.g. ``format="jsonl"``: one record per line, as a
        landing task writes them)."""
        query = self._expected_params(account_id, organization_id, day, source, params)
        return self._send("GET", "expected", params=query).content

    # -- restatements ----------------------------------------------------------------------------

    def restate(self, *restatements: str | Mapping[str, Any]) -> Any:
        """Restate days: specs ``"ACCOUNT:DAY[:FACTOR[:CORRECTIONS]]"`` or mappings ``{"account_id",
        "day", "factor", "corrections"}`` (all checked before any is applied). Returns every restated
        day afterwards (as :meth:`restatements`)."""
        if not restatements:
            raise ValueError("restate() needs at least one restatement")
        return self._json("POST", "restate", body=list(restatements))["restatements"]

    def restatements(self) -> Any:
        """Every restated day: ``[{"account_id", "day", "factor", "corrections", "revisions"}, ...]``."""
        return self._json("GET", "restate")["restatements"]

    def clear_restatements(self, *, account_id: str | None = None, day: date | str | None = None) -> None:
        """Undo restatements: all, or only ``account_id``'s, or only one ``day``."""
        self._send("DELETE", "restate", params={"account_id": account_id, "day": day})
