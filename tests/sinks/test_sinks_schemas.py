"""Stable file schemas: the partitions of one source read together as one table (issue 14).

CSV and Parquet columns get their types from the documentation, never from a day's values: a
documented column has its documented type, an undocumented field is always a string (JSON text
for other values). Days where an undocumented field is absent, null, an integer or a fraction,
and days missing a documented field, must read as one table with the usual readers.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from airflow_provider_cfbilling.records import columns_for
from airflow_provider_cfbilling.sinks import read_records, resolve_output, write_records

V2_COLUMNS = columns_for("v2")
DOCUMENTED = [column.name for column in V2_COLUMNS]
ARROW_TYPES = {
    "string": pa.string(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
# Per charge date, what the undocumented field x_NewMetric holds (absent: the key is missing).
ABSENT = object()
DAYS = {
    "2025-05-01": ABSENT,
    "2025-05-02": None,
    "2025-05-03": 7,
    "2025-05-04": 5.5,
    "2025-05-05": "no records",  # a day without usage: an empty partition
}
# The day on which no record carries the documented field ContractedCost.
DAY_WITHOUT_CONTRACTED_COST = "2025-05-03"


def _day_records(make_records, day: str) -> list[dict]:
    if DAYS[day] == "no records":
        return []
    records = []
    for index, record in enumerate(make_records(3)):
        # ConsumedQuantity comes as a JSON integer (150000 + index): documented as a number.
        record["ChargePeriodStart"] = f"{day}T00:00:00Z"
        record["ChargePeriodEnd"] = None
        if DAYS[day] is not ABSENT:
            record["x_NewMetric"] = DAYS[day]
        if day == DAY_WITHOUT_CONTRACTED_COST:
            del record["ContractedCost"]
        record["ChargeDescription"] = f"{day} #{index}"
        records.append(record)
    return records


def _write_days(root, make_records, name: str) -> dict[str, list[dict]]:
    written = {}
    for day in DAYS:
        records = _day_records(make_records, day)
        write_records(iter(records), resolve_output(f"file://{root}/charge_date={day}/{name}"), columns=V2_COLUMNS)
        written[day] = records
    return written


def _expected_new_metric(day: str) -> str | None:
    value = DAYS[day]
    return None if value is ABSENT or value is None else json.dumps(value)


def test_parquet_partitions_of_different_days_read_as_one_table(tmp_path, make_records):
    written = _write_days(tmp_path, make_records, "usage.parquet")
    files = sorted(tmp_path.glob("charge_date=*/usage.parquet"))
    schemas = {path.parent.name.removeprefix("charge_date="): pq.read_schema(path) for path in files}

    # Every file: the documented columns, in order, with their types; x_NewMetric where carried.
    for day, schema in schemas.items():
        carried = DAYS[day] is not ABSENT and DAYS[day] != "no records"
        assert schema.names == DOCUMENTED + (["x_NewMetric"] if carried else []), day
        for column in V2_COLUMNS:
            assert schema.field(column.name).type == ARROW_TYPES[column.type], (day, column.name)
        if carried:
            assert schema.field("x_NewMetric").type == pa.string(), day
    # The bug: a field's type varied between files (string, int64, double), so this failed.
    unified = pa.unify_schemas(list(schemas.values()))
    assert unified.names == [*DOCUMENTED, "x_NewMetric"]

    partitioning = ds.partitioning(pa.schema([("charge_date", pa.string())]), flavor="hive")
    # Without a unified schema, pyarrow takes the first file's: the documented columns.
    plain = ds.dataset(tmp_path, format="parquet", partitioning=partitioning).to_table()
    assert plain.num_rows == 12
    assert plain.schema.field("ConsumedQuantity").type == pa.float64()

    table = ds.dataset(
        tmp_path,
        format="parquet",
        partitioning=partitioning,
        schema=unified.append(pa.field("charge_date", pa.string())),
    ).to_table()
    assert table.schema.field("x_NewMetric").type == pa.string()
    assert table.schema.field("ConsumedQuantity").type == pa.float64()
    assert table.schema.field("ContractedCost").type == pa.float64()
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("ChargePeriodEnd").type == pa.timestamp("us", tz="UTC")
    rows = sorted(table.to_pylist(), key=lambda row: row["ChargeDescription"])
    expected = [(day, record) for day, records in written.items() for record in records]
    assert len(rows) == len(expected) == 12
    for row, (day, record) in zip(rows, expected, strict=True):
        assert row["charge_date"] == day
        assert row["ChargeDescription"] == record["ChargeDescription"]
        assert row["x_NewMetric"] == _expected_new_metric(day), day
        assert row["ConsumedQuantity"] == float(record["ConsumedQuantity"])
        assert row["ContractedCost"] == record.get("ContractedCost"), day
        assert row["ChargePeriodStart"] == datetime.fromisoformat(f"{day}T00:00:00+00:00")
        assert row["ChargePeriodEnd"] is None
    assert {row["x_NewMetric"] for row in rows} == {None, "7", "5.5"}


def test_csv_partitions_of_different_days_read_as_one_table(tmp_path, make_records):
    written = _write_days(tmp_path, make_records, "usage.csv.gz")

    tables = []
    for day, records in written.items():
        text = gzip.decompress((tmp_path / f"charge_date={day}" / "usage.csv.gz").read_bytes()).decode()
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = rows[0], rows[1:]
        carried = DAYS[day] is not ABSENT and bool(records)
        assert header == DOCUMENTED + (["x_NewMetric"] if carried else []), day
        assert len(body) == len(records)
        for record, row in zip(records, body, strict=True):
            cells = dict(zip(header, row, strict=True))
            assert cells.get("x_NewMetric", "") == (_expected_new_metric(day) or ""), day
            assert cells["ConsumedQuantity"] == str(record["ConsumedQuantity"])
            assert cells["ContractedCost"] == ("" if "ContractedCost" not in record else repr(record["ContractedCost"]))
            assert cells["ChargePeriodStart"] == f"{day}T00:00:00Z"
        # A reader given the documented types (and strings for the rest) reads every day alike.
        types = {column.name: ARROW_TYPES[column.type] for column in V2_COLUMNS} | {"x_NewMetric": pa.string()}
        tables.append(
            pa_csv.read_csv(
                io.BytesIO(text.encode()),
                convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True),
            )
        )

    table = pa.concat_tables(tables, promote_options="default")
    assert table.num_rows == 12
    assert table.schema.field("x_NewMetric").type == pa.string()
    assert table.schema.field("ConsumedQuantity").type == pa.float64()
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("us", tz="UTC")
    assert table.column("x_NewMetric").to_pylist() == [None] * 6 + ["7"] * 3 + ["5.5"] * 3
    assert table.column("ContractedCost").null_count == 3
    assert table.column("ChargePeriodStart").to_pylist()[0] == datetime(2025, 5, 1, tzinfo=timezone.utc)


UNKNOWN_VALUES = [
    True,
    False,
    0,
    -3,
    2**70,
    1.5,
    1e-07,
    1e22,
    "",
    'text, with "quotes"\nand a newline',
    "ünïcødé",
    {"a": [1, None], "b": {"c": True}},
    [],
    None,
]


def _json_text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def test_undocumented_values_are_the_same_json_text_in_csv_and_parquet(tmp_path):
    records = [{"ChargePeriodStart": "2025-05-01T00:00:00Z", "x_New": value} for value in UNKNOWN_VALUES]
    for name in ("u.csv", "u.parquet", "u.jsonl"):
        write_records(iter(records), resolve_output(f"file://{tmp_path / name}"), columns=V2_COLUMNS)

    parquet = pq.read_table(tmp_path / "u.parquet")
    assert parquet.schema.field("x_New").type == pa.string()
    assert parquet.column("x_New").to_pylist() == [_json_text(value) for value in UNKNOWN_VALUES]
    cells = [row["x_New"] for row in csv.DictReader(io.StringIO((tmp_path / "u.csv").read_text(), newline=""))]
    assert cells == [_json_text(value) or "" for value in UNKNOWN_VALUES], "null is an empty cell"
    assert read_records(f"file://{tmp_path / 'u.jsonl'}") == records, "JSON Lines keeps values as sent"


@pytest.mark.parametrize("name", ["u.jsonl", "u.jsonl.gz", "u.csv", "u.csv.gz", "u.parquet"])
@pytest.mark.parametrize("count", [0, 2500], ids=["empty", "records"])
def test_sha256_is_the_digest_of_the_bytes_as_stored(tmp_path, make_records, name, count):
    uri = f"file://{tmp_path / name}"

    result = write_records(
        make_records(count, unknown_from=100), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000
    )

    data = (tmp_path / name).read_bytes()
    assert result.sha256 == hashlib.sha256(data).hexdigest(), "after compression, exactly as stored"
    assert (result.bytes, result.records) == (len(data), count)
    rerun = write_records(
        make_records(count, unknown_from=100), resolve_output(uri), columns=V2_COLUMNS, batch_size=1000
    )
    assert rerun.sha256 == result.sha256, "a re-run writes the same bytes"
