"""``make bench``: our operator against the official SDK and plain httpx, and the import cost.

Two benchmarks, each run in fresh subprocesses and repeated with the contenders interleaved (run
1 of every contender, then run 2, ... with the order rotated each time), so that the noise of a
shared machine falls on all of them alike; the tables show medians and side-by-side ratios.

1. Landing: fetch one month of v2 usage from the emulator over loopback (its own process, via
   its CLI) and write it as JSON Lines to local disk, at about 10k, 100k and 1M records. Records
   per second, CPU seconds and peak resident memory for ``ours`` (``CloudflareUsageV2Operator``
   with a ``file://`` destination, its ``execute`` called in the state Airflow's task runner
   calls it in: a process forked from the supervisor, plugins loaded), ``sdk`` (the official
   ``cloudflare`` SDK) and ``plain`` (httpx + json), both in a bare interpreter, their best case.
   ``ours-cold``, for information, is ours' ``execute`` in a bare interpreter, paying for the
   imports a forked task inherits and for the runner's plugin load.
   ``drain`` reads and discards the body: the emulator's own speed, the floor.
   A contender that passes the memory or time cap is stopped and not run at larger sizes; one
   whose memory growth at a smaller size, scaled to the next size, passes the cap is not
   started there (``--no-projection`` starts it anyway, and waits for it to hit the cap).
2. CSV and Parquet: the same month at 10k and 100k records as ``.csv`` and ``.parquet`` with our
   operator, against the obvious hand-written task (httpx, ``json.loads``, then ``csv.DictWriter``
   or ``pyarrow.Table.from_pylist`` + ``pyarrow.parquet.write_table``): records per second and
   peak resident memory, interleaved the same way.
3. SQL landing (``bench/sql_bench.py``): the same month, about 100k records, into PostgreSQL and
   SQLite with ``CloudflareUsageToSqlOperator`` against a hand-written ``executemany`` baseline:
   rows per second and peak resident memory.
4. Import: ``python -c "import airflow_provider_cfbilling.operators.billing"`` (what a DAG file
   using our operators pays at parse time) against ``HttpOperator``'s import, plus
   ``-X importtime``: the modules ours loads beyond HttpOperator's import and beyond
   ``from airflow.sdk import DAG`` (the floor of any Airflow 3 DAG file), and the slowest ones.

The report ends with issue 18's goals, each MET or MISSED with its numbers: ours at least 1.5x
plain httpx + json at every size, at least half the drain floor from 100k records, flat memory
(peak - before at most 40 MB at every size, within 10 MB of each other), and an import no
slower than HttpOperator's.

Usage::

    .venv/bin/python bench/run.py                 # full: 10k, 100k, 1m (well under 15 minutes)
    .venv/bin/python bench/run.py --quick         # 10k and 100k, fewer repeats
    .venv/bin/python bench/run.py --sizes 10k,250k --repeats 5 --json results.json
    .venv/bin/python bench/run.py --skip-landing  # import benchmark only
    .venv/bin/python bench/run.py --skip-landing --skip-imports --sql-sizes 10k --repeats 1  # SQL part, small
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # the bench directory is not a package: found through sys.path above
import sql_bench

CONTENDERS = ("ours", "ours-cold", "sdk", "plain")
OURS = ("ours", "ours-cold", "ours-csv", "ours-parquet")
RIVALS = ("sdk", "plain")
REFERENCE = "drain"
CHILD = str(harness.BENCH_DIR / "landing_child.py")
MB = 1024 * 1024

# Targets of issue 7.
THROUGHPUT_VS_SDK = 2.0
MEMORY_VS_SDK = 0.5
GROWTH_LIMIT_MB = 100.0

# Goals of issue 18 (JSON Lines, key_style="api", window and metric filters enforced).
THROUGHPUT_VS_PLAIN = 1.5  # ours / plain records per second, at every size
THROUGHPUT_VS_DRAIN = 0.5  # ours / drain records per second, from 100k records
DRAIN_GOAL_FROM_RECORDS = 90_000
FLAT_GROWTH_MB = 40.0  # ours' peak - before, at every size ("about 30 MiB above the floor")
FLAT_SPREAD_MB = 10.0  # ... and the same at every size, within this

# CSV and Parquet: ours against the obvious hand-written task, side by side.
FORMAT_PAIRS = (("csv", "ours-csv", "csv-dictwriter"), ("parquet", "ours-parquet", "parquet-pylist"))
FORMAT_SUFFIX = {"ours-csv": "csv", "csv-dictwriter": "csv", "ours-parquet": "parquet", "parquet-pylist": "parquet"}

IMPORT_COMMANDS = {
    "ours": "import airflow_provider_cfbilling.operators.billing",
    "HttpOperator": "from airflow.providers.http.operators.http import HttpOperator",
}
IMPORT_REFERENCES = {
    "python -c pass": "pass",
    "airflow.sdk DAG": "from airflow.sdk import DAG",
}


# ------------------------------------------------------------------------------------------------
# Landing
# ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    size: str
    contender: str
    repeat: int
    ok: bool
    records: int = 0
    bytes: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    baseline_rss_kb: int = 0
    peak_rss_kb: int = 0
    failure: str = ""

    @property
    def growth_kb(self) -> int:
        return self.peak_rss_kb - self.baseline_rss_kb

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@dataclass
class Stop:
    size: str
    reason: str


@dataclass
class Results:
    machine: dict[str, str]
    argv: list[str]
    sizes: list[dict[str, Any]] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    stopped: dict[str, Stop] = field(default_factory=dict)
    imports: dict[str, Any] = field(default_factory=dict)
    format_sizes: list[dict[str, Any]] = field(default_factory=list)
    format_runs: list[Run] = field(default_factory=list)
    sql: list[sql_bench.SqlRun] = field(default_factory=list)
    sql_unavailable: str = ""


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def run_landing_child(
    contender: str,
    size: harness.Size,
    repeat: int,
    base_url: str,
    workdir: Path,
    memory_cap_mb: int,
    time_cap_s: float,
) -> Run:
    """One landing run in a fresh interpreter, stopped if it passes the memory or time cap."""
    token, account = harness.credentials()
    out = workdir / f"{size.label}-{contender}-{repeat}.{FORMAT_SUFFIX.get(contender, 'jsonl')}"
    command = [
        harness.PYTHON,
        CHILD,
        contender,
        f"--base-url={base_url}",
        f"--token={token}",
        f"--account={account}",
        f"--start={harness.PERIOD_START}",
        f"--end={harness.PERIOD_END}",
        f"--out={out}",
        f"--timeout={time_cap_s}",
    ]
    extra = harness.connection_env(base_url) if contender in OURS else {}
    env = harness.child_env(str(workdir / "airflow_home"), extra)
    stopped: list[str] = []
    highest_kb = 0
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=harness.REPO)
        deadline = time.monotonic() + time_cap_s
        done = threading.Event()

        def watch() -> None:
            nonlocal highest_kb
            while not done.wait(0.05):
                rss = _rss_kb(process.pid)
                highest_kb = max(highest_kb, rss)
                if rss > memory_cap_mb * 1024:
                    stopped.append(f"passed the {memory_cap_mb} MB memory cap")
                elif time.monotonic() > deadline:
                    stopped.append(f"passed the {time_cap_s:.0f} s time cap")
                else:
                    continue
                process.send_signal(signal.SIGKILL)
                return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.monotonic()
        returncode = process.wait()
        elapsed = time.monotonic() - started
        done.set()
        watcher.join()
        if out.exists():
            out.unlink()
        if stopped:
            return Run(
                size.label,
                contender,
                repeat,
                ok=False,
                peak_rss_kb=highest_kb,
                seconds=elapsed,
                failure=f"{stopped[0]} after {elapsed:.0f} s",
            )
        stdout.seek(0)
        lines = stdout.read().decode(errors="replace").strip().splitlines()
        if returncode != 0 or not lines:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            return Run(size.label, contender, repeat, ok=False, failure=f"exit {returncode}: {' | '.join(tail)[-300:]}")
        result = json.loads(lines[-1])
    return Run(
        size.label,
        contender,
        repeat,
        ok=True,
        records=result["records"],
        bytes=result["bytes"],
        seconds=result["seconds"],
        cpu_seconds=result["cpu_seconds"],
        baseline_rss_kb=result["baseline_rss_kb"],
        peak_rss_kb=result["peak_rss_kb"],
    )


# Runs of a size under this take a second or less, where the shared machine's noise moves one run
# by a third: more repeats there steady the medians for a few seconds each.
SHORT_RUN_RECORDS = 50_000


def repeats_for(size: harness.Size, quick: bool, override: int | None) -> int:
    if override:
        return override
    if quick:
        return 2
    if size.approx_records < SHORT_RUN_RECORDS:
        return 7
    return 3 if size.approx_records < 500_000 else 2


def landing_benchmark(args: argparse.Namespace, results: Results, workdir: Path) -> None:
    for size in args.sizes:
        repeats = repeats_for(size, args.quick, args.repeats)
        results.sizes.append({"label": size.label, "zones": size.zones, "repeats": repeats})
        print(
            f"\n== {size.label}: emulator --zones {size.zones}, window [{harness.PERIOD_START}, {harness.PERIOD_END})"
        )
        with harness.emulator_process(size.zones) as base_url:
            # The emulator's first response at a size fills its caches (per-zone factors) and is
            # slower than the next ones: serve it once, unmeasured, so no contender pays for it.
            warmup = run_landing_child(REFERENCE, size, -1, base_url, workdir, args.memory_cap_mb, args.time_cap)
            if not warmup.ok:
                raise RuntimeError(f"the emulator warm-up failed: {warmup.failure}")
            lineup = [*CONTENDERS, REFERENCE]
            if args.project:
                for contender in CONTENDERS:
                    projection = _projected_stop(results, contender, size, args.memory_cap_mb)
                    if projection and contender not in results.stopped:
                        results.runs.append(Run(size.label, contender, 0, ok=False, failure=projection))
                        results.stopped[contender] = Stop(size.label, projection)
                        print(f"  {contender:<6} not run: {projection}", flush=True)
            for repeat, contender in _interleaved(lineup, repeats):
                if contender in results.stopped:
                    continue
                run = run_landing_child(contender, size, repeat, base_url, workdir, args.memory_cap_mb, args.time_cap)
                results.runs.append(run)
                _print_run(run, repeats)
                if not run.ok:
                    results.stopped[contender] = Stop(size.label, run.failure)


def _interleaved(lineup: list[str], repeats: int) -> Iterator[tuple[int, str]]:
    """``(repeat, contender)``: run 1 of every contender, then run 2, ..., the order rotated each
    time so that no contender always runs first (or right after the drain)."""
    for repeat in range(repeats):
        shift = repeat % len(lineup)
        for contender in lineup[shift:] + lineup[:shift]:
            yield repeat, contender


def formats_benchmark(args: argparse.Namespace, results: Results, workdir: Path) -> None:
    """CSV and Parquet: ours against csv.DictWriter and pyarrow's from_pylist, interleaved."""
    lineup = [name for _format, *pair in FORMAT_PAIRS for name in pair]
    for size in args.format_sizes:
        repeats = repeats_for(size, args.quick, args.repeats)
        results.format_sizes.append({"label": size.label, "zones": size.zones, "repeats": repeats})
        print(f"\n== CSV and Parquet, {size.label}: emulator --zones {size.zones}")
        stopped: set[str] = set()
        with harness.emulator_process(size.zones) as base_url:
            warmup = run_landing_child(REFERENCE, size, -1, base_url, workdir, args.memory_cap_mb, args.time_cap)
            if not warmup.ok:
                raise RuntimeError(f"the emulator warm-up failed: {warmup.failure}")
            for repeat, contender in _interleaved(lineup, repeats):
                if contender in stopped:
                    continue
                run = run_landing_child(contender, size, repeat, base_url, workdir, args.memory_cap_mb, args.time_cap)
                results.format_runs.append(run)
                _print_run(run, repeats)
                if not run.ok:
                    stopped.add(contender)


