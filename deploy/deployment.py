"""The deployment under test: bringing it up, waiting on it, backfilling, and explaining failures.

What it holds: the test's :class:`Settings` and :class:`Report`; :class:`Deployment`, which starts
PostgreSQL, the emulator and Airflow's components through the run's supervisor (with the
CeleryExecutor also Redis, the S3-protocol server for the lake and two Celery workers), waits on
conditions while watching for dead components and failed task instances, creates backfills and
waits for them, and, when a task instance fails, gathers what CI needs to find the cause (its rows,
task and trigger logs, audit log and the scheduler's lines). The checks live in ``checks.py``.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import re
import time
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_components import (
    EXAMPLE_DAGS,
    LAKE_CONN_ID,
    Airflow,
    Worker,
    airflow_environment,
    celery_environment,
    clean_environment,
    start_airflow,
    start_workers,
    workers_ready,
)
from components import Postgres, start_emulator, start_postgres, start_redis, start_s3
from lake import Lake, LocalLake, S3Lake
from observer import Observer, TiKey, compact_task_log, task_log, trigger_log_events
from supervisor import DeployError, Interrupted, Processes, free_port, say, tail

if TYPE_CHECKING:
    from airflow_provider_cfbilling.emulator.client import EmulatorClient

DAG_ID = "cloudflare_usage_many_accounts"
DAG_FILE = "cloudflare_usage_many_accounts.py"
SENSORS_PER_RUN = 1  # the example gates each day with one sensor (on the default connection's account)
POOL = "cloudflare_api"
# The example DAG's start_date: backfills must not start before it.
DAG_FIRST_DAY = dt.date(2025, 1, 1)
POOL_SLOTS = 4
TRIGGER_CLASSPATH = "airflow_provider_cfbilling.triggers.billing.CloudflareUsageAvailableTrigger"
LAKE_BUCKET, LAKE_PREFIX = "cfbilling-lake", "lake"  # the CeleryExecutor run's lake
# The emulator's accounts (fake, public ids; see docs/emulator.md).
ACCOUNTS = (
    "023e105f4ecef8ad9ca31a8372d0c353",
    "0123456789abcdef0123456789abcdef",
    "fedcba9876543210fedcba9876543210",
    "00112233445566778899aabbccddeeff",
    "a1b2c3d4e5f60718293a4b5c6d7e8f90",
)


@dataclass
class Settings:
    first_day: dt.date
    days: int
    pending_days: int
    accounts: tuple[str, ...]
    delay_hours: float
    poll_seconds: float
    deadline: float  # time.monotonic() value
    executor: str = "local"  # or "celery"

    @property
    def celery(self) -> bool:
        return self.executor == "celery"

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
        self.emulator: EmulatorClient | None = None
        self.airflow: Airflow | None = None
        self.observer: Observer | None = None
        self.lake: Lake = LocalLake(workdir / "lake")
        self.workers: list[Worker] = []
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
        homes = [self.airflow.home, *(worker.airflow_home for worker in self.workers)]
        log = next(filter(None, (task_log(home, DAG_ID, key) for home in homes)), None)
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

    def trigger_log_events(self, key: TiKey) -> list[tuple[str, str]]:
        assert self.airflow is not None
        return trigger_log_events(self.airflow.home, DAG_ID, key)

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
        base_env = clean_environment()
        t0 = time.monotonic()
        self.postgres = start_postgres(self.processes, self.workdir, base_env, timeout=60)
        initial_clock = s.available_at(s.pending[0]) - dt.timedelta(hours=1)
        self.emulator = start_emulator(self.processes, base_env, initial_clock, s.delay_hours)
        say(
            f"Emulator at {self.emulator.base_url}, clock {self.emulator.now()} "
            f"(published through {s.pending[0] - dt.timedelta(days=1)}; {', '.join(map(str, s.pending))} not yet)"
        )
        if s.celery:
            redis = start_redis(self.processes, self.workdir, base_env)
            s3 = start_s3(self.processes, base_env, LAKE_BUCKET)
            self.lake = S3Lake(s3.client(), LAKE_BUCKET, LAKE_PREFIX)
            lake_uri = f"s3://{LAKE_CONN_ID}@{LAKE_BUCKET}/{LAKE_PREFIX}"  # the connection named in the URI
        else:
            (self.workdir / "lake").mkdir()
            lake_uri = (self.workdir / "lake").as_uri()
        api_port = free_port()
        env, username, password = airflow_environment(
            self.workdir, self.postgres, self.emulator, api_port, s.accounts, s.poll_seconds, lake_uri
        )
        if s.celery:
            celery_environment(env, redis, self.postgres, s3, lake_uri)
        self.airflow = Airflow(
            self.workdir / "airflow-home", env, f"http://127.0.0.1:{api_port}", username, password, self.processes
        )
        say("airflow db migrate (PostgreSQL)")
        self.airflow.cli(["db", "migrate"], timeout=300)
        self.airflow.cli(["pools", "set", POOL, str(POOL_SLOTS), "Cloudflare API: 1,200 requests / 5 min per token"])
        self.report.durations["postgres + emulator + db migrate"] = time.monotonic() - t0

        t0 = time.monotonic()
        start_airflow(self.airflow, api_port)
        if s.celery:
            self.workers = start_workers(self.airflow, self.workdir)
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
        if s.celery:
            self.wait("both Celery workers to be ready", lambda: workers_ready(self.workers), timeout=120, interval=1.0)
            self.report.add(
                f"{len(self.workers)} Celery workers ready ({', '.join(w.name for w in self.workers)}), "
                f"broker Redis, lake {lake_uri}"
            )
        self.report.durations["components up"] = time.monotonic() - t0
        say(
            "API server, scheduler, DAG processor and triggerer are up and healthy"
            + (f"; Celery workers {', '.join(w.name for w in self.workers)} ready" if self.workers else "")
        )

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

    # -- backfills ---------------------------------------------------------------------------

    def backfill(self, reprocess: str | None) -> int:
        """``airflow backfill create``; returns the new backfill's id."""
        assert self.airflow is not None and self.observer is not None
        s = self.settings
        before = {row[0] for row in self.observer.query("SELECT id FROM backfill WHERE dag_id = %s", (DAG_ID,))}
        arguments = [
            *("backfill", "create", "--dag-id", DAG_ID),
            *("--from-date", s.all_days[0].isoformat(), "--to-date", s.all_days[-1].isoformat()),
            *("--max-active-runs", str(s.days)),
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
