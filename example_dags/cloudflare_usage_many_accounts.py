"""Many Cloudflare accounts per day: one mapped task per account, all inside the API rate limit.

The accounts come from the Variable ``cloudflare_accounts``, a JSON list read when the run
starts (never at parse time). Each item is an account id, or an object naming the connection
that can read it (an account-owned token only reaches its own account)::

    ["023e105f4ecef8ad9ca31a8372d0c353",
     {"account_id": "0123456789abcdef0123456789abcdef", "cloudflare_conn_id": "cloudflare_team_b"}]

Without the Variable the run covers the account of the ``cloudflare_default`` connection.

Each run

1. waits (deferrable) until the day is published for the default connection's account, a
   gate so the accounts are not fetched before Cloudflare's daily aggregation has run;
2. reads the account list (``plan_accounts``);
3. lands each account's day with ``CloudflareUsageV2Operator.partial(...).expand_kwargs(...)``:
   one mapped task instance per account, each writing
   ``<lake root>/usage_v2/account_id=<id>/charge_date=<day>/usage.jsonl``. A failing account
   (revoked token, no Billing Read, a typo in the id) fails only its own task instance;
4. ``report`` runs whatever happened upstream (``trigger_rule="all_done"``), prints one line per
   account, and fails the run if any account failed, naming it. Clear just that task instance
   once it is fixed: the other partitions are already in place and a re-run overwrites.

Rate limit: Cloudflare allows 1,200 requests per 5 minutes per token (4 per second on average);
past it every call gets HTTP 429 for up to 5 minutes. Every task here runs in the pool
``cloudflare_api``, which all DAGs that share a token should use. Each task makes one request
per window of up to 31 days (plus retries), and an Airflow task takes seconds to start, so 4
slots keep even hundreds of accounts well under the limit; the hook still waits out a 429's
``Retry-After`` if something else uses the same token. Create the pool once::

    airflow pools set cloudflare_api 4 "Cloudflare API: 1,200 requests / 5 min per token"

Without the pool, a scheduler leaves the tasks queued (``airflow dags test`` ignores pools).
The mapped task has no Airflow retries: the hook already retried transient errors (429, 5xx,
network) and what is left is permanent (401/403/404), which a retry would only repeat.

Windows and partitions come from the run's data interval, as in ``cloudflare_usage_daily``:
the operator fetches the UTC days whose midnight lies in it and fills ``{account_id}`` and
``{charge_date}`` in the destination from what it fetched (see that DAG's docstring for why
``CronDataIntervalTimetable``, and for the imports on Airflow 2, where ``Variable`` comes from
``airflow.models``).
"""

from __future__ import annotations

from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, Variable, task
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG  # type: ignore[assignment,no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]
    from airflow.models import Variable  # type: ignore[assignment,no-redef]
try:  # Airflow 3.2+
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 2.10 - 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[no-redef]

from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator
from airflow_provider_cfbilling.sensors.billing import CloudflareUsageAvailableSensor

POOL = "cloudflare_api"
ACCOUNTS_VARIABLE = "cloudflare_accounts"
DEFAULT_CONN_ID = "cloudflare_default"
LAKE_ROOT = "{{ var.value.get('cloudflare_lake_root', 'file:///tmp/cloudflare-lake') }}"
# {account_id} and {charge_date} are filled by each mapped operator from its own account and window.
PARTITION = LAKE_ROOT + "/usage_v2/account_id={account_id}/charge_date={charge_date}/usage.jsonl"

with DAG(
    dag_id="cloudflare_usage_many_accounts",
    description="Land each UTC day of Cloudflare v2 usage for many accounts, one mapped task per account",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"pool": POOL},
    tags=["cloudflare", "billing", "example"],
    doc_md=__doc__,
):
    wait_for_usage = CloudflareUsageAvailableSensor(
        task_id="wait_for_usage",  # waits for the last day of the run's window
        deferrable=True,
        poke_interval=30 * 60,
        timeout=24 * 3600,
    )

    @task
    def plan_accounts() -> list[dict[str, str]]:
        """One ``{account_id, cloudflare_conn_id}`` per account, from the Variable (or the connection)."""
        from airflow_provider_cfbilling.hooks.cloudflare import CloudflareHook

        configured = Variable.get(ACCOUNTS_VARIABLE, None, deserialize_json=True)  # default None (2.x: default_var)
        if not configured:
            # A connection lookup, not an API request.
            configured = [CloudflareHook(DEFAULT_CONN_ID).resolve_account_id()]
        if not isinstance(configured, list):
            raise ValueError(f"Variable {ACCOUNTS_VARIABLE} must be a JSON list, got {type(configured).__name__}")
        plan = []
        for item in configured:
            entry = {"account_id": item} if isinstance(item, str) else dict(item)
            entry.setdefault("cloudflare_conn_id", DEFAULT_CONN_ID)
            plan.append({"account_id": entry["account_id"], "cloudflare_conn_id": entry["cloudflare_conn_id"]})
        print(f"{len(plan)} account(s): {', '.join(entry['account_id'] for entry in plan)}")
        return plan

    accounts = plan_accounts()

    land_usage = CloudflareUsageV2Operator.partial(
        task_id="land_usage",
        destination=PARTITION,
        retries=0,
    ).expand_kwargs(accounts)

    @task(trigger_rule="all_done")
    def report(plan: list[dict[str, str]], **context: Any) -> None:
        """One line per account; fails the run (after the others landed) if any account failed."""
        # One pull per account: a failed account has no summary (None), on every Airflow version.
        summaries = [
            context["ti"].xcom_pull(task_ids="land_usage", key="return_value", map_indexes=index)
            for index in range(len(plan))
        ]
        failed = []
        for entry, summary in zip(plan, summaries, strict=True):
            if summary is None:
                failed.append(entry["account_id"])
                print(f"{entry['account_id']}: FAILED (see the land_usage task instance's log)")
            else:
                print(
                    f"{entry['account_id']}: {summary['records']} records, {summary['bytes']} bytes, "
                    + ", ".join(partition["uri"] for partition in summary["partitions"])
                )
        if failed:
            raise RuntimeError(f"{len(failed)} of {len(plan)} account(s) failed: {', '.join(failed)}")

    wait_for_usage >> accounts
    land_usage >> report(accounts)
