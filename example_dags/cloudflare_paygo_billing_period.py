"""PayGo usage of the current billing period, refreshed daily: one object per billing period.

Cloudflare's PayGo billing periods run from the subscription's billing-cycle anchor day to the
same day of the next month, not calendar months. Each run

1. reads the anchor from the PayGo info endpoint and works out the billing period that contains
   the run's day (``billing_period``: one small request);
2. lands the period so far, ``[period start, day + 1)``, with ``CloudflarePaygoUsageOperator`` as
   ``<lake root>/paygo/account_id=<id>/billing_period_start=<start>/usage.jsonl``. The object is
   replaced (atomically) every day until the period ends, so it always holds the period to date;
   the ``Cumulated*`` columns are Cloudflare's running totals from the period start;
3. prints what landed.

The PayGo path comes from the connection (``extra.paygo_path``: ``billable-usage`` by default,
``paygo-usage`` or the beta ``billing/usage/paygo``); the beta path has no info endpoint, so
with it the period is taken to be the calendar month. The operator itself starts its request at
the anchor day (Cloudflare returns nothing for ranges that miss it) and keeps only records inside
the window.

Configuration (and the imports on Airflow 2) as in ``cloudflare_usage_daily``: connection
``cloudflare_default`` and the Variable ``cloudflare_lake_root`` (default ``file:///tmp/cloudflare-lake``).
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

from airflow_provider_cfbilling.operators.billing import CloudflarePaygoUsageOperator

CONN_ID = "cloudflare_default"
LAKE_ROOT = "{{ var.value.get('cloudflare_lake_root', 'file:///tmp/cloudflare-lake') }}"
# {account_id} and {period_start} are filled by the operator from the window it fetched.
OBJECT = LAKE_ROOT + "/paygo/account_id={account_id}/billing_period_start={period_start}/usage.jsonl"

with DAG(
    dag_id="cloudflare_paygo_billing_period",
    description="Cloudflare PayGo usage of the billing period to date, one object per billing period",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(minutes=10)},
    tags=["cloudflare", "billing", "example"],
    doc_md=__doc__,
):

    @task(multiple_outputs=True)
    def billing_period(data_interval_end: Any = None) -> dict[str, str]:
        """``start``: the billing period's first day; ``end``: the day after the run's day."""
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook
        from airflow_provider_cfbilling.windows import anchored_start

        day = data_interval_end.date() - dt.timedelta(days=1)  # the last day of the data interval
        hook = CloudflareHook(CONN_ID)
        with hook:
            if hook.settings.paygo_path == "billing/usage/paygo":
                start = day.replace(day=1)
            else:
                start = anchored_start(hook.get_paygo_usage_info(), day)
        print(f"Billing period of {day} started on {start}")
        return {"start": start.isoformat(), "end": (day + dt.timedelta(days=1)).isoformat()}

    period = billing_period()

    land_paygo = CloudflarePaygoUsageOperator(
        task_id="land_paygo",
        cloudflare_conn_id=CONN_ID,
        period_start=period["start"],
        period_end=period["end"],
        destination=OBJECT,
    )

    @task
    def report(summary: dict[str, Any]) -> None:
        print(
            f"Billing period to date [{summary['period_start']}, {summary['period_end']}): "
            f"{summary['records']} records, {summary['bytes']} bytes at {summary['uri']}"
        )

    report(land_paygo.output)