def _projected_stop(results: Results, contender: str, size: harness.Size, memory_cap_mb: int) -> str | None:
    """Why not to start ``contender`` at ``size``: its peak, scaled from the largest size it ran, passes the cap.

    Memory that grows with the records (``peak - before``) is scaled linearly; a streaming path
    grows little, so it is never stopped by this.
    """
    done = [run for run in results.runs if run.contender == contender and run.ok]
    if not done:
        return None
    largest = max(
        (entry for entry in results.sizes if any(run.size == entry["label"] for run in done)),
        key=lambda entry: entry["zones"],
    )
    runs = [run for run in done if run.size == largest["label"]]
    scale = size.approx_records / harness.parse_size(largest["label"]).approx_records
    growth = statistics.median(run.growth_kb for run in runs) / 1024
    before = statistics.median(run.baseline_rss_kb for run in runs) / 1024
    projected = before + growth * scale
    if projected <= memory_cap_mb:
        return None
    return (
        f"not attempted: its peak at {largest['label']} ({before:.0f} MB + {growth:.0f} MB) scales to "
        f"{projected:,.0f} MB at {size.label}, over the {memory_cap_mb} MB memory cap"
    )


def _print_run(run: Run, repeats: int) -> None:
    label = f"  {run.contender:<14} {run.repeat + 1}/{repeats}"
    if not run.ok:
        print(f"{label}: STOPPED ({run.failure})", flush=True)
        return
    print(
        f"{label}: {run.records:>9,} records {run.seconds:7.2f} s {run.records_per_second:>9,.0f} rec/s "
        f"cpu {run.cpu_seconds:6.2f} s peak {run.peak_rss_kb / 1024:7.0f} MB",
        flush=True,
    )


