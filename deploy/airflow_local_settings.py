"""Cluster policy of the ``make test-deploy`` deployment (copied to ``$AIRFLOW_HOME/config/``).

The deployment runs the example DAGs unmodified. Their sensors poll every 30 minutes, as a
production DAG should, because Cloudflare publishes a day some hours after it ends; the test
moves the emulator's clock a day at a time in seconds, so here every
``CloudflareUsageAvailableSensor`` polls every ``CFBILLING_DEPLOY_POLL_SECONDS`` seconds instead.
This is the deployment-level override Airflow provides for such settings (a task policy, applied
wherever a DAG file is parsed: the DAG processor and every worker).

The CeleryExecutor run (``deploy/run.py --executor celery``) also points each worker's
``[core] hostname_callable`` at :func:`deploy_hostname`, so the two workers on this one machine
report different hostnames in ``task_instance.hostname``, as workers on two hosts would.
"""

from __future__ import annotations

import os
import socket
from typing import Any


def task_policy(task: Any) -> None:
    seconds = os.environ.get("CFBILLING_DEPLOY_POLL_SECONDS")
    if seconds and type(task).__name__ == "CloudflareUsageAvailableSensor":
        task.poke_interval = float(seconds)
        task.poll_interval = float(seconds)


def deploy_hostname() -> str:
    """``[core] hostname_callable`` of the CeleryExecutor run's workers: the name the driver gave
    each worker (``CFBILLING_DEPLOY_HOSTNAME``), as if each ran on a host of its own; else the FQDN."""
    return os.environ.get("CFBILLING_DEPLOY_HOSTNAME") or socket.getfqdn()
