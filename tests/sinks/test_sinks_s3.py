"""write_records to S3 through a real S3-protocol server (moto) and a real Airflow connection."""

from __future__ import annotations

import gzip
import hashlib
import io
import json

import pyarrow.parquet as pq
import pytest
from harness import lineage_outputs

from airflow_provider_cfbilling.records import columns_for
from airflow_provider_cfbilling.sinks import read_records, resolve_output, write_records

pytestmark = [
    pytest.mark.s3,
    # an aborted upload must not come back from a destructor (fsspec files flush when collected)
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

V2_COLUMNS = columns_for("v2")
NAMES = ["usage.jsonl", "usage.jsonl.gz", "usage.csv", "usage.csv.gz", "usage.parquet"]


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def _uploads(s3, bucket: str, prefix: str) -> list[dict]:
    return s3.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])


def _body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("name", NAMES)
def test_every_format_lands_in_s3_as_it_does_on_disk(s3_server, s3, s3_prefix, tmp_path, make_records, name):
    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    key = f"{s3_prefix}/date=2025-05-01/{name}"
    records = list(make_records(2500, unknown_from=1200))

    result = write_records(
        iter(records), resolve_output(f"s3://{bucket}/{key}"), columns=V2_COLUMNS, conn_id=conn_id, batch_size=1000
    )
    local = write_records(
        iter(records), resolve_output(f"file://{tmp_path / name}"), columns=V2_COLUMNS, batch_size=1000
    )

    body = _body(s3, bucket, key)
    assert body == (tmp_path / name).read_bytes(), "the same bytes whatever the filesystem"
    assert (result.records, result.bytes, result.uri) == (2500, len(body), f"s3://{bucket}/{key}")
    assert local.bytes == result.bytes
    assert result.sha256 == local.sha256 == hashlib.sha256(body).hexdigest(), "of the object as stored"
    if name.endswith(".parquet"):
        assert pq.read_table(io.BytesIO(body)).num_rows == 2500
    elif name.startswith("usage.jsonl"):
        text = (gzip.decompress(body) if name.endswith(".gz") else body).decode()
        assert [json.loads(line) for line in text.splitlines()] == records
    back = read_records(f"s3://{bucket}/{key}", conn_id=conn_id)
    assert len(back) == 2500
    assert _keys(s3, bucket, s3_prefix) == [key]
    assert _uploads(s3, bucket, s3_prefix) == []


def test_an_empty_window_is_an_empty_object(s3_server, s3, s3_prefix):
    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    for name in ("empty.jsonl", "empty.csv", "empty.parquet"):
        write_records(
            iter([]), resolve_output(f"s3://{bucket}/{s3_prefix}/{name}"), columns=V2_COLUMNS, conn_id=conn_id
        )
    assert _body(s3, bucket, f"{s3_prefix}/empty.jsonl") == b""
    assert _body(s3, bucket, f"{s3_prefix}/empty.csv").decode().startswith("ServiceProviderName,")
    assert pq.read_table(io.BytesIO(_body(s3, bucket, f"{s3_prefix}/empty.parquet"))).num_rows == 0
    assert _uploads(s3, bucket, s3_prefix) == []


@pytest.mark.parametrize("name", ["usage.jsonl", "usage.csv.gz", "usage.parquet"])
def test_a_failure_mid_stream_keeps_the_previous_object_and_leaves_no_upload(
    s3_server, s3, s3_prefix, make_records, fail_after, boom, name
):
    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    key = f"{s3_prefix}/{name}"
    write_records(make_records(100), resolve_output(f"s3://{bucket}/{key}"), columns=V2_COLUMNS, conn_id=conn_id)
    previous = _body(s3, bucket, key)

    with pytest.raises(boom, match="after 5000 records"):
        write_records(
            fail_after(make_records(20_000), 5000),
            resolve_output(f"s3://{bucket}/{key}"),
            columns=V2_COLUMNS,
            conn_id=conn_id,
            batch_size=1000,
        )

    assert _body(s3, bucket, key) == previous
    assert _keys(s3, bucket, s3_prefix) == [key]
    assert _uploads(s3, bucket, s3_prefix) == []


