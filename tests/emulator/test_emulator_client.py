"""EmulatorClient: every method against a real emulator over loopback HTTP, and its error answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone

import httpx
import pytest
from emulator_helpers import ACCOUNT, BEARER, FROZEN, ORGANIZATION, OTHER_ACCOUNT, usage_path

import airflow_provider_cfbilling.emulator as emulator_package
from airflow_provider_cfbilling.emulator import Emulator, EmulatorClient, EmulatorControlError
from airflow_provider_cfbilling.emulator.client import EmulatorControlError as ClientModuleError


@pytest.fixture
def control(emu: Emulator) -> Iterator[EmulatorClient]:
    with EmulatorClient(emu.base_url, timeout=10) as client:
        yield client


def test_client_is_exported_and_accepts_the_base_or_the_control_url(emu: Emulator) -> None:
    assert "EmulatorClient" in emulator_package.__all__ and EmulatorControlError is ClientModuleError
    for url in (emu.base_url, emu.base_url + "/", emu.control_url, emu.control_url + "/", emu.url):
        with EmulatorClient(url) as client:
            assert (client.base_url, client.control_url) == (emu.base_url, emu.control_url)
            assert client.health()["ok"] is True
    localhost = EmulatorClient(f"http://localhost:{emu.port}/client/v4", verify=False)
    assert localhost.control_url == f"http://localhost:{emu.port}/__emulator__"
    localhost.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:8787/client/v4",
        "http://10.0.0.8:8787/__emulator__",
        "http://127.0.0.1:8787/client/v4/accounts",
        "http://127.0.0.1:8787/__emulator__/health",
        "http://127.0.0.1:8787/client/v4?x=1",
        "ftp://127.0.0.1:8787/client/v4",
        "127.0.0.1:8787",
    ],
)
def test_client_refuses_urls_that_are_not_a_loopback_emulator(url: str) -> None:
    with pytest.raises(ValueError):
        EmulatorClient(url)


def test_health_and_clock(emu: Emulator, control: EmulatorClient) -> None:
    assert control.health() == {"ok": True, "base_url": emu.base_url, "now": "2026-01-10T12:00:00Z"}
    assert control.now() == "2026-01-10T12:00:00Z"
    assert control.set_clock("2026-01-11T05:00:00Z") == "2026-01-11T05:00:00Z"
    assert control.advance_clock(3600) == "2026-01-11T06:00:00Z"
    assert emu.now() == datetime(2026, 1, 11, 6, tzinfo=timezone.utc) and emu.clock.mode == "frozen"
    # Datetimes: aware ones in any zone, naive ones taken as UTC.
    tokyo = timezone(timedelta(hours=9))
    assert control.set_clock(datetime(2026, 1, 12, 21, 0, tzinfo=tokyo)) == "2026-01-12T12:00:00Z"
    assert control.set_clock(datetime(2026, 1, 12, 13, 30)) == "2026-01-12T13:30:00Z"
    assert control.advance_clock(-1800) == "2026-01-12T13:00:00Z"
    control.set_clock(FROZEN, running=True)
    assert emu.clock.mode == "offset" and emu.now() >= FROZEN
    control.set_clock(FROZEN, running=False)
    assert emu.clock.mode == "frozen" and control.now() == "2026-01-10T12:00:00Z"
    control.use_real_clock()
    assert emu.clock.mode == "real"


def test_request_log(control: EmulatorClient, client: httpx.Client) -> None:
    client.get("/user/tokens/verify")
    assert [(e["path"], e["status"], e["auth_scheme"]) for e in control.requests()] == [
        ("/client/v4/user/tokens/verify", 200, "bearer")
    ]
    assert control.clear_requests() is None
    assert control.requests() == []


def test_faults_and_rate_limit(emu: Emulator, control: EmulatorClient, client: httpx.Client) -> None:
    armed = control.add_faults("v2:nth=2:status=503", {"route": "profile", "kind": "drop"})
    assert [f["kind"] for f in armed["faults"]] == ["status", "drop"] and armed["rate_limit"] is None
    assert [client.get(usage_path("v2")).status_code for _ in range(3)] == [200, 503, 200]
    assert control.faults()["route_counts"] == {"v2": 3}
    replaced = control.add_faults("v2:status=500", replace=True)
    assert [(f["route"], f["status"]) for f in replaced["faults"]] == [("v2", 500)]
    assert control.clear_faults() is None and emu.faults == []

    limited = control.add_faults(rate_limit="1/60/10")
    assert limited["faults"] == [] and limited["rate_limit"]["max_requests"] == 1
    assert [client.get("/user/tokens/verify").status_code for _ in range(2)] == [200, 429]
    assert control.set_rate_limit({"max_requests": 5, "window_seconds": 60})["rate_limit"]["max_requests"] == 5
    assert control.set_rate_limit(None)["rate_limit"] is None
    assert client.get("/user/tokens/verify").status_code == 200


def test_bad_faults_are_refused_with_the_control_apis_message(emu: Emulator, control: EmulatorClient) -> None:
    with pytest.raises(EmulatorControlError) as raised:
        control.add_faults("v2:nth=1:status=503", "v2:bogus")
    error = raised.value
    assert error.status == 400 and error.method == "POST" and error.url == emu.control_url + "/faults"
    assert "bogus" in error.message and error.message in str(error) and "400" in str(error)
    assert emu.faults == []  # nothing armed, not even the valid one


def test_config_and_reset(emu: Emulator, control: EmulatorClient, client: httpx.Client) -> None:
    settings = control.config()
    assert settings["to_inclusive"] is False and settings["availability_delay"] == 6 * 3600
    changed = control.config(to_inclusive=True, availability_delay=timedelta(minutes=1), history_items=3)
    assert (changed["to_inclusive"], changed["availability_delay"], changed["history_items"]) == (True, 60, 3)
    assert emu.to_inclusive is True and emu.availability_delay == timedelta(minutes=1)
    with pytest.raises(EmulatorControlError, match="unknown settings") as raised:
        control.config(nope=1)
    assert raised.value.status == 400 and "nope" in raised.value.message

    emu.add_fault(route="*", kind="status", status=500)
    control.set_clock("2026-02-01T00:00:00Z")
    client.get("/user/tokens/verify")
    assert control.reset() is None
    assert emu.faults == [] and emu.request_log == [] and emu.to_inclusive is False and emu.history_items == 25
    assert control.now() == "2026-01-10T12:00:00Z"


def test_expected_records(emu: Emulator, control: EmulatorClient, client: httpx.Client) -> None:
    day = date(2026, 1, 8)
    assert control.expected(account_id=ACCOUNT, day=day) == emu.expected_records(ACCOUNT, day)
    paygo = control.expected(account_id=ACCOUNT, day="2026-01-08", source="paygo-usage")
    assert paygo == emu.expected_records(ACCOUNT, day, "paygo-usage")
    only = control.expected(account_id=ACCOUNT, day=day, metric=["d1_rows_read", "images_delivered"])
    assert {r["x_BillableMetricId"] for r in only} == {"d1_rows_read", "images_delivered"}
    assert control.expected(account_id=ACCOUNT, day=day, format="jsonl") == emu.expected_records(ACCOUNT, day)

    raw = control.expected_bytes(account_id=ACCOUNT, day=day, format="jsonl")
    assert [json.loads(line) for line in raw.decode().splitlines()] == emu.expected_records(ACCOUNT, day)
    assert json.loads(control.expected_bytes(account_id=ACCOUNT, day=day)) == emu.expected_records(ACCOUNT, day)

    served = client.get(usage_path("v2"), params={"from": "2026-01-08", "to": "2026-01-09"}).json()["result"]
    assert control.expected(account_id=ACCOUNT, day=day) == served


def test_expected_organization_subscriptions_and_history(emu: Emulator, control: EmulatorClient) -> None:
    day = date(2026, 1, 8)
    organization = control.expected(organization_id=ORGANIZATION, day=day)
    assert organization and organization == emu.expected_organization_records(ORGANIZATION, day)
    assert control.expected(account_id=ACCOUNT, source="subscriptions") == emu.expected_subscriptions(ACCOUNT)
    history = control.expected(account_id=ACCOUNT, source="billing-history")
    assert history == emu.expected_billing_history(ACCOUNT) and len(history) == 25
    paid = control.expected(account_id=ACCOUNT, source="billing-history", status="paid")
    assert paid == emu.expected_billing_history(ACCOUNT, status="paid")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"day": "2026-01-08"}, "missing query parameter 'account_id'"),
        ({"account_id": ACCOUNT, "day": "2026-01-08", "source": "nope"}, "unknown source"),
        ({"account_id": "acme", "day": "2026-01-08"}, "32 lowercase hex"),
    ],
)
def test_expected_errors_carry_the_message(control: EmulatorClient, params: dict[str, str], message: str) -> None:
    for call in (control.expected, control.expected_bytes):
        with pytest.raises(EmulatorControlError) as raised:
            call(**params)
        assert raised.value.status == 400 and message in raised.value.message


def test_restatements(emu: Emulator, control: EmulatorClient, client: httpx.Client) -> None:
    window = {"from": "2026-01-05", "to": "2026-01-06"}
    original = client.get(usage_path("v2"), params=window).content
    restated = control.restate({"account_id": ACCOUNT, "day": "2026-01-05", "factor": 1.5, "corrections": 2})
    assert restated == [{"account_id": ACCOUNT, "day": "2026-01-05", "factor": 1.5, "corrections": 2, "revisions": 1}]
    assert control.restatements() == restated == emu.restatements
    assert client.get(usage_path("v2"), params=window).content != original

    both = control.restate(f"{ACCOUNT}:2026-01-05:2:0", {"account_id": OTHER_ACCOUNT, "day": date(2026, 1, 6)})
    assert [(r["account_id"], r["day"], r["factor"], r["revisions"]) for r in both] == [
        (OTHER_ACCOUNT, "2026-01-06", 1.1, 1),  # by account id, then day
        (ACCOUNT, "2026-01-05", 3.0, 2),
    ]
    with pytest.raises(EmulatorControlError, match="must change something"):
        control.restate(f"{ACCOUNT}:2026-01-07:1:0")
    with pytest.raises(ValueError):
        control.restate()

    assert control.clear_restatements(account_id=OTHER_ACCOUNT) is None
    assert [r["account_id"] for r in control.restatements()] == [ACCOUNT]
    control.restate(f"{ACCOUNT}:2026-01-07")
    control.clear_restatements(day=date(2026, 1, 5))
    assert [r["day"] for r in control.restatements()] == ["2026-01-07"]
    control.clear_restatements()
    assert control.restatements() == [] and client.get(usage_path("v2"), params=window).content == original
    with pytest.raises(EmulatorControlError, match="32 lowercase hex"):
        control.clear_restatements(account_id="acme")


def test_a_stopped_emulator_is_a_transport_error(emu: Emulator, control: EmulatorClient) -> None:
    emu.stop()
    with pytest.raises(httpx.TransportError):
        control.health()


def test_the_client_ignores_proxy_settings_and_closes(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, control: EmulatorClient
) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with EmulatorClient(emu.control_url) as fresh:
        assert fresh.now() == "2026-01-10T12:00:00Z"
    with pytest.raises(RuntimeError):
        fresh.now()  # closed by the with block
    assert repr(control) == f"EmulatorClient({emu.control_url})"


def test_the_client_drives_an_emulator_with_bearer_traffic(emu: Emulator, control: EmulatorClient) -> None:
    """The control API is not the Cloudflare API: no credentials, and its calls are not logged."""
    with httpx.Client(base_url=control.base_url, headers=BEARER, timeout=10) as http:
        assert http.get(usage_path("v2")).status_code == 200
    control.health()
    control.config()
    assert [entry["route"] for entry in control.requests()] == ["v2"]
