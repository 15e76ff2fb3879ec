"""Every operator with every sink, run for real through Airflow's task runner (``dag.test()``)
against the emulator over loopback, and local disk or a real S3-protocol server (moto)."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pendulum
import pytest
from harness import asset_event_count, asset_events, rendered_fields, run_dag, task_states, xcom

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from airflow_provider_cfbilling.records import PROFILE_REDACTED_FIELDS, REDACTED, snake_key
from airflow_provider_cfbilling.sinks import read_records

pytestmark = pytest.mark.e2e

LOGICAL = pendulum.datetime(2025, 6, 19, tz="UTC")  # default window: 2025-06-18


def expected(emulator: Any, start: str, end: str, source: str = "v2") -> list[dict[str, Any]]:
    first, stop = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [
        record
        for offset in range((stop - first).days)
        for record in emulator.expected_records(DEFAULT_ACCOUNT_ID, first + dt.timedelta(days=offset), source=source)
    ]


def succeeded(dag_run: Any) -> None:
    states = task_states(dag_run)
    assert set(states.values()) == {"success"}, states


def comparable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Values as the text formats give them back, for comparing CSV/Parquet read-backs."""

    def value(item: Any) -> Any:
        if isinstance(item, dt.datetime):
            return item.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if isinstance(item, bool) or item is None or item == "":
            return item or None
        try:
            return float(item)
        except (TypeError, ValueError):
            return str(item)

    return [{k: value(v) for k, v in record.items() if value(v) is not None} for record in records]


def test_v2_to_xcom_with_the_default_window(airflow_db, emulator, cloudflare_conn):
    dag_run = run_dag("cf_v2_api", logical_date=LOGICAL)
    succeeded(dag_run)
    assert xcom(dag_run, "usage") == expected(emulator, "2025-06-18", "2025-06-19")
    rendered = json.dumps(rendered_fields(dag_run, "usage"))
    assert DEFAULT_TOKEN not in rendered


def test_v2_snake_case_to_xcom(airflow_db, emulator, cloudflare_conn):
    dag_run = run_dag(
        "cf_v2_snake", logical_date=LOGICAL, conf={"period_start": "2025-06-10", "period_end": "2025-06-12"}
    )
    succeeded(dag_run)
    want = [{snake_key(k): v for k, v in record.items()} for record in expected(emulator, "2025-06-10", "2025-06-12")]
    assert xcom(dag_run, "usage") == want


@pytest.mark.parametrize("suffix", ["jsonl", "jsonl.gz", "csv", "csv.gz", "parquet"])
def test_v2_to_local_storage_in_every_format(airflow_db, emulator, cloudflare_conn, tmp_path, suffix):
    uri = f"file://{tmp_path}/account_id={DEFAULT_ACCOUNT_ID}/charge_date=2025-06-10/usage.{suffix}"
    dag_run = run_dag(
        "cf_v2_api",
        logical_date=LOGICAL,
        conf={"period_start": "2025-06-10", "period_end": "2025-06-11", "destination": uri},
    )
    succeeded(dag_run)
    want = expected(emulator, "2025-06-10", "2025-06-11")
    summary = xcom(dag_run, "usage")
    assert summary["uri"] == uri
    assert summary["records"] == len(want)
    assert summary["bytes"] == Path(uri.removeprefix("file://")).stat().st_size
    assert (summary["period_start"], summary["period_end"]) == ("2025-06-10", "2025-06-11")
    assert comparable(read_records(uri)) == comparable(want)


