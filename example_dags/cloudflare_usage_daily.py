"""Daily Cloudflare usage into a lake partition: wait for the day, land it, report what landed.

One run per UTC day. Each run

1. waits until Cloudflare has published the day's v2 usage (``CloudflareUsageAvailableSensor``,
   deferrable: the wait costs no worker slot; bad credentials fail at once, rate limits are
   waited out);
2. lands the day as ``<lake root>/usage_v2/account_id=<id>/charge_date=<day>/usage.jsonl``
   (``CloudflareUsageV2Operator``; atomic, and a re-run replaces the object);
3. prints the summary the operator returned through XCom (records, bytes, URI).

Why ``CronDataIntervalTimetable``: it gives every run a one-day data interval
``[data_interval_start, data_interval_end)``, so the partition name and the window come from
the same two values and always agree, for scheduled runs, backfills
(``airflow backfill create --dag-id cloudflare_usage_daily --from-date 2025-06-01 --to-date
2025-06-30``) and re-runs alike. A plain ``schedule="@daily"`` on Airflow 3 is a
``CronTriggerTimetable`` whose data interval is empty; the operators then fetch the day *before*
the logical date and a ``{{ data_interval_start | ds }}`` partition would name the wrong day.
Passing ``period_start``/``period_end`` explicitly makes such a mismatch fail loudly (an empty
window is refused) instead of landing a day under another day's name.

Configuration, all read when a task runs (nothing at parse time):

- connection ``cloudflare_default``: API token with Billing Read and ``extra.account_id``;
- Variable ``cloudflare_lake_root``: where partitions go (``s3://bucket/cloudflare``,
  ``gs://...``, ``file:///...``); default ``file:///tmp/cloudflare-lake``. For object stores add
  ``destination_conn_id`` (e.g. ``aws_default``).

Runs on Airflow 2.10 through 3.x: the imports take ``airflow.sdk`` where it exists and fall back
to ``airflow``, ``airflow.decorators`` and ``airflow.timetables.interval`` (Airflow 3 keeps
``CronDataIntervalTimetable`` there until 3.2 adds it to ``airflow.sdk``).
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

from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator
from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor

# Templates, rendered when a task runs. Day and next day are the run's data interval.
LAKE_ROOT = "{{ var.value.get('cloudflare_lake_root', 'file:///tmp/cloudflare-lake') }}"
ACCOUNT_ID = "{{ conn.cloudflare_default.extra_dejson.account_id }}"
DAY = "{{ data_interval_start | ds }}"
NEXT_DAY = "{{ data_interval_end | ds }}"
PARTITION = f"{LAKE_ROOT}/usage_v2/account_id={ACCOUNT_ID}/charge_date={DAY}/usage.jsonl"

with DAG(
    dag_id="cloudflare_usage_daily",
    description="Land each UTC day of Cloudflare v2 usage as one lake partition",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    tags=["cloudflare", "billing", "example"],
    doc_md=__doc__,
):
    wait_for_usage = CloudflareUsageAvailableSensor(
        task_id="wait_for_usage",
        day=DAY,
        deferrable=True,
        poke_interval=30 * 60,  # Cloudflare publishes a day some hours after it ends
        timeout=24 * 3600,
    )

    land_usage = CloudflareUsageV2Operator(
        task_id="land_usage",
        period_start=DAY,
        period_end=NEXT_DAY,
        destination=PARTITION,
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        """Say what landed, from the operator's XCom summary."""
        print(
            f"Landed {summary['records']} records ({summary['bytes']} bytes, {summary['format']}) "
            f"of account {summary['account_id']} for [{summary['period_start']}, {summary['period_end']}) "
            f"at {summary['uri']}"
        )

    wait_for_usage >> land_usage
    report(land_usage.output)
