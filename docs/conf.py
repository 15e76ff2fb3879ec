"""Sphinx configuration of the airflow-provider-cfbilling documentation (``make docs``).

Markdown pages through myst-parser; the API reference comes from the package's docstrings
(``sphinx.ext.autodoc``). Building imports the package and Airflow, never the network.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO_ROOT = DOCS.parent
sys.path.insert(0, str(REPO_ROOT))

# Importing Airflow (for autodoc) must not touch the reader's own ~/airflow.
_airflow_home = DOCS / "_build" / "airflow-home"
_airflow_home.mkdir(parents=True, exist_ok=True)
os.environ["AIRFLOW_HOME"] = str(_airflow_home)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

from airflow_provider_cfbilling import __version__  # noqa: E402

project = "airflow-provider-cfbilling"
author = "airflow-provider-cfbilling developers"
copyright = "airflow-provider-cfbilling developers"
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"

html_theme = "alabaster"
html_title = f"{project} {release}"
html_static_path: list[str] = []

# Pages that other engineers write may appear (or not yet exist) at any time; the index stays
# valid either way: a listed optional page is dropped from its toctree while the file is missing,
# and any top-level page the index does not list is added to the Development toctree (before the
# API reference), since a page outside every toctree is a warning and warnings are errors.
OPTIONAL_PAGES = ("performance",)


def _toctree_entries(text: str) -> set[str]:
    """The page names listed in the toctree blocks of a MyST page."""
    entries: set[str] = set()
    inside = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            inside = stripped == "```{toctree}"
        elif inside and stripped and not stripped.startswith(":"):
            entries.add(stripped)
    return entries


def _complete_the_index(app, docname, source):  # type: ignore[no-untyped-def]
    if docname != root_doc:
        return
    text = source[0]
    for page in OPTIONAL_PAGES:
        if not (DOCS / f"{page}.md").exists():
            text = text.replace(f"\n{page}\n", "\n")
    listed = _toctree_entries(text)
    unlisted = sorted(path.stem for path in DOCS.glob("*.md") if path.stem not in listed and path.stem != root_doc)
    if unlisted:
        text = text.replace("\napi\n```", "\n" + "".join(f"{page}\n" for page in unlisted) + "api\n```")
    source[0] = text


def setup(app):  # type: ignore[no-untyped-def]
    app.connect("source-read", _complete_the_index)
    return {"parallel_read_safe": True}
