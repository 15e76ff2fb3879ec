"""``make test-deploy``: prove the provider in a real Airflow 3 deployment, then tear it all down.

What runs, each component a background process in its own process group:

* PostgreSQL (Debian's server binaries) on 127.0.0.1 with a throwaway data directory;
* the Cloudflare billing emulator with a frozen clock and a day-availability delay;
* Airflow: ``api-server`` (core API + execution API), ``scheduler`` (LocalExecutor),
  ``dag-processor`` and ``triggerer``, with a throwaway ``AIRFLOW_HOME``, the connection and
  Variables from the environment (``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``), the pool
  ``cloudflare_api``, and one local DAG bundle: ``example_dags``, unmodified (every file must
  import). ``[scheduler] use_job_schedule`` is off, so only the backfills create runs, and a task
  policy (``deploy/airflow_local_settings.py``) makes the example's sensor poll every few seconds
  instead of every 30 minutes.

What it proves:

1. ``airflow backfill create`` over N days (default 8) of the example DAG
   ``cloudflare_usage_many_accounts`` (per day: one deferrable sensor gating the day, then one
   mapped v2 operator per account, default 3 accounts). The emulator's clock starts so that the
   last days (default 5) are not published yet: their sensors defer, and all of them are deferred
   at once, more than the executor's slots and the pool's, so none holds a slot. Then the clock
   moves forward one day at a time and each day's sensor completes in the triggerer, and only
   that day's.
2. Every run and task instance succeeds (no retries), the triggerer ran the provider's trigger
   (trigger rows assigned to the triggerer's job, and the trigger log the triggerer wrote for each
   deferred sensor shows it polling, finding the day and firing), each partition holds exactly the
   emulator's records for its account and day, no temporary file is left in the lake, and every
   request the emulator saw is accounted for.
3. ``airflow backfill create --reprocess-behavior completed`` re-runs every day: the data has not
   changed, so every partition and its manifest are left untouched (SHA-256, inode and mtime).

Teardown: every process it starts gets a session (process group) of its own and a marker in its
environment; on success, failure, timeout (``--timeout``) and SIGINT/SIGTERM/SIGHUP the Airflow
components get SIGTERM, then SIGKILL, in their groups, then the emulator and PostgreSQL; then every
process still in one of the run's sessions or carrying the marker (task processes start process
groups of their own, and Airflow's process titles overwrite the environment) is killed by pid, and
the temporary directory is removed. If the driver itself is killed outright, its direct children
get SIGKILL from the kernel (``PR_SET_PDEATHSIG``) and a watchdog process (``--watchdog``, its own
session, waiting for its stdin pipe from the driver to close) kills the rest and removes the
directory; the next run also clears what a killed run left.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import datetime as dt
import glob
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_DAGS = REPO_ROOT / "example_dags"
LOCAL_SETTINGS = REPO_ROOT / "deploy" / "airflow_local_settings.py"
DAG_ID = "cloudflare_usage_many_accounts"
DAG_FILE = "cloudflare_usage_many_accounts.py"
SENSORS_PER_RUN = 1  # the example gates each day with one sensor (on the default connection's account)
POOL = "cloudflare_api"
# The example DAG's start_date: backfills must not start before it.
DAG_FIRST_DAY = dt.date(2025, 1, 1)
POOL_SLOTS = 4
PARALLELISM = 4
TRIGGER_CLASSPATH = "airflow_provider_cfbilling.triggers.billing.CloudflareUsageAvailableTrigger"
# The emulator's defaults (fake, public credentials; see docs/emulator.md).
TOKEN = "emulator_user_token_billing_read_0000001"
ACCOUNTS = (
    "023e105f4ecef8ad9ca31a8372d0c353",
    "0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210",
    "00112233445566778899aabbccddeeff",
    "a1b2c3d4e5f60718293a4b5c6d7e8f90",
)
MARKER_VARIABLE = "CFBILLING_DEPLOY_RUN"
WORKDIR_PREFIX = "cfbilling-deploy-"
TERMINAL_FAILURES = ("failed", "upstream_failed", "removed")
PR_SET_PDEATHSIG = 1


class DeployError(RuntimeError):
    """A step or a check failed; the message says which and where to look."""


class Interrupted(BaseException):
    """SIGTERM / SIGHUP / SIGINT, or the overall timeout: unwind into the teardown."""


STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:6.1f}s] {message}", flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(f"    {line}" for line in text[-lines:])


# --------------------------------------------------------------------------------------------
# Processes: own process group each, a marker in the environment, bounded stop
# --------------------------------------------------------------------------------------------


try:  # resolved here, not in the forked child
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL me when the driver dies (Linux; best effort)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Managed:
    name: str
    process: subprocess.Popen[Any]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the leader's pid is the group id


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def proc_session_and_start(pid: int) -> tuple[int, int]:
    """``(session id, start time in clock ticks since boot)`` of a process, from ``/proc/PID/stat``."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        fields = handle.read().rsplit(b")", 1)[1].split()
    return int(fields[3]), int(fields[19])


