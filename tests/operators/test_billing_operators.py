"""The billing operators' behaviour against the emulator over loopback, calling ``execute`` directly.

The end-to-end runs through Airflow's task runner live in ``test_billing_operators_e2e.py``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.exceptions import CloudflareInputError, CloudflareNotFoundError
from airflow_provider_cfbilling.operators.billing import (
    CloudflareBillingProfileOperator,
    CloudflarePaygoUsageOperator,
    CloudflareUsageV2Operator,
)
from airflow_provider_cfbilling.records import PROFILE_REDACTED_FIELDS, REDACTED, columns_for, snake_key
from airflow_provider_cfbilling.windows import latest_anchor_on_or_before

OTHER_ACCOUNT = "5f0c1e2d3c4b5a69788796a5b4c3d2e1"


def days(start: str, end: str) -> list[dt.date]:
    first, stop = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [first + dt.timedelta(days=offset) for offset in range((stop - first).days)]


def expected(emulator: Any, start: str, end: str, source: str = "v2", account: str = DEFAULT_ACCOUNT_ID, metric=None):
    return [
        record
        for day in days(start, end)
        for record in emulator.expected_records(account, day, source=source, metric=metric)
    ]


def run(operator: Any, **context: Any) -> Any:
    return operator.execute(context)


def usage_requests(emulator: Any) -> list[dict[str, Any]]:
    return [entry for entry in emulator.request_log if "/accounts/" in entry["path"]]


# ---------------------------------------------------------------- v2


@pytest.mark.parametrize("to_inclusive", [False, True])
def test_v2_window_is_exact_whatever_the_servers_to_semantics(emulator, cloudflare_conn, to_inclusive):
    emulator.configure(to_inclusive=to_inclusive)
    records = run(CloudflareUsageV2Operator(task_id="t", period_start="2025-06-10", period_end="2025-06-13"))
    assert records == expected(emulator, "2025-06-10", "2025-06-13")
    assert {r["ChargePeriodStart"][:10] for r in records} == {"2025-06-10", "2025-06-11", "2025-06-12"}


@pytest.mark.parametrize("to_inclusive", [False, True])
def test_long_v2_windows_are_split_and_merged_without_duplicates(emulator, cloudflare_conn, to_inclusive):
    emulator.configure(to_inclusive=to_inclusive)
    operator = CloudflareUsageV2Operator(
        task_id="t", period_start="2025-04-01", period_end="2025-06-15", max_xcom_records=100_000
    )
    records = run(operator)
    assert records == expected(emulator, "2025-04-01", "2025-06-15")
    keys = [json.dumps(record, sort_keys=True) for record in records]
    assert len(keys) == len(set(keys))
    requests = usage_requests(emulator)
    # to - from at most 30 days: at most 31 days covered under either reading of `to`.
    assert [(r["query"]["from"][0], r["query"]["to"][0]) for r in requests] == [
        ("2025-04-01", "2025-05-01"),
        ("2025-05-01", "2025-05-31"),
        ("2025-05-31", "2025-06-15"),
    ]


@pytest.mark.parametrize("to_inclusive", [False, True])
@pytest.mark.parametrize(
    ("start", "end", "requests_expected"),
    [("2025-05-01", "2025-06-01", 2), ("2025-03-01", "2025-05-15", 3), ("2025-05-01", "2025-05-31", 1)],
)
def test_calendar_months_and_long_v2_windows_fit_under_either_reading_of_to(
    emulator, cloudflare_conn, to_inclusive, start, end, requests_expected
):
    # The emulator counts its 31-day limit the way its switch reads `to`: read inclusively,
    # from=2025-05-01&to=2025-06-01 covers 32 days and is refused with 400 1183.
    emulator.configure(to_inclusive=to_inclusive)
    records = run(CloudflareUsageV2Operator(task_id="t", period_start=start, period_end=end, max_xcom_records=100_000))
    assert records == expected(emulator, start, end)
    requests = usage_requests(emulator)
    assert len(requests) == requests_expected
    assert all(r["status"] == 200 for r in requests)


def test_v2_metric_is_sent_and_enforced_on_records(emulator, cloudflare_conn):
    emulator.configure(ignore_metric_filter=True)
    metric = "workers_standard_requests"
    records = run(
        CloudflareUsageV2Operator(task_id="t", period_start="2025-06-10", period_end="2025-06-12", metric=metric)
    )
    assert records
    assert {record["x_BillableMetricId"] for record in records} == {metric}
    assert records == expected(emulator, "2025-06-10", "2025-06-12", metric=metric)
    query = usage_requests(emulator)[0]["query"]
    assert query["metric"] == [metric]


def test_v2_default_window_is_the_day_before_the_logical_date(emulator, cloudflare_conn):
    logical = pendulum.datetime(2025, 6, 19, tz="UTC")
    records = run(
        CloudflareUsageV2Operator(task_id="t"),
        logical_date=logical,
        data_interval_start=logical,
        data_interval_end=logical,
    )
    assert records == expected(emulator, "2025-06-18", "2025-06-19")


def test_v2_default_window_is_the_data_interval(emulator, cloudflare_conn):
    records = run(
        CloudflareUsageV2Operator(task_id="t", max_xcom_records=10_000),
        logical_date=pendulum.datetime(2025, 6, 1, tz="UTC"),
        data_interval_start=pendulum.datetime(2025, 6, 1, tz="UTC"),
        data_interval_end=pendulum.datetime(2025, 6, 8, tz="UTC"),
    )
    assert records == expected(emulator, "2025-06-01", "2025-06-08")


def test_v2_explicit_account(emulator, cloudflare_conn):
    records = run(
        CloudflareUsageV2Operator(
            task_id="t", account_id=OTHER_ACCOUNT, period_start="2025-06-10", period_end="2025-06-11"
        )
    )
    assert records == expected(emulator, "2025-06-10", "2025-06-11", account=OTHER_ACCOUNT)
    assert {record["BillingAccountId"] for record in records} == {OTHER_ACCOUNT}


def test_snake_key_style_renames_every_key(emulator, cloudflare_conn):
    emulator.configure(extra_fields=True)
    records = run(
        CloudflareUsageV2Operator(task_id="t", period_start="2025-06-10", period_end="2025-06-11", key_style="snake")
    )
    api_records = expected(emulator, "2025-06-10", "2025-06-11")
    assert records == [{snake_key(key): value for key, value in record.items()} for record in api_records]
    assert "charge_period_start" in records[0]
    unknown = [key for key in api_records[0] if key.startswith("x_Future") or key not in ("",)]
    assert all(snake_key(key) in records[0] for key in unknown)


def test_more_records_than_max_xcom_records_points_to_destination(emulator, cloudflare_conn):
    operator = CloudflareUsageV2Operator(
        task_id="t", period_start="2025-06-10", period_end="2025-06-11", max_xcom_records=3
    )
    with pytest.raises(CloudflareInputError, match="destination") as raised:
        run(operator)
    assert raised.value.parameter == "max_xcom_records"


def test_empty_window_returns_no_records(emulator, cloudflare_conn):
    # 2025-06-20 is not available yet on the emulator clock (2025-06-20 12:00 UTC).
    assert run(CloudflareUsageV2Operator(task_id="t", period_start="2025-06-20", period_end="2025-06-21")) == []


# ---------------------------------------------------------------- sinks


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "csv", "csv.gz", "parquet"])
def test_v2_to_local_storage_reads_back_identically(emulator, cloudflare_conn, tmp_path, suffix):
    from airflow_provider_cfbilling.sinks import read_records

    uri = f"file://{tmp_path}/account_id={DEFAULT_ACCOUNT_ID}/charge_date=2025-06-10/usage.{suffix}"
    summary = run(
        CloudflareUsageV2Operator(task_id="t", period_start="2025-06-10", period_end="2025-06-12", destination=uri)
    )
    want = expected(emulator, "2025-06-10", "2025-06-12")
    path = Path(uri.removeprefix("file://"))
    assert summary == {
        "uri": uri,
        "format": suffix.split(".")[0],
        "records": len(want),
        "bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "account_id": DEFAULT_ACCOUNT_ID,
        "period_start": "2025-06-10",
        "period_end": "2025-06-12",
        "endpoint": f"/accounts/{DEFAULT_ACCOUNT_ID}/billable/usage",
    }
    assert normalise(read_records(uri)) == normalise(want)
    if suffix == "jsonl":
        assert [json.loads(line) for line in path.read_text().splitlines()] == want
    if suffix.endswith(".gz"):
        assert gzip.decompress(path.read_bytes())
    # The object and its manifest, nothing else.
    assert sorted(p.name for p in path.parent.iterdir()) == [f"_{path.name}.manifest.json", path.name]


def normalise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Values as text, so CSV/Parquet read-backs compare with the API's JSON."""

    def value(item: Any) -> Any:
        if item is None or item == "":
            return None
        if isinstance(item, dt.datetime):
            return item.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            return float(item)
        try:
            return float(item)
        except (TypeError, ValueError):
            return str(item)

    return [{key: value(item) for key, item in record.items() if value(item) is not None} for record in records]


