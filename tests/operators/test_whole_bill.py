"""The whole bill: an organization's usage, subscriptions and billing history, against the emulator."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_cfbilling.emulator import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_ORGANIZATION_ACCOUNTS,
    DEFAULT_ORGANIZATION_ID,
)
from airflow_provider_cfbilling.exceptions import CloudflareAPIError, CloudflareInputError
from airflow_provider_cfbilling.operators.billing import (
    CloudflareBillingHistoryOperator,
    CloudflareSubscriptionsOperator,
    CloudflareUsageV2Operator,
)
from airflow_provider_cfbilling.records import REDACTED
from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor
from airflow_provider_cfbilling.sinks import read_records

ONE_DAY = dt.timedelta(days=1)


def canonical(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(record, sort_keys=True) for record in records)


def requests_to(emulator: Any, route: str) -> list[dict[str, Any]]:
    return [entry for entry in emulator.request_log if entry["route"] == route]


# ---------------------------------------------------------------- organization usage


@pytest.mark.parametrize("to_inclusive", [False, True])
def test_organization_usage_is_the_union_of_its_accounts_usage(emulator, cloudflare_conn, to_inclusive):
    emulator.configure(to_inclusive=to_inclusive)
    start, end = "2025-05-10", "2025-06-15"  # 36 days: two requests under either reading of `to`
    window = {"period_start": start, "period_end": end, "max_xcom_records": 1_000_000}
    organization = CloudflareUsageV2Operator(task_id="o", organization_id=DEFAULT_ORGANIZATION_ID, **window).execute({})
    assert len(requests_to(emulator, "organization-v2")) == 2
    per_account = []
    for account in DEFAULT_ORGANIZATION_ACCOUNTS:
        per_account += CloudflareUsageV2Operator(task_id=f"a{account}", account_id=account, **window).execute({})
    assert organization
    assert canonical(organization) == canonical(per_account)
    assert {record["BillingAccountId"] for record in organization} == set(DEFAULT_ORGANIZATION_ACCOUNTS)


def test_the_connections_organization_is_the_default_and_its_account_is_then_ignored(
    emulator, cloudflare_conn, monkeypatch, tmp_path
):
    connection = {**cloudflare_conn, "extra": {**cloudflare_conn["extra"], "organization_id": DEFAULT_ORGANIZATION_ID}}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection))
    destination = f"file://{tmp_path}/organization_id={{organization_id}}/charge_date={{charge_date}}/usage.jsonl"
    summary = CloudflareUsageV2Operator(
        task_id="o", period_start="2025-06-17", period_end="2025-06-19", destination=destination, lookback_days=1
    ).execute({})
    assert (summary["organization_id"], summary["account_id"]) == (DEFAULT_ORGANIZATION_ID, None)
    assert summary["endpoint"] == f"/organizations/{DEFAULT_ORGANIZATION_ID}/billable/usage"
    assert [part["charge_date"] for part in summary["partitions"]] == ["2025-06-16", "2025-06-17", "2025-06-18"]
    for part in summary["partitions"]:
        day = dt.date.fromisoformat(part["charge_date"])
        assert read_records(part["uri"]) == emulator.expected_organization_records(DEFAULT_ORGANIZATION_ID, day)
        path = Path(part["uri"].removeprefix("file://"))
        manifest = json.loads((path.parent / f"_{path.name}.manifest.json").read_text())
        assert (manifest["organization_id"], manifest["account_id"]) == (DEFAULT_ORGANIZATION_ID, None)
    assert requests_to(emulator, "v2") == []


@pytest.mark.parametrize(
    ("kwargs", "parameter", "fragment"),
    [
        ({"organization_id": DEFAULT_ORGANIZATION_ID, "account_id": DEFAULT_ACCOUNT_ID}, "organization_id", "both"),
        ({"organization_id": "acme"}, "organization_id", "not a Cloudflare organization id"),
        (
            {"organization_id": DEFAULT_ORGANIZATION_ID, "destination": "file:///tmp/cf-never/{account_id}/u.jsonl"},
            "destination",
            "{account_id}",
        ),
        ({"destination": "file:///tmp/cf-never/{organization_id}/u.jsonl"}, "destination", "{organization_id}"),
    ],
)
def test_bad_organization_input_fails_before_any_request(emulator, cloudflare_conn, kwargs, parameter, fragment):
    operator = CloudflareUsageV2Operator(task_id="t", period_start="2025-06-17", period_end="2025-06-18", **kwargs)
    with pytest.raises(CloudflareInputError) as raised:
        operator.execute({})
    assert raised.value.parameter == parameter
    assert fragment in str(raised.value)
    assert emulator.request_log == []
    assert not Path("/tmp/cf-never").exists()


def test_the_sensor_waits_for_an_organizations_day(emulator, cloudflare_conn):
    sensor = CloudflareUsageAvailableSensor(task_id="s", day="2025-06-18", organization_id=DEFAULT_ORGANIZATION_ID)
    start = pendulum.datetime(2025, 6, 18, tz="UTC")
    assert sensor.poke({"data_interval_start": start, "data_interval_end": start.add(days=1)}) is True
    assert len(requests_to(emulator, "organization-v2")) == 1
    with pytest.raises(CloudflareInputError, match="v2 usage only"):
        CloudflareUsageAvailableSensor(
            task_id="p", day="2025-06-18", organization_id=DEFAULT_ORGANIZATION_ID, source="paygo"
        ).poke({})


# ---------------------------------------------------------------- subscriptions


def test_subscriptions_to_xcom_and_to_storage_with_a_manifest(emulator, cloudflare_conn, tmp_path):
    expected = emulator.expected_subscriptions(DEFAULT_ACCOUNT_ID)
    assert expected
    assert CloudflareSubscriptionsOperator(task_id="x").execute({}) == expected
    summary = CloudflareSubscriptionsOperator(
        task_id="s", destination=f"file://{tmp_path}/subscriptions/account_id={{account_id}}/subscriptions.parquet"
    ).execute({})
    assert summary["records"] == len(expected)
    assert summary["endpoint"] == f"/accounts/{DEFAULT_ACCOUNT_ID}/subscriptions"
    landed = read_records(summary["uri"])
    assert [row["id"] for row in landed] == [item["id"] for item in expected]
    assert [row["price"] for row in landed] == [item.get("price") for item in expected]
    assert json.loads(landed[0]["rate_plan"]) == expected[0]["rate_plan"]  # nested: compact JSON text
    path = Path(summary["uri"].removeprefix("file://"))
    manifest = json.loads((path.parent / f"_{path.name}.manifest.json").read_text())
    assert (manifest["period_start"], manifest["period_end"], manifest["records"]) == (None, None, len(expected))


# ---------------------------------------------------------------- billing history


@pytest.mark.parametrize(("items", "per_page", "pages"), [(0, 50, 1), (7, 50, 1), (45, 10, 5)])
def test_billing_history_walks_every_page_and_stops(emulator, cloudflare_conn, items, per_page, pages):
    emulator.configure(history_items=items)
    got = CloudflareBillingHistoryOperator(task_id="h", per_page=per_page, redact=False).execute({})
    assert got == emulator.expected_billing_history(DEFAULT_ACCOUNT_ID)
    assert len(got) == items
    requested = [int(entry["query"]["page"][0]) for entry in requests_to(emulator, "billing-history")]
    # Stopped by the server's page count (or by the first, empty page): never a page too many.
    assert requested == list(range(1, pages + 1))


def test_billing_history_stops_at_an_empty_page_when_the_server_gives_no_page_count(emulator, cloudflare_conn):
    emulator.configure(history_items=25, history_hide_page_count=True)
    got = CloudflareBillingHistoryOperator(task_id="h", per_page=10, redact=False).execute({})
    assert got == emulator.expected_billing_history(DEFAULT_ACCOUNT_ID)
    assert len(requests_to(emulator, "billing-history")) == 4  # 10 + 10 + 5, then the empty page


def test_a_transient_fault_on_page_3_is_retried_within_the_policy(emulator, cloudflare_conn, tmp_path):
    emulator.configure(history_items=45)
    emulator.add_fault(route="billing-history", kind="status", status=503, nth=3)
    summary = CloudflareBillingHistoryOperator(
        task_id="h", per_page=10, destination=f"file://{tmp_path}/history.jsonl"
    ).execute({})
    assert summary["records"] == 45
    statuses = [entry["status"] for entry in requests_to(emulator, "billing-history")]
    assert statuses == [200, 200, 503, 200, 200, 200]


@pytest.mark.parametrize(
    ("settings", "kwargs", "fragment"),
    [
        ({"history_items": 45}, {}, None),  # a persistent 503 on page 3
        ({"history_items": 45, "history_repeat_pages": True}, {}, "repeats page 1"),
        ({"history_items": 45, "history_repeat_pages": True, "history_hide_page_count": True}, {}, "repeats page 1"),
        ({"history_items": 45, "history_hide_page_count": True}, {"max_pages": 2}, "after 2 pages"),
    ],
)
def test_billing_history_writes_nothing_when_a_page_fails_or_the_server_loops(
    emulator, cloudflare_conn, tmp_path, settings, kwargs, fragment
):
    emulator.configure(**settings)
    if fragment is None:
        emulator.add_fault(route="billing-history", kind="status", status=503, from_nth=3)
    target = tmp_path / "history.jsonl"
    target.write_bytes(b"previous\n")
    operator = CloudflareBillingHistoryOperator(task_id="h", per_page=10, destination=f"file://{target}", **kwargs)
    with pytest.raises(CloudflareAPIError) as raised:
        operator.execute({})
    if fragment:
        assert fragment in str(raised.value)
        assert raised.value.retryable is False  # a server that loops will loop again: no Airflow retries
    else:
        assert raised.value.status == 503
    assert target.read_bytes() == b"previous\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["history.jsonl"]
    requests = len(requests_to(emulator, "billing-history"))
    # Two good pages, then page 3 with the hook's retries (1 + 8); or the walk stopped at once.
    assert requests == (2 + 9 if fragment is None else kwargs.get("max_pages", 2))


def test_invoice_links_are_redacted_by_default(emulator, cloudflare_conn, tmp_path):
    emulator.configure(history_items=5)
    items = CloudflareBillingHistoryOperator(task_id="h").execute({})
    raw = emulator.expected_billing_history(DEFAULT_ACCOUNT_ID)
    assert all(item["hosted_invoice_url"] == REDACTED for item in items if item.get("hosted_invoice_url"))
    assert any(item.get("hosted_invoice_url") for item in items)
    assert [{k: v for k, v in item.items() if k != "hosted_invoice_url"} for item in items] == [
        {k: v for k, v in item.items() if k != "hosted_invoice_url"} for item in raw
    ]
    summary = CloudflareBillingHistoryOperator(task_id="h2", destination=f"file://{tmp_path}/h.csv").execute({})
    written = (tmp_path / "h.csv").read_text() + (tmp_path / "_h.csv.manifest.json").read_text()
    assert summary["records"] == 5
    assert all(item["hosted_invoice_url"] not in written for item in raw if item.get("hosted_invoice_url"))


@pytest.mark.parametrize("kwargs", [{"per_page": 0}, {"max_pages": -1}, {"redact": "yes"}])
def test_bad_history_arguments_are_refused_when_the_dag_is_parsed(kwargs):
    with pytest.raises(CloudflareInputError):
        CloudflareBillingHistoryOperator(task_id="h", **kwargs)


def test_subscriptions_and_history_land_in_s3_with_their_manifests(emulator, cloudflare_conn, s3_server):
    bucket, client, conn_id = s3_server["bucket"], s3_server["client"], s3_server["conn_id"]
    prefix = f"bill-{pendulum.now().int_timestamp}"
    emulator.configure(history_items=30)
    for operator in (
        CloudflareSubscriptionsOperator(
            task_id="s", destination=f"s3://{bucket}/{prefix}/subscriptions.jsonl", destination_conn_id=conn_id
        ),
        CloudflareBillingHistoryOperator(
            task_id="h", per_page=10, destination=f"s3://{bucket}/{prefix}/history.csv", destination_conn_id=conn_id
        ),
    ):
        operator.execute({})
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"])
    assert keys == sorted(
        f"{prefix}/{name}"
        for name in (
            "subscriptions.jsonl",
            "_subscriptions.jsonl.manifest.json",
            "history.csv",
            "_history.csv.manifest.json",
        )
    )
    landed = read_records(f"s3://{bucket}/{prefix}/history.csv", conn_id=conn_id)
    assert [row["id"] for row in landed] == [
        item["id"] for item in emulator.expected_billing_history(DEFAULT_ACCOUNT_ID)
    ]
    assert {row["hosted_invoice_url"] for row in landed} == {REDACTED}
