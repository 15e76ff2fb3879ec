"""DAGs the operator end-to-end tests run through dag.test(); every knob comes from dag_run.conf."""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

from airflow_provider_cfbilling.operators.billing import (
    CloudflareBillingProfileOperator,
    CloudflarePaygoUsageOperator,
    CloudflareUsageV2Operator,
)
from airflow_provider_cfbilling.version_compat import OutletAsset as Asset
from airflow_provider_cfbilling.version_compat import OutletAssetAlias as AssetAlias

try:  # Airflow 3.2+ exports it from the SDK; before that only Airflow's core has it
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

START = pendulum.datetime(2025, 1, 1, tz="UTC")


def conf(key: str) -> str:
    return "{{ dag_run.conf.get('%s') or '' }}" % key


COMMON = {
    "account_id": conf("account_id"),
    "destination": conf("destination"),
    "destination_conn_id": conf("destination_conn_id"),
}
WINDOW = {"period_start": conf("period_start"), "period_end": conf("period_end")}

for key_style in ("api", "snake"):
    with DAG(f"cf_v2_{key_style}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        CloudflareUsageV2Operator(
            task_id="usage", metric=conf("metric"), key_style=key_style, max_xcom_records=50_000, **COMMON, **WINDOW
        )

    with DAG(f"cf_paygo_{key_style}", schedule=None, start_date=START, catchup=False, tags=["test"]):
        CloudflarePaygoUsageOperator(
            task_id="usage",
            paygo_path=conf("paygo_path"),
            key_style=key_style,
            max_xcom_records=50_000,
            **COMMON,
            **WINDOW,
        )

with DAG("cf_v2_small_xcom", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareUsageV2Operator(task_id="usage", max_xcom_records=3, **COMMON, **WINDOW)

with DAG("cf_profile", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareBillingProfileOperator(task_id="profile", **COMMON)
    CloudflareBillingProfileOperator(task_id="profile_unredacted", redact=False, account_id=conf("account_id"))

with DAG("cf_v2_lineage", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareUsageV2Operator(
        task_id="usage",
        outlets=[AssetAlias("cloudflare_usage_v2"), Asset("cloudflare://usage_v2/all")],
        **COMMON,
        **WINDOW,
    )

with DAG("cf_downstream_of_usage", schedule=[AssetAlias("cloudflare_usage_v2")], start_date=START, catchup=False):
    EmptyOperator(task_id="consume")

# Daily at local midnight in non-UTC timezones (DST days included) and hourly: the default window
# is the set of UTC days whose midnight lies in the data interval.
for dag_id, cron, timezone in (
    ("cf_v2_daily_london", "0 0 * * *", "Europe/London"),
    ("cf_v2_daily_tokyo", "0 0 * * *", "Asia/Tokyo"),
    ("cf_v2_hourly_utc", "0 * * * *", "UTC"),
):
    with DAG(
        dag_id,
        schedule=CronDataIntervalTimetable(cron, timezone=timezone),
        start_date=pendulum.datetime(2024, 1, 1, tz=timezone),
        catchup=False,
        tags=["test"],
    ):
        CloudflareUsageV2Operator(
            task_id="usage",
            destination=conf("root") + "/account_id={account_id}/charge_date={charge_date}/usage.jsonl",
        )

# A daily DAG with a 3-day look-back whose partitions are an asset alias's events.
with DAG(
    "cf_v2_lookback",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START,
    catchup=False,
    tags=["test"],
):
    CloudflareUsageV2Operator(
        task_id="usage",
        destination=conf("root") + "/account_id={account_id}/charge_date={charge_date}/usage.jsonl",
        lookback_days=3,
        outlets=[AssetAlias("cloudflare_usage_v2_lookback")],
    )
