"""write_records on local disk: every format and compression, read back by independent readers."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import sys
import tracemalloc
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from harness import hook_lineage_module, lineage_inputs, lineage_outputs

from airflow_provider_cfbilling.records import columns_for, redact_profile
from airflow_provider_cfbilling.sinks import FORMATS, WriteResult, read_records, resolve_output, write_records

# A discarded write must not come back from a destructor (gzip and fsspec files flush when collected).
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

V2_COLUMNS = columns_for("v2")
UNKNOWN_FIELDS = ["x_AlwaysNull", "x_FutureCount", "x_FutureFlag", "x_FutureNested", "x_FutureRatio"]
FORMAT_CASES = [
    ("usage.jsonl", "jsonl", None),
    ("usage.jsonl.gz", "jsonl", "gzip"),
    ("usage.csv", "csv", None),
    ("usage.csv.gz", "csv", "gzip"),
    ("usage.parquet", "parquet", None),
]
NAMES = [case[0] for case in FORMAT_CASES]


def _uri(directory, name: str) -> str:
    # Object-storage URIs are literal (no percent-encoding): file:///.../date=2025-05-01/usage.jsonl
    return f"file://{directory / name}"


def _raw(path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _csv_text(value) -> str:
    """What a CSV cell must hold for a JSON value (written independently of the sink's code)."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


# ---- each format, read back --------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_jsonl_is_one_compact_object_per_line_exactly_as_received(tmp_path, make_records, compressed):
    name = "usage.jsonl.gz" if compressed else "usage.jsonl"
    records = list(make_records(2500, unknown_from=1200))

    result = write_records(iter(records), resolve_output(_uri(tmp_path, name)), columns=V2_COLUMNS, batch_size=1000)

    text = _raw(tmp_path / name).decode("utf-8")
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert len(lines) == 2500
    assert [json.loads(line) for line in lines] == records
    assert [list(json.loads(line)) for line in lines] == [list(r) for r in records], "keys keep their order"
    assert lines == [json.dumps(record, separators=(",", ":"), ensure_ascii=False) for record in records]
    assert "ünïcødé" in lines[0], "UTF-8, not \\u escapes"
    data = (tmp_path / name).read_bytes()
    assert result == WriteResult(
        uri=_uri(tmp_path, name),
        file_format="jsonl",
        records=2500,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_csv_has_known_columns_then_unknown_sorted_and_json_like_cells(tmp_path, make_records, compressed):
    name = "usage.csv.gz" if compressed else "usage.csv"
    records = list(make_records(2500, unknown_from=1200))

    result = write_records(iter(records), resolve_output(_uri(tmp_path, name)), columns=V2_COLUMNS, batch_size=1000)

    text = _raw(tmp_path / name).decode("utf-8")
    assert "\r" not in text, "\\n line endings"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    assert header == [column.name for column in V2_COLUMNS] + UNKNOWN_FIELDS
    assert len(body) == 2500
    for record, row in zip(records, body, strict=True):
        assert row == [_csv_text(record.get(column)) for column in header]
    # Spot checks of the cell rules.
    cells = dict(zip(header, body[1203], strict=True))
    assert cells["Tags"] == '{"team":"fintech","key-only":true}'
    assert cells["x_FutureFlag"] == "false"
    assert cells["BilledCost"] == ""
    assert float(cells["ContractedCost"]) == records[1203]["ContractedCost"], "floats round-trip"
    assert cells["ChargeDescription"] == records[1203]["ChargeDescription"], "quotes and newlines survive"
    assert result.records == 2500
    assert result.bytes == (tmp_path / name).stat().st_size


def test_parquet_has_typed_known_columns_and_unknown_ones_as_json_text(tmp_path, make_records):
    records = list(make_records(2500, unknown_from=1200))

    result = write_records(
        iter(records), resolve_output(_uri(tmp_path, "usage.parquet")), columns=V2_COLUMNS, batch_size=1000
    )

    parquet = pq.ParquetFile(tmp_path / "usage.parquet")
    assert parquet.metadata.num_rows == 2500
    assert parquet.metadata.num_row_groups == 3, "one row group per batch"
    schema = parquet.schema_arrow
    expected_types = {
        "timestamp": pa.timestamp("us", tz="UTC"),
        "number": pa.float64(),
        "integer": pa.int64(),
        "boolean": pa.bool_(),
        "string": pa.string(),
    }
    assert schema.names == [column.name for column in V2_COLUMNS] + UNKNOWN_FIELDS
    for column in V2_COLUMNS:
        assert schema.field(column.name).type == expected_types[column.type], column.name
    for name in UNKNOWN_FIELDS:
        assert schema.field(name).type == pa.string(), f"{name}: undocumented fields are strings, never inferred"

    rows = parquet.read().to_pylist()
    first, late = rows[0], rows[1201]
    assert first["ChargePeriodStart"] == datetime(2025, 5, 1, tzinfo=timezone.utc)
    assert first["ChargePeriodStart"].utcoffset().total_seconds() == 0
    assert first["ConsumedQuantity"] == 150000.0 and isinstance(first["ConsumedQuantity"], float)
    assert first["ContractedCost"] == records[0]["ContractedCost"]
    assert first["PricingQuantity"] == 150000.5
    assert first["BilledCost"] is None
    assert first["Tags"] == '{"team":"fintech","key-only":true}'
    assert first["x_FutureCount"] is None
    assert late["x_FutureCount"] == "1201"
    assert late["x_FutureFlag"] == "true"
    assert late["x_AlwaysNull"] is None, "JSON null stays null, not the text 'null'"
    assert rows[1200]["x_FutureRatio"] == json.dumps(1200 / 7)
    assert float(rows[1200]["x_FutureRatio"]) == 1200 / 7, "the JSON text round-trips"
    assert rows[1200]["x_FutureNested"] == '{"a":[1,2],"b":null}'
    for record, row in zip(records, rows, strict=True):
        assert row["ChargeDescription"] == record["ChargeDescription"]
        assert row["ConsumedQuantity"] == record["ConsumedQuantity"]
        for name in UNKNOWN_FIELDS:
            assert row[name] == (None if record.get(name) is None else _csv_text(record[name])), "same text as CSV"
    assert result.records == 2500
    assert result.bytes == (tmp_path / "usage.parquet").stat().st_size


@pytest.mark.parametrize("name", ["paygo.csv", "paygo.csv.gz", "paygo.parquet"])
@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [
        ("PricingQuantity", 10.5, "integer"),
        ("PricingQuantity", 2**63, "integer"),
        ("ConsumedQuantity", "n/a", "number"),
        ("ConsumedQuantity", True, "number"),
        ("ChargePeriodStart", "not a time", "timestamp"),
        ("ChargePeriodStart", 1738368000, "timestamp"),
    ],
)
def test_a_documented_value_that_does_not_fit_its_type_fails_the_write_and_keeps_the_previous_object(
    tmp_path, name, field, value, kind
):
    columns = columns_for("paygo")
    uri = _uri(tmp_path, name)
    good = {"ChargePeriodStart": "2025-02-01T00:00:00Z", "PricingQuantity": 10, "ConsumedQuantity": 1}
    write_records([good], resolve_output(uri), columns=columns)
    before = (tmp_path / name).read_bytes()
    records = [good, good, {**good, field: value}]

    with pytest.raises(ValueError) as raised:
        write_records(iter(records), resolve_output(uri), columns=columns, batch_size=2)

    message = str(raised.value)
    assert f"column {field!r} of paygo records is documented as {kind}" in message
    assert repr(value) in message and type(value).__name__ in message
    assert "record format has changed" in message and "JSON Lines" in message
    assert uri in message
    assert (tmp_path / name).read_bytes() == before, "the previous object is untouched"
    assert os.listdir(tmp_path) == [name], "and nothing else is left"


def test_a_misfit_in_snake_key_style_names_the_column_as_written(tmp_path):
    with pytest.raises(ValueError, match=r"column 'pricing_quantity' of paygo records is documented as integer"):
        write_records(
            [{"pricing_quantity": "many"}],
            resolve_output(_uri(tmp_path, "p.parquet")),
            columns=columns_for("paygo", "snake"),
        )


def test_parquet_accepts_integral_floats_in_integer_columns_and_odd_timestamp_spellings(tmp_path):
    records = [
        {"ChargePeriodStart": "2025-02-01", "PricingQuantity": 10.0},
        {"ChargePeriodStart": "2025-02-01T01:00:00+01:00", "PricingQuantity": 11},
        {"ChargePeriodStart": "2025-02-01T00:00:00.123456789Z", "PricingQuantity": None},
    ]
    write_records(iter(records), resolve_output(_uri(tmp_path, "p.parquet")), columns=columns_for("paygo"))

    table = pq.read_table(tmp_path / "p.parquet")
    assert table.schema.field("PricingQuantity").type == pa.int64()
    assert table.column("PricingQuantity").to_pylist() == [10, 11, None]
    assert table.column("ChargePeriodStart").to_pylist() == [
        datetime(2025, 2, 1, tzinfo=timezone.utc),
        datetime(2025, 2, 1, tzinfo=timezone.utc),
        datetime(2025, 2, 1, 0, 0, 0, 123456, tzinfo=timezone.utc),
    ]

    write_records(iter(records), resolve_output(_uri(tmp_path, "p.csv")), columns=columns_for("paygo"))
    rows = list(csv.DictReader(io.StringIO((tmp_path / "p.csv").read_text(), newline="")))
    assert [row["PricingQuantity"] for row in rows] == ["10", "11", ""], "an integer column holds integers"
    assert [row["ChargePeriodStart"] for row in rows] == [record["ChargePeriodStart"] for record in records]


def test_a_redacted_profile_keeps_its_documented_types_with_redacted_integers_as_null(tmp_path):
    profile = {
        "id": "b69a",
        "card_expiry_month": 12,
        "first_name": "Ada",
        "is_partner": False,
        "created_on": "2014-03-01T12:21:59.3456Z",
    }
    columns = columns_for("profile")

    write_records([redact_profile(profile)], resolve_output(_uri(tmp_path, "profile.parquet")), columns=columns)
    write_records([redact_profile(profile)], resolve_output(_uri(tmp_path, "profile.csv")), columns=columns)
    write_records([profile], resolve_output(_uri(tmp_path, "plain.parquet")), columns=columns)

    table = pq.read_table(tmp_path / "profile.parquet")
    assert table.schema == pq.read_schema(tmp_path / "plain.parquet"), "redaction does not change the schema"
    assert table.schema.field("card_expiry_month").type == pa.int64()
    row = table.to_pylist()[0]
    assert row["card_expiry_month"] is None, "no integer to show: withheld, like a missing value"
    assert row["first_name"] == "[REDACTED]", "string columns say so"
    assert row["is_partner"] is False
    assert row["created_on"] == datetime(2014, 3, 1, 12, 21, 59, 345600, tzinfo=timezone.utc)
    cells = next(csv.DictReader(io.StringIO((tmp_path / "profile.csv").read_text(), newline="")))
    assert (cells["card_expiry_month"], cells["first_name"]) == ("", "[REDACTED]")


@pytest.mark.parametrize("name", NAMES)
def test_read_records_reads_back_what_was_written(tmp_path, make_records, name):
    records = list(make_records(30, unknown_from=10))
    uri = _uri(tmp_path, name)
    write_records(iter(records), resolve_output(uri), columns=V2_COLUMNS)

    back = read_records(uri)

    assert len(back) == 30
    if name.startswith("usage.jsonl"):
        assert back == records
    elif name.startswith("usage.csv"):
        assert back[11]["x_FutureCount"] == "11" and back[11]["BilledCost"] is None
    else:
        assert back[11]["x_FutureCount"] == "11", "undocumented fields are strings in Parquet too"
        assert back[0]["ChargePeriodStart"] == datetime(2025, 5, 1, tzinfo=timezone.utc)


# ---- empty windows ---------------------------------------------------------------------------


def test_empty_windows_give_valid_empty_files(tmp_path, make_records):
    # A day of documented records, to compare the empty day's schema with.
    write_records(make_records(3), resolve_output(_uri(tmp_path, "full.parquet")), columns=V2_COLUMNS)
    results = {
        name: write_records(iter([]), resolve_output(_uri(tmp_path, name)), columns=V2_COLUMNS) for name in NAMES
    }

    assert (tmp_path / "usage.jsonl").read_bytes() == b""
    assert gzip.decompress((tmp_path / "usage.jsonl.gz").read_bytes()) == b""
    header = ",".join(column.name for column in V2_COLUMNS) + "\n"
    assert (tmp_path / "usage.csv").read_text() == header
    assert gzip.decompress((tmp_path / "usage.csv.gz").read_bytes()).decode() == header
    table = pq.read_table(tmp_path / "usage.parquet")
    assert table.num_rows == 0
    assert table.schema == pq.read_schema(tmp_path / "full.parquet"), "the documented schema, no rows"
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("ConsumedQuantity").type == pa.float64()
    for name, result in results.items():
        data = (tmp_path / name).read_bytes()
        assert result.records == 0
        assert result.bytes == len(data)
        assert result.sha256 == hashlib.sha256(data).hexdigest()


# ---- idempotency -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_rerun_writes_byte_identical_output(tmp_path, make_records, name):
    uri = _uri(tmp_path, name)
    write_records(make_records(3000, unknown_from=100), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000)
    first = (tmp_path / name).read_bytes()

    write_records(make_records(3000, unknown_from=100), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000)

    assert (tmp_path / name).read_bytes() == first
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("name", ["usage.jsonl", "usage.jsonl.gz", "usage.csv", "usage.csv.gz"])
def test_text_output_does_not_depend_on_the_batch_size(tmp_path, make_records, name):
    uri = _uri(tmp_path, name)
    write_records(make_records(500, unknown_from=100), resolve_output(uri), columns=V2_COLUMNS, batch_size=7)
    small_batches = (tmp_path / name).read_bytes()
    write_records(make_records(500, unknown_from=100), resolve_output(uri), columns=V2_COLUMNS, batch_size=10_000)
    assert _raw(tmp_path / name) == (gzip.decompress(small_batches) if name.endswith(".gz") else small_batches)


def test_gzip_is_deterministic_with_no_name_and_no_timestamp(tmp_path, make_records):
    write_records(make_records(10), resolve_output(_uri(tmp_path, "usage.jsonl.gz")), columns=V2_COLUMNS)
    header = (tmp_path / "usage.jsonl.gz").read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] == 0, "no FNAME or other optional header fields"
    assert header[4:8] == b"\x00\x00\x00\x00", "mtime 0"


