"""The DAG of the reliability secrets tests: every component that holds a credential, in one run.

Succeeding tasks (v2 and profile to XCom, profile to a file, the sensor) and failing ones (the
emulator is told to answer 403 on the PayGo beta path and to drop connections on ``paygo-usage``),
so both log paths are exercised. ``dag_run.conf``: ``base`` (a ``file://`` directory).
"""

from __future__ import annotations

import pendulum
from airflow import DAG

from airflow_provider_cfbilling.operators.billing import (
    CloudflareBillingProfileOperator,
    CloudflarePaygoUsageOperator,
    CloudflareUsageV2Operator,
)
from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor

with DAG(
    "reliability_secrets",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test", "reliability"],
):
    CloudflareUsageV2Operator(task_id="usage_to_xcom")
    CloudflareBillingProfileOperator(task_id="profile_to_xcom")
    CloudflareBillingProfileOperator(
        task_id="profile_to_file", destination="{{ dag_run.conf['base'] }}/billing_profile/profile.jsonl"
    )
    CloudflareUsageAvailableSensor(task_id="usage_available", mode="poke", poke_interval=0.1, timeout=5)
    CloudflarePaygoUsageOperator(task_id="paygo_forbidden", paygo_path="billing/usage/paygo", retries=0)
    CloudflarePaygoUsageOperator(task_id="paygo_network_down", paygo_path="paygo-usage", retries=0)
