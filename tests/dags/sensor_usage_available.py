"""DAGs the sensor end-to-end tests run through dag.test(); the day and account come from dag_run.conf
(empty: the sensor's defaults)."""

from __future__ import annotations

import pendulum
from airflow import DAG

from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor

START = pendulum.datetime(2025, 1, 1, tz="UTC")


def conf(key: str) -> str:
    return "{{ dag_run.conf.get('%s') or '' }}" % key


PARAMETERS = {"day": conf("day"), "account_id": conf("account_id"), "metric": conf("metric")}

with DAG("cf_sensor_deferrable", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareUsageAvailableSensor(task_id="wait", deferrable=True, poke_interval=0.5, timeout=30, **PARAMETERS)

with DAG("cf_sensor_deferrable_short", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareUsageAvailableSensor(task_id="wait", deferrable=True, poke_interval=0.5, timeout=2, **PARAMETERS)
    CloudflareUsageAvailableSensor(
        task_id="wait_soft", deferrable=True, poke_interval=0.5, timeout=2, soft_fail=True, **PARAMETERS
    )

with DAG("cf_sensor_poke", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareUsageAvailableSensor(
        task_id="wait", deferrable=False, mode="poke", poke_interval=0.5, timeout=30, **PARAMETERS
    )

with DAG("cf_sensor_reschedule", schedule=None, start_date=START, catchup=False, tags=["test"]):
    CloudflareUsageAvailableSensor(
        task_id="wait", deferrable=False, mode="reschedule", poke_interval=1, timeout=30, **PARAMETERS
    )
