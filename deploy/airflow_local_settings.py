"""Cluster policy of the ``make test-deploy`` deployment (copied to ``$AIRFLOW_HOME/config/``).

The deployment runs the example DAGs unmodified. Their sensors poll every 30 minutes, as a
production DAG should, because Cloudflare publishes a day some hours after it ends; the test
moves the emulator's clock a day at a time in seconds, so here every
``CloudflareUsageAvailableSensor`` polls every ``CFBILLING_DEPLOY_POLL_SECONDS`` seconds instead.
This is the deployment-level override Airflow provides for such settings (a task policy, applied
wherever a DAG file is parsed: the DAG processor and every worker).
"""

from __future__ import annotations

import os
from typing import Any


def task_policy(task: Any) -> None:
    seconds = os.environ.get("CFBILLING_DEPLOY_POLL_SECONDS")
    if seconds and type(task).__name__ == "CloudflareUsageAvailableSensor":
        task.poke_interval = float(seconds)
        task.poll_interval = float(seconds)