# ---- atomicity --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_failure_mid_stream_keeps_the_previous_object_and_leaves_nothing_else(
    tmp_path, make_records, fail_after, boom, name
):
    uri = _uri(tmp_path, name)
    write_records(make_records(100), resolve_output(uri), columns=V2_COLUMNS)
    previous = (tmp_path / name).read_bytes()

    with pytest.raises(boom, match="after 5000 records"):
        write_records(fail_after(make_records(20_000), 5000), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000)

    assert (tmp_path / name).read_bytes() == previous
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("name", NAMES)
def test_a_failure_with_no_previous_object_leaves_no_object(tmp_path, make_records, fail_after, boom, name):
    directory = tmp_path / "date=2025-05-01"
    with pytest.raises(boom):
        write_records(
            fail_after(make_records(20_000), 5000),
            resolve_output(_uri(directory, name)),
            columns=V2_COLUMNS,
            batch_size=1000,
        )
    assert not directory.exists() or os.listdir(directory) == []
    assert os.listdir(tmp_path) in ([], ["date=2025-05-01"])


def test_a_failure_at_the_final_rename_cleans_up(tmp_path, make_records):
    (tmp_path / "usage.jsonl").mkdir()  # the destination is taken by a directory

    with pytest.raises(OSError):
        write_records(make_records(10), resolve_output(_uri(tmp_path, "usage.jsonl")), columns=V2_COLUMNS)

    assert os.listdir(tmp_path) == ["usage.jsonl"]
    assert os.listdir(tmp_path / "usage.jsonl") == []


