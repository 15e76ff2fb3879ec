"""The DAG ``make test-deploy`` backfills: daily Cloudflare v2 usage of several accounts.

Modelled on ``example_dags/cloudflare_usage_daily.py`` (same timetable, same partition layout,
same sensor -> operator -> report shape), widened to several accounts with dynamic task mapping:

1. ``plan_accounts`` reads the account ids from the Variable ``cloudflare_accounts`` (a JSON
   list; ``AIRFLOW_VAR_CLOUDFLARE_ACCOUNTS`` in the deployment test);
2. ``wait_for_usage``: one deferrable ``CloudflareUsageAvailableSensor`` per account. A day that
   is not published yet is waited for in the triggerer, not in a worker slot;
3. ``land_usage``: one ``CloudflareUsageV2Operator`` per account, writing
   ``<lake root>/usage_v2/account_id=<id>/charge_date=<day>/usage.jsonl`` (atomic, a re-run
   replaces the object);
4. ``report`` prints one line per account and fails the run if any partition is missing.

Every task runs in the pool ``cloudflare_api`` (the deployment creates it with 4 slots; deferred
sensors hold no pool slot). The DAG exists for backfills (``airflow backfill create``) of days in
2025: its ``end_date`` lies in the past, so the scheduler never creates a run of its own when the
DAG is unpaused, and the emulator's clock, not the wall clock, decides which days are published.

Configuration read when a task runs: the connection ``cloudflare_default``, the Variables
``cloudflare_lake_root`` and ``cloudflare_accounts``. One setting is read at parse time, from the
environment, with no I/O: the sensors poll every ``CFBILLING_DEPLOY_POLL_SECONDS`` (default 3)
seconds, so the test moves quickly; a production DAG polls every 30 minutes.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Variable, task

from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator
from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor

DAG_ID = "cfbilling_deploy_daily"
POOL = "cloudflare_api"
ACCOUNTS_VARIABLE = "cloudflare_accounts"
LAKE_ROOT = "{{ var.value.get('cloudflare_lake_root', 'file:///tmp/cloudflare-lake') }}"
DAY = "{{ data_interval_start | ds }}"
NEXT_DAY = "{{ data_interval_end | ds }}"
# ``task`` is the mapped task instance's own operator, so this is each account's own id.
PARTITION = f"{LAKE_ROOT}/usage_v2/account_id={{{{ task.account_id }}}}/charge_date={DAY}/usage.jsonl"
START_DATE = pendulum.datetime(2025, 1, 1, tz="UTC")
END_DATE = pendulum.datetime(2025, 12, 31, tz="UTC")
POLL_SECONDS = float(os.environ.get("CFBILLING_DEPLOY_POLL_SECONDS", "3"))

with DAG(
    dag_id=DAG_ID,
    description="Deployment test: each UTC day of Cloudflare v2 usage for several accounts",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    # A fixed, past end: the scheduler never creates runs of its own, only backfills do.
    end_date=END_DATE,
    catchup=False,
    max_active_runs=16,
    default_args={"pool": POOL, "retries": 0},
    tags=["cloudflare", "billing", "deploy-test"],
    doc_md=__doc__,
):

    @task
    def plan_accounts() -> list[str]:
        """The account ids of the Variable ``cloudflare_accounts`` (a JSON list of 32-hex ids)."""
        accounts = Variable.get(ACCOUNTS_VARIABLE, deserialize_json=True)
        if not isinstance(accounts, list) or not accounts or not all(isinstance(item, str) for item in accounts):
            raise ValueError(f"Variable {ACCOUNTS_VARIABLE} must be a non-empty JSON list of account ids")
        print(f"{len(accounts)} account(s): {', '.join(accounts)}")
        return accounts

    accounts = plan_accounts()

    wait_for_usage = CloudflareUsageAvailableSensor.partial(
        task_id="wait_for_usage",
        day=DAY,
        deferrable=True,
        poke_interval=POLL_SECONDS,
        timeout=15 * 60,
    ).expand(account_id=accounts)

    land_usage = CloudflareUsageV2Operator.partial(
        task_id="land_usage",
        period_start=DAY,
        period_end=NEXT_DAY,
        destination=PARTITION,
    ).expand(account_id=accounts)

    @task
    def report(plan: list[str], **context: Any) -> dict[str, int]:
        """One line per account; fails when an account's summary is missing."""
        summaries = context["ti"].xcom_pull(task_ids="land_usage", key="return_value", map_indexes=range(len(plan)))
        landed: dict[str, int] = {}
        for account_id, summary in zip(plan, summaries or [None] * len(plan), strict=True):
            if not summary:
                raise RuntimeError(f"account {account_id}: no summary from land_usage")
            print(f"{account_id}: {summary['records']} records, {summary['bytes']} bytes, {summary['uri']}")
            landed[account_id] = int(summary["records"])
        return landed

    wait_for_usage >> land_usage
    land_usage >> report(accounts)
