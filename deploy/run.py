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

With ``--executor celery`` (``make test-deploy-celery``) the same test runs on the CeleryExecutor:
Redis (Debian's ``redis-server``, no persistence) as the broker, PostgreSQL also as the result
backend, two ``airflow celery worker`` processes that share nothing local (each its own ``HOME``,
``TMPDIR``, working directory and ``AIRFLOW_HOME``, so its own log folder, and its own hostname in
``task_instance.hostname``), and the lake on an S3-protocol server (moto, a versioned bucket,
reached through an Airflow ``aws`` connection). On top of the checks above it shows that both
workers ran task instances and that each task log is on the worker that ran it; the re-run check
compares version ids instead of inodes.

Teardown: every process it starts gets a session (process group) of its own and a marker in its
environment; on success, failure, timeout (``--timeout``) and SIGINT/SIGTERM/SIGHUP the Airflow
components (and workers) get SIGTERM, then SIGKILL, in their groups, then the emulator (and Redis
and the S3 server) and PostgreSQL; then every process still in one of the run's sessions or
carrying the marker (task processes start process groups of their own, and Airflow's process
titles overwrite the environment) is killed by pid, and the temporary directory is removed. If the
driver itself is killed outright, its direct children get SIGKILL from the kernel
(``PR_SET_PDEATHSIG``) and a watchdog process (its own session, waiting for its stdin pipe from the
driver to close) kills the rest and removes the directory; the next run also clears what a killed
run left.

The modules next to this entry point: ``supervisor.py`` (processes, watchdog, teardown),
``components.py`` (PostgreSQL, the emulator, Redis, the S3 server), ``airflow_components.py``
(Airflow's configuration, components, Celery workers, CLI and REST API), ``observer.py`` (the
metadata database and the logs), ``lake.py`` (the lake as the checks read it), ``deployment.py``
(bring-up, waiting, backfills) and ``checks.py`` (the checks).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import signal
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from typing import Any

from airflow_components import AIRFLOW_COMPONENTS
from checks import Checks
from deployment import ACCOUNTS, DAG_FIRST_DAY, DAG_ID, Report, Settings
from supervisor import (
    STARTED,
    DeployError,
    Interrupted,
    Processes,
    RunIdentity,
    new_workdir,
    say,
    start_watchdog,
    sweep_stale_workdirs,
    tail,
    teardown,
)

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
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
    parser.add_argument(
        "--executor",
        choices=("local", "celery"),
        default="local",
        help="local: LocalExecutor, lake on disk (default); celery: CeleryExecutor with Redis and two "
        "workers that share nothing local, lake on an S3-protocol server",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, lake) for inspection")
    args = parser.parse_args(argv)
    if not 1 <= args.pending_days < args.days:
        parser.error("--pending-days must be at least 1 and less than --days")
    last_day = args.first_day + dt.timedelta(days=args.days - 1)
    if not (args.first_day >= DAG_FIRST_DAY and last_day < dt.datetime.now(dt.timezone.utc).date()):
        parser.error(f"the days must lie between {DAG_FIRST_DAY} (the DAG's start date) and yesterday")
    return args


def run_checks(deployment: Checks) -> None:
    """The test, step by step; the first failing step raises."""
    deployment.start()
    deployment.check_parsing()
    deployment.first_backfill()
    deployment.check_task_instances("backfill 1", try_number=1)
    if deployment.settings.celery:
        deployment.check_workers("backfill 1")
    deployment.check_triggerer()
    before = deployment.check_partitions()
    deployment.second_backfill(before)
    if deployment.settings.celery:
        deployment.check_workers("backfill 2")
        deployment.check_result_backend()
    deployment.check_requests()
    deployment.check_rest_api()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    teardown_budget = 60.0
    settings = Settings(
        first_day=args.first_day,
        days=args.days,
        pending_days=args.pending_days,
        accounts=ACCOUNTS[: args.accounts],
        delay_hours=args.availability_delay_hours,
        poll_seconds=args.poll_seconds,
        deadline=STARTED + max(60.0, args.timeout - teardown_budget),
        executor=args.executor,
    )

    def on_signal(signum: int, frame: Any) -> None:
        raise Interrupted(f"received {signal.Signals(signum).name}")

    for sig in SIGNALS:
        signal.signal(sig, on_signal)

    sweep_stale_workdirs()
    marker = uuid.uuid4().hex
    workdir = new_workdir(marker)
    identity = RunIdentity(marker, workdir)
    identity.save()
    guard = start_watchdog(workdir)
    logs = workdir / "logs"
    logs.mkdir()
    processes = Processes(identity, logs)
    report = Report()
    deployment = Checks(settings, workdir, processes, report)
    outcome, code = "FAILED", 1
    failure = "the driver stopped before its first check"
    say(
        f"Deployment test ({settings.executor} executor): {DAG_ID}, {settings.days} days from {settings.first_day}, "
        f"{len(settings.accounts)} accounts; workdir {workdir}"
    )
    try:
        run_checks(deployment)
        outcome, code = "PASSED", 0
    except DeployError as error:
        failure = f"DEPLOYMENT CHECK FAILED: {error}"
    except Interrupted as error:
        failure = f"INTERRUPTED: {error}"
        code = 124 if "timeout" in str(error) else 130
    except Exception as error:  # a bug in the driver itself: still tear down
        failure = f"DEPLOYMENT TEST ERROR: {type(error).__name__}: {error}\n{traceback.format_exc()}"
    finally:
        for sig in SIGNALS:
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
        with contextlib.suppress(Exception):
            if deployment.emulator is not None:
                deployment.emulator.close()
        workers = tuple(worker.managed.name for worker in deployment.workers)
        order = [(AIRFLOW_COMPONENTS + workers, 20.0), (("emulator", "s3", "redis"), 5.0), (("postgres",), 15.0)]
        keep = args.keep or (code != 0 and os.environ.get("CFBILLING_DEPLOY_KEEP_ON_FAILURE") == "1")
        done = teardown(processes, guard, order, keep=keep)
        report.durations["teardown"] = time.monotonic() - teardown_started
        if done.remaining:
            outcome, code = "FAILED", 1
            print(f"processes left behind (pids {done.remaining})", file=sys.stderr)
        print_summary(outcome, code, failure, report, done.outlived, len(done.leftovers), done.remaining, workdir, keep)
    return code


def print_summary(
    outcome: str,
    code: int,
    failure: str,
    report: Report,
    outlived: list[str],
    swept: int,
    remaining: list[int],
    workdir: object,
    kept: bool,
) -> None:
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
        + f"; {swept} task/child process(es) swept by pid; "
        f"{len(remaining)} left; workdir {'kept at ' + str(workdir) if kept else 'removed'}"
    )
    print("=" * 100)
    # Every summary line above is one check that passed; a failure stops at the first one.
    print(f"test-deploy: {len(report.lines)} passed, {0 if code == 0 else 1} failed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
