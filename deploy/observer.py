"""Watching the deployment from outside: its metadata database and the logs its components write.

What it holds: :class:`Observer`, which polls PostgreSQL for task instance states and tries, trigger
rows (and the triggerer jobs they were assigned to) and runs, remembering what it saw deferred;
and readers of the task and trigger logs Airflow writes under ``$AIRFLOW_HOME/logs``
(:func:`task_log`, :func:`compact_task_log`, :func:`trigger_log_events`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TiKey = tuple[str, str, int]  # run_id, task_id, map_index
TERMINAL_FAILURES = ("failed", "upstream_failed", "removed")


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


def task_log_folder(home: Path, dag_id: str, key: TiKey) -> Path:
    """Where Airflow writes a task instance's logs (and the triggerer its trigger's)."""
    run_id, task_id, map_index = key
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    return folder / f"map_index={map_index}" if map_index >= 0 else folder


def task_log(home: Path, dag_id: str, key: TiKey) -> Path | None:
    found = sorted(glob.glob(str(task_log_folder(home, dag_id, key) / "attempt=*.log")))
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


def trigger_log_events(home: Path, dag_id: str, key: TiKey) -> list[tuple[str, str]]:
    """``(file name, event)`` of every line of the trigger logs next to a task instance's logs."""
    events = []
    for path in sorted(task_log_folder(home, dag_id, key).glob("attempt=*.log.trigger.*.log")):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                events.append(
                    (path.name, f"{record.get('event')}" + (f" {record['result']}" if "result" in record else ""))
                )
    return events
