"""Daily Cloudflare usage into a lake partition: wait for the day, land it, report what landed.

One run per UTC day. Each run

1. waits until Cloudflare has published the day's v2 usage (``CloudflareUsageAvailableSensor``,
   deferrable: the wait costs no worker slot; bad credentials fail at once, rate limits are
   waited out);
2. lands the day as ``<lake root>/usage_v2/account_id=<id>/charge_date=<day>/usage.jsonl``
   (``CloudflareUsageV2Operator``; atomic, each object with its manifest
   ``_usage.jsonl.manifest.json``), and re-checks the 7 days before it (``lookback_days=7``):
   Cloudflare may restate recent days, and only a day whose content changed is rewritten (and
   announced to downstream DAGs as an asset event); a re-run touches nothing;
3. prints the summary the operator returned through XCom (records, bytes, each day's status).

The window is the operators' default: the UTC days whose midnight lies in the run's data
interval, so consecutive runs fetch every UTC day exactly once, in any timezone (move the
timetable to ``timezone="Europe/London"`` and nothing else changes). The partition's name comes
from the same window: ``{account_id}`` and ``{charge_date}`` in ``destination`` are filled by the
operator from what it fetched, never from a Jinja date that could name another day. Scheduled
runs, backfills (``airflow backfill create --dag-id cloudflare_usage_daily --from-date
2025-06-01 --to-date 2025-06-30``) and re-runs all agree.

Why ``CronDataIntervalTimetable``: it gives every run a one-day data interval. A plain
``schedule="@daily"`` on Airflow 3 is a ``CronTriggerTimetable`` whose data interval is empty;
the operators then fetch the UTC day before the logical date, which is right too, but a data
interval says in the UI which day a run owns.

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

# Rendered when a task runs: Jinja gives the lake root; the operator fills {account_id} and
# {charge_date} from the window it fetched.
LAKE_ROOT = "{{ var.value.get('cloudflare_lake_root', 'file:///tmp/cloudflare-lake') }}"
PARTITION = LAKE_ROOT + "/usage_v2/account_id={account_id}/charge_date={charge_date}/usage.jsonl"

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
        task_id="wait_for_usage",  # waits for the last day of the run's window
        deferrable=True,
        poke_interval=30 * 60,  # Cloudflare publishes a day some hours after it ends
        timeout=24 * 3600,
    )

    land_usage = CloudflareUsageV2Operator(
        task_id="land_usage",
        destination=PARTITION,
        lookback_days=7,  # re-check the last week: restated days are rewritten, the rest untouched
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        """Say what landed, from the operator's XCom summary."""
        print(
            f"Landed {summary['records']} records ({summary['bytes']} bytes, {summary['format']}) "
            f"of account {summary['account_id']} for [{summary['period_start']}, {summary['period_end']})"
        )
        for partition in summary["partitions"]:
            print(
                f"  {partition['charge_date']}: {partition['status']}, {partition['records']} records "
                f"at {partition['uri']}"
            )

    wait_for_usage >> land_usage
    report(land_usage.output)