# ------------------------------------------------------------------------------------------------
# Import cost
# ------------------------------------------------------------------------------------------------


def _timed_import(statement: str, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KB) of ``python -c statement``."""
    started = time.perf_counter()
    process = subprocess.Popen([harness.PYTHON, "-c", statement], env=env, cwd=harness.REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"python -c {statement!r} failed with {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _importtime(statement: str, env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """``-X importtime``: module -> (self us, cumulative us)."""
    completed = subprocess.run(
        [harness.PYTHON, "-X", "importtime", "-c", statement],
        env=env,
        cwd=harness.REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    modules: dict[str, tuple[int, int]] = {}
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        modules[name.strip()] = (int(self_us), int(cumulative_us))
    return modules


def import_benchmark(args: argparse.Namespace, results: Results, workdir: Path) -> None:
    env = harness.child_env(str(workdir / "airflow_home"))
    commands = {**IMPORT_COMMANDS, **IMPORT_REFERENCES}
    for statement in commands.values():  # warm the OS file cache and bytecode for everyone alike
        _timed_import(statement, env)
    samples: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    names = list(commands)
    print(f"\n== import cost: {args.import_runs} runs each, interleaved")
    for repeat in range(args.import_runs):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_timed_import(commands[name], env))
    results.imports["runs"] = {name: samples[name] for name in names}
    results.imports["statements"] = commands

    # What ours loads beyond HttpOperator's import and beyond the floor of any Airflow 3 DAG file
    # (``from airflow.sdk import DAG``), and what it costs: median of 3 ``-X importtime`` runs.
    profiled = {"ours": IMPORT_COMMANDS["ours"], "HttpOperator": IMPORT_COMMANDS["HttpOperator"]}
    profiled["airflow.sdk DAG"] = IMPORT_REFERENCES["airflow.sdk DAG"]
    samples_by_name: dict[str, list[dict[str, tuple[int, int]]]] = defaultdict(list)
    for _ in range(3):
        for name, statement in profiled.items():
            samples_by_name[name].append(_importtime(statement, env))
    profiles = {name: _median_profile(samples) for name, samples in samples_by_name.items()}
    ours = profiles["ours"]

    def beyond(other: str) -> dict[str, tuple[int, int]]:
        return {module: cost for module, cost in ours.items() if module not in profiles[other]}

    def self_ms(modules: dict[str, tuple[int, int]]) -> float:
        return sum(cost[0] for cost in modules.values()) / 1000

    results.imports["importtime"] = {
        "modules": {name: len(profile) for name, profile in profiles.items()},
        "self_ms": {name: self_ms(profile) for name, profile in profiles.items()},
        "beyond_http": (len(beyond("HttpOperator")), self_ms(beyond("HttpOperator"))),
        "beyond_sdk": sorted(beyond("airflow.sdk DAG").items(), key=lambda item: -item[1][1]),
        "ours_top_self": sorted(ours.items(), key=lambda item: -item[1][0])[:12],
    }


def _median_profile(profiles: list[dict[str, tuple[int, int]]]) -> dict[str, tuple[int, int]]:
    modules = set().union(*profiles)
    merged = {}
    for module in modules:
        present = [profile[module] for profile in profiles if module in profile]
        merged[module] = (
            int(statistics.median(cost[0] for cost in present)),
            int(statistics.median(cost[1] for cost in present)),
        )
    return merged


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _ok_runs(results: Results, size: str, contender: str, runs: list[Run] | None = None) -> list[Run]:
    pool = results.runs if runs is None else runs
    return [run for run in pool if run.size == size and run.contender == contender and run.ok]


def _paired_ratio(
    results: Results,
    size: str,
    mine: str,
    other: str,
    value: str,
    invert: bool = False,
    runs: list[Run] | None = None,
) -> float:
    """Median over repeats of ``mine / other`` (``other / mine`` with ``invert``), same repeat only."""
    by_repeat = {run.repeat: run for run in _ok_runs(results, size, other, runs)}
    ratios = []
    for run in _ok_runs(results, size, mine, runs):
        partner = by_repeat.get(run.repeat)
        if partner is None:
            continue
        a, b = getattr(run, value), getattr(partner, value)
        if a and b:
            ratios.append(b / a if invert else a / b)
    return _median(ratios)


def _fmt(value: float, spec: str) -> str:
    return "—" if value != value else format(value, spec)  # NaN: not measured


def report(results: Results) -> tuple[str, bool]:
    lines: list[str] = []
    all_met = True
    sizes = [entry["label"] for entry in results.sizes]
    if sizes:
        lines += [
            "### Landing one month of v2 usage as JSON Lines (medians)",
            "",
            "| size | path | runs | records written | wall s | records/s | client CPU s | peak RSS MB "
            "| RSS before MB | peak - before MB |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        expected: dict[str, int] = {}
        for size in sizes:
            drained = {run.records for run in _ok_runs(results, size, REFERENCE)}
            if len(drained) == 1:
                expected[size] = drained.pop()
            for contender in (*CONTENDERS, REFERENCE):
                attempted = [r for r in results.runs if r.size == size and r.contender == contender]
                runs = [r for r in attempted if r.ok]
                if not attempted:
                    stop = results.stopped.get(contender)
                    note = f"not run (stopped at {stop.size})" if stop else "not run"
                    lines.append(f"| {size} | {contender} | 0 | {note} | | | | | | |")
                    continue
                if not runs:
                    failure = attempted[0].failure
                    at_stop = f"{attempted[0].peak_rss_kb / 1024:.0f} (at stop)" if attempted[0].peak_rss_kb else ""
                    started = sum(1 for run in attempted if not run.failure.startswith("not attempted"))
                    lines.append(f"| {size} | {contender} | 0/{started} | stopped: {failure} | | | | {at_stop} | | |")
                    continue
                counts = sorted({r.records for r in runs})
                count_text = ", ".join(f"{c:,}" for c in counts)
                if size in expected and counts != [expected[size]]:
                    count_text += f" (MISMATCH: the body holds {expected[size]:,})"
                name = f"{contender} (floor)" if contender == REFERENCE else contender
                lines.append(
                    f"| {size} | {name} | {len(runs)}/{len(attempted)} | {count_text} | "
                    f"{_median([r.seconds for r in runs]):.2f} | {_median([r.records_per_second for r in runs]):,.0f} | "
                    f"{_median([r.cpu_seconds for r in runs]):.2f} | {_median([r.peak_rss_kb / 1024 for r in runs]):.0f} | "
                    f"{_median([r.baseline_rss_kb / 1024 for r in runs]):.0f} | "
                    f"{_median([(r.peak_rss_kb - r.baseline_rss_kb) / 1024 for r in runs]):.0f} |"
                )
        lines += [
            "",
            "### Side-by-side ratios (median of the per-repeat ratios; records/s above 1 and memory below 1 favour ours)",
            "",
            "| size | pair | records/s | peak RSS | peak - before | client CPU s |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for size in sizes:
            for mine in OURS:
                for other in RIVALS:
                    cells = [
                        _paired_ratio(results, size, mine, other, "records_per_second"),
                        _paired_ratio(results, size, mine, other, "peak_rss_kb"),
                        _paired_ratio(results, size, mine, other, "growth_kb"),
                        _paired_ratio(results, size, mine, other, "cpu_seconds"),
                    ]
                    if all(cell != cell for cell in cells):
                        continue
                    lines.append(
                        f"| {size} | {mine} / {other} | " + " | ".join(_fmt(cell, ".2f") for cell in cells) + " |"
                    )
        lines += ["", "### Targets", ""]
        for size in sizes:
            speed = _paired_ratio(results, size, "ours", "sdk", "records_per_second")
            memory = _paired_ratio(results, size, "ours", "sdk", "peak_rss_kb")
            if speed != speed:
                stop = results.stopped.get("sdk")
                why = "the SDK was not run"
                if stop:
                    why = f"the SDK stopped at {stop.size}: {stop.reason}"
                lines.append(f"- {size}: no SDK comparison ({why})")
                continue
            speed_ok, memory_ok = speed >= THROUGHPUT_VS_SDK, memory <= MEMORY_VS_SDK
            all_met &= speed_ok and memory_ok
            lines.append(
                f"- {size}: throughput {speed:.2f}x the SDK (target >= {THROUGHPUT_VS_SDK:.0f}x): "
                f"{'met' if speed_ok else 'MISSED'}; peak memory {memory:.2f} of the SDK's "
                f"(target <= {MEMORY_VS_SDK}): {'met' if memory_ok else 'MISSED'}"
            )
            cold_speed = _paired_ratio(results, size, "ours-cold", "sdk", "records_per_second")
            cold_memory = _paired_ratio(results, size, "ours-cold", "sdk", "peak_rss_kb")
            if cold_speed == cold_speed:
                lines.append(
                    f"  - for information, ours-cold (execute() in a bare interpreter): "
                    f"{cold_speed:.2f}x the SDK's throughput, {cold_memory:.2f} of its peak memory"
                )
        small, large = sizes[0], sizes[-1]
        small_runs, large_runs = _ok_runs(results, small, "ours"), _ok_runs(results, large, "ours")
        if small != large and small_runs and large_runs:
            growth = _median([r.peak_rss_kb / 1024 for r in large_runs]) - _median(
                [r.peak_rss_kb / 1024 for r in small_runs]
            )
            ok = growth <= GROWTH_LIMIT_MB
            all_met &= ok
            lines.append(
                f"- ours, peak memory {large} minus {small}: {growth:+.0f} MB (target <= {GROWTH_LIMIT_MB:.0f} MB): "
                f"{'met' if ok else 'MISSED'}"
            )
    if results.format_runs:
        lines += _formats_report(results)
    goals, goals_met = _goals_report(results)
    lines += goals
    all_met &= goals_met
    if results.imports:
        runs = results.imports["runs"]
        lines += [
            "",
            f"### Import cost in a fresh interpreter (median of {len(runs['ours'])} interleaved runs)",
            "",
            "| statement | wall ms | CPU ms | peak RSS MB |",
            "| --- | ---: | ---: | ---: |",
        ]
        for name, samples in runs.items():
            statement = results.imports["statements"][name]
            lines.append(
                f"| `{statement}` | {_median([s[0] * 1000 for s in samples]):.0f} | "
                f"{_median([s[1] * 1000 for s in samples]):.0f} | {_median([s[2] / 1024 for s in samples]):.0f} |"
            )
        ours = _median([s[0] for s in runs["ours"]])
        http = _median([s[0] for s in runs["HttpOperator"]])
        paired = _median([a[0] / b[0] for a, b in zip(runs["ours"], runs["HttpOperator"], strict=True)])
        ok = ours <= http
        all_met &= ok
        lines += [
            "",
            f"- ours/HttpOperator import wall time: {ours / http:.2f} (median of paired runs {paired:.2f}; "
            f"target <= 1): {'met' if ok else 'MISSED'}",
        ]
        profile = results.imports["importtime"]
        modules, self_times = profile["modules"], profile["self_ms"]
        beyond_sdk = profile["beyond_sdk"]
        lines += [
            "- `-X importtime` (median of 3): "
            + ", ".join(
                f"{name} loads {modules[name]} modules ({self_times[name]:.0f} ms self time)" for name in modules
            ),
            f"- modules ours loads that HttpOperator's import does not: {profile['beyond_http'][0]} "
            f"({profile['beyond_http'][1]:.0f} ms self time); beyond `from airflow.sdk import DAG`, the floor of "
            f"any Airflow 3 DAG file: {len(beyond_sdk)} ({sum(c[0] for _, c in beyond_sdk) / 1000:.0f} ms self time):",
            "",
            "| module ours loads beyond `from airflow.sdk import DAG` | self ms | cumulative ms |",
            "| --- | ---: | ---: |",
        ]
        for module, (self_us, cumulative_us) in beyond_sdk[:15]:
            lines.append(f"| `{module}` | {self_us / 1000:.1f} | {cumulative_us / 1000:.1f} |")
        lines += ["", "| top self time in ours (all modules) | self ms | cumulative ms |", "| --- | ---: | ---: |"]
        for module, (self_us, cumulative_us) in profile["ours_top_self"]:
            lines.append(f"| `{module}` | {self_us / 1000:.1f} | {cumulative_us / 1000:.1f} |")
    machine = results.machine
    lines += [
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram']} RAM, Linux {machine['kernel']}, "
        f"Python {machine['python']}; {machine['packages']}.",
        f"Command: `{' '.join(results.argv)}`",
    ]
    return "\n".join(lines), all_met


def _run_row(size: str, name: str, runs: list[Run], attempted: list[Run]) -> str:
    if not runs:
        failure = attempted[0].failure if attempted else "not run"
        return f"| {size} | {name} | 0/{len(attempted)} | stopped: {failure} | | | | | | |"
    counts = ", ".join(f"{count:,}" for count in sorted({run.records for run in runs}))
    return (
        f"| {size} | {name} | {len(runs)}/{len(attempted)} | {counts} | "
        f"{_median([r.seconds for r in runs]):.2f} | {_median([r.records_per_second for r in runs]):,.0f} | "
        f"{_median([r.cpu_seconds for r in runs]):.2f} | {_median([r.peak_rss_kb / 1024 for r in runs]):.0f} | "
        f"{_median([r.baseline_rss_kb / 1024 for r in runs]):.0f} | "
        f"{_median([(r.peak_rss_kb - r.baseline_rss_kb) / 1024 for r in runs]):.0f} |"
    )


def _formats_report(results: Results) -> list[str]:
    lines = [
        "",
        "### Landing the same month as CSV and Parquet (medians)",
        "",
        "| size | path | runs | records written | wall s | records/s | client CPU s | peak RSS MB "
        "| RSS before MB | peak - before MB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    sizes = [entry["label"] for entry in results.format_sizes]
    for size in sizes:
        for _format, *pair in FORMAT_PAIRS:
            for contender in pair:
                attempted = [r for r in results.format_runs if r.size == size and r.contender == contender]
                runs = [r for r in attempted if r.ok]
                lines.append(_run_row(size, contender, runs, attempted))
    lines += [
        "",
        "| size | pair | records/s | peak RSS | peak - before | client CPU s |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for size in sizes:
        for _format, mine, other in FORMAT_PAIRS:
            cells = [
                _paired_ratio(results, size, mine, other, key, runs=results.format_runs)
                for key in ("records_per_second", "peak_rss_kb", "growth_kb", "cpu_seconds")
            ]
            lines.append(f"| {size} | {mine} / {other} | " + " | ".join(_fmt(cell, ".2f") for cell in cells) + " |")
    return lines


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _goals_report(results: Results) -> tuple[list[str], bool]:
    """Issue 18's goals, each MET or MISSED with its numbers."""
    lines = ["", "### Goals (issue 18)", ""]
    all_met = True
    sizes = [entry["label"] for entry in results.sizes]
    for size in sizes:
        ratio = _paired_ratio(results, size, "ours", "plain", "records_per_second")
        if ratio != ratio:
            lines.append(f"- {size}: ours / plain records/s: not measured: MISSED")
            all_met = False
            continue
        ok = ratio >= THROUGHPUT_VS_PLAIN
        all_met &= ok
        cold = _paired_ratio(results, size, "ours-cold", "plain", "records_per_second")
        lines.append(
            f"- {size}: throughput {ratio:.2f}x plain httpx + json (goal >= {THROUGHPUT_VS_PLAIN}x): "
            f"{_verdict(ok)} (ours-cold: {_fmt(cold, '.2f')}x)"
        )
    for size in sizes:
        drained = _ok_runs(results, size, REFERENCE)
        if not drained or _median([run.records for run in drained]) < DRAIN_GOAL_FROM_RECORDS:
            continue
        ratio = _paired_ratio(results, size, "ours", REFERENCE, "records_per_second")
        ok = ratio == ratio and ratio >= THROUGHPUT_VS_DRAIN
        all_met &= ok
        cold = _paired_ratio(results, size, "ours-cold", REFERENCE, "records_per_second")
        lines.append(
            f"- {size}: throughput {_fmt(ratio, '.2f')}x the drain floor (goal >= {THROUGHPUT_VS_DRAIN}x): "
            f"{_verdict(ok)} (ours-cold: {_fmt(cold, '.2f')}x)"
        )
    growths = {}
    for size in sizes:
        runs = _ok_runs(results, size, "ours")
        if runs:
            growths[size] = _median([(run.peak_rss_kb - run.baseline_rss_kb) / 1024 for run in runs])
    if growths:
        spread = max(growths.values()) - min(growths.values())
        ok = max(growths.values()) <= FLAT_GROWTH_MB and spread <= FLAT_SPREAD_MB
        all_met &= ok
        shown = ", ".join(f"{size} {growth:.0f} MB" for size, growth in growths.items())
        lines.append(
            f"- flat memory: ours' peak - before {shown} (goal <= {FLAT_GROWTH_MB:.0f} MB at every size, "
            f"spread <= {FLAT_SPREAD_MB:.0f} MB; spread {spread:.0f} MB): {_verdict(ok)}"
        )
    if results.imports:
        runs = results.imports["runs"]
        ours = _median([sample[0] for sample in runs["ours"]])
        http = _median([sample[0] for sample in runs["HttpOperator"]])
        ok = ours <= http
        all_met &= ok
        lines.append(
            f"- import cost: ours {ours * 1000:.0f} ms, HttpOperator {http * 1000:.0f} ms, "
            f"ratio {ours / http:.2f} (goal <= 1): {_verdict(ok)}"
        )
    return lines, all_met


