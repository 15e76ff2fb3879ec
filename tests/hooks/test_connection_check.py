"""``CloudflareHook.test_connection()`` against the emulator over loopback HTTP.

It checks, in order: (1) the credentials are valid and active, (2) an account is known
(``extra.account_id``), (3) the account's billing data can be read (Billing Read); it says which
check failed and how to fix it, names what it checked on success, and never shows a secret.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_cfbilling.emulator import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_TOKEN,
    NO_BILLING_TOKEN,
    ApiToken,
    Credentials,
    Emulator,
)
from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

OTHER_ACCOUNT = "0123456789abcdef0123456789abcdef"
DISABLED_TOKEN = "test_user_token_disabled_000000000000001"
EXPIRED_TOKEN = "test_user_token_expired_0000000000000001"
ACCOUNT_DISABLED_TOKEN = "test_account_token_disabled_000000000001"
ACCOUNT_EXPIRED_TOKEN = "test_account_token_expired_0000000000001"
ACCOUNT_NO_BILLING_TOKEN = "test_account_token_no_billing_read_00001"
UNKNOWN_TOKEN = "test_token_unknown_to_cloudflare_0000001"
SECRETS = (
    DEFAULT_TOKEN,
    DEFAULT_ACCOUNT_TOKEN,
    NO_BILLING_TOKEN,
    DISABLED_TOKEN,
    EXPIRED_TOKEN,
    ACCOUNT_DISABLED_TOKEN,
    ACCOUNT_EXPIRED_TOKEN,
    ACCOUNT_NO_BILLING_TOKEN,
    UNKNOWN_TOKEN,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_EMAIL,
)
# What the old test_connection() answered for an account-owned token without extra.account_id.
OLD_ANSWER = "Invalid API Token"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """The emulator with the default credentials plus disabled, expired and Billing-Read-less tokens."""
    credentials = Credentials.default().with_tokens(
        ApiToken(DISABLED_TOKEN, owner="user", status="disabled"),
        ApiToken(EXPIRED_TOKEN, owner="user", status="expired"),
        ApiToken(ACCOUNT_DISABLED_TOKEN, owner="account", account_id=DEFAULT_ACCOUNT_ID, status="disabled"),
        ApiToken(ACCOUNT_EXPIRED_TOKEN, owner="account", account_id=DEFAULT_ACCOUNT_ID, status="expired"),
        ApiToken(ACCOUNT_NO_BILLING_TOKEN, owner="account", account_id=DEFAULT_ACCOUNT_ID, billing_read=False),
    )
    clock = dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)
    with Emulator(seed=7, clock=clock, credentials=credentials) as running:
        yield running


def check(
    monkeypatch: pytest.MonkeyPatch,
    emu: Emulator,
    password: str,
    *,
    login: str | None = None,
    account_id: str | None = DEFAULT_ACCOUNT_ID,
    **extra: Any,
) -> tuple[bool, str, list[str]]:
    """Run test_connection() on a ``cloudflare_default`` for the emulator: (ok, message, routes called)."""
    fields: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.05, **extra}
    if account_id is not None:
        fields["account_id"] = account_id
    connection: dict[str, Any] = {"conn_type": "cloudflare", "host": emu.base_url, "password": password}
    if login is not None:
        connection["login"] = login
    connection["extra"] = fields
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection))
    emu.clear_request_log()
    with CloudflareHook() as hook:
        ok, message = hook.test_connection()
    assert isinstance(ok, bool)
    leaked = [secret[:8] for secret in SECRETS if secret.lower() in message.lower()]
    assert leaked == [], message
    return ok, message, [entry["route"] for entry in emu.request_log]


# ---------------------------------------------------------------- success: every check named


def test_user_token_with_billing_read(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, DEFAULT_TOKEN)
    assert ok, message
    assert message == (
        "All checks passed: credentials: user-owned API token is active (GET /user/tokens/verify); "
        f"account: {DEFAULT_ACCOUNT_ID} (extra.account_id); Billing Read: "
        "GET /accounts/{account_id}/billable-usage/info (extra.paygo_path billable-usage) answered"
    )
    assert routes == ["user-verify", "billable-usage-info"]


def test_account_owned_token_with_billing_read(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, DEFAULT_ACCOUNT_TOKEN)
    assert ok, message
    assert f"account-owned API token of account {DEFAULT_ACCOUNT_ID} is active" in message
    assert "GET /accounts/{account_id}/tokens/verify" in message
    assert "Billing Read: GET /accounts/{account_id}/billable-usage/info" in message
    assert routes == ["user-verify", "account-verify", "billable-usage-info"]


def test_global_key_with_account(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, DEFAULT_GLOBAL_KEY, login=DEFAULT_EMAIL)
    assert ok, message
    assert message.startswith("All checks passed: credentials: global API key accepted (GET /accounts/{account_id}")
    assert f"account: {DEFAULT_ACCOUNT_ID} (extra.account_id)" in message
    assert "Billing Read: GET /accounts/{account_id}/billable-usage/info" in message
    assert routes == ["account", "billable-usage-info"]


@pytest.mark.parametrize(
    ("paygo_path", "billing_route"),
    [("billable-usage", "billable-usage-info"), ("paygo-usage", "paygo-usage-info"), ("billing/usage/paygo", "paygo")],
)
def test_billing_read_is_checked_on_the_configured_paygo_path(monkeypatch, emu, paygo_path, billing_route):
    ok, message, routes = check(monkeypatch, emu, DEFAULT_TOKEN, paygo_path=paygo_path)
    assert ok, message
    assert f"(extra.paygo_path {paygo_path})" in message
    assert routes == ["user-verify", billing_route]
    if paygo_path == "billing/usage/paygo":
        # No info endpoint on the beta path: one day of usage, [yesterday, today).
        query = emu.request_log[-1]["query"]
        start, end = dt.date.fromisoformat(query["from"][0]), dt.date.fromisoformat(query["to"][0])
        assert end - start == dt.timedelta(days=1)
        assert "for one day" in message


# ---------------------------------------------------------------- (3) Billing Read


@pytest.mark.parametrize("paygo_path", ["billable-usage", "paygo-usage", "billing/usage/paygo"])
@pytest.mark.parametrize("token", [NO_BILLING_TOKEN, ACCOUNT_NO_BILLING_TOKEN], ids=["user-owned", "account-owned"])
def test_token_without_billing_read_fails(monkeypatch, emu, token, paygo_path):
    ok, message, routes = check(monkeypatch, emu, token, paygo_path=paygo_path)
    assert not ok
    assert message.startswith("Billing Read check failed:"), message
    assert f"the token lacks Billing Read on account {DEFAULT_ACCOUNT_ID}" in message
    assert "is active" in message  # the credentials check passed and says so
    assert "HTTP 403" in message and "10000" in message
    assert "Account > Billing > Read" in message  # how to fix it
    assert "v2" not in routes and "profile" not in routes


def test_billing_route_missing_is_explained(monkeypatch, emu):
    emu.add_fault(route="billable-usage-info", kind="status", status=404, code=7003, message="No route for the URI")
    ok, message, _ = check(monkeypatch, emu, DEFAULT_TOKEN)
    assert not ok
    assert message.startswith("Billing Read check failed: Cloudflare has no route for GET /accounts/{account_id}/")
    assert "7003" in message and "No route for the URI" in message
    assert "'billable-usage' (extra.paygo_path) is not served to this account" in message
    assert "Billing Read could not be confirmed" in message
    assert "paygo-usage" in message and "billing/usage/paygo" in message


def test_server_error_during_the_billing_check_names_the_check(monkeypatch, emu):
    emu.add_fault(route="billable-usage-info", kind="status", status=503)
    ok, message, routes = check(monkeypatch, emu, DEFAULT_TOKEN, max_retries=1)
    assert not ok
    assert message.startswith("Billing Read check failed: the check could not complete (HTTP 503"), message
    assert routes == ["user-verify", "billable-usage-info", "billable-usage-info"]


# ---------------------------------------------------------------- (2) the account


def test_account_owned_token_without_account_id_names_extra_account_id(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, DEFAULT_ACCOUNT_TOKEN, account_id=None)
    assert not ok
    assert message.startswith("Account check failed:"), message
    assert "extra.account_id is not set" in message
    assert "account-owned token" in message and "set extra.account_id" in message
    assert OLD_ANSWER not in message
    assert routes == ["user-verify"]


def test_user_token_without_account_id_fails_on_the_account(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, DEFAULT_TOKEN, account_id=None)
    assert not ok
    assert message.startswith(
        "Account check failed: the user-owned API token is active, but extra.account_id is not set"
    )
    assert routes == ["user-verify"]


def test_global_key_without_account_id(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, DEFAULT_GLOBAL_KEY, login=DEFAULT_EMAIL, account_id=None)
    assert not ok
    assert message.startswith("Account check failed: a global API key can only be checked on an account")
    assert "set extra.account_id" in message
    assert routes == []


# ---------------------------------------------------------------- (1) the credentials


@pytest.mark.parametrize(
    ("token", "owner", "status"),
    [
        (DISABLED_TOKEN, "user-owned API token", "disabled"),
        (EXPIRED_TOKEN, "user-owned API token", "expired"),
        (ACCOUNT_DISABLED_TOKEN, f"account-owned API token of account {DEFAULT_ACCOUNT_ID}", "disabled"),
        (ACCOUNT_EXPIRED_TOKEN, f"account-owned API token of account {DEFAULT_ACCOUNT_ID}", "expired"),
    ],
)
def test_disabled_or_expired_token(monkeypatch, emu, token, owner, status):
    ok, message, routes = check(monkeypatch, emu, token)
    assert not ok
    assert message.startswith(f"Credentials check failed: the {owner} is {status}"), message
    assert "create a new one" in message
    assert "billable-usage-info" not in routes


def test_unknown_token(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, UNKNOWN_TOKEN)
    assert not ok
    assert message.startswith("Credentials check failed: the token is neither a valid user-owned API token")
    assert f"nor an account-owned token of account {DEFAULT_ACCOUNT_ID}" in message
    assert "HTTP 401" in message and "1000" in message
    assert routes == ["user-verify", "account-verify"]


def test_account_owned_token_of_another_account(monkeypatch, emu):
    ok, message, _ = check(monkeypatch, emu, DEFAULT_ACCOUNT_TOKEN, account_id=OTHER_ACCOUNT)
    assert not ok
    assert f"nor an account-owned token of account {OTHER_ACCOUNT}" in message
    assert "set extra.account_id to the account that owns it" in message


def test_wrong_global_key(monkeypatch, emu):
    wrong_key = "0123456789abcdef0123456789abcdef01234"
    ok, message, routes = check(monkeypatch, emu, wrong_key, login=DEFAULT_EMAIL)
    assert not ok
    assert message.startswith("Credentials check failed: Cloudflare rejected the email and global API key")
    assert "9103" in message
    assert wrong_key not in message
    assert routes == ["account"]


def test_global_key_on_an_unknown_account(monkeypatch, emu):
    emu.add_fault(route="account", kind="status", status=404, code=7003, message="No route for the URI")
    ok, message, _ = check(monkeypatch, emu, DEFAULT_GLOBAL_KEY, login=DEFAULT_EMAIL)
    assert not ok
    assert message.startswith(f"Account check failed: Cloudflare knows no account {DEFAULT_ACCOUNT_ID}")
    assert "set extra.account_id" in message


def test_invalid_connection_fields_are_reported_without_a_request(monkeypatch, emu):
    ok, message, routes = check(monkeypatch, emu, f"Bearer {DEFAULT_TOKEN}")
    assert not ok
    assert message.startswith("Connection fields check failed:")
    assert "'Bearer' prefix" in message
    assert routes == []


# ---------------------------------------------------------------- secrets


def test_a_secret_echoed_by_the_server_is_redacted(monkeypatch, emu):
    emu.add_fault(route="user-verify", kind="status", status=500, message=f"token {DEFAULT_TOKEN} broke us")
    ok, message, _ = check(monkeypatch, emu, DEFAULT_TOKEN, max_retries=0)  # check() asserts no secret
    assert not ok
    assert message.startswith("Credentials check failed: the check could not complete (HTTP 500")
    assert "token *** broke us" in message


def test_global_key_and_email_echoed_by_the_server_are_redacted(monkeypatch, emu):
    emu.add_fault(
        route="account", kind="status", status=403, code=9103, message=f"{DEFAULT_EMAIL}/{DEFAULT_GLOBAL_KEY}"
    )
    ok, message, _ = check(monkeypatch, emu, DEFAULT_GLOBAL_KEY, login=DEFAULT_EMAIL)  # check() asserts no secret
    assert not ok
    assert "***/***" in message
