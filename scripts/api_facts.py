#!/usr/bin/env python3
"""Write the facts the record tests need from the Cloudflare API documents into the repository.

The API documents (OpenAPI extract, Python and Go SDK reference pages) live in
``../shared/cloudflare-api`` beside the repository, not in it. The record-schema tests must run on
a clone with nothing beside it, so they read ``tests/records/cloudflare_api_facts.json`` instead,
which this script writes from those documents:

- ``records``: per record source, the endpoint's OpenAPI record (the ``result`` of its 200 response,
  ``allOf`` followed, the item of an array): its ``required`` names in order, and every property in
  documented order with its OpenAPI ``type`` (and ``format`` where given);
- ``reference_pages``: per SDK reference page (or part of one), the record field names it lists,
  the endpoint's query/path parameters left out;
- ``documents``: the SHA-256 of every document read, so a changed document shows up as a diff.

``tests/records/test_api_facts.py`` regenerates the facts where ``../shared/cloudflare-api`` exists
(CI) and fails when they differ from the committed file; elsewhere it is skipped, saying why.
Standard library only (the tests import it on every supported Python).

    python3 scripts/api_facts.py                 # rewrite the facts file from ../shared/cloudflare-api
    python3 scripts/api_facts.py --check         # exit 1 (with a diff) if the facts file is out of date
    python3 scripts/api_facts.py --docs DIR      # read the documents from another folder
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DOCS = REPO.parent / "shared" / "cloudflare-api"
FACTS_FILE = REPO / "tests" / "records" / "cloudflare_api_facts.json"
OPENAPI = "openapi-extract.json"

# Record source (as in airflow_provider_cfbilling.records.SOURCES) -> its GET path in the OpenAPI extract.
SOURCE_PATHS = {
    "v2": "/accounts/{account_id}/billable/usage",
    "paygo": "/accounts/{account_id}/billing/usage/paygo",
    "paygo-usage": "/accounts/{account_id}/paygo-usage",
    "billable-usage": "/accounts/{account_id}/billable-usage",
    "profile": "/accounts/{account_id}/billing/profile",
}

# Request parameters that the Python pages list with the same ``name: type`` syntax as record fields.
PARAMETERS = ("account_id", "from_", "metric", "to")

_PY_TYPES = "(?:Optional|List|Literal|str|float|int|datetime|bool)"
_GO_TYPES = "(?:string|float64|int64|Time|UsageGetResponse)"


def python_fields(text: str) -> list[str]:
    """Field names a Python SDK reference page lists: ``name: type`` (as a line or in backticks)."""
    names = set(re.findall(rf"^([a-z_][a-z0-9_]*): {_PY_TYPES}", text, re.M))
    names |= set(re.findall(rf"`([a-z_][a-z0-9_]*): {_PY_TYPES}", text))
    return sorted(names - set(PARAMETERS))


def go_fields(text: str) -> list[str]:
    """Field names a Go SDK reference page lists: ``Name type`` (as a line or in backticks)."""
    names = set(re.findall(rf"^([A-Z][A-Za-z]+) {_GO_TYPES}", text, re.M))
    names |= set(re.findall(r"`([A-Z][A-Za-z]+) (?:string|float64|int64|Time)`", text))
    return sorted(names)


def _result_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The ``result`` property of a response schema, following ``allOf`` (the last part wins)."""
    for part in reversed(schema.get("allOf", [])):
        found = _result_schema(part)
        if found and (found.get("properties") or found.get("items")):
            return found
    result: dict[str, Any] | None = schema.get("properties", {}).get("result")
    return result


def record_facts(spec: dict[str, Any], path: str) -> dict[str, Any]:
    response = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    result = _result_schema(response["schema"])
    if result is None:
        raise SystemExit(f"{OPENAPI}: no result schema for GET {path}")
    record = result.get("items", result)
    properties = []
    for name, prop in record["properties"].items():
        fact = {"name": name, "type": prop["type"]}
        if "format" in prop:
            fact["format"] = prop["format"]
        properties.append(fact)
    return {"path": path, "required": list(record.get("required", [])), "properties": properties}


