"""``make demo``'s script (``scripts/demo.py``): a real ``airflow dags test`` run against the
emulator, a usage table at the end, and no emulator process left behind, also on failure."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from harness import REPO_ROOT

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, Emulator, EmulatorClient

pytestmark = pytest.mark.e2e

DEMO = REPO_ROOT / "scripts" / "demo.py"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cfbilling_demo", DEMO)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_demo_runs_the_daily_dag_with_airflow_and_prints_the_usage_table(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    # Leftovers of an earlier run: the demo starts from scratch.
    (workdir / "airflow-home").mkdir(parents=True)
    (workdir / "airflow-home" / "airflow.db").write_text("not a database")
    (workdir / "cloudflare_usage.db").write_text("not a database either")
    stale = workdir / "lake" / "stale.jsonl"
    stale.parent.mkdir()
    stale.write_text("{}\n")

    result = subprocess.run(
        [sys.executable, str(DEMO), "--workdir", str(workdir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    day = dt.date(2025, 6, 18)
    landed = workdir / "lake" / "usage_v2" / f"account_id={DEFAULT_ACCOUNT_ID}" / f"charge_date={day}" / "usage.jsonl"
    # The day and the 7 before it (the daily example's look-back), each with its manifest.
    files = sorted(path for path in (workdir / "lake").rglob("*") if path.is_file())
    objects = [path for path in files if not path.name.endswith(".manifest.json")]
    assert landed in objects and len(objects) == 8
    assert files == sorted([*objects, *(path.parent / f"_{path.name}.manifest.json" for path in objects)])
    assert str(landed) in out
    # The same data the emulator serves for that day (the demo's emulator: seed 0, day published).
    with Emulator(seed=0, clock=dt.datetime(2025, 6, 19, 12, tzinfo=dt.timezone.utc)) as emulator:
        want = emulator.expected_records(DEFAULT_ACCOUNT_ID, day)
    demo = load_demo()
    assert demo.read_jsonl(landed) == want
    assert f"Landed {len(want)} records" in out

    # The table: a header and one row per product family and metric.
    assert f"Cloudflare usage on {day} by product family and metric" in out
    assert re.search(r"^product family\s+metric\s+records\s+quantity\s+unit$", out, re.MULTILINE)
    assert demo.usage_table(want) in out
    for record in want:
        assert re.search(rf"^{re.escape(record['x_ProductFamilyName'])}\s+{record['x_BillableMetricId']}\s", out, re.M)

    # The same day, and the week before it, in a SQLite table through the SQL example DAG.
    database = workdir / "cloudflare_usage.db"
    week = [day - dt.timedelta(days=offset) for offset in range(8)]
    with Emulator(seed=0, clock=dt.datetime(2025, 6, 19, 12, tzinfo=dt.timezone.utc)) as emulator:
        in_week = sum(len(emulator.expected_records(DEFAULT_ACCOUNT_ID, each)) for each in week)
    total, count, rows = demo.sql_rows(database, day)
    assert (total, count) == (in_week, len(want))
    assert (
        f"SQL table cloudflare_usage in {database}: {in_week} rows (the day and the 7 before it), {len(want)} " in out
    )
    assert demo.rows_table(rows) in out
    assert rows and {row[0] for row in rows} == {f"{day} 00:00:00"}
    assert len({row[-1] for row in rows}) == len(rows)  # the row keys

    # Real Airflow CLI runs, logged; and the emulator is gone.
    log = (workdir / "airflow.log").read_text()
    assert "$ airflow dags test cloudflare_usage_daily 2025-06-19" in log
    assert "$ airflow dags test cloudflare_usage_to_sql 2025-06-19" in log
    assert log.count("state=success") >= 2
    (pid,) = {int(found) for found in re.findall(r"Emulator \(pid (\d+)\) stopped", out)}
    assert not process_exists(pid)


def test_the_emulator_is_stopped_when_a_step_fails(tmp_path: Path) -> None:
    demo = load_demo()
    clock = dt.datetime(2025, 6, 19, 12, tzinfo=dt.timezone.utc)
    with (
        pytest.raises(RuntimeError, match="a step failed"),
        demo.running_emulator(clock, tmp_path / "emulator.log") as (base_url, pid),
    ):
        with EmulatorClient(base_url, timeout=10) as control:
            assert control.health()["ok"] is True
        raise RuntimeError("a step failed")
    assert not process_exists(pid)


def test_a_terminated_demo_stops_its_emulator(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [sys.executable, str(DEMO), "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            started = re.search(r"Emulator \(pid (\d+)\) listening", line)
            if started:
                break
        else:
            pytest.fail("the demo never started its emulator")
        pid = int(started.group(1))
        assert process_exists(pid)
        demo.send_signal(signal.SIGTERM)  # while Airflow prepares its database
        _out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert demo.returncode == 130
    assert "demo interrupted" in err
    assert not process_exists(pid)


def test_the_usage_table_sums_quantities_by_family_and_metric() -> None:
    demo = load_demo()
    records = [
        {"x_ProductFamilyName": "R2", "x_BillableMetricId": "r2_ops", "ConsumedQuantity": 1.5, "ConsumedUnit": "Ops"},
        {"x_ProductFamilyName": "R2", "x_BillableMetricId": "r2_ops", "ConsumedQuantity": 2, "ConsumedUnit": "Ops"},
        {
            "x_ProductFamilyName": "D1",
            "x_BillableMetricId": "d1_rows",
            "ConsumedQuantity": 1000,
            "ConsumedUnit": "Rows",
        },
    ]
    lines = demo.usage_table(records).splitlines()
    assert lines[0].split() == ["product", "family", "metric", "records", "quantity", "unit"]
    assert [line.split() for line in lines[2:]] == [
        ["D1", "d1_rows", "1", "1,000", "Rows"],
        ["R2", "r2_ops", "2", "3.5", "Ops"],
    ]


def test_the_sql_rows_are_read_for_the_day_and_aligned(tmp_path: Path) -> None:
    import sqlite3

    demo = load_demo()
    database = tmp_path / "usage.db"
    connection = sqlite3.connect(database)
    connection.execute(f"CREATE TABLE cloudflare_usage ({', '.join(demo.SQL_COLUMNS)})")
    connection.executemany(
        "INSERT INTO cloudflare_usage VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("2025-06-18 00:00:00", "r2_ops", None, 2.0, "Ops", "k1"),
            ("2025-06-18 00:00:00", "d1_rows", "example.com", 1000.0, "Rows", "k2"),
            ("2025-06-17 00:00:00", "d1_rows", None, 5.0, "Rows", "k3"),
        ],
    )
    connection.commit()
    connection.close()
    total, count, rows = demo.sql_rows(database, dt.date(2025, 6, 18))
    assert (total, count) == (3, 2)
    lines = demo.rows_table(rows).splitlines()
    assert lines[0].split() == list(demo.SQL_COLUMNS)
    assert [line.split() for line in lines[2:]] == [
        ["2025-06-18", "00:00:00", "d1_rows", "example.com", "1000.0", "Rows", "k2"],
        ["2025-06-18", "00:00:00", "r2_ops", "-", "2.0", "Ops", "k1"],
    ]
