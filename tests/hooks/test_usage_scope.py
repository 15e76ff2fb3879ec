"""Whose usage a task reads (``CloudflareHook.resolve_usage_scope``): the one rule the usage
operators, the sensor and the SQL landing share."""

from __future__ import annotations

import json

import pytest

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

ACCOUNT = "0123456789abcdef0123456789abcdef"
OTHER_ACCOUNT = "fedcba9876543210fedcba9876543210"
ORGANIZATION = "00000000000000000000000000000abc"


def hook(monkeypatch: pytest.MonkeyPatch, **extra: str) -> CloudflareHook:
    connection = {"conn_type": "cloudflare", "password": "cfTOKEN-x", "extra": {"account_id": ACCOUNT, **extra}}
    monkeypatch.setenv("AIRFLOW_CONN_SCOPE_TEST", json.dumps(connection))
    return CloudflareHook("scope_test")


def test_the_connection_account_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    scope = hook(monkeypatch).resolve_usage_scope()
    assert (scope.account_id, scope.organization_id, scope.id) == (ACCOUNT, None, ACCOUNT)


def test_an_explicit_account_wins_over_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    scope = hook(monkeypatch).resolve_usage_scope(OTHER_ACCOUNT.upper())
    assert (scope.account_id, scope.organization_id) == (OTHER_ACCOUNT, None)


@pytest.mark.parametrize("from_connection", [True, False])
def test_an_organization_ignores_the_connection_account(monkeypatch: pytest.MonkeyPatch, from_connection: bool) -> None:
    extra = {"organization_id": ORGANIZATION} if from_connection else {}
    scope = hook(monkeypatch, **extra).resolve_usage_scope(None, None if from_connection else ORGANIZATION)
    assert (scope.account_id, scope.organization_id, scope.id) == (None, ORGANIZATION, ORGANIZATION)


@pytest.mark.parametrize("from_connection", [True, False])
def test_an_organization_and_an_explicit_account_conflict(
    monkeypatch: pytest.MonkeyPatch, from_connection: bool
) -> None:
    extra = {"organization_id": ORGANIZATION} if from_connection else {}
    with pytest.raises(
        CloudflareInputError, match=r"organization_id: both organization_id .* and account_id"
    ) as raised:
        hook(monkeypatch, **extra).resolve_usage_scope(ACCOUNT, None if from_connection else ORGANIZATION)
    assert raised.value.retryable is False


def test_paygo_reads_the_account_even_with_a_connection_organization(monkeypatch: pytest.MonkeyPatch) -> None:
    scope = hook(monkeypatch, organization_id=ORGANIZATION).resolve_usage_scope(source="paygo")
    assert (scope.account_id, scope.organization_id) == (ACCOUNT, None)


def test_paygo_refuses_an_explicit_organization(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CloudflareInputError, match="organizations have v2 usage only"):
        hook(monkeypatch).resolve_usage_scope(None, ORGANIZATION, source="paygo")


def test_a_malformed_organization_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CloudflareInputError, match="is not a Cloudflare organization id"):
        hook(monkeypatch).resolve_usage_scope(None, "acme")
