"""The HTTP control API under ``/__emulator__/``: drive the emulator from another process.

Loopback clients only. ``client.py`` (:class:`~airflow_provider_cfbilling.emulator.client.EmulatorClient`)
speaks it from Python. Every answer is plain JSON (no Cloudflare envelope); errors are
``{"error": "..."}`` with status 400 (bad input) or 404 (unknown control path).

========  =========================  =======================================================================
method    path                       what
========  =========================  =======================================================================
GET       /__emulator__/health       ``{"ok": true, "base_url": ..., "now": ...}``
GET       /__emulator__/requests     the request log (a JSON list); DELETE empties it
GET/POST  /__emulator__/clock        read; or ``{"set": iso, "running": false}``, ``{"advance_seconds": n}``,
                                     ``{"real": true}``
GET/POST  /__emulator__/faults       read; or add ``{"faults": [spec | {fields}], "replace": false,
                                     "rate_limit": "N/W/B" | {...} | null}`` (a bare spec string or list
                                     works too); DELETE clears the faults
POST      /__emulator__/reset        back to the startup configuration, empty log
GET       /__emulator__/expected     ``?account_id=&day=&source=v2|paygo|paygo-usage|billable-usage``
                                     ``[&metric=..][&format=json|jsonl]``: that day's records;
                                     ``?organization_id=&day=``: the organization's v2 records of the day;
                                     ``?account_id=&source=subscriptions``: the subscriptions;
                                     ``?account_id=&source=billing-history[&status=]``: the whole history
GET/POST  /__emulator__/config       read or change switches (``{"to_inclusive": true, "shuffle_records": true,
                                     "history_items": 3, "organizations": {org: [accounts]}}``)
GET/POST  /__emulator__/restate      list restated days; or restate: ``{"account_id": ..., "day": "YYYY-MM-DD",
                                     "factor": 1.1, "corrections": 1}``, a spec ``"ACCOUNT:DAY[:F[:N]]"``,
                                     or a list of them; DELETE clears (``?account_id=&day=`` narrow it)
========  =========================  =======================================================================
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling.emulator.clock import parse_instant
from airflow_provider_cfbilling.emulator.faults import RateLimitConfig, fault_from_any
from airflow_provider_cfbilling.emulator.restatements import Restatement
from airflow_provider_cfbilling.emulator.urls import CONTROL_PREFIX, LOOPBACK_CLIENTS

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.state import EmulatorState

_JSON = "application/json"


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _json(payload: Any, status: int = 200) -> tuple[int, bytes, str]:
    return status, json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(), _JSON


def _load(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError:
        raise _ControlError(400, "the body must be JSON")


def _one(query: Mapping[str, list[str]], name: str, default: str | None = None) -> str:
    values = query.get(name)
    if not values or not values[0]:
        if default is None:
            raise _ControlError(400, f"missing query parameter {name!r}")
        return default
    return values[0]


def _faults_state(emu: EmulatorState) -> dict[str, Any]:
    return {"faults": emu.faults, "rate_limit": emu.settings()["rate_limit"], "route_counts": emu.route_counts()}


def _post_faults(emu: EmulatorState, payload: Any) -> None:
    if isinstance(payload, (str, list)):
        payload = {"faults": payload}
    if not isinstance(payload, Mapping):
        raise _ControlError(400, "send a fault spec, a list of them, or an object with 'faults'")
    specs = payload.get("faults", [])
    if isinstance(specs, (str, Mapping)):
        specs = [specs]
    faults = [fault_from_any(spec) for spec in specs]  # validate all before arming any
    if payload.get("replace") or payload.get("clear"):
        emu.clear_faults()
    for fault in faults:
        emu.add_fault_spec(fault)
    if "rate_limit" in payload:
        limit = payload["rate_limit"]
        if limit is None:
            emu.set_rate_limit(None)
        else:
            config = RateLimitConfig.from_any(limit)
            emu.set_rate_limit(
                config.max_requests,
                config.window_seconds,
                config.block_seconds,
                retry_after_http_date=config.retry_after_http_date,
            )


def _post_clock(emu: EmulatorState, payload: Any) -> None:
    if not isinstance(payload, Mapping):
        raise _ControlError(400, "send an object: {'set': iso} or {'advance_seconds': n} or {'real': true}")
    if payload.get("real"):
        emu.use_real_clock()
    if "set" in payload:
        emu.set_clock(parse_instant(str(payload["set"])), running=bool(payload.get("running", False)))
    if "advance_seconds" in payload:
        emu.advance_clock(float(payload["advance_seconds"]))


def _post_restate(emu: EmulatorState, payload: Any) -> None:
    items = payload if isinstance(payload, list) else [payload]
    if not items or not all(isinstance(item, (str, Mapping)) for item in items):
        raise _ControlError(
            400, "send {'account_id': ..., 'day': 'YYYY-MM-DD', 'factor': 1.1, 'corrections': 1}, a spec, or a list"
        )
    restatements = [Restatement.from_any(item) for item in items]  # validate all before applying any
    for restatement in restatements:
        emu.add_restatement(restatement)


def _delete_restate(emu: EmulatorState, query: Mapping[str, list[str]]) -> int:
    account_id = _one(query, "account_id", "") or None
    day = _one(query, "day", "") or None
    return emu.clear_restatements(account_id, day)


def _expected(emu: EmulatorState, query: Mapping[str, list[str]]) -> tuple[int, bytes, str]:
    organization_id = _one(query, "organization_id", "")
    source = _one(query, "source", "v2")
    records: list[dict[str, Any]]
    if organization_id:
        records = emu.expected_organization_records(organization_id, date.fromisoformat(_one(query, "day")))
    elif source == "subscriptions":
        records = emu.expected_subscriptions(_one(query, "account_id"))
    elif source == "billing-history":
        status = _one(query, "status", "") or None
        records = emu.expected_billing_history(_one(query, "account_id"), status=status)
    else:
        account_id = _one(query, "account_id")
        day = date.fromisoformat(_one(query, "day"))
        metrics = [value for value in query.get("metric", []) + query.get("metric_id", []) if value]
        records = emu.expected_records(account_id, day, source=source, metric=metrics or None)
    if _one(query, "format", "json") == "jsonl":
        lines = "".join(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n" for record in records)
        return 200, lines.encode(), "application/x-ndjson"
    return _json(records)


def handle_control(
    emu: EmulatorState,
    method: str,
    path: str,
    query: Mapping[str, list[str]],
    body: bytes,
    client_host: str,
    base_url: str,
) -> tuple[int, bytes, str]:
    """Answer one control request: (status, body, content type). ``base_url`` is the API base URL of
    the server that received it (for ``health``)."""
    if client_host not in LOOPBACK_CLIENTS:
        return _json({"error": "the control API is for loopback clients only"}, 403)
    action = path[len(CONTROL_PREFIX) :].strip("/")
    try:
        if action == "health" and method == "GET":
            return _json({"ok": True, "base_url": base_url, "now": emu.clock.describe()["now"]})
        if action == "requests":
            if method == "GET":
                return _json(emu.request_log)
            if method == "DELETE":
                emu.clear_request_log()
                return _json({"cleared": True})
        if action == "clock":
            if method == "POST":
                _post_clock(emu, _load(body))
            if method in ("GET", "POST"):
                return _json(emu.clock.describe())
        if action == "faults":
            if method == "POST":
                _post_faults(emu, _load(body))
            elif method == "DELETE":
                emu.clear_faults()
            if method in ("GET", "POST", "DELETE"):
                return _json(_faults_state(emu))
        if action == "reset" and method == "POST":
            emu.reset()
            return _json({"reset": True, **emu.clock.describe()})
        if action == "expected" and method == "GET":
            return _expected(emu, query)
        if action == "config":
            if method == "POST":
                payload = _load(body)
                if not isinstance(payload, Mapping):
                    raise _ControlError(400, "send an object of settings")
                emu.configure(**payload)
            if method in ("GET", "POST"):
                return _json(emu.settings())
        if action == "restate":
            if method == "POST":
                _post_restate(emu, _load(body))
            if method == "DELETE":
                return _json({"cleared": _delete_restate(emu, query), "restatements": emu.restatements})
            if method in ("GET", "POST"):
                return _json({"restatements": emu.restatements})
        raise _ControlError(404, f"no control endpoint {method} {path}")
    except _ControlError as error:
        return _json({"error": str(error)}, error.status)
    except (ValueError, TypeError) as error:
        return _json({"error": str(error)}, 400)
