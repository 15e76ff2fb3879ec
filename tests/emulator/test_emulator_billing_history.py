"""Billing history over real loopback HTTP: V4PagePaginationArray paging (0, 1 and many pages, ``[]``
past the end), ``per_page`` limits, the ``status`` filter, the misbehaving-server switches, and how the
items follow the account's billing periods and subscriptions."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from emulator_helpers import ACCOUNT, BEARER, FROZEN, OTHER_ACCOUNT, history_path

from airflow_provider_cfbilling.emulator import Emulator
from airflow_provider_cfbilling.emulator.cli import build_emulator, build_parser

HISTORY = history_path()
ITEM_KEYS = {
    "id",
    "type",
    "action",
    "description",
    "occurred_at",
    "amount",
    "amount_to_pay",
    "currency",
    "status",
    "invoice_id",
    "receipt_id",
    "external_invoice_id",
    "source",
    "source_invoice_id",
    "hosted_invoice_url",
}


def page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get(HISTORY, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["success"] is True
    return body


def walk(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Page the way the SDK does: the first request without ``page``, then page + 1 until ``result`` is
    empty. Returns the items and the number of requests (bounded, so a looping server fails the test)."""
    items: list[dict[str, Any]] = []
    body = page(client, **params)
    requests = 1
    while body["result"]:
        items.extend(body["result"])
        assert requests < 500, "the history never ends"
        body = page(client, **params, page=body["result_info"]["page"] + 1)
        requests += 1
    return items, requests


def test_walking_every_page_collects_the_whole_history(emu: Emulator, client: httpx.Client) -> None:
    items, requests = walk(client)
    assert items == emu.expected_billing_history(ACCOUNT)
    assert len(items) == 25 and requests == 3  # 20 + 5, then the empty page
    first = page(client)
    assert first["result_info"] == {"page": 1, "per_page": 20, "count": 20, "total_count": 25, "total_pages": 2}
    assert page(client, page=2)["result_info"] == {
        "page": 2,
        "per_page": 20,
        "count": 5,
        "total_count": 25,
        "total_pages": 2,
    }
    past = page(client, page=3)
    assert past["result"] == [] and past["result_info"]["count"] == 0
    assert page(client, page=10**12)["result"] == []
    logged = [entry["query"].get("page") for entry in emu.request_log[:requests]]
    assert logged == [None, ["2"], ["3"]]


@pytest.mark.parametrize(
    ("history_items", "per_page", "pages"),
    [(0, 20, 0), (1, 20, 1), (20, 20, 1), (21, 20, 2), (25, 1, 25), (7, 3, 3), (120, 50, 3)],
)
def test_zero_one_and_many_pages(
    emu: Emulator, client: httpx.Client, history_items: int, per_page: int, pages: int
) -> None:
    emu.configure(history_items=history_items)
    items, requests = walk(client, per_page=per_page)
    assert items == emu.expected_billing_history(ACCOUNT)
    assert len(items) == history_items and requests == pages + 1
    info = page(client, per_page=per_page)["result_info"]
    assert (info["total_count"], info["total_pages"]) == (history_items, pages)
    assert len({item["id"] for item in items}) == history_items


def test_per_page_limits(client: httpx.Client) -> None:
    assert page(client, per_page=50)["result_info"]["per_page"] == 50
    for params in (
        {"per_page": 51},
        {"per_page": 0},
        {"per_page": -1},
        {"per_page": "x"},
        {"page": 0},
        {"page": "1.5"},
    ):
        response = client.get(HISTORY, params=params)
        assert response.status_code == 400, params
        body = response.json()
        assert body["success"] is False and body["result"] is None and body["errors"][0]["code"] == 1183
    assert page(client, page="", per_page="")["result_info"]["per_page"] == 20  # blank: the defaults


