"""The fault matrix: every operator that lands in storage, against every fault the emulator injects.

A cell is one operator landing one window in one storage (local disk or S3) while the emulator
misbehaves on the operator's data route. A cell passes only one of two ways:

- **retried-identical**: the task succeeds and the object is byte-identical to a fault-free run;
- **failed-clean**: the task fails with a ``CloudflareAPIError`` that names the endpoint and the
  cause, the destination still holds the previous object byte for byte, and nothing else is
  visible under the destination (no temporary file, no object, no pending multipart upload).

A success with different bytes, or a failure that touched the destination, fails the test. The
expected outcome and request count of every cell is data (``ROWS``); ``docs/reliability.md``
shows the same table, rendered from it (``test_the_docs_show_this_matrix``).

Cells of a row run in parallel threads, each against its own emulator, to keep the matrix fast.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from reliability_support import (
    connection,
    docs_block,
    files_under,
    markdown_table,
    prepare_worker_thread,
    s3_keys,
    s3_uploads,
    set_connection,
    start_emulator,
    with_manifest,
)

from airflow_provider_cfbilling.exceptions import CloudflareAPIError

pytestmark = pytest.mark.faults

DOCS = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
PREVIOUS = b'{"previous":"partition","written_by":"an earlier run"}\n'
MAX_RETRIES = 3  # the matrix connection's extra.max_retries: 4 attempts per request at most
TIMEOUT = 0.5  # the matrix connection's extra.timeout, in seconds
LATENCY = 2.0  # seconds of injected latency: past the timeout
RETRIED, FAILED = "retried-identical", "failed-clean"


@dataclass(frozen=True)
class Row:
    """One fault scenario: the faults armed on the cell's data route and what must happen."""

    id: str
    label: str
    faults: tuple[dict[str, Any], ...]
    outcome: str
    attempts: int  # requests on the data route
    retry_after: float = 0.0  # the least gap between consecutive attempts, seconds


@dataclass(frozen=True)
class Cell:
    """One operator landing in one storage."""

    id: str
    label: str
    operator: str  # v2, paygo or profile
    storage: str  # file or s3
    name: str  # the object's file name (its suffix picks the format)
    route: str  # the emulator route selector of the data request
    zones: int = 3
    extra_routes: tuple[str, ...] = field(default=())  # requests the task makes besides the data route


ROWS = (
    Row(
        "429-storm",
        "429 storm, `Retry-After: 1`, 3 in a row",
        ({"kind": "rate_limit", "retry_after": 1, "count": 3},),
        RETRIED,
        4,
        retry_after=1.0,
    ),
    Row(
        "429-forever",
        "429 on every request, `Retry-After: 1`",
        ({"kind": "rate_limit", "retry_after": 1},),
        FAILED,
        MAX_RETRIES + 1,
        retry_after=1.0,
    ),
    Row(
        "5xx-burst",
        "5xx burst: 502, 503, 504",
        (
            {"kind": "status", "status": 502, "nth": 1},
            {"kind": "status", "status": 503, "nth": 2},
            {"kind": "status", "status": 504, "nth": 3},
        ),
        RETRIED,
        4,
    ),
    Row("5xx-forever", "500 on every request", ({"kind": "status", "status": 500},), FAILED, MAX_RETRIES + 1),
    Row(
        "latency-burst",
        f"latency {LATENCY:g} s (timeout {TIMEOUT:g} s), 2 in a row",
        ({"kind": "latency", "seconds": LATENCY, "count": 2},),
        RETRIED,
        3,
    ),
    Row(
        "latency-forever",
        f"latency {LATENCY:g} s (timeout {TIMEOUT:g} s) on every request",
        ({"kind": "latency", "seconds": LATENCY},),
        FAILED,
        MAX_RETRIES + 1,
    ),
    Row("drop-burst", "connection dropped, 2 in a row", ({"kind": "drop", "count": 2},), RETRIED, 3),
    Row("drop-forever", "connection dropped on every request", ({"kind": "drop"},), FAILED, MAX_RETRIES + 1),
    Row(
        "truncate-length-burst",
        "body cut in half (`Content-Length`), 2 in a row",
        ({"kind": "truncate", "mode": "length", "count": 2},),
        RETRIED,
        3,
    ),
    Row(
        "truncate-chunked-burst",
        "body cut in half (chunked), 2 in a row",
        ({"kind": "truncate", "mode": "chunked", "count": 2},),
        RETRIED,
        3,
    ),
    Row(
        "truncate-length-forever",
        "body cut in half (`Content-Length`) on every request",
        ({"kind": "truncate", "mode": "length"},),
        FAILED,
        MAX_RETRIES + 1,
    ),
    Row(
        "truncate-chunked-forever",
        "body cut in half (chunked) on every request",
        ({"kind": "truncate", "mode": "chunked"},),
        FAILED,
        MAX_RETRIES + 1,
    ),
    Row(
        "success-false",
        "HTTP 200 with `success: false`, once",
        ({"kind": "success_false", "nth": 1},),
        FAILED,
        1,
    ),
    Row(
        "not-json-burst", "HTML instead of JSON (HTTP 200), 2 in a row", ({"kind": "not_json", "count": 2},), RETRIED, 3
    ),
    Row(
        "not-json-forever",
        "HTML instead of JSON (HTTP 200) on every request",
        ({"kind": "not_json"},),
        FAILED,
        MAX_RETRIES + 1,
    ),
)

