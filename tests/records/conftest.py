"""Fixtures for the record tests: the API documents in ../shared/cloudflare-api, parsed once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# tests/records/conftest.py -> the repo root is parents[2]; the shared folder sits beside it.
API_DOCS = Path(__file__).resolve().parents[2] / ".." / "shared" / "cloudflare-api"

SOURCE_PATHS = {
    "v2": "/accounts/{account_id}/billable/usage",
    "paygo": "/accounts/{account_id}/billing/usage/paygo",
    "paygo-usage": "/accounts/{account_id}/paygo-usage",
    "billable-usage": "/accounts/{account_id}/billable-usage",
    "profile": "/accounts/{account_id}/billing/profile",
}


def _result_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``result`` property of a response schema, following ``allOf`` (the last part wins)."""
    for part in reversed(schema.get("allOf", [])):
        found = _result_schema(part)
        if found and (found.get("properties") or found.get("items")):
            return found
    return schema.get("properties", {}).get("result")


@pytest.fixture(scope="session")
def api_docs() -> Path:
    if not API_DOCS.is_dir():
        pytest.fail(f"the API documents are missing: expected {API_DOCS.resolve()}")
    return API_DOCS


@pytest.fixture(scope="session")
def documented_records(api_docs: Path) -> dict[str, dict[str, Any]]:
    """Per source: the record's OpenAPI object schema (``properties``, ``required``)."""
    spec = json.loads((api_docs / "openapi-extract.json").read_text(encoding="utf-8"))
    records = {}
    for source, path in SOURCE_PATHS.items():
        response = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        result = _result_schema(response["schema"])
        assert result is not None, f"no result schema for {path}"
        records[source] = result.get("items", result)
    return records
