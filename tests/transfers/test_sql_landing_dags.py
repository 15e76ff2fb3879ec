"""The SQL landing run for real through Airflow's task runner (``dag.test()``, DAGs in
``tests/dags/sql_dags.py``) against the emulator, into a real PostgreSQL server and a SQLite file:
what landed is compared with what the emulator serves, and the whole table before and after."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pendulum
import pytest
from harness import run_dag, task_states, xcom
from sql_support import OTHER_ACCOUNT, TABLE, Database, day, expected, sorted_records

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db", "cloudflare_conn")]

WEEK = {"period_start": "2025-06-10", "period_end": "2025-06-17"}


def land(database: Database, conf: dict[str, Any], suffix: str = "", logical_date: Any = None) -> Any:
    return run_dag(f"cfb_sql_{database.kind}{suffix}", conf=conf, logical_date=logical_date)


def no_duplicate_keys(database: Database) -> None:
    keys = Counter(row[0] for row in database.execute(f'SELECT "row_key" FROM "{TABLE}"'))
    assert keys and max(keys.values()) == 1


def test_a_week_lands_once_and_a_rerun_leaves_the_table_identical(emulator: Any, database: Database) -> None:
    run = land(database, WEEK)
    assert task_states(run) == {"land": "success"}
    want = expected(emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17"))
    assert database.records() == want
    summary = xcom(run, "land")
    assert {key: summary[key] for key in ("table", "account_id", "period_start", "period_end")} == {
        "table": TABLE,
        "account_id": DEFAULT_ACCOUNT_ID,
        **WEEK,
    }
    assert (summary["rows_deleted"], summary["rows_inserted"]) == (0, len(want))
    assert summary["source"] == "v2" and summary["table_created"] is True
    before = database.rows()

    emulator.configure(shuffle_records=True)  # the API's order is no part of a row's identity
    again = xcom(land(database, WEEK), "land")
    assert (again["rows_deleted"], again["rows_inserted"]) == (len(want), len(want))
    assert database.rows() == before
    no_duplicate_keys(database)


def test_a_restated_day_is_replaced_by_the_next_look_back_and_nothing_else_moves(
    emulator: Any, database: Database
) -> None:
    # A daily run on 2025-06-16 lands the 15th and re-lands the three days before it.
    logical = pendulum.datetime(2025, 6, 16, tz="UTC")
    first = land(database, {}, "_lookback", logical_date=logical)
    assert xcom(first, "land")["period_start"] == "2025-06-12"
    assert xcom(first, "land")["period_end"] == "2025-06-16"
    before = database.by_key()

    restated = day("2025-06-13")
    emulator.restate(DEFAULT_ACCOUNT_ID, restated, factor=1.5, corrections=2)
    second = land(database, {}, "_lookback", logical_date=logical)
    assert task_states(second) == {"land": "success"}
    after = database.by_key()

    def of_day(rows: dict[str, dict[str, Any]], wanted: bool) -> dict[str, dict[str, Any]]:
        return {key: row for key, row in rows.items() if (_charge_day(row) == restated) == wanted}

    assert of_day(after, False) == of_day(before, False)  # every other day: same keys, same values
    assert database.records() == expected(emulator, DEFAULT_ACCOUNT_ID, day("2025-06-12"), day("2025-06-16"))
    changed_day_before, changed_day_after = of_day(before, True), of_day(after, True)
    # The regular rows keep their keys with new quantities; the two new corrections are new rows.
    assert set(changed_day_before) < set(changed_day_after)
    assert len(changed_day_after) == len(changed_day_before) + 2
    assert any(
        changed_day_after[key]["consumed_quantity"] != row["consumed_quantity"]
        for key, row in changed_day_before.items()
    )
    no_duplicate_keys(database)


def _charge_day(row: dict[str, Any]) -> dt.date:
    value = row["charge_period_start"]
    return value.astimezone(dt.timezone.utc).date() if isinstance(value, dt.datetime) else day(value[:10])


def test_two_accounts_share_one_table_without_touching_each_other(emulator: Any, database: Database) -> None:
    land(database, WEEK)
    mine = database.records(account_id=DEFAULT_ACCOUNT_ID)
    other = land(database, {**WEEK, "account_id": OTHER_ACCOUNT})
    assert xcom(other, "land")["rows_deleted"] == 0
    assert database.records(account_id=OTHER_ACCOUNT) == expected(
        emulator, OTHER_ACCOUNT, day("2025-06-10"), day("2025-06-17")
    )
    assert database.records(account_id=DEFAULT_ACCOUNT_ID) == mine
    # Re-landing one account replaces its rows only.
    again = land(database, WEEK)
    assert xcom(again, "land")["rows_deleted"] == len(mine)
    assert database.records(account_id=OTHER_ACCOUNT) == expected(
        emulator, OTHER_ACCOUNT, day("2025-06-10"), day("2025-06-17")
    )
    no_duplicate_keys(database)


def test_a_cloudflare_failure_mid_window_leaves_the_previous_contents(emulator: Any, database: Database) -> None:
    # 40 days: two v2 requests (at most 31 days each); the first's rows are inserted before the second fails.
    window = {"period_start": "2025-05-01", "period_end": "2025-06-10"}
    land(database, window)
    before = database.rows()
    emulator.restate(DEFAULT_ACCOUNT_ID, "2025-05-03", factor=2)  # a successful run would change rows
    emulator.clear_request_log()
    emulator.add_fault(route="v2", kind="status", status=400, nth=2)  # permanent: no retry
    run = land(database, window)
    assert task_states(run) == {"land": "failed"}
    assert [entry["status"] for entry in emulator.request_log if entry["route"] == "v2"] == [200, 400]
    assert database.rows() == before


def test_a_row_the_database_refuses_rolls_the_whole_window_back(
    emulator: Any, database: Database, capfd: pytest.CaptureFixture[str]
) -> None:
    land(database, WEEK)
    before = database.rows()
    emulator.restate(DEFAULT_ACCOUNT_ID, "2025-06-16", factor=3)
    # The database now refuses the restated day's largest quantity: a row deep in the stream,
    # after several batches (of 40) went in.
    limit = max(record["ConsumedQuantity"] for record in emulator.expected_records(DEFAULT_ACCOUNT_ID, "2025-06-16"))
    if database.kind == "postgres":
        database.execute(f'ALTER TABLE "{TABLE}" ADD CONSTRAINT refuse CHECK (consumed_quantity < {limit}) NOT VALID')
    else:
        database.execute(
            f'CREATE TRIGGER refuse BEFORE INSERT ON "{TABLE}" WHEN NEW.consumed_quantity >= {limit} '
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        )
    capfd.readouterr()
    run = land(database, WEEK)
    assert task_states(run) == {"land": "failed"}
    output = capfd.readouterr()
    assert ('violates check constraint "refuse"' if database.kind == "postgres" else "refused by the test") in (
        output.out + output.err
    )
    assert database.rows() == before


def test_fields_cloudflare_adds_later_land_in_the_json_column(emulator: Any, database: Database) -> None:
    emulator.configure(extra_fields=True)
    land(database, {"period_start": "2025-06-10", "period_end": "2025-06-11"})
    rows = list(database.by_key().values())
    extras = [row["extra_fields"] for row in rows]
    extras = [value if isinstance(value, dict) else json.loads(value) for value in extras]
    assert {tuple(value) for value in extras} == {("x_future_field",)}  # named in the table's key style
    # Fields the documentation lists have typed columns, whichever day first carried them.
    assert all(row["x_product_category_name"] for row in rows)
    assert "x_future_field" not in database.columns()
    want = [
        {("x_future_field" if key == "x_FutureField" else key): value for key, value in record.items()}
        for record in emulator.expected_records(DEFAULT_ACCOUNT_ID, "2025-06-10")
    ]
    assert database.records() == sorted_records(want)


def test_paygo_usage_lands_in_its_own_rows(emulator: Any, database: Database) -> None:
    land(database, WEEK)
    v2_rows = database.records(source="v2")
    run = land(database, {**WEEK, "paygo_path": "paygo-usage"}, "_paygo")
    assert task_states(run) == {"land": "success"}
    summary = xcom(run, "land")
    assert summary["source"] == "paygo" and summary["rows_deleted"] == 0
    paygo = database.execute(f"SELECT COUNT(*) FROM \"{TABLE}\" WHERE source = 'paygo'")[0][0]
    want = expected(emulator, DEFAULT_ACCOUNT_ID, day("2025-06-10"), day("2025-06-17"), source="paygo-usage")
    assert paygo == summary["rows_inserted"] == len(want)
    assert database.execute(f"SELECT COUNT(*) FROM \"{TABLE}\" WHERE source = 'v2'")[0][0] == len(v2_rows)
    no_duplicate_keys(database)


def test_a_connection_that_is_no_sql_database_fails_before_any_request(
    emulator: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    run = run_dag("cfb_sql_not_a_database", conf=WEEK)
    assert task_states(run) == {"land": "failed"}
    assert emulator.request_log == []
    output = capfd.readouterr()
    assert "CloudflareHook, which is not a common.sql DbApiHook" in output.out + output.err
