"""A local emulator of Cloudflare's billing API, for tests, benchmarks and DAG development.

Standard library only (no Airflow import), so it starts fast anywhere::

    from airflow_provider_cfbilling.emulator import Emulator, DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

    with Emulator(clock=datetime(2026, 1, 10, 12, tzinfo=timezone.utc)) as emu:
        httpx.get(f"{emu.base_url}/accounts/{DEFAULT_ACCOUNT_ID}/billable/usage",
                  params={"from": "2026-01-01", "to": "2026-01-09"},
                  headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"})

From a shell: ``python -m airflow_provider_cfbilling.emulator --port 8787``. See ``docs/emulator.md``.
"""

from __future__ import annotations

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
from airflow_provider_cfbilling.emulator.data import CATALOG, SOURCES
from airflow_provider_cfbilling.emulator.faults import FAULT_KINDS, ROUTES, Fault, RateLimitConfig
from airflow_provider_cfbilling.emulator.organizations import DEFAULT_ORGANIZATION_ACCOUNTS, DEFAULT_ORGANIZATION_ID
from airflow_provider_cfbilling.emulator.restatements import Restatement

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
    "Fault",
    "GlobalKey",
    "RateLimitConfig",
    "Restatement",
]
