"""Crash safety: the task process is killed with SIGKILL in the middle of a large write.

The v2 operator runs in a child process (a small script calling ``execute``, the way a worker's
task process does), against the emulator in this process at a scale where the write takes
seconds. When the write is visibly under way (the hidden temporary sibling has grown to several
MiB on disk; a multipart upload exists on S3) the child is killed with SIGKILL: no ``finally``,
no cleanup. Readers must still see the previous object, whole, and nothing partial at the final
path; a re-run must then land the complete partition.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability_support import files_under, s3_keys, s3_uploads, with_manifest

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID
from airflow_provider_cfbilling.sinks import read_records

pytestmark = pytest.mark.e2e

PREVIOUS = b'{"previous":"partition"}\n'
CHILD = """
import json, sys
from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

operator = CloudflareUsageV2Operator(task_id="crash", **json.loads(sys.argv[1]))
print("executing", flush=True)
summary = operator.execute({})
print("finished", json.dumps(summary), flush=True)
"""


def start_child(arguments: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(arguments)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )


def kill_when(child: subprocess.Popen[str], condition: Callable[[], bool], timeout: float = 90) -> float:
    """SIGKILL the child as soon as ``condition()`` holds; the seconds it ran. Fails if the child
    exits first (then the write was not interrupted and the test proves nothing)."""
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            if child.poll() is not None:
                output = child.stdout.read() if child.stdout else ""
                pytest.fail(f"the child exited ({child.returncode}) before the write was interrupted:\n{output}")
            if condition():
                child.send_signal(signal.SIGKILL)
                return time.monotonic() - started
            time.sleep(0.005)
        pytest.fail("the write never got under way")
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()
    raise AssertionError("unreachable")


def expected_records(emulator: Any, start: str, end: str) -> list[dict[str, Any]]:
    first, stop = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    days = (stop - first).days
    return [
        record
        for offset in range(days)
        for record in emulator.expected_records(DEFAULT_ACCOUNT_ID, first + dt.timedelta(days=offset))
    ]


def test_sigkill_mid_write_to_local_disk_leaves_the_previous_object(emulator, cloudflare_conn, tmp_path, capsys):
    emulator.configure(zones=2000, scale=5)  # about 40,000 records, 37 MB of JSON Lines for the day
    folder = tmp_path / "account_id=x" / "charge_date=2025-06-10"
    folder.mkdir(parents=True)
    final = folder / "usage.jsonl"
    final.write_bytes(PREVIOUS)
    arguments = {"period_start": "2025-06-10", "period_end": "2025-06-11", "destination": f"file://{final}"}

    def temporaries() -> list[Path]:
        return [path for path in folder.iterdir() if path.name != final.name]

    def mid_write() -> bool:
        sizes = [path.stat().st_size for path in temporaries() if path.exists()]
        return bool(sizes) and max(sizes) >= 4 << 20

    seconds = kill_when(start_child(arguments), mid_write)
    leftovers = temporaries()
    written = max(path.stat().st_size for path in leftovers)

    assert final.read_bytes() == PREVIOUS, "readers must see the previous object after the crash"
    # Only the hidden temporary sibling of the killed write can remain; readers of the partition
    # (Spark, Hive, Athena, pandas on a directory) skip dot-files.
    assert [path.name for path in leftovers] and all(
        path.name.startswith(".usage.jsonl.") and path.name.endswith(".tmp") for path in leftovers
    ), leftovers

    emulator.configure(zones=3, scale=1)
    from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

    summary = CloudflareUsageV2Operator(task_id="rerun", **arguments).execute({})
    want = expected_records(emulator, "2025-06-10", "2025-06-11")
    assert read_records(f"file://{final}") == want
    assert summary["records"] == len(want)
    with capsys.disabled():
        print(
            f"\n[crash] local: killed after {seconds:.1f} s with {written / 2**20:.1f} MiB in "
            f"{leftovers[0].name}; final object = previous; re-run landed {summary['records']} records"
        )


@pytest.mark.s3
def test_sigkill_mid_upload_to_s3_leaves_the_previous_object(emulator, cloudflare_conn, s3_server, capsys):
    client, bucket = s3_server["client"], s3_server["bucket"]
    prefix = f"crash/{uuid.uuid4().hex[:8]}/"
    key = f"{prefix}account_id=x/charge_date=2025-06-10/usage.jsonl"
    client.put_object(Bucket=bucket, Key=key, Body=PREVIOUS)
    # Two days at this scale are about 74 MB of JSON Lines: more than one 50 MiB part, so the
    # upload is a multipart upload and the kill lands while parts are on the server.
    emulator.configure(zones=2000, scale=5)
    arguments = {
        "period_start": "2025-06-10",
        "period_end": "2025-06-12",
        "destination": f"s3://{bucket}/{key}",
        "destination_conn_id": s3_server["conn_id"],
    }

    seconds = kill_when(start_child(arguments), lambda: bool(s3_uploads(client, bucket, prefix)))

    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == PREVIOUS
    assert s3_keys(client, bucket, prefix) == [key], "no partial object may be visible under the prefix"
    pending = s3_uploads(client, bucket, prefix)
    assert [upload["Key"] for upload in pending] == [key], "the killed write is an incomplete, invisible upload"
    for upload in pending:  # what an AbortIncompleteMultipartUpload lifecycle rule does
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    emulator.configure(zones=3, scale=1)
    from airflow_provider_cfbilling.operators.billing import CloudflareUsageV2Operator

    summary = CloudflareUsageV2Operator(task_id="rerun", **arguments).execute({})
    want = expected_records(emulator, "2025-06-10", "2025-06-12")
    assert read_records(f"s3://{bucket}/{key}", conn_id=s3_server["conn_id"]) == want
    assert s3_keys(client, bucket, prefix) == with_manifest(key)
    with capsys.disabled():
        print(
            f"\n[crash] S3: killed after {seconds:.1f} s with a multipart upload in progress; "
            f"object = previous, 1 invisible pending upload; re-run landed {summary['records']} records"
        )


def test_files_under_sees_hidden_files(tmp_path):
    (tmp_path / ".hidden.tmp").write_bytes(b"x")
    assert files_under(tmp_path) == [".hidden.tmp"]
