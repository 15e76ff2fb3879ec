"""``make bench``'s SQL landing part: one month of v2 usage (about 100k records by default) into
PostgreSQL and SQLite, ``CloudflareUsageToSqlOperator`` against a hand-written ``executemany``
baseline (``sql_child.py`` says what each does), each run in a fresh interpreter and a fresh
table, repeated with the order rotated; records per second and peak resident memory.

PostgreSQL is a throwaway server started the way the tests start it (``tests/transfers/
pg_server.py``: Debian's binaries, a temporary directory, a free loopback port); without the
binaries the PostgreSQL rows say so and SQLite is still measured.

Alone (what ``bench/run.py --skip-landing --skip-imports`` runs)::

    .venv/bin/python bench/run.py --skip-landing --skip-imports --sql-sizes 10k --repeats 1
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import harness

sys.path.insert(0, str(harness.REPO / "tests" / "transfers"))

from pg_server import PostgresUnavailable, running_postgres

CHILD = str(harness.BENCH_DIR / "sql_child.py")
CONTENDERS = ("ours", "baseline")
DATABASES = ("postgres", "sqlite")
DEFAULT_SIZES = ("100k",)


@dataclass
class SqlRun:
    size: str
    database: str
    contender: str
    repeat: int
    ok: bool
    records: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    baseline_rss_kb: int = 0
    peak_rss_kb: int = 0
    failure: str = ""

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _run_child(
    contender: str,
    database: str,
    size: harness.Size,
    repeat: int,
    base_url: str,
    workdir: Path,
    server: Any,
    time_cap: float,
) -> SqlRun:
    token, account = harness.credentials()
    table = f"usage_{contender}"
    command = [
        harness.PYTHON,
        CHILD,
        contender,
        f"--database={database}",
        f"--table={table}",
        f"--base-url={base_url}",
        f"--token={token}",
        f"--account={account}",
        f"--start={harness.PERIOD_START}",
        f"--end={harness.PERIOD_END}",
    ]
    name = f"b_{size.label}_{contender}_{repeat}".replace(".", "_")
    if database == "postgres":
        server.create_database(name)
        command += [f"--pg-port={server.port}", f"--pg-dbname={name}"]
        connection = server.airflow_connection(name)
    else:
        path = workdir / f"{name}.db"
        command.append(f"--sqlite-path={path}")
        connection = {"conn_type": "sqlite", "host": str(path)}
    extra = {**harness.connection_env(base_url), "AIRFLOW_CONN_CFB_BENCH_DB": json.dumps(connection)}
    env = harness.child_env(str(workdir / "airflow_home"), extra)
    try:
        completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=harness.REPO, timeout=time_cap)
    except subprocess.TimeoutExpired:
        return SqlRun(size.label, database, contender, repeat, False, failure=f"passed the {time_cap:.0f} s time cap")
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = " | ".join(completed.stderr.strip().splitlines()[-3:])[-300:]
        return SqlRun(size.label, database, contender, repeat, False, failure=f"exit {completed.returncode}: {tail}")
    result = json.loads(lines[-1])
    return SqlRun(
        size.label,
        database,
        contender,
        repeat,
        True,
        records=result["records"],
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        baseline_rss_kb=result["baseline_rss_kb"],
        peak_rss_kb=result["peak_rss_kb"],
    )


def benchmark(sizes: list[harness.Size], repeats: int, workdir: Path, time_cap: float) -> tuple[list[SqlRun], str]:
    """Every run, and why PostgreSQL was not measured (empty when it was)."""
    runs: list[SqlRun] = []
    unavailable = ""
    with ExitStack() as stack:
        try:
            server = stack.enter_context(running_postgres())
            databases = DATABASES
        except PostgresUnavailable as error:
            server, databases, unavailable = None, ("sqlite",), str(error)
            print(f"  PostgreSQL not measured: {error}", flush=True)
        for size in sizes:
            print(f"\n== SQL landing {size.label}: emulator --zones {size.zones} into {', '.join(databases)}")
            with harness.emulator_process(size.zones) as base_url:
                _warm_up(base_url)
                for repeat in range(repeats):
                    for database in databases:
                        order = CONTENDERS if repeat % 2 == 0 else CONTENDERS[::-1]
                        for contender in order:
                            run = _run_child(contender, database, size, repeat, base_url, workdir, server, time_cap)
                            runs.append(run)
                            _print(run, repeats)
    return runs, unavailable


def _warm_up(base_url: str) -> None:
    """The emulator's first response at a size fills its caches: serve it once, unmeasured."""
    import httpx

    token, account = harness.credentials()
    params = {"from": harness.PERIOD_START, "to": harness.PERIOD_END}
    headers = {"Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=600) as client,
        client.stream("GET", f"/accounts/{account}/billable/usage", params=params) as response,
    ):
        for _ in response.iter_raw():
            pass


def _print(run: SqlRun, repeats: int) -> None:
    label = f"  {run.database:<8} {run.contender:<8} {run.repeat + 1}/{repeats}"
    if not run.ok:
        print(f"{label}: FAILED ({run.failure})", flush=True)
        return
    print(
        f"{label}: {run.records:>9,} rows {run.seconds:7.2f} s {run.records_per_second:>9,.0f} rows/s "
        f"cpu {run.cpu_seconds:6.2f} s peak {run.peak_rss_kb / 1024:6.0f} MB",
        flush=True,
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(runs: list[SqlRun], unavailable: str) -> str:
    lines = [
        "### Landing one month of v2 usage in a SQL table (medians)",
        "",
        "| size | database | path | runs | rows in the table | wall s | rows/s | client CPU s | peak RSS MB "
        "| peak - before MB |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[str, str, str], list[SqlRun]] = {}
    for run in runs:
        groups.setdefault((run.size, run.database, run.contender), []).append(run)
    for (size, database, contender), attempted in groups.items():
        done = [run for run in attempted if run.ok]
        if not done:
            lines.append(
                f"| {size} | {database} | {contender} | 0/{len(attempted)} | {attempted[0].failure} | | | | | |"
            )
            continue
        counts = ", ".join(f"{count:,}" for count in sorted({run.records for run in done}))
        lines.append(
            f"| {size} | {database} | {contender} | {len(done)}/{len(attempted)} | {counts} | "
            f"{_median([r.seconds for r in done]):.2f} | {_median([r.records_per_second for r in done]):,.0f} | "
            f"{_median([r.cpu_seconds for r in done]):.2f} | {_median([r.peak_rss_kb / 1024 for r in done]):.0f} | "
            f"{_median([(r.peak_rss_kb - r.baseline_rss_kb) / 1024 for r in done]):.0f} |"
        )
    lines += [
        "",
        "Ours against the hand-written `executemany` baseline (above 1: ours is faster / uses more memory):",
        "",
    ]
    for size, database in dict.fromkeys((run.size, run.database) for run in runs):
        ours = [r for r in groups.get((size, database, "ours"), []) if r.ok]
        base = [r for r in groups.get((size, database, "baseline"), []) if r.ok]
        if ours and base:
            speed = _median([r.records_per_second for r in ours]) / _median([r.records_per_second for r in base])
            memory = _median([r.peak_rss_kb for r in ours]) / _median([r.peak_rss_kb for r in base])
            lines.append(f"- {size}, {database}: rows/s {speed:.2f}x the baseline's, peak RSS {memory:.2f} of it")
    if unavailable:
        lines.append(f"- PostgreSQL not measured: {unavailable}")
    return "\n".join(lines)


__all__ = ["DEFAULT_SIZES", "SqlRun", "benchmark", "report"]
