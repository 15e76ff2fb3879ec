"""Backfilling with Airflow's own CLI, in subprocesses, against the emulator.

Airflow 2: ``airflow dags backfill`` runs the backfill itself (a BackfillJob with the default
SequentialExecutor on SQLite, each task in its own ``airflow tasks run`` process).

Airflow 3: ``airflow backfill create`` only queues the runs; a scheduler executes them. The lightest
real setup is what ``airflow standalone`` runs minus the UI and the DAG processor: the DAG is
serialized once with ``airflow dags reserialize``, then ``airflow api-server --apps execution``
(the Execution API the task supervisors talk to) and ``airflow scheduler`` (LocalExecutor, which
3.x allows on SQLite; parallelism 1) run until the backfill's runs finish. The DAG must be unpaused:
a 3.x scheduler leaves the queued runs of a paused DAG alone, backfill runs included.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.sinks import read_records
from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_0_PLUS

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("airflow_db", "cloudflare_conn")]

DAG_ID = "cf_backfill_daily"
DAYS = ["2025-06-10", "2025-06-11", "2025-06-12"]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
RUNS_TIMEOUT = 240


def airflow_env() -> dict[str, str]:
    """This environment, with this interpreter's ``bin`` first on PATH: executors start ``airflow``
    by name (2.x: ``airflow tasks run``), and the virtualenv need not be activated."""
    env = os.environ.copy()
    env["PATH"] = os.pathsep.join([str(Path(AIRFLOW).parent), env.get("PATH", "")])
    return env


def airflow(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [AIRFLOW, *args], capture_output=True, text=True, timeout=timeout, env=airflow_env(), check=False
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def background(name: str, args: list[str], log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """An ``airflow`` subcommand running for the duration of the block; its output goes to a file."""
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen([AIRFLOW, *args], stdout=log, stderr=subprocess.STDOUT, env=airflow_env())
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the API server exited"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the API server did not listen on {port} within {timeout} s")


def run_states() -> dict[str, str]:
    """``{data_interval_start day: state}`` of the DAG's runs in the metadata DB."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = session.query(DagRun).filter(DagRun.dag_id == DAG_ID).all()
        return {run.data_interval_start.date().isoformat(): str(run.state) for run in runs}


def wait_for_runs(processes: list[subprocess.Popen[bytes]], logs: Path) -> dict[str, str]:
    deadline = time.monotonic() + RUNS_TIMEOUT
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = run_states()
        if len(states) == len(DAYS) and all(state in ("success", "failed") for state in states.values()):
            return states
        for process in processes:
            assert process.poll() is None, f"{process.args} exited: {_tail(logs)}"
        time.sleep(1)
    raise AssertionError(f"backfill runs not finished after {RUNS_TIMEOUT} s: {states}\n{_tail(logs)}")


def _tail(logs: Path) -> str:
    return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}" for path in logs.glob("*.log"))


def backfill_with_airflow_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    port = free_port()
    # The scheduler's supervisors and the API server must agree on the URL and the token secret.
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://127.0.0.1:{port}/execution/")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "cfbilling-backfill-test-secret")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("AIRFLOW__CORE__PARALLELISM", "1")
    monkeypatch.setenv("AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC", "1")
    # The scheduler serves task logs on a fixed port (8793) by default; another run may hold it.
    monkeypatch.setenv("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", str(free_port()))

    airflow("dags", "reserialize", "--bundle-name", "test_dags")
    airflow("dags", "unpause", DAG_ID)  # 3.x schedulers run no queued run, backfill or not, of a paused DAG
    airflow("backfill", "create", "--dag-id", DAG_ID, "--from-date", DAYS[0], "--to-date", DAYS[-1])
    with ExitStack() as stack:
        api = stack.enter_context(
            background(
                "api-server",
                ["api-server", "--apps", "execution", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                tmp_path,
            )
        )
        wait_for_port(port, api)
        scheduler = stack.enter_context(background("scheduler", ["scheduler"], tmp_path))
        return wait_for_runs([api, scheduler], tmp_path)


def backfill_with_airflow_2() -> dict[str, str]:
    airflow("dags", "backfill", "--start-date", DAYS[0], "--end-date", DAYS[-1], DAG_ID)
    return run_states()


def test_a_cli_backfill_lands_each_day_once_with_exactly_its_records(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    monkeypatch.setenv("AIRFLOW_VAR_CFBILLING_BACKFILL_ROOT", f"file://{lake}")

    states = backfill_with_airflow_3(tmp_path, monkeypatch) if AIRFLOW_V_3_0_PLUS else backfill_with_airflow_2()

    assert states == dict.fromkeys(DAYS, "success")
    assert sorted(path.parent.name for path in lake.glob("date=*/usage.jsonl")) == [f"date={day}" for day in DAYS]
    for day in DAYS:
        want = emulator.expected_records(DEFAULT_ACCOUNT_ID, dt.date.fromisoformat(day))
        assert want, day
        assert read_records(f"file://{lake}/date={day}/usage.jsonl") == want, day