def _split(text: str, marker: str, document: str) -> tuple[str, str]:
    if marker not in text:
        raise SystemExit(f"{document}: the marker {marker!r} that splits the page is gone")
    before, after = text.split(marker, 1)
    return before, after


def page_facts(docs: Path) -> dict[str, dict[str, Any]]:
    """Per reference page (or section of the overview page): the field names it lists."""

    def read(name: str) -> str:
        return (docs / name).read_text(encoding="utf-8")

    paygo_beta, paygo_go = "000_558fe8e2499d67be.txt", "001_2578dfd4cf35c709.txt"
    overview, v2, v2_go = "002_aa02e7f6f9462a3a.txt", "003_73e76165be54c397.txt", "004_16cf33e964d5dbac.txt"
    # The overview page holds three references in a row: the billing profile, then (after
    # "BillingUsage") PayGo v1, then (after "List[UsageGetResponseItem]") v2 usage.
    profile_part, usage_part = _split(read(overview), "BillingUsage", overview)
    paygo_v1_part, v2_part = _split(usage_part, "List[UsageGetResponseItem]", overview)
    pages = {
        "paygo-python": (paygo_beta, "whole page", "python", read(paygo_beta)),
        "profile-python": (overview, "before 'BillingUsage'", "python", profile_part),
        "paygo-usage-python": (overview, "'BillingUsage' to 'List[UsageGetResponseItem]'", "python", paygo_v1_part),
        "v2-overview-python": (overview, "after 'List[UsageGetResponseItem]'", "python", v2_part),
        "v2-python": (v2, "whole page", "python", read(v2)),
        "paygo-go": (paygo_go, "whole page", "go", read(paygo_go)),
        "v2-go": (v2_go, "whole page", "go", read(v2_go)),
    }
    return {
        key: {
            "document": document,
            "section": section,
            "sdk": sdk,
            "fields": python_fields(text) if sdk == "python" else go_fields(text),
        }
        for key, (document, section, sdk, text) in pages.items()
    }


def build_facts(docs: Path = DEFAULT_DOCS) -> dict[str, Any]:
    """The facts file's content, from the documents in ``docs``."""
    if not (docs / OPENAPI).is_file():
        raise FileNotFoundError(f"the Cloudflare API documents are missing: expected {docs / OPENAPI}")
    spec = json.loads((docs / OPENAPI).read_text(encoding="utf-8"))
    pages = page_facts(docs)
    read = sorted({OPENAPI, *(page["document"] for page in pages.values())})
    return {
        "_about": (
            "Generated by scripts/api_facts.py from ../shared/cloudflare-api; do not edit. "
            "Regenerate with: python3 scripts/api_facts.py"
        ),
        "documents": {name: hashlib.sha256((docs / name).read_bytes()).hexdigest() for name in read},
        "parameters_left_out": list(PARAMETERS),
        "records": {source: record_facts(spec, path) for source, path in SOURCE_PATHS.items()},
        "reference_pages": pages,
    }


def render(facts: dict[str, Any]) -> str:
    return json.dumps(facts, indent=2, ensure_ascii=False) + "\n"


def load_facts(path: Path = FACTS_FILE) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return facts


def diff(expected: str, actual: str, path: Path = FACTS_FILE) -> str:
    lines = difflib.unified_diff(
        actual.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        f"{path.name} (committed)",
        f"{path.name} (from the documents)",
    )
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help=f"the documents (default: {DEFAULT_DOCS})")
    parser.add_argument("--output", type=Path, default=FACTS_FILE, help=f"the facts file (default: {FACTS_FILE})")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    try:
        expected = render(build_facts(args.docs))
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    if args.check:
        actual = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if actual != expected:
            print(
                f"{args.output} is out of date; run python3 scripts/api_facts.py\n"
                + diff(expected, actual, args.output)
            )
            return 1
        print(f"{args.output} matches {args.docs}")
        return 0
    args.output.write_text(expected, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
