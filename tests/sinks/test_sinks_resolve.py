"""resolve_output: the destination and file_format contract, and clear errors for bad input."""

from __future__ import annotations

import pytest

from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.sinks import FORMATS, OutputSpec, resolve_output


@pytest.mark.parametrize(
    ("destination", "file_format", "expected"),
    [
        ("s3://bucket/usage/date=2025-01-31/part-0.jsonl", None, ("jsonl", None)),
        ("s3://bucket/usage.ndjson", None, ("jsonl", None)),
        ("s3://bucket/usage.json", None, ("jsonl", None)),
        ("s3://bucket/usage.jsonl.gz", None, ("jsonl", "gzip")),
        ("s3://bucket/usage.json.gz", None, ("jsonl", "gzip")),
        ("gs://bucket/usage.csv", None, ("csv", None)),
        ("gs://bucket/usage.csv.gz", None, ("csv", "gzip")),
        ("abfs://container/usage.parquet", None, ("parquet", None)),
        ("s3://bucket/usage.pq", None, ("parquet", None)),
        ("s3://bucket/USAGE.CSV.GZ", None, ("csv", "gzip")),
        ("s3://bucket/usage", None, ("jsonl", None)),
        ("s3://bucket/usage.gz", None, ("jsonl", "gzip")),
        ("s3://bucket/usage.txt", None, ("jsonl", None)),
        ("s3://bucket/usage", "csv", ("csv", None)),
        ("s3://bucket/usage", "parquet", ("parquet", None)),
        ("s3://bucket/usage.gz", "csv", ("csv", "gzip")),
        ("s3://bucket/usage.csv", "csv", ("csv", None)),
        ("s3://bucket/usage.csv", " CSV ", ("csv", None)),
        ("s3://bucket/usage.parquet", "parquet", ("parquet", None)),
        ("s3://bucket/usage.jsonl.gz", "jsonl", ("jsonl", "gzip")),
    ],
)
def test_format_and_compression_come_from_file_format_or_the_suffix(destination, file_format, expected):
    spec = resolve_output(destination, file_format)
    assert (spec.file_format, spec.compression) == expected
    assert spec.uri == destination
    assert spec.file_format in FORMATS


@pytest.mark.parametrize(
    ("destination", "uri"),
    [
        ("/data/cloudflare/usage.jsonl", "file:///data/cloudflare/usage.jsonl"),
        ("file:///data/cloudflare/usage.jsonl", "file:///data/cloudflare/usage.jsonl"),
        ("  s3://bucket/usage.jsonl\n", "s3://bucket/usage.jsonl"),
        ("S3://bucket/usage.jsonl", "s3://bucket/usage.jsonl"),
        ("s3://my_conn@bucket/usage.jsonl", "s3://my_conn@bucket/usage.jsonl"),
    ],
)
def test_absolute_local_paths_become_file_uris_and_uris_are_normalised(destination, uri):
    assert resolve_output(destination).uri == uri


def test_the_spec_is_a_frozen_value():
    spec = resolve_output("s3://bucket/usage.csv.gz")
    assert spec == OutputSpec(uri="s3://bucket/usage.csv.gz", file_format="csv", compression="gzip")
    with pytest.raises(AttributeError):
        spec.uri = "s3://elsewhere/x.jsonl"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("destination", "file_format", "expected_parts"),
    [
        ("", None, ["destination: is empty", "s3://"]),
        ("   ", None, ["destination: is empty"]),
        (None, None, ["destination: is empty"]),
        ("s3://bucket/usage/", None, ["destination", "ends with '/'", "directory", "Add a file name"]),
        ("file:///data/usage/", None, ["destination", "directory", "Add a file name"]),
        ("s3://bucket", None, ["destination", "names a bucket, not a file", "Add the object key"]),
        ("s3://", None, ["destination", "no bucket", "s3://<bucket>/<key>"]),
        ("s3:///usage.jsonl", None, ["destination", "no bucket"]),
        ("data/usage.jsonl", None, ["destination", "relative path", "absolute path", "URI"]),
        ("usage.jsonl", None, ["destination", "relative path"]),
        ("s3:/bucket/usage.jsonl", None, ["destination", "not a URI", "scheme://bucket/key"]),
        ("s3:bucket/usage.jsonl", None, ["destination", "not a URI"]),
        ("file://data/usage.jsonl", None, ["destination", "not an absolute file URI", "file:///"]),
        ("https://example.com/usage.jsonl", None, ["destination", "read-only"]),
        ("//bucket/usage.jsonl", None, ["destination", "relative path"]),
        ("s3://bucket/usage.jsonl", "xml", ["file_format must be one of 'jsonl', 'csv', 'parquet'", "'xml'"]),
        ("s3://bucket/usage.jsonl", "json", ["file_format", "JSON Lines is 'jsonl'"]),
        ("s3://bucket/usage.jsonl", 3, ["file_format", "3 is not a file format"]),
        (
            "s3://bucket/usage.csv",
            "parquet",
            ["destination", "ends in '.csv'", "csv", "file_format='parquet'", "Change the suffix"],
        ),
        ("s3://bucket/usage.jsonl.gz", "csv", ["ends in '.jsonl'", "file_format='csv'"]),
        ("s3://bucket/usage.parquet.gz", None, ["'.gz'", "Parquet", "Drop '.gz'"]),
        ("s3://bucket/usage.gz", "parquet", ["'.gz'", "Parquet", "Drop '.gz'"]),
    ],
)
def test_bad_input_is_a_value_error_naming_the_parameter_and_the_fix(destination, file_format, expected_parts):
    with pytest.raises(CloudflareInputError) as error:  # a ValueError too
        resolve_output(destination, file_format)
    message = str(error.value)
    for part in expected_parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_resolve_output_does_no_io(tmp_path):
    missing = tmp_path / "does" / "not" / "exist" / "usage.parquet"
    resolve_output(str(missing))
    assert not (tmp_path / "does").exists()
