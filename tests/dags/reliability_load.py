"""The load DAG of the reliability tests: one v2 usage task per account, mapped at run time.

``dag_run.conf``: ``accounts`` (32-hex ids), ``day`` (``YYYY-MM-DD``) and ``base`` (a ``file://``
directory); each account lands in ``{base}/account_id={id}/charge_date={day}/usage.jsonl``.
"""

from __future__ import annotations

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, get_current_context, task
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG  # type: ignore[assignment,no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]
    from airflow.operators.python import get_current_context  # type: ignore[no-redef,attr-defined]

from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

with DAG(
    "reliability_load",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=64,
    tags=["test", "reliability"],
):

    @task
    def partitions() -> list[dict[str, str]]:
        conf = get_current_context()["dag_run"].conf
        day = conf["day"]
        return [
            {
                "account_id": account,
                "destination": f"{conf['base']}/account_id={account}/charge_date={day}/usage.jsonl",
            }
            for account in conf["accounts"]
        ]

    CloudflareUsageV2Operator.partial(
        task_id="usage",
        period_start="{{ dag_run.conf['day'] }}",
        period_end="{{ macros.ds_add(dag_run.conf['day'], 1) }}",
        retries=0,
    ).expand_kwargs(partitions())