# v2 with 100 zones: 1,258 records, a 1.1 MB chunked body parsed record by record as it streams.
# PayGo (billable-usage): the request starts at the billing-cycle anchor (an info request first);
# a 350 KB body parsed whole inside the retry loop. Profile: one small object.
CELLS = (
    Cell("v2-file", "v2 → file (jsonl)", "v2", "file", "usage.jsonl", "v2", zones=100),
    Cell("v2-s3", "v2 → S3 (parquet)", "v2", "s3", "usage.parquet", "v2", zones=100),
    Cell(
        "paygo-file",
        "PayGo → file (csv.gz)",
        "paygo",
        "file",
        "usage.csv.gz",
        "billable-usage",
        extra_routes=("billable-usage-info",),
    ),
    Cell(
        "paygo-s3",
        "PayGo → S3 (jsonl)",
        "paygo",
        "s3",
        "usage.jsonl",
        "billable-usage",
        extra_routes=("billable-usage-info",),
    ),
    Cell("profile-file", "profile → file (jsonl)", "profile", "file", "profile.jsonl", "profile"),
    Cell("profile-s3", "profile → S3 (jsonl.gz)", "profile", "s3", "profile.jsonl.gz", "profile"),
)
WINDOW = {"period_start": "2025-06-10", "period_end": "2025-06-13"}
REFERENCES: dict[str, bytes] = {}  # cell id -> the bytes of its fault-free run (same seed, clock, data)


@dataclass
class Result:
    outcome: str
    attempts: int
    total_requests: int
    gaps: list[float]
    error: BaseException | None
    seconds: float


