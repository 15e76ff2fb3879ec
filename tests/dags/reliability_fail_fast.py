"""DAGs of the fail-fast tests (``tests/reliability/test_reliability_fail_fast.py``): every task has
``retries=2`` and ``retry_delay=0``, so a retried task reaches try 3 within one ``dag.test()``, and a
task that fails fast stays at try 1.

``dag_run.conf``: ``period_start`` / ``period_end`` (operators), ``day`` (poke-mode sensor),
``deferrable_day`` (deferrable sensor) and ``reschedule_day`` (reschedule-mode sensor); each task
asks for its own days, so the emulator's request log tells the tasks' requests apart.
"""

from __future__ import annotations

import datetime as dt

import pendulum
from airflow import DAG

from airflow_provider_cfbilling.operators.billing import CloudflarePaygoUsageOperator, CloudflareUsageV2Operator
from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor

START = pendulum.datetime(2025, 1, 1, tz="UTC")
RETRIES = {"retries": 2, "retry_delay": dt.timedelta(0)}
PAYGO_BETA = {"source": "paygo", "paygo_path": "billing/usage/paygo"}


def conf(key: str) -> str:
    return "{{ dag_run.conf.get('%s') or '' }}" % key


WINDOW = {"period_start": conf("period_start"), "period_end": conf("period_end")}
# Short waits: a sensor whose checks keep failing transiently reaches its timeout within seconds (the
# deferrable one has time for its trigger to poll even on a loaded machine).
POKE = {"mode": "poke", "deferrable": False, "day": conf("day"), "poke_interval": 0.2, "timeout": 1}
DEFERRABLE = {"deferrable": True, "day": conf("deferrable_day"), "poke_interval": 0.2, "timeout": 3}
RESCHEDULE = {"mode": "reschedule", "deferrable": False, "day": conf("reschedule_day"), "poke_interval": 0.2}


def dag(dag_id: str) -> DAG:
    return DAG(
        dag_id, schedule=None, start_date=START, catchup=False, default_args=RETRIES, tags=["test", "reliability"]
    )


with dag("fail_fast_v2"):
    CloudflareUsageV2Operator(task_id="operator", **WINDOW)
    CloudflareUsageAvailableSensor(task_id="sensor_poke", **POKE)
    CloudflareUsageAvailableSensor(task_id="sensor_deferrable", **DEFERRABLE)

with dag("fail_fast_v2_operator"):
    CloudflareUsageV2Operator(task_id="operator", **WINDOW)

with dag("fail_fast_paygo"):
    CloudflarePaygoUsageOperator(task_id="operator", paygo_path="billing/usage/paygo", **WINDOW)
    CloudflareUsageAvailableSensor(task_id="sensor_poke", **POKE, **PAYGO_BETA)
    CloudflareUsageAvailableSensor(task_id="sensor_deferrable", **DEFERRABLE, **PAYGO_BETA)

with dag("fail_fast_reschedule"):
    CloudflareUsageAvailableSensor(task_id="sensor_reschedule", timeout=1, **RESCHEDULE)

# Long enough for the trigger to poll: the permanent error is met there, not in the task's own check.
with dag("fail_fast_trigger"):
    CloudflareUsageAvailableSensor(task_id="sensor_deferrable", **{**DEFERRABLE, "timeout": 30})

with dag("fail_fast_trigger_soft_fail"):
    CloudflareUsageAvailableSensor(task_id="sensor_deferrable", soft_fail=True, **{**DEFERRABLE, "timeout": 30})

with dag("fail_fast_soft_fail"):
    CloudflareUsageAvailableSensor(task_id="sensor_poke", soft_fail=True, **POKE)
    CloudflareUsageAvailableSensor(task_id="sensor_deferrable", soft_fail=True, **DEFERRABLE)