def test_items_are_newest_first_and_well_formed(emu: Emulator, client: httpx.Client) -> None:
    items = emu.expected_billing_history(ACCOUNT)
    assert [item["occurred_at"] for item in items] == sorted((item["occurred_at"] for item in items), reverse=True)
    for item in items:
        assert set(item) == ITEM_KEYS
        assert item["currency"] == "USD"
        assert item["type"] in ("charge", "refund")
        assert item["status"] in ("paid", "unpaid", "refunded")
        assert isinstance(item["amount"], float) and isinstance(item["amount_to_pay"], float)
        assert item["hosted_invoice_url"].startswith("https://invoice.emulator.invalid/i/")
        assert len(item["hosted_invoice_url"].rsplit("/", 1)[1]) == 43
        assert datetime.fromisoformat(item["occurred_at"].replace("Z", "+00:00")) <= FROZEN
    assert len({item["hosted_invoice_url"] for item in items}) == len(items)
    assert Counter(item["type"] for item in items) == Counter({"charge": 21, "refund": 4})


def test_one_charge_per_billing_period(emu: Emulator) -> None:
    charges = [item for item in emu.expected_billing_history(ACCOUNT) if item["type"] == "charge"]
    fees = sum(subscription["price"] for subscription in emu.expected_subscriptions(ACCOUNT))
    current_start, _ = emu.billing_period(ACCOUNT, FROZEN.date())
    expected_end = current_start
    for charge in charges:
        issued = date.fromisoformat(charge["occurred_at"][:10])
        start, end = emu.billing_period(ACCOUNT, issued - timedelta(days=1))
        assert issued == end == expected_end  # issued on the last period's end day, none skipped
        assert f"{start.isoformat()} to {end.isoformat()}" in charge["description"]
        assert fees <= charge["amount"] <= fees + 60
        assert charge["action"] == "subscription" and charge["status"] == "paid" and charge["amount_to_pay"] == 0
        expected_end = start
    refunds = [item for item in emu.expected_billing_history(ACCOUNT) if item["type"] == "refund"]
    invoices = {charge["invoice_id"]: charge for charge in charges}
    for refund in refunds:
        assert refund["status"] == "refunded" and refund["amount"] < 0
        assert -refund["amount"] < invoices[refund["invoice_id"]]["amount"]
        assert refund["occurred_at"] > invoices[refund["invoice_id"]]["occurred_at"]


def test_a_new_charge_is_unpaid_for_fourteen_days(emu: Emulator, client: httpx.Client) -> None:
    _, end = emu.billing_period(ACCOUNT, FROZEN.date())
    emu.set_clock(datetime.combine(end, datetime.min.time(), tzinfo=timezone.utc))
    assert page(client, per_page=1)["result"][0]["occurred_at"] < f"{end.isoformat()}"  # not issued yet
    emu.advance_clock(6 * 3600)
    newest = page(client, per_page=1)["result"][0]
    assert newest["occurred_at"].startswith(end.isoformat())
    assert (newest["type"], newest["status"], newest["receipt_id"]) == ("charge", "unpaid", None)
    assert newest["amount_to_pay"] == newest["amount"] > 0
    assert [item["id"] for item in page(client, status="unpaid")["result"]] == [newest["id"]]
    emu.advance_clock(14 * 86400)
    paid = page(client, per_page=1)["result"][0]
    assert (paid["id"], paid["status"], paid["amount_to_pay"]) == (newest["id"], "paid", 0.0)


