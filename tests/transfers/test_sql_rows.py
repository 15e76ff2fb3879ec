"""The row key and the table's shape, as pure functions: what identifies a row, what never collides,
what never depends on the order of the API's records or on one day's values."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from typing import Any

import pytest

from airflow_provider_cfbilling.emulator import DEFAULT_ACCOUNT_ID, Emulator
from airflow_provider_cfbilling.exceptions import CloudflareInputError
from airflow_provider_cfbilling.records import KEY_STYLES, SCHEMAS, columns_for, snake_key
from airflow_provider_cfbilling.transfers._sql_keys import IDENTITY_FIELDS, KEY_VERSION, RowKeys, settled_keys
from airflow_provider_cfbilling.transfers._sql_rows import RecordFormatError, RowBuilder, copy_line
from airflow_provider_cfbilling.transfers._sql_schema import (
    GENERIC,
    OWN_COLUMNS,
    POSTGRES,
    SQLITE,
    create_table_sql,
    dialect_for,
    identifier,
    layout_for,
)

CLOCK = dt.datetime(2025, 6, 20, 12, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def v2_records() -> list[dict[str, Any]]:
    """Three days of v2 usage with a restated day (new correction rows), as the API sends them."""
    with Emulator(seed=3, clock=CLOCK, populate_costs=True, extra_fields=True) as emulator:
        emulator.restate(DEFAULT_ACCOUNT_ID, "2025-06-11", factor=1.2, corrections=40)
        return list(emulator.iter_expected_records(DEFAULT_ACCOUNT_ID, "2025-06-10", "2025-06-13"))


def keys_of(records: list[dict[str, Any]], source: str = "v2", account_id: str = DEFAULT_ACCOUNT_ID) -> list[str]:
    keyer = RowKeys(source, account_id)
    keys = [keyer.key(record) for record in records]
    assert keyer.shared == {}, "these records share an identity: their keys are settled in the database"
    return keys


def test_every_record_of_a_window_gets_its_own_key(v2_records: list[dict[str, Any]]) -> None:
    keys = keys_of(v2_records)
    assert len(set(keys)) == len(keys) == len(v2_records)
    assert all(len(key) == 32 and int(key, 16) >= 0 for key in keys)


def test_the_key_is_the_documented_digest_of_the_identity(v2_records: list[dict[str, Any]]) -> None:
    record = next(record for record in v2_records if record["ChargeClass"] is None)
    identity = [KEY_VERSION, "v2", DEFAULT_ACCOUNT_ID, *(record.get(name) for name in IDENTITY_FIELDS["v2"])]
    text = json.dumps(identity, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    assert keys_of([record]) == [hashlib.sha256(text.encode()).hexdigest()[:32]]


def test_the_same_records_get_the_same_keys_in_any_order(v2_records: list[dict[str, Any]]) -> None:
    first = dict(zip(map(_fingerprint, v2_records), keys_of(v2_records), strict=True))
    shuffled = list(v2_records)
    random.Random(11).shuffle(shuffled)
    assert dict(zip(map(_fingerprint, shuffled), keys_of(shuffled), strict=True)) == first


def _fingerprint(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


def test_a_restated_quantity_keeps_the_key_and_a_timestamp_spelling_does_not_matter(
    v2_records: list[dict[str, Any]],
) -> None:
    record = next(record for record in v2_records if record["ChargeClass"] is None)
    restated = {**record, "ConsumedQuantity": record["ConsumedQuantity"] * 2, "BilledCost": 1.0}
    respelled = {**record, "ChargePeriodStart": record["ChargePeriodStart"].replace("Z", "+00:00")}
    assert keys_of([record]) == keys_of([restated]) == keys_of([respelled])


def test_corrections_of_one_series_are_told_apart_by_their_amounts(v2_records: list[dict[str, Any]]) -> None:
    regular = next(record for record in v2_records if record["ChargeClass"] is None)
    corrections = [{**regular, "ChargeClass": "Correction", "ConsumedQuantity": amount} for amount in (-3, 5)]
    keys = keys_of([regular, *corrections])
    assert len(set(keys)) == 3
    # An earlier correction keeps its key when a restatement adds another one.
    assert keys_of([regular, corrections[0]])[1] == keys[1]


def test_records_that_share_an_identity_get_provisional_keys_then_content_keys_in_any_order() -> None:
    base = {"ChargePeriodStart": "2025-06-10T00:00:00Z", "x_BillableMetricId": "m", "ChargeClass": "Correction"}
    twins = [dict(base, ConsumedQuantity=1), dict(base, ConsumedQuantity=1)]
    keyer = RowKeys("v2", DEFAULT_ACCOUNT_ID)
    first, second = (keyer.key(record) for record in twins)
    assert first != second and list(keyer.shared.values()) == [[first, second]]
    (identity,) = keyer.shared
    assert identity.hex() == first  # the first one was keyed by the identity before it was shared
    # Final keys come from what the rows store: different rows apart, identical ones numbered.
    stored = {"k1": ("a", 2.0), "k2": ("a", 1.0), "k3": ("a", 1.0)}
    final = settled_keys(identity, stored)
    assert len(set(final.values())) == 3 and not set(final.values()) & set(stored)
    reordered = settled_keys(identity, {"x": ("a", 1.0), "y": ("a", 2.0), "z": ("a", 1.0)})
    assert final["k1"] == reordered["y"] and {final["k2"], final["k3"]} == {reordered["x"], reordered["z"]}
    # However the driver spells a stored timestamp or JSON value.
    moment = dt.datetime(2025, 6, 10, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert settled_keys(identity, {"a": (moment, {"b": 1})}) == settled_keys(
        identity, {"a": (dt.datetime(2025, 6, 10, tzinfo=dt.timezone.utc), '{"b":1}')}
    )


def test_accounts_and_sources_never_share_a_key(v2_records: list[dict[str, Any]]) -> None:
    other = "0123456789abcdef0123456789abcdef"
    assert not set(keys_of(v2_records)) & set(keys_of(v2_records, account_id=other))
    as_paygo = RowKeys("paygo", DEFAULT_ACCOUNT_ID)  # (v2 records share PayGo identities: no matter here)
    assert not set(keys_of(v2_records)) & {as_paygo.key(record) for record in v2_records}


def test_paygo_rows_are_unique_by_their_identity_on_every_path() -> None:
    with Emulator(seed=5, clock=CLOCK, zones=4) as emulator:
        for path in ("paygo", "paygo-usage", "billable-usage"):
            records = list(emulator.iter_expected_records(DEFAULT_ACCOUNT_ID, "2025-06-01", "2025-06-08", source=path))
            assert len(set(keys_of(records, source="paygo"))) == len(records), path  # no shared identity


# --------------------------------------------------------------------------------------------
# The table's shape
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_style", KEY_STYLES)
@pytest.mark.parametrize("source", ["v2", "paygo"])
def test_columns_come_from_the_documented_schema_only(source: str, key_style: str) -> None:
    layout = layout_for(source, key_style)
    names = [column.name for column in layout.columns]
    assert len(set(names)) == len(names)  # the operator's columns collide with no documented field
    own = OWN_COLUMNS[key_style]
    assert names[:3] == [own["row_key"], own["account_id"], own["source"]] and names[-1] == own["extra_fields"]
    schemas = ["v2"] if source == "v2" else ["billable-usage", "paygo-usage", "paygo"]
    documented = {column.name: column.type for schema in schemas for column in columns_for(schema, key_style)}
    assert {column.name for column in layout.fields} == set(documented)
    for column in layout.fields:
        assert column.kind == ("json" if column.field == "Tags" else documented[column.name])
    # The same layout for any day: built from the schema, never from values.
    assert layout == layout_for(source, key_style)


def test_row_key_column_names_per_key_style() -> None:
    assert layout_for("v2", "snake").row_key == "row_key"
    assert layout_for("v2", "api").row_key == "x_RowKey"
    assert layout_for("v2", "api").metric == "x_BillableMetricId"
    assert layout_for("paygo", "snake").metric is None
    for name in ("v2", "paygo", "paygo-usage", "billable-usage"):  # no documented usage field spells like ours
        for column in SCHEMAS[name]:
            assert column.name not in OWN_COLUMNS["api"].values()
            assert snake_key(column.name) not in OWN_COLUMNS["snake"].values()


def test_types_per_database() -> None:
    layout = layout_for("v2", "snake")
    postgres = create_table_sql(POSTGRES, layout, "usage", "billing")[0]
    assert '"row_key" TEXT NOT NULL PRIMARY KEY' in postgres
    assert '"charge_period_start" TIMESTAMP WITH TIME ZONE NOT NULL' in postgres
    assert '"consumed_quantity" DOUBLE PRECISION' in postgres and '"tags" JSONB' in postgres
    assert '"extra_fields" JSONB' in postgres and postgres.startswith('CREATE TABLE "billing"."usage"')
    sqlite = create_table_sql(SQLITE, layout, "usage", None)[0]
    assert '"charge_period_start" TEXT NOT NULL' in sqlite and '"consumed_quantity" REAL' in sqlite
    paygo = create_table_sql(SQLITE, layout_for("paygo", "snake"), "usage", None)[0]
    assert '"pricing_quantity" INTEGER' in paygo
    assert dialect_for("postgresql") is POSTGRES and dialect_for("sqlite") is SQLITE
    assert dialect_for("snowflake") is GENERIC


@pytest.mark.parametrize("name", ["usage", "Usage_2025", "_x", "a" * 63])
def test_plain_identifiers_are_accepted(name: str) -> None:
    assert identifier(name, "table") == name


@pytest.mark.parametrize("name", ["", "2025usage", "usage; DROP TABLE x", "a.b", 'us"age', "a" * 64, None, 3])
def test_anything_else_is_refused(name: Any) -> None:
    with pytest.raises(CloudflareInputError, match=r"table: .* is not a plain SQL identifier"):
        identifier(name, "table")


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def test_copy_text_escapes_what_copy_reads_specially() -> None:
    assert copy_line(("a\tb", "c\nd", "e\\f", None, 1.5, 2, "t")) == "a\\tb\tc\\nd\te\\\\f\t\\N\t1.5\t2\tt\n"


def test_a_value_of_another_type_than_documented_fails_clearly() -> None:
    builder = RowBuilder(layout_for("v2", "snake"), SQLITE, {"consumed_quantity"}, DEFAULT_ACCOUNT_ID, "/x")
    assert builder.row({"ChargePeriodStart": "2025-06-10T00:00:00Z", "ConsumedQuantity": "1.5"})[3] == 1.5
    with pytest.raises(RecordFormatError, match="ConsumedQuantity is 'lots', not a number"):
        builder.row({"ChargePeriodStart": "2025-06-10T00:00:00Z", "ConsumedQuantity": "lots"})


def test_fields_without_a_column_go_to_the_json_column_in_the_key_style() -> None:
    record = {"ChargePeriodStart": "2025-06-10T00:00:00Z", "ConsumedQuantity": 2, "x_NewThing": {"a": 1}}
    for key_style, extra in (("snake", "x_new_thing"), ("api", "x_NewThing")):
        layout = layout_for("v2", key_style)
        existing = {column.name for column in layout.columns} - {layout.fields[9].name}  # no consumed_quantity
        builder = RowBuilder(layout, POSTGRES, existing, DEFAULT_ACCOUNT_ID, "/x")
        row = dict(zip(builder.columns, builder.row(record), strict=True))
        quantity = "consumed_quantity" if key_style == "snake" else "ConsumedQuantity"
        assert json.loads(row[layout.extra_fields]) == {quantity: 2, extra: {"a": 1}}
        assert row[layout.charge_period_start] == "2025-06-10 00:00:00+00"