def test_v2_parquet_types(airflow_db, emulator, cloudflare_conn, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    emulator.configure(extra_fields=True, populate_costs=True)
    uri = f"file://{tmp_path}/usage.parquet"
    succeeded(
        run_dag(
            "cf_v2_api",
            logical_date=LOGICAL,
            conf={"period_start": "2025-06-10", "period_end": "2025-06-12", "destination": uri},
        )
    )
    table = pq.read_table(tmp_path / "usage.parquet")
    schema = table.schema
    assert schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert pa.types.is_floating(schema.field("ConsumedQuantity").type)
    assert pa.types.is_floating(schema.field("ContractedCost").type)
    want = expected(emulator, "2025-06-10", "2025-06-12")
    unknown = sorted({key for record in want for key in record} - set(schema.names))
    assert unknown == []
    assert table.num_rows == len(want)


def test_paygo_every_path_to_xcom(airflow_db, emulator, cloudflare_conn):
    for path, source in (
        ("billable-usage", "billable-usage"),
        ("paygo-usage", "paygo-usage"),
        ("billing/usage/paygo", "paygo"),
    ):
        dag_run = run_dag(
            "cf_paygo_api",
            logical_date=LOGICAL,
            conf={"period_start": "2025-06-10", "period_end": "2025-06-11", "paygo_path": path},
        )
        succeeded(dag_run)
        assert xcom(dag_run, "usage") == expected(emulator, "2025-06-10", "2025-06-11", source=source), path


@pytest.mark.parametrize("suffix", ["jsonl", "csv.gz", "parquet"])
def test_paygo_to_local_storage(airflow_db, emulator, cloudflare_conn, tmp_path, suffix):
    uri = f"file://{tmp_path}/paygo.{suffix}"
    dag_run = run_dag(
        "cf_paygo_snake",
        logical_date=LOGICAL,
        conf={"period_start": "2025-06-01", "period_end": "2025-06-15", "destination": uri},
    )
    succeeded(dag_run)
    want = [
        {snake_key(k): v for k, v in record.items()}
        for record in expected(emulator, "2025-06-01", "2025-06-15", source="billable-usage")
    ]
    assert xcom(dag_run, "usage")["records"] == len(want)
    assert comparable(read_records(uri)) == comparable(want)


def test_profile_to_xcom_redacted_and_unredacted(airflow_db, emulator, cloudflare_conn):
    dag_run = run_dag("cf_profile", logical_date=LOGICAL)
    succeeded(dag_run)
    redacted = xcom(dag_run, "profile")
    raw = xcom(dag_run, "profile_unredacted")
    present = [field for field in PROFILE_REDACTED_FIELDS if raw.get(field) is not None]
    assert present
    assert all(redacted[field] == REDACTED for field in present)
    assert all(raw[field] != REDACTED for field in present)


def test_max_xcom_records_fails_the_task_clearly(airflow_db, emulator, cloudflare_conn):
    dag_run = run_dag("cf_v2_small_xcom", logical_date=LOGICAL)
    assert task_states(dag_run) == {"usage": "failed"}
    assert xcom(dag_run, "usage") is None


@pytest.mark.s3
@pytest.mark.parametrize("suffix", ["jsonl", "csv", "parquet", "jsonl.gz"])
def test_v2_to_s3_through_a_real_airflow_connection(airflow_db, emulator, cloudflare_conn, s3_server, suffix):
    key = f"{uuid.uuid4().hex[:8]}/account_id={DEFAULT_ACCOUNT_ID}/charge_date=2025-06-10/usage.{suffix}"
    uri = f"s3://{s3_server['bucket']}/{key}"
    conf = {
        "period_start": "2025-06-10",
        "period_end": "2025-06-11",
        "destination": uri,
        "destination_conn_id": s3_server["conn_id"],
    }
    dag_run = run_dag("cf_v2_api", logical_date=LOGICAL, conf=conf)
    succeeded(dag_run)
    want = expected(emulator, "2025-06-10", "2025-06-11")
    summary = xcom(dag_run, "usage")
    assert summary["records"] == len(want)
    listed = s3_server["client"].list_objects_v2(Bucket=s3_server["bucket"], Prefix=key.split("/")[0])
    manifest_key = key.rsplit("/", 1)[0] + "/_" + key.rsplit("/", 1)[1] + ".manifest.json"
    assert sorted(item["Key"] for item in listed["Contents"]) == sorted([key, manifest_key])
    body = s3_server["client"].get_object(Bucket=s3_server["bucket"], Key=key)["Body"].read()
    assert summary["bytes"] == len(body)
    assert comparable(read_records(uri, conn_id=s3_server["conn_id"])) == comparable(want)
    if suffix == "parquet":
        import pyarrow.parquet as pq

        assert pq.read_table(io.BytesIO(body)).num_rows == len(want)
    # A re-run replaces the object: still one object, same bytes.
    succeeded(run_dag("cf_v2_api", logical_date=LOGICAL, conf=conf))
    assert s3_server["client"].get_object(Bucket=s3_server["bucket"], Key=key)["Body"].read() == body


@pytest.mark.s3
def test_paygo_and_profile_to_s3(airflow_db, emulator, cloudflare_conn, s3_server):
    prefix = uuid.uuid4().hex[:8]
    paygo_uri = f"s3://{s3_server['bucket']}/{prefix}/paygo.parquet"
    succeeded(
        run_dag(
            "cf_paygo_api",
            logical_date=LOGICAL,
            conf={"destination": paygo_uri, "destination_conn_id": s3_server["conn_id"], "paygo_path": "paygo-usage"},
        )
    )
    want = expected(emulator, "2025-06-18", "2025-06-19", source="paygo-usage")
    assert comparable(read_records(paygo_uri, conn_id=s3_server["conn_id"])) == comparable(want)
    profile_uri = f"s3://{s3_server['bucket']}/{prefix}/profile.jsonl"
    dag_run = run_dag(
        "cf_profile",
        logical_date=LOGICAL,
        conf={"destination": profile_uri, "destination_conn_id": s3_server["conn_id"]},
    )
    succeeded(dag_run)
    (stored,) = read_records(profile_uri, conn_id=s3_server["conn_id"])
    assert all(stored[field] in (REDACTED, None) for field in PROFILE_REDACTED_FIELDS if field in stored)
    assert xcom(dag_run, "profile")["uri"] == profile_uri


def test_destination_is_reported_as_asset_events_and_openlineage(airflow_db, emulator, cloudflare_conn, tmp_path):
    uri = f"file://{tmp_path}/charge_date=2025-06-10/usage.jsonl"
    conf = {"period_start": "2025-06-10", "period_end": "2025-06-11", "destination": uri}
    dag_run = run_dag("cf_v2_lineage", logical_date=LOGICAL, conf=conf)
    succeeded(dag_run)
    summary = xcom(dag_run, "usage")
    events = asset_events(dag_run)
    assert events[uri] == summary
    assert events["cloudflare://usage_v2/all"] == summary

    from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

    operator = CloudflareUsageV2Operator(
        task_id="t", destination=uri, period_start="2025-06-10", period_end="2025-06-11"
    )
    operator.execute({})
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(dataset.namespace, dataset.name) for dataset in lineage.outputs] == [
        ("file", f"{tmp_path}/charge_date=2025-06-10/usage.jsonl")
    ]


