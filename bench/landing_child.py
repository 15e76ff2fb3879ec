"""One measured landing run, in a fresh interpreter: fetch one v2 window and write it as JSON Lines.

Started by ``bench/run.py`` (one process per run, so peak memory is the run's own). Prints one
JSON object on its last stdout line: records written (counted in the output file), wall and CPU
seconds of the measured section, the resident memory before it and the process's peak.

Contenders:

- ``ours``: ``CloudflareUsageV2Operator(...).execute({})`` with a ``file://`` destination (the
  connection comes from ``AIRFLOW_CONN_CLOUDFLARE_DEFAULT``), in the state Airflow's task runner
  calls ``execute`` in (``harness.enter_task_process_state``: the supervisor's and the runner's
  modules imported, the plugins loaded), before the measured section.
- ``ours-cold``: the same ``execute({})`` in a bare interpreter, for information: it pays inside
  ``execute`` for what a task has before it (the supervisor's import, on the connection lookup,
  and the plugin load, on the lineage report).
- ``sdk``: the official SDK, ``Cloudflare(...).billing.usage.get(...)``, each model written with
  ``model_dump(mode="json", by_alias=True)`` and ``json.dumps``.
- ``plain``: ``httpx`` GET, ``json.loads`` of the body, ``json.dumps`` per record.
- ``drain``: not a contender: reads the body and throws it away, counting records by their
  ``"ChargePeriodStart":`` key. Its time is the emulator-and-loopback floor every contender pays.
- ``ours-csv`` / ``ours-parquet``: ``ours`` with a ``.csv`` / ``.parquet`` destination.
- ``csv-dictwriter``: httpx, ``json.loads`` of the body, ``csv.DictWriter`` over the union of keys.
- ``parquet-pylist``: httpx, ``json.loads`` of the body, ``pyarrow.Table.from_pylist`` and
  ``pyarrow.parquet.write_table`` (snappy, as ours).

Imports happen before the measured section (their cost is the import benchmark's business);
the measured section runs from building the client (or operator) to the closed output file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings
from typing import Any

CONTENDERS = (
    "ours",
    "ours-cold",
    "sdk",
    "plain",
    "drain",
    "ours-csv",
    "csv-dictwriter",
    "ours-parquet",
    "parquet-pylist",
)
# The output format of each contender (JSON Lines unless named here).
FORMATS = {"ours-csv": "csv", "csv-dictwriter": "csv", "ours-parquet": "parquet", "parquet-pylist": "parquet"}
# Output as compact as ours, so every contender writes about the same number of bytes.
_DUMP_OPTIONS: dict[str, Any] = {"separators": (",", ":"), "ensure_ascii": False}
_RECORD_KEY = b'"ChargePeriodStart":'


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _count_records(path: str, file_format: str) -> int:
    """Records in the output: JSON Lines lines, CSV rows after the header, Parquet rows."""
    if file_format == "csv":
        import csv

        with open(path, encoding="utf-8", newline="") as handle:
            return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    return _count_lines(path)


def _count_lines(path: str) -> int:
    lines = 0
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines


def _prepare(contender: str) -> Any:
    """Import what the contender needs; return its run function."""
    if contender in ("ours", "ours-cold", "ours-csv", "ours-parquet"):
        import airflow_provider_cfbilling.hooks.cloudflare
        import airflow_provider_cfbilling.sinks  # noqa: F401 - imported lazily by the operator
        from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

        if contender == "ours-parquet":
            import pyarrow.parquet  # imported lazily by the sink; imports are not measured

        if contender != "ours-cold":
            import harness  # bench/, this script's directory

            harness.enter_task_process_state()

        def run_ours(args: argparse.Namespace) -> None:
            operator = CloudflareUsageV2Operator(
                task_id="bench_v2_usage",
                period_start=args.start,
                period_end=args.end,
                destination=f"file://{args.out}",
            )
            summary = operator.execute({})
            if summary["uri"] != f"file://{args.out}":
                raise RuntimeError(f"unexpected summary {summary}")

        return run_ours

    import httpx

    if contender == "sdk":
        import cloudflare

        def run_sdk(args: argparse.Namespace) -> None:
            client = cloudflare.Cloudflare(
                api_token=args.token, base_url=args.base_url, timeout=args.timeout, max_retries=0
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # .get is deprecated in 5.9
                usage = client.billing.usage.get(account_id=args.account, from_=args.start, to=args.end)
            with open(args.out, "w", encoding="utf-8") as out:
                for item in usage:
                    out.write(json.dumps(item.model_dump(mode="json", by_alias=True), **_DUMP_OPTIONS))
                    out.write("\n")
            client.close()

        return run_sdk

    def request(client: httpx.Client, args: argparse.Namespace) -> Any:
        return client.build_request(
            "GET",
            f"/accounts/{args.account}/billable/usage",
            params={"from": args.start, "to": args.end},
        )

    def client_for(args: argparse.Namespace) -> httpx.Client:
        return httpx.Client(
            base_url=args.base_url, headers={"Authorization": f"Bearer {args.token}"}, timeout=args.timeout
        )

    def fetch_all(args: argparse.Namespace) -> list[dict[str, Any]]:
        """The obvious hand-written fetch: the whole body, ``json.loads``, its ``result``."""
        with client_for(args) as client:
            response = client.send(request(client, args))
            response.raise_for_status()
            envelope = json.loads(response.content)
        if envelope.get("success") is not True:
            raise RuntimeError(f"success is not true: {envelope.get('errors')}")
        return list(envelope["result"])

    if contender == "csv-dictwriter":
        import csv

        def run_dictwriter(args: argparse.Namespace) -> None:
            records = fetch_all(args)
            fieldnames = list(dict.fromkeys(key for record in records for key in record))
            with open(args.out, "w", encoding="utf-8", newline="") as out:
                writer = csv.DictWriter(out, fieldnames=fieldnames, lineterminator="\n")
                writer.writeheader()
                writer.writerows(records)

        return run_dictwriter

    if contender == "parquet-pylist":
        import pyarrow as pa
        import pyarrow.parquet as pq

        def run_pylist(args: argparse.Namespace) -> None:
            records = fetch_all(args)
            pq.write_table(pa.Table.from_pylist(records), args.out, compression="snappy")

        return run_pylist

    if contender == "plain":

        def run_plain(args: argparse.Namespace) -> None:
            records = fetch_all(args)
            with open(args.out, "w", encoding="utf-8") as out:
                for record in records:
                    out.write(json.dumps(record, **_DUMP_OPTIONS))
                    out.write("\n")

        return run_plain

    def run_drain(args: argparse.Namespace) -> None:
        records = 0
        tail = b""
        with client_for(args) as client:
            response = client.send(request(client, args), stream=True)
            try:
                response.raise_for_status()
                for chunk in response.iter_raw():
                    window = tail + chunk
                    records += window.count(_RECORD_KEY)
                    # Keep a tail shorter than the key: a key split across chunks is counted once.
                    tail = window[-(len(_RECORD_KEY) - 1) :]
            finally:
                response.close()
        with open(args.out, "w", encoding="ascii") as out:
            out.write("\n" * records)  # the count, in the form the other contenders report it

    return run_drain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=CONTENDERS)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--out", required=True, help="absolute path of the file to write (.jsonl, .csv, .parquet)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the output file")
    args = parser.parse_args()

    run = _prepare(args.contender)
    baseline_kb = _rss_kb()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    run(args)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    records = _count_records(args.out, FORMATS.get(args.contender, "jsonl"))
    size = os.path.getsize(args.out)
    if not args.keep:
        os.unlink(args.out)
    result = {
        "contender": args.contender,
        "records": records,
        "bytes": size,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "baseline_rss_kb": baseline_kb,
        "peak_rss_kb": peak_kb,
    }
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
