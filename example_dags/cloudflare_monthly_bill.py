"""The whole Cloudflare bill of a month, side by side: usage, subscriptions and billing history.

Usage (``CloudflareUsageV2Operator``) covers usage-based charges only; fixed-fee plans live in the
subscriptions, and what was actually charged lives in the billing history. Reconciling a bill
needs all three (see the docs page "Reconciling a Cloudflare bill"). One run per month, after the
month ends:

1. ``land_usage``: the month's v2 usage, one partition per UTC day,
   ``<lake root>/usage_v2/account_id=<id>/charge_date=<day>/usage.parquet``, with a 7-day
   look-back into the month before (days Cloudflare restated are rewritten, nothing else);
2. ``land_subscriptions``: a snapshot of the account's subscriptions (plan, price, currency,
   frequency, state, current period) under ``subscriptions/account_id=<id>/month=<YYYY-MM>/``;
3. ``land_billing_history``: the account's billing history (paginated), invoice links redacted,
   under ``billing_history/account_id=<id>/month=<YYYY-MM>/``.

Every object has its manifest next to it. Configuration (and the imports on Airflow 2) as in
``cloudflare_usage_daily``: connection ``cloudflare_default`` and the Variable
``cloudflare_lake_root`` (default ``file:///tmp/cloudflare-lake``). For many accounts grouped in an
organization, ``CloudflareUsageV2Operator(organization_id=...)`` reads them all in one pull.
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG  # type: ignore[assignment,no-redef]
try:  # Airflow 3.2+
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2.10 - 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

from airflow_provider_cfbilling.operators.billing import (
    CloudflareBillingHistoryOperator,
    CloudflareSubscriptionsOperator,
    CloudflareUsageV2Operator,
)

LAKE_ROOT = "{{ var.value.get('cloudflare_lake_root', 'file:///tmp/cloudflare-lake') }}"
# The month a run covers: its data interval's start (a monthly interval on UTC midnights).
MONTH = "{{ data_interval_start.strftime('%Y-%m') }}"

with DAG(
    dag_id="cloudflare_monthly_bill",
    description="A month of Cloudflare usage, subscriptions and billing history, side by side",
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cloudflare", "billing", "example"],
    doc_md=__doc__,
):
    CloudflareUsageV2Operator(
        task_id="land_usage",
        destination=LAKE_ROOT + "/usage_v2/account_id={account_id}/charge_date={charge_date}/usage.parquet",
        lookback_days=7,
    )
    CloudflareSubscriptionsOperator(
        task_id="land_subscriptions",
        destination=LAKE_ROOT + "/subscriptions/account_id={account_id}/month=" + MONTH + "/subscriptions.parquet",
    )
    CloudflareBillingHistoryOperator(
        task_id="land_billing_history",
        destination=LAKE_ROOT + "/billing_history/account_id={account_id}/month=" + MONTH + "/history.parquet",
    )
