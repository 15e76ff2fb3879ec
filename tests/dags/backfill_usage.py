"""The DAG the backfill CLI tests run (``airflow dags backfill`` on 2.x, ``airflow backfill create``
on 3.x): one v2 usage partition per daily data interval, under the ``cfbilling_backfill_root``
Variable."""

from __future__ import annotations

import pendulum
from airflow import DAG

from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

try:  # Airflow 3.2+ exports it from the SDK; before that only Airflow's core has it
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

with DAG(
    "cf_backfill_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2025, 6, 1, tz="UTC"),
    end_date=pendulum.datetime(2025, 6, 30, tz="UTC"),  # unpaused, the scheduler has nothing of its own to run
    catchup=False,
    max_active_runs=1,
    tags=["test"],
):
    CloudflareUsageV2Operator(
        task_id="usage",
        destination="{{ var.value.cfbilling_backfill_root }}/date={{ data_interval_start | ds }}/usage.jsonl",
    )
