"""Daily Cloudflare usage into a SQL table: wait for the day, replace it (and the week before) in one
transaction, report what changed.

One run per UTC day. Each run

1. waits until Cloudflare has published the day's v2 usage (``CloudflareUsageAvailableSensor``,
   deferrable);
2. lands the day into the table ``cloudflare_usage`` (``CloudflareUsageToSqlOperator``) and
   re-lands the 7 days before it (``lookback_days=7``), so days Cloudflare restates are brought
   up to date: the window's rows of the account are deleted and the fetched ones inserted in one
   transaction, so readers see the old rows or the new ones, never a mix, and a failed run leaves
   the table as it was. Every row has a stable key (``row_key``, unique), so a re-run or a
   backfill never duplicates anything;
3. prints the summary the operator returned through XCom (rows deleted and inserted).

The table is created on the first run, with typed columns (snake_case names, like the official
SDK's attributes); fields Cloudflare adds later land in its ``extra_fields`` JSON column.

Configuration, all read when a task runs (nothing at parse time):

- connection ``cloudflare_default``: API token with Billing Read and ``extra.account_id``;
- connection ``cloudflare_usage_db``: the database. SQLite by default, e.g.
  ``AIRFLOW_CONN_CLOUDFLARE_USAGE_DB='{"conn_type": "sqlite", "host": "/var/lib/airflow/cloudflare_usage.db"}'``;
  any connection whose hook is a common.sql ``DbApiHook`` works the same (PostgreSQL, MySQL, ...),
  with the ``sql`` extra (``pip install "airflow-provider-cfbilling[sql]"``) and the database's provider.

Runs on Airflow 2.10 through 3.x (see ``cloudflare_usage_daily`` for the imports).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG  # type: ignore[assignment,no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]
try:  # Airflow 3.2+
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2.10 - 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor
from airflow_provider_cfbilling.transfers.cloudflare_to_sql import CloudflareUsageToSqlOperator

with DAG(
    dag_id="cloudflare_usage_to_sql",
    description="Replace each UTC day of Cloudflare v2 usage (and the week before it) in a SQL table",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs of one table, one at a time: each holds its window's rows until it commits
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    tags=["cloudflare", "billing", "example", "sql"],
    doc_md=__doc__,
):
    wait_for_usage = CloudflareUsageAvailableSensor(
        task_id="wait_for_usage",
        deferrable=True,
        poke_interval=30 * 60,
        timeout=24 * 3600,
    )

    land_usage = CloudflareUsageToSqlOperator(
        task_id="land_usage",
        sql_conn_id="cloudflare_usage_db",
        table="cloudflare_usage",
        lookback_days=7,  # re-land the last week: restated days are replaced, the rest rewritten identically
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        """Say what changed in the table, from the operator's XCom summary."""
        print(
            f"Replaced {summary['rows_deleted']} rows with {summary['rows_inserted']} in {summary['table']} "
            f"({summary['database']}) for account {summary['account_id']}, "
            f"[{summary['period_start']}, {summary['period_end']})"
        )

    wait_for_usage >> land_usage
    report(land_usage.output)
