"""cloudflare_api_facts.json says what the API documents in ../shared/cloudflare-api say.

The record tests read the facts file, so they run on a clone with nothing beside it. Where the
documents are beside the repository (CI, the developers' machines), this test regenerates the facts
from them with ``scripts/api_facts.py`` and fails when the committed file is out of date; where
they are not, it is skipped, saying so.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

FACTS_FILE = Path(__file__).resolve().with_name("cloudflare_api_facts.json")


def test_the_facts_file_matches_the_shared_api_documents(api_facts_script: ModuleType):
    docs: Path = api_facts_script.DEFAULT_DOCS
    if not (docs / api_facts_script.OPENAPI).is_file():
        pytest.skip(
            f"the Cloudflare API documents are not beside the repository ({docs.resolve()} is missing): "
            f"the committed {FACTS_FILE.name} is used as is and checked where the documents exist"
        )
    expected = api_facts_script.render(api_facts_script.build_facts(docs))
    actual = FACTS_FILE.read_text(encoding="utf-8")
    assert actual == expected, (
        f"{FACTS_FILE.name} is out of date with {docs.resolve()}: run `python3 scripts/api_facts.py`, "
        "then fix what the record tests report\n" + api_facts_script.diff(expected, actual, FACTS_FILE)
    )


def test_the_facts_script_reads_sdk_reference_syntax(api_facts_script: ModuleType):
    python_page = (
        "billing_currency: str\n\nSpecifies ...\n`zone_id: Optional[str]`\nfrom_: Optional[Union[null, null]]\n"
    )
    go_page = "- `BillingCurrency string` Specifies ...\nChargePeriodEnd Time\n`AccountID param.Field[string]`"

    assert api_facts_script.python_fields(python_page) == ["billing_currency", "zone_id"]
    assert api_facts_script.go_fields(go_page) == ["BillingCurrency", "ChargePeriodEnd"]