def test_sigkill_mid_write_leaves_the_previous_object(tmp_path, make_records):
    import signal
    import subprocess
    import time

    uri = _uri(tmp_path, "usage.jsonl")
    write_records(make_records(10), resolve_output(uri), columns=V2_COLUMNS)
    previous = (tmp_path / "usage.jsonl").read_bytes()
    script = f"""
import itertools, sys, time
from airflow_provider_cfbilling.sinks import resolve_output, write_records

def records():
    for index in itertools.count():
        if index == 5000:
            print("writing", flush=True)
        if index >= 5000:
            time.sleep(0.001)
        yield {{"ChargePeriodStart": "2025-05-01T00:00:00Z", "index": index, "padding": "x" * 200}}

write_records(records(), resolve_output({uri!r}), columns=[], batch_size=1000)
"""
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            assert "writing" in (line.strip() for line in process.stdout), "the writer died early"
            time.sleep(0.3)
            temporaries = [name for name in os.listdir(tmp_path) if name != "usage.jsonl"]
            assert temporaries, "the write is in progress in a temporary sibling"
            assert (tmp_path / "usage.jsonl").read_bytes() == previous, "readers see the old object meanwhile"
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)

    assert (tmp_path / "usage.jsonl").read_bytes() == previous
    leftovers = [name for name in os.listdir(tmp_path) if name != "usage.jsonl"]
    # Only a hidden temporary sibling can remain after SIGKILL; readers of the partition skip it.
    assert all(name.startswith(".usage.jsonl.") and name.endswith(".tmp") for name in leftovers), leftovers