@dataclass
class RunIdentity:
    """What makes a process this run's, also after the driver is gone (saved in the run's directory).

    A process is the run's when its environment carries ``MARKER_VARIABLE=marker``, or when it lives
    in one of the sessions the run started and began after the run did. The session test matters:
    Airflow's processes rename themselves (setproctitle), which overwrites the environment that
    ``/proc/PID/environ`` shows, and task processes start process groups of their own, but none of
    them leaves its component's session.
    """

    marker: str
    workdir: Path
    since: int = field(default_factory=lambda: proc_session_and_start(os.getpid())[1])
    sessions: set[int] = field(default_factory=set)

    @property
    def path(self) -> Path:
        return self.workdir / "identity.json"

    def add_session(self, sid: int) -> None:
        self.sessions.add(sid)
        self.save()

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"marker": self.marker, "since": self.since, "sessions": sorted(self.sessions)})
        )
        temporary.replace(self.path)

    @classmethod
    def load(cls, workdir: Path) -> RunIdentity:
        marker = workdir.name[len(WORKDIR_PREFIX) :]
        try:
            saved = json.loads((workdir / "identity.json").read_text())
        except (OSError, ValueError):
            return cls(marker, workdir, since=0)
        return cls(str(saved["marker"]), workdir, int(saved["since"]), {int(sid) for sid in saved["sessions"]})

    def pids(self) -> list[int]:
        """This run's processes, never the caller or its parent."""
        needle = f"{MARKER_VARIABLE}={self.marker}".encode()
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) in (os.getpid(), os.getppid()):
                continue
            try:
                session, started = proc_session_and_start(int(entry))
                if session in self.sessions and started >= self.since:
                    found.append(int(entry))
                    continue
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if needle in handle.read().split(b"\0"):
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):  # gone, or not ours to read
                continue
        return found

    def kill_all(self, grace: float = 5.0) -> list[int]:
        """SIGTERM every process of the run, SIGKILL what is left after ``grace``; the pids found."""
        leftovers = self.pids()
        if leftovers:
            kill_pids(leftovers, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.pids():
                time.sleep(0.1)
            kill_pids(self.pids(), signal.SIGKILL)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.pids():
                time.sleep(0.1)
        return leftovers


def kill_pids(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class Processes:
    """The deployment's long-running processes, started in order and stopped in reverse."""

    def __init__(self, identity: RunIdentity, logs: Path) -> None:
        self.identity = identity
        self.marker = identity.marker
        self.logs = logs
        self.items: list[Managed] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str],
        *,
        user: str | None = None,
        stop_signal: int = signal.SIGTERM,
        stdout: int | None = None,
    ) -> Managed:
        log_path = self.logs / f"{name}.log"
        env = {**env, MARKER_VARIABLE: self.marker}
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else log,
                stderr=log,
                env=env,
                cwd="/",
                user=user,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                text=stdout is not None,
            )
        self.identity.add_session(process.pid)  # start_new_session: its pid is the session id
        managed = Managed(name, process, log_path, stop_signal)
        self.items.append(managed)
        return managed

    def check(self) -> None:
        """DeployError if a component exited."""
        for item in self.items:
            code = item.process.poll()
            if code is not None:
                raise DeployError(
                    f"{item.name} exited with status {code}; its log ({item.log_path}):\n{tail(item.log_path)}"
                )

    def stop(self, names: Sequence[str] | None = None, grace: float = 15.0) -> list[str]:
        """Stop signal to each group, wait up to ``grace``, then SIGKILL the groups; reap.
        Returns the names of those still alive after ``grace`` (SIGKILL was needed)."""
        chosen = [item for item in reversed(self.items) if names is None or item.name in names]
        for item in chosen:
            if item.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(item.pgid, item.stop_signal)
        deadline = time.monotonic() + grace
        for item in chosen:
            while time.monotonic() < deadline and (item.process.poll() is None or group_alive(item.pgid)):
                time.sleep(0.1)
        outlived = [item.name for item in chosen if item.process.poll() is None or group_alive(item.pgid)]
        for item in chosen:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(item.pgid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                item.process.wait(timeout=5)
            if item.process.stdout is not None:
                item.process.stdout.close()
            self.items.remove(item)
        return outlived

    def run(
        self,
        argv: Sequence[str],
        env: dict[str, str],
        log_name: str,
        *,
        timeout: float,
        user: str | None = None,
        check: bool = True,
    ) -> tuple[int, str]:
        """Run a short command in its own session, output appended to ``logs/log_name``; bounded."""
        log_path = self.logs / log_name
        with log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(argv)}\n".encode())
        start = log_path.stat().st_size
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, MARKER_VARIABLE: self.marker},
                cwd="/",
                user=user,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
            self.identity.add_session(process.pid)
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise DeployError(f"'{' '.join(argv)}' did not finish within {timeout:g} s:\n{tail(log_path)}")
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)  # whatever it left in its group
                process.wait()
        with log_path.open("rb") as log:
            log.seek(start)
            output = log.read().decode(errors="replace")
        if check and code != 0:
            raise DeployError(f"'{' '.join(argv)}' failed with status {code}:\n{tail(log_path)}")
        return code, output


# --------------------------------------------------------------------------------------------
# Leftovers of a run that was killed outright (SIGKILL leaves no time for a teardown)
# --------------------------------------------------------------------------------------------


def sweep_stale_workdirs() -> None:
    """Remove what earlier runs of this driver left behind when they were killed outright."""
    for name in glob.glob(os.path.join(tempfile.gettempdir(), f"{WORKDIR_PREFIX}*")):
        workdir = Path(name)
        with contextlib.suppress(OSError, ValueError):
            pid = int((workdir / "driver.pid").read_text().split()[0])
            if b"run.py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # that run is still going
        stale = RunIdentity.load(workdir).kill_all()
        if stale:
            say(f"Killed {len(stale)} process(es) left by an earlier, killed run ({workdir})")
        if not (workdir / "keep").exists():
            shutil.rmtree(workdir, ignore_errors=True)


def watchdog(workdir: str) -> int:
    """``run.py --watchdog WORKDIR``: a separate process (own session) that outlives the driver.
    It blocks on its stdin, a pipe the driver holds; end of file means the driver is gone, however
    it went (even SIGKILL). Then it kills whatever of the run is left and removes the run's
    directory (unless the driver asked to keep it)."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    sys.stdin.buffer.read()
    leftovers = RunIdentity.load(Path(workdir)).kill_all()
    if leftovers:
        print(f"deploy watchdog: killed {len(leftovers)} process(es) the driver left behind", file=sys.stderr)
    if not (Path(workdir) / "keep").exists():
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def start_watchdog(workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--watchdog", str(workdir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,
    )


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


def start_postgres(processes: Processes, workdir: Path, base_env: dict[str, str], timeout: float) -> Postgres:
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
    processes.run(
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
        env,
        "initdb.log",
        timeout=120,
        user=user,
    )
    port = free_port()
    processes.start(
        "postgres",
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={sockets}",
            "-c",
            "max_connections=200",
            # Throwaway data: durability is not the point, speed is.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
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
    say(f"PostgreSQL {version} on 127.0.0.1:{port} (data {data}, as {user or 'this user'})")
    return server


# --------------------------------------------------------------------------------------------
# The emulator and its control API
# --------------------------------------------------------------------------------------------


class Emulator:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url  # http://127.0.0.1:PORT/client/v4
        parsed = urllib.parse.urlsplit(base_url)
        self.control = f"{parsed.scheme}://{parsed.netloc}/__emulator__"

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        url = f"{self.control}/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def set_clock(self, instant: dt.datetime) -> str:
        return str(self._call("POST", "clock", {"set": instant.strftime("%Y-%m-%dT%H:%M:%SZ")})["now"])

    def now(self) -> str:
        return str(self._call("GET", "clock")["now"])

    def expected(self, account_id: str, day: dt.date) -> list[dict[str, Any]]:
        return list(
            self._call("GET", "expected", params={"account_id": account_id, "day": day.isoformat(), "source": "v2"})
        )

    def requests(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "requests"))


def start_emulator(processes: Processes, env: dict[str, str], clock: dt.datetime, delay_hours: float) -> Emulator:
    from airflow_provider_cfbilling.emulator.cli import command, wait_for_ready_line

    options = ("--clock", clock.strftime("%Y-%m-%dT%H:%M:%SZ"), "--availability-delay-hours", f"{delay_hours:g}")
    managed = processes.start("emulator", command(*options), env, stdout=subprocess.PIPE)
    assert managed.process.stdout is not None
    try:
        return Emulator(wait_for_ready_line(managed.process.stdout, timeout=30))
    except TimeoutError:
        raise DeployError(f"the emulator did not start within 30 s:\n{tail(managed.log_path)}") from None
    except EOFError:
        raise DeployError(f"the emulator exited early:\n{tail(managed.log_path)}") from None


# --------------------------------------------------------------------------------------------
# Airflow
# --------------------------------------------------------------------------------------------


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
        return self.processes.run(
            [sys.executable, "-m", "airflow", *arguments], self.env, "airflow-cli.log", timeout=timeout, check=check
        )

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
    workdir: Path, postgres: Postgres, emulator: Emulator, api_port: int, accounts: Sequence[str], poll_seconds: float
) -> tuple[dict[str, str], str, str]:
    """The deployment's configuration, all of it in environment variables (nothing in airflow.cfg)."""
    from cryptography.fernet import Fernet

    home = workdir / "airflow-home"
    home.mkdir()
    lake = workdir / "lake"
    lake.mkdir()
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
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "CFBILLING_"))}
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
            "AIRFLOW_VAR_CLOUDFLARE_LAKE_ROOT": lake.as_uri(),
            "AIRFLOW_VAR_CLOUDFLARE_ACCOUNTS": json.dumps(list(accounts)),
            "CFBILLING_DEPLOY_POLL_SECONDS": f"{poll_seconds:g}",
        }
    )
    return env, username, password