# ------------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 10k,100k, 2 repeats, 5 import runs")
    parser.add_argument("--sizes", help="comma-separated: 10k,100k,1m or record counts (default 10k,100k,1m)")
    parser.add_argument(
        "--repeats", type=int, help="runs per contender and size (default 7 below 50k records, 3 below 500k, then 2)"
    )
    parser.add_argument("--import-runs", type=int, help="runs per import statement (default 7; quick 5)")
    parser.add_argument("--memory-cap-mb", type=int, default=6144, help="stop a run above this RSS (6144)")
    parser.add_argument("--time-cap", type=float, default=300.0, help="stop a run after this many seconds (300)")
    parser.add_argument(
        "--no-projection",
        dest="project",
        action="store_false",
        help="start every contender at every size, even when its peak at a smaller size scales past the cap",
    )
    parser.add_argument("--skip-landing", action="store_true")
    parser.add_argument("--skip-imports", action="store_true")
    parser.add_argument("--skip-sql", action="store_true", help="skip the SQL landing benchmark")
    parser.add_argument("--skip-formats", action="store_true", help="skip the CSV and Parquet landings")
    parser.add_argument(
        "--format-sizes", help="comma-separated sizes of the CSV and Parquet landings (default 10k,100k)"
    )
    parser.add_argument("--sql-sizes", help="comma-separated sizes of the SQL landing benchmark (default 100k)")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    args = parser.parse_args(argv)
    names = args.sizes.split(",") if args.sizes else (harness.QUICK_SIZES if args.quick else harness.DEFAULT_SIZES)
    args.sizes = sorted((harness.parse_size(name) for name in names), key=lambda size: size.zones)
    if args.import_runs is None:
        args.import_runs = 5 if args.quick else 7
    format_names = args.format_sizes.split(",") if args.format_sizes else ("10k", "100k")
    args.format_sizes = sorted((harness.parse_size(name) for name in format_names), key=lambda size: size.zones)
    sql_names = args.sql_sizes.split(",") if args.sql_sizes else sql_bench.DEFAULT_SIZES
    args.sql_sizes = sorted((harness.parse_size(name) for name in sql_names), key=lambda size: size.zones)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    results = Results(machine=harness.machine(), argv=[".venv/bin/python", "bench/run.py", *argv])
    print("Machine:", ", ".join(f"{key} {value}" for key, value in results.machine.items()))
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="cfbilling-bench-"))
    try:
        if not args.skip_landing:
            landing_benchmark(args, results, workdir)
        if not args.skip_formats:
            formats_benchmark(args, results, workdir)
        if not args.skip_sql:
            repeats = args.repeats or 2
            results.sql, results.sql_unavailable = sql_bench.benchmark(args.sql_sizes, repeats, workdir, args.time_cap)
        if not args.skip_imports:
            import_benchmark(args, results, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text, all_met = report(results)
    if results.sql or results.sql_unavailable:
        text = f"{text}\n\n{sql_bench.report(results.sql, results.sql_unavailable)}"
    print(f"\n{text}\n\nTotal benchmark time: {time.monotonic() - started:.0f} s")
    if args.json:
        payload = asdict(results)
        payload["runs"] = [asdict(run) for run in results.runs]
        payload["sql"] = [asdict(run) for run in results.sql]
        payload["format_runs"] = [asdict(run) for run in results.format_runs]
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    print("All targets met." if all_met else "Some targets were MISSED (see above).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
