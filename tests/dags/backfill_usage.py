"""The DAG the backfill CLI tests run (``airflow dags backfill`` on 2.x, ``airflow backfill create``
on 3.x): one v2 usage partition per daily data interval, under the ``cfbilling_backfill_root``
Variable."""

from __future__ import annotations

import pendulum
from airflow import DAG

from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator
from airflow_provider_cfbilling.version_compat import CronDataIntervalTimetable

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