def test_rerun_replaces_the_object_byte_for_byte(emulator, cloudflare_conn, tmp_path):
    uri = f"file://{tmp_path}/usage.parquet"
    operator = CloudflareUsageV2Operator(
        task_id="t", period_start="2025-06-10", period_end="2025-06-12", destination=uri
    )
    run(operator)
    first = Path(tmp_path / "usage.parquet").read_bytes()
    run(operator)
    assert Path(tmp_path / "usage.parquet").read_bytes() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_usage.parquet.manifest.json", "usage.parquet"]


def test_empty_window_writes_a_valid_empty_file(emulator, cloudflare_conn, tmp_path):
    import pyarrow.parquet as pq

    uri = f"file://{tmp_path}/empty.parquet"
    summary = run(
        CloudflareUsageV2Operator(task_id="t", period_start="2025-06-20", period_end="2025-06-21", destination=uri)
    )
    assert summary["records"] == 0
    table = pq.read_table(tmp_path / "empty.parquet")
    assert table.num_rows == 0
    assert "ChargePeriodStart" in table.column_names


def test_failed_fetch_leaves_the_previous_object_untouched(emulator, cloudflare_conn, tmp_path):
    uri = f"file://{tmp_path}/usage.jsonl"
    operator = CloudflareUsageV2Operator(
        task_id="t", period_start="2025-06-10", period_end="2025-06-12", destination=uri
    )
    run(operator)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["_usage.jsonl.manifest.json", "usage.jsonl"]
    emulator.add_fault(route="v2", kind="status", status=401, count=1)
    with pytest.raises(Exception, match="401"):
        run(operator)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_bad_destination_fails_before_any_request(emulator, cloudflare_conn):
    operator = CloudflareUsageV2Operator(
        task_id="t", period_start="2025-06-10", period_end="2025-06-12", destination="file:///tmp/lake/"
    )
    with pytest.raises(ValueError, match="destination"):
        run(operator)
    assert usage_requests(emulator) == []


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"key_style": "camel"}, "key_style"),
        ({"file_format": "xlsx"}, "file_format"),
        ({"max_xcom_records": -1}, "max_xcom_records"),
    ],
)
def test_bad_static_arguments_fail_when_the_dag_is_parsed(kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        CloudflareUsageV2Operator(task_id="t", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"account_id": "acme"}, "account_id"),
        ({"period_start": "2025-06-12", "period_end": "2025-06-10"}, "period_end"),
        ({"period_start": "2025-06-10T05:00:00Z", "period_end": "2025-06-12"}, "period_start"),
        ({"period_start": "2025-06-10"}, "period_end"),
        ({"period_start": "2025-06-10", "period_end": "2025-06-12", "metric": "a b"}, "metric"),
    ],
)
def test_bad_templated_arguments_fail_before_any_request(emulator, cloudflare_conn, kwargs, parameter):
    with pytest.raises(CloudflareInputError) as raised:
        run(CloudflareUsageV2Operator(task_id="t", **kwargs), logical_date=pendulum.datetime(2025, 6, 19, tz="UTC"))
    assert raised.value.parameter == parameter
    assert usage_requests(emulator) == []


