"""A throwaway PostgreSQL server for the SQL landing tests and benchmark, started the way
``deploy/run.py`` starts one: Debian's server binaries (``/usr/lib/postgresql/*/bin``, else
``initdb`` on PATH), a data directory in a temporary directory, ``127.0.0.1`` on a free port,
trust authentication, no durability (fsync off). Run as the ``postgres`` user when we are root (the
server refuses root). ``make test`` installs the binaries first (``make deploy-postgres``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MISSING = (
    "PostgreSQL server binaries (initdb, postgres) were not found under /usr/lib/postgresql/*/bin or on PATH. "
    "The SQL landing tests need a real server: run `make deploy-postgres` (installs Debian's 'postgresql'; "
    "`make test` does it for you)."
)


class PostgresUnavailable(RuntimeError):
    """No server binaries, or the server would not start: the message says why and what to do."""


def postgres_bindir() -> Path:
    """Debian's server binaries (the highest version), else ``initdb``'s directory on PATH."""
    candidates = sorted(
        (Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise PostgresUnavailable(MISSING)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    bindir = postgres_bindir()
    run_as = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable(
                "running as root but there is no 'postgres' user to run the server as; run `make deploy-postgres`"
            ) from None
        run_as = "postgres"
    # Not under pytest's tmp_path: its base is private to root, and the server runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="cfbilling-pg-"))
    data, sockets = workdir / "data", workdir / "sockets"
    for directory in (workdir, data, sockets):
        directory.mkdir(mode=0o700, exist_ok=True)
        if run_as:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    process: subprocess.Popen[bytes] | None = None
    log = workdir / "postgres.log"
    try:
        initdb = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            env=env,
            user=run_as,
            capture_output=True,
            timeout=120,
            cwd="/",
            check=False,
        )
        if initdb.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
        port = free_port()
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    *("-D", str(data), "-p", str(port)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}"),
                    # Throwaway data: durability is not the point, speed is.
                    *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
                ],
                env=env,
                user=run_as,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd="/",
                start_new_session=True,
            )
        server = PostgresServer("127.0.0.1", port)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                server.connect().close()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"postgres did not accept connections within {timeout:g} s") from None
                time.sleep(0.1)
        yield server
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: disconnect clients, stop
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
