"""Faults on demand: every kind, request-count scripting per route, the rate-limit block, Retry-After forms."""

from __future__ import annotations

import email.utils
import time
from datetime import datetime, timezone

import httpx
import pytest
from emulator_helpers import ACCOUNT, usage_path

from airflow_provider_cfbilling.emulator import Emulator
from airflow_provider_cfbilling.emulator.faults import Fault, RateLimitConfig, parse_fault_spec

pytestmark = pytest.mark.faults

V2 = usage_path("v2")
PAYGO = usage_path("paygo")
WINDOW = {"from": "2026-01-05", "to": "2026-01-07"}


def statuses(client: httpx.Client, path: str, n: int) -> list[int]:
    return [client.get(path, params=WINDOW).status_code for _ in range(n)]


def test_nth_request_on_a_route(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="v2", kind="status", status=503, nth=3)
    assert statuses(client, V2, 5) == [200, 200, 503, 200, 200]
    body = None
    emu.add_fault(route="v2", kind="status", status=503, nth=1)
    response = client.get(V2, params=WINDOW)
    body = response.json()
    assert response.status_code == 503
    assert body["success"] is False and body["result"] is None and body["errors"][0]["code"]


def test_next_n_requests_and_counting_per_route(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="paygo", kind="status", status=502, count=2)
    assert client.get(V2, params=WINDOW).status_code == 200  # other routes do not count
    assert statuses(client, PAYGO, 3) == [502, 502, 200]
    assert [entry["fault"] for entry in emu.request_log] == [None, "status", "status", None]


def test_from_nth_on_every_route_is_delayed(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="*", kind="latency", seconds=0.3, from_nth=3)
    durations = []
    for path in (V2, PAYGO, f"/accounts/{ACCOUNT}", V2):
        started = time.monotonic()
        assert client.get(path).status_code == 200
        durations.append(time.monotonic() - started)
    assert durations[0] < 0.25 and durations[1] < 0.25
    assert durations[2] >= 0.3 and durations[3] >= 0.3


def test_latency_combines_with_another_fault(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="v2", kind="latency", seconds=0.2, count=1)
    emu.add_fault(route="v2", kind="status", status=500, count=1)
    started = time.monotonic()
    assert client.get(V2, params=WINDOW).status_code == 500
    assert time.monotonic() - started >= 0.2


def test_rate_limit_fault_with_retry_after_seconds(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="v2", kind="rate_limit", retry_after=2, count=1)
    response = client.get(V2, params=WINDOW)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["errors"][0]["code"] == 971
    assert client.get(V2, params=WINDOW).status_code == 200


def test_rate_limit_fault_with_retry_after_http_date(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="v2", kind="rate_limit", retry_after=5, retry_after_http_date=True, count=1)
    response = client.get(V2, params=WINDOW)
    assert response.status_code == 429
    when = email.utils.parsedate_to_datetime(response.headers["Retry-After"])
    assert when.tzinfo is not None
    wait = (when - datetime.now(timezone.utc)).total_seconds()
    assert 3 <= wait <= 7


def test_status_fault_can_carry_retry_after(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="v2", kind="status", status=503, retry_after=1, code=2001, message="maintenance", nth=1)
    response = client.get(V2, params=WINDOW)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["errors"] == [{"code": 2001, "message": "maintenance"}]


def test_cloudflare_like_block_after_n_requests(emu: Emulator, client: httpx.Client) -> None:
    emu.set_rate_limit(max_requests=3, window_seconds=300, block_seconds=300)
    assert statuses(client, V2, 3) == [200, 200, 200]
    blocked = client.get(V2, params=WINDOW)
    assert blocked.status_code == 429
    assert blocked.headers["Retry-After"] == "300"
    emu.advance_clock(100)
    still = client.get(f"/accounts/{ACCOUNT}")  # every route is blocked
    assert still.status_code == 429
    assert still.headers["Retry-After"] == "200"
    emu.advance_clock(200)
    assert client.get(V2, params=WINDOW).status_code == 200
    emu.set_rate_limit(None)
    assert statuses(client, V2, 5) == [200] * 5


def test_rate_limit_window_slides(emu: Emulator, client: httpx.Client) -> None:
    emu.set_rate_limit(max_requests=2, window_seconds=10, block_seconds=30)
    assert statuses(client, V2, 2) == [200, 200]
    emu.advance_clock(11)  # the first two left the window
    assert statuses(client, V2, 2) == [200, 200]
    assert client.get(V2, params=WINDOW).status_code == 429


