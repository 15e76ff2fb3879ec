"""One measured SQL landing run, in a fresh interpreter: fetch one v2 window and land it in a table.

Started by ``bench/sql_bench.py`` (one process per run, so peak memory is the run's own). Prints
one JSON object on its last stdout line: rows in the table afterwards, wall and CPU seconds of the
measured section, the resident memory before it and the process's peak.

Contenders, each into a fresh table of the database given by ``--database``:

- ``ours``: ``CloudflareUsageToSqlOperator(...).execute({})`` (the connection ``cfb_bench_db``
  comes from the environment): streamed, typed, keyed, one transaction; PostgreSQL through COPY.
- ``baseline``: what one would write by hand: httpx GET, ``json.loads`` of the body, one
  transaction that deletes the window and ``executemany``-inserts every record's documented
  fields (timestamps and nested values as text), through the DB-API driver (psycopg2, sqlite3).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any


def _rss_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _connect(args: argparse.Namespace) -> Any:
    if args.database == "postgres":
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=args.pg_port, user="postgres", dbname=args.pg_dbname)
    import sqlite3

    return sqlite3.connect(args.sqlite_path)


def _prepare(contender: str, args: argparse.Namespace) -> Any:
    """Import what the contender needs (outside the measured section); return its run function."""
    if contender == "ours":
        import airflow_provider_cfbilling.hooks.cloudflare
        import airflow_provider_cfbilling.transfers._sql_load  # noqa: F401
        from airflow_provider_cfbilling.transfers.cloudflare_to_sql import CloudflareUsageToSqlOperator

        if args.database == "postgres":
            import psycopg  # noqa: F401 - the driver PostgresHook picks
        import harness  # bench/, this script's directory

        harness.enter_task_process_state()

        def run_ours() -> None:
            CloudflareUsageToSqlOperator(
                task_id="bench_sql",
                sql_conn_id="cfb_bench_db",
                table=args.table,
                period_start=args.start,
                period_end=args.end,
            ).execute({})

        return run_ours

    import httpx

    from airflow_provider_cfbilling.records import SCHEMAS

    postgres = args.database == "postgres"
    types = {
        "timestamp": "TIMESTAMP WITH TIME ZONE" if postgres else "TEXT",
        "number": "DOUBLE PRECISION" if postgres else "REAL",
        "integer": "BIGINT" if postgres else "INTEGER",
        "boolean": "BOOLEAN" if postgres else "INTEGER",
        "string": "TEXT",
    }
    fields = [column.name for column in SCHEMAS["v2"]]
    names = ", ".join(f'"{name}"' for name in fields)
    mark = "%s" if postgres else "?"
    connection = _connect(args)  # the table exists before the measured section
    try:
        columns = ", ".join(f'"{column.name}" {types[column.type]}' for column in SCHEMAS["v2"])
        connection.cursor().execute(f'CREATE TABLE "{args.table}" ({columns})')
        connection.commit()
    finally:
        connection.close()

    def run_baseline() -> None:
        with httpx.Client(
            base_url=args.base_url, headers={"Authorization": f"Bearer {args.token}"}, timeout=600
        ) as client:
            response = client.get(
                f"/accounts/{args.account}/billable/usage", params={"from": args.start, "to": args.end}
            )
            response.raise_for_status()
            records = json.loads(response.content)["result"]
        rows = [
            tuple(
                value if value is None or isinstance(value, (str, int, float)) else json.dumps(value)
                for value in (record.get(name) for name in fields)
            )
            for record in records
        ]
        connection = _connect(args)
        try:
            cursor = connection.cursor()
            cursor.execute(
                f'DELETE FROM "{args.table}" WHERE "ChargePeriodStart" >= {mark} AND "ChargePeriodStart" < {mark}',
                (args.start, args.end),
            )
            for offset in range(0, len(rows), 10_000):
                cursor.executemany(
                    f'INSERT INTO "{args.table}" ({names}) VALUES ({", ".join([mark] * len(fields))})',
                    rows[offset : offset + 10_000],
                )
            connection.commit()
        finally:
            connection.close()

    return run_baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=("ours", "baseline"))
    parser.add_argument("--database", choices=("postgres", "sqlite"), required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--pg-port", type=int)
    parser.add_argument("--pg-dbname")
    parser.add_argument("--sqlite-path")
    args = parser.parse_args()

    run = _prepare(args.contender, args)
    baseline_kb = _rss_kb()
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    connection = _connect(args)
    try:
        cursor = connection.cursor()
        cursor.execute(f'SELECT COUNT(*) FROM "{args.table}"')
        rows = cursor.fetchone()[0]
    finally:
        connection.close()
    result = {
        "contender": args.contender,
        "database": args.database,
        "records": rows,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "baseline_rss_kb": baseline_kb,
        "peak_rss_kb": peak_kb,
    }
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