# ---------------------------------------------------------------- PayGo


@pytest.mark.parametrize(
    ("path", "source"),
    [("billable-usage", "billable-usage"), ("paygo-usage", "paygo-usage"), ("billing/usage/paygo", "paygo")],
)
def test_paygo_one_day_window_returns_that_days_records_on_every_path(emulator, cloudflare_conn, path, source):
    anchor = emulator.anchor_day(DEFAULT_ACCOUNT_ID)
    day = dt.date(2025, 6, 10)
    assert day.day != anchor, "pick a day that is not the anchor day, to exercise the anchor rule"
    records = run(
        CloudflarePaygoUsageOperator(task_id="t", period_start="2025-06-10", period_end="2025-06-11", paygo_path=path)
    )
    assert records
    assert records == expected(emulator, "2025-06-10", "2025-06-11", source=source)


@pytest.mark.parametrize("to_inclusive", [False, True])
@pytest.mark.parametrize(
    ("path", "source", "start", "end"),
    [
        ("billable-usage", "billable-usage", "2024-05-01", "2025-06-05"),  # 400 days
        ("billable-usage", "billable-usage", "2024-06-05", "2025-06-05"),  # 365 days, anchor moves the start back
        ("paygo-usage", "paygo-usage", "2024-06-05", "2025-06-05"),
        ("billing/usage/paygo", "paygo", "2025-01-01", "2025-06-05"),  # over the beta path's 62 days
    ],
)
def test_long_paygo_windows_fit_each_paths_range_limit(
    emulator, cloudflare_conn, to_inclusive, path, source, start, end
):
    from airflow_provider_cfbilling.endpoints import paygo_endpoint

    emulator.configure(to_inclusive=to_inclusive)
    operator = CloudflarePaygoUsageOperator(
        task_id="t", period_start=start, period_end=end, paygo_path=path, max_xcom_records=1_000_000
    )
    records = run(operator)
    assert records == expected(emulator, start, end, source=source)
    keys = [json.dumps(record, sort_keys=True) for record in records]
    assert len(keys) == len(set(keys))
    limit = paygo_endpoint(path).max_range_days
    requests = [r for r in usage_requests(emulator) if r["query"].get("from")]
    assert len(requests) > 1
    for request in requests:
        assert request["status"] == 200
        span = dt.date.fromisoformat(request["query"]["to"][0]) - dt.date.fromisoformat(request["query"]["from"][0])
        assert span.days + 1 <= limit  # fits even when `to` is read inclusively