def test_a_failure_after_parts_were_uploaded_aborts_the_multipart_upload(s3_server, s3, s3_prefix, boom):
    """More than one 50 MiB part goes up before the failure: readers never see it, nothing is left."""
    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    key = f"{s3_prefix}/big.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"old":true}\n')
    observed_during_write = []

    def records():
        padding = "x" * 20_000
        for index in range(6000):  # ~120 MB
            if index == 5000:
                observed_during_write.append(
                    (_body(s3, bucket, key), len(_uploads(s3, bucket, s3_prefix)), _keys(s3, bucket, s3_prefix))
                )
                raise boom("the API failed after 5000 records")
            yield {"index": index, "padding": padding}

    with pytest.raises(boom):
        write_records(records(), resolve_output(f"s3://{bucket}/{key}"), columns=[], conn_id=conn_id, batch_size=500)

    body_meanwhile, uploads_meanwhile, keys_meanwhile = observed_during_write[0]
    assert body_meanwhile == b'{"old":true}\n', "while parts were uploading, readers saw the old object"
    assert uploads_meanwhile == 1, "the new data was in an (invisible) multipart upload"
    assert keys_meanwhile == [key]
    assert _body(s3, bucket, key) == b'{"old":true}\n'
    assert _keys(s3, bucket, s3_prefix) == [key]
    assert _uploads(s3, bucket, s3_prefix) == [], "the multipart upload was aborted"


def test_a_large_write_completes_as_one_whole_object(s3_server, s3, s3_prefix):
    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    key = f"{s3_prefix}/big.jsonl"
    padding = "x" * 20_000

    result = write_records(
        ({"index": index, "padding": padding} for index in range(4000)),
        resolve_output(f"s3://{bucket}/{key}"),
        columns=[],
        conn_id=conn_id,
        batch_size=500,
    )

    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == result.bytes > 60 * 2**20
    lines = _body(s3, bucket, key).splitlines()
    assert len(lines) == 4000
    assert json.loads(lines[-1])["index"] == 3999
    assert _uploads(s3, bucket, s3_prefix) == []


def test_a_rerun_overwrites_with_identical_bytes(s3_server, s3, s3_prefix, make_records):
    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    key = f"{s3_prefix}/usage.parquet"
    write_records(make_records(3000), resolve_output(f"s3://{bucket}/{key}"), columns=V2_COLUMNS, conn_id=conn_id)
    first = _body(s3, bucket, key)
    write_records(make_records(3000), resolve_output(f"s3://{bucket}/{key}"), columns=V2_COLUMNS, conn_id=conn_id)
    assert _body(s3, bucket, key) == first
    assert _keys(s3, bucket, s3_prefix) == [key]


def test_the_connection_can_be_named_in_the_uri_and_lineage_leaves_it_out(
    s3_server, s3, s3_prefix, make_records, lineage_collector
):
    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    key = f"{s3_prefix}/usage.jsonl"

    write_records(make_records(5), resolve_output(f"s3://{conn_id}@{bucket}/{key}"), columns=V2_COLUMNS)

    assert len(_body(s3, bucket, key).splitlines()) == 5
    assert [uri for uri, _count in lineage_outputs(lineage_collector)] == [f"s3://{bucket}/{key}"]


def test_sigkill_mid_upload_leaves_the_previous_object_and_at_most_an_invisible_upload(s3_server, s3, s3_prefix):
    import signal
    import subprocess
    import sys

    bucket, conn_id = s3_server["bucket"], s3_server["conn_id"]
    key = f"{s3_prefix}/usage.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body=b'{"old":true}\n')
    script = f"""
import itertools, time
from airflow_provider_cfbilling.sinks import resolve_output, write_records

def records():
    padding = "x" * 20_000
    for index in itertools.count():
        if index == 4000:  # ~80 MB: at least one 50 MiB part is in a multipart upload by now
            print("writing", flush=True)
            time.sleep(600)
        yield {{"index": index, "padding": padding}}

write_records(records(), resolve_output("s3://{bucket}/{key}"), columns=[], conn_id={conn_id!r}, batch_size=500)
"""
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert "writing" in (line.strip() for line in process.stdout), "the writer died early"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

    assert _body(s3, bucket, key) == b'{"old":true}\n'
    assert _keys(s3, bucket, s3_prefix) == [key]
    uploads = _uploads(s3, bucket, s3_prefix)
    assert len(uploads) == 1, "the killed write's parts sit in an incomplete, invisible upload"
    for upload in uploads:  # what a bucket lifecycle rule (AbortIncompleteMultipartUpload) would do
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