# --------------------------------------------------------------------------------------------
# Watching the deployment through its metadata database
# --------------------------------------------------------------------------------------------


TiKey = tuple[str, str, int]  # run_id, task_id, map_index


@dataclass
class Observer:
    """Polls the metadata DB: task instance states, trigger rows, runs."""

    db: Any
    dag_id: str
    states: dict[TiKey, str] = field(default_factory=dict)
    tries: dict[TiKey, int] = field(default_factory=dict)
    ever_deferred: set[TiKey] = field(default_factory=set)
    max_deferred: int = 0
    running_at_max_deferred: int = 0
    triggers: dict[int, tuple[str, int | None]] = field(default_factory=dict)
    triggerer_jobs: set[int] = field(default_factory=set)
    runs: dict[str, tuple[dt.date, str]] = field(default_factory=dict)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.db.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def poll(self) -> None:
        self.runs = {
            run_id: (logical_date.date(), state)
            for run_id, logical_date, state in self.query(
                "SELECT run_id, logical_date, state FROM dag_run WHERE dag_id = %s", (self.dag_id,)
            )
        }
        rows = self.query(
            "SELECT run_id, task_id, map_index, state, try_number FROM task_instance WHERE dag_id = %s", (self.dag_id,)
        )
        deferred = running = 0
        # Rebuilt on every poll: a mapped task's placeholder (map_index -1) is replaced on expansion.
        self.states, self.tries = {}, {}
        for run_id, task_id, map_index, state, try_number in rows:
            key = (run_id, task_id, map_index)
            self.states[key] = state or "none"
            self.tries[key] = try_number or 0
            if state == "deferred":
                deferred += 1
                self.ever_deferred.add(key)
            elif state == "running":
                running += 1
        if deferred > self.max_deferred:
            self.max_deferred, self.running_at_max_deferred = deferred, running
        for trigger_id, classpath, triggerer_id in self.query("SELECT id, classpath, triggerer_id FROM trigger"):
            previous = self.triggers.get(trigger_id, (classpath, None))[1]
            self.triggers[trigger_id] = (classpath, triggerer_id if triggerer_id is not None else previous)
            if triggerer_id is not None:
                self.triggerer_jobs.add(int(triggerer_id))

    def day_of(self, run_id: str) -> dt.date | None:
        return self.runs[run_id][0] if run_id in self.runs else None

    def tis(self, task_id: str, day: dt.date | None = None) -> dict[TiKey, str]:
        return {
            key: state
            for key, state in self.states.items()
            if key[1] == task_id and (day is None or self.day_of(key[0]) == day)
        }

    def failures(self) -> list[TiKey]:
        return [key for key, state in self.states.items() if state in TERMINAL_FAILURES]


def task_log(home: Path, dag_id: str, key: TiKey) -> Path | None:
    run_id, task_id, map_index = key
    pattern = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        pattern = pattern / f"map_index={map_index}"
    found = sorted(glob.glob(str(pattern / "attempt=*.log")))
    return Path(found[-1]) if found else None


def compact_task_log(path: Path | None) -> list[str]:
    """A task log's JSON lines as ``time level event``, with each exception's type and message."""
    if path is None:
        return []
    compact = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(raw)
        except ValueError:
            compact.append(raw[:300])
            continue
        if not isinstance(entry, dict):
            compact.append(raw[:300])
            continue
        line = f"{str(entry.get('timestamp', ''))[11:23]} {entry.get('level', '?')} {entry.get('event', '')}"
        for detail in entry.get("error_detail") or []:
            if isinstance(detail, dict):
                line += f" | {detail.get('exc_type')}: {str(detail.get('exc_value'))[:400]}"
        compact.append(line[:600])
    return compact


# --------------------------------------------------------------------------------------------
# The lake
# --------------------------------------------------------------------------------------------


def partition_path(lake: Path, account_id: str, day: dt.date) -> Path:
    return lake / "usage_v2" / f"account_id={account_id}" / f"charge_date={day.isoformat()}" / "usage.jsonl"


@dataclass(frozen=True)
class FileState:
    sha256: str
    size: int
    inode: int
    mtime_ns: int


def file_state(path: Path) -> FileState:
    data = path.read_bytes()
    stat = path.stat()
    return FileState(hashlib.sha256(data).hexdigest(), len(data), stat.st_ino, stat.st_mtime_ns)


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


@dataclass
class Settings:
    first_day: dt.date
    days: int
    pending_days: int
    accounts: tuple[str, ...]
    delay_hours: float
    poll_seconds: float
    deadline: float  # time.monotonic() value

    @property
    def all_days(self) -> list[dt.date]:
        return [self.first_day + dt.timedelta(days=offset) for offset in range(self.days)]

    @property
    def pending(self) -> list[dt.date]:
        return self.all_days[self.days - self.pending_days :]

    def available_at(self, day: dt.date) -> dt.datetime:
        midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
        return midnight + dt.timedelta(hours=self.delay_hours)


@dataclass
class Report:
    durations: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