def test_block_retry_after_as_http_date(emu: Emulator, client: httpx.Client) -> None:
    emu.set_rate_limit(max_requests=1, window_seconds=60, block_seconds=30, retry_after_http_date=True)
    assert client.get(V2, params=WINDOW).status_code == 200
    response = client.get(V2, params=WINDOW)
    assert response.status_code == 429
    wait = email.utils.parsedate_to_datetime(response.headers["Retry-After"]) - datetime.now(timezone.utc)
    assert 28 <= wait.total_seconds() <= 32


def test_drop_closes_the_connection_without_a_response(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="v2", kind="drop", nth=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(V2, params=WINDOW)
    assert client.get(V2, params=WINDOW).status_code == 200
    assert emu.request_log[0]["status"] is None and emu.request_log[0]["fault"] == "drop"


@pytest.mark.parametrize("mode", ["length", "chunked"])
def test_truncated_body(emu: Emulator, client: httpx.Client, mode: str) -> None:
    emu.add_fault(route="v2", kind="truncate", mode=mode, nth=1)
    with client.stream("GET", V2, params=WINDOW) as response:
        assert response.status_code == 200
        if mode == "length":
            assert int(response.headers["Content-Length"]) > 0
        else:
            assert response.headers["Transfer-Encoding"] == "chunked"
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    assert client.get(V2, params=WINDOW).json()["success"] is True


def test_success_false_with_http_200(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="profile", kind="success_false", code=1234, nth=1)
    response = client.get(f"/accounts/{ACCOUNT}/billing/profile")
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is False and body["result"] is None
    assert body["errors"][0]["code"] == 1234


def test_not_json(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="v2", kind="not_json", nth=1)
    emu.add_fault(route="v2", kind="not_json", status=502, nth=2)
    response = client.get(V2, params=WINDOW)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()
    assert client.get(V2, params=WINDOW).status_code == 502


def test_group_selectors_and_clear(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault(route="verify", kind="status", status=500)
    assert client.get("/user/tokens/verify").status_code == 500
    assert client.get(V2, params=WINDOW).status_code == 200
    emu.clear_faults()
    assert client.get("/user/tokens/verify").status_code == 200
    assert emu.faults == []


def test_fault_spec_text_form() -> None:
    assert parse_fault_spec("v2:nth=3:status=503") == {"route": "v2", "nth": 3, "status": 503, "kind": "status"}
    assert parse_fault_spec("paygo:count=2:status=502")["count"] == 2
    assert parse_fault_spec("*:from_nth=5:latency=3") == {
        "route": "*",
        "from_nth": 5,
        "seconds": 3.0,
        "kind": "latency",
    }
    limit = parse_fault_spec("v2:count=1:rate_limit=2:http_date")
    assert limit == {"route": "v2", "count": 1, "retry_after": 2.0, "retry_after_http_date": True, "kind": "rate_limit"}
    assert parse_fault_spec("v2:truncate=chunked")["mode"] == "chunked"
    assert parse_fault_spec("v2:not_json=502") == {"route": "v2", "status": 502, "kind": "not_json"}
    assert parse_fault_spec("profile:kind=success_false:code=7")["code"] == 7
    for bad in ("", "nowhere:status=500", "v2", "v2:drop:status=500:truncate", "v2:bogus=1", "v2:nth=x:drop"):
        with pytest.raises(ValueError):
            Fault(**parse_fault_spec(bad))
    with pytest.raises(ValueError):
        Fault(route="v2", kind="status", nth=2, count=3)
    assert RateLimitConfig.parse("1200/300/300") == RateLimitConfig(1200, 300, 300)


def test_latency_does_not_hold_up_stop() -> None:
    emu = Emulator().start()
    emu.add_fault(route="*", kind="latency", seconds=30)
    errors: list[Exception] = []

    def call() -> None:
        try:
            httpx.get(emu.base_url + "/user/tokens/verify", timeout=10, verify=False)
        except Exception as error:
            errors.append(error)

    import threading

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.2)
    started = time.monotonic()
    emu.stop()
    caller.join(10)
    assert time.monotonic() - started < 3
    assert errors  # the delayed request was cut off by the shutdown
