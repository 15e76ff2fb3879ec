"""Process supervision for the deployment driver (``deploy/run.py``) and ``scripts/demo.py``.

What it holds: each process a session (process group) of its own and a marker in its environment
(:class:`Processes`, :class:`Managed`); what makes a process a run's, also after the driver is gone
(:class:`RunIdentity`); bounded stops (the stop signal to the group, then SIGKILL); the sweep of what
an earlier, killed run left (:func:`sweep_stale_workdirs`); the watchdog process that cleans up when
the driver itself is killed outright (:func:`start_watchdog`, run as ``supervisor.py --watchdog
WORKDIR``); the teardown in its order (:func:`teardown`); and small helpers (:func:`free_port`,
:func:`tail`, :func:`say`). Standard library only.

``deploy/`` is not a package: ``deploy/run.py`` finds this module next to it, and
``scripts/demo.py`` and ``tests/transfers/pg_server.py`` put ``deploy/`` on ``sys.path`` to import it.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER_VARIABLE = "CFBILLING_DEPLOY_RUN"
WORKDIR_PREFIX = "cfbilling-deploy-"
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
    """What makes a process this run's, also after the driver is gone (saved in the run's directory
    when it has one: ``workdir`` None keeps it in memory only).

    A process is the run's when its environment carries ``MARKER_VARIABLE=marker``, or when it lives
    in one of the sessions the run started and began after the run did. The session test matters:
    Airflow's processes rename themselves (setproctitle), which overwrites the environment that
    ``/proc/PID/environ`` shows, and task processes start process groups of their own, but none of
    them leaves its component's session.
    """

    marker: str
    workdir: Path | None
    since: int = field(default_factory=lambda: proc_session_and_start(os.getpid())[1])
    sessions: set[int] = field(default_factory=set)

    def add_session(self, sid: int) -> None:
        self.sessions.add(sid)
        self.save()

    def save(self) -> None:
        if self.workdir is None:
            return
        path = self.workdir / "identity.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"marker": self.marker, "since": self.since, "sessions": sorted(self.sessions)})
        )
        temporary.replace(path)

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
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in self.pids():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and self.pids():
                    time.sleep(0.1)
        return leftovers


class Processes:
    """Long-running processes, started in order and stopped in reverse; and bounded short commands."""

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
        cwd: str | Path = "/",
        log_path: Path | None = None,
    ) -> Managed:
        """Start ``argv`` in a session of its own, stderr (and stdout unless ``stdout``) appended to
        ``log_path`` (default ``logs/<name>.log``)."""
        log_path = log_path or self.logs / f"{name}.log"
        with log_path.open("ab") as log:
            process = self._spawn(argv, env, stdout if stdout is not None else log, log, cwd, user)
        managed = Managed(name, process, log_path, stop_signal)
        self.items.append(managed)
        return managed

    def _spawn(
        self, argv: Sequence[str], env: dict[str, str], stdout: Any, stderr: Any, cwd: str | Path, user: str | None
    ) -> subprocess.Popen[Any]:
        """``argv`` in a new session (recorded in the run's identity), with the marker in its
        environment, killed by the kernel if the driver dies; text output when ``stdout`` is a pipe."""
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env={**env, MARKER_VARIABLE: self.marker},
            cwd=cwd,
            user=user,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            text=stdout == subprocess.PIPE,
        )
        self.identity.add_session(process.pid)  # start_new_session: its pid is the session id
        return process

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
        display: str | None = None,
        cwd: str | Path = "/",
    ) -> tuple[int, str]:
        """Run a short command in its own session, output appended to ``logs/log_name`` after a
        ``$ command`` line (``display``, else the argv); bounded by ``timeout``."""
        log_path = self.logs / log_name
        shown = display or " ".join(argv)
        with log_path.open("ab") as log:
            log.write(f"\n$ {shown}\n".encode())
        start = log_path.stat().st_size
        with log_path.open("ab") as log:
            process = self._spawn(argv, env, log, subprocess.STDOUT, cwd, user)
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise DeployError(f"'{shown}' did not finish within {timeout:g} s:\n{tail(log_path)}")
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)  # whatever it left in its group
                process.wait()
        with log_path.open("rb") as log:
            log.seek(start)
            output = log.read().decode(errors="replace")
        if check and code != 0:
            raise DeployError(f"'{shown}' failed with status {code}:\n{tail(log_path)}")
        return code, output


# --------------------------------------------------------------------------------------------
# A run's directory, its watchdog, its teardown; and what a killed run left behind
# --------------------------------------------------------------------------------------------


def new_workdir(marker: str) -> Path:
    """The run's temporary directory (``<tmp>/cfbilling-deploy-<marker>``), with the driver's pid in it."""
    workdir = Path(tempfile.gettempdir()) / f"{WORKDIR_PREFIX}{marker}"
    workdir.mkdir(mode=0o700)
    workdir.chmod(0o711)  # the postgres user must reach its data directory inside
    (workdir / "driver.pid").write_text(f"{os.getpid()}\n")
    return workdir


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
    """``supervisor.py --watchdog WORKDIR``: a separate process (own session) that outlives the driver.
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


@dataclass
class TeardownResult:
    outlived: list[str]  # components that needed SIGKILL after their grace period
    leftovers: list[int]  # processes swept by pid after the components stopped
    remaining: list[int]  # processes still there at the end (a failure)
    kept: bool


def teardown(
    processes: Processes,
    guard: subprocess.Popen[bytes],
    order: Sequence[tuple[Sequence[str] | None, float]],
    *,
    keep: bool,
) -> TeardownResult:
    """Stop the components group by group (``order``: names and grace; ``None`` for the rest), sweep
    the run's processes by pid, remove (or keep) the run's directory, then release the watchdog."""
    outlived: list[str] = []
    for names, grace in order:
        outlived += processes.stop(names, grace=grace)
    outlived += processes.stop(grace=5)
    identity = processes.identity
    leftovers = identity.kill_all()
    remaining = identity.pids()
    workdir = identity.workdir
    if workdir is not None:
        if keep:
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
    return TeardownResult(outlived, leftovers, remaining, keep)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--watchdog":
        sys.exit(watchdog(sys.argv[2]))
    sys.exit("usage: supervisor.py --watchdog WORKDIR")
