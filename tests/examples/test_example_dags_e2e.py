"""Every example DAG run for real through Airflow's task runner (``dag.test()``) against the
emulator, landing in a local lake; what landed is compared with what the emulator serves.

``dag.test(logical_date=D)`` makes a manual run; on the examples' ``CronDataIntervalTimetable``
its data interval is the day before D (a scheduled or backfill run with logical date D covers D
itself: ``test_example_dags_import`` checks that), so the runs below land the day before each date.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pendulum
import pytest
from harness import run_dag, task_states, xcom

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_ACCOUNT_TOKEN, DEFAULT_TOKEN
from airflow_provider_cfbilling.records import PROFILE_REDACTED_FIELDS, REDACTED
from airflow_provider_cfbilling.sinks import read_records

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db", "cloudflare_conn")]

ONE_DAY = dt.timedelta(days=1)
LOOKBACK = 7  # the daily example's lookback_days
OTHER_ACCOUNT = "0123456789abcdef0123456789abcdef"
UNREACHABLE_ACCOUNT = "fedcba9876543210fedcba9876543210"


def run_date(day: dt.date) -> pendulum.DateTime:
    """The ``dag.test()`` date whose run lands ``day``."""
    following = day + ONE_DAY
    return pendulum.datetime(following.year, following.month, following.day, tz="UTC")


def partition(lake: Path, account_id: str, day: dt.date) -> Path:
    return lake / "usage_v2" / f"account_id={account_id}" / f"charge_date={day}" / "usage.jsonl"


def uri(path: Path) -> str:
    """The ``file://`` URI the operators report (the path as is, not percent-encoded)."""
    return f"file://{path}"


def files_under(root: Path) -> list[Path]:
    """Every file, hidden ones included (a leftover temporary file would show here)."""
    return sorted(path for path in root.rglob("*") if path.is_file())


def with_manifests(paths: list[Path]) -> list[Path]:
    """The objects and their manifests (``_<name>.manifest.json`` next to each), sorted."""
    return sorted([*paths, *(path.parent / f"_{path.name}.manifest.json" for path in paths)])


def days_until(day: dt.date, lookback: int = LOOKBACK) -> list[dt.date]:
    return [day - ONE_DAY * offset for offset in range(lookback, -1, -1)]


def test_daily_dag_waits_lands_the_day_and_its_look_back_and_reports(
    emulator: Any, lake: Path, capfd: pytest.CaptureFixture[str]
):
    day = dt.date(2025, 6, 18)
    run = run_dag("cloudflare_usage_daily", logical_date=run_date(day), example=True)
    assert task_states(run) == {"wait_for_usage": "success", "land_usage": "success", "report": "success"}

    days = days_until(day)
    landed = [partition(lake, DEFAULT_ACCOUNT_ID, each) for each in days]
    assert files_under(lake) == with_manifests(landed)
    for each, path in zip(days, landed, strict=True):
        assert read_records(uri(path)) == emulator.expected_records(DEFAULT_ACCOUNT_ID, each)
    want = emulator.expected_records(DEFAULT_ACCOUNT_ID, day)
    assert xcom(run, "wait_for_usage") == len(want)
    summary = xcom(run, "land_usage")
    assert [(part["charge_date"], part["uri"], part["status"]) for part in summary["partitions"]] == [
        (str(each), uri(path), "new") for each, path in zip(days, landed, strict=True)
    ]
    # The partitions' names are the window the operator used: the day and the 7 before it.
    assert (summary["period_start"], summary["period_end"]) == (str(days[0]), str(day + ONE_DAY))
    assert summary["bytes"] == sum(path.stat().st_size for path in landed)
    output = capfd.readouterr().out
    assert f"Landed {summary['records']} records ({summary['bytes']} bytes, jsonl)" in output
    assert f"{day}: new, {len(want)} records at {uri(landed[-1])}" in output
    # The sensor's one request for that day, and the operator's one for the whole look-back.
    assert [entry["query"] for entry in emulator.request_log if entry["route"] == "v2"] == [
        {"from": [str(day)], "to": [str(day + ONE_DAY)]},
        {"from": [str(days[0])], "to": [str(day + ONE_DAY)]},
    ]


