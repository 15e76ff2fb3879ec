"""Load: 50 mapped task instances, one account each, through a real parallel Airflow executor,
against an emulator that enforces a Cloudflare-like rate limit.

What runs: ``dag.test(use_executor=True)`` with ``LocalExecutor`` (parallelism 8). Each task
instance is sent to the executor as a workload; the executor's worker processes start a
supervisor and a task process per workload, exactly as under the scheduler, and those talk to
Airflow's Execution API over HTTP. The Execution API app (``airflow.api_fastapi`` with
``apps="execution"``, what ``airflow api-server`` serves under ``/execution``) runs in this
process on a loopback port, on the same SQLite metadata DB. ``dag.test`` stands in for the
scheduler loop (it schedules, queues and collects executor events).

The emulator allows 20 requests per 60 s sliding window and then blocks every request for 2 s
with ``Retry-After``: whatever the speed of the machine, 50 requests cross the limit at least
twice, so tasks do meet 429s. Checked: every task succeeds; every account's partition equals the
emulator's ``expected_records`` (nothing lost, nothing doubled); after a 429 no task asks again
before its ``Retry-After`` has elapsed; 429s stay fewer than tasks; no credential in any task log
file. The figures are printed (``-s``) and quoted in ``docs/reliability.md``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import secrets
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_support import connection, leaks, start_emulator, without_airflow_30_mask_message

from airflow_provider_cfbilling.sinks import read_records

pytestmark = pytest.mark.e2e

TASKS = 50
PARALLELISM = 8
DAY = "2025-06-18"
RATE_LIMIT = {"max_requests": 20, "window_seconds": 60, "block_seconds": 2}
ACCOUNTS = [hashlib.md5(f"reliability-load-account-{index}".encode()).hexdigest() for index in range(TASKS)]


@pytest.fixture
def execution_api(airflow_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Airflow's Execution API on a loopback port, and the config that points workers at it."""
    import httpx
    import uvicorn
    from airflow.api_fastapi.app import create_app

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/execution/"
    bundles = json.loads(os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    # The executor path of dag.test() names the bundle "dags-folder" and passes the DAG file's
    # absolute path; Airflow 3.1's task runner only loads a DAG file inside the bundle's folder (it
    # reschedules the task three times, then fails it, when the file lies elsewhere), so the bundle
    # is the folder of the test DAGs, as "dags-folder" is the dags_folder in a deployment.
    bundles.append(
        {
            "name": "dags-folder",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "refresh_interval": 0},
        }
    )
    for name, value in {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": url,
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
    }.items():
        monkeypatch.setenv(name, value)

    server = uvicorn.Server(uvicorn.Config(create_app(apps="execution"), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the Execution API did not start"
            time.sleep(0.05)
        # The first request builds the versioned API (seconds): do it before tasks time out on it.
        assert httpx.get(f"{url}health", timeout=60).status_code == 200
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


def max_parallel(intervals: list[tuple[dt.datetime, dt.datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_fifty_mapped_tasks_through_local_executor_under_a_rate_limit(
    request, airflow_db, monkeypatch, tmp_path, capsys, caplog
):
    """Before Airflow 3.1 the same 50 tasks run in-process (``dag.test()`` without an executor):
    Airflow 2 refuses LocalExecutor on SQLite, the metadata DB of the suite, and 3.0's
    ``dag.test(use_executor=True)`` reads task states it has not refreshed (the tasks succeed
    through the Execution API; dag.test then sees them "queued" and fails them). Everything but
    the executor's own checks (a task process per task, tasks at once) is asserted on every
    version; ``make test-deploy`` runs LocalExecutor on PostgreSQL under a real scheduler."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from harness import prepared_dag, run_dag, task_states, xcom

    from airflow_provider_cfbilling.version_compat import AIRFLOW_V_3_1_PLUS

    through_executor = AIRFLOW_V_3_1_PLUS
    if through_executor:
        request.getfixturevalue("execution_api")
    emulator = start_emulator(clock_running=True)
    try:
        from airflow.executors.executor_loader import ExecutorLoader

        executor = type(ExecutorLoader.get_default_executor()).__name__ if through_executor else "in-process dag.test"
        assert not through_executor or executor == "LocalExecutor"
        emulator.set_rate_limit(**RATE_LIMIT)
        monkeypatch.setenv("AIRFLOW_CONN_CLOUDFLARE_DEFAULT", json.dumps(connection(emulator, account_id=None)))
        base = tmp_path / "lake"
        logical_date = dt.datetime(2025, 6, 19, tzinfo=dt.timezone.utc)
        conf = {"accounts": ACCOUNTS, "day": DAY, "base": f"file://{base}"}
        started = time.monotonic()
        if through_executor:
            dag = prepared_dag("reliability_load")
            dag_run = dag.test(logical_date=logical_date, run_conf=conf, use_executor=True)
        else:
            dag_run = run_dag("reliability_load", logical_date=logical_date, conf=conf)
        seconds = time.monotonic() - started
        log = emulator.request_log
    finally:
        emulator.stop()

    states = task_states(dag_run)
    assert Counter(states.values()) == {"success": TASKS + 1}, states

    with create_session() as session:
        instances = (
            session.query(TaskInstance).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id="usage").all()
        )
        intervals = [(ti.start_date, ti.end_date) for ti in instances]
        pids = {ti.pid for ti in instances}
    assert len(instances) == TASKS
    peak = 1  # in-process: one task at a time, in this process (Airflow 2 records no start_date there)
    if through_executor:
        peak = max_parallel(intervals)
        assert len(pids) == TASKS and os.getpid() not in pids, "each task ran in its own task process"
        assert peak >= 2, "the executor never ran two tasks at once"

    # Nothing lost, nothing doubled: every partition is exactly what the emulator says the day holds.
    total = 0
    for index, account in enumerate(ACCOUNTS):
        uri = f"file://{base}/account_id={account}/charge_date={DAY}/usage.jsonl"
        want = emulator.expected_records(account, DAY)
        assert want, account
        assert read_records(uri) == want, account
        summary = xcom(dag_run, "usage", map_index=index)
        assert summary["records"] == len(want) and summary["account_id"] == account
        total += len(want)
    files = sorted(str(path.relative_to(base)) for path in base.rglob("*") if path.is_file())
    objects = [name for name in files if not name.endswith(".manifest.json")]
    assert len(objects) == TASKS, "one object per partition, no temporary file left behind"
    assert len(files) == 2 * TASKS, "every object has its manifest, and nothing else is there"

    # Retry-After: after a 429, the same task (one account per task) waits before asking again.
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in log:
        by_account[entry["path"].split("/")[4]].append(entry)
    assert set(by_account) == set(ACCOUNTS)
    too_early = []
    for account, entries in by_account.items():
        assert entries[-1]["status"] == 200, account
        for entry, following in itertools.pairwise(entries):
            if entry["status"] == 429:
                waited = following["arrived"] - entry["arrived"]
                if waited < entry["retry_after"]:
                    too_early.append((account, entry["retry_after"], round(waited, 3)))
    assert too_early == [], too_early
    statuses = Counter(entry["status"] for entry in log)
    assert statuses[200] == TASKS
    assert 0 < statuses[429] < TASKS, statuses
    waits = [entry["retry_after"] for entry in log if entry["status"] == 429]

    logs = {
        str(path.relative_to(airflow_db)): path.read_text(errors="replace")
        for path in (airflow_db / "logs").rglob("*")
        if path.is_file() and f"dag_id={dag_run.dag_id}" in str(path)
    }
    if through_executor:
        assert len(logs) >= TASKS
    else:  # in-process tasks log to this process: what was captured is what a log file would hold
        captured = capsys.readouterr()
        logs = {**logs, "stdout": captured.out, "stderr": captured.err, "logging": caplog.text}
        assert "HTTP 429" in caplog.text, "the captured logs are the tasks' logs"
    assert leaks({where: without_airflow_30_mask_message(text) for where, text in logs.items()}) == []

    with capsys.disabled():
        print(
            f"\n[load] {TASKS} mapped tasks (+1 upstream) on {executor}"
            + (f" (parallelism {PARALLELISM})" if through_executor else "")
            + ": "
            f"{len(pids)} task processes, peak {peak} running at once, {seconds:.1f} s in dag.test"
            f"\n[load] requests to the emulator: {len(log)} ({statuses[200]} x 200, {statuses[429]} x 429, "
            f"Retry-After {sorted(Counter(waits).items())}); records landed {total} in {len(files)} partitions; "
            f"{len(logs)} task log files scanned"
        )