def test_paygo_default_path_is_billable_usage(emulator, cloudflare_conn, tmp_path):
    uri = f"file://{tmp_path}/paygo.csv"
    summary = run(
        CloudflarePaygoUsageOperator(task_id="t", period_start="2025-06-01", period_end="2025-06-11", destination=uri)
    )
    assert summary["endpoint"] == f"/accounts/{DEFAULT_ACCOUNT_ID}/billable-usage"
    assert summary["records"] == len(expected(emulator, "2025-06-01", "2025-06-11", source="billable-usage"))


def test_paygo_unknown_route_names_the_other_paths(emulator, cloudflare_conn, monkeypatch):
    connection = dict(cloudflare_conn, host=emulator.base_url + "/moved")
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection))
    operator = CloudflarePaygoUsageOperator(
        task_id="t", period_start="2025-06-10", period_end="2025-06-11", paygo_path="paygo-usage"
    )
    with pytest.raises(CloudflareNotFoundError, match="7003") as raised:
        run(operator)
    assert "'billable-usage'" in str(raised.value)
    assert "'billing/usage/paygo'" in str(raised.value)


def test_unknown_paygo_path_is_refused_at_parse_time():
    with pytest.raises(ValueError, match="paygo_path"):
        CloudflarePaygoUsageOperator(task_id="t", paygo_path="usage/paygo")


@pytest.mark.parametrize(
    ("day", "anchor", "latest"),
    [
        ("2025-06-10", 26, "2025-05-26"),
        ("2025-06-26", 26, "2025-06-26"),
        ("2025-03-05", 31, "2025-02-28"),
        ("2025-01-05", 15, "2024-12-15"),
        ("2025-06-10", 1, "2025-06-01"),
    ],
)
def test_latest_anchor_on_or_before(day, anchor, latest):
    assert latest_anchor_on_or_before(dt.date.fromisoformat(day), anchor) == dt.date.fromisoformat(latest)


# ---------------------------------------------------------------- billing profile


def test_profile_is_redacted_by_default(emulator, cloudflare_conn, caplog):
    profile = run(CloudflareBillingProfileOperator(task_id="t"))
    present = [field for field in PROFILE_REDACTED_FIELDS if profile.get(field) is not None]
    assert present, "the emulator's profile should hold personal fields"
    assert all(profile[field] == REDACTED for field in present)
    raw = run(CloudflareBillingProfileOperator(task_id="t", redact=False))
    assert any(raw[field] != REDACTED for field in present)
    logged = caplog.text
    assert all(
        str(raw[field]) not in logged for field in present if isinstance(raw[field], str) and len(raw[field]) > 4
    )


def test_profile_to_storage(emulator, cloudflare_conn, tmp_path):
    uri = f"file://{tmp_path}/profile.jsonl"
    summary = run(CloudflareBillingProfileOperator(task_id="t", destination=uri))
    assert summary["records"] == 1
    assert summary["endpoint"] == f"/accounts/{DEFAULT_ACCOUNT_ID}/billing/profile"
    (line,) = (tmp_path / "profile.jsonl").read_text().splitlines()
    stored = json.loads(line)
    assert stored["card_number"] in (REDACTED, None)


