"""The servers the deployment needs besides Airflow, each started under the run's supervisor.

What it holds: PostgreSQL from Debian's server binaries in a throwaway data directory
(:func:`start_postgres`: the metadata database, and the Celery result backend); the Cloudflare
billing emulator with a frozen clock (:func:`start_emulator`), driven through the package's control
client (``airflow_provider_cfbilling.emulator.client.EmulatorClient``); and for the
CeleryExecutor run, Redis as the broker (Debian's ``redis-server``, no persistence:
:func:`start_redis`) and moto's S3-protocol server holding the lake (:func:`start_s3`). Every
server listens on 127.0.0.1 on a free port and keeps whatever files it has in the run's directory.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supervisor import MARKER_VARIABLE, DeployError, Processes, free_port, say, tail

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.client import EmulatorClient

# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def postgres_bindir() -> Path:
    """Debian's server binaries (the highest version), else ``initdb`` on PATH."""
    candidates = sorted(
        (Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1]
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise DeployError("no PostgreSQL server found (initdb); `make test-deploy` installs Debian's 'postgresql'")


@dataclass
class Postgres:
    port: int
    user: str | None  # the OS user the server runs as (None: this one)
    socket_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def connect(self, dbname: str = "airflow") -> Any:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname=dbname, connect_timeout=5
        )
        connection.autocommit = True
        return connection


def start_postgres(
    processes: Processes, workdir: Path, base_env: dict[str, str], timeout: float, *, announce: bool = True
) -> Postgres:
    """``initdb`` into ``workdir/pgdata`` and the server on a free loopback port (as ``postgres`` when
    root), with a database ``airflow``; used by the deployment test and the SQL tests
    (``tests/transfers/pg_server.py``)."""
    import psycopg2

    bindir = postgres_bindir()
    user = None
    if os.geteuid() == 0:  # the server refuses to run as root
        user = "postgres"
        try:
            owner = pwd.getpwnam(user)
        except KeyError:
            raise DeployError("running as root but there is no 'postgres' user (install Debian's postgresql)")
    data = workdir / "pgdata"
    sockets = workdir / "pgsocket"
    for directory in (data, sockets):
        directory.mkdir(mode=0o700)
        if user:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
    env = {**base_env, "LC_ALL": "C", "LANG": "C"}
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
    processes.run([*initdb, "--no-locale", "--no-sync"], env, "initdb.log", timeout=120, user=user)
    port = free_port()
    processes.start(
        "postgres",
        [
            str(bindir / "postgres"),
            *("-D", str(data), "-p", str(port)),
            *("-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}"),
            *("-c", "max_connections=200"),
            # Throwaway data: durability is not the point, speed is.
            *("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
        ],
        {**env, MARKER_VARIABLE: processes.marker},
        user=user,
        stop_signal=signal.SIGINT,  # "fast" shutdown: disconnect clients, stop
    )
    server = Postgres(port, user, sockets)
    deadline = time.monotonic() + timeout
    while True:
        processes.check()
        try:
            connection = server.connect("postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise DeployError(f"PostgreSQL did not accept connections within {timeout:g} s")
            time.sleep(0.2)
    with connection.cursor() as cursor:
        cursor.execute("CREATE DATABASE airflow")
        cursor.execute("SHOW server_version")
        version = cursor.fetchone()[0]
    connection.close()
    if announce:
        say(f"PostgreSQL {version} on 127.0.0.1:{port} (data {data}, as {user or 'this user'})")
    return server


# --------------------------------------------------------------------------------------------
# The emulator (driven through the package's control client)
# --------------------------------------------------------------------------------------------


def start_emulator(processes: Processes, env: dict[str, str], clock: dt.datetime, delay_hours: float) -> EmulatorClient:
    """``python -m airflow_provider_cfbilling.emulator`` with a frozen clock; its control client."""
    from airflow_provider_cfbilling.emulator.cli import command, wait_for_ready_line
    from airflow_provider_cfbilling.emulator.client import EmulatorClient

    options = ("--clock", clock.strftime("%Y-%m-%dT%H:%M:%SZ"), "--availability-delay-hours", f"{delay_hours:g}")
    managed = processes.start("emulator", command(*options), env, stdout=subprocess.PIPE)
    assert managed.process.stdout is not None
    try:
        return EmulatorClient(wait_for_ready_line(managed.process.stdout, timeout=30))
    except TimeoutError:
        raise DeployError(f"the emulator did not start within 30 s:\n{tail(managed.log_path)}") from None
    except EOFError:
        raise DeployError(f"the emulator exited early:\n{tail(managed.log_path)}") from None


# --------------------------------------------------------------------------------------------
# Redis (the Celery broker) and the S3-protocol server (the lake) for the CeleryExecutor run
# --------------------------------------------------------------------------------------------


@dataclass
class Redis:
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(processes: Processes, workdir: Path, env: dict[str, str], timeout: float = 30) -> Redis:
    """Debian's ``redis-server`` on a free loopback port, in memory only (no RDB, no AOF)."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise DeployError("no redis-server found; `make deploy-redis` installs Debian's 'redis-server'")
    data = workdir / "redis"
    data.mkdir()
    port = free_port()
    processes.start(
        "redis",
        [
            binary,
            *("--bind", "127.0.0.1", "--port", str(port), "--protected-mode", "yes", "--daemonize", "no"),
            # Nothing on disk: no snapshots, no append-only file; the working directory is the run's.
            *("--save", "", "--appendonly", "no", "--dir", str(data), "--logfile", ""),
        ],
        env,
    )
    deadline = time.monotonic() + timeout
    while not _redis_ping(port):
        processes.check()
        if time.monotonic() > deadline:
            raise DeployError(f"Redis did not answer PING within {timeout:g} s")
        time.sleep(0.2)
    say(f"Redis (broker) on 127.0.0.1:{port}, no persistence")
    return Redis(port)


@dataclass
class S3Server:
    endpoint: str
    bucket: str

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def airflow_connection(self) -> dict[str, Any]:
        """An Airflow ``aws`` connection to this server (for ``AIRFLOW_CONN_<ID>`` as JSON)."""
        return {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
        }


def start_s3(processes: Processes, env: dict[str, str], bucket: str, timeout: float = 60) -> S3Server:
    """moto's S3-protocol server (the tests' lake server) on a free loopback port, with one bucket,
    versioned so that any rewrite of an object shows as a new version."""
    port = free_port()
    processes.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env)
    server = S3Server(f"http://127.0.0.1:{port}", bucket)
    client = server.client()
    deadline = time.monotonic() + timeout
    while True:
        processes.check()
        try:
            client.list_buckets()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise DeployError(f"the S3 server did not answer within {timeout:g} s") from None
            time.sleep(0.3)
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    say(f"S3-protocol server (moto) at {server.endpoint}, versioned bucket {bucket}")
    return server
