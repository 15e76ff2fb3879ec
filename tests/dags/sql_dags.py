"""DAGs the SQL landing tests run through dag.test(): one per database (the connections
``cfb_sql_postgres`` and ``cfb_sql_sqlite`` come from the tests' environment); the window, account,
metric and PayGo path come from dag_run.conf."""

from __future__ import annotations

import pendulum
from airflow import DAG

from airflow_provider_cfbilling.transfers.cloudflare_to_sql import CloudflareUsageToSqlOperator

try:  # Airflow 3.2+ exports it from the SDK; before that only Airflow's core has it
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

START = pendulum.datetime(2025, 1, 1, tz="UTC")
TABLE = "cloudflare_usage"


def conf(key: str) -> str:
    return "{{ dag_run.conf.get('%s') or '' }}" % key


WINDOW = {"period_start": conf("period_start"), "period_end": conf("period_end")}

for database in ("postgres", "sqlite"):
    SQL = {"sql_conn_id": f"cfb_sql_{database}", "table": TABLE, "account_id": conf("account_id"), "batch_size": 40}

    with DAG(f"cfb_sql_{database}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        CloudflareUsageToSqlOperator(task_id="land", metric=conf("metric"), **SQL, **WINDOW)

    # The default window (the run's data interval: one UTC day) and the three days before it.
    with DAG(
        f"cfb_sql_{database}_lookback",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=START,
        catchup=False,
        tags=["test"],
    ):
        CloudflareUsageToSqlOperator(task_id="land", lookback_days=3, **SQL)

    with DAG(f"cfb_sql_{database}_paygo", schedule=None, start_date=START, catchup=False, tags=["test"]):
        CloudflareUsageToSqlOperator(task_id="land", source="paygo", paygo_path=conf("paygo_path"), **SQL, **WINDOW)

# Bad input found when the task runs, before any request: a connection that is no SQL database.
with DAG("cfb_sql_not_a_database", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareUsageToSqlOperator(task_id="land", sql_conn_id="cloudflare_default", table=TABLE, **WINDOW)
