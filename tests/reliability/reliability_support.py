"""What the reliability tests share: emulators with arrival-time stamps, connections, listings.

The emulator's own request log records the *emulator* clock (frozen in most tests), so the
reliability tests add two fields to every entry through :func:`stamp_arrivals`: ``arrived`` (the
test process's monotonic clock when the request reached the server) and ``retry_after`` (the
whole seconds of ``Retry-After`` the answer carried, or None). Gaps between a client's requests
are then measurable, which is how "Retry-After is honoured" is checked.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from airflow_provider_cfbilling.emulator import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_EMAIL,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_TOKEN,
    Emulator,
)

CLOCK = dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)
SEED = 7
SECRETS = (DEFAULT_TOKEN, DEFAULT_GLOBAL_KEY, DEFAULT_EMAIL)


def start_emulator(*, clock_running: bool = False, **settings: Any) -> Emulator:
    """A started emulator (seed 7, clock at 2025-06-20 12:00 UTC) whose log stamps arrivals."""
    emulator = Emulator(seed=SEED, clock=CLOCK, clock_running=clock_running, **settings).start()
    stamp_arrivals(emulator)
    return emulator


def stamp_arrivals(emulator: Emulator) -> None:
    """Add ``arrived`` (monotonic seconds) and ``retry_after`` to every request-log entry."""
    local = threading.local()
    traffic = emulator.traffic  # what the server asks about faults, the rate limit and the log
    select_faults, check_rate_limit, record_request = (
        traffic.select_faults,
        traffic.check_rate_limit,
        traffic.record_request,
    )

    def stamped_select_faults(route: str) -> Any:
        local.arrived = time.monotonic()
        local.retry_after = None
        latency, fault = select_faults(route)
        if fault is not None and fault.retry_after is not None:
            local.retry_after = math.ceil(fault.retry_after)
        return latency, fault

    def stamped_check_rate_limit() -> Any:
        limited = check_rate_limit()
        if limited is not None:
            local.retry_after = max(0, math.ceil(limited[0]))
        return limited

    def stamped_record_request(entry: dict[str, Any]) -> None:
        entry["arrived"] = getattr(local, "arrived", None)
        entry["retry_after"] = getattr(local, "retry_after", None)
        record_request(entry)

    # Instance attributes shadow the methods the server calls on this emulator's traffic only.
    traffic.select_faults = stamped_select_faults  # type: ignore[method-assign]
    traffic.check_rate_limit = stamped_check_rate_limit  # type: ignore[method-assign]
    traffic.record_request = stamped_record_request  # type: ignore[method-assign]


def connection(
    emulator: Emulator | None,
    *,
    scheme: str = "token",
    host: str | None = None,
    account_id: str | None = DEFAULT_ACCOUNT_ID,
    **extra: Any,
) -> dict[str, Any]:
    """A ``cloudflare`` connection (as a dict) for the emulator; fast backoff unless overridden."""
    fields: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05, **extra}
    if account_id is not None:
        fields["account_id"] = account_id
    conn: dict[str, Any] = {
        "conn_type": "cloudflare",
        "host": host if host is not None else (emulator.base_url if emulator is not None else None),
        "extra": fields,
    }
    if scheme == "token":
        conn["password"] = DEFAULT_TOKEN
    else:
        conn["login"] = DEFAULT_EMAIL
        conn["password"] = DEFAULT_GLOBAL_KEY
    return conn


def prepare_worker_thread() -> None:
    """Let a worker thread call ``operator.execute()`` directly, as the main thread can.

    Airflow 2's ``ExecutorSafeguard`` keeps its bookkeeping in a ``threading.local`` whose
    ``callers`` attribute is only set on the thread that imported ``airflow.models.baseoperator``;
    any other thread fails with ``AttributeError`` before the operator runs. Airflow 3 needs nothing.
    """
    try:
        from airflow.models.baseoperator import ExecutorSafeguard  # Airflow 2
    except ImportError:
        return
    sentinel = getattr(ExecutorSafeguard, "_sentinel", None)
    if sentinel is not None and not hasattr(sentinel, "callers"):
        sentinel.callers = {}


def set_connection(conn_id: str, conn: dict[str, Any]) -> str:
    """Put ``conn`` in the environment as ``AIRFLOW_CONN_<CONN_ID>``; returns the variable name."""
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    os.environ[variable] = json.dumps(conn)
    return variable


def files_under(folder: Path) -> list[str]:
    """Every file below ``folder`` (hidden ones included), relative, sorted."""
    if not folder.exists():
        return []
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def with_manifest(name: str) -> list[str]:
    """An object's name (or key) and its manifest's, sorted as a listing shows them."""
    from airflow_provider_cfbilling.manifests import manifest_uri

    return sorted([name, manifest_uri(name if "/" in name else f"./{name}").removeprefix("./")])


def s3_keys(client: Any, bucket: str, prefix: str) -> list[str]:
    """Every object key below ``prefix``."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def s3_uploads(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Incomplete multipart uploads below ``prefix`` (invisible to readers, but they cost storage)."""
    return list(client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", []))


def leaks(texts: dict[str, str], secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """``"where: secret"`` for every secret found in any of ``texts`` (case-insensitive)."""
    found = []
    for where, text in texts.items():
        lowered = text.lower()
        for secret in secrets:
            at = lowered.find(secret.lower())
            if at >= 0:  # with the text around it (the secret itself masked), to find where it came from
                around = text[max(0, at - 120) : at + len(secret) + 40].replace(text[at : at + len(secret)], "<SECRET>")
                found.append(f"{where}: {secret[:6]}... in {around!r}")
    return found


def without_airflow_30_mask_message(text: str) -> str:
    """``text`` without the lines Airflow 3.0's in-process ``dag.test()`` supervisor prints at DEBUG
    for each ``MaskSecret`` message, value included: 3.0's ``mask_secret`` sends the value before
    masking it locally, and Airflow itself masks every connection password it reads, so that line
    exists whatever a provider does (3.1 masks first). Nothing else is dropped, on no other version."""
    from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if not AIRFLOW_V_3_0_PLUS or AIRFLOW_V_3_1_PLUS:
        return text
    return "\n".join(line for line in text.splitlines() if "Sending request" not in line or "MaskSecret(" not in line)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; pipes in cells are escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return "\n".join([line(header), line(["---"] * len(header)), *map(line, rows)])


def docs_block(name: str, docs: Path) -> str:
    """The text between ``<!-- name:start -->`` and ``<!-- name:end -->`` in ``docs``."""
    text = docs.read_text(encoding="utf-8")
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    assert start in text and end in text, f"{docs} has no {name} block"
    return text.split(start, 1)[1].split(end, 1)[0].strip()
