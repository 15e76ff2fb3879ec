"""A weekly snapshot of the Cloudflare billing profile, with personal and payment data redacted.

The billing profile holds names, emails, addresses, telephone, VAT and card details.
``CloudflareBillingProfileOperator`` replaces those fields by ``"[REDACTED]"`` before anything
is written (``redact=True`` is the default; the profile is never logged), so what lands is safe
for a lake: the currency, the billing cycle, the account type and the other non-personal fields.

Each run writes ``<lake root>/billing_profile/account_id=<id>/snapshot_date=<day>/profile.jsonl``,
where the day is when the run was due (``dag_run.run_after``; Airflow 2 runs have none, so there
the end of the data interval): a snapshot describes the moment it was taken, so there is nothing
to backfill, and a re-run on the same day replaces that day's snapshot.

Configuration (and the imports on Airflow 2) as in ``cloudflare_usage_daily``: connection
``cloudflare_default`` and the Variable ``cloudflare_lake_root`` (default ``file:///tmp/cloudflare-lake``).
"""

from __future__ import annotations

from typing import Any

import pendulum

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2.10 / 2.11
    from airflow import DAG  # type: ignore[assignment,no-redef]
    from airflow.decorators import task  # type: ignore[no-redef]

from airflow_provider_cfbilling.operators.billing import CloudflareBillingProfileOperator

LAKE_ROOT = "{{ var.value.get('cloudflare_lake_root', 'file:///tmp/cloudflare-lake') }}"
SNAPSHOT_DATE = "{{ (dag_run.run_after if dag_run.run_after is defined else data_interval_end) | ds }}"
# {account_id} is filled by the operator with the account it read.
OBJECT = LAKE_ROOT + "/billing_profile/account_id={account_id}/snapshot_date=" + SNAPSHOT_DATE + "/profile.jsonl"

with DAG(
    dag_id="cloudflare_billing_profile_snapshot",
    description="Weekly redacted snapshot of the Cloudflare billing profile",
    schedule="@weekly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cloudflare", "billing", "example"],
    doc_md=__doc__,
):
    snapshot = CloudflareBillingProfileOperator(task_id="snapshot_profile", destination=OBJECT)

    @task
    def report(summary: dict[str, Any]) -> None:
        print(f"Billing profile snapshot ({summary['bytes']} bytes, redacted) at {summary['uri']}")

    report(snapshot.output)
