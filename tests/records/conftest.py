"""Fixtures for the record tests: the facts of the Cloudflare API documents, kept in the repository.

``cloudflare_api_facts.json`` (beside this file) holds what the schema tests need from the API
documents in ``../shared/cloudflare-api``: each endpoint's documented record fields and types, and
the field names each SDK reference page lists. ``scripts/api_facts.py`` writes it from those
documents; ``test_api_facts.py`` checks it against them where they exist. So these tests run on a
clone with nothing beside it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FACTS_FILE = Path(__file__).resolve().with_name("cloudflare_api_facts.json")


def load_api_facts_script() -> ModuleType:
    """``scripts/api_facts.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("cfbilling_api_facts", REPO_ROOT / "scripts" / "api_facts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def api_facts_script() -> ModuleType:
    return load_api_facts_script()


@pytest.fixture(scope="session")
def api_facts(api_facts_script: ModuleType) -> dict[str, Any]:
    facts: dict[str, Any] = api_facts_script.load_facts(FACTS_FILE)
    return facts


@pytest.fixture(scope="session")
def documented_records(api_facts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per source: the record's documented ``required`` names and ``properties`` (name -> type, format), in order."""
    return {
        source: {
            "required": record["required"],
            "properties": {prop["name"]: prop for prop in record["properties"]},
        }
        for source, record in api_facts["records"].items()
    }


@pytest.fixture(scope="session")
def page_fields(api_facts: dict[str, Any]) -> dict[str, set[str]]:
    """Per reference page (or section), the record field names it lists (parameters left out)."""
    return {key: set(page["fields"]) for key, page in api_facts["reference_pages"].items()}
