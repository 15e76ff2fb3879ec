"""SCHEMAS hold every documented field of every source, in documented order, with its type.

The documented fields come from cloudflare_api_facts.json (see conftest.py), not from ../shared.
"""

from __future__ import annotations

import subprocess
import sys

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


def test_the_facts_file_documents_every_openapi_source(documented_records):
    assert set(documented_records) == set(OPENAPI_SOURCES)


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


def test_the_python_reference_pages_list_no_field_we_lack(page_fields):
    # Field names as the Python SDK pages list them (``name: type``), request parameters left out:
    # scripts/api_facts.py reads them from ../shared/cloudflare-api into cloudflare_api_facts.json.
    assert len(page_fields["paygo-python"]) == 11
    assert page_fields["paygo-python"] == {c.name for c in columns_for("paygo", "snake")}

    assert page_fields["profile-python"] == {c.name for c in columns_for("profile", "snake")}
    assert page_fields["paygo-usage-python"] <= {c.name for c in columns_for("paygo-usage", "snake")}
    assert page_fields["v2-overview-python"] <= {c.name for c in columns_for("v2", "snake")}

    assert len(page_fields["v2-python"]) == 33
    assert page_fields["v2-python"] <= {c.name for c in columns_for("v2", "snake")}


@pytest.mark.parametrize(("page", "source"), [("paygo-go", "paygo"), ("v2-go", "v2")])
def test_the_go_reference_pages_list_no_field_we_lack(page, source, page_fields):
    # Go names (BillingAccountID, XBillableMetricID) compared case-insensitively without "_".
    go_fields = page_fields[page]
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
