"""A local emulator of Cloudflare's billing API, for tests, benchmarks and DAG development.

Standard library only (no Airflow import), so it starts fast anywhere::

    from airflow_provider_cfbilling.emulator import Emulator, DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

    with Emulator(clock=datetime(2026, 1, 10, 12, tzinfo=timezone.utc)) as emu:
        httpx.get(f"{emu.base_url}/accounts/{DEFAULT_ACCOUNT_ID}/billable/usage",
                  params={"from": "2026-01-01", "to": "2026-01-09"},
                  headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})

From a shell: ``python -m airflow_provider_cfbilling.emulator --port 8787``; drive an emulator running in
another process with :class:`EmulatorClient` (``client.py``, the only part that needs ``httpx``, imported
on first use). See ``docs/emulator.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_cfbilling.emulator.catalog import CATALOG
from airflow_provider_cfbilling.emulator.core import Emulator
from airflow_provider_cfbilling.emulator.credentials import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_TOKEN,
    NO_BILLING_TOKEN,
    ApiToken,
    Credentials,
    GlobalKey,
)
from airflow_provider_cfbilling.emulator.faults import FAULT_KINDS, ROUTES, Fault, RateLimitConfig
from airflow_provider_cfbilling.emulator.organizations import DEFAULT_ORGANIZATION_ACCOUNTS, DEFAULT_ORGANIZATION_ID
from airflow_provider_cfbilling.emulator.restatements import Restatement
from airflow_provider_cfbilling.emulator.shapes import SOURCES

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.client import EmulatorClient, EmulatorControlError

__all__ = [
    "CATALOG",
    "DEFAULT_ACCOUNT_ID",
    "DEFAULT_ACCOUNT_TOKEN",
    "DEFAULT_EMAIL",
    "DEFAULT_GLOBAL_KEY",
    "DEFAULT_ORGANIZATION_ACCOUNTS",
    "DEFAULT_ORGANIZATION_ID",
    "DEFAULT_TOKEN",
    "FAULT_KINDS",
    "NO_BILLING_TOKEN",
    "ROUTES",
    "SOURCES",
    "ApiToken",
    "Credentials",
    "Emulator",
    "EmulatorClient",
    "EmulatorControlError",
    "Fault",
    "GlobalKey",
    "RateLimitConfig",
    "Restatement",
]


_LAZY = ("EmulatorClient", "EmulatorControlError")


def __getattr__(name: str) -> Any:
    # The control client imports httpx; load it only when asked for, so the emulator starts fast.
    if name in _LAZY:
        from airflow_provider_cfbilling.emulator import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
