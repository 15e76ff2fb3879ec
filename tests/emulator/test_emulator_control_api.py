"""The HTTP control API under /__emulator__/, used by tests that run in another process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import httpx
import pytest
from emulator_helpers import ACCOUNT, BEARER, FROZEN, usage_path

from airflow_provider_cfbilling.emulator import Emulator


@pytest.fixture
def control(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.control_url, timeout=10, verify=False) as http:
        yield http


def test_health(emu: Emulator, control: httpx.Client) -> None:
    body = control.get("/health").json()
    assert body == {"ok": True, "base_url": emu.base_url, "now": "2026-01-10T12:00:00Z"}


def test_requests_log(control: httpx.Client, client: httpx.Client) -> None:
    client.get("/user/tokens/verify")
    log = control.get("/requests").json()
    assert [(e["path"], e["status"], e["auth_scheme"]) for e in log] == [
        ("/client/v4/user/tokens/verify", 200, "bearer")
    ]
    assert control.delete("/requests").status_code == 200
    assert control.get("/requests").json() == []


def test_clock(emu: Emulator, control: httpx.Client, client: httpx.Client) -> None:
    window = {"from": "2026-01-10", "to": "2026-01-11"}
    assert client.get(usage_path("v2"), params=window).json()["result"] == []
    assert control.post("/clock", json={"set": "2026-01-11T05:00:00Z"}).json()["now"] == "2026-01-11T05:00:00Z"
    assert client.get(usage_path("v2"), params=window).json()["result"] == []
    assert control.post("/clock", json={"advance_seconds": 3600}).json() == {
        "now": "2026-01-11T06:00:00Z",
        "mode": "frozen",
    }
    assert client.get(usage_path("v2"), params=window).json()["result"]
    assert control.post("/clock", json={"set": "not a time"}).status_code == 400
    assert control.post("/clock", json={"real": True}).json()["mode"] == "real"


def test_faults(control: httpx.Client, client: httpx.Client) -> None:
    armed = control.post("/faults", json={"faults": ["v2:nth=2:status=503", {"route": "profile", "kind": "drop"}]})
    assert armed.status_code == 200
    assert [f["kind"] for f in armed.json()["faults"]] == ["status", "drop"]
    statuses = [client.get(usage_path("v2")).status_code for _ in range(3)]
    assert statuses == [200, 503, 200]
    assert control.post("/faults", content=json.dumps("v2:status=500")).json()["faults"][-1]["status"] == 500
    assert control.post("/faults", json={"faults": [], "replace": True}).json()["faults"] == []
    assert control.post("/faults", json={"faults": ["v2:bogus"]}).status_code == 400
    limited = control.post("/faults", json={"rate_limit": "1/60/10"}).json()
    assert limited["rate_limit"]["max_requests"] == 1
    assert [client.get("/user/tokens/verify").status_code for _ in range(2)] == [200, 429]
    assert control.post("/faults", json={"rate_limit": None}).json()["rate_limit"] is None
    assert control.delete("/faults").json()["faults"] == []


def test_reset_restores_the_startup_state(emu: Emulator, control: httpx.Client, client: httpx.Client) -> None:
    emu.add_fault(route="*", kind="status", status=500)
    emu.configure(to_inclusive=True)
    control.post("/clock", json={"advance_seconds": 86400})
    client.get("/user/tokens/verify")
    assert control.post("/reset").json()["now"] == "2026-01-10T12:00:00Z"
    assert emu.faults == [] and emu.request_log == [] and emu.to_inclusive is False
    assert emu.now() == FROZEN


def test_reset_rearms_startup_faults() -> None:
    with (
        Emulator(faults=["v2:nth=1:status=502"], rate_limit="100/300/300") as emu,
        httpx.Client(base_url=emu.base_url, headers=BEARER, verify=False) as http,
    ):
        assert [http.get(usage_path("v2")).status_code for _ in range(2)] == [502, 200]
        assert emu.settings()["rate_limit"]["requests_in_window"] == 1  # the faulted request is not counted
        emu.reset()
        assert emu.faults[0]["seen"] == 0
        assert emu.settings()["rate_limit"]["requests_in_window"] == 0
        assert [http.get(usage_path("v2")).status_code for _ in range(2)] == [502, 200]


def test_expected(emu: Emulator, control: httpx.Client) -> None:
    query = {"account_id": ACCOUNT, "day": "2026-01-08", "source": "paygo-usage"}
    records = control.get("/expected", params=query).json()
    assert records == emu.expected_records(ACCOUNT, date(2026, 1, 8), "paygo-usage")
    lines = control.get("/expected", params={**query, "format": "jsonl"}).text.splitlines()
    assert [json.loads(line) for line in lines] == records
    only = control.get("/expected", params={"account_id": ACCOUNT, "day": "2026-01-08", "metric": "d1_rows_read"})
    assert {r["x_BillableMetricId"] for r in only.json()} == {"d1_rows_read"}
    assert control.get("/expected", params={"day": "2026-01-08"}).status_code == 400
    assert control.get("/expected", params={**query, "source": "nope"}).status_code == 400


def test_config(emu: Emulator, control: httpx.Client) -> None:
    assert control.get("/config").json()["to_inclusive"] is False
    changed = control.post("/config", json={"to_inclusive": True, "availability_delay": 60}).json()
    assert changed["to_inclusive"] is True and changed["availability_delay"] == 60
    assert emu.to_inclusive is True
    assert control.post("/config", json={"nope": 1}).status_code == 400


def test_unknown_control_path(control: httpx.Client) -> None:
    response = control.get("/nothing-here")
    assert response.status_code == 404
    assert "error" in response.json()


def test_restate(emu: Emulator, control: httpx.Client, client: httpx.Client) -> None:
    window = {"from": "2026-01-05", "to": "2026-01-06"}
    original = client.get(usage_path("v2"), params=window).content
    body = {"account_id": ACCOUNT, "day": "2026-01-05", "factor": 1.5, "corrections": 2}
    answer = control.post("/restate", json=body)
    assert answer.status_code == 200
    listed = [{**body, "revisions": 1}]
    assert answer.json() == {"restatements": listed}
    assert control.get("/restate").json() == {"restatements": listed}
    assert emu.restatements == listed

    served = client.get(usage_path("v2"), params=window).json()["result"]
    assert len([r for r in served if r["ChargeClass"] == "Correction"]) >= 2
    assert control.get("/expected", params={"account_id": ACCOUNT, "day": "2026-01-05"}).json() == served

    # A spec string and a list work too; the same day again stacks.
    specs = [f"{ACCOUNT}:2026-01-05:2:0", {"account_id": ACCOUNT, "day": "2026-01-06"}]
    restated = control.post("/restate", json=specs).json()["restatements"]
    assert [(r["day"], r["factor"], r["corrections"], r["revisions"]) for r in restated] == [
        ("2026-01-05", 3.0, 2, 2),
        ("2026-01-06", 1.1, 1, 1),
    ]
    assert control.post("/restate", json=f"{ACCOUNT}:2026-01-07").status_code == 200

    cleared = control.delete("/restate", params={"day": "2026-01-06"}).json()
    assert cleared["cleared"] == 1 and [r["day"] for r in cleared["restatements"]] == ["2026-01-05", "2026-01-07"]
    assert control.delete("/restate").json() == {"cleared": 2, "restatements": []}
    assert client.get(usage_path("v2"), params=window).content == original

    control.post("/restate", json=body)
    control.post("/reset")
    assert control.get("/restate").json() == {"restatements": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"account_id": "acme", "day": "2026-01-05"}, "account_id must be 32 lowercase hex characters"),
        ({"account_id": ACCOUNT, "day": "2026-13-01"}, "not a valid calendar date"),
        ({"account_id": ACCOUNT, "day": "2026-01-05T00:00:00Z"}, "YYYY-MM-DD"),
        ({"account_id": ACCOUNT, "day": "2026-01-05", "factor": -2}, "factor must be a positive number"),
        ({"account_id": ACCOUNT, "day": "2026-01-05", "factor": "big"}, "factor must be a number"),
        ({"account_id": ACCOUNT, "day": "2026-01-05", "corrections": -1}, "corrections must be a whole number"),
        ({"account_id": ACCOUNT, "day": "2026-01-05", "factor": 1, "corrections": 0}, "must change something"),
        ({"account_id": ACCOUNT, "day": "2026-01-05", "scale": 2}, "unknown restatement fields"),
        ({"day": "2026-01-05"}, "needs 'account_id'"),
        ([ACCOUNT + ":2026-01-05", "nope:2026-01-05"], "32 lowercase hex"),
        (42, "send"),
    ],
)
def test_restate_rejects_bad_input(emu: Emulator, control: httpx.Client, body: object, message: str) -> None:
    response = control.post("/restate", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert emu.restatements == []  # nothing applied, not even the valid part of a list
    assert control.delete("/restate", params={"account_id": "acme"}).status_code == 400


def test_config_switches_shuffle_records(emu: Emulator, control: httpx.Client) -> None:
    assert control.get("/config").json()["shuffle_records"] is False
    assert control.post("/config", json={"shuffle_records": True}).json()["shuffle_records"] is True
    assert emu.shuffle_records is True
    control.post("/reset")
    assert emu.shuffle_records is False