# ---- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_memory_does_not_grow_with_the_number_of_records(tmp_path, make_records, name):
    uri = _uri(tmp_path, name)
    write_records(make_records(10), resolve_output(uri), columns=V2_COLUMNS)  # warm up imports and caches

    tracemalloc.start()
    try:
        result = write_records(make_records(40_000), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.records == 40_000
    # 40,000 records are ~40 MB of JSON and far more as Python objects; a batch of 1,000 is ~3 MB.
    assert peak < 12 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_records_are_consumed_lazily(tmp_path, make_records):
    consumed = []

    def records():
        for record in make_records(2500):
            consumed.append(1)
            yield record

    seen_in_file = []

    def watching():
        for index, record in enumerate(records()):
            if index == 2000:
                seen_in_file.append(len(consumed))
            yield record

    write_records(watching(), resolve_output(_uri(tmp_path, "usage.jsonl")), columns=V2_COLUMNS, batch_size=1000)
    assert seen_in_file == [2001], "record 2000 was pulled only after the first two batches"
    assert len(consumed) == 2500


# ---- other promises ----------------------------------------------------------------------------


def test_plain_absolute_paths_and_missing_parent_directories_work(tmp_path, make_records):
    target = tmp_path / "account=abc" / "date=2025-05-01" / "usage.jsonl"

    result = write_records(make_records(3), resolve_output(str(target)), columns=V2_COLUMNS)

    assert result.uri == f"file://{target}"
    assert len(target.read_text().splitlines()) == 3


def test_the_final_object_is_reported_as_lineage_once_and_nothing_on_failure(
    tmp_path, make_records, lineage_collector, fail_after, boom
):
    uri = _uri(tmp_path, "usage.csv.gz")
    write_records(make_records(3000), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000)
    with pytest.raises(boom):
        write_records(fail_after(make_records(100), 50), resolve_output(_uri(tmp_path, "other.jsonl")), columns=[])

    outputs = lineage_outputs(lineage_collector)
    assert [output_uri for output_uri, _count in outputs] == [uri]
    assert outputs[0][1] == 1
    assert lineage_inputs(lineage_collector) == []


def test_a_broken_lineage_collector_does_not_fail_the_write(tmp_path, make_records, monkeypatch):
    lineage = hook_lineage_module()

    def broken():
        raise RuntimeError("lineage backend down")

    monkeypatch.setattr(lineage, "get_hook_lineage_collector", broken)
    result = write_records(make_records(3), resolve_output(_uri(tmp_path, "usage.jsonl")), columns=V2_COLUMNS)
    assert result.records == 3


def test_parquet_without_pyarrow_says_how_to_install_it_before_reading_any_record(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    pulled = []

    def records():
        pulled.append(1)
        yield {"a": 1}

    with pytest.raises(ImportError, match=r"pip install 'airflow-provider-cfbilling\[parquet\]'"):
        write_records(records(), resolve_output(_uri(tmp_path, "usage.parquet")), columns=[])
    assert pulled == []
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, True, "10"])
def test_a_bad_batch_size_is_refused(tmp_path, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        write_records([], resolve_output(_uri(tmp_path, "usage.jsonl")), columns=[], batch_size=batch_size)


def test_every_format_is_covered_here():
    assert {case[1] for case in FORMAT_CASES} == set(FORMATS)