def test_daily_dag_backfill_lands_each_day_once_and_a_rerun_touches_nothing(emulator: Any, lake: Path):
    days = [dt.date(2025, 6, 15) + dt.timedelta(days=offset) for offset in range(4)]
    for day in days:
        assert set(
            task_states(run_dag("cloudflare_usage_daily", logical_date=run_date(day), example=True)).values()
        ) == {"success"}
    covered = days_until(days[0])[:-1] + days
    partitions = [partition(lake, DEFAULT_ACCOUNT_ID, day) for day in covered]
    assert files_under(lake) == with_manifests(partitions)  # one object per day, nothing else
    for day, path in zip(covered, partitions, strict=True):
        want = emulator.expected_records(DEFAULT_ACCOUNT_ID, day)
        got = read_records(uri(path))
        assert got == want, day  # none missing, none twice, none from another day
        assert {record["ChargePeriodStart"] for record in got} == {f"{day}T00:00:00Z"}

    before = {path: (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) for path in files_under(lake)}
    run = run_dag("cloudflare_usage_daily", logical_date=run_date(days[1]), example=True)
    assert set(task_states(run).values()) == {"success"}
    assert {part["status"] for part in xcom(run, "land_usage")["partitions"]} == {"unchanged"}
    after = {path: (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) for path in files_under(lake)}
    assert after == before  # nothing rewritten: same bytes, same files


def test_daily_dag_rewrites_a_restated_day_within_its_look_back(emulator: Any, lake: Path):
    day = dt.date(2025, 6, 18)
    assert set(task_states(run_dag("cloudflare_usage_daily", logical_date=run_date(day), example=True)).values()) == {
        "success"
    }
    restated = day - ONE_DAY * 3
    emulator.restate(DEFAULT_ACCOUNT_ID, restated, factor=1.2, corrections=1)
    run = run_dag("cloudflare_usage_daily", logical_date=run_date(day + ONE_DAY), example=True)
    statuses = {part["charge_date"]: part["status"] for part in xcom(run, "land_usage")["partitions"]}
    assert statuses[str(restated)] == "changed"
    assert statuses[str(day + ONE_DAY)] == "new"
    assert {
        status for charge_date, status in statuses.items() if charge_date not in (str(restated), str(day + ONE_DAY))
    } == {"unchanged"}
    path = partition(lake, DEFAULT_ACCOUNT_ID, restated)
    assert read_records(uri(path)) == emulator.expected_records(DEFAULT_ACCOUNT_ID, restated)


def test_paygo_dag_lands_the_billing_period_to_date(emulator: Any, lake: Path):
    day = dt.date(2025, 6, 18)
    run = run_dag("cloudflare_paygo_billing_period", logical_date=run_date(day), example=True)
    assert set(task_states(run).values()) == {"success"}

    period_start, _period_end = emulator.billing_period(DEFAULT_ACCOUNT_ID, day)
    assert xcom(run, "billing_period") == {"start": str(period_start), "end": str(day + ONE_DAY)}
    landed = (
        lake / "paygo" / f"account_id={DEFAULT_ACCOUNT_ID}" / f"billing_period_start={period_start}" / "usage.jsonl"
    )
    assert files_under(lake) == with_manifests([landed])
    want = [
        record
        for offset in range((day + ONE_DAY - period_start).days)
        for record in emulator.expected_records(
            DEFAULT_ACCOUNT_ID, period_start + dt.timedelta(days=offset), source="billable-usage"
        )
    ]
    assert read_records(uri(landed)) == want
    summary = xcom(run, "land_paygo")
    assert (summary["period_start"], summary["period_end"]) == (str(period_start), str(day + ONE_DAY))


