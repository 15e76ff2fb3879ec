"""``make demo``: one real Airflow run of the daily example DAG against the local emulator.

What it does, in order:

1. starts the Cloudflare billing emulator (``python -m airflow_provider_cfbilling.emulator``) on a
   free port, in its own process group, with its clock set so that the demo day is published;
2. prepares a throwaway ``AIRFLOW_HOME`` (``.demo/airflow-home``, deleted and recreated on every
   run) with a SQLite metadata database (``airflow db migrate``);
3. points the ``cloudflare_default`` connection at the emulator (``AIRFLOW_CONN_CLOUDFLARE_DEFAULT``)
   and the lake at ``.demo/lake`` (``AIRFLOW_VAR_CLOUDFLARE_LAKE_ROOT``);
4. runs ``airflow dags test cloudflare_usage_daily <day after the demo day>``: a manual run of a
   daily ``CronDataIntervalTimetable`` covers the day before its date, i.e. the demo day;
5. runs ``airflow dags test cloudflare_usage_to_sql <same date>``: the same day (and the week
   before it) into the SQLite file ``.demo/cloudflare_usage.db`` through
   ``CloudflareUsageToSqlOperator`` (connection ``cloudflare_usage_db``);
6. stops the emulator (always, also on failure or Ctrl-C);
7. reads the landed partition back and prints that day's usage by product family and metric, then
   a few rows of the SQL table.

Airflow's own output goes to ``.demo/airflow.log`` (printed on failure). Nothing is asked, no
process is left behind, and running it again starts from scratch.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Standard library only: the demo process never imports Airflow itself.
from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_TOKEN
from airflow_provider_cfbilling.emulator.cli import command as emulator_command
from airflow_provider_cfbilling.emulator.cli import wait_for_ready_line

REPO_ROOT = Path(__file__).resolve().parents[1]
# The process supervision of `make test-deploy` (deploy/supervisor.py; deploy/ is not a package, so
# its folder is on sys.path just for this import): own sessions, bounded commands, stops by group.
sys.path.insert(0, str(REPO_ROOT / "deploy"))
try:
    from supervisor import DeployError, Processes, RunIdentity
finally:
    sys.path.remove(str(REPO_ROOT / "deploy"))

DAG_ID = "cloudflare_usage_daily"
SQL_DAG_ID = "cloudflare_usage_to_sql"
SQL_TABLE = "cloudflare_usage"  # the SQL example DAG's table
DEMO_DAY = dt.date(2025, 6, 18)
# The emulator's default account and its user-owned API token with Billing Read.
ACCOUNT_ID = DEFAULT_ACCOUNT_ID
TOKEN = DEFAULT_TOKEN


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


# --------------------------------------------------------------------------------------------
# The emulator, as a subprocess
# --------------------------------------------------------------------------------------------


def supervisor(logs: Path) -> Processes:
    """A supervisor for the demo's processes (in memory: the demo stops them itself, also on SIGTERM)."""
    return Processes(RunIdentity(uuid.uuid4().hex, None), logs)


@contextmanager
def running_emulator(
    clock: dt.datetime, log_path: Path, timeout: float = 30.0, processes: Processes | None = None
) -> Iterator[tuple[str, int]]:
    """Start the emulator CLI, wait for its ready line, yield ``(base_url, pid)``; always stop it
    (its process group, then whatever of it is left)."""
    processes = processes or supervisor(log_path.parent)
    log_path.write_bytes(b"")
    command = emulator_command("--clock", clock.strftime("%Y-%m-%dT%H:%M:%SZ"))
    managed = processes.start("emulator", command, dict(os.environ), stdout=subprocess.PIPE, log_path=log_path)
    try:
        assert managed.process.stdout is not None
        try:
            base_url = wait_for_ready_line(managed.process.stdout, timeout)
        except TimeoutError:
            raise DemoError(f"the emulator did not start within {timeout:g} s (log: {log_path})") from None
        except EOFError:
            raise DemoError(f"the emulator exited with status {managed.process.wait()} (log: {log_path})") from None
        yield base_url, managed.process.pid
    finally:
        processes.stop(["emulator"], grace=10)
        processes.identity.kill_all()