class Storage:
    """A cell's storage: where the reference, the previous object and the faulted write go."""

    def __init__(self, cell: Cell, root: Path, s3_server: dict[str, Any] | None) -> None:
        self.cell = cell
        self.s3 = s3_server
        tag = f"{cell.id}-{uuid.uuid4().hex[:8]}"
        if cell.storage == "file":
            self.ref_dir, self.dest_dir = root / tag / "ref", root / tag / "dest"
            self.reference = f"file://{self.ref_dir}/{cell.name}"
            self.destination = f"file://{self.dest_dir}/charge_date=2025-06-10/{cell.name}"
            self.conn_id = None
        else:
            assert s3_server is not None
            self.bucket = s3_server["bucket"]
            self.ref_prefix, self.dest_prefix = f"matrix/{tag}/ref/", f"matrix/{tag}/dest/"
            self.reference = f"s3://{self.bucket}/{self.ref_prefix}{cell.name}"
            self.key = f"{self.dest_prefix}charge_date=2025-06-10/{cell.name}"
            self.destination = f"s3://{self.bucket}/{self.key}"
            self.conn_id = s3_server["conn_id"]

    def read(self, uri: str) -> bytes:
        if uri.startswith("file://"):
            return Path(uri.removeprefix("file://")).read_bytes()
        assert self.s3 is not None
        key = uri.removeprefix(f"s3://{self.bucket}/")
        return bytes(self.s3["client"].get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put_previous(self) -> None:
        if self.cell.storage == "file":
            path = Path(self.destination.removeprefix("file://"))
            path.parent.mkdir(parents=True)
            path.write_bytes(PREVIOUS)
        else:
            assert self.s3 is not None
            self.s3["client"].put_object(Bucket=self.bucket, Key=self.key, Body=PREVIOUS)

    def visible(self) -> list[str]:
        """Everything under the destination (directory or key prefix), including pending uploads."""
        if self.cell.storage == "file":
            return files_under(self.dest_dir)
        assert self.s3 is not None
        client = self.s3["client"]
        keys = [key.removeprefix(self.dest_prefix) for key in s3_keys(client, self.bucket, self.dest_prefix)]
        uploads = [f"(upload) {item['Key']}" for item in s3_uploads(client, self.bucket, self.dest_prefix)]
        return keys + uploads

    @property
    def final_name(self) -> str:
        return f"charge_date=2025-06-10/{self.cell.name}"


def make_operator(cell: Cell, conn_id: str, destination: str, destination_conn_id: str | None) -> Any:
    from airflow_provider_cfbilling.operators.billing import (
        CloudflareBillingProfileOperator,
        CloudflarePaygoUsageOperator,
        CloudflareUsageV2Operator,
    )

    common = {
        "task_id": cell.id,
        "cloudflare_conn_id": conn_id,
        "destination": destination,
        "destination_conn_id": destination_conn_id,
    }
    if cell.operator == "v2":
        return CloudflareUsageV2Operator(**common, **WINDOW)
    if cell.operator == "paygo":
        return CloudflarePaygoUsageOperator(**common, **WINDOW)
    return CloudflareBillingProfileOperator(**common)


def run_cell(row: Row, cell: Cell, root: Path, s3_server: dict[str, Any] | None) -> Result:
    """Reference run (once per cell), previous object, faults, faulted run; then the checks."""
    prepare_worker_thread()
    emulator = start_emulator(zones=cell.zones)
    conn_id = f"reliability_matrix_{uuid.uuid4().hex[:12]}"
    variable = set_connection(conn_id, connection(emulator, timeout=TIMEOUT, max_retries=MAX_RETRIES))
    storage = Storage(cell, root, s3_server)
    try:
        if cell.id not in REFERENCES:  # the fault-free output depends on the cell only
            make_operator(cell, conn_id, storage.reference, storage.conn_id).execute({})
            REFERENCES[cell.id] = storage.read(storage.reference)
        reference = REFERENCES[cell.id]
        storage.put_previous()
        before = emulator.route_counts()
        emulator.clear_request_log()
        for fault in row.faults:
            emulator.add_fault(route=cell.route, **fault)

        started = time.monotonic()
        error: BaseException | None = None
        summary = None
        try:
            summary = make_operator(cell, conn_id, storage.destination, storage.conn_id).execute({})
        except Exception as raised:
            error = raised
        seconds = time.monotonic() - started

        after = emulator.route_counts()
        attempts = after.get(cell.route, 0) - before.get(cell.route, 0)
        total = sum(after.values()) - sum(before.values())
        arrivals = [
            entry["arrived"] for entry in emulator.request_log if entry["route"] == cell.route and entry["arrived"]
        ]
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]

        visible = storage.visible()
        # A failed run leaves the previous object alone (and writes no manifest); a successful one
        # adds the object's manifest next to it, and nothing else.
        wanted = [storage.final_name] if error is not None else with_manifest(storage.final_name)
        assert visible == wanted, f"{cell.id}: more than the final object (and its manifest) is visible: {visible}"
        written = storage.read(storage.destination)
        if error is None:
            assert written == reference, f"{cell.id}: the task succeeded with output that differs from a fault-free run"
            assert summary is not None and summary["bytes"] == len(reference)
            outcome = RETRIED
        else:
            assert written == PREVIOUS, f"{cell.id}: the failed task changed the previous object"
            assert isinstance(error, CloudflareAPIError), f"{cell.id}: not a Cloudflare error: {error!r}"
            assert error.endpoint and error.endpoint in str(error), f"{cell.id}: the error does not name the endpoint"
            outcome = FAILED
        return Result(outcome, attempts, total, gaps, error, seconds)
    finally:
        emulator.stop()
        os.environ.pop(variable, None)


def expected_cell_text(row: Row, cell: Cell) -> str:
    requests = str(row.attempts) + "".join(" + 1 info" for _ in cell.extra_routes)
    return f"{row.outcome} ({requests})"


