"""Auth like Cloudflare's: bearer tokens (user- and account-owned), email + global key, and every error."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from emulator_helpers import ACCOUNT, OTHER_ACCOUNT, history_path, subscriptions_path, usage_path

from airflow_provider_cfbilling.emulator import (
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_TOKEN,
    NO_BILLING_TOKEN,
    ApiToken,
    Credentials,
    Emulator,
    GlobalKey,
)
from airflow_provider_cfbilling.emulator.credentials import GLOBAL_KEY_PATTERN, TOKEN_PATTERN

UNKNOWN_TOKEN = "x" * 40
GLOBAL = {"X-Auth-Email": DEFAULT_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY}
BILLING_PATHS = [
    usage_path("v2"),
    usage_path("paygo"),
    usage_path("paygo-usage"),
    usage_path("billable-usage"),
    f"/accounts/{ACCOUNT}/billable-usage/info",
    f"/accounts/{ACCOUNT}/paygo-usage-info",
    f"/accounts/{ACCOUNT}/billing/profile",
    subscriptions_path(),
    history_path(),
]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def anonymous(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.base_url, timeout=10, verify=False) as http:
        yield http


def error_of(response: httpx.Response) -> dict:
    body = response.json()
    assert body["success"] is False and body["result"] is None
    return body["errors"][0]


def test_default_credentials_have_cloudflare_formats() -> None:
    for token in (DEFAULT_TOKEN, DEFAULT_ACCOUNT_TOKEN, NO_BILLING_TOKEN):
        assert TOKEN_PATTERN.match(token)
    assert GLOBAL_KEY_PATTERN.match(DEFAULT_GLOBAL_KEY)
    assert ACCOUNT == "023e105f4ecef8ad9ca31a8372d0c353"
    assert "***" in repr(Credentials.default().tokens[0]) and DEFAULT_TOKEN not in repr(Credentials.default())


@pytest.mark.parametrize("path", BILLING_PATHS)
@pytest.mark.parametrize(
    "headers", [bearer(DEFAULT_TOKEN), bearer(DEFAULT_ACCOUNT_TOKEN), GLOBAL], ids=["user", "account", "global"]
)
def test_every_scheme_reads_billing(anonymous: httpx.Client, path: str, headers: dict[str, str]) -> None:
    response = anonymous.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True


def test_missing_credentials(anonymous: httpx.Client) -> None:
    response = anonymous.get(usage_path("v2"))
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 6003
    assert [link["code"] for link in error["error_chain"]] == [6103]


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer short", f"Basic {DEFAULT_TOKEN}", f"Bearer {DEFAULT_TOKEN}!", "token"]
)
def test_malformed_authorization_header(anonymous: httpx.Client, authorization: str) -> None:
    response = anonymous.get(usage_path("v2"), headers={"Authorization": authorization})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 6003
    assert error["error_chain"] == [{"code": 6111, "message": "Invalid format for Authorization header"}]


@pytest.mark.parametrize(
    ("headers", "chained"),
    [
        ({"X-Auth-Key": DEFAULT_GLOBAL_KEY}, 6102),
        ({"X-Auth-Email": DEFAULT_EMAIL}, 6103),
        ({"X-Auth-Email": DEFAULT_EMAIL, "X-Auth-Key": "not-a-key"}, 6103),
        ({"X-Auth-Email": "nobody", "X-Auth-Key": DEFAULT_GLOBAL_KEY}, 6102),
    ],
)
def test_malformed_global_key_headers(anonymous: httpx.Client, headers: dict[str, str], chained: int) -> None:
    response = anonymous.get(usage_path("v2"), headers=headers)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == 6003
    assert error["error_chain"][0]["code"] == chained


def test_wrong_token_and_wrong_global_key(anonymous: httpx.Client) -> None:
    response = anonymous.get(usage_path("v2"), headers=bearer(UNKNOWN_TOKEN))
    assert (response.status_code, error_of(response)["code"]) == (403, 9109)
    wrong_key = {"X-Auth-Email": DEFAULT_EMAIL, "X-Auth-Key": "0" * 37}
    response = anonymous.get(usage_path("v2"), headers=wrong_key)
    assert (response.status_code, error_of(response)["code"]) == (403, 9103)


@pytest.mark.parametrize("path", BILLING_PATHS)
def test_token_without_billing_read_is_refused_billing(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.get(path, headers=bearer(NO_BILLING_TOKEN))
    assert response.status_code == 403
    assert error_of(response) == {"code": 10000, "message": "Authentication error"}


def test_token_without_billing_read_can_verify_and_read_the_account(anonymous: httpx.Client) -> None:
    assert anonymous.get("/user/tokens/verify", headers=bearer(NO_BILLING_TOKEN)).status_code == 200
    assert anonymous.get(f"/accounts/{ACCOUNT}", headers=bearer(NO_BILLING_TOKEN)).status_code == 200


def test_account_token_only_reaches_its_own_account(anonymous: httpx.Client) -> None:
    response = anonymous.get(usage_path("v2", OTHER_ACCOUNT), headers=bearer(DEFAULT_ACCOUNT_TOKEN))
    assert response.status_code == 403
    assert error_of(response)["code"] == 9109
    response = anonymous.get(f"/accounts/{OTHER_ACCOUNT}", headers=bearer(DEFAULT_ACCOUNT_TOKEN))
    assert response.status_code == 403


@pytest.mark.parametrize("headers", [bearer(DEFAULT_TOKEN), GLOBAL], ids=["user", "global"])
def test_user_token_and_global_key_reach_any_account(anonymous: httpx.Client, headers: dict[str, str]) -> None:
    assert anonymous.get(usage_path("v2", OTHER_ACCOUNT), headers=headers).status_code == 200
    account = anonymous.get(f"/accounts/{OTHER_ACCOUNT}", headers=headers).json()["result"]
    assert account["id"] == OTHER_ACCOUNT and account["name"]


def test_user_tokens_verify(anonymous: httpx.Client) -> None:
    body = anonymous.get("/user/tokens/verify", headers=bearer(DEFAULT_TOKEN)).json()
    assert body["success"] is True
    assert body["result"]["status"] == "active" and len(body["result"]["id"]) == 32
    assert body["messages"][0]["message"] == "This API Token is valid and active"
    for token in (DEFAULT_ACCOUNT_TOKEN, UNKNOWN_TOKEN):
        response = anonymous.get("/user/tokens/verify", headers=bearer(token))
        assert (response.status_code, error_of(response)["code"]) == (401, 1000)
    response = anonymous.get("/user/tokens/verify", headers=GLOBAL)
    assert response.status_code == 400
    assert error_of(response)["error_chain"][0]["code"] == 6111


def test_account_tokens_verify(anonymous: httpx.Client) -> None:
    path = f"/accounts/{ACCOUNT}/tokens/verify"
    body = anonymous.get(path, headers=bearer(DEFAULT_ACCOUNT_TOKEN)).json()
    assert body["success"] is True and body["result"]["status"] == "active"
    for token in (DEFAULT_TOKEN, UNKNOWN_TOKEN):
        response = anonymous.get(path, headers=bearer(token))
        assert (response.status_code, error_of(response)["code"]) == (401, 1000)
    other = anonymous.get(f"/accounts/{OTHER_ACCOUNT}/tokens/verify", headers=bearer(DEFAULT_ACCOUNT_TOKEN))
    assert other.status_code == 401
    assert anonymous.get(path, headers=GLOBAL).status_code == 400


def test_account_endpoint_works_for_all_valid_credentials(anonymous: httpx.Client) -> None:
    for headers in (bearer(DEFAULT_TOKEN), bearer(DEFAULT_ACCOUNT_TOKEN), GLOBAL, bearer(NO_BILLING_TOKEN)):
        result = anonymous.get(f"/accounts/{ACCOUNT}", headers=headers).json()["result"]
        assert result["id"] == ACCOUNT and result["name"]


def test_custom_credentials_and_token_status() -> None:
    disabled = "d" * 40
    credentials = Credentials.default().with_tokens(ApiToken(disabled, status="disabled"))
    credentials = credentials.with_global_keys(GlobalKey("ops@example.org", "a" * 37))
    with Emulator(credentials=credentials) as emu, httpx.Client(base_url=emu.base_url, verify=False) as http:
        verify = http.get("/user/tokens/verify", headers=bearer(disabled)).json()
        assert verify["result"]["status"] == "disabled"
        assert http.get(usage_path("v2"), headers=bearer(disabled)).status_code == 403
        keyed = http.get(usage_path("v2"), headers={"X-Auth-Email": "OPS@example.org", "X-Auth-Key": "a" * 37})
        assert keyed.status_code == 200
    with pytest.raises(ValueError):
        ApiToken("too-short")
    with pytest.raises(ValueError):
        ApiToken("y" * 40, owner="account")