# --------------------------------------------------------------------------------------------
# Airflow, through its CLI
# --------------------------------------------------------------------------------------------


def airflow_environment(airflow_home: Path, base_url: str, lake: Path, database: Path) -> dict[str, str]:
    """The inherited environment minus any Airflow settings, plus the demo's own."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    connection = {
        "conn_type": "cloudflare",
        "host": base_url,
        "password": TOKEN,
        "extra": {"account_id": ACCOUNT_ID},
    }
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_CLOUDFLARE_DEFAULT": json.dumps(connection),
            "AIRFLOW_VAR_CLOUDFLARE_LAKE_ROOT": f"file://{lake}",
            # The SQL example DAG's database: a SQLite file.
            "AIRFLOW_CONN_CLOUDFLARE_USAGE_DB": json.dumps({"conn_type": "sqlite", "host": str(database)}),
        }
    )
    return env


def airflow(processes: Processes, arguments: Sequence[str], env: dict[str, str], log_path: Path) -> None:
    """Run ``airflow <arguments>`` in a session of its own, appending its output to the log;
    DemoError on failure."""
    shown = f"airflow {' '.join(arguments)}"
    try:
        processes.run([sys.executable, "-m", "airflow", *arguments], env, log_path.name, timeout=600, display=shown)
    except DeployError as error:
        print("\n".join(log_path.read_text(errors="replace").splitlines()[-40:]), file=sys.stderr)
        raise DemoError(f"{str(error).splitlines()[0]} (log: {log_path})") from None


# --------------------------------------------------------------------------------------------
# The landed partition, read back
# --------------------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def usage_table(records: Sequence[dict[str, Any]]) -> str:
    """Usage by product family and metric: rows, summed quantity and unit, as aligned text."""
    totals: dict[tuple[str, str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for record in records:
        key = (
            str(record.get("x_ProductFamilyName") or "-"),
            str(record.get("x_BillableMetricId") or "-"),
            str(record.get("ConsumedUnit") or ""),
        )
        totals[key][0] += 1
        totals[key][1] += float(record.get("ConsumedQuantity") or 0)
    header = ("product family", "metric", "records", "quantity", "unit")
    rows = [
        (family, metric, str(int(count)), f"{quantity:,.2f}".rstrip("0").rstrip("."), unit)
        for (family, metric, unit), (count, quantity) in sorted(totals.items())
    ]
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    right = {2, 3}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[index]) if index in right else cell.ljust(widths[index])
            for index, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


SQL_COLUMNS = (
    "charge_period_start",
    "x_billable_metric_id",
    "x_zone_name",
    "consumed_quantity",
    "consumed_unit",
    "row_key",
)


def sql_rows(database: Path, day: dt.date, limit: int = 6) -> tuple[int, int, list[tuple[Any, ...]]]:
    """The table's row count, the day's row count and a few of the day's rows (``SQL_COLUMNS``)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        total = connection.execute(f"SELECT COUNT(*) FROM {SQL_TABLE}").fetchone()[0]
        start, end = f"{day} 00:00:00", f"{day + dt.timedelta(days=1)} 00:00:00"
        where = "WHERE charge_period_start >= ? AND charge_period_start < ?"
        count = connection.execute(f"SELECT COUNT(*) FROM {SQL_TABLE} {where}", (start, end)).fetchone()[0]
        rows = connection.execute(
            f"SELECT {', '.join(SQL_COLUMNS)} FROM {SQL_TABLE} {where} ORDER BY x_billable_metric_id, x_zone_name "
            f"LIMIT {int(limit)}",
            (start, end),
        ).fetchall()
    finally:
        connection.close()
    return total, count, rows