@pytest.mark.s3
@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_fault_matrix_row(row, tmp_path, s3_server):
    with ThreadPoolExecutor(max_workers=len(CELLS)) as pool:
        futures = {cell: pool.submit(run_cell, row, cell, tmp_path, s3_server) for cell in CELLS}
        results = {cell: future.result() for cell, future in futures.items()}

    print(f"\n[fault matrix] {row.label}")  # shown with -s, or when the row fails
    for cell, result in results.items():
        print(
            f"  {cell.label:<26} {result.outcome:<18} data requests {result.attempts}, "
            f"all requests {result.total_requests}, {result.seconds:.2f} s"
            + (f", {type(result.error).__name__}: {str(result.error)[:110]}" if result.error else "")
        )
    for cell, result in results.items():
        assert (result.outcome, result.attempts) == (row.outcome, row.attempts), cell.id
        assert result.total_requests == row.attempts + len(cell.extra_routes), cell.id
        # Retry-After is honoured: no attempt comes sooner than the server asked.
        assert all(gap >= row.retry_after for gap in result.gaps), (cell.id, result.gaps)


def render_matrix() -> str:
    """The matrix as it appears in docs/reliability.md (outcome and request count per cell)."""
    header = ["fault on the data request", *(cell.label for cell in CELLS)]
    rows = [[row.label, *(expected_cell_text(row, cell) for cell in CELLS)] for row in ROWS]
    return markdown_table(header, rows)


def test_the_docs_show_this_matrix():
    assert docs_block("fault-matrix", DOCS) == render_matrix()


# ---- the same promises through Airflow's task runner -----------------------------------------


@pytest.mark.e2e
@pytest.mark.s3
def test_through_airflow_a_storm_is_waited_out_and_a_dead_api_fails_the_task_cleanly(
    airflow_db, emulator, cloudflare_conn, s3_server
):
    from harness import run_dag, task_states, xcom

    client, bucket = s3_server["client"], s3_server["bucket"]
    prefix = f"matrix-e2e/{uuid.uuid4().hex[:8]}/"
    key = f"{prefix}charge_date=2025-06-10/usage.parquet"
    conf = {
        **WINDOW,
        "destination": f"s3://{bucket}/{key}",
        "destination_conn_id": s3_server["conn_id"],
    }
    logical = dt.datetime(2025, 6, 19, tzinfo=dt.timezone.utc)
    reference_run = run_dag("cf_v2_api", logical_date=logical, conf=conf)
    assert task_states(reference_run) == {"usage": "success"}
    reference = client.get_object(Bucket=bucket, Key=key)["Body"].read()

    emulator.add_fault(route="v2", kind="rate_limit", retry_after=1, count=2)
    storm_run = run_dag("cf_v2_api", logical_date=logical, conf=conf)
    assert task_states(storm_run) == {"usage": "success"}
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == reference
    assert xcom(storm_run, "usage")["bytes"] == len(reference)

    emulator.clear_faults()
    emulator.add_fault(route="v2", kind="status", status=500)
    dead_run = run_dag("cf_v2_api", logical_date=logical, conf=conf)
    assert task_states(dead_run) == {"usage": "failed"}
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == reference
    assert s3_keys(client, bucket, prefix) == with_manifest(key)
    assert s3_uploads(client, bucket, prefix) == []


def test_a_long_window_whose_second_request_fails_keeps_the_previous_object(tmp_path):
    """A 62-day v2 window is two requests; the first one's records are already in the temporary
    file when the second one fails for good: the previous object must survive, whole."""
    from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

    emulator = start_emulator()
    variable = set_connection("reliability_long_window", connection(emulator, max_retries=2))
    destination = tmp_path / "dest" / "usage.jsonl"
    destination.parent.mkdir()
    destination.write_bytes(PREVIOUS)
    try:
        emulator.add_fault(route="v2", kind="status", status=503, from_nth=2)
        operator = CloudflareUsageV2Operator(
            task_id="usage",
            cloudflare_conn_id="reliability_long_window",
            period_start="2025-04-01",
            period_end="2025-06-02",
            destination=f"file://{destination}",
        )
        with pytest.raises(CloudflareAPIError, match="HTTP 503"):
            operator.execute({})
        assert [entry["status"] for entry in emulator.request_log] == [200, 503, 503, 503]
    finally:
        emulator.stop()
        os.environ.pop(variable, None)
    assert destination.read_bytes() == PREVIOUS
    assert files_under(destination.parent) == ["usage.jsonl"]
