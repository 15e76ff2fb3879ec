"""Where our landing path spends its time and memory: cProfile and tracemalloc of one run.

Runs ``CloudflareUsageV2Operator.execute`` in this process against an emulator process (as
``bench/run.py`` does) and prints:

- ``--mode cpu``: the cProfile top functions (own and cumulative time) of the first run, then the
  wall time of a second, warm run in the same process, which separates one-time costs (lazy
  imports, connection lookup) from per-record costs;
- ``--mode memory``: peak RSS growth during the run and the tracemalloc allocation sites alive at
  the traced peak (grouped by line), plus what remains allocated after the run (one-time state);
- ``--mode rss``: resident memory growth (no tracing) of a cold run and of a warm second run;
- ``--batch-size N``: the same with ``sinks.write_records(..., batch_size=N)``, to see what the
  JSON Lines batch size costs in memory and time;
- ``--gc freeze`` / ``--gc off``: the same with the garbage collector's full passes over the
  imported modules taken out (``gc.freeze()`` after the imports) or with no collector at all;
- ``--mode phases``: wall time of each stage alone: download to the spool, parse of the spooled
  body, window filter, JSON Lines encoding and the atomic write.

Runs start in the state the task runner calls ``execute`` in, as ``make bench`` measures ``ours``
(``harness.enter_task_process_state``); ``--cold`` profiles a bare interpreter (``ours-cold``).

Usage::

    .venv/bin/python bench/profile_ours.py --size 100k --mode cpu
    .venv/bin/python bench/profile_ours.py --size 10k --mode memory
    .venv/bin/python bench/profile_ours.py --size 1m --mode phases
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # the bench directory is not a package: found through sys.path above


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _operator(out: Path) -> Any:
    from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

    return CloudflareUsageV2Operator(
        task_id="profile_v2_usage",
        period_start=harness.PERIOD_START,
        period_end=harness.PERIOD_END,
        destination=f"file://{out}",
    )


def profile_cpu(out: Path, top: int) -> None:
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    summary = _operator(out).execute({})
    profiler.disable()
    first = time.perf_counter() - started
    started = time.perf_counter()
    _operator(out).execute({})
    second = time.perf_counter() - started
    print(f"records {summary['records']:,}: first run {first:.2f} s (profiled), second run {second:.2f} s (warm)")
    for key in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).strip_dirs().sort_stats(key).print_stats(top)
        print(f"\n--- cProfile, sorted by {key} ---")
        print(text.getvalue().split("\n", 6)[-1] if key == "tottime" else text.getvalue())


def profile_memory(out: Path, top: int) -> None:
    before = _rss_mb()
    tracemalloc.start(12)
    summary = _operator(out).execute({})
    traced_now, traced_peak = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    print(
        f"records {summary['records']:,}: RSS before {before:.0f} MB, peak {_peak_mb():.0f} MB; traced "
        f"Python allocations: peak {traced_peak / 2**20:.1f} MB, still alive after the run {traced_now / 2**20:.1f} MB"
    )
    print("\n--- alive after the run (one-time state: imports, caches), by file ---")
    for stat in after.statistics("filename")[:top]:
        print(f"{stat.size / 2**20:8.2f} MB {stat.count:>8} blocks  {stat.traceback[0].filename}")

    # A second run, traced on its own: what a run allocates at its peak once imports are done.
    tracemalloc.start(12)
    tracemalloc.reset_peak()
    peaks: list[tuple[int, Any]] = []
    from airflow_provider_cfbilling.sinks import encoding as sinks

    original = sinks._encode_batch

    def encode_and_sample(batch: list[dict[str, Any]]) -> bytes:
        encoded = original(batch)
        if not peaks:  # the first batch: the records, their encoding and the parser's buffers are alive
            peaks.append((tracemalloc.get_traced_memory()[0], tracemalloc.take_snapshot()))
        return encoded

    sinks._encode_batch = encode_and_sample
    try:
        _operator(out).execute({})
    finally:
        sinks._encode_batch = original
    _, second_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n--- second run: traced peak {second_peak / 2**20:.1f} MB; alive at the first encoded batch ---")
    if peaks:
        for stat in peaks[0][1].statistics("lineno")[:top]:
            frame = stat.traceback[0]
            print(f"{stat.size / 2**20:8.2f} MB {stat.count:>8} blocks  {frame.filename}:{frame.lineno}")


def _status_mb(field: str) -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def profile_rss(out: Path) -> None:
    """Resident memory without tracing: a cold run, then a warm one (peak reset in between)."""
    for attempt in ("cold (first run: lazy imports, connection)", "warm (second run in the process)"):
        before = _status_mb("VmRSS")
        started = time.perf_counter()
        _operator(out).execute({})
        seconds = time.perf_counter() - started
        peak = _status_mb("VmHWM")
        print(
            f"{attempt}: {seconds:.2f} s, RSS before {before:.0f} MB, peak {peak:.0f} MB, growth {peak - before:.0f} MB"
        )
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # resets VmHWM, the peak, to the current RSS


def profile_phases(out: Path) -> None:
    """Each stage streamed, cumulatively (parse; parse + filter; ...): the differences are the stages."""
    from airflow_provider_cfbilling import records as record_tools
    from airflow_provider_cfbilling import sinks, windows
    from airflow_provider_cfbilling.hooks.cloudflare import V2_USAGE_ROUTE, CloudflareHook, _Call
    from airflow_provider_cfbilling.hooks.envelope import iter_envelope_records
    from airflow_provider_cfbilling.sinks import encoding
    from airflow_provider_cfbilling.usage import in_window as _in_window

    hook = CloudflareHook()
    account = hook.resolve_account_id()
    path = V2_USAGE_ROUTE.format(account_id=account)
    call = _Call(path, V2_USAGE_ROUTE, (("from", harness.PERIOD_START), ("to", harness.PERIOD_END)), True)
    started = time.perf_counter()
    body = hook._send(call)
    print(f"download to the spool (hook._send): {time.perf_counter() - started:.2f} s, {body.size / 2**20:.0f} MB")
    # Keep the body in a file of its own: the parser's text wrapper closes what it reads when collected.
    saved = out.with_suffix(".body")
    body.spool.seek(0)
    with open(saved, "wb") as copy:
        while chunk := body.spool.read(1 << 20):
            copy.write(chunk)
    body.spool.close()
    hook.close()
    window = windows.resolve_window(harness.PERIOD_START, harness.PERIOD_END, {})

    def records() -> Any:
        return iter_envelope_records(open(saved, "rb"), 200, "v2")  # closed by the parser

    def stage(label: str, work: Any) -> None:
        started = time.perf_counter()
        count = work()
        print(f"{label}: {time.perf_counter() - started:.2f} s ({count:,} records)")

    stage("parse (iter_envelope_records)", lambda: sum(1 for _ in records()))
    stage("parse + window filter (_in_window)", lambda: sum(1 for _ in _in_window(records(), window, "v2")))

    def encode_all() -> int:
        count = 0
        for batch in encoding._jsonl_batches(_in_window(records(), window, "v2"), 10_000):
            encoding._encode_batch(batch)
            count += len(batch)
        return count

    stage("parse + filter + JSON Lines encoding (_encode_batch)", encode_all)
    spec = sinks.resolve_output(f"file://{out}")
    for attempt in ("first", "second"):
        stage(
            f"parse + filter + write_records ({attempt} call: + atomic local write, fsync, lineage)",
            lambda: (
                sinks.write_records(
                    _in_window(records(), window, "v2"), spec, columns=record_tools.columns_for("v2")
                ).records
            ),
        )
    if body.size < 200 * 2**20:  # the references hold the whole body in memory
        started = time.perf_counter()
        with open(saved, "rb") as handle:
            everything = json.loads(handle.read())["result"]
        print(f"reference: json.loads of the whole body: {time.perf_counter() - started:.2f} s")
        started = time.perf_counter()
        for record in everything:
            json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        print(f"reference: json.dumps per record: {time.perf_counter() - started:.2f} s")
    saved.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100k", help="10k, 100k, 1m or a record count")
    parser.add_argument("--mode", choices=("cpu", "memory", "rss", "phases"), default="cpu")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--batch-size",
        type=int,
        help="experiment: call sinks.write_records with this batch_size (default: the package's own)",
    )
    parser.add_argument(
        "--gc",
        choices=("default", "freeze", "off"),
        default="default",
        help="garbage collector during the run: as is, gc.freeze() after the imports, or gc.disable()",
    )
    parser.add_argument("--cold", action="store_true", help="a bare interpreter, not the task runner's state")
    args = parser.parse_args()
    size = harness.parse_size(args.size)
    with (
        tempfile.TemporaryDirectory(prefix="cfbilling-profile-") as workdir,
        harness.emulator_process(size.zones) as base_url,
    ):
        os.environ.update(harness.child_env(os.path.join(workdir, "airflow_home"), harness.connection_env(base_url)))
        import airflow_provider_cfbilling.hooks.cloudflare
        import airflow_provider_cfbilling.sinks  # noqa: F401 - as in bench/landing_child.py

        if not args.cold:
            harness.enter_task_process_state()
        if args.gc == "freeze":
            gc.collect()
            gc.freeze()  # the imported modules' objects leave the collector's generations
        elif args.gc == "off":
            gc.disable()
        if args.batch_size:
            import functools

            from airflow_provider_cfbilling.sinks import encoding as sinks

            sinks.write_records = functools.partial(sinks.write_records, batch_size=args.batch_size)
        out = Path(workdir) / "usage.jsonl"
        if args.mode == "cpu":
            profile_cpu(out, args.top)
        elif args.mode == "memory":
            profile_memory(out, args.top)
        elif args.mode == "rss":
            profile_rss(out)
        else:
            profile_phases(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
