"""Test environment: a throwaway AIRFLOW_HOME set before anything imports Airflow, and the shared
fixtures of the end-to-end tests (metadata DB, emulator, cloudflare connection)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
TEST_DAGS = REPO_ROOT / "tests" / "dags"
EXAMPLE_DAGS = REPO_ROOT / "example_dags"

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="cfbilling-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(TEST_DAGS)
# Airflow 3.2's in-process execution API (dag.test()) starts its JWT validator even though it bypasses
# authentication, and fails every task without [api_auth] jwt_secret (3.3 no longer needs it).
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", "cfbilling-tests-jwt-secret")
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path), "refresh_interval": 0},
        }
        for name, path in (("test_dags", TEST_DAGS), ("cfbilling_examples", EXAMPLE_DAGS))
    ]
)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the throwaway AIRFLOW_HOME (DB, logs) unless CFBILLING_KEEP_AIRFLOW_HOME=1."""
    import shutil

    if os.environ.get("CFBILLING_KEEP_AIRFLOW_HOME") != "1":
        shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the throwaway AIRFLOW_HOME (for dag.test())."""
    import logging

    from airflow.utils import db

    # The migrations' alembic.ini logging config replaces the root logger's level and handlers;
    # keep the test process's logging as Airflow configured it.
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    db.initdb()
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    return _AIRFLOW_HOME


@pytest.fixture
def emulator() -> Iterator[Any]:
    """A fresh emulator on a free loopback port, frozen at a fixed clock."""
    import datetime as dt

    from airflow_provider_cfbilling.emulator import Emulator

    with Emulator(seed=7, clock=dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)) as running:
        yield running


@pytest.fixture
def cloudflare_conn(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """``cloudflare_default`` pointing at the emulator, with fast retries."""
    from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN

    connection = {
        "conn_type": "cloudflare",
        "host": emulator.base_url,
        "password": DEFAULT_TOKEN,
        "extra": {"account_id": DEFAULT_ACCOUNT_ID, "backoff_base": 0.01, "backoff_max": 0.05},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection))
    return connection


S3_CONN_ID = "s3_test"
S3_BUCKET = "cfbilling-lake"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3-protocol server on 127.0.0.1, a bucket, and an Airflow ``aws`` connection for it."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    variable = f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"
    previous = os.environ.get(variable)
    os.environ[variable] = json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
        }
    )
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    try:
        client.create_bucket(Bucket=S3_BUCKET)
        yield {"endpoint": endpoint, "bucket": S3_BUCKET, "conn_id": S3_CONN_ID, "client": client}
    finally:
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous
        server.stop()
