"""Airflow in the deployment: its configuration, its components, its CLI and its REST API.

What it holds: :func:`airflow_environment`, the whole configuration as environment variables
(nothing in ``airflow.cfg``) with the connection and Variables the example DAG reads, and
:func:`celery_environment` for the CeleryExecutor run; the :class:`Airflow` handle that runs
``airflow`` CLI commands under the run's supervisor and calls the REST API with a token from
``/auth/token``; :func:`start_airflow`, which starts the API server, scheduler, DAG processor and
triggerer; and :func:`start_workers`, Celery workers that share nothing local with each other or
with the rest (each its own ``HOME``, ``TMPDIR``, working directory and ``AIRFLOW_HOME``, hence its
own log folder, as if on another host) and name themselves through a ``hostname_callable``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components import Postgres, Redis, S3Server
from supervisor import Managed, Processes

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
LOCAL_SETTINGS = REPO_ROOT / "deploy" / "airflow_local_settings.py"
PARALLELISM = 4
WORKERS = 2
WORKER_CONCURRENCY = 2  # per Celery worker: 2 x 2 = PARALLELISM
LAKE_CONN_ID = "lake_s3"
# The emulator's defaults (fake, public credentials; see docs/emulator.md).
TOKEN = "emulator_user_token_billing_read_0000001"
AIRFLOW = (sys.executable, "-m", "airflow")


class HasBaseUrl(Protocol):
    @property
    def base_url(self) -> str: ...


def clean_environment() -> dict[str, str]:
    """The driver's environment without any Airflow or driver setting."""
    return {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "CFBILLING_"))}


@dataclass
class Airflow:
    home: Path
    env: dict[str, str]
    api_url: str
    username: str
    password: str
    processes: Processes
    _token: str | None = None

    def cli(self, arguments: Sequence[str], *, timeout: float = 180, check: bool = True) -> tuple[int, str]:
        return self.processes.run([*AIRFLOW, *arguments], self.env, "airflow-cli.log", timeout=timeout, check=check)

    def rest(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        headers = {"Content-Type": "application/json"}
        if auth:
            if self._token is None:
                self._token = str(
                    self.rest(
                        "POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False
                    )["access_token"]
                )
            headers["Authorization"] = f"Bearer {self._token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api_url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def airflow_environment(
    workdir: Path,
    postgres: Postgres,
    emulator: HasBaseUrl,
    api_port: int,
    accounts: Sequence[str],
    poll_seconds: float,
    lake_uri: str,
) -> tuple[dict[str, str], str, str]:
    """The deployment's configuration, all of it in environment variables (nothing in airflow.cfg)."""
    from cryptography.fernet import Fernet

    home = workdir / "airflow-home"
    home.mkdir()
    username, password = "deploy", secrets.token_urlsafe(16)
    passwords_file = workdir / "simple-auth-passwords.json"
    passwords_file.write_text(json.dumps({username: password}))
    passwords_file.chmod(0o600)
    api_url = f"http://127.0.0.1:{api_port}"
    # The deployment's cluster policy, where Airflow looks for it ($AIRFLOW_HOME/config on sys.path).
    (home / "config").mkdir()
    shutil.copyfile(LOCAL_SETTINGS, home / "config" / "airflow_local_settings.py")
    bundles = [
        {
            "name": "examples",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(EXAMPLE_DAGS)},
        },
    ]
    connection = {
        "conn_type": "cloudflare",
        "host": emulator.base_url,
        "password": TOKEN,
        "extra": {"account_id": accounts[0]},
    }
    env = clean_environment()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            # Backfills only: the scheduler creates no run from the DAG's schedule.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{username}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": json.dumps(connection),
            "AIRFLOW_VAR_CLOUDFLARE_LAKE_ROOT": lake_uri,
            "AIRFLOW_VAR_CLOUDFLARE_ACCOUNTS": json.dumps(list(accounts)),
            "CFBILLING_DEPLOY_POLL_SECONDS": f"{poll_seconds:g}",
        }
    )
    return env, username, password


AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def start_airflow(airflow: Airflow, api_port: int) -> None:
    """The API server, the scheduler, the DAG processor and the triggerer, each a managed process."""
    processes, env = airflow.processes, airflow.env
    processes.start(
        "api-server",
        [*AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"],
        env,
    )
    processes.start("scheduler", [*AIRFLOW, "scheduler", "--skip-serve-logs"], env)
    processes.start("dag-processor", [*AIRFLOW, "dag-processor"], env)
    processes.start("triggerer", [*AIRFLOW, "triggerer", "--skip-serve-logs"], env)


def celery_environment(env: dict[str, str], redis: Redis, postgres: Postgres, s3: S3Server, lake_uri: str) -> None:
    """The CeleryExecutor's settings (Redis broker, PostgreSQL result backend) and the S3 lake's
    connection, added to every component's environment."""
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": redis.url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://postgres@127.0.0.1:{postgres.port}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            f"AIRFLOW_CONN_{LAKE_CONN_ID.upper()}": json.dumps(s3.airflow_connection()),
            "AIRFLOW_VAR_CLOUDFLARE_LAKE_ROOT": lake_uri,
        }
    )


@dataclass
class Worker:
    name: str  # the Celery node name, and the hostname its task instances report
    root: Path  # everything it has locally: home, tmp, cwd, airflow-home (logs)
    managed: Managed

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow-home"


def worker_environment(airflow: Airflow, name: str, root: Path) -> dict[str, str]:
    """A worker's environment: the deployment's settings, and nothing local shared with anyone."""
    home = root / "airflow-home"
    (home / "config").mkdir(parents=True)
    shutil.copyfile(LOCAL_SETTINGS, home / "config" / "airflow_local_settings.py")
    for folder in ("home", "tmp", "cwd"):
        (root / folder).mkdir()
    env = {
        key: value for key, value in airflow.env.items() if key != "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),  # its config, its logs (base_log_folder = $AIRFLOW_HOME/logs)
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            # The hostname its task instances report (task_instance.hostname): the policy module's
            # callable reads it, so two workers on one machine look like two hosts.
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_local_settings.deploy_hostname",
            "CFBILLING_DEPLOY_HOSTNAME": name,
        }
    )
    return env


def start_workers(airflow: Airflow, workdir: Path, count: int = WORKERS) -> list[Worker]:
    """``airflow celery worker`` x ``count``, each as if on a host of its own."""
    workers = []
    for index in range(1, count + 1):
        name = f"worker-{index}.deploy"
        root = workdir / f"worker-{index}"
        env = worker_environment(airflow, name, root)
        argv = [*AIRFLOW, "celery", "worker", "--celery-hostname", f"worker-{index}@deploy"]
        argv += ["--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs", "--without-mingle", "--without-gossip"]
        managed = airflow.processes.start(f"worker-{index}", argv, env, cwd=root / "cwd")
        workers.append(Worker(name, root, managed))
    return workers


def workers_ready(workers: Sequence[Worker]) -> bool:
    """Every worker's Celery node logged that it is ready (connected to the broker, consuming)."""
    return all(
        worker.managed.log_path.exists() and " ready." in worker.managed.log_path.read_text(errors="replace")
        for worker in workers
    )