@pytest.mark.parametrize("status", ["paid", "refunded", "unpaid", "no-such-status"])
def test_status_filter(emu: Emulator, client: httpx.Client, status: str) -> None:
    expected = [item for item in emu.expected_billing_history(ACCOUNT) if item["status"] == status]
    assert emu.expected_billing_history(ACCOUNT, status=status) == expected
    items, _ = walk(client, status=status, per_page=3)
    assert items == expected
    info = page(client, status=status, per_page=3)["result_info"]
    assert (info["total_count"], info["total_pages"]) == (len(expected), -(-len(expected) // 3))
    logged = emu.request_log[-1]["query"]
    assert logged["status"] == [status] and logged["per_page"] == ["3"]


def test_repeat_pages_switch_never_returns_an_empty_page(emu: Emulator, client: httpx.Client) -> None:
    first = page(client, per_page=5)["result"]
    emu.configure(history_repeat_pages=True)
    for number in (1, 2, 6, 7, 1000):
        body = page(client, per_page=5, page=number)
        assert body["result"] == first and body["result_info"]["page"] == number
    emu.configure(history_items=0)
    assert page(client, page=2)["result"] == []  # nothing to repeat


def test_hide_page_count_switch(emu: Emulator, client: httpx.Client) -> None:
    emu.configure(history_hide_page_count=True)
    assert page(client, per_page=10)["result_info"] == {"page": 1, "per_page": 10, "count": 10}
    assert page(client, per_page=10, page=4)["result_info"] == {"page": 4, "per_page": 10, "count": 0}
    items, requests = walk(client, per_page=10)
    assert items == emu.expected_billing_history(ACCOUNT) and requests == 4


def test_switches_through_the_control_api_and_reset(emu: Emulator, client: httpx.Client) -> None:
    with httpx.Client(base_url=emu.control_url, timeout=10) as control:
        settings = control.get("/config").json()
        assert (settings["history_items"], settings["history_repeat_pages"], settings["history_hide_page_count"]) == (
            25,
            False,
            False,
        )
        changed = control.post(
            "/config", json={"history_items": 3, "history_repeat_pages": True, "history_hide_page_count": True}
        ).json()
        assert (changed["history_items"], changed["history_repeat_pages"], changed["history_hide_page_count"]) == (
            3,
            True,
            True,
        )
        body = page(client, page=9)
        assert len(body["result"]) == 3 and "total_pages" not in body["result_info"]
        expected = control.get("/expected", params={"account_id": ACCOUNT, "source": "billing-history"}).json()
        assert expected == body["result"]
        refunded = control.get(
            "/expected", params={"account_id": ACCOUNT, "source": "billing-history", "status": "refunded"}
        ).json()
        assert refunded == emu.expected_billing_history(ACCOUNT, status="refunded")
        subscriptions = control.get("/expected", params={"account_id": ACCOUNT, "source": "subscriptions"}).json()
        assert subscriptions == emu.expected_subscriptions(ACCOUNT)
        assert control.post("/config", json={"history_items": 1001}).status_code == 400
        assert control.post("/config", json={"history_items": -1}).status_code == 400
        control.post("/reset")
    assert (emu.history_items, emu.history_repeat_pages, emu.history_hide_page_count) == (25, False, False)
    assert len(page(client)["result"]) == 20


def test_history_settings_from_the_constructor_and_the_command_line() -> None:
    args = build_parser().parse_args(["--history-items", "4", "--history-repeat-pages", "--history-hide-page-count"])
    emu = build_emulator(args)
    assert (emu.history_items, emu.history_repeat_pages, emu.history_hide_page_count) == (4, True, True)
    assert build_emulator(build_parser().parse_args([])).history_items == 25
    with pytest.raises(ValueError, match="history_items"):
        build_emulator(build_parser().parse_args(["--history-items", "5000"]))
    with pytest.raises(ValueError, match="history_items"):
        Emulator(history_items=-1)


def test_deterministic_per_account_and_seed(client: httpx.Client) -> None:
    first = client.get(HISTORY)
    assert client.get(HISTORY).content == first.content
    other = client.get(history_path(OTHER_ACCOUNT)).json()["result"]
    assert {item["id"] for item in other}.isdisjoint({item["id"] for item in first.json()["result"]})
    with Emulator(clock=FROZEN, seed=9) as reseeded, httpx.Client(base_url=reseeded.base_url, headers=BEARER) as http:
        assert http.get(HISTORY).content != first.content


def test_a_fault_on_one_history_page(emu: Emulator, client: httpx.Client) -> None:
    emu.add_fault_spec("billing-history:nth=2:status=503")
    assert client.get(HISTORY, params={"per_page": 10}).status_code == 200
    failed = client.get(HISTORY, params={"per_page": 10, "page": 2})
    assert failed.status_code == 503 and failed.json()["success"] is False
    retried = client.get(HISTORY, params={"per_page": 10, "page": 2})
    assert retried.status_code == 200
    assert retried.json()["result"] == emu.expected_billing_history(ACCOUNT)[10:20]
    assert [(e["route"], e["status"], e["fault"]) for e in emu.request_log] == [
        ("billing-history", 200, None),
        ("billing-history", 503, "status"),
        ("billing-history", 200, None),
    ]
    assert emu.route_counts() == {"billing-history": 3}
