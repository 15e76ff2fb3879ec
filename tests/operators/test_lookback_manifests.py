"""Look-back, change detection and manifests: a restated day is caught and rewritten, nothing else
is touched, and every object has a manifest that says what it holds."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest

from airflow_provider_cfbilling import __version__
from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.manifests import is_complete, manifest_uri
from airflow_provider_cfbilling.operators.billing import (
    CloudflareBillingProfileOperator,
    CloudflarePaygoUsageOperator,
    CloudflareUsageV2Operator,
)
from airflow_provider_cfbilling.records import columns_for
from airflow_provider_cfbilling.sinks import read_records

ONE_DAY = dt.timedelta(days=1)


def run_day(operator: Any, day: dt.date) -> dict[str, Any]:
    """Execute ``operator`` as the daily run that owns UTC ``day``."""
    start = pendulum.datetime(day.year, day.month, day.day, tz="UTC")
    return operator.execute({"data_interval_start": start, "data_interval_end": start.add(days=1)})


def daily(tmp_path: Path, **kwargs: Any) -> CloudflareUsageV2Operator:
    return CloudflareUsageV2Operator(
        task_id="usage",
        destination=f"file://{tmp_path}/account_id={{account_id}}/charge_date={{charge_date}}/usage.jsonl",
        **{"lookback_days": 3, **kwargs},
    )


def partition(tmp_path: Path, day: dt.date, name: str = "usage.jsonl") -> Path:
    return tmp_path / f"account_id={DEFAULT_ACCOUNT_ID}" / f"charge_date={day}" / name


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads((path.parent / f"_{path.name}.manifest.json").read_text())


def snapshot(tmp_path: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time (nanoseconds)."""
    return {
        str(path.relative_to(tmp_path)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(tmp_path.rglob("*"))
        if path.is_file()
    }


def usage_days(emulator: Any, start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + ONE_DAY * offset for offset in range((end - start).days)]


def test_a_week_of_daily_runs_rewrites_exactly_the_restated_day(emulator, cloudflare_conn, tmp_path):
    first = dt.date(2025, 6, 8)
    days = usage_days(emulator, first, first + ONE_DAY * 7)
    for day in days[:4]:
        summary = run_day(daily(tmp_path), day)
    assert [part["status"] for part in summary["partitions"]] == ["unchanged"] * 3 + ["new"]
    assert (summary["period_start"], summary["period_end"]) == (str(days[0]), str(days[4]))

    before = snapshot(tmp_path)
    restated = days[2]
    emulator.restate(DEFAULT_ACCOUNT_ID, restated, factor=1.5, corrections=2)
    summary = run_day(daily(tmp_path), days[4])
    statuses = {part["charge_date"]: part["status"] for part in summary["partitions"]}
    assert statuses == {
        str(days[1]): "unchanged",
        str(restated): "changed",
        str(days[3]): "unchanged",
        str(days[4]): "new",
    }
    after = snapshot(tmp_path)

    restated_path = partition(tmp_path, restated)
    restated_key = str(restated_path.relative_to(tmp_path))
    restated_manifest_key = str((restated_path.parent / "_usage.jsonl.manifest.json").relative_to(tmp_path))
    for key, value in before.items():
        if key in (restated_key, restated_manifest_key):
            assert after[key][0] != value[0], key
        else:
            assert after[key] == value, f"{key} was touched"  # bytes and modification time
    assert read_records(f"file://{restated_path}") == emulator.expected_records(DEFAULT_ACCOUNT_ID, restated)

    old_manifest = json.loads(before[restated_manifest_key][0])
    new_manifest = manifest_of(restated_path)
    assert new_manifest["sha256"] == hashlib.sha256(restated_path.read_bytes()).hexdigest() != old_manifest["sha256"]
    assert new_manifest["changed_at"] >= old_manifest["changed_at"]
    assert new_manifest["first_written_at"] == old_manifest["first_written_at"]
    assert new_manifest["corrections"] >= 2 + old_manifest["corrections"]

    # A re-run of the same logical date is a no-op.
    again = snapshot(tmp_path)
    summary = run_day(daily(tmp_path), days[4])
    assert {part["status"] for part in summary["partitions"]} == {"unchanged"}
    assert snapshot(tmp_path) == again


def test_records_in_another_order_are_not_a_change(emulator, cloudflare_conn, tmp_path):
    day = dt.date(2025, 6, 10)
    run_day(daily(tmp_path), day)
    before = snapshot(tmp_path)
    emulator.configure(shuffle_records=True)
    summary = run_day(daily(tmp_path), day)
    assert {part["status"] for part in summary["partitions"]} == {"unchanged"}
    assert snapshot(tmp_path) == before
    assert sum(1 for entry in emulator.request_log if entry["route"] == "v2") == 2


def test_a_crash_between_object_and_manifest_heals_on_the_next_run(emulator, cloudflare_conn, tmp_path):
    day = dt.date(2025, 6, 10)
    run_day(daily(tmp_path, lookback_days=0), day)
    path = partition(tmp_path, day)
    stale_manifest = (path.parent / "_usage.jsonl.manifest.json").read_bytes()
    # The day is restated and re-landed, but the task dies before the manifest is written: the
    # new object is in place next to the old manifest.
    emulator.restate(DEFAULT_ACCOUNT_ID, day)
    run_day(daily(tmp_path, lookback_days=0), day)
    (path.parent / "_usage.jsonl.manifest.json").write_bytes(stale_manifest)
    new_object = path.read_bytes()
    emulator.clear_restatements()  # the content goes back to the old manifest's digest...
    summary = run_day(daily(tmp_path, lookback_days=0), day)
    # ...but the object is not the one that manifest describes: rewritten, not trusted.
    assert [part["status"] for part in summary["partitions"]] == ["changed"]
    assert path.read_bytes() != new_object
    assert manifest_of(path)["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert read_records(f"file://{path}") == emulator.expected_records(DEFAULT_ACCOUNT_ID, day)


def test_a_missing_object_is_written_again(emulator, cloudflare_conn, tmp_path):
    day = dt.date(2025, 6, 10)
    run_day(daily(tmp_path), day)
    partition(tmp_path, day).unlink()
    summary = run_day(daily(tmp_path), day)
    assert summary["partitions"][-1]["status"] == "changed"
    assert partition(tmp_path, day).exists()


@pytest.mark.parametrize("suffix", ["jsonl", "csv.gz", "parquet"])
def test_manifest_fields(emulator, cloudflare_conn, tmp_path, suffix):
    day = dt.date(2025, 6, 10)
    emulator.restate(DEFAULT_ACCOUNT_ID, day, corrections=3)
    destination = f"file://{tmp_path}/account_id={{account_id}}/charge_date={{charge_date}}/usage.{suffix}"
    summary = run_day(CloudflareUsageV2Operator(task_id="t", destination=destination, key_style="snake"), day)
    path = partition(tmp_path, day, f"usage.{suffix}")
    manifest = manifest_of(path)
    (part,) = summary["partitions"]
    assert manifest["generator"] == "airflow-provider-cfbilling"
    assert manifest["generator_version"] == __version__
    assert manifest["endpoint"] == f"/accounts/{DEFAULT_ACCOUNT_ID}/billable/usage"
    assert manifest["account_id"] == DEFAULT_ACCOUNT_ID
    assert (manifest["period_start"], manifest["period_end"]) == (str(day), str(day + ONE_DAY))
    assert manifest["format"] == suffix.split(".")[0]
    assert manifest["records"] == part["records"] == len(emulator.expected_records(DEFAULT_ACCOUNT_ID, day))
    assert manifest["bytes"] == path.stat().st_size == part["bytes"]
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() == part["sha256"]
    documented = [{"name": c.name, "type": c.type} for c in columns_for("v2", "snake")]
    assert manifest["columns"][: len(documented)] == documented
    corrections = sum(r.get("ChargeClass") == "Correction" for r in emulator.expected_records(DEFAULT_ACCOUNT_ID, day))
    assert manifest["corrections"] == corrections >= 3
    assert manifest["focus_version"] == "1.3"
    assert manifest["first_written_at"] == manifest["changed_at"]
    assert manifest["complete"] is is_complete(day, 7)
    # Readers of the folder never see the manifest as data: its name starts with an underscore.
    assert manifest_uri(part["uri"]).rsplit("/", 1)[1] == f"_usage.{suffix}.manifest.json"


def test_paygo_and_profile_objects_get_manifests_too(emulator, cloudflare_conn, tmp_path):
    paygo = CloudflarePaygoUsageOperator(
        task_id="p",
        period_start="2025-06-01",
        period_end="2025-06-03",
        destination=f"file://{tmp_path}/paygo/{{period_start}}.jsonl",
    ).execute({})
    manifest = json.loads((tmp_path / "paygo" / "_2025-06-01.jsonl.manifest.json").read_text())
    assert (manifest["period_start"], manifest["period_end"], manifest["records"]) == (
        "2025-06-01",
        "2025-06-03",
        paygo["records"],
    )
    assert "focus_version" not in manifest
    CloudflareBillingProfileOperator(task_id="b", destination=f"file://{tmp_path}/profile/p.jsonl").execute({})
    manifest = json.loads((tmp_path / "profile" / "_p.jsonl.manifest.json").read_text())
    assert (manifest["period_start"], manifest["period_end"], manifest["records"]) == (None, None, 1)
    assert manifest["complete"] is False


def test_completeness_rule():
    today = dt.date(2025, 6, 20)
    assert is_complete(dt.date(2025, 6, 12), 7, today)  # ended 2025-06-13, 7 full days ago
    assert not is_complete(dt.date(2025, 6, 13), 7, today)
    assert is_complete(dt.date(2025, 6, 19), 0, today)


def test_the_look_back_widens_the_window_and_lands_every_day(emulator, cloudflare_conn, tmp_path):
    day = dt.date(2025, 6, 15)
    summary = run_day(daily(tmp_path, lookback_days=5), day)
    assert (summary["period_start"], summary["period_end"]) == ("2025-06-10", "2025-06-16")
    assert [part["charge_date"] for part in summary["partitions"]] == [
        str(dt.date(2025, 6, 10) + ONE_DAY * offset) for offset in range(6)
    ]
    assert all(part["status"] == "new" for part in summary["partitions"])
    queries = [entry["query"] for entry in emulator.request_log if entry["route"] == "v2"]
    assert queries == [{"from": ["2025-06-10"], "to": ["2025-06-16"]}]


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"lookback_days": -1}, "lookback_days"),
        ({"lookback_days": 1.5}, "lookback_days"),
        ({"lookback_days": True}, "lookback_days"),
        ({"complete_after_days": -2}, "complete_after_days"),
    ],
)
def test_bad_look_back_settings_are_refused_when_the_dag_is_parsed(kwargs, parameter):
    with pytest.raises(CloudflareInputError) as raised:
        CloudflareUsageV2Operator(task_id="t", **kwargs)
    assert raised.value.parameter == parameter


