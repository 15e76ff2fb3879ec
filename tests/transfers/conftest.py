"""Fixtures of the SQL landing tests: a real PostgreSQL server for the session (a fresh database per
test) and a SQLite file per test, each reachable through an Airflow connection set in the
environment (``cfb_sql_postgres``, ``cfb_sql_sqlite``), like ``cloudflare_default`` in the root conftest.

No PostgreSQL server binaries is a failure that says how to install them, never a skip."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import PostgresServer, PostgresUnavailable, running_postgres
from sql_support import Database

POSTGRES_CONN_ID = "cfb_sql_postgres"
SQLITE_CONN_ID = "cfb_sql_sqlite"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def postgres_db(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> Database:
    """A fresh database on the session's server, as the Airflow connection ``cfb_sql_postgres``."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    monkeypatch.setenv(f"AIRFLOW_CONN_{POSTGRES_CONN_ID.upper()}", json.dumps(postgres_server.airflow_connection(name)))
    return Database("postgres", POSTGRES_CONN_ID, server=postgres_server, dbname=name)


@pytest.fixture
def sqlite_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Database:
    """A fresh SQLite file, as the Airflow connection ``cfb_sql_sqlite``."""
    path = tmp_path / "usage.db"
    monkeypatch.setenv(f"AIRFLOW_CONN_{SQLITE_CONN_ID.upper()}", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    return Database("sqlite", SQLITE_CONN_ID, path=str(path))


@pytest.fixture(params=["postgres", "sqlite"])
def database(request: pytest.FixtureRequest) -> Any:
    """Each test that takes it runs once against PostgreSQL and once against SQLite."""
    return request.getfixturevalue(f"{request.param}_db")
