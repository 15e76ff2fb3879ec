"""The request log: what tests can read about each request, and never a secret."""

from __future__ import annotations

import json

import httpx
from emulator_helpers import ACCOUNT, usage_path

from airflow_provider_cfbilling.emulator import (
    DEFAULT_ACCOUNT_TOKEN,
    DEFAULT_EMAIL,
    DEFAULT_GLOBAL_KEY,
    DEFAULT_TOKEN,
    NO_BILLING_TOKEN,
    Emulator,
)

SECRETS = (DEFAULT_TOKEN, DEFAULT_ACCOUNT_TOKEN, DEFAULT_EMAIL, DEFAULT_GLOBAL_KEY, NO_BILLING_TOKEN, "z" * 40)


def test_entries_describe_the_request(emu: Emulator, client: httpx.Client) -> None:
    client.get(
        usage_path("v2"), params=[("from", "2026-01-01"), ("to", "2026-01-02"), ("metric_id", "a"), ("metric_id", "b")]
    )
    (entry,) = emu.request_log
    assert entry["method"] == "GET"
    assert entry["path"] == f"/client/v4/accounts/{ACCOUNT}/billable/usage"
    assert entry["query"] == {"from": ["2026-01-01"], "to": ["2026-01-02"], "metric_id": ["a", "b"]}
    assert entry["auth_scheme"] == "bearer"
    assert entry["status"] == 200
    assert entry["route"] == "v2"


def test_auth_schemes_are_recorded(emu: Emulator) -> None:
    with httpx.Client(base_url=emu.base_url, verify=False) as http:
        http.get(f"/accounts/{ACCOUNT}", headers={"X-Auth-Email": DEFAULT_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY})
        http.get(f"/accounts/{ACCOUNT}")
    assert [(e["auth_scheme"], e["status"]) for e in emu.request_log] == [("global_key", 200), ("none", 400)]


def test_no_secret_reaches_the_log(emu: Emulator) -> None:
    with httpx.Client(base_url=emu.base_url, verify=False) as http:
        for token in (DEFAULT_TOKEN, DEFAULT_ACCOUNT_TOKEN, NO_BILLING_TOKEN, "z" * 40):
            http.get(usage_path("v2"), headers={"Authorization": f"Bearer {token}"})
        http.get(usage_path("v2"), headers={"X-Auth-Email": DEFAULT_EMAIL, "X-Auth-Key": DEFAULT_GLOBAL_KEY})
        # Clients that put credentials where they do not belong must not leak them either.
        http.get(
            usage_path("v2"),
            params={
                "token": "hunter2-is-a-secret",
                "from": DEFAULT_TOKEN,
                "email": DEFAULT_EMAIL,
                "x": f"Bearer {DEFAULT_GLOBAL_KEY}",
                DEFAULT_ACCOUNT_TOKEN: "",
            },
            headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
        )
        http.get(f"/{DEFAULT_TOKEN}/{DEFAULT_EMAIL}")
    text = json.dumps(emu.request_log)
    for secret in (*SECRETS, "hunter2-is-a-secret"):
        assert secret not in text
    assert "[REDACTED]" in text


def test_log_is_a_copy_and_can_be_cleared(emu: Emulator, client: httpx.Client) -> None:
    client.get("/user/tokens/verify")
    log = emu.request_log
    log[0]["status"] = 999
    log.clear()
    assert emu.request_log[0]["status"] == 200
    emu.clear_request_log()
    assert emu.request_log == []


def test_log_is_bounded() -> None:
    with Emulator(request_log_limit=3) as emu, httpx.Client(base_url=emu.base_url, verify=False) as http:
        for _ in range(5):
            http.get("/nope")
        assert len(emu.request_log) == 3