@pytest.mark.parametrize(
    ("dag_id", "logical_date", "expected_day"),
    [
        # A run dated D gets the local day before D as its interval (dag.test() infers the last
        # complete interval). Europe/London's spring-forward day (23 h) and fall-back day (25 h),
        # and Tokyo, whose local day holds the UTC midnight of the same date.
        ("cf_v2_daily_london", pendulum.datetime(2025, 3, 31, tz="Europe/London"), "2025-03-30"),
        ("cf_v2_daily_london", pendulum.datetime(2024, 10, 28, tz="Europe/London"), "2024-10-27"),
        ("cf_v2_daily_tokyo", pendulum.datetime(2025, 6, 19, tz="Asia/Tokyo"), "2025-06-18"),
    ],
)
def test_local_daily_runs_land_the_utc_day_they_own(
    airflow_db, emulator, cloudflare_conn, tmp_path, dag_id, logical_date, expected_day
):
    dag_run = run_dag(dag_id, logical_date=logical_date, conf={"root": f"file://{tmp_path}"})
    succeeded(dag_run)
    summary = xcom(dag_run, "usage")
    day = dt.date.fromisoformat(expected_day)
    assert (summary["period_start"], summary["period_end"]) == (expected_day, str(day + dt.timedelta(days=1)))
    landed = sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.jsonl"))
    assert landed == [f"account_id={DEFAULT_ACCOUNT_ID}/charge_date={expected_day}/usage.jsonl"]
    assert read_records(summary["partitions"][0]["uri"]) == expected(emulator, expected_day, str(day + dt.timedelta(1)))


def test_an_hourly_run_without_a_utc_midnight_is_skipped_without_a_request(
    airflow_db, emulator, cloudflare_conn, tmp_path
):
    dag_run = run_dag(
        "cf_v2_hourly_utc",
        logical_date=pendulum.datetime(2025, 6, 18, 7, tz="UTC"),
        conf={"root": f"file://{tmp_path}"},
    )
    assert task_states(dag_run) == {"usage": "skipped"}
    assert [entry for entry in emulator.request_log if "/accounts/" in entry["path"]] == []
    assert list(tmp_path.iterdir()) == []


def test_a_week_with_a_look_back_emits_asset_events_only_for_new_and_restated_days(
    airflow_db, emulator, cloudflare_conn, tmp_path
):
    conf = {"root": f"file://{tmp_path}"}
    first = dt.date(2025, 6, 8)
    events_per_run = []
    for offset in range(7):
        day = first + dt.timedelta(days=offset)
        if offset == 5:
            emulator.restate(DEFAULT_ACCOUNT_ID, day - dt.timedelta(days=2))
        # A run dated D owns the UTC day before D.
        dag_run = run_dag("cf_v2_lookback", logical_date=pendulum.datetime(2025, 6, 9 + offset, tz="UTC"), conf=conf)
        succeeded(dag_run)
        events_per_run.append(
            sorted(uri.split("charge_date=")[1][:10] for uri in asset_events(dag_run) if "charge_date=" in uri)
        )
        summary = xcom(dag_run, "usage")
        assert summary["partitions"][-1]["charge_date"] == str(day)
    # Each run lands its own day (new; the first run its look-back days too); the run after the
    # restatement also rewrites that day, and only that one.
    assert events_per_run == [
        ["2025-06-05", "2025-06-06", "2025-06-07", "2025-06-08"],
        ["2025-06-09"],
        ["2025-06-10"],
        ["2025-06-11"],
        ["2025-06-12"],
        ["2025-06-11", "2025-06-13"],
        ["2025-06-14"],
    ]
    # A re-run of the last logical date is a no-op: no event, nothing touched. (Counted over the
    # whole DB: on Airflow 2 the re-run has the same run id as the first run of that date.)
    before = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")}
    events_before = asset_event_count()
    dag_run = run_dag("cf_v2_lookback", logical_date=pendulum.datetime(2025, 6, 15, tz="UTC"), conf=conf)
    succeeded(dag_run)
    assert {part["status"] for part in xcom(dag_run, "usage")["partitions"]} == {"unchanged"}
    assert asset_event_count() == events_before
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*")} == before