def test_profile_dag_lands_a_redacted_snapshot(emulator: Any, lake: Path):
    run = run_dag("cloudflare_billing_profile_snapshot", logical_date=run_date(dt.date(2025, 6, 18)), example=True)
    assert set(task_states(run).values()) == {"success"}

    due = getattr(run, "run_after", None) or run.data_interval_end  # Airflow 2 runs have no run_after
    snapshot_date = due.astimezone(dt.timezone.utc).date()
    landed = lake / "billing_profile" / f"account_id={DEFAULT_ACCOUNT_ID}" / f"snapshot_date={snapshot_date}"
    assert files_under(lake) == with_manifests([landed / "profile.jsonl"])
    (profile,) = read_records(uri(landed / "profile.jsonl"))
    present = [field for field in PROFILE_REDACTED_FIELDS if profile.get(field) is not None]
    assert present and all(profile[field] == REDACTED for field in present)
    assert DEFAULT_TOKEN not in (landed / "profile.jsonl").read_text()


def test_many_accounts_one_failing_account_does_not_stop_the_others(
    emulator: Any,
    lake: Path,
    cloudflare_pool: str,
    cloudflare_conn: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
):
    # The third account is read through a token owned by another account: Cloudflare answers 403 9109.
    team_b = {**cloudflare_conn, "password": DEFAULT_ACCOUNT_TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_TEAM_B", json.dumps(team_b))
    accounts = [
        DEFAULT_ACCOUNT_ID,
        OTHER_ACCOUNT,
        {"account_id": UNREACHABLE_ACCOUNT, "cloudflare_conn_id": "cloudflare_team_b"},
    ]
    monkeypatch.setenv("AIRFLOW_VAR_CLOUDFLARE_ACCOUNTS", json.dumps(accounts))
    day = dt.date(2025, 6, 18)

    run = run_dag("cloudflare_usage_many_accounts", logical_date=run_date(day), example=True)

    assert task_states(run) == {
        "wait_for_usage": "success",
        "plan_accounts": "success",
        "land_usage[0]": "success",
        "land_usage[1]": "success",
        "land_usage[2]": "failed",
        "report": "failed",  # it ran (all_done), reported every account, then failed the run
    }
    for account_id in (DEFAULT_ACCOUNT_ID, OTHER_ACCOUNT):
        landed = partition(lake, account_id, day)
        assert read_records(uri(landed)) == emulator.expected_records(account_id, day)
    assert files_under(lake) == with_manifests(
        [partition(lake, account, day) for account in (DEFAULT_ACCOUNT_ID, OTHER_ACCOUNT)]
    )
    assert [entry["status"] for entry in emulator.request_log if entry["route"] == "v2"].count(403) == 1
    output = capfd.readouterr().out
    assert f"{UNREACHABLE_ACCOUNT}: FAILED" in output
    assert f"1 of 3 account(s) failed: {UNREACHABLE_ACCOUNT}" in output
    assert "9109" in output

    from airflow.utils.session import create_session

    with create_session() as session:
        pools = {ti.pool for ti in run.get_task_instances(session=session)}
    assert pools == {cloudflare_pool}


def test_many_accounts_defaults_to_the_connections_account(emulator: Any, lake: Path, cloudflare_pool: str):
    day = dt.date(2025, 6, 17)
    run = run_dag("cloudflare_usage_many_accounts", logical_date=run_date(day), example=True)
    assert set(task_states(run)) == {"wait_for_usage", "plan_accounts", "land_usage[0]", "report"}
    assert set(task_states(run).values()) == {"success"}
    assert xcom(run, "plan_accounts") == [
        {"account_id": DEFAULT_ACCOUNT_ID, "cloudflare_conn_id": "cloudflare_default"}
    ]
    assert read_records(uri(partition(lake, DEFAULT_ACCOUNT_ID, day))) == emulator.expected_records(
        DEFAULT_ACCOUNT_ID, day
    )


def sql_rows(database: Path) -> dict[str, tuple[Any, ...]]:
    """``row_key`` -> (day, metric, zone, region, class, quantity) of every row of the SQL example's table."""
    connection = sqlite3.connect(database)
    try:
        rows = connection.execute(
            "SELECT row_key, charge_period_start, x_billable_metric_id, x_zone_id, region_id, charge_class, "
            "consumed_quantity FROM cloudflare_usage"
        ).fetchall()
    finally:
        connection.close()
    return {row[0]: (row[1][:10], *row[2:6], float(row[6])) for row in rows}


def identities(records: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(
        (
            record["ChargePeriodStart"][:10],
            record["x_BillableMetricId"],
            record["x_ZoneId"],
            record["RegionId"],
            record["ChargeClass"],
            float(record["ConsumedQuantity"]),
        )
        for record in records
    )


def test_sql_dag_replaces_the_day_and_its_look_back_in_a_sqlite_table(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
):
    database = tmp_path / "cloudflare_usage.db"
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_USAGE_DB", json.dumps({"conn_type": "sqlite", "host": str(database)}))
    day = dt.date(2025, 6, 18)
    run = run_dag("cloudflare_usage_to_sql", logical_date=run_date(day), example=True)
    assert task_states(run) == {"wait_for_usage": "success", "land_usage": "success", "report": "success"}

    days = days_until(day)
    want = [record for each in days for record in emulator.expected_records(DEFAULT_ACCOUNT_ID, each)]
    rows = sql_rows(database)
    assert Counter(rows.values()) == identities(want)
    summary = xcom(run, "land_usage")
    assert (summary["period_start"], summary["period_end"]) == (str(days[0]), str(day + ONE_DAY))
    assert (summary["rows_deleted"], summary["rows_inserted"], summary["table"]) == (0, len(want), "cloudflare_usage")
    assert f"Replaced 0 rows with {len(want)} in cloudflare_usage (sqlite)" in capfd.readouterr().out

    # Cloudflare restates a day of the look-back: the next run replaces that day and nothing else.
    restated = day - ONE_DAY * 3
    emulator.restate(DEFAULT_ACCOUNT_ID, restated, factor=1.2, corrections=1)
    again = run_dag("cloudflare_usage_to_sql", logical_date=run_date(day), example=True)
    assert set(task_states(again).values()) == {"success"}
    after = sql_rows(database)
    unchanged = {key: row for key, row in rows.items() if row[0] != str(restated)}
    assert {key: row for key, row in after.items() if row[0] != str(restated)} == unchanged
    want = [record for each in days for record in emulator.expected_records(DEFAULT_ACCOUNT_ID, each)]
    assert Counter(after.values()) == identities(want)
    assert xcom(again, "land_usage")["rows_inserted"] == len(rows) + 1  # the new correction row


def test_monthly_bill_dag_lands_usage_subscriptions_and_history_side_by_side(emulator: Any, lake: Path):
    # A run dated 2025-06-01 owns May (the last complete monthly interval before it).
    run = run_dag("cloudflare_monthly_bill", logical_date=pendulum.datetime(2025, 6, 1, tz="UTC"), example=True)
    assert task_states(run) == {
        "land_usage": "success",
        "land_subscriptions": "success",
        "land_billing_history": "success",
    }
    usage = xcom(run, "land_usage")
    assert (usage["period_start"], usage["period_end"]) == ("2025-04-24", "2025-06-01")  # May and the look-back
    assert len(usage["partitions"]) == 38
    subscriptions = lake / "subscriptions" / f"account_id={DEFAULT_ACCOUNT_ID}" / "month=2025-05"
    history = lake / "billing_history" / f"account_id={DEFAULT_ACCOUNT_ID}" / "month=2025-05"
    assert files_under(subscriptions) == with_manifests([subscriptions / "subscriptions.parquet"])
    assert files_under(history) == with_manifests([history / "history.parquet"])
    landed = read_records(uri(history / "history.parquet"))
    expected = emulator.expected_billing_history(DEFAULT_ACCOUNT_ID)
    assert [row["id"] for row in landed] == [item["id"] for item in expected]
    assert {row["hosted_invoice_url"] for row in landed} == {REDACTED}
    subscribed = read_records(uri(subscriptions / "subscriptions.parquet"))
    assert [row["id"] for row in subscribed] == [
        item["id"] for item in emulator.expected_subscriptions(DEFAULT_ACCOUNT_ID)
    ]