def rows_table(rows: Sequence[tuple[Any, ...]]) -> str:
    """Rows of ``SQL_COLUMNS`` as aligned text (NULL shown as "-")."""
    cells = [SQL_COLUMNS, *(tuple("-" if value is None else str(value) for value in row) for row in rows)]
    widths = [max(len(row[column]) for row in cells) for column in range(len(SQL_COLUMNS))]
    lines = ["  ".join(cell.ljust(widths[index]) for index, cell in enumerate(row)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------


def run_demo(workdir: Path, day: dt.date = DEMO_DAY) -> Path:
    """The whole demo; returns the landed file. Raises DemoError when a step fails."""
    started = time.monotonic()
    workdir = workdir.resolve()
    airflow_home = workdir / "airflow-home"
    lake = workdir / "lake"
    database = workdir / "cloudflare_usage.db"
    for directory in (airflow_home, lake):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    database.unlink(missing_ok=True)
    airflow_log = workdir / "airflow.log"
    airflow_log.write_text("")
    # The day is published 6 h after it ends (emulator default); noon of the next day is past that.
    clock = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), tzinfo=dt.timezone.utc)

    say(f"Starting the Cloudflare billing emulator (clock {clock:%Y-%m-%d %H:%M} UTC)")
    processes = supervisor(workdir)
    with running_emulator(clock, workdir / "emulator.log", processes=processes) as (base_url, pid):
        say(f"Emulator (pid {pid}) listening on {base_url}")
        env = airflow_environment(airflow_home, base_url, lake, database)
        say(f"Creating the Airflow metadata database in {airflow_home}")
        airflow(processes, ["db", "migrate"], env, airflow_log)
        run_date = (day + dt.timedelta(days=1)).isoformat()
        say(f"airflow dags test {DAG_ID} {run_date}  (lands {day}; Airflow's output: {airflow_log})")
        airflow(processes, ["dags", "test", DAG_ID, run_date], env, airflow_log)
        say(f"airflow dags test {SQL_DAG_ID} {run_date}  (lands {day} and the week before it into {database})")
        airflow(processes, ["dags", "test", SQL_DAG_ID, run_date], env, airflow_log)
    say(f"Emulator (pid {pid}) stopped")

    landed = lake / "usage_v2" / f"account_id={ACCOUNT_ID}" / f"charge_date={day.isoformat()}" / "usage.jsonl"
    if not landed.is_file():
        raise DemoError(f"the run succeeded but {landed} is missing (log: {airflow_log})")
    records = read_jsonl(landed)
    print()
    print(f"Landed {len(records)} records ({landed.stat().st_size:,} bytes) of account {ACCOUNT_ID} for {day}:")
    print(f"  {landed}")
    print("  (with the 7 days before it, re-checked by the DAG's look-back, each next to its manifest")
    print(f"  _usage.jsonl.manifest.json; lake root file://{lake}; every file: find {lake} -type f)")
    print()
    print(f"Cloudflare usage on {day} by product family and metric")
    print()
    print(usage_table(records))
    print()
    if not database.is_file():
        raise DemoError(f"the SQL run succeeded but {database} is missing (log: {airflow_log})")
    total, count, rows = sql_rows(database, day)
    print(
        f"SQL table {SQL_TABLE} in {database}: {total} rows (the day and the 7 before it), {count} of them for {day}."
    )
    print(f"A few of {day}'s rows (every column: sqlite3 {database} 'SELECT * FROM {SQL_TABLE}'):")
    print()
    print(rows_table(rows))
    print()
    say(f"Done in {time.monotonic() - started:.0f} s")
    return landed


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--workdir", type=Path, default=REPO_ROOT / ".demo", help="where AIRFLOW_HOME, the lake and logs go"
    )
    parser.add_argument("--day", type=dt.date.fromisoformat, default=DEMO_DAY, help="the UTC day to land")
    args = parser.parse_args(argv)
    # A SIGTERM (a CI timeout, a killed `make`) unwinds like Ctrl-C, so the emulator is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_demo(args.workdir, args.day)
    except DemoError as error:
        print(f"demo failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
