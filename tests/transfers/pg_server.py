"""A throwaway PostgreSQL server for the SQL landing tests and benchmark: the one ``make test-deploy``
starts (``deploy/components.py``'s ``start_postgres``, under ``deploy/supervisor.py``, both imported
by path: ``deploy/`` is not a package). Debian's server binaries (``/usr/lib/postgresql/*/bin``, else
``initdb`` on PATH), a data directory in a temporary directory, ``127.0.0.1`` on a free port, trust
authentication, no durability (fsync off), run as the ``postgres`` user when we are root (the server
refuses root), its own process group, stopped (fast shutdown) and its directory removed after.
``make test`` installs the binaries first (``make deploy-postgres``). Those two modules need only the
standard library and psycopg2 (which the tests use anyway).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
sys.path.insert(0, str(DEPLOY))
try:
    from components import start_postgres
    from supervisor import DeployError, Processes, RunIdentity
finally:
    sys.path.remove(str(DEPLOY))

MISSING = (
    "PostgreSQL server binaries (initdb, postgres) were not found under /usr/lib/postgresql/*/bin or on PATH. "
    "The SQL landing tests need a real server: run `make deploy-postgres` (installs Debian's 'postgresql'; "
    "`make test` does it for you)."
)


class PostgresUnavailable(RuntimeError):
    """No server binaries, or the server would not start: the message says why and what to do."""


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str = "postgres"

    def connect(self, dbname: str = "postgres", autocommit: bool = True) -> Any:
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=dbname, connect_timeout=5)
        connection.autocommit = autocommit
        return connection

    def create_database(self, name: str) -> None:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def airflow_connection(self, dbname: str) -> dict[str, Any]:
        """An Airflow ``postgres`` connection (for ``AIRFLOW_CONN_<ID>`` as JSON)."""
        return {"conn_type": "postgres", "host": self.host, "port": self.port, "login": self.user, "schema": dbname}


@contextlib.contextmanager
def running_postgres(timeout: float = 60.0) -> Iterator[PostgresServer]:
    """Start a server in a fresh temporary directory; stop it and remove the directory after."""
    # Not under pytest's tmp_path: its base is private to root, and the server runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="cfbilling-pg-"))
    workdir.chmod(0o711)  # the postgres user must reach its data directory inside
    processes = Processes(RunIdentity(uuid.uuid4().hex, None), workdir)
    try:
        try:
            server = start_postgres(processes, workdir, dict(os.environ), timeout, announce=False)
        except DeployError as error:
            message = MISSING if "no PostgreSQL server found" in str(error) else str(error)
            raise PostgresUnavailable(message) from None
        yield PostgresServer("127.0.0.1", server.port)
    finally:
        processes.stop(grace=20)  # fast shutdown (SIGINT), then SIGKILL to its group
        processes.identity.kill_all()
        shutil.rmtree(workdir, ignore_errors=True)