# ---------------------------------------------------------------- destination placeholders


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet"])
def test_charge_date_lands_one_object_per_utc_day_and_empty_days_still_get_one(
    emulator, cloudflare_conn, tmp_path, suffix
):
    from airflow_provider_cfbilling.sinks import read_records

    # 2025-06-20 is not published yet on the emulator's clock: a day without usage.
    destination = f"file://{tmp_path}/account_id={{account_id}}/charge_date={{charge_date}}/usage.{suffix}"
    summary = run(
        CloudflareUsageV2Operator(
            task_id="t", period_start="2025-06-18", period_end="2025-06-21", destination=destination
        )
    )
    days = ["2025-06-18", "2025-06-19", "2025-06-20"]
    assert [part["charge_date"] for part in summary["partitions"]] == days
    assert summary["uri"] == destination.replace("{account_id}", DEFAULT_ACCOUNT_ID)
    for part in summary["partitions"]:
        path = tmp_path / f"account_id={DEFAULT_ACCOUNT_ID}" / f"charge_date={part['charge_date']}" / f"usage.{suffix}"
        assert part["uri"] == f"file://{path}"
        assert part["bytes"] == path.stat().st_size
        assert part["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        day = dt.date.fromisoformat(part["charge_date"])
        wanted = expected(emulator, part["charge_date"], str(day + dt.timedelta(days=1)))
        assert part["records"] == len(wanted)
        if suffix == "jsonl":
            assert read_records(part["uri"]) == wanted
    assert summary["partitions"][-1]["records"] == 0
    empty = tmp_path / f"account_id={DEFAULT_ACCOUNT_ID}" / "charge_date=2025-06-20" / f"usage.{suffix}"
    assert empty.exists()
    if suffix == "jsonl":
        assert empty.read_bytes() == b""
    elif suffix == "csv":  # the header of the documented columns, no rows
        assert empty.read_text().splitlines() == [",".join(c.name for c in columns_for("v2"))]
    else:
        import pyarrow.parquet as pq

        table = pq.read_table(empty)
        assert table.num_rows == 0
        assert table.schema.names == [c.name for c in columns_for("v2")]
    assert summary["records"] == sum(part["records"] for part in summary["partitions"]) > 0
    assert summary["bytes"] == sum(part["bytes"] for part in summary["partitions"])
    assert (summary["period_start"], summary["period_end"]) == ("2025-06-18", "2025-06-21")


def test_window_placeholders_name_the_window_fetched(emulator, cloudflare_conn, tmp_path):
    destination = f"file://{tmp_path}/acct={{account_id}}/{{period_start}}_{{period_end}}.jsonl"
    summary = run(
        CloudflareUsageV2Operator(task_id="t", destination=destination),
        data_interval_start=pendulum.datetime(2025, 6, 18, tz="Asia/Tokyo"),
        data_interval_end=pendulum.datetime(2025, 6, 19, tz="Asia/Tokyo"),
    )
    assert summary["uri"] == f"file://{tmp_path}/acct={DEFAULT_ACCOUNT_ID}/2025-06-18_2025-06-19.jsonl"
    assert "partitions" not in summary


@pytest.mark.parametrize(
    ("destination", "fragment"),
    [
        ("file:///tmp/x/{date}/usage.jsonl", "'{date}' is not a placeholder"),
        ("file:///tmp/x/{ds}/usage.jsonl", "'{ds}' is not a placeholder"),
    ],
)
def test_unknown_placeholders_fail_before_any_request(emulator, cloudflare_conn, destination, fragment):
    operator = CloudflareUsageV2Operator(
        task_id="t", period_start="2025-06-18", period_end="2025-06-19", destination=destination
    )
    with pytest.raises(CloudflareInputError, match=fragment) as raised:
        run(operator)
    assert raised.value.parameter == "destination"
    assert usage_requests(emulator) == []


def test_a_snapshot_refuses_day_and_window_placeholders(emulator, cloudflare_conn, tmp_path):
    for name in ("charge_date", "period_start"):
        operator = CloudflareBillingProfileOperator(task_id="t", destination=f"file://{tmp_path}/{{{name}}}/p.jsonl")
        with pytest.raises(CloudflareInputError, match="snapshot"):
            run(operator)
    assert emulator.request_log == []
    assert list(tmp_path.iterdir()) == []
