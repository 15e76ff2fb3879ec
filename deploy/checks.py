"""The checks of the deployment test, on top of :class:`deployment.Deployment`.

What it holds: :class:`Checks`, the steps ``deploy/run.py`` runs in order: the first backfill (the
unpublished days' sensors all deferred at once, then released a day at a time by moving the
emulator's clock), the task instances (all successful, no retries), the triggerer (rows, jobs and
each deferred sensor's trigger log), the partitions and their manifests against the emulator's
expected records, the re-run that must leave every object untouched, the emulator's request log
and the REST API; with the CeleryExecutor also where the task instances ran (both workers, each
one's logs only on its own worker) and the Celery result backend. Each check adds one line to the
report or raises :class:`DeployError`.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
import time

from airflow_components import PARALLELISM
from deployment import DAG_ID, POOL_SLOTS, SENSORS_PER_RUN, TRIGGER_CLASSPATH, Deployment
from lake import FileState, manifest_key, partition_key
from observer import task_log_folder
from supervisor import DeployError, say

# Celery states a task's result passes through before its final one (SUCCESS, FAILURE, REVOKED).
UNFINISHED_CELERY_STATES = frozenset({"PENDING", "RECEIVED", "STARTED", "RETRY"})
RESULT_SETTLE_SECONDS = 60


class Checks(Deployment):
    """The deployment and the checks run on it."""

    # -- backfill 1: days become available while the sensors wait in the triggerer ---------

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

    def check_partitions(self) -> dict[str, FileState]:
        assert self.emulator is not None
        s = self.settings
        lake = self.lake
        states: dict[str, FileState] = {}
        records = 0
        same_bytes = 0
        for account_id in s.accounts:
            for day in s.all_days:
                key = partition_key(account_id, day)
                data = lake.read(key)
                if data is None:
                    raise DeployError(f"partition missing: {lake.describe(key)}")
                landed = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
                expected = self.emulator.expected(account_id=account_id, day=day.isoformat(), source="v2")
                if not expected:
                    raise DeployError(f"the emulator has no records for {account_id} on {day}")
                if landed != expected:
                    extra = len(landed) - len(expected)
                    raise DeployError(
                        f"{lake.describe(key)}: {len(landed)} records differ from the emulator's {len(expected)} "
                        f"for {day} (difference in count {extra:+d})"
                    )
                canonical = "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in expected)
                same_bytes += canonical.encode() == data
                records += len(landed)
                states[key] = lake.state(key)
                # Its manifest, written after it, describes exactly these bytes.
                manifest = manifest_key(key)
                manifest_data = lake.read(manifest)
                if manifest_data is None:
                    raise DeployError(f"manifest missing: {lake.describe(manifest)}")
                described = json.loads(manifest_data)
                if (described.get("sha256"), described.get("records")) != (states[key].sha256, len(landed)):
                    raise DeployError(f"{lake.describe(manifest)} does not describe {lake.describe(key)}: {described}")
                states[manifest] = lake.state(manifest)
        files = lake.keys()
        if files != sorted(states):
            raise DeployError(f"unexpected files in the lake: {sorted(set(files) - set(states))}")
        self.report.add(
            f"partitions: {len(states) // 2} ({len(s.accounts)} accounts x {s.days} days), {records} records, each "
            f"equal to /__emulator__/expected for its account and day ({same_bytes} byte-identical to the emulator's "
            "JSON lines), each with a manifest that describes it; no other file in the lake"
        )
        return states

    def second_backfill(self, before: dict[str, FileState]) -> None:
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
        partitions = sum(1 for key in before if not key.endswith(".manifest.json"))
        if rerun != partitions:
            raise DeployError(f"only {rerun} of {partitions} land_usage task instances ran again")
        self.check_task_instances("backfill 2", try_number=2)
        after = self.check_partitions()
        # The data did not change, so a re-run rewrites nothing: every object and manifest keeps
        # its bytes and its identity (on disk its inode and modification time).
        touched = [path for path in before if before[path] != after[path]]
        if touched:
            raise DeployError(f"{len(touched)} file(s) of unchanged days were rewritten on re-run: {touched[:3]}")
        self.report.add(
            f"re-run: {rerun} land_usage task instances ran again; all {len(after)} objects and manifests untouched "
            f"(same SHA-256, {self.lake.identity_label}): unchanged days are not rewritten"
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

    # -- CeleryExecutor ------------------------------------------------------------------------

    def check_workers(self, label: str) -> None:
        """Every task instance ran on one of the Celery workers, both workers ran some, and each
        task instance's log is in the log folder of the worker that ran it (the workers share no
        disk with each other or with the scheduler, whose log folder holds only trigger logs)."""
        assert self.observer is not None and self.airflow is not None
        workers = {worker.name: worker for worker in self.workers}
        rows = self.observer.query(
            "SELECT run_id, task_id, map_index, try_number, hostname FROM task_instance WHERE dag_id = %s", (DAG_ID,)
        )
        per_worker = collections.Counter(hostname for *_, hostname in rows)
        elsewhere = {host: count for host, count in per_worker.items() if host not in workers}
        if elsewhere:
            raise DeployError(f"{label}: task instances ran outside the Celery workers: {elsewhere}")
        idle = sorted(set(workers) - set(per_worker))
        if idle:
            raise DeployError(f"{label}: Celery worker(s) {idle} ran no task instance: {dict(per_worker)}")
        for run_id, task_id, map_index, try_number, hostname in rows:
            folder = task_log_folder(workers[hostname].airflow_home, DAG_ID, (run_id, task_id, map_index))
            if not (folder / f"attempt={try_number}.log").is_file():
                raise DeployError(f"{label}: no log of {(run_id, task_id, map_index)} try {try_number} on {hostname}")
        local = [p for p in (self.airflow.home / "logs").rglob("attempt=*.log") if ".log.trigger." not in p.name]
        if local:
            raise DeployError(f"{label}: task logs in the scheduler's log folder, not a worker's: {local[:3]}")
        self.report.add(
            f"{label}: task instances by worker (task_instance.hostname, from each worker's hostname_callable): "
            + ", ".join(f"{host} {count}" for host, count in sorted(per_worker.items()))
            + "; each one's log only in the AIRFLOW_HOME/logs of the worker that ran it"
        )

    def check_result_backend(self) -> None:
        """The Celery result backend is PostgreSQL: every Celery task's result is there, successful.

        A worker stores a task's final status after the Airflow task has reported its own state to
        the API server, so the backfill can be seen as done while the last results still read
        STARTED: those get up to ``RESULT_SETTLE_SECONDS`` to become final (and must end SUCCESS).
        """
        assert self.observer is not None
        deadline = time.monotonic() + RESULT_SETTLE_SECONDS
        while True:
            try:
                rows = self.observer.query("SELECT status, count(*) FROM celery_taskmeta GROUP BY status")
            except Exception as error:
                raise DeployError(f"no Celery results in PostgreSQL (celery_taskmeta): {error}")
            statuses = dict(rows)
            if not set(statuses) & UNFINISHED_CELERY_STATES or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not statuses or set(statuses) != {"SUCCESS"}:
            raise DeployError(
                f"Celery results in PostgreSQL (celery_taskmeta), {RESULT_SETTLE_SECONDS} s after the backfill: {statuses}"
            )
        self.report.add(
            f"Celery result backend (PostgreSQL, table celery_taskmeta): {statuses['SUCCESS']} results, all SUCCESS"
        )