@pytest.mark.parametrize("destination", [None, "file:///tmp/cfbilling-never/usage.jsonl"])
def test_a_look_back_without_charge_date_fails_before_any_request(emulator, cloudflare_conn, destination):
    operator = CloudflareUsageV2Operator(task_id="t", lookback_days=3, destination=destination)
    with pytest.raises(CloudflareInputError, match=r"\{charge_date\}") as raised:
        run_day(operator, dt.date(2025, 6, 10))
    assert raised.value.parameter == "lookback_days"
    assert emulator.request_log == []
    assert not Path("/tmp/cfbilling-never").exists()


def test_restated_days_on_s3_are_rewritten_and_the_rest_untouched(emulator, cloudflare_conn, s3_server):
    bucket, client = s3_server["bucket"], s3_server["client"]
    prefix = f"lookback-{pendulum.now().int_timestamp}"
    destination = f"s3://{bucket}/{prefix}/account_id={{account_id}}/charge_date={{charge_date}}/usage.parquet"

    def operator() -> CloudflareUsageV2Operator:
        return CloudflareUsageV2Operator(
            task_id="t", destination=destination, destination_conn_id=s3_server["conn_id"], lookback_days=2
        )

    def listing() -> dict[str, tuple[str, Any]]:
        objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        return {item["Key"]: (item["ETag"], item["LastModified"]) for item in objects}

    run_day(operator(), dt.date(2025, 6, 12))
    before = listing()
    assert len(before) == 6  # 3 days x (object + manifest)
    emulator.restate(DEFAULT_ACCOUNT_ID, dt.date(2025, 6, 11))
    summary = run_day(operator(), dt.date(2025, 6, 12))
    assert [part["status"] for part in summary["partitions"]] == ["unchanged", "changed", "unchanged"]
    after = listing()
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {
        f"{prefix}/account_id={DEFAULT_ACCOUNT_ID}/charge_date=2025-06-11/usage.parquet",
        f"{prefix}/account_id={DEFAULT_ACCOUNT_ID}/charge_date=2025-06-11/_usage.parquet.manifest.json",
    }