class Deployment:
    def __init__(self, settings: Settings, workdir: Path, processes: Processes, report: Report) -> None:
        self.settings = settings
        self.workdir = workdir
        self.processes = processes
        self.report = report
        self.postgres: Postgres | None = None
        self.emulator: Emulator | None = None
        self.airflow: Airflow | None = None
        self.observer: Observer | None = None
        self.lake = workdir / "lake"
        self.requests_after_backfill1 = 0
        self.trigger_polls = 0

    # -- waiting -----------------------------------------------------------------------------

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> float:
        """Poll until ``predicate()``; checks processes, task failures and the deadlines."""
        started = time.monotonic()
        limit = min(started + timeout, self.settings.deadline)
        while True:
            self.processes.check()
            if self.observer is not None:
                self.observer.poll()
                self.fail_on_task_failure()
            if predicate():
                return time.monotonic() - started
            if time.monotonic() > limit:
                if time.monotonic() > self.settings.deadline:
                    raise Interrupted(f"the overall timeout ran out while waiting for {what}")
                raise DeployError(f"timed out after {timeout:g} s waiting for {what}\n{self.state_summary()}")
            time.sleep(interval)

    def fail_on_task_failure(self) -> None:
        assert self.observer is not None and self.airflow is not None
        failed = self.observer.failures()
        if failed:
            # Details of the failed ones only (their logs say why; upstream_failed ones follow from them).
            states = self.observer.states
            causes = [key for key in failed if states[key] == "failed"] or failed
            counts = collections.Counter(states[key] for key in failed)
            details = [self.failure_details(key) for key in causes[:2]]
            raise DeployError(f"{len(failed)} task instance(s) ended badly {dict(counts)}:\n" + "\n".join(details))

    def failure_details(self, key: TiKey) -> str:
        """What CI needs to find the cause after the teardown removed the files: the task
        instance's row and its history, its task log, the trigger log next to it, and last (CI
        may keep only the tail) Airflow's audit log and the scheduler's lines for it."""
        assert self.observer is not None and self.airflow is not None
        run_id, task_id, map_index = key
        lines = [f"  {key}: {self.observer.states[key]}"]
        columns = "state, try_number, next_method, hostname, pid, start_date, end_date, queued_dttm"
        for table in ("task_instance", "task_instance_history"):
            with contextlib.suppress(Exception):
                for row in self.observer.query(
                    f"SELECT {columns} FROM {table} WHERE dag_id = %s AND run_id = %s AND task_id = %s AND map_index = %s",
                    (DAG_ID, run_id, task_id, map_index),
                ):
                    lines.append(
                        f"    {table}: "
                        + ", ".join(
                            f"{name.strip()}={value}" for name, value in zip(columns.split(","), row, strict=True)
                        )
                    )
        log = task_log(self.airflow.home, DAG_ID, key)
        lines.append(f"    task log {log.name if log else '(none)'}:")
        lines.extend(f"      {line}" for line in compact_task_log(log)[-20:])
        for name, event in self.trigger_log_events(key)[-15:]:
            lines.append(f"    trigger log {name}: {event}")
        # Airflow's audit log says who changed the state: for example the scheduler's "state mismatch"
        # when an executor reports a task finished that the database says is queued.
        with contextlib.suppress(Exception):
            for when, event, owner, extra in self.observer.query(
                "SELECT dttm, event, owner, extra FROM log WHERE dag_id = %s AND run_id = %s AND task_id = %s "
                "AND map_index = %s ORDER BY dttm",
                (DAG_ID, run_id, task_id, map_index),
            ):
                lines.append(f"    audit log {when:%H:%M:%S.%f} {event} by {owner}: {(extra or '')[:600]}")
        for line in self.scheduler_lines(key)[-6:]:
            lines.append(f"    scheduler log: {line}")
        return "\n".join(lines)

    def deferrals_unread_by_scheduler(self, run_ids: Sequence[str]) -> list[str]:
        """The runs whose sensor's deferral exit (try 1) the scheduler has not yet logged as an
        executor event."""
        path = self.processes.logs / "scheduler.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        read = set(
            re.findall(
                r"Received executor event with state success for task instance TaskInstanceKey\("
                rf"dag_id='{DAG_ID}', task_id='wait_for_usage', run_id='([^']+)', try_number=1,",
                text,
            )
        )
        return [run_id for run_id in run_ids if run_id not in read]

    def scheduler_lines(self, key: TiKey) -> list[str]:
        """The scheduler's log lines that name this task instance (its repr carries the run id,
        the task id and the map index)."""
        run_id, task_id, map_index = key
        path = self.processes.logs / "scheduler.log"
        if not path.exists():
            return []
        wanted = f"{DAG_ID}.{task_id} {run_id} " + (f"map_index={map_index} [" if map_index >= 0 else "[")
        found = []
        with path.open(errors="replace") as handle:
            for line in handle:
                if wanted in line and not line.startswith("\t"):  # not a continuation of a list
                    found.append(line.rstrip()[:500])
        return found

    def state_summary(self) -> str:
        if self.observer is None:
            return ""
        counts = collections.Counter(f"{key[1]}={state}" for key, state in self.observer.states.items())
        runs = collections.Counter(state for _, state in self.observer.runs.values())
        return f"  runs: {dict(runs)}\n  task instances: {dict(sorted(counts.items()))}"

    # -- bring up ----------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        base_env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "CFBILLING_"))}
        t0 = time.monotonic()
        self.postgres = start_postgres(self.processes, self.workdir, base_env, timeout=60)
        initial_clock = s.available_at(s.pending[0]) - dt.timedelta(hours=1)
        self.emulator = start_emulator(self.processes, base_env, initial_clock, s.delay_hours)
        say(
            f"Emulator at {self.emulator.base_url}, clock {self.emulator.now()} "
            f"(published through {s.pending[0] - dt.timedelta(days=1)}; {', '.join(map(str, s.pending))} not yet)"
        )
        api_port = free_port()
        env, username, password = airflow_environment(
            self.workdir, self.postgres, self.emulator, api_port, s.accounts, s.poll_seconds
        )
        self.airflow = Airflow(
            self.workdir / "airflow-home", env, f"http://127.0.0.1:{api_port}", username, password, self.processes
        )
        say("airflow db migrate (PostgreSQL)")
        self.airflow.cli(["db", "migrate"], timeout=300)
        self.airflow.cli(["pools", "set", POOL, str(POOL_SLOTS), "Cloudflare API: 1,200 requests / 5 min per token"])
        self.report.durations["postgres + emulator + db migrate"] = time.monotonic() - t0

        t0 = time.monotonic()
        airflow = [sys.executable, "-m", "airflow"]
        self.processes.start(
            "api-server",
            [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"],
            env,
        )
        self.processes.start("scheduler", [*airflow, "scheduler", "--skip-serve-logs"], env)
        self.processes.start("dag-processor", [*airflow, "dag-processor"], env)
        self.processes.start("triggerer", [*airflow, "triggerer", "--skip-serve-logs"], env)
        self.observer = Observer(self.postgres.connect(), DAG_ID)
        health: dict[str, Any] = {}

        def healthy() -> bool:
            nonlocal health
            try:
                health = self.airflow.rest("GET", "/api/v2/monitor/health", auth=False)  # type: ignore[union-attr]
            except (urllib.error.URLError, OSError, ValueError):
                return False
            return all(
                (health.get(component) or {}).get("status") == "healthy"
                for component in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        self.wait("the API server to report every component healthy", healthy, timeout=180, interval=1.0)
        self.report.add(
            "components healthy (GET /api/v2/monitor/health): "
            + ", ".join(f"{name}={value.get('status')}" for name, value in health.items() if isinstance(value, dict))
        )
        self.report.durations["components up"] = time.monotonic() - t0
        say("API server, scheduler, DAG processor and triggerer are up and healthy")

    def check_parsing(self) -> None:
        """The backfilled example DAG is serialized, and every example DAG file parsed without errors."""
        assert self.observer is not None
        t0 = time.monotonic()
        files = {("examples", path.name) for path in EXAMPLE_DAGS.glob("*.py")}
        accounted: dict[tuple[str, str], str] = {}

        def parsed() -> bool:
            accounted.clear()
            for bundle, relative, dag_id in self.observer.query(  # type: ignore[union-attr]
                "SELECT d.bundle_name, d.relative_fileloc, d.dag_id FROM dag d JOIN serialized_dag s ON s.dag_id = d.dag_id"
            ):
                accounted[(bundle, relative)] = dag_id
            for bundle, filename in self.observer.query("SELECT bundle_name, filename FROM import_error"):  # type: ignore[union-attr]
                accounted[(bundle, filename)] = "IMPORT ERROR"
            return ("examples", DAG_FILE) in accounted and files <= set(accounted)

        with contextlib.suppress(DeployError):
            self.wait("the DAG processor to parse every DAG file", parsed, timeout=120, interval=1.0)
        if accounted.get(("examples", DAG_FILE)) != DAG_ID:
            raise DeployError(f"{DAG_ID} was never serialized:\n{tail(self.processes.logs / 'dag-processor.log')}")
        errors = self.observer.query("SELECT bundle_name, filename, stacktrace FROM import_error")
        if errors:
            text = "\n".join(f"  {bundle}/{filename}:\n{stack}" for bundle, filename, stack in errors)
            raise DeployError(f"DAG import errors in the deployment:\n{text}")
        missing = sorted(files - set(accounted))
        dag_ids = sorted(set(accounted.values()))
        self.report.add(
            f"DAG processor: {len(dag_ids)} DAG(s) from {len(files) - len(missing)} file(s) of the examples bundle, "
            f"0 import errors ({', '.join(dag_ids)})"
            + (f"; files without a DAG: {', '.join(f'{b}/{f}' for b, f in missing)}" if missing else "")
        )
        self.report.durations["DAG parsing"] = time.monotonic() - t0
        say(f"Parsed: {', '.join(dag_ids)}")

    # -- backfill 1: days become available while the sensors wait in the triggerer ---------

    def backfill(self, reprocess: str | None) -> int:
        """``airflow backfill create``; returns the new backfill's id."""
        assert self.airflow is not None and self.observer is not None
        s = self.settings
        before = {row[0] for row in self.observer.query("SELECT id FROM backfill WHERE dag_id = %s", (DAG_ID,))}
        arguments = [
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            s.all_days[0].isoformat(),
            "--to-date",
            s.all_days[-1].isoformat(),
            "--max-active-runs",
            str(s.days),
        ]
        if reprocess:
            arguments += ["--reprocess-behavior", reprocess]
        say("airflow " + " ".join(arguments))
        self.airflow.cli(arguments)
        created = [
            row[0]
            for row in self.observer.query("SELECT id FROM backfill WHERE dag_id = %s", (DAG_ID,))
            if row[0] not in before
        ]
        if len(created) != 1:
            raise DeployError(f"expected one new backfill, found {created}")
        backfill_id = int(created[0])
        rows = self.observer.query(
            "SELECT dr.state FROM backfill_dag_run b JOIN dag_run dr ON dr.id = b.dag_run_id WHERE b.backfill_id = %s",
            (backfill_id,),
        )
        skipped = self.observer.query(
            "SELECT logical_date, exception_reason FROM backfill_dag_run WHERE backfill_id = %s AND dag_run_id IS NULL",
            (backfill_id,),
        )
        if len(rows) != s.days or skipped:
            raise DeployError(f"backfill {backfill_id} queued {len(rows)} of {s.days} runs; not created: {skipped}")
        return backfill_id

    def backfill_done(self, backfill_id: int) -> bool:
        assert self.observer is not None
        (completed,) = self.observer.query("SELECT completed_at FROM backfill WHERE id = %s", (backfill_id,))[0]
        states = [
            row[0]
            for row in self.observer.query(
                "SELECT dr.state FROM backfill_dag_run b JOIN dag_run dr ON dr.id = b.dag_run_id WHERE b.backfill_id = %s",
                (backfill_id,),
            )
        ]
        if "failed" in states:
            raise DeployError(
                f"a run of backfill {backfill_id} failed: {collections.Counter(states)}\n{self.state_summary()}"
            )
        return completed is not None and len(states) == self.settings.days and set(states) == {"success"}

    def first_backfill(self) -> None:
        assert self.airflow is not None and self.observer is not None and self.emulator is not None
        s = self.settings
        observer = self.observer
        self.airflow.cli(["dags", "unpause", DAG_ID])
        t0 = time.monotonic()
        backfill_id = self.backfill(reprocess=None)
        expected_deferred = len(s.pending) * SENSORS_PER_RUN

        def sensors(day: dt.date, state: str) -> int:
            return sum(1 for value in observer.tis("wait_for_usage", day).values() if value == state)

        def all_pending_deferred() -> bool:
            return sum(sensors(day, "deferred") for day in s.pending) == expected_deferred

        waited = self.wait(
            f"{expected_deferred} sensors of {', '.join(map(str, s.pending))} to defer",
            all_pending_deferred,
            timeout=300,
        )
        running_now = sum(1 for state in observer.states.values() if state == "running")

        # Before any day is published, every deferred sensor's trigger has polled in the triggerer
        # and found its day missing (the triggerer picks new triggers up within seconds).
        def every_trigger_polled() -> bool:
            keys = [key for day in s.pending for key in observer.tis("wait_for_usage", day)]
            return all(any("not available yet" in event for _, event in self.trigger_log_events(key)) for key in keys)

        self.wait("every deferred sensor's trigger to poll once in the triggerer", every_trigger_polled, timeout=120)
        # And the scheduler has read each deferral's "success" from the executor. Read after the
        # trigger fired and the task was queued again, that stale event fails the resumed task
        # (an Airflow 3 race, apache/airflow#71580, #72716; docs/compatibility.md): the 3 s polls
        # here make it reachable, the 30-minute polls of production do not.
        deferred_runs = sorted({key[0] for day in s.pending for key in observer.tis("wait_for_usage", day)})
        self.wait(
            "the scheduler to read the executor's event for every deferral",
            lambda: not self.deferrals_unread_by_scheduler(deferred_runs),
            timeout=120,
        )
        say(
            f"All {expected_deferred} sensors of the unpublished days are deferred at once "
            f"(after {waited:.0f} s; {running_now} task(s) running; executor parallelism {PARALLELISM}, pool {POOL_SLOTS} slots)"
        )
        if expected_deferred > max(PARALLELISM, POOL_SLOTS):
            holding = (
                f"> parallelism {PARALLELISM} and > pool slots {POOL_SLOTS}: no worker or pool slot held while waiting"
            )
        else:
            holding = f"not more than the {PARALLELISM} slots: run with more --pending-days to show no slot is held"
        self.report.add(
            f"deferred at once: {expected_deferred} sensors ({holding}); tasks running at that moment: {running_now}"
        )
        published = [day for day in s.all_days if day not in s.pending]
        early = [
            key for key in observer.ever_deferred if key[1] == "wait_for_usage" and observer.day_of(key[0]) in published
        ]
        if early:
            raise DeployError(f"sensors of already published days deferred: {early}")

        for index, day in enumerate(s.pending):
            later = s.pending[index + 1 :]
            if any(sensors(later_day, "success") for later_day in later):
                raise DeployError(
                    f"a sensor of a later day succeeded before {day} was published\n{self.state_summary()}"
                )
            moment = s.available_at(day)
            now = self.emulator.set_clock(moment)
            released = time.monotonic()

            def day_done(day: dt.date = day) -> bool:
                return sensors(day, "success") == SENSORS_PER_RUN

            took = self.wait(f"the sensors of {day} to complete after the clock moved to {now}", day_done, timeout=180)
            still = sum(sensors(later_day, "deferred") for later_day in later)
            if still != len(later) * SENSORS_PER_RUN:
                raise DeployError(
                    f"after publishing {day}, {still} of {len(later) * SENSORS_PER_RUN} later sensors are deferred"
                )
            say(f"Clock -> {now}: {day} published; its sensor resumed in {took:.1f} s; {still} still deferred")
            self.report.add(
                f"clock -> {now}: sensors of {day} completed {time.monotonic() - released:.1f} s later, {still} later sensor(s) still deferred"
            )

        self.wait(f"backfill {backfill_id} to finish", lambda: self.backfill_done(backfill_id), timeout=300)
        self.requests_after_backfill1 = len(self.emulator.requests())
        self.report.durations["backfill 1 (with deferrals)"] = time.monotonic() - t0
        say(f"Backfill {backfill_id}: all {s.days} runs succeeded")

    # -- checks --------------------------------------------------------------------------------

    def check_task_instances(self, label: str, try_number: int) -> None:
        """Every run and task instance succeeded, at ``try_number`` (no retries: the DAG has none)."""
        assert self.observer is not None
        s = self.settings
        expected = {"plan_accounts": 1, "wait_for_usage": SENSORS_PER_RUN, "land_usage": len(s.accounts), "report": 1}
        for task_id, per_run in expected.items():
            tis = self.observer.tis(task_id)
            bad = {key: state for key, state in tis.items() if state != "success"}
            if len(tis) != per_run * s.days or bad:
                raise DeployError(
                    f"{label}: {task_id}: {len(tis)} task instances (want {per_run * s.days}), not successful: {bad}"
                )
        if len(self.observer.runs) != s.days:
            raise DeployError(
                f"{label}: {len(self.observer.runs)} runs of {DAG_ID}, expected {s.days}: {sorted(self.observer.runs)}"
            )
        other_tries = {key: tries for key, tries in self.observer.tries.items() if tries != try_number}
        if other_tries:
            raise DeployError(f"{label}: task instances not at try {try_number}: {sorted(other_tries.items())[:5]}")
        runs = collections.Counter(state for _, state in self.observer.runs.values())
        self.report.add(
            f"{label}: {runs.get('success', 0)}/{s.days} runs success, all {len(self.observer.states)} task instances "
            f"success at try {try_number} (no retries)"
        )

    def check_triggerer(self) -> None:
        assert self.observer is not None
        s = self.settings
        ours = {tid: info for tid, info in self.observer.triggers.items() if info[0] == TRIGGER_CLASSPATH}
        if not ours:
            raise DeployError("no trigger row of CloudflareUsageAvailableTrigger was ever seen")
        unassigned = [tid for tid, (_, triggerer) in ours.items() if triggerer is None]
        jobs = self.observer.query(
            "SELECT id, job_type, hostname FROM job WHERE id = ANY(%s)", (sorted(self.observer.triggerer_jobs),)
        )
        if unassigned or not jobs or any(job_type != "TriggererJob" for _, job_type, _ in jobs):
            raise DeployError(f"triggers not run by a triggerer job: unassigned {unassigned}, jobs {jobs}")
        sensors_deferred = {key for key in self.observer.ever_deferred if key[1] == "wait_for_usage"}
        want = len(s.pending) * SENSORS_PER_RUN
        if len(sensors_deferred) != want:
            raise DeployError(f"{len(sensors_deferred)} sensors were seen deferred, expected {want}")
        # The triggerer writes each trigger's log next to its task instance's log
        # (attempt=N.log.trigger.<triggerer job id>.log): the lifecycle of every deferred sensor.
        assert self.airflow is not None
        polls = 0
        triggerer_files: set[str] = set()
        for key in sorted(sensors_deferred):
            events = self.trigger_log_events(key)
            if not events:
                raise DeployError(f"no triggerer log for the deferred sensor {key}")
            triggerer_files.update(name for name, _ in events)
            texts = [event for _, event in events]
            waited = sum(1 for text in texts if "not available yet" in text)
            fired = [text for text in texts if text.startswith("Trigger fired event") and "'status': 'success'" in text]
            if not any(text.startswith("trigger ") and text.endswith("starting") for text in texts) or not fired:
                raise DeployError(f"the triggerer log of {key} shows no start or no success event: {texts[-5:]}")
            if not any("is available" in text for text in texts) or "trigger completed" not in texts:
                raise DeployError(f"the triggerer log of {key} does not show the trigger finding the day: {texts[-5:]}")
            if waited == 0:
                raise DeployError(f"the trigger of {key} never polled an unpublished day: {texts}")
            polls += waited
            self.trigger_polls += waited + sum(1 for text in texts if "is available" in text)
        via_triggerer = {
            key
            for key in self.observer.tis("wait_for_usage")
            if key not in sensors_deferred and self.trigger_log_events(key)
        }
        if via_triggerer:
            raise DeployError(f"sensors of published days went through the triggerer: {sorted(via_triggerer)}")
        job_ids = {int(name.rsplit(".", 2)[-2]) for name in triggerer_files}
        if not job_ids <= {job_id for job_id, _, _ in jobs}:
            raise DeployError(f"trigger logs written by jobs {job_ids}, triggerer jobs seen {jobs}")
        blocked = [
            float(match)
            for match in re.findall(
                r"async thread was blocked for ([0-9.]+) seconds",
                (self.processes.logs / "triggerer.log").read_text(errors="replace"),
            )
        ]
        self.report.add(
            f"triggerer: {len(ours)} CloudflareUsageAvailableTrigger row(s), all assigned to TriggererJob "
            f"{sorted(self.observer.triggerer_jobs)}; {len(sensors_deferred)} sensors deferred (max {self.observer.max_deferred} "
            f"at once); each one's trigger log (written by that triggerer) shows start, {polls} 'not available yet' polls in "
            "all, 'is available', 'Trigger fired event' (success) and 'trigger completed'; sensors of published days "
            "never reached the triggerer"
            + (
                f"; triggerer warned {len(blocked)}x that its event loop was blocked (max {max(blocked):.2f} s)"
                if blocked
                else ""
            )
        )

    def trigger_log_events(self, key: TiKey) -> list[tuple[str, str]]:
        """``(file name, event)`` of every line of the trigger logs next to a task instance's logs."""
        assert self.airflow is not None
        run_id, task_id, map_index = key
        folder = self.airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder = folder / f"map_index={map_index}"
        events = []
        for path in sorted(folder.glob("attempt=*.log.trigger.*.log")):
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    events.append(
                        (path.name, f"{record.get('event')}" + (f" {record['result']}" if "result" in record else ""))
                    )
        return events

    def check_partitions(self) -> dict[Path, FileState]:
        assert self.emulator is not None
        s = self.settings
        states: dict[Path, FileState] = {}
        records = 0
        same_bytes = 0
        for account_id in s.accounts:
            for day in s.all_days:
                path = partition_path(self.lake, account_id, day)
                if not path.is_file():
                    raise DeployError(f"partition missing: {path}")
                data = path.read_bytes()
                landed = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
                expected = self.emulator.expected(account_id, day)
                if not expected:
                    raise DeployError(f"the emulator has no records for {account_id} on {day}")
                if landed != expected:
                    extra = len(landed) - len(expected)
                    raise DeployError(
                        f"{path}: {len(landed)} records differ from the emulator's {len(expected)} for {day} "
                        f"(difference in count {extra:+d})"
                    )
                canonical = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in expected)
                same_bytes += canonical.encode() == data
                records += len(landed)
                states[path] = file_state(path)
                # Its manifest, written after it, describes exactly these bytes.
                manifest_path = path.parent / f"_{path.name}.manifest.json"
                if not manifest_path.is_file():
                    raise DeployError(f"manifest missing: {manifest_path}")
                manifest = json.loads(manifest_path.read_text())
                if (manifest.get("sha256"), manifest.get("records")) != (states[path].sha256, len(landed)):
                    raise DeployError(f"{manifest_path} does not describe {path}: {manifest}")
                states[manifest_path] = file_state(manifest_path)
        files = sorted(str(p.relative_to(self.lake)) for p in self.lake.rglob("*") if p.is_file())
        expected_files = sorted(str(p.relative_to(self.lake)) for p in states)
        if files != expected_files:
            raise DeployError(f"unexpected files in the lake: {sorted(set(files) - set(expected_files))}")
        self.report.add(
            f"partitions: {len(states) // 2} ({len(s.accounts)} accounts x {s.days} days), {records} records, each "
            f"equal to /__emulator__/expected for its account and day ({same_bytes} byte-identical to the emulator's "
            "JSON lines), each with a manifest that describes it; no other file in the lake"
        )
        return states

    def second_backfill(self, before: dict[Path, FileState]) -> None:
        assert self.observer is not None
        t0 = time.monotonic()
        started = dt.datetime.now(dt.timezone.utc)
        backfill_id = self.backfill(reprocess="completed")
        self.wait(
            f"backfill {backfill_id} (--reprocess-behavior completed) to finish",
            lambda: self.backfill_done(backfill_id),
            timeout=300,
        )
        self.report.durations["backfill 2 (reprocess completed)"] = time.monotonic() - t0
        rerun = self.observer.query(
            "SELECT count(*) FROM task_instance WHERE dag_id = %s AND task_id = 'land_usage' AND state = 'success' AND end_date > %s",
            (DAG_ID, started),
        )[0][0]
        partitions = sum(1 for path in before if not path.name.endswith(".manifest.json"))
        if rerun != partitions:
            raise DeployError(f"only {rerun} of {partitions} land_usage task instances ran again")
        self.check_task_instances("backfill 2", try_number=2)
        after = self.check_partitions()
        # The data did not change, so a re-run rewrites nothing: every object and manifest keeps
        # its bytes, its inode and its modification time.
        touched = [path for path in before if before[path] != after[path]]
        if touched:
            raise DeployError(f"{len(touched)} file(s) of unchanged days were rewritten on re-run: {touched[:3]}")
        self.report.add(
            f"re-run: {rerun} land_usage task instances ran again; all {len(after)} objects and manifests untouched "
            "(same SHA-256, inode and mtime): unchanged days are not rewritten"
        )
        say(f"Backfill {backfill_id}: every partition found unchanged and left untouched")

    def check_requests(self) -> None:
        """Every request the emulator saw is accounted for, and none failed."""
        assert self.emulator is not None
        log = self.emulator.requests()
        routes = collections.Counter(entry.get("route") or "-" for entry in log)
        statuses = collections.Counter(entry.get("status") for entry in log)
        if set(statuses) != {200}:
            raise DeployError(f"the emulator answered other statuses than 200: {dict(statuses)}")
        days, accounts = self.settings.days, len(self.settings.accounts)
        per_run = SENSORS_PER_RUN + accounts  # the sensor's check on a worker, then one landing per account
        first, second = log[: self.requests_after_backfill1], log[self.requests_after_backfill1 :]
        # Backfill 2: every day is published, so each sensor's first check finds it.
        if len(second) != per_run * days:
            raise DeployError(
                f"backfill 2 sent {len(second)} requests, expected {per_run * days} "
                f"({SENSORS_PER_RUN} sensor check + {accounts} landings per day)"
            )
        # Backfill 1: the same, plus what the triggers polled (counted from their logs).
        expected_first = per_run * days + self.trigger_polls
        if len(first) != expected_first:
            raise DeployError(
                f"backfill 1 sent {len(first)} requests, expected {expected_first} "
                f"({per_run} per day + {self.trigger_polls} trigger polls)"
            )
        self.report.add(
            f"emulator requests: {len(log)}, all HTTP 200 ({', '.join(f'{k}={v}' for k, v in sorted(routes.items()))}): "
            f"backfill 1 {len(first)} = {days} days x ({SENSORS_PER_RUN} sensor check on a worker + {accounts} landings) "
            f"+ {self.trigger_polls} trigger polls; backfill 2 {len(second)} = {days} x {per_run}"
        )

    def check_rest_api(self) -> None:
        assert self.airflow is not None
        runs = self.airflow.rest("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100")
        states = collections.Counter(run["state"] for run in runs["dag_runs"])
        types = collections.Counter(run["run_type"] for run in runs["dag_runs"])
        if runs["total_entries"] != self.settings.days or set(states) != {"success"}:
            raise DeployError(f"REST API: {runs['total_entries']} runs, states {dict(states)}")
        self.report.add(
            f"REST API (authenticated as a SimpleAuthManager user): {runs['total_entries']} runs, {dict(states)}, {dict(types)}"
        )


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--first-day", type=dt.date.fromisoformat, default=dt.date(2025, 6, 1), help="first UTC day")
    parser.add_argument("--days", type=int, default=8, help="days to backfill (default 8)")
    parser.add_argument(
        "--pending-days",
        type=int,
        default=5,
        help="last days not yet published at the start (default 5: more sensors deferred than executor slots)",
    )
    parser.add_argument(
        "--accounts", type=int, default=3, choices=range(1, len(ACCOUNTS) + 1), help="accounts (default 3)"
    )
    parser.add_argument("--availability-delay-hours", type=float, default=6.0, help="emulator's publication delay")
    parser.add_argument("--poll-seconds", type=float, default=3.0, help="the deferred sensors' polling interval")
    parser.add_argument("--timeout", type=float, default=840.0, help="overall limit in seconds, teardown included")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, lake) for inspection")
    parser.add_argument("--watchdog", metavar="WORKDIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.watchdog:
        return watchdog(args.watchdog)
    if not 1 <= args.pending_days < args.days:
        parser.error("--pending-days must be at least 1 and less than --days")
    last_day = args.first_day + dt.timedelta(days=args.days - 1)
    if not (args.first_day >= DAG_FIRST_DAY and last_day < dt.datetime.now(dt.timezone.utc).date()):
        parser.error(f"the days must lie between {DAG_FIRST_DAY} (the DAG's start date) and yesterday")

    teardown_budget = 60.0
    settings = Settings(
        first_day=args.first_day,
        days=args.days,
        pending_days=args.pending_days,
        accounts=ACCOUNTS[: args.accounts],
        delay_hours=args.availability_delay_hours,
        poll_seconds=args.poll_seconds,
        deadline=STARTED + max(60.0, args.timeout - teardown_budget),
    )

    def on_signal(signum: int, frame: Any) -> None:
        raise Interrupted(f"received {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)

    sweep_stale_workdirs()
    marker = uuid.uuid4().hex
    workdir = Path(tempfile.gettempdir()) / f"{WORKDIR_PREFIX}{marker}"
    workdir.mkdir(mode=0o700)
    workdir.chmod(0o711)  # the postgres user must reach its data directory inside
    (workdir / "driver.pid").write_text(f"{os.getpid()}\n")
    identity = RunIdentity(marker, workdir)
    identity.save()
    guard = start_watchdog(workdir)
    logs = workdir / "logs"
    logs.mkdir()
    processes = Processes(identity, logs)
    report = Report()
    deployment = Deployment(settings, workdir, processes, report)
    outcome, code = "FAILED", 1
    failure = "the driver stopped before its first check"
    say(
        f"Deployment test: {DAG_ID}, {settings.days} days from {settings.first_day}, {len(settings.accounts)} accounts; "
        f"workdir {workdir}"
    )
    try:
        deployment.start()
        deployment.check_parsing()
        deployment.first_backfill()
        deployment.check_task_instances("backfill 1", try_number=1)
        deployment.check_triggerer()
        before = deployment.check_partitions()
        deployment.second_backfill(before)
        deployment.check_requests()
        deployment.check_rest_api()
        outcome, code = "PASSED", 0
    except DeployError as error:
        failure = f"DEPLOYMENT CHECK FAILED: {error}"
    except Interrupted as error:
        failure = f"INTERRUPTED: {error}"
        code = 124 if "timeout" in str(error) else 130
    except Exception as error:  # a bug in the driver itself: still tear down
        import traceback

        failure = f"DEPLOYMENT TEST ERROR: {type(error).__name__}: {error}\n{traceback.format_exc()}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # the teardown itself is not interrupted
        teardown_started = time.monotonic()
        if code != 0:
            # The components' logs first and the failure after them: CI may keep only the tail.
            for name in ("scheduler", "triggerer", "dag-processor", "api-server"):
                path = logs / f"{name}.log"
                if path.exists():
                    print(f"\n--- last lines of {name}.log ---\n{tail(path, 25)}", flush=True)
            print(f"\n{failure}", flush=True)
        with contextlib.suppress(Exception):
            if deployment.observer is not None:
                deployment.observer.db.close()
        outlived = processes.stop(["api-server", "scheduler", "dag-processor", "triggerer"], grace=20)
        outlived += processes.stop(["emulator"], grace=5)
        outlived += processes.stop(["postgres"], grace=15)
        outlived += processes.stop(grace=5)
        leftovers = identity.kill_all()
        remaining = identity.pids()
        kept = args.keep or (code != 0 and os.environ.get("CFBILLING_DEPLOY_KEEP_ON_FAILURE") == "1")
        if kept:
            (workdir / "keep").touch()
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if guard.stdin is not None:
            guard.stdin.close()  # the watchdog's cue: it sweeps once more and exits
        try:
            guard.wait(timeout=20)
        except subprocess.TimeoutExpired:
            guard.kill()
            guard.wait()
        teardown = time.monotonic() - teardown_started
        report.durations["teardown"] = teardown
        if remaining:
            outcome, code = "FAILED", 1
            print(f"processes left behind (pids {remaining})", file=sys.stderr)
        print()
        print("=" * 100)
        print(f"Deployment test {outcome} in {time.monotonic() - STARTED:.0f} s")
        for line in report.lines:
            print(f"  - {line}")
        if code != 0:
            print("  - FAILED: " + "\n      ".join(failure.splitlines()[:2]))
        print("  durations: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in report.durations.items()))
        print(
            "  teardown: every component stopped"
            + (f" ({', '.join(outlived)} only by SIGKILL after the grace period)" if outlived else "")
            + f"; {len(leftovers)} task/child process(es) swept by pid; "
            f"{len(remaining)} left; workdir {'kept at ' + str(workdir) if kept else 'removed'}"
        )
        print("=" * 100)
        # Every summary line above is one check that passed; a failure stops at the first one.
        print(f"test-deploy: {len(report.lines)} passed, {0 if code == 0 else 1} failed", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
