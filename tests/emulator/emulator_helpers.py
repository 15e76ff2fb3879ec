"""Constants and small helpers shared by the emulator tests (imported as a plain module)."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_ORGANIZATION_ID, DEFAULT_TOKEN

#: 2026-01-10 12:00 UTC: with the default 6 h delay, 2026-01-09 and earlier are available.
FROZEN = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)
ACCOUNT = DEFAULT_ACCOUNT_ID
OTHER_ACCOUNT = "0123456789abcdef0123456789abcdef"
ORGANIZATION = DEFAULT_ORGANIZATION_ID
BEARER = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


def usage_path(route: str, account_id: str = ACCOUNT) -> str:
    """The path of a usage route below the base URL."""
    return {
        "v2": f"/accounts/{account_id}/billable/usage",
        "paygo": f"/accounts/{account_id}/billing/usage/paygo",
        "paygo-usage": f"/accounts/{account_id}/paygo-usage",
        "billable-usage": f"/accounts/{account_id}/billable-usage",
    }[route]


def organization_usage_path(organization_id: str = ORGANIZATION) -> str:
    return f"/organizations/{organization_id}/billable/usage"


def subscriptions_path(account_id: str = ACCOUNT) -> str:
    return f"/accounts/{account_id}/subscriptions"


def history_path(account_id: str = ACCOUNT) -> str:
    return f"/accounts/{account_id}/billing/history"
