"""SCHEMAS hold every documented field of every source, in documented order, with its type."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_cfbilling.records import KEY_STYLES, SCHEMAS, SOURCES, Column, columns_for, snake_key

OPENAPI_TYPES = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean"}


def _expected_type(prop: dict) -> str:
    if prop.get("type") == "string" and prop.get("format") == "date-time":
        return "timestamp"
    if prop.get("type") == "object":
        return "string"  # nested objects (v2 Tags) are written as compact JSON
    return OPENAPI_TYPES[prop["type"]]


# The sources whose record the OpenAPI extract documents (subscriptions and billing history come
# from the SDK's models: see more-endpoints.md and the comments in records.SCHEMAS).
OPENAPI_SOURCES = ("v2", "paygo", "paygo-usage", "billable-usage", "profile")


def test_there_is_a_schema_for_every_source_and_nothing_else():
    assert set(SCHEMAS) == set(SOURCES)
    assert (*OPENAPI_SOURCES, "subscriptions", "billing_history") == SOURCES


@pytest.mark.parametrize("source", OPENAPI_SOURCES)
def test_schema_is_the_openapi_record_in_documented_order(source, documented_records):
    record = documented_records[source]
    required = record.get("required", [])
    expected_order = list(required) + [name for name in record["properties"] if name not in required]

    assert [column.name for column in SCHEMAS[source]] == expected_order


@pytest.mark.parametrize("source", OPENAPI_SOURCES)
def test_schema_types_are_the_documented_types(source, documented_records):
    properties = documented_records[source]["properties"]
    for column in SCHEMAS[source]:
        assert column.type == _expected_type(properties[column.name]), column.name


def _documented_python_fields(text: str) -> set[str]:
    """Field names listed by a Python SDK reference page: ``name: type`` (as a line or in backticks)."""
    names = set(re.findall(r"^([a-z_][a-z0-9_]*): (?:Optional|List|Literal|str|float|int|datetime|bool)", text, re.M))
    names |= set(re.findall(r"`([a-z_][a-z0-9_]*): (?:Optional|List|Literal|str|float|int|datetime|bool)", text))
    return names


def test_the_python_reference_pages_list_no_field_we_lack(api_docs: Path):
    paygo_beta = (api_docs / "000_558fe8e2499d67be.txt").read_text(encoding="utf-8")
    overview = (api_docs / "002_aa02e7f6f9462a3a.txt").read_text(encoding="utf-8")
    v2 = (api_docs / "003_73e76165be54c397.txt").read_text(encoding="utf-8")
    parameters = {"account_id", "from_", "to", "metric"}

    paygo_fields = _documented_python_fields(paygo_beta) - parameters
    assert len(paygo_fields) == 11
    assert paygo_fields == {c.name for c in columns_for("paygo", "snake")}

    profile_part, usage_part = overview.split("BillingUsage", 1)
    profile_fields = _documented_python_fields(profile_part) - parameters
    assert profile_fields == {c.name for c in columns_for("profile", "snake")}
    paygo_v1_part, v2_part = usage_part.split("List[UsageGetResponseItem]", 1)
    assert _documented_python_fields(paygo_v1_part) <= {c.name for c in columns_for("paygo-usage", "snake")}
    assert _documented_python_fields(v2_part) <= {c.name for c in columns_for("v2", "snake")}

    v2_fields = _documented_python_fields(v2) - parameters
    assert len(v2_fields) == 33
    assert v2_fields <= {c.name for c in columns_for("v2", "snake")}


def test_the_go_reference_pages_list_no_field_we_lack(api_docs: Path):
    for page, source in (("001_2578dfd4cf35c709.txt", "paygo"), ("004_16cf33e964d5dbac.txt", "v2")):
        text = (api_docs / page).read_text(encoding="utf-8")
        # Go names (BillingAccountID, XBillableMetricID) compared case-insensitively without "_".
        go_fields = set(re.findall(r"^([A-Z][A-Za-z]+) (?:string|float64|int64|Time|UsageGetResponse)", text, re.M))
        go_fields |= set(re.findall(r"`([A-Z][A-Za-z]+) (?:string|float64|int64|Time)`", text))
        ours = {column.name.replace("_", "").lower() for column in SCHEMAS[source]}
        assert go_fields, page
        assert {name.lower() for name in go_fields} <= ours, page


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("key_style", KEY_STYLES)
def test_columns_for_names_the_schema_in_the_key_style(source, key_style):
    columns = columns_for(source, key_style)

    assert all(isinstance(column, Column) for column in columns)
    assert [column.type for column in columns] == [column.type for column in SCHEMAS[source]]
    if key_style == "api":
        assert columns == list(SCHEMAS[source])
    else:
        assert [column.name for column in columns] == [snake_key(column.name) for column in SCHEMAS[source]]
    assert len({column.name for column in columns}) == len(columns), "a key style merged two columns"


def test_columns_for_an_unknown_source_names_the_parameter_and_the_choices():
    with pytest.raises(ValueError, match=r"source must be one of 'v2', .*'billing_history'; got 'v3'"):
        columns_for("v3")


def test_columns_for_an_unknown_key_style_fails():
    with pytest.raises(ValueError, match="key_style"):
        columns_for("v2", "camel")


def test_records_module_does_not_import_airflow():
    code = "import sys, airflow_provider_cfbilling.records; assert 'airflow' not in sys.modules, 'airflow'"
    subprocess.run([sys.executable, "-c", code], check=True)
